"""The RAW path's cost per 720p pair beside the RGB path's, in one run.

Run: .venv/bin/python benchmarks/bench_raw.py [--rounds 5] [--no-write]
Writes the "RAW path" section of benchmarks/RESULTS.md.

One 720x1280 photo (skimage's astronaut, resized) and one 65x65 trajectory PSF, rendered into a
pair by `render_pair` (the RGB path) and by `render_raw_pair` (the RAW path: unprocess, blur in
camera space, clip, mosaic, noise, demosaic, develop; the sharp image through the same chain
without blur and noise), both with noise on and no JPEG, interleaved in the same rounds so that
the ratio holds under the load of a shared machine; once on every thread, once on one (torch and
Numba), which measures the work without the waits a loaded machine adds to parallel steps. The
issue's target: the RAW path at most 1.5x the RGB path's time per pair. Then each step of both
paths alone on one thread (best of the rounds), which says what the time goes to.
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
    med1 = one_thread(lambda: interleaved(methods, args.rounds))
    base, base1 = med["RGB path (render_pair)"], med1["RGB path (render_pair)"]
    rows = [f"| {name} | {t * 1e3:.0f} | {t / base:.2f}x | {med1[name] * 1e3:.0f} | "
            f"{med1[name] / base1:.2f}x |" for name, t in med.items()]
    text = "\n".join([
        f"Measured {machine_line()}; torch {torch.__version__}, {torch.get_num_threads()} "
        f"thread(s); medians of {args.rounds} interleaved rounds.",
        "",
        "One 720x1280 RGB pair (blurred and sharp) from a 65x65 trajectory PSF, noise on "
        f"(shot {shot}, read {read}), no JPEG. Target from the issue: the RAW path at most 1.5x "
        "the RGB path.",
        "",
        f"| path | ms per pair, {torch.get_num_threads()} thread(s) | vs RGB | ms per pair, "
        "1 thread | vs RGB |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
    ])
    text += "\n\n" + step_table(photo, psf, shot, read, args.rounds) + "\n\n" + NOTES
    print(text)
    if not args.no_write:
        write_section("RAW path", text)


NOTES = """\
Before the kernels the RAW path's per-pixel steps were NumPy passes: 240 ms (bilinear) and 316 ms
(Malvar) per pair against 64 ms for the RGB path, 3.75x and 4.93x, on this machine at a load near
1. On one thread the old steps cost: decode 7 ms, unprocess 24, clip and mosaic 7, the noise
draw 10, add noise and clip 2, gains 0.2, demosaic 12 (bilinear), the highlight inverse 32 (52
bisection steps over whole-array temporaries), colour matrix 7, transposes 3, per image developed.
Now they are the Numba kernels of `blursynth/ops/_raw_kernels.py`: decode and unprocess in one
pass straight to the convolution's planes; clip, mosaic, noise and quantisation in one; gains on
the mosaic; then by bands of rows demosaic, the highlight inverse (only where the grey is above the knee, bisected only below
white) and the colour matrix, written as the planes `encode_planes` reads. The bytes are those of
the NumPy steps (tests/test_raw_kernels.py compares them bit for bit).

What is left is what both paths share or cannot drop: the convolution (the same three planes in
both), the normal draws (the RAW path draws a third of the RGB path's, one per Bayer site, which
is why it comes out cheaper), and the 8-bit encoder, which the RAW path runs twice: its sharp
image is developed too, while the RGB path's sharp image is the photo itself. Of the develop step,
the highlight inverse is most: 52 exact bisection steps per pixel above the knee, about 0.2 us
each on one thread here (1.5% of this photo's pixels), 0.1 us when there are many. It grows with
the share of near-white pixels: with every code of this photo raised by 60 (23% above the knee)
one develop takes 23 ms instead of 4, about 1.4x the RGB path per pair on one thread. On this
shared 2-core machine other jobs' load makes parallel steps wait for a core (the 2-thread times
above are then above the 1-thread ones); the ratios come from interleaved rounds."""


def step_table(photo, psf, shot, read, rounds):
    """Each step of one 720p pair alone, both paths, on one thread: the best ms of ``rounds`` calls.

    One thread and the best time, because on a loaded machine a parallel step waits for
    whichever of its threads the scheduler left out (times then come in multiples of its slice).
    """
    return one_thread(lambda: _step_table(photo, psf, shot, read, rounds))


def one_thread(fn):
    """``fn()`` with torch and Numba on one thread each."""
    import numba
    import torch

    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])


def _step_table(photo, psf, shot, read, rounds):
    import time

    import torch

    from blursynth.ops import raw as rawops
    from blursynth.ops.blur import _pad_photo
    from blursynth.ops.color import CameraResponse
    from blursynth.ops.convolve import convolve_padded
    from blursynth.ops.degrade import add_sensor_noise, noise_field
    from blursynth.ops.encode8 import encode_planes

    crf = CameraResponse.parse("gamma:2.2")
    table = crf.decode_table()
    r = psf.shape[0] // 2
    padded = _pad_photo(photo, r, "reflect")
    h, w = photo.shape[:2]

    def ms(fn):
        fn()
        best = float("inf")
        for _ in range(rounds):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        return best * 1e3

    rgb_planes = np.ascontiguousarray(table[padded].transpose(2, 0, 1))
    rgb_blur = convolve_padded(torch.from_numpy(rgb_planes)[None], psf)[0].numpy()
    field3 = noise_field(rgb_blur.shape, np.random.default_rng(0))
    rgb = [
        ("decode (pad, table)", ms(lambda: table[_pad_photo(photo, r, "reflect")])),
        ("convolve (3 planes)", ms(lambda: convolve_padded(torch.from_numpy(rgb_planes)[None], psf))),
        ("noise field (3 x 720 x 1280 normals)",
         ms(lambda: noise_field(rgb_blur.shape, np.random.default_rng(0)))),
        ("add noise", ms(lambda: add_sensor_noise(rgb_blur, shot=shot, read=read, noise=field3))),
        ("encode_planes (blurred)", ms(lambda: encode_planes(crf, rgb_blur))),
    ]
    rows = []
    for demosaic in ("bilinear", "malvar"):
        p = rawops.RawParams.from_dict(rawops.draw_raw_params(
            np.random.default_rng(1), noise=(shot, read), demosaic=demosaic))
        cam = rawops.unprocess_uint8(padded, table, p)
        blurred = convolve_padded(torch.from_numpy(cam)[None], psf)[0].numpy().transpose(1, 2, 0)
        window = cam[:, r:-r, r:-r].transpose(1, 2, 0)
        field = noise_field((h, w), np.random.default_rng(0))
        mos = rawops.sensor_readout(blurred, p, noise=field)
        lin = rawops.develop_planes(mos, p)
        steps = [
            ("decode + unprocess (pad, unprocess_uint8)",
             ms(lambda: rawops.unprocess_uint8(_pad_photo(photo, r, "reflect"), table, p))),
            ("convolve (3 planes)", ms(lambda: convolve_padded(torch.from_numpy(cam)[None], psf))),
            ("noise field (720 x 1280 normals)",
             ms(lambda: noise_field((h, w), np.random.default_rng(0)))),
            ("clip, mosaic, noise, clip (sensor_readout, field given)",
             ms(lambda: rawops.sensor_readout(blurred, p, noise=field))),
            ("gains, demosaic, highlights, colour matrix (develop_planes, blurred)",
             ms(lambda: rawops.develop_planes(mos, p))),
            ("encode_planes (blurred)", ms(lambda: encode_planes(crf, lin))),
            ("sharp: readout + develop_planes + encode_planes",
             ms(lambda: encode_planes(crf, rawops.develop_planes(
                 rawops.sensor_readout(window, p, noisy=False), p)))),
        ]
        rows.append((demosaic, steps))
    lines = ["Each step alone, on one thread (torch and Numba), best of the rounds: what each "
             "costs in CPU time. The pairs above run on every thread and also count the glue "
             "between steps.", "",
             "| path | step | ms |", "| --- | --- | ---: |"]
    lines += [f"| RGB | {name} | {t:.1f} |" for name, t in rgb]
    for demosaic, steps in rows:
        lines += [f"| RAW, {demosaic} | {name} | {t:.1f} |" for name, t in steps]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
