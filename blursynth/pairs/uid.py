"""Transferred blur (``blursynth uid blur``): pairs from sharp photos given a blur code by a trained UID.

UID (Lu et al., CVPR 2019) splits a blurred image into content and a blur code. Pair ``i`` is
photo ``i // per_image``: its content (the sharp-domain encoder) is decoded by the blurred-domain
generator with a blur code that is either drawn from the prior N(0, I) (``sample_rng(seed, i,
STREAM_PRIOR)``), or the blur encoder's mean for a reference image of ``--blur-from`` chosen by
``sample_rng(seed, i, STREAM_REFERENCE)`` (its centre, at most ``reference_side`` px a side). The
row records the code, the reference and the model's fingerprint, so :func:`rebuild_pair` remakes
its pixels. The networks run on the whole photo (padded to the encoders' stride, reflected): the
content encoders normalise over the image (instance norm), so tiles would not give the
whole-image result, and memory grows with the photo's size.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass

import numpy as np

from .._rng import check_seed, sample_rng
from .._threads import one_thread
from ..errors import BadInputError, SettingError, checking
from ..sources.photos import PhotoPlan, load_rgb8, photo_path, scan_photos
from .photos import LearnedDevice, check_engine, check_model_unchanged, check_row_model, \
    check_workers, engine_versions, load_for_engine, model_stamp, photos_for, resolve_engine, \
    write_photo_pairs

#: Stream keys of a pair's draws, ``sample_rng(seed, index, N)``: the prior's code, the reference.
STREAM_PRIOR, STREAM_REFERENCE = 1, 2
#: The blur encoder's smallest input side (four stride-2 convs).
MIN_REFERENCE = 16
#: The smallest photo side the networks take: the content at a quarter of it must be two pixels
#: wide for its blocks' reflection padding (a side of 5 is padded to 8).
MIN_PHOTO = 5


@dataclass(frozen=True)
class UIDBlurSettings(LearnedDevice):
    """Everything ``blursynth uid blur`` needs.

    Attributes
    ----------
    photos : str
        Folder of sharp photos (searched recursively) or one image file.
    model : str
        The ``--out`` folder of ``blursynth uid train``.
    blur_from : str or None
        Blurred images whose blur codes are transferred (a folder, an image file, or a pair
        dataset's blurred images); None draws codes from the prior N(0, I).
    blur_prior : bool
        Draw codes from the prior (the default when ``blur_from`` is None; giving both is refused).
    per_image : int
        Pairs per photo, each with its own code (and reference).
    reference_side : int
        A reference larger than this is encoded from its centre ``reference_side`` px square
        (bounded memory; the blur code is a global summary of the image).
    seed : int
    device : {"auto", "cpu", "cuda", "cuda:N"}
    engine : {"auto", "onnxruntime", "torch"}
        Where the networks run (:func:`blursynth.pairs.photos.resolve_engine`): ONNX Runtime on
        the CPU (starts without importing torch), torch on the CPU or a GPU; ``auto`` picks
        torch on a GPU or to resume a dataset torch made, else ONNX Runtime.
    png_level : int or None
    shard_size : int
    strict : bool
        Stop on an unreadable photo instead of skipping it (with a warning).
    """

    photos: str
    model: str
    blur_from: str | None = None
    blur_prior: bool = False
    per_image: int = 1
    reference_side: int = 256
    seed: int = 0
    device: str = "auto"
    png_level: int | None = None
    shard_size: int = 256
    strict: bool = False
    engine: str = "auto"

    def __post_init__(self):
        check_engine(self.engine, self.device)
        with checking("seed"):
            check_seed(self.seed)
        if self.blur_prior and self.blur_from is not None:
            raise SettingError("--blur-prior draws codes from N(0, I) and --blur-from encodes them from "
                               "blurred images; give one of them.", "blur_prior")
        if isinstance(self.per_image, bool) or int(self.per_image) != self.per_image \
                or self.per_image < 1:
            raise SettingError(f"--per-image must be a positive integer; got {self.per_image!r}.",
                               "per_image")
        if isinstance(self.reference_side, bool) or not isinstance(self.reference_side, int) \
                or self.reference_side < 16:
            raise SettingError(f"--reference-side must be an integer of at least 16 px; got "
                               f"{self.reference_side!r}.", "reference_side")
        if self.shard_size < 1:
            raise SettingError(f"--shard-size must be a positive integer; got {self.shard_size}.",
                               "shard_size")

    @property
    def code_source(self) -> str:
        """``"reference"`` (codes encoded from ``blur_from``) or ``"prior"``."""
        return "prior" if self.blur_from is None else "reference"


# ---------------------------------------------------------------------------------------------
# one image


def prior_code(seed: int, index: int, z_dim: int) -> np.ndarray:
    """The blur code of pair ``index`` drawn from the prior: (z_dim,) float32 from N(0, I).

    Examples
    --------
    >>> c = prior_code(0, 5, 8)
    >>> c.shape, c.dtype, bool((c == prior_code(0, 5, 8)).all())
    ((8,), dtype('float32'), True)
    """
    return sample_rng(seed, index, STREAM_PRIOR).standard_normal(int(z_dim)).astype(np.float32)


def reference_index(seed: int, index: int, n_references: int) -> int:
    """Which of ``n_references`` blurred images gives pair ``index`` its code.

    Examples
    --------
    >>> 0 <= reference_index(0, 3, 10) < 10
    True
    """
    return int(sample_rng(seed, index, STREAM_REFERENCE).integers(0, n_references))


def centre_box(h: int, w: int, side: int) -> list:
    """``[y0, x0, y1, x1]`` of the centre window at most ``side`` px a side.

    Examples
    --------
    >>> centre_box(300, 100, 256)
    [22, 0, 278, 100]
    """
    ch, cw = min(h, side), min(w, side)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return [y0, x0, y0 + ch, x0 + cw]


def _tensor(image: np.ndarray, p):
    """uint8 (H, W, 3) -> (1, 3, H, W) in [-1, 1] on ``p``'s device and dtype."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(p) / 127.5 - 1


def _uint8(y) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> uint8 (H, W, 3)."""
    import torch

    y = ((y[0].float() + 1) * 127.5).clamp(0, 255).round().to(torch.uint8)
    return np.ascontiguousarray(y.permute(1, 2, 0).cpu().numpy())


def _check_rgb8(image, name: str, least: int = 1) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 \
            or min(image.shape[:2]) < least:
        raise ValueError(f"{name} must be uint8 (H, W, 3) with H, W >= {least}; got {image.dtype} "
                         f"{image.shape}.")


def encode_code(nets, reference: np.ndarray) -> np.ndarray:
    """The blur encoder's mean code of a uint8 (H, W, 3) blurred image (H, W >= 16).

    Returns
    -------
    code : (z_dim,) float32 ndarray

    Examples
    --------
    >>> from blursynth.uid.model import CONFIGS, build_uid
    >>> nets = build_uid(CONFIGS["tiny"], seed=0)
    >>> encode_code(nets, np.zeros((32, 40, 3), np.uint8)).shape == (nets.z_dim,)
    True
    """
    from ..uid.onnx import OnnxUID

    _check_rgb8(reference, "reference", MIN_REFERENCE)
    if isinstance(nets, OnnxUID):
        return nets.encode(reference)
    import torch

    p = next(nets.parameters())
    nets.eval()
    with torch.no_grad():
        mu, _ = nets.blur_code(_tensor(reference, p))
    return mu.reshape(-1).float().cpu().numpy().astype(np.float32)


def transfer_blur_image(nets, photo: np.ndarray, code) -> np.ndarray:
    """Blur a uint8 (H, W, 3) sharp photo with a blur code; uint8 (H, W, 3) out.

    ``nets`` are torch's :class:`~blursynth.uid.model.UIDNets` or ONNX Runtime's
    :class:`~blursynth.uid.onnx.OnnxUID`.

    :func:`blursynth.uid.model.transfer_blur` (the sharp-domain content decoded by the
    blurred-domain generator with ``code``, (z_dim,) values) on the whole photo.

    Examples
    --------
    >>> from blursynth.uid.model import CONFIGS, build_uid
    >>> nets = build_uid(CONFIGS["tiny"], seed=0)
    >>> transfer_blur_image(nets, np.zeros((30, 37, 3), np.uint8), np.zeros(nets.z_dim)).shape
    (30, 37, 3)
    """
    from ..uid.onnx import OnnxUID

    _check_rgb8(photo, "photo")
    code = np.asarray(code, np.float32).reshape(1, -1)
    if code.shape[1] != nets.z_dim:
        raise ValueError(f"code must have {nets.z_dim} values (the model's z_dim); got {code.shape[1]}.")
    if isinstance(nets, OnnxUID):
        return nets.transfer(photo, code)
    import torch

    from ..uid.model import transfer_blur

    p = next(nets.parameters())
    nets.eval()
    with torch.no_grad():
        return _uint8(transfer_blur(nets, _tensor(photo, p), torch.from_numpy(code).to(p)))


# ---------------------------------------------------------------------------------------------
# the model and the references, once per worker


@functools.lru_cache(maxsize=2)
def _cached_nets(model_path: str, device: str, engine: str, mtime_ns: int, size: int):
    """One load per worker process, engine and model file version (keyed by its mtime and size)."""
    return load_model(model_path, device, engine)


def _nets(model, device: str, engine: str = "torch"):
    """The UID networks of ``model`` for ``engine`` on ``device``, loaded once per process and
    model version."""
    try:
        stamp = model_stamp(str(model))
    except OSError:  # no such model: the loader's own error names it
        return load_model(model, device, engine)
    return _cached_nets(str(model), str(device), engine, *stamp)


def load_model(model, device="cpu", engine: str = "torch"):
    """The UID networks of a run folder in eval mode, and ``info``: ``fingerprint``, ``step``,
    ``config`` (its name).

    Parameters
    ----------
    model : str or Path
    device : str or torch.device
        torch's engine only.
    engine : {"torch", "onnxruntime"}
        torch's :class:`~blursynth.uid.model.UIDNets`, or ONNX Runtime's
        :class:`~blursynth.uid.onnx.OnnxUID` (read without torch where the file allows).

    Raises
    ------
    BadInputError
        No model there, or a checkpoint of another kind (one line naming it).
    """
    return load_for_engine(model, device, engine, read_onnx=_read_onnx, load_torch=_load_torch,
                           to_onnx=_to_onnx)


def _read_onnx(model):
    from ..uid.onnx import read_nets

    return read_nets(model)


def _load_torch(model, device):
    from ..uid.model import load_uid

    nets, config, run_info = load_uid(model, device)
    return nets, {"fingerprint": run_info["fingerprint"], "step": run_info["step"], "config": config.name}


def _to_onnx(nets):
    from ..uid.onnx import OnnxUID

    return OnnxUID(nets.config, {k: v.numpy() for k, v in nets.state_dict().items()})


def open_references(path, *, verify: bool = True):
    """The ``--blur-from`` set: an :class:`~blursynth.sources.image_sets.ImageSet` of blurred images."""
    from ..sources.image_sets import ImageSet

    return ImageSet(path, column="blurred", option="--blur-from", verify=verify)


def reference_name(refs, i: int) -> dict:
    """What a row records of reference ``i``: ``{"file": relative path}`` or ``{"pair": id}``."""
    if refs.is_dataset:
        return {"pair": refs.ids[i]}
    root = refs.path
    p = refs.files[i]
    return {"file": p.relative_to(root).as_posix() if root.is_dir() else p.name}


def _references_digest(refs) -> str:
    """Of the references' names (relative to the set, as rows record them) and stored sizes (part
    of the run's fingerprint, which then does not depend on where the set is)."""
    h = hashlib.sha256()
    for i, size in enumerate(refs.byte_sizes()):
        h.update(f"{json.dumps(reference_name(refs, i), sort_keys=True)}\0{size}\n".encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=2)
def _cached_references(path: str, digest: str):
    """One opening per worker process and version of the set (``digest``: its names and sizes)."""
    return open_references(path, verify=False)  # checked once, before anything was written


def _reference_code(nets, refs, i: int, side: int):
    """(code, box, sha256 of the stored image) of reference ``i``."""
    image = refs.load(i)
    box = centre_box(*image.shape[:2], side)
    y0, x0, y1, x1 = box
    code = encode_code(nets, np.ascontiguousarray(image[y0:y1, x0:x1]))
    return code, box, refs.content_digests([i])[i][:16]


# ---------------------------------------------------------------------------------------------
# the dataset writer


@dataclass(frozen=True)
class _Job:
    settings: UIDBlurSettings
    plan: PhotoPlan
    model_fingerprint: str
    model_step: int
    model_config: str
    device: str  # where to run: "cpu", "cuda" or "cuda:N"
    engine: str  # "onnxruntime" or "torch"
    references_digest: str | None  # of the --blur-from set, None without one
    fingerprint: str


def _code_params(nets, job: _Job, index: int) -> tuple[np.ndarray, dict]:
    """Pair ``index``'s blur code and what its row records of it."""
    s = job.settings
    if s.blur_from is None:
        code = prior_code(s.seed, index, nets.z_dim)
        return code, {"code_source": "prior"}
    refs = _cached_references(str(s.blur_from), job.references_digest)
    r = reference_index(s.seed, index, len(refs))
    code, box, digest = _reference_code(nets, refs, r, s.reference_side)
    return code, {"code_source": "reference", "reference": reference_name(refs, r),
                  "reference_box": box, "reference_sha256": digest}


def _uid_rows(start, stop, job: _Job):
    """Yield the pair rows of samples ``start..stop-1``."""
    from ..dataset.schema import pair_row

    s = job.settings
    nets, info = _nets(str(s.model), job.device, job.engine)
    check_model_unchanged(s.model, info["fingerprint"], job.model_fingerprint)
    with one_thread(job.device.split(":")[0]):
        for index, photo, note in photos_for(job.plan, start, stop, s.per_image, strict=s.strict):
            code, about = _code_params(nets, job, index)
            blurred = transfer_blur_image(nets, photo, code)
            params = {"photo": job.plan.files[index // s.per_image], "variant": index % s.per_image,
                      "blur_code": [float(v) for v in code], **about,
                      "model_fingerprint": job.model_fingerprint, "model_step": job.model_step,
                      "model_config": job.model_config, "device": job.device.split(":")[0]}
            if job.engine == "onnxruntime":
                params["engine"] = job.engine  # a torch-made row records none, as before the engines
            if note:
                params["converted"] = note  # the key blur and dataset import use
            yield pair_row(index=index, blurred=blurred, sharp=photo, psf=None, source="uid",
                           seed=s.seed, params=params, fingerprint=job.fingerprint,
                           png_level=s.png_level)


def uid_blur(settings: UIDBlurSettings, out, *, workers: int = 1, overwrite: bool = False,
             progress: bool = True, options=None) -> dict:
    """Write a pair dataset (source ``uid``) by giving sharp photos a blur code with a trained UID.

    Parameters
    ----------
    settings : UIDBlurSettings
    out : str or Path
        Output dataset directory (new, or this same command's, to resume).
    workers : int
        Worker processes; the bytes do not depend on it.
    overwrite : bool
    options : WriteOptions, optional
        From a recipe build: executor, ``--limit`` and the recipe recorded
        (:class:`blursynth.dataset.writer.WriteOptions`).

    Returns
    -------
    manifest : dict
        The dataset manifest, plus ``skipped_photos`` (unreadable files).

    Raises
    ------
    BadInputError
        On any bad input (photos, model, references), before anything is written.

    Examples
    --------
    >>> s = UIDBlurSettings("photos/", "model/", blur_from="blurry/")   # doctest: +SKIP
    >>> uid_blur(s, "pairs/")["num_rows"]                               # doctest: +SKIP
    """
    from ..nn.device import resolve_device_name

    check_workers(workers)
    device = resolve_device_name(settings.render_device)
    # Checks the model before anything is written (read without torch where it can be); with
    # ONNX Runtime, the rows made in this process then use this same load (a pool's processes,
    # forked from a fork server, load their own).
    _, info = _nets(settings.model, "cpu", "torch" if settings.engine == "torch" else "onnxruntime")
    plan = _without_small(scan_photos(settings.photos, strict=settings.strict, exclude=out), settings.strict)
    recipe = {"command": "uid blur", "model_fingerprint": info["fingerprint"],
              "photos_digest": plan.digest(), "n_photos": len(plan.files),
              "per_image": settings.per_image, "seed": settings.seed,
              "code_source": settings.code_source, "png_level": settings.png_level,
              "device": device.split(":")[0]}
    inputs = {"photos": str(settings.photos), "model": str(settings.model)}
    if settings.blur_from is not None:
        refs = open_references(settings.blur_from)
        _check_not_photos(refs, plan)
        _check_reference_sizes(refs)
        recipe.update(references_digest=_references_digest(refs), n_references=len(refs),
                      reference_side=settings.reference_side)
        inputs["blur_from"] = str(settings.blur_from)
    engine = resolve_engine(settings, device, out, recipe, n_items=len(plan.files) * settings.per_image,
                            options=options, overwrite=overwrite)
    if engine == "onnxruntime":
        recipe["engine"] = engine
    return write_photo_pairs(
        out, plan, per_image=settings.per_image, recipe=recipe, inputs=inputs,
        make_job=functools.partial(_Job, settings, plan, info["fingerprint"], info["step"],
                                   info["config"], device, engine, recipe.get("references_digest")),
        rows=_uid_rows, shard_size=settings.shard_size, workers=workers, overwrite=overwrite,
        progress=progress, desc="uid blur", options=options, extra=engine_versions(engine),
    )


def _without_small(plan: PhotoPlan, strict: bool) -> PhotoPlan:
    """``plan`` less the photos smaller than :data:`MIN_PHOTO` a side (skipped with a warning),
    or refused where ``strict`` or where every photo is."""
    from dataclasses import replace

    small = [(rel, h, w) for rel, (h, w) in zip(plan.files, plan.sizes) if min(h, w) < MIN_PHOTO]
    if not small:
        return plan
    if strict or len(small) == len(plan.files):
        rel, h, w = small[0]
        every = len(small) == len(plan.files)
        more = f" (as are all {len(small)} photos)" if every and len(small) > 1 else ""
        hint = " (or drop --strict to skip photos that small)" if strict and not every else ""
        raise BadInputError(f"photo {rel} is {h}x{w}, smaller than UID's {MIN_PHOTO}x{MIN_PHOTO}{more}; "
                            f"use larger photos{hint}.")
    keep = [(rel, size) for rel, size in zip(plan.files, plan.sizes) if min(size) >= MIN_PHOTO]
    return replace(plan, files=tuple(r for r, _ in keep), sizes=tuple(z for _, z in keep),
                   small=tuple(f"{rel} ({h}x{w})" for rel, h, w in small),
                   small_need=f"{MIN_PHOTO}x{MIN_PHOTO} (UID's smallest)")


def _check_reference_sizes(refs) -> None:
    """Refuse references smaller than the blur encoder takes (:data:`MIN_REFERENCE`)."""
    sizes = refs.sizes()
    small = [i for i, hw in enumerate(sizes) if min(hw) < MIN_REFERENCE]
    if small:
        h, w = sizes[small[0]]
        raise BadInputError(f"--blur-from {refs.path}: {len(small)} of {len(sizes)} image(s) are "
                            f"smaller than the blur encoder's {MIN_REFERENCE} px (first: "
                            f"{refs.describe(small[0])}, {h}x{w}); remove them.")


def _check_not_photos(refs, plan: PhotoPlan) -> None:
    """Refuse ``--blur-from`` naming the very files given as PHOTOS (a code of a sharp photo is
    no blur to transfer)."""
    if refs.is_dataset:
        return
    photos = {str(plan.path(i).resolve()) for i in range(len(plan.files))}
    if photos and photos >= set(refs.keys()):
        raise BadInputError(f"--blur-from {refs.path} holds only the sharp PHOTOS themselves; "
                            "expected blurred images (e.g. the real blurred set of uid train).")


def rebuild_pair(row: dict, sources, *, model, device="cpu"):
    """Remake a ``uid`` pair from its row.

    The row's ``blur_code`` is the code that was used (float32 values, exact in JSON), so the
    reference set is not needed again.

    Parameters
    ----------
    row : dict
        As :class:`blursynth.dataset.reader.PairDataset` returns it (``params`` a dict).
    sources : str or Path
        The PHOTOS folder (or file) the run read.
    model : str or Path
        The model folder; its fingerprint must be the row's.
    device : torch.device or str
        Where torch runs a row torch made (a row of ONNX Runtime is rebuilt by it, on the CPU).

    Returns
    -------
    blurred, sharp : (H, W, 3) uint8 ndarray
        Equal to the row's images when rebuilt on the same kind of device.

    Raises
    ------
    BadInputError
        The model is not the one that made the row.
    """
    params = row["params"]
    engine = params.get("engine", "torch")
    if engine == "onnxruntime":
        device = "cpu"
    nets, info = _nets(model, str(device), engine)  # an export rebuilds many rows
    check_row_model(model, info["fingerprint"], params["model_fingerprint"])
    photo, _ = load_rgb8(photo_path(sources, params["photo"]))
    with one_thread(str(device).split(":")[0]):
        return transfer_blur_image(nets, photo, np.asarray(params["blur_code"], np.float32)), photo
