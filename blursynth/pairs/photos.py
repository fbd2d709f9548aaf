"""The one "photos -> K pairs each" driver that the photo-based ways (shake, bgan, uid) share.

Pair ``i`` is made from photo ``i // per_image``: the writer plans ``len(photos) * per_image``
rows, each way's rows come from :func:`photos_for` (each photo loaded once, unreadable ones
skipped with a warning or, with ``strict``, stopping the run), and :func:`write_photo_pairs`
writes the dataset and counts the photos skipped; the learned ways also share the model checks
(:func:`model_stamp`, :func:`check_model_unchanged`, :func:`check_row_model`).
"""

from __future__ import annotations

import functools
import math
import sys

from ..errors import BadInputError
from ..sources.decode_ahead import load_photo
from ..sources.photos import PhotoPlan


def warn(message: str) -> None:
    """One warning line on stderr (from worker processes too), clear of progress bars."""
    from tqdm.auto import tqdm

    tqdm.write(f"warning: {message}", file=sys.stderr)


def photos_for(plan: PhotoPlan, start: int, stop: int, per_image: int, *, strict: bool,
               prepare=None):
    """Yield ``(index, photo, note)`` for the pairs ``start..stop-1`` whose photo decodes.

    Each photo is loaded once for its consecutive pairs (and passed through ``prepare``, e.g. a
    resize). A photo whose header read when the run was planned but whose pixels do not decode
    is skipped with a warning, or stops the run with ``strict``; its pairs count as done for a
    write's progress bar, which so ends at its total.
    """
    from ..dataset.executors import report_rows

    current, photo, note = None, None, None
    for index in range(start, stop):
        photo_i = index // per_image
        if photo_i != current:
            try:
                photo, note = load_photo(plan.path(photo_i))
                if prepare is not None:
                    photo = prepare(photo)
            except BadInputError as exc:
                if strict:
                    raise BadInputError(f"{str(exc).rstrip('.')}; drop --strict to skip unreadable "
                                        "photos.") from None
                warn(f"{str(exc).rstrip('.')}; skipped")
                photo, note = None, None
            current = photo_i
        if photo is not None:
            yield index, photo, note
        else:
            report_rows(1)


#: Pairs a worker renders per task when several share a write: small, so two workers are busy
#: even on a few dozen pairs, and whole photos, so no photo is decoded twice.
CHUNK_PAIRS = 4


def photo_chunk(per_image: int, pairs: int = CHUNK_PAIRS, batch: int = 1) -> int:
    """Items per task of a photo way's write: whole photos, at least ``pairs`` pairs
    (:data:`CHUNK_PAIRS`), and a whole number of ``batch``es (a GPU blur's ``--batch``, so no
    batch in a task is short) where that takes at most four times ``pairs`` or ``per_image``.

    Examples
    --------
    >>> photo_chunk(1), photo_chunk(3), photo_chunk(10), photo_chunk(3, pairs=32)
    (4, 6, 10, 33)
    >>> photo_chunk(3, pairs=32, batch=32), photo_chunk(7, pairs=32, batch=32)
    (96, 35)
    """
    unit = photo_unit(per_image, pairs, batch)
    return unit * max(1, -(-pairs // unit))


def photo_unit(per_image: int, pairs: int = CHUNK_PAIRS, batch: int = 1) -> int:
    """The smallest task :func:`photo_chunk` is made of: whole photos and whole batches, where
    that takes at most four times ``pairs`` or ``per_image`` (else whole photos). The last tasks
    of a write are this size, so the workers finish together.

    Examples
    --------
    >>> photo_unit(1), photo_unit(3), photo_unit(3, pairs=32, batch=32), photo_unit(7, pairs=32, batch=32)
    (1, 3, 96, 7)
    """
    unit = per_image * batch // math.gcd(per_image, batch)
    return per_image if unit > 4 * max(pairs, per_image) else unit


def import_codecs() -> None:
    """Import the modules that decode and encode photos (OpenCV, fpng, pyspng, PIL's formats) now.

    Each is imported where it is first used, so a command that never touches an image does not
    pay for it. A writer about to fork its pool's processes calls this first: they start with
    the modules loaded instead of each importing them again on its first pair (about 50 ms of
    CPU per process).
    """
    import cv2  # noqa: F401
    import fpng  # noqa: F401
    from PIL import Image

    Image.preinit()  # the formats PIL's header reads open with
    try:
        import pyspng  # noqa: F401
    except ImportError:  # an optional speed-up: not built for every platform
        pass


def write_photo_pairs(out, plan: PhotoPlan, *, per_image: int, recipe: dict, inputs: dict,
                      make_job, rows, shard_size: int, workers: int, overwrite: bool,
                      progress: bool, desc: str, options=None, extra: dict | None = None,
                      schema=None, chunk_pairs: int = CHUNK_PAIRS, batch: int = 1) -> dict:
    """Write ``per_image`` pairs of every photo in ``plan`` as a pair dataset.

    Parameters
    ----------
    out : str or Path
        Output dataset directory (new, or the same command's, to resume).
    plan : PhotoPlan
        From :func:`blursynth.sources.photos.scan_photos`; its skipped files are warned about,
        each on a line, and its photos too small for the run on one line with their count.
    recipe : dict
        Everything that determines the bytes; its fingerprint names the dataset.
    inputs : dict
        Where the inputs were (paths): recorded in the manifest, not fingerprinted.
    make_job : callable
        ``make_job(fingerprint) -> job``, the picklable object ``rows`` needs.
    rows : callable
        ``rows(start, stop, job)`` yields the pair rows of samples ``start..stop-1``.
    options : WriteOptions, optional
        From a recipe build: executor, ``--limit`` and the recipe recorded
        (:class:`blursynth.dataset.writer.WriteOptions`).
    extra : dict, optional
        Top-level manifest keys (not fingerprinted), e.g. the ``camera_response`` tag.
    schema : pyarrow.Schema, optional
        The rows' schema (default :data:`~blursynth.dataset.schema.PAIR_SCHEMA`; scene blur's
        rows add a motion mask and a PSF field: ``SCENE_PAIR_SCHEMA``).
    chunk_pairs : int
        Pairs a worker renders per task, at least (whole photos: :func:`photo_chunk`).
    batch : int
        Pairs ``rows`` renders per call (a GPU blur's ``--batch``): tasks hold whole batches
        where :func:`photo_chunk` can.

    Returns
    -------
    manifest : WrittenManifest
        The dataset manifest (:class:`~blursynth.dataset.writer.WrittenManifest`: with
        ``rows_written`` and ``shards_written``, this run's share), plus ``skipped_photos``
        (unreadable files, and photos whose pixels did not decode), ``skipped_pairs`` (scene
        blur's pairs whose objects' photo did not decode) and ``small_photos`` (photos smaller
        than the run needs, left out of the plan).
    """
    from ..config import fingerprint
    from ..dataset.schema import PAIR_SCHEMA
    from ..dataset.writer import write_dataset

    def warn_plan():  # once the output is this run's: a refused one is refused in one line
        for line in plan.left_out():
            warn(line)

    fp = fingerprint(recipe)
    if workers > 1:
        # Before the pool's processes fork from this one (where they do: with torch loaded they
        # fork from a fork server, and each imports its own), not once in each.
        import_codecs()
    manifest = write_dataset(
        out, kind="pairs", schema=PAIR_SCHEMA if schema is None else schema, n_items=len(plan.files) * per_image,
        shard_size=shard_size, make_rows=functools.partial(rows, job=make_job(fp)),
        fingerprint=fp, command={**recipe, **inputs}, workers=workers, overwrite=overwrite,
        unit="pair", desc=desc, progress=progress, options=options, extra=extra,
        chunk_size=photo_chunk(per_image, chunk_pairs, batch),
        tail_chunk_size=photo_unit(per_image, chunk_pairs, batch), on_start=warn_plan,
    )
    # Pairs the way refused one by one (Skipped: scene blur's pairs whose objects' photo does not
    # decode) are not whole photos: the rest of the missing rows are.
    refused = manifest.get("skipped", 0)
    skipped_rows = manifest["planned_items"] - manifest["num_rows"] - refused
    manifest.update(skipped_photos=len(plan.skipped) + skipped_rows // per_image,
                    skipped_pairs=refused, small_photos=len(plan.small))
    return manifest


def check_workers(workers) -> None:
    """Refuse a ``--workers`` count below one, before anything is read or written."""
    if int(workers) < 1:
        raise BadInputError(f"--workers must be a positive integer; got {workers!r}.")


# ---------------------------------------------------------------------------------------------
# the learned ways (bgan, uid): a model folder loaded once per process and checked per row


#: ``--engine`` of the learned ways: where their networks run.
ENGINES = ("auto", "onnxruntime", "torch")


class LearnedDevice:
    """What the learned ways' settings share of their ``engine`` and ``device`` fields."""

    @property
    def render_device(self) -> str:
        """Where the network runs, as ``--device`` says it: ``cpu`` for ONNX Runtime asked for by
        name (its ``auto`` is the CPU), else ``device`` (auto: torch's GPU if there is one, where
        ``auto`` takes torch).

        Examples
        --------
        >>> from blursynth.pairs.uid import UIDBlurSettings as S
        >>> S("p", "m", engine="onnxruntime").render_device, S("p", "m").render_device
        ('cpu', 'auto')
        """
        return "cpu" if self.engine == "onnxruntime" else self.device


def check_engine(engine, device) -> None:
    """Refuse an ``--engine`` that is not one of :data:`ENGINES`, or ONNX Runtime's with a GPU
    ``--device`` (a setting's check: before torch is imported to look for the GPU)."""
    from ..errors import SettingError
    from ..nn.device import check_device_name

    check_device_name(device)  # a malformed name is named as such, whatever the engine
    if engine not in ENGINES:
        raise SettingError(f"--engine must be one of {', '.join(ENGINES)}; got {engine!r}.", "engine")
    if engine == "onnxruntime" and str(device) not in ("auto", "cpu"):
        raise SettingError(f"--engine onnxruntime runs on the CPU; --device {device} needs --engine torch "
                           "(or give --device cpu).", "engine")


def resolve_engine(settings, device: str, out, recipe: dict, *, n_items: int, options=None,
                   overwrite: bool = False) -> str:
    """The engine a learned way's run uses: ``"onnxruntime"`` or ``"torch"``.

    ``auto`` is torch on a GPU, and torch where ``out`` already holds this run's pairs made by
    torch (``recipe``, the run's recipe without an engine, is torch's: datasets made before the
    ONNX Runtime engine resume with the arithmetic they were made with); else ONNX Runtime,
    which starts without importing torch. Pairs of the two engines may differ in a last bit of
    a value before rounding, so a pixel here and there by one level: the recipe, and so the
    dataset's fingerprint, names the engine when it is ONNX Runtime. An engine asked for by
    name that is not the one of the pairs ``out`` holds is refused (unless ``overwrite``),
    naming the engine that made them.

    Parameters
    ----------
    settings : BGANBlurSettings or UIDBlurSettings
        Its ``engine`` (auto, onnxruntime or torch); the settings' own check refused ONNX
        Runtime with a GPU device (:func:`check_engine`).
    device : str
        The resolved device, ``cpu`` or ``cuda[:N]`` (``cpu`` for ``onnxruntime``).
    out : str or Path
        The run's output folder.
    recipe : dict
        The run's recipe as torch's engine records it.
    n_items, options : int, WriteOptions
        The pairs planned and the write's options (a ``--limit`` build has its own fingerprint).
    overwrite : bool

    Examples
    --------
    >>> from types import SimpleNamespace as S
    >>> resolve_engine(S(engine="auto"), "cpu", "no/such/folder", {}, n_items=1)
    'onnxruntime'
    >>> resolve_engine(S(engine="auto"), "cuda", "no/such/folder", {}, n_items=1)
    'torch'
    """
    import importlib.util
    import json
    from pathlib import Path

    from ..config import fingerprint
    from ..dataset.schema import MANIFEST, PROGRESS
    from ..dataset.writer import dataset_fingerprint

    engine, on_cpu = settings.engine, device == "cpu"
    has_ort = importlib.util.find_spec("onnxruntime") is not None
    if engine == "onnxruntime" and not has_ort:
        raise BadInputError("--engine onnxruntime: ONNX Runtime is not installed; pip install "
                            "onnxruntime, or pass --engine torch.")
    made_by = None
    for name in (PROGRESS, MANIFEST):
        try:
            recorded = json.loads((Path(out) / name).read_text()).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            continue
        for kind in ("torch", "onnxruntime"):
            made = recipe if kind == "torch" else {**recipe, "engine": kind}
            if recorded == dataset_fingerprint(fingerprint(made), n_items, options):
                made_by = kind
        break
    if engine == "auto" and made_by == "onnxruntime" and not has_ort:
        raise BadInputError(f"--out {out} holds this command's pairs made by ONNX Runtime, which is not "
                            "installed here; pip install onnxruntime to resume them, or choose another --out.")
    if engine == "auto":
        if made_by == "torch" and on_cpu and has_ort:
            from tqdm.auto import tqdm

            tqdm.write(f"note: {out} holds pairs torch made; they go on in torch (--engine auto).",
                       file=sys.stderr)
        return made_by or ("onnxruntime" if on_cpu and has_ort else "torch")
    if made_by not in (None, engine) and not overwrite:
        raise BadInputError(f"--out {out} holds this command's pairs made by {made_by} (the engine is "
                            f"part of a dataset's recipe); resume with --engine {made_by} (or auto), "
                            "choose another --out, or pass --overwrite to replace them.")
    return engine


def engine_versions(engine: str) -> dict:
    """The manifest's record of the engine that ran a learned way's network:
    ``{"engine": "onnxruntime 1.32.0"}`` (the package's version: its kernels make the bytes; a
    resumed dataset records the version of the run that finished it).

    Examples
    --------
    >>> engine_versions("torch")["engine"].startswith("torch ")
    True
    """
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    try:
        return {"engine": f"{engine} {version(engine)}"}
    except PackageNotFoundError:
        pass
    # The module may come in a distribution of another name (onnxruntime-gpu, a vendor's build);
    # finding it scans every installed distribution (0.1 s), so only then.
    for dist in packages_distributions().get(engine, []):
        try:
            return {"engine": f"{engine} {version(dist)}"}
        except PackageNotFoundError:
            continue
    return {"engine": engine}


def model_stamp(model_path: str) -> tuple:
    """``(mtime_ns, size)`` of a model folder's checkpoint (or the file): the key of a
    per-process cache of loaded models, so a retrained model is loaded again."""
    from pathlib import Path

    from ..nn.runs import CHECKPOINT

    p = Path(model_path)
    st = (p / CHECKPOINT if p.is_dir() else p).stat()
    return st.st_mtime_ns, st.st_size


def load_for_engine(model, device: str, engine: str, *, read_onnx, load_torch, to_onnx):
    """A learned way's model for ``engine``: ``(network, info)``.

    ONNX Runtime's is read without torch (``read_onnx(model)``) where the reader takes the file;
    otherwise torch loads it (``load_torch(model, device)``, after the file's CRC-32 check, since
    torch would use damaged weights without a word), and for ONNX Runtime its weights are handed
    over (``to_onnx(network)``): torch reads what the reader does not, or refuses the file in
    its own one line.
    """
    from ..nn.runs import CHECKPOINT
    from ..nn.torchfile import UnreadableCheckpoint, check_not_damaged

    if engine == "onnxruntime":
        try:
            return read_onnx(model)
        except (OSError, UnreadableCheckpoint):
            pass
    check_not_damaged(model, CHECKPOINT)
    network, info = load_torch(model, "cpu" if engine == "onnxruntime" else device)
    return (to_onnx(network), info) if engine == "onnxruntime" else (network, info)


def check_model_unchanged(model, fingerprint: str, expected: str) -> None:
    """Refuse to go on writing pairs when the model loaded now is not the one the run began
    with (``fingerprint`` != ``expected``)."""
    if fingerprint != expected:
        raise BadInputError(f"--model {model}: the model changed while pairs were being written "
                            f"(fingerprint {fingerprint}, expected {expected}); rerun the command.")


def check_row_model(model, fingerprint: str, made_by: str) -> None:
    """Refuse to rebuild a row with a model other than the one that made it."""
    if fingerprint != made_by:
        raise BadInputError(f"--model {model}: fingerprint {fingerprint}, but the pair was "
                            f"made by {made_by}; pass that model.")
