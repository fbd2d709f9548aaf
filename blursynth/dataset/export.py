"""Export of a pair dataset as GoPro-style folders (``blur/``, ``sharp/``, ``psf/``, ``params.jsonl``),
and with ``raw`` the RAW-path rows' noisy blurred RAW mosaics (``raw/``, :mod:`.raw_export`)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import BadInputError, native_noise_quiet
from .outputs import LOCK_NAME, TEMPORARY, OutputKind, claim, lock_output, temporary_path
from .reader import PairDataset
from .schema import struct_array

_EXPORT_FOLDERS = ("blur", "sharp", "psf")
# raw/ only with --raw; masks/ for scene-blur rows; gt_frames/ for recorded test sets (Köhler)
_OWN_FOLDERS = (*_EXPORT_FOLDERS, "raw", "masks", "gt_frames")

#: An export folder: --overwrite replaces an earlier export only, never a folder of someone's own files.
EXPORT = OutputKind(
    what="export",
    is_file="--out {out} is a file; expected a folder.",
    foreign="--out {out} is not an earlier export (it holds {name}); --overwrite replaces only blur/, "
            "sharp/, psf/, masks/ and params.jsonl folders; choose a new folder.",
    unmarked="--out {out} is not an earlier export (it has no params.jsonl); --overwrite replaces only blur/, "
             "sharp/, psf/, masks/ and params.jsonl folders; choose a new folder.",
    markers=("params.jsonl",),
    own_when_marked=lambda name: name in _OWN_FOLDERS,
    exists="--out {out} exists; choose a new folder or pass --overwrite.",
)


def export_png(dataset, out, *, progress: bool = True, overwrite: bool = False, verify: bool = True,
               raw: str | None = None, rebuilder=None, report: dict | None = None, rows=None) -> int:
    """Write a pair dataset as GoPro-style folders: ``blur/``, ``sharp/``, ``psf/`` and ``params.jsonl``.

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

    Returns
    -------
    n : int
        Pairs written.
    """
    out = Path(out)
    ds = PairDataset(dataset, verify=verify)
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
    claim(out, EXPORT, overwrite=overwrite, create=False)
    made = not out.exists()
    with lock_output(out):
        # Again: another export may have finished into it between the claim and the lock.
        claim(out, EXPORT, overwrite=overwrite, create=False)
        try:
            n = _export_locked(ds, out, progress=progress, raw=raw, rebuilder=rebuilder, rows=rows)
        except BaseException:
            if made:  # the lock's folder only: a rerun starts as if it had never been made
                (out / LOCK_NAME).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    out.rmdir()
            raise
    return n


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
        if {p.name for p in path.iterdir()} <= {*_OWN_FOLDERS, "params.jsonl", LOCK_NAME}:
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


def _export_locked(ds, out: Path, *, progress: bool, raw=None, rebuilder=None, rows=None) -> int:
    """Build the export beside ``out`` (``.OUT.tmpPID``) and rename it into place; ``out`` is locked."""
    from tqdm.auto import tqdm

    import cv2

    _remove_leftovers(out)  # nobody else exports here while we hold the lock
    tmp = temporary_path(out)
    for sub in _EXPORT_FOLDERS + (("raw",) if raw else ()):
        (tmp / sub).mkdir(parents=True)
    n = 0
    try:
        with open(tmp / "params.jsonl", "w") as meta:
            keep = None if rows is None else {int(i) for i in rows}
            bar = tqdm(ds.table.iter_located(), total=len(ds), unit="pair", desc="exporting",
                       disable=not progress)
            for s, local, row in bar:
                if keep is not None and int(ds.table.offsets[s]) + local not in keep:
                    continue
                with ds.table.decoding(s, local):
                    name = row["id"].replace("/", "_")
                    params = json.loads(row["params"])
                    psf = None if row["psf"] is None else struct_array(row["psf"])
                (tmp / "blur" / f"{name}.png").write_bytes(row["blurred"]["bytes"])
                if row["sharp"] is not None:  # None: a test image without ground truth
                    (tmp / "sharp" / f"{name}.png").write_bytes(row["sharp"]["bytes"])
                if row.get("motion_mask") is not None:
                    _write_mask(tmp / "masks", name, row, s, local, ds)
                if row.get("psf_field") is not None:
                    with ds.table.decoding(s, local):
                        field = struct_array(row["psf_field"])
                    np.save(tmp / "psf" / f"{name}_field.npy", field)
                if psf is not None:
                    np.save(tmp / "psf" / f"{name}.npy", psf)
                    img16 = np.round(psf / max(float(psf.max()), 1e-12) * 65535).astype(np.uint16)
                    with native_noise_quiet():  # a failed write prints "libpng error: Write Error"
                        wrote = cv2.imwrite(str(tmp / "psf" / f"{name}.png"), img16)
                    if not wrote:  # OpenCV says only False
                        raise OSError(errno.EIO, "could not write the file (is the disk full?)",
                                      str(tmp / "psf" / f"{name}.png"))
                line = {"id": row["id"], "file": f"{name}.png", "source": row["source"], "seed": row["seed"],
                        "params": params}
                if row.get("gt_frames") is not None:  # every ground-truth frame, as stored (PNG)
                    (tmp / "gt_frames").mkdir(exist_ok=True)
                    line["gt_frames"] = [f"gt_frames/{name}_{k:03d}.png" for k in range(len(row["gt_frames"]))]
                    for file, frame in zip(line["gt_frames"], row["gt_frames"]):
                        (tmp / file).write_bytes(frame["bytes"])
                if rebuilder is not None and params.get("raw") is not None:
                    line["raw_file"] = "raw/" + _write_raw_row(tmp / "raw", name, row, params, psf, s, local,
                                                               ds, rebuilder, raw)
                meta.write(json.dumps(line) + "\n")
                n += 1
        # The new folder carries its own lock, so that ``out`` is never unlocked while it is swapped in.
        with lock_output(tmp):
            shutil.rmtree(out)
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return n
