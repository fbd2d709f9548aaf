"""The dataset format: constants, Parquet schemas, row encoding, and the registry of dataset kinds.

One directory per dataset::

    out/
      manifest.json                  format version, kind, command, fingerprint, shards
      data/train-00000-of-00016.parquet ...

Every kind of dataset (``pairs`` here; ``kernels`` in :mod:`blursynth.kernelbank`) is
registered with :func:`register_kind`, saying how :func:`~blursynth.dataset.verify.verify_dataset`
checks its manifest and rows; this package imports no module that generates data.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa

from ..errors import DatasetError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PROGRESS = ".blursynth-progress.json"
DATA_DIR = "data"
SOURCES = ("trajectory", "video", "bgan", "real", "uid")

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
ARRAY_TYPE = pa.struct([("shape", pa.list_(pa.int32())), ("values", pa.list_(pa.float32()))])


def _hf_value(dtype):
    return {"dtype": dtype, "_type": "Value"}


_PAIR_HF_FEATURES = {
    "id": _hf_value("string"),
    "index": _hf_value("int64"),
    "blurred": {"_type": "Image"},
    "sharp": {"_type": "Image"},
    "psf": {
        "shape": {"feature": _hf_value("int32"), "_type": "List"},
        "values": {"feature": _hf_value("float32"), "_type": "List"},
    },
    "source": _hf_value("string"),
    "seed": _hf_value("int64"),
    "params": _hf_value("string"),
    "fingerprint": _hf_value("string"),
}


def with_format_metadata(schema: pa.Schema, kind: str, hf_features=None) -> pa.Schema:
    """``schema`` with the key-value metadata every blursynth shard carries: the format
    version and ``kind`` (and, given ``hf_features``, the Hugging Face features that let
    ``datasets`` decode the image columns)."""
    meta = {b"blursynth": json.dumps({"format_version": FORMAT_VERSION, "kind": kind}).encode()}
    if hf_features is not None:
        meta[b"huggingface"] = json.dumps({"info": {"features": hf_features}}).encode()
    return schema.with_metadata(meta)


PAIR_SCHEMA = with_format_metadata(
    pa.schema(
        [
            pa.field("id", pa.string()),
            pa.field("index", pa.int64()),
            pa.field("blurred", IMAGE_TYPE),
            pa.field("sharp", IMAGE_TYPE),
            pa.field("psf", ARRAY_TYPE),
            pa.field("source", pa.string()),
            pa.field("seed", pa.int64()),
            pa.field("params", pa.string()),
            pa.field("fingerprint", pa.string()),
        ]
    ),
    "pairs",
    _PAIR_HF_FEATURES,
)

# Scene blur (``blur --motion camera6d|scene``) adds two columns: the per-pixel motion mask (an
# image: 255 where object motion blurred the pixel) and the field of local PSFs on a grid
# ((gy, gx, k, k)). A separate schema, so that every other way's shards keep their bytes.
SCENE_PAIR_SCHEMA = with_format_metadata(
    pa.schema([*(PAIR_SCHEMA.field(i).remove_metadata() for i in range(len(PAIR_SCHEMA))),
               pa.field("motion_mask", IMAGE_TYPE), pa.field("psf_field", ARRAY_TYPE)]),
    "pairs",
    {**_PAIR_HF_FEATURES, "motion_mask": {"_type": "Image"},
     "psf_field": _PAIR_HF_FEATURES["psf"]},
)

# Test sets recorded as sequences (Koehler et al. 2012: each blurred image with every sharp frame
# the camera saw along its recorded shake) add one column: those frames, in recorded order. A
# separate schema, so that every other import's shards keep their bytes.
GT_FRAMES_PAIR_SCHEMA = with_format_metadata(
    pa.schema([*(PAIR_SCHEMA.field(i).remove_metadata() for i in range(len(PAIR_SCHEMA))),
               pa.field("gt_frames", pa.list_(IMAGE_TYPE))]),
    "pairs",
    {**_PAIR_HF_FEATURES, "gt_frames": {"feature": {"_type": "Image"}, "_type": "List"}},
)

# Encoded images are already compressed: zstd on them costs time and saves nothing.
NO_COMPRESSION_COLUMNS = ("blurred.bytes", "sharp.bytes", "motion_mask.bytes", "gt_frames.list.element.bytes")


def array_struct(array) -> dict | None:
    """A float array as the ``{shape, values}`` struct stored in Parquet (None stays None)."""
    if array is None:
        return None
    array = np.asarray(array, dtype=np.float32)
    return {"shape": list(array.shape), "values": array.ravel().tolist()}


def struct_array(value) -> np.ndarray | None:
    """Inverse of :func:`array_struct`."""
    if value is None:
        return None
    return np.asarray(value["values"], dtype=np.float32).reshape(value["shape"])


def pair_row(
    *,
    index: int,
    blurred: np.ndarray,
    sharp: np.ndarray,
    psf,
    source: str,
    seed: int,
    params: dict,
    fingerprint: str,
    png_level: int | None = None,
    id: str | None = None,
    blurred_path: str | None = None,
    sharp_path: str | None = None,
    motion_mask: np.ndarray | None = None,
    psf_field=None,
    gt_frames=None,
) -> dict:
    """One pair as a row of :data:`PAIR_SCHEMA`, with both images encoded as PNG.

    Parameters
    ----------
    index : int
        Sample index; with ``seed`` it determines every random choice of the pair.
    blurred, sharp : (H, W, 3) uint8 ndarray
        The pair, RGB, same shape. ``sharp`` may be None only for a test image without ground
        truth (an import's row whose ``params`` say ``"ground_truth": false``).
    psf : (k, k) float ndarray or None
        The blur kernel, if the pair has one.
    source : {'trajectory', 'video', 'bgan', 'real', 'uid'}
    seed : int
    params : dict
        JSON-serialisable record of everything that made the pair.
    fingerprint : str
        Fingerprint of the command or recipe.
    png_level : int or None
        None for the fast fpng encoder, 0-9 for zlib.
    id : str, optional
        Defaults to ``f"{index:09d}"``.
    motion_mask : (H, W) uint8 ndarray, optional
        Scene blur only (:data:`SCENE_PAIR_SCHEMA`): 255 where object motion blurred the pixel;
        stored as a gray PNG (three equal channels).
    psf_field : (gy, gx, k, k) float ndarray, optional
        Scene blur only: the local PSFs on a grid over the image.
    gt_frames : list of (H, W, 3) uint8 ndarray, optional
        Recorded test sets only (:data:`GT_FRAMES_PAIR_SCHEMA`): every ground-truth frame of the
        blurred image's recorded sequence, in order, each the blurred image's shape.

    Returns
    -------
    row : dict
    """
    from ..config import canonical_json
    from ..sources.photos import encode_png

    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}; got {source!r}.")
    if sharp is None:
        if params.get("ground_truth") is not False:
            raise ValueError('sharp may be None only for a row whose params say "ground_truth": false.')
    elif blurred.shape != sharp.shape:
        raise ValueError(
            f"blurred and sharp must have the same shape; got {blurred.shape} and {sharp.shape}."
        )
    name = id if id is not None else f"{index:09d}"
    scene = {}
    if gt_frames is not None:
        for k, frame in enumerate(gt_frames):
            if frame.shape != blurred.shape:
                raise ValueError(f"gt_frames[{k}] must be {blurred.shape}; got {frame.shape}.")
        scene["gt_frames"] = [{"bytes": encode_png(frame, png_level), "path": f"{name}_gt{k:03d}.png"}
                              for k, frame in enumerate(gt_frames)]
    if motion_mask is not None:
        if motion_mask.shape != blurred.shape[:2]:
            raise ValueError(f"motion_mask must be (H, W) {blurred.shape[:2]}; got {motion_mask.shape}.")
        gray = np.repeat(np.asarray(motion_mask, np.uint8)[:, :, None], 3, axis=2)
        scene["motion_mask"] = {"bytes": encode_png(gray, png_level), "path": f"{name}_mask.png"}
    if psf_field is not None:
        scene["psf_field"] = array_struct(psf_field)
    return {
        "id": name,
        "index": int(index),
        "blurred": {"bytes": encode_png(blurred, png_level), "path": blurred_path or f"{name}_blur.png"},
        "sharp": None if sharp is None else {"bytes": encode_png(sharp, png_level),
                                             "path": sharp_path or f"{name}_sharp.png"},
        "psf": array_struct(psf),
        "source": source,
        "seed": int(seed),
        "params": canonical_json(params),
        "fingerprint": fingerprint,
        **scene,
    }


def pair_source(row_params: dict, source: str) -> str:
    """What a pair was made from, as one string: pairs with the same value share their source
    (crops of one photo, windows of one clip, frames of one recorded sequence), so splitting by
    it keeps a source on one side of a train/validation split.

    Parameters
    ----------
    row_params : dict
        The row's decoded ``params``.
    source : {'trajectory', 'video', 'bgan', 'real', 'scene'}
        The row's ``source`` column (scene blur writes ``trajectory``; ``scene`` is taken too).

    Returns
    -------
    str
        ``photo:<path>`` for trajectory, scene, BGAN and UID rows (the photo relative to the photos
        folder); ``video:<name>`` for frame averaging and rendered clips (the clip's recorded
        name); ``real:<set>/<split>/<sequence>`` for imported rows (older imports without
        ``set``/``sequence``: ``real:<folder of the sequence>`` for the gopro layout, the blurred
        file for a flat one).

    Examples
    --------
    >>> pair_source({"photo": "a/b.jpg", "crop": [0, 0, 8, 8]}, "trajectory")
    'photo:a/b.jpg'
    >>> pair_source({"set": "gopro", "split": "test", "sequence": "GOPR0384_11_00"}, "real")
    'real:gopro/test/GOPR0384_11_00'
    >>> pair_source({"blurred_path": "train/GOPR0372_07_00/blur/000047.png", "layout": "gopro"}, "real")
    'real:train/GOPR0372_07_00'
    """
    if source in ("trajectory", "scene", "bgan", "uid"):
        photo = row_params.get("photo")
        if photo is None:
            raise ValueError(f"a {source} row's params name no photo; cannot tell its source.")
        return f"photo:{photo}"
    if source == "video":
        name = row_params.get("video")
        return f"video:{name if name is not None else row_params.get('source_index')}"
    if source == "real":
        if row_params.get("sequence") is not None:
            parts = [row_params.get("set"), row_params.get("split"), row_params["sequence"]]
            return "real:" + "/".join(str(p) for p in parts if p not in (None, ""))
        path = row_params.get("blurred_path")
        if path is None:
            raise ValueError("a real row's params name neither a sequence nor a blurred_path.")
        if row_params.get("layout", "gopro") == "gopro":
            sequence = path.rsplit("/", 2)[0] if path.count("/") >= 2 else ""
            return f"real:{sequence or path}"
        return f"real:{path}"
    raise ValueError(f"source must be one of {SOURCES} or 'scene'; got {source!r}.")


def shard_name(split: str, shard: int, n_shards: int) -> str:
    """``train-00003-of-00016.parquet``."""
    return f"{split}-{shard:05d}-of-{n_shards:05d}.parquet"


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json_object(path: Path, what: str) -> dict:
    """A manifest or progress file as a dict; DatasetError naming ``path`` if it is not one."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable {what} ({exc}); delete the folder or pass --overwrite.")
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: unreadable {what} (a JSON {type(data).__name__}, not an object); "
                           "delete the folder or pass --overwrite.")
    return data


# ---------------------------------------------------------------------------------------------
# kinds


@dataclass(frozen=True)
class Kind:
    """How :func:`~blursynth.dataset.verify.verify_dataset` checks one kind of dataset.

    Attributes
    ----------
    check_manifest : callable ``(path, manifest) -> None`` or None
        Raises DatasetError when the manifest does not hold (e.g. a kernel bank's
        settings no longer hash to its fingerprint).
    check_row : callable ``(row) -> None`` or None
        Raises DatasetError for a bad row (called only when verifying with ``decode``).
    """

    check_manifest: Callable | None = None
    check_row: Callable | None = None


_KINDS: dict[str, Kind] = {}
# The module that registers each kind this format knows besides pairs, imported by name the first
# time a dataset of that kind is checked: a caller of verify_dataset need not know which module
# writes a kernel bank, and this package still has no import of a generator.
_KIND_MODULES = {"kernels": "blursynth.kernelbank"}


def register_kind(kind: str, *, check_manifest=None, check_row=None) -> None:
    """Tell the dataset package how to verify datasets of ``kind``.

    The module that writes a kind registers it at import (``pairs`` below,
    ``kernels`` in :mod:`blursynth.kernelbank`, which :func:`registered_kind`
    imports by name when a bank is checked first), so this package never
    imports a generator. Registering a kind again replaces its checks.

    Examples
    --------
    >>> register_kind("pairs", check_row=check_pair_row)
    """
    _KINDS[kind] = Kind(check_manifest=check_manifest, check_row=check_row)


def registered_kind(kind: str) -> Kind | None:
    """The checks registered for ``kind`` (importing the module that registers it), or None."""
    if kind not in _KINDS and kind in _KIND_MODULES:
        importlib.import_module(_KIND_MODULES[kind])
    return _KINDS.get(kind)


def known_kinds() -> tuple:
    """The kinds registered so far."""
    return tuple(_KINDS)


def check_psf(psf: np.ndarray) -> None:
    """DatasetError unless ``psf`` is an odd square, finite, non-negative and sums to 1."""
    if psf.ndim != 2 or psf.shape[0] != psf.shape[1] or psf.shape[0] % 2 == 0:
        raise DatasetError(f"PSF has shape {psf.shape}; expected an odd square.")
    if not np.all(np.isfinite(psf)) or psf.min() < 0 or abs(float(psf.sum(dtype=np.float64)) - 1.0) > 1e-4:
        raise DatasetError("PSF is negative, not finite or does not sum to 1.")


def check_pair_row(row: dict) -> None:
    """DatasetError unless both images decode to one shape, the PSF (if any) holds and params parse."""
    from ..errors import BadInputError
    from ..sources.photos import decode_image

    params = json.loads(row["params"])
    try:
        b = decode_image(row["blurred"]["bytes"], what="blurred")
        s = None if row.get("sharp") is None else decode_image(row["sharp"]["bytes"], what="sharp")
        frames = [decode_image(f["bytes"], what=f"gt_frames[{k}]") for k, f in enumerate(row.get("gt_frames") or [])]
    except BadInputError as exc:
        raise DatasetError(str(exc)) from None
    if s is None:
        if not isinstance(params, dict) or params.get("ground_truth") is not False:
            raise DatasetError('no sharp image, but params do not say "ground_truth": false.')
    elif b.shape != s.shape:
        raise DatasetError(f"blurred {b.shape} and sharp {s.shape} differ in shape.")
    for k, frame in enumerate(frames):
        if frame.shape != b.shape:
            raise DatasetError(f"gt_frames[{k}] {frame.shape} and blurred {b.shape} differ in shape.")
    psf = struct_array(row.get("psf"))
    if psf is not None:
        check_psf(psf)
    if row.get("motion_mask") is not None:
        try:
            m = decode_image(row["motion_mask"]["bytes"], what="motion_mask")
        except BadInputError as exc:
            raise DatasetError(str(exc)) from None
        if m.shape != b.shape:
            raise DatasetError(f"motion_mask {m.shape} and blurred {b.shape} differ in shape.")
    field = struct_array(row.get("psf_field"))
    if field is not None:
        if field.ndim != 4:
            raise DatasetError(f"psf_field has shape {field.shape}; expected (gy, gx, k, k).")
        for local in field.reshape(-1, *field.shape[2:]):
            check_psf(local)


register_kind("pairs", check_row=check_pair_row)
