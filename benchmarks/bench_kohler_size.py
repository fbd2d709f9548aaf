"""Köhler-layout rows at a realistic size: the import's time and peak memory, and the time to
read and score one row (every ground-truth frame at full size in one row).
Run: .venv/bin/python benchmarks/bench_kohler_size.py [--side 800] [--frames 30] [--sequences 2]
     [--workdir benchmarks/out/kohler_size] [--no-write]
Writes the "Evaluation: Köhler rows at full size" section of benchmarks/RESULTS.md.

The images are a scikit-image photo resized to ``--side`` square, shifted one pixel further per
frame along a path (the frames) and their mean (the blurred image), saved as PNG in the
``Blurry<i>_<j>`` / ``GroundTruth<i>_<j>_<k>`` names ``dataset import --layout kohler`` reads.
The frame count is a parameter, not the real set's (its sequences are not in this repository).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (  # noqa: E402
    ROOT, machine_line, run_command, source_line, write_section)

SECTION = "Evaluation: Köhler rows at full size"


def build(root: Path, side: int, frames: int, sequences: int) -> None:
    """The Köhler layout under ``root``: ``sequences`` trajectories of image 1."""
    import cv2
    from skimage import data

    photo = cv2.resize(data.astronaut(), (side + frames, side), interpolation=cv2.INTER_AREA)
    (root / "BlurryImages").mkdir(parents=True, exist_ok=True)
    (root / "GroundTruth").mkdir(parents=True, exist_ok=True)
    for j in range(1, sequences + 1):
        # frame k: the photo k px further along (every sequence alike)
        shots = [np.ascontiguousarray(photo[:, k:k + side]) for k in range(frames)]
        for k, shot in enumerate(shots, 1):
            cv2.imwrite(str(root / "GroundTruth" / f"GroundTruth1_{j}_{k}.png"), shot[:, :, ::-1])
        blurred = np.rint(np.mean(shots, axis=0)).astype(np.uint8)
        cv2.imwrite(str(root / "BlurryImages" / f"Blurry1_{j}.png"), blurred[:, :, ::-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=800, help="Image side in px.")
    ap.add_argument("--frames", type=int, default=30, help="Ground-truth frames per sequence.")
    ap.add_argument("--sequences", type=int, default=2)
    ap.add_argument("--workdir", default=str(ROOT / "benchmarks" / "out" / "kohler_size"))
    ap.add_argument("--no-write", action="store_true", help="Print the section only.")
    args = ap.parse_args()
    start = machine_line()
    work = Path(args.workdir)
    layout, out = work / "layout", work / "imported"
    if not layout.exists():
        build(layout, args.side, args.frames, args.sequences)
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    wall, peak = run_command([sys.executable, "-m", "blursynth", "dataset", "import", str(layout),
                              "--layout", "kohler", "--out", str(out), "--workers", "1"])
    from blursynth.dataset.reader import PairDataset
    from blursynth.train.protocols import score

    ds = PairDataset(out)
    reads, kohler, plain = [], [], []
    for i in range(len(ds)):
        t = time.perf_counter()
        row = ds[i]
        reads.append(time.perf_counter() - t)
        for name, into in (("plain", plain), ("kohler", kohler)):
            t = time.perf_counter()
            score(name, row["blurred"], row)
            into.append(time.perf_counter() - t)
    size = sum(p.stat().st_size for p in out.rglob("*.parquet")) / 1e6
    med = statistics.median
    body = "\n".join([
        f"`benchmarks/bench_kohler_size.py`, {start}; {source_line()}; load average at the end "
        f"{os.getloadavg()[0]:.2f} (the machine was shared with other sessions' work).",
        "",
        f"{args.sequences} sequences of {args.frames} ground-truth frames, {args.side}x"
        f"{args.side} (a frame count chosen here, not the real set's), imported with `dataset "
        f"import --layout kohler --workers 1`: {wall:.1f} s, peak memory {peak:.0f} MB, "
        f"{size:.0f} MB of Parquet (one row per row group). Per row, median: reading it "
        f"(`PairDataset[i]`, frames left encoded until read) {med(reads):.3f} s; scoring the "
        f"blurred image under `plain` {med(plain):.2f} s, under `kohler` (every frame decoded "
        f"and registered by gain and translation) {med(kohler):.2f} s.",
    ])
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
