"""The RAW path's cost per 720p pair beside the RGB path's, in one run.

Run: .venv/bin/python benchmarks/bench_raw.py [--rounds 5] [--no-write]
Writes the "RAW path" section of benchmarks/RESULTS.md.

One 720x1280 photo (skimage's astronaut, resized) and one 65x65 trajectory PSF, rendered into a
pair by `render_pair` (the RGB path) and by `render_raw_pair` (the RAW path: unprocess, blur in
camera space, clip, mosaic, noise, demosaic, develop; the sharp image through the same chain
without blur and noise), both with noise on and no JPEG, interleaved in the same rounds so that
the ratio holds under the load of a shared machine. The issue's target: the RAW path at most
1.5x the RGB path's time per pair.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_line, write_section  # noqa: E402
from benchmarks.bench_blur import interleaved, photo_720p, trajectory_psf  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="Print, do not touch RESULTS.md.")
    args = ap.parse_args(argv)

    import torch

    from blursynth.ops.blur import render_pair, render_raw_pair
    from blursynth.ops.raw import draw_raw_params

    photo = photo_720p()
    psf = trajectory_psf(1.0)
    shot, read = 0.002, 0.003
    methods = {
        "RGB path (render_pair)": lambda: render_pair(
            photo, psf, shot_noise=shot, read_noise=read, noise_rng=np.random.default_rng(0)),
    }
    for demosaic in ("bilinear", "malvar"):
        raw = draw_raw_params(np.random.default_rng(1), noise=(shot, read), demosaic=demosaic)
        methods[f"RAW path, {demosaic} (render_raw_pair)"] = (
            lambda raw=raw: render_raw_pair(photo, psf, raw, noise_rng=np.random.default_rng(0)))
    med = interleaved(methods, args.rounds)
    base = med["RGB path (render_pair)"]
    rows = [f"| {name} | {t * 1e3:.0f} | {t / base:.2f}x |" for name, t in med.items()]
    text = "\n".join([
        f"Measured {machine_line()}; torch {torch.__version__}, {torch.get_num_threads()} "
        f"thread(s); medians of {args.rounds} interleaved rounds.",
        "",
        "One 720x1280 RGB pair (blurred and sharp) from a 65x65 trajectory PSF, noise on "
        f"(shot {shot}, read {read}), no JPEG. Target from the issue: the RAW path at most 1.5x "
        "the RGB path.",
        "",
        "| path | ms per pair | vs RGB |",
        "| --- | ---: | ---: |",
        *rows,
    ])
    print(text)
    if not args.no_write:
        write_section("RAW path", text)


if __name__ == "__main__":
    main()
