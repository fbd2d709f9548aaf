"""Export of a pair dataset as GoPro-style folders (``blur/``, ``sharp/``, ``psf/``, ``params.jsonl``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from .outputs import OutputKind, claim, temporary_path
from .reader import PairDataset

_EXPORT_FOLDERS = ("blur", "sharp", "psf")

#: An export folder: --overwrite replaces an earlier export only, never a folder of someone's own files.
EXPORT = OutputKind(
    what="export",
    is_file="--out {out} is a file; expected a folder.",
    foreign="--out {out} is not an earlier export (it holds {name}); --overwrite replaces only blur/, "
            "sharp/, psf/ and params.jsonl folders; choose a new folder.",
    unmarked="--out {out} is not an earlier export (it has no params.jsonl); --overwrite replaces only blur/, "
             "sharp/, psf/ and params.jsonl folders; choose a new folder.",
    markers=("params.jsonl",),
    own_when_marked=lambda name: name in _EXPORT_FOLDERS,
    exists="--out {out} exists; choose a new folder or pass --overwrite.",
)


def export_png(dataset, out, *, progress: bool = True, overwrite: bool = False) -> int:
    """Write a pair dataset as GoPro-style folders: ``blur/``, ``sharp/``, ``psf/`` and ``params.jsonl``.

    Blurred and sharp images are written as PNG under their row id (``/`` in ids
    becomes ``_``); a PSF, where the pair has one, as ``psf/<id>.npy`` (float32,
    exact) and ``psf/<id>.png`` (16-bit, scaled to its peak, to look at). The
    folder is built under a temporary name and renamed when complete.

    Returns
    -------
    n : int
        Pairs written.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    ds = PairDataset(dataset)
    if out.resolve() == ds.path.resolve() or out.resolve() in ds.path.resolve().parents:
        raise BadInputError(f"--out {out} is or holds the dataset {dataset} being exported; choose another folder.")
    # The export is built beside ``out`` and renamed into place: nothing is made here.
    claim(out, EXPORT, overwrite=overwrite, create=False)
    tmp = temporary_path(out)
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in _EXPORT_FOLDERS:
        (tmp / sub).mkdir(parents=True)
    import cv2

    n = 0
    try:
        with open(tmp / "params.jsonl", "w") as meta:
            for row in tqdm(ds.table.iter_rows(), total=len(ds), unit="pair", desc="exporting", disable=not progress):
                name = row["id"].replace("/", "_")
                (tmp / "blur" / f"{name}.png").write_bytes(row["blurred"]["bytes"])
                (tmp / "sharp" / f"{name}.png").write_bytes(row["sharp"]["bytes"])
                if row["psf"] is not None:
                    psf = np.asarray(row["psf"]["values"], np.float32).reshape(row["psf"]["shape"])
                    np.save(tmp / "psf" / f"{name}.npy", psf)
                    img16 = np.round(psf / max(float(psf.max()), 1e-12) * 65535).astype(np.uint16)
                    cv2.imwrite(str(tmp / "psf" / f"{name}.png"), img16)
                meta.write(json.dumps({"id": row["id"], "file": f"{name}.png", "source": row["source"],
                                       "seed": row["seed"], "params": json.loads(row["params"])}) + "\n")
                n += 1
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return n
