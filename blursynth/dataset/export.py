"""Export of a pair dataset as folders other tools read: flat ``blur/``, ``sharp/``, ``psf/`` and
``params.jsonl``, or the layouts of GoPro, BasicSR and DeblurGAN-v2 with splits by source
(:mod:`.export_layouts`), and with ``raw`` the RAW-path rows' noisy blurred RAW mosaics (``raw/``,
:mod:`.raw_export`)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import BadInputError, native_noise_quiet
from .export_layouts import EXPORT_MARKER, IMAGE_FORMATS, Written, export_owns, get_layout, owned_text, \
    parse_splits, sequence_names, split_counts, unvouched, write_indexes, write_marker
from .outputs import LOCK_NAME, TEMPORARY, OutputKind, claim, lock_output, temporary_path
from .reader import PairDataset
from .schema import struct_array

_EXPORT_FOLDERS = ("blur", "sharp", "psf")

#: An export folder: --overwrite replaces an earlier export only, never a folder of someone's own files.
#: Split folders and config snippets count as the export's own only beside EXPORT_MARKER
#: (:func:`_claim_export`).
EXPORT = OutputKind(
    what="export",
    is_file="--out {out} is a file; expected a folder.",
    foreign=f"--out {{out}} is not an earlier export (it holds {{name}}); --overwrite replaces only "
            f"{owned_text()}; choose a new folder.",
    unmarked=f"--out {{out}} is not an earlier export (it has neither {EXPORT_MARKER} nor params.jsonl); "
             f"--overwrite replaces only {owned_text()}; choose a new folder.",
    markers=(EXPORT_MARKER, "params.jsonl"),
    own_when_marked=export_owns,
    exists="--out {out} exists; choose a new folder or pass --overwrite.",
)


def export_png(dataset, out, *, progress: bool = True, overwrite: bool = False, verify: bool = True,
               raw: str | None = None, rebuilder=None, report: dict | None = None, rows=None,
               layout: str = "flat", splits=None, split_by: str = "source", split_name: str | None = None,
               image_format: str = "png", jpeg_quality: int = 95) -> int:
    """Write a pair dataset as folders: ``blur/``, ``sharp/``, ``psf/`` and ``params.jsonl`` (``flat``),
    or another trainer's layout (``gopro``, ``basicsr``, ``deblurganv2``) with splits by source.

    Blurred and sharp images are written as PNG under their row id (``/`` in ids
    becomes ``_``); a PSF, where the pair has one, as ``psf/<id>.npy`` (float32,
    exact) and ``psf/<id>.png`` (16-bit, scaled to its peak, to look at). Scene-blur rows
    (``blur --motion camera6d|scene``) add ``masks/<id>.png`` (8-bit gray motion mask: 255 where
    object motion blurred the pixel) and ``psf/<id>_field.npy`` ((gy, gx, k, k) float32). The
    folder is built under a temporary name and renamed when complete (a killed export's is removed
    by the next export into ``out``), with ``out`` locked (:func:`lock_output`). ``verify`` checks each
    shard against the manifest as it is opened (the images are copied, not decoded).

    With ``raw`` (``"png16"`` or ``"npy"``), every RAW-path row's noisy blurred RAW mosaic is
    rebuilt from its params and its source and written to ``raw/<id>.png`` (16-bit, white level
    65535) or ``raw/<id>.npy`` (float32, white level 1.0), with ``raw/<id>.json`` (its metadata;
    :func:`~blursynth.dataset.raw_export.raw_metadata`). RGB-path rows have none: they are
    exported without one (``report["raw_skipped"]`` counts them, ``report["raw"]`` the mosaics),
    and a dataset with no RAW-path row is refused. ``rebuilder`` (needed with ``raw``) is called
    with the dataset's manifest and returns what rebuilds the mosaics: ``check(rows)`` refuses,
    before anything is written, a source that is not reachable, and ``mosaic(row)`` rebuilds one
    (:func:`blursynth.pairs.raw_mosaic.raw_rebuilder` makes it from ``--sources`` and ``--model``;
    the generators live there, not in this package).

    ``rows`` (row numbers), when given, exports only those rows (``dataset export --split``).

    ``layout`` other than ``flat`` puts each pair under a split folder: ``gopro``
    ``<split>/<sequence>/blur|sharp/`` (a sequence per source photo, clip or recorded sequence),
    ``basicsr`` ``<split>/lq|gt/`` with ``<split>/meta_info.txt`` and ``basicsr.yml``,
    ``deblurganv2`` ``<split>/blur|sharp/`` with ``<split>/files_a.txt``, ``files_b.txt`` and
    ``deblurganv2.yaml``; ``psf/``, ``masks/`` (and ``raw/``, ``gt_frames/``) sit beside the
    blurred and sharp folders. Every exported row must then have a sharp image. ``splits``
    (``"train=0.9,val=0.05,test=0.05"`` or a mapping; :func:`.export_layouts.assign_splits`)
    assigns rows by a hash of their source (``split_by="source"``) or id (``"pair"``); without
    it, every row goes to ``split_name`` (default ``train``). A flat export with ``splits`` puts
    its folders under each split. ``image_format`` ``"jpeg"`` writes the blurred and sharp images
    as JPEG at ``jpeg_quality`` (``.jpg``); ``"png"`` copies the stored PNG bytes. ``report``
    gains ``splits`` ({split: pairs}) and, with ``splits``, ``split_keys`` (sources or ids split)
    and ``empty_splits`` (named with a fraction above 0, yet given no pair).

    Returns
    -------
    n : int
        Pairs written.
    """
    out = Path(out)
    lay = get_layout(layout)
    if image_format not in IMAGE_FORMATS:
        raise BadInputError(f"--format must be one of {', '.join(IMAGE_FORMATS)}; got {image_format!r}.")
    if image_format == "jpeg" and (isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, int)
                                   or not 1 <= jpeg_quality <= 100):
        raise BadInputError(f"--jpeg-quality must be a whole number in [1, 100]; got {jpeg_quality!r}.")
    if split_name is not None and split_name not in ("train", "val", "test"):
        raise BadInputError(f"split_name must be train, val or test; got {split_name!r}.")
    if splits is not None:
        splits = parse_splits(splits)
        if rows is not None:
            raise BadInputError("--splits writes every split of the dataset; --split train|heldout picks one "
                                "side of train's split: give one of them.")
    ds = PairDataset(dataset, verify=verify)
    placement, n_keys = _place_rows(ds, lay, splits, split_by, rows, split_name)
    if report is not None:
        report["splits"] = split_counts(split for split, _ in placement.values())
        if splits is not None:
            report["split_keys"] = n_keys
            report["empty_splits"] = [name for name, f in splits.items() if f > 0 and name not in report["splits"]]
            report["fractions"] = splits
    if raw is not None:
        rebuilder, n_raw, n_rgb = _raw_rebuilder(ds, raw, rebuilder)
        if report is not None:
            report.update(raw=n_raw, raw_skipped=n_rgb)
    else:
        rebuilder = None
    if out.resolve() == ds.path.resolve() or out.resolve() in ds.path.resolve().parents:
        raise BadInputError(f"--out {out} is or holds the dataset {dataset} being exported; choose another folder.")
    if out.is_symlink():
        raise BadInputError(
            f"--out {out} is a symbolic link; an export replaces its folder whole and will not do that "
            f"through a link. Give the folder it points to ({os.path.realpath(out)}) or a new one."
        )
    _claim_export(out, overwrite)
    made = not out.exists()
    with lock_output(out):
        # Again: another export may have finished into it between the claim and the lock.
        _claim_export(out, overwrite)
        try:
            n = _export_locked(ds, out, progress=progress, raw=raw, rebuilder=rebuilder, placement=placement,
                               layout=lay, image_format=image_format, jpeg_quality=jpeg_quality)
        except BaseException:
            if made:  # the lock's folder only: a rerun starts as if it had never been made
                (out / LOCK_NAME).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    out.rmdir()
            raise
    return n


def _claim_export(out: Path, overwrite: bool) -> None:
    """:func:`claim` ``out`` as an export, and refuse split folders or config snippets that no
    export marker vouches for (a user's ``train/`` beside a ``params.jsonl`` of their own)."""
    claim(out, EXPORT, overwrite=overwrite, create=False)
    if out.is_dir():
        names = unvouched(p.name for p in out.iterdir())
        if names:
            raise BadInputError(f"--out {out} is not an earlier export (it holds {names[0]!r} but no {EXPORT_MARKER}, "
                                f"which every export writes); --overwrite replaces {owned_text()} only in an "
                                "export; choose a new folder.")


def _write_raw_row(folder, name, row, params, psf, s, local, ds, rebuilder, fmt) -> str:
    from .raw_export import write_raw
    from .reader import decode_pair_row

    with ds.table.decoding(s, local):
        decoded = decode_pair_row(row)
    mosaic = rebuilder.mosaic({**decoded, "params": params, "psf": psf})
    return write_raw(folder, name, mosaic, params, fmt)


def _write_mask(folder: Path, name: str, row, s, local, ds) -> None:
    """``masks/<name>.png``: the row's motion mask as one 8-bit gray plane."""
    import cv2

    from ..sources.photos import decode_image

    with ds.table.decoding(s, local):
        mask = decode_image(row["motion_mask"]["bytes"], what="motion_mask")[:, :, 0]
    folder.mkdir(exist_ok=True)
    with native_noise_quiet():
        wrote = cv2.imwrite(str(folder / f"{name}.png"), mask)
    if not wrote:
        raise OSError(errno.EIO, "could not write the file (is the disk full?)", str(folder / f"{name}.png"))


def _remove_leftovers(out: Path) -> None:
    """Remove the half-built folders of exports into ``out`` that were killed (``.OUT.tmpPID``):
    only folders that hold nothing but what an export writes; links are never followed."""
    for path in out.parent.iterdir():
        m = TEMPORARY.fullmatch(path.name)
        if not m or m["name"] != out.name or path.is_symlink() or not path.is_dir():
            continue
        names = [p.name for p in path.iterdir()]
        if all(export_owns(n) or n in (EXPORT_MARKER, "params.jsonl", LOCK_NAME) for n in names) \
                and not unvouched(names):
            shutil.rmtree(path, ignore_errors=True)


def _raw_rebuilder(ds, raw, make_rebuilder):
    """Check ``--raw`` before anything is written: the format, a RAW-path row, each source there."""
    from .raw_export import RAW_FORMATS, is_raw_row

    if raw not in RAW_FORMATS:
        raise BadInputError(f"--raw must be one of {', '.join(RAW_FORMATS)}; got {raw!r}.")
    if make_rebuilder is None:
        raise TypeError("export_png: raw needs a rebuilder (blursynth.pairs.raw_mosaic.raw_rebuilder).")
    rebuilder = make_rebuilder(ds.table.manifest)
    raw_rows, n_rgb = [], 0
    for row in ds.table.iter_rows(columns=["id", "source", "params"]):
        params = json.loads(row["params"]) if row.get("params") else {}
        if is_raw_row(params):
            raw_rows.append({**row, "params": params})
        else:
            n_rgb += 1
    if not raw_rows:
        raise BadInputError(f"--raw: no row of {ds.path} was made on the RAW path (--pipeline raw), so there is no "
                            "RAW mosaic to export; leave --raw out.")
    rebuilder.check(raw_rows)
    return rebuilder, len(raw_rows), n_rgb


def _place_rows(ds, layout, splits, split_by, rows, split_name) -> dict:
    """{row number: (split, folder)} of every row to export, and the number of distinct split keys
    (sources or ids; 0 without ``splits``), checked before anything is written:
    file names that two ids would share, and rows without a sharp image in a layout that pairs
    files by name."""
    from .export_layouts import assign_splits
    from .split import pair_ids, split_keys

    ids = pair_ids(ds)
    names = [_file_stem(i) for i in ids]
    if len(set(names)) != len(names):
        seen = {}
        for i, name in zip(ids, names):
            if name in seen:
                raise BadInputError(f"{ds.path}: pairs {seen[name]!r} and {i!r} would be exported under one "
                                    f"file name ({name}); ids differing only by '/' and '_' cannot be "
                                    "exported side by side.")
            seen[name] = i
    keep = range(len(ids)) if rows is None else sorted({int(i) for i in rows})
    n_keys = 0
    if splits is not None:
        keys = split_keys(ds, split_by)
        split_of, n_keys = assign_splits(keys, splits), len(set(keys))
    elif layout.name == "flat":
        split_of = [None] * len(ids)
    else:
        split_of = [split_name or "train"] * len(ids)
    sequences = None
    if layout.by_sequence:
        sequences = sequence_names(split_keys(ds, "source"), ids)
    placement = {i: (split_of[i], layout.folder(split_of[i], sequences[i] if sequences else None))
                 for i in keep}
    if layout.needs_ground_truth:
        missing = [i for i in _rows_without_ground_truth(ds) if i in placement]
        if missing:
            raise BadInputError(
                f"--layout {layout.name}: {len(missing)} of the pairs to export have no sharp image (test images "
                f"without ground truth, e.g. {ids[missing[0]]!r}), and {layout.name} pairs every blurred image "
                "with a sharp one; export them with --layout flat, or import only the splits with ground "
                "truth (dataset import --split).")
    return placement, n_keys


def _file_stem(pair_id: str) -> str:
    """The file name of a row's images, without suffix: its id, ``/`` becoming ``_``."""
    return pair_id.replace("/", "_")


def _rows_without_ground_truth(ds) -> list:
    """Row numbers with no sharp image, from the sharp column itself (whatever the params say),
    reading only its ``path`` field, so no image is read."""
    rows = ds.table.iter_rows(columns=["sharp.path"], batch_size=4096)
    return [i for i, row in enumerate(rows) if row["sharp"] is None]


def _image_bytes(data: bytes, image_format: str, jpeg_quality: int, what: str) -> bytes:
    """A stored image (PNG bytes) in the export's format: as stored, or encoded as JPEG."""
    if image_format == "png":
        return data
    from ..ops.degrade import jpeg_bytes
    from ..sources.photos import decode_image

    return jpeg_bytes(decode_image(data, what=what), jpeg_quality)


def _export_locked(ds, out: Path, *, progress: bool, raw=None, rebuilder=None, placement: dict, layout,
                   image_format: str = "png", jpeg_quality: int = 95) -> int:
    """Build the export beside ``out`` (``.OUT.tmpPID``) and rename it into place; ``out`` is locked."""
    import cv2

    from .._progress import progress_bar

    from ..sources.photos import read_header

    _remove_leftovers(out)  # nobody else exports here while we hold the lock
    tmp = temporary_path(out)
    tmp.mkdir(parents=True)
    write_marker(tmp, layout, image_format)  # first: a killed export's folder is still marked
    if layout.name == "flat" and all(split is None for split, _ in placement.values()):
        for sub in _EXPORT_FOLDERS + (("raw",) if raw else ()):  # as flat exports always had them
            (tmp / sub).mkdir()
    suffix = IMAGE_FORMATS[image_format]
    flat_lines = layout.name == "flat"
    n, written = 0, []
    from .._startup import startup_over

    startup_over()  # the work begins: start-up's objects frozen, the collector back on
    try:
        with open(tmp / "params.jsonl", "w") as meta:
            bar = progress_bar(ds.table.iter_located(), total=len(ds), unit="pair", desc="exporting",
                               enabled=progress)
            for s, local, row in bar:
                place = placement.get(int(ds.table.offsets[s]) + local)
                if place is None:
                    continue
                split, folder = place
                base = tmp / folder
                rel = f"{folder}/" if folder else ""
                with ds.table.decoding(s, local):
                    name = _file_stem(row["id"])
                    params = json.loads(row["params"])
                    psf = None if row["psf"] is None else struct_array(row["psf"])
                blurred = f"{rel}{layout.blurred_dir}/{name}{suffix}"
                (base / layout.blurred_dir).mkdir(parents=True, exist_ok=True)
                with ds.table.decoding(s, local):
                    (tmp / blurred).write_bytes(_image_bytes(row["blurred"]["bytes"], image_format, jpeg_quality,
                                                             "blurred"))
                sharp = None
                if row["sharp"] is not None:  # None: a test image without ground truth
                    sharp = f"{rel}{layout.sharp_dir}/{name}{suffix}"
                    (base / layout.sharp_dir).mkdir(parents=True, exist_ok=True)
                    with ds.table.decoding(s, local):
                        (tmp / sharp).write_bytes(_image_bytes(row["sharp"]["bytes"], image_format,
                                                               jpeg_quality, "sharp"))
                    if layout.name in ("basicsr", "deblurganv2"):
                        h, w, _ = read_header(row["sharp"]["bytes"])
                        written.append(Written(split, blurred, sharp, (h, w, 3)))
                if row.get("motion_mask") is not None:
                    _write_mask(base / "masks", name, row, s, local, ds)
                if row.get("psf_field") is not None or psf is not None:
                    (base / "psf").mkdir(parents=True, exist_ok=True)
                if row.get("psf_field") is not None:
                    with ds.table.decoding(s, local):
                        field = struct_array(row["psf_field"])
                    np.save(base / "psf" / f"{name}_field.npy", field)
                if psf is not None:
                    np.save(base / "psf" / f"{name}.npy", psf)
                    img16 = np.round(psf / max(float(psf.max()), 1e-12) * 65535).astype(np.uint16)
                    with native_noise_quiet():  # a failed write prints "libpng error: Write Error"
                        wrote = cv2.imwrite(str(base / "psf" / f"{name}.png"), img16)
                    if not wrote:  # OpenCV says only False
                        raise OSError(errno.EIO, "could not write the file (is the disk full?)",
                                      str(base / "psf" / f"{name}.png"))
                line = {"id": row["id"], "file": f"{name}{suffix}", "source": row["source"], "seed": row["seed"],
                        "params": params}
                if split is not None:
                    line["split"] = split
                if not flat_lines:
                    line.update(blurred=blurred, sharp=sharp)
                if row.get("gt_frames") is not None:  # every ground-truth frame, as stored (PNG)
                    (base / "gt_frames").mkdir(parents=True, exist_ok=True)
                    line["gt_frames"] = [f"{rel}gt_frames/{name}_{k:03d}.png" for k in range(len(row["gt_frames"]))]
                    for file, frame in zip(line["gt_frames"], row["gt_frames"]):
                        (tmp / file).write_bytes(frame["bytes"])
                if rebuilder is not None and params.get("raw") is not None:
                    (base / "raw").mkdir(parents=True, exist_ok=True)
                    line["raw_file"] = f"{rel}raw/" + _write_raw_row(base / "raw", name, row, params, psf, s, local,
                                                                     ds, rebuilder, raw)
                meta.write(json.dumps(line) + "\n")
                n += 1
        write_indexes(tmp, layout, written, out.resolve())
        # The new folder carries its own lock, so that ``out`` is never unlocked while it is swapped in.
        with lock_output(tmp):
            shutil.rmtree(out)
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return n
