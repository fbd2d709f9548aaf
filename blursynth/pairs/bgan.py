"""Learned blur (``blursynth bgan blur``): pairs from sharp photos blurred by a trained BGAN.

Pair ``i`` is photo ``i // per_image`` blurred with the noise vector drawn from
``sample_rng(seed, i)``; its row records that vector, the photo and the generator's fingerprint,
so :func:`rebuild_pair` remakes its pixels. Large photos run in tiles with a halo as wide as the
generator's receptive radius, which gives the whole-image result (the generator has no
normalisation layer), so memory stays bounded at any size.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .._rng import check_seed, sample_rng
from .._threads import one_thread
from ..bgan.config import NOISE_DIM
from ..errors import BadInputError, SettingError, checking
from ..ops.color import describe_crf
from ..sources.photos import PhotoPlan, load_rgb8, photo_path, scan_photos
from .photos import LearnedDevice, check_engine, check_model_unchanged, check_row_model, \
    check_workers, engine_versions, load_for_engine, model_stamp, photos_for, resolve_engine, \
    write_photo_pairs


@dataclass(frozen=True)
class BGANBlurSettings(LearnedDevice):
    """Everything ``blursynth bgan blur`` needs.

    Attributes
    ----------
    photos : str
        Folder of sharp photos (searched recursively) or one image file.
    model : str
        The ``--out`` folder of ``blursynth bgan train``.
    per_image : int
        Pairs per photo, each with its own noise vector.
    seed : int
    tile : int
        Output tile side in px; a photo larger than this runs in tiles (each with a halo of the
        generator's receptive radius).
    device : {"auto", "cpu", "cuda", "cuda:N"}
    engine : {"auto", "onnxruntime", "torch"}
        Where the generator runs (:func:`blursynth.pairs.photos.resolve_engine`): ONNX Runtime
        on the CPU (starts without importing torch), torch on the CPU or a GPU; ``auto`` picks
        torch on a GPU or to resume a dataset torch made, else ONNX Runtime.
    png_level : int or None
    shard_size : int
    strict : bool
        Stop on an unreadable photo instead of skipping it (with a warning).
    pipeline : {"rgb", "raw"}
        ``raw``: the generator's blurred image is decoded with ``crf``, unprocessed to a
        camera's RAW space, clipped at white, mosaicked, given sensor noise, optionally
        quantised, developed and encoded (:func:`blursynth.ops.blur.develop_raw_pair`); the
        sharp photo takes the same chain without noise.
    crf : str or None
        RAW path only: the camera response of the photos and of the generator's output
        (default ``gamma:2.2``).
    camera, demosaic, raw_bits, noise, jpeg : RAW path only
        As ``blursynth frames-average``'s (:class:`blursynth.pairs.frames.FramesAverageSettings`).
    exposure_gain : str or None
        RAW path only: linear gain range of both images' camera colours (clipped at white), as
        ``blur``'s. There is no highlight boost: a learned blur has no pre-blur image to boost.
    """

    photos: str
    model: str
    per_image: int = 1
    seed: int = 0
    tile: int = 512
    device: str = "auto"
    png_level: int | None = None
    shard_size: int = 256
    strict: bool = False
    pipeline: str = "rgb"
    crf: str | None = None
    camera: str | None = None
    demosaic: str | None = None
    raw_bits: int | tuple | None = None
    noise: str | None = None
    jpeg: str | None = None
    exposure_gain: str | None = None
    engine: str = "auto"

    def __post_init__(self):
        self._check_raw()
        check_engine(self.engine, self.device)
        with checking("seed"):
            check_seed(self.seed)
        if int(self.per_image) != self.per_image or self.per_image < 1:
            raise SettingError(f"--per-image must be a positive integer; got {self.per_image!r}.", "per_image")
        if self.tile < 16:
            raise SettingError(f"--tile must be at least 16 px; got {self.tile}.", "tile")
        if self.shard_size < 1:
            raise SettingError(f"--shard-size must be a positive integer; got {self.shard_size}.", "shard_size")


    def _check_raw(self):
        from ..ops.color import parse_crf_option
        from ..ops.degrade import Degradations
        from .raw_settings import check_raw_settings

        check_raw_settings(self, raw_only=("crf", "noise", "jpeg", "exposure_gain"))
        with checking("exposure_gain"):
            Degradations.parse(exposure_gain=self.exposure_gain)
        with checking("crf"):
            try:
                parse_crf_option(self.response_spec)  # one curve, or random: one per pair
            except ValueError as exc:
                raise BadInputError(f"--crf: {exc}") from None


    @property
    def response_spec(self) -> str:
        """The RAW path's camera response as text (``gamma:2.2`` unless ``crf`` says)."""
        return self.crf or "gamma:2.2"

    def raw_recipe(self) -> dict:
        """What the recipe records of the RAW path (nothing on the RGB path)."""
        if self.pipeline != "raw":
            return {}
        from ..ops.color import crf_option_spec
        from .raw_settings import raw_recipe

        return {"pipeline": "raw", "crf": crf_option_spec(self.response_spec),
                "raw": raw_recipe(self.camera, self.demosaic, self.raw_bits, self.noise, self.jpeg,
                                  boost={"exposure_gain": self.exposure_gain})}


#: Stream keys of a pair's RAW-path draws, ``sample_rng(seed, index, N)`` (the noise vector is
#: ``sample_rng(seed, index)``'s): the camera, the noise levels and JPEG quality, the noise field.
STREAM_RAW, STREAM_RAW_DEGRADE, STREAM_RAW_NOISE = 5, 8, 6
STREAM_CRF = 7  # --crf random on the RAW path: the pair's camera response


def raw_learned_pair(blurred, photo, params: dict, *, mosaic_only: bool = False):
    """The generator's uint8 output and the sharp photo through the RAW path (the row's params).

    Both are decoded with ``params["crf"]`` and go through
    :func:`blursynth.ops.blur.develop_raw_images`, the blurred one with the row's noise
    field, the photo without noise. With ``mosaic_only``: the blurred RAW mosaic
    ((H, W) float32, white level 1.0).
    """
    from ..ops.blur import develop_raw_images
    from ..ops.color import CameraResponse
    from .raw_settings import noise_rng

    crf = CameraResponse.parse(params["crf"])
    table = crf.decode_table()
    sharp = None if mosaic_only else table[photo]
    return develop_raw_images(table[blurred], sharp, params["raw"], crf=crf, noise_rng=noise_rng(params),
                              jpeg_quality=params.get("jpeg_quality"), mosaic_only=mosaic_only,
                              exposure_gain=params.get("exposure_gain"))


def pair_noise(seed: int, index: int) -> np.ndarray:
    """The noise vector of pair ``index``: (4,) float32 drawn from N(0, 1) by ``sample_rng``.

    Examples
    --------
    >>> bool((pair_noise(0, 5) == pair_noise(0, 5)).all()), pair_noise(0, 5).dtype
    (True, dtype('float32'))
    """
    return sample_rng(seed, index).standard_normal(NOISE_DIM).astype(np.float32)


def _spans(length: int, core: int):
    return [(s, min(s + core, length)) for s in range(0, length, core)]


def blur_tensor(generator, sharp, noise, *, tile: int = 512):
    """Blur ``(1, 3, H, W)`` images in [0, 1] with the generator, in tiles when large.

    Parameters
    ----------
    generator : BlurGenerator
        Runs on its own device and dtype; put in eval mode here.
    sharp : (1, 3, H, W) tensor
        [0, 1]; any H, W >= 1.
    noise : (4,) or (1, 4) array or tensor
    tile : int
        Output tile side; each tile is computed from a window ``radius`` px wider on every side
        (cut at the image edge), so the result equals whole-image inference.

    Returns
    -------
    blurred : (1, 3, H, W) tensor
        In [0, 1] (clamped), on the generator's device.

    Examples
    --------
    >>> import torch
    >>> from blursynth.bgan.model import CONFIGS, build_bgan
    >>> g, _ = build_bgan(CONFIGS["tiny"], seed=0)
    >>> x = torch.rand(1, 3, 40, 70)
    >>> whole = blur_tensor(g, x, torch.zeros(4), tile=128)
    >>> tiled = blur_tensor(g, x, torch.zeros(4), tile=16)
    >>> bool(torch.allclose(whole, tiled, atol=1e-6))
    True
    """
    import torch

    from ..train.models import from_model_range, to_model_range

    p = next(generator.parameters())
    generator.eval()
    x = to_model_range(sharp.to(p))
    z = torch.as_tensor(np.asarray(noise, dtype=np.float32)).reshape(1, NOISE_DIM).to(p)
    h, w = x.shape[-2:]
    r = generator.receptive_radius()
    with torch.no_grad():
        if h <= tile and w <= tile:
            return from_model_range(generator(x, z)).clamp(0, 1)
        out = torch.empty_like(x)
        for y0, y1 in _spans(h, tile):
            for x0, x1 in _spans(w, tile):
                wy0, wy1, wx0, wx1 = max(y0 - r, 0), min(y1 + r, h), max(x0 - r, 0), min(x1 + r, w)
                part = generator(x[..., wy0:wy1, wx0:wx1], z)
                out[..., y0:y1, x0:x1] = part[..., y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]
        return from_model_range(out).clamp(0, 1)


def blur_image(generator, photo: np.ndarray, noise, *, tile: int = 512) -> np.ndarray:
    """Blur a uint8 (H, W, 3) RGB photo with the generator (a torch module, or ONNX Runtime's
    :class:`blursynth.bgan.onnx.OnnxBlurGenerator`) and noise vector; uint8 out.

    Examples
    --------
    >>> from blursynth.bgan.model import CONFIGS, build_bgan
    >>> g, _ = build_bgan(CONFIGS["tiny"], seed=0)
    >>> blur_image(g, np.zeros((9, 11, 3), np.uint8), pair_noise(0, 0)).shape
    (9, 11, 3)
    """
    from ..bgan.onnx import OnnxBlurGenerator

    if isinstance(generator, OnnxBlurGenerator):
        return generator.blur_image(photo, noise, tile=tile)
    import torch

    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"photo must be uint8 (H, W, 3); got {photo.dtype} {photo.shape}.")
    x = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1)[None].float() / 255.0
    y = blur_tensor(generator, x, noise, tile=tile)
    return np.ascontiguousarray(
        (y[0] * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy())


# ---------------------------------------------------------------------------------------------
# the dataset writer


@dataclass(frozen=True)
class _Job:
    settings: BGANBlurSettings
    plan: PhotoPlan
    model_path: str
    model_fingerprint: str
    model_step: int
    model_config: str
    device: str  # where to run: "cpu", "cuda" or "cuda:N"
    engine: str  # "onnxruntime" or "torch"
    fingerprint: str


def _generator(model, device: str, engine: str = "torch"):
    """The generator of ``model`` for ``engine`` on ``device``, loaded once per process and
    model version."""
    try:
        stamp = model_stamp(str(model))
    except OSError:  # no such model: the loader's own error names it
        return _load_generator(model, device, engine)
    return _cached_generator(str(model), str(device), engine, *stamp)


@functools.lru_cache(maxsize=2)
def _cached_generator(model_path: str, device: str, engine: str, mtime_ns: int, size: int):
    """One load per worker process, engine and model file version (keyed by its mtime and size)."""
    return _load_generator(model_path, device, engine)


def _load_generator(model, device: str, engine: str):
    return load_for_engine(model, device, engine, read_onnx=_read_onnx, load_torch=_load_torch,
                           to_onnx=_to_onnx)


def _read_onnx(model):
    from ..bgan.onnx import read_generator

    return read_generator(model)


def _load_torch(model, device):
    from ..bgan.train import load_bgan_generator

    return load_bgan_generator(model, device=device)


def _to_onnx(gen):
    from ..bgan.onnx import OnnxBlurGenerator

    return OnnxBlurGenerator(gen.config, {k: v.numpy() for k, v in gen.state_dict().items()})


def _bgan_rows(start, stop, job: _Job):
    """Yield the pair rows of samples ``start..stop-1``."""
    from ..dataset.schema import pair_row

    s = job.settings
    gen, info = _generator(job.model_path, job.device, job.engine)
    check_model_unchanged(job.model_path, info["fingerprint"], job.model_fingerprint)
    with one_thread(job.device.split(":")[0]):
        for index, photo, note in photos_for(job.plan, start, stop, s.per_image, strict=s.strict):
            noise = pair_noise(s.seed, index)
            blurred = blur_image(gen, photo, noise, tile=s.tile)
            params = {"photo": job.plan.files[index // s.per_image],
                      "variant": index % s.per_image, "noise": [float(v) for v in noise],
                      "model_fingerprint": job.model_fingerprint,
                      "model_step": job.model_step, "model_config": job.model_config,
                      "tile": s.tile, "receptive_radius": gen.receptive_radius(),
                      "device": job.device.split(":")[0]}
            if job.engine == "onnxruntime":
                params["engine"] = job.engine  # a torch-made row records none, as before the engines
            if note:
                params["converted"] = note  # the key blur and dataset import use
            sharp = photo
            if s.pipeline == "raw":
                from ..ops.color import draw_response, parse_crf_option
                from .raw_settings import RawStreams, draw_raw_row

                params["crf"] = draw_response(parse_crf_option(s.response_spec),
                                              sample_rng(s.seed, index, STREAM_CRF)).spec
                params.update(draw_raw_row(
                    s.seed, index, RawStreams(STREAM_RAW, STREAM_RAW_DEGRADE, STREAM_RAW_NOISE),
                    camera=s.camera, demosaic=s.demosaic, raw_bits=s.raw_bits, noise=s.noise, jpeg=s.jpeg,
                    boost={"exposure_gain": s.exposure_gain}))
                blurred, sharp = raw_learned_pair(blurred, photo, params)
            yield pair_row(index=index, blurred=blurred, sharp=sharp, psf=None, source="bgan",
                           seed=s.seed, params=params, fingerprint=job.fingerprint,
                           png_level=s.png_level)


def bgan_blur(settings: BGANBlurSettings, out, *, workers: int = 1, overwrite: bool = False,
              progress: bool = True, options=None) -> dict:
    """Write a pair dataset (source ``bgan``) by blurring photos with a trained BGAN.

    Parameters
    ----------
    settings : BGANBlurSettings
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
        On any bad input (photos, model), before anything is written. Every
        photo's header is read first: unreadable ones are skipped with a
        warning, or stop the run with ``settings.strict``.

    Examples
    --------
    >>> s = BGANBlurSettings("photos/", "model/", per_image=2)   # doctest: +SKIP
    >>> bgan_blur(s, "pairs/")["num_rows"]                        # doctest: +SKIP
    """
    from ..nn.device import resolve_device_name

    check_workers(workers)
    device = resolve_device_name(settings.render_device)
    # Checks the model before anything is written (read without torch where it can be); with
    # ONNX Runtime, the rows made in this process then use this same load (a pool's processes,
    # forked from a fork server, load their own).
    _, info = _generator(settings.model, "cpu", "torch" if settings.engine == "torch" else "onnxruntime")
    plan = scan_photos(settings.photos, strict=settings.strict, exclude=out)
    recipe = {"command": "bgan blur", "model_fingerprint": info["fingerprint"],
              "photos_digest": plan.digest(), "n_photos": len(plan.files),
              "per_image": settings.per_image, "seed": settings.seed, "tile": settings.tile,
              "png_level": settings.png_level, "device": device.split(":")[0], **settings.raw_recipe()}
    engine = resolve_engine(settings, device, out, recipe, n_items=len(plan.files) * settings.per_image,
                            options=options, overwrite=overwrite)
    if engine == "onnxruntime":
        recipe["engine"] = engine
    return write_photo_pairs(
        out, plan, per_image=settings.per_image, recipe=recipe,
        inputs={"photos": str(settings.photos), "model": str(settings.model)},
        make_job=functools.partial(_Job, settings, plan, str(settings.model), info["fingerprint"],
                                   info["step"], info["config"]["name"], device, engine),
        rows=_bgan_rows, shard_size=settings.shard_size, workers=workers, overwrite=overwrite,
        progress=progress, desc="bgan blur", options=options,
        extra={**engine_versions(engine),
               **({"camera_response": describe_crf(settings.response_spec)} if settings.pipeline == "raw" else {})},
    )


def rebuild_pair(row: dict, sources, *, model, device="cpu", mosaic_only: bool = False):
    """Remake a ``bgan`` pair from its row.

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
    mosaic_only : bool
        For a RAW-path row: return the blurred image's noisy RAW mosaic ((H, W) float32,
        white level 1.0) instead (``dataset export --raw``).

    Returns
    -------
    blurred, sharp : (H, W, 3) uint8 ndarray
        Equal to the row's images when rebuilt on the same kind of device (sharp is the photo,
        or on the RAW path the photo through the camera chain).

    Raises
    ------
    BadInputError
        The model is not the one that made the row.
    """
    params = row["params"]
    raw = params.get("raw") is not None
    if mosaic_only and not raw:
        raise BadInputError(f"pair {row.get('id', '?')} was made on the RGB path; it has no RAW mosaic.")
    engine = params.get("engine", "torch")
    if engine == "onnxruntime":
        device = "cpu"
    gen, info = _generator(model, str(device), engine)  # an export rebuilds many rows
    check_row_model(model, info["fingerprint"], params["model_fingerprint"])
    photo, _ = load_rgb8(photo_path(sources, params["photo"]))
    with one_thread(str(device).split(":")[0]):
        blurred = blur_image(gen, photo, np.asarray(params["noise"], np.float32),
                             tile=params["tile"])
    if raw:
        return raw_learned_pair(blurred, photo, params, mosaic_only=mosaic_only)
    return blurred, photo
