"""Start-up of every generator: a one-item run of each command that writes pairs or kernels,
timed as a whole process (start to exit), against the interpreter alone and torch's import.

Issue 20's target is start-up under one second before the first pair, for any generator. Inputs
are made first, untimed: one 720x1280 photo, a 30-frame clip (`render-clip`), and a BGAN and a
UID model of two steps each (their `tiny` configs; the timing does not depend on what they
learnt). Every process reads compiled bytecode, as from an installed package.

Run: .venv/bin/python benchmarks/bench_startup.py [--rounds 3] [--no-write]
Writes the "Start-up of every generator" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks._common import machine_line, write_section  # noqa: E402


def _env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("BLURSYNTH_WORKERS", "PYTHONDONTWRITEBYTECODE")}
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return env


def _run(cmd, env, cwd) -> float:
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed: {done.stderr[-2000:]}")
    return wall


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="Print, do not touch RESULTS.md.")
    args = ap.parse_args(argv)
    from bench_blur import distinct_photos

    py = sys.executable
    bs = [py, "-m", "blursynth"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = _env(tmp)
        distinct_photos(tmp / "all", 4)
        (tmp / "photos").mkdir()
        shutil.copy(tmp / "all" / "p000.png", tmp / "photos" / "p000.png")
        import cv2

        (tmp / "small").mkdir()
        small = cv2.resize(cv2.imread(str(tmp / "all" / "p000.png")), (64, 64), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(tmp / "small" / "p000.png"), small)
        (tmp / "real").mkdir()
        for name in ("p001.png", "p002.png", "p003.png"):
            shutil.copy(tmp / "all" / name, tmp / "real" / name)
        prepare = [
            [*bs, "render-clip", "photos/p000.png", "--out", "clip.mp4", "--frames", "30", "--size", "360x640"],
            [*bs, "bgan", "train", "--sharp", "photos", "--real-blur", "real", "--out", "bgan", "--steps", "2",
             "--config", "tiny", "--patch", "64", "--perceptual", "none"],
            [*bs, "uid", "train", "--sharp", "photos", "--real-blur", "real", "--out", "uid", "--steps", "2",
             "--config", "tiny", "--patch", "64", "--perceptual", "none"],
        ]
        for cmd in prepare:
            _run(cmd, env, tmp)
        one = ["--workers", "1"]
        runs = {
            "python -c pass": [py, "-c", "pass"],
            # Ended as the commands end (os._exit: no interpreter teardown, which with torch loaded
            # costs about half a second more).
            "python -c 'import torch'": [py, "-c", "import os, torch; os._exit(0)"],
            "trajectories --n 1": [*bs, "trajectories", "--n", "1", "--out", "OUT", *one],
            "blur --psf-source fresh (1 pair)": [*bs, "blur", "photos", "--psf-source", "fresh", "--out", "OUT", *one],
            "blur --psf-source fresh --pipeline raw (1 pair)": [*bs, "blur", "photos", "--psf-source", "fresh",
                                                                "--pipeline", "raw", "--out", "OUT", *one],
            "blur --motion camera6d --crop 256x256 (1 pair)": [*bs, "blur", "photos", "--motion", "camera6d",
                                                               "--crop", "256x256", "--out", "OUT", *one],
            "frames-average --window 7 --max-pairs 1": [*bs, "frames-average", "clip.mp4", "--window", "7",
                                                        "--max-pairs", "1", "--out", "OUT", *one],
            "render-leaves --n 1 --size 256": [*bs, "render-leaves", "--n", "1", "--size", "256", "--out", "OUT"],
            "bgan blur (1 pair)": [*bs, "bgan", "blur", "photos", "--model", "bgan", "--out", "OUT", *one],
            "uid blur (1 pair)": [*bs, "uid", "blur", "photos", "--model", "uid", "--out", "OUT", *one],
            # The same on a 64x64 photo: the network's pass over a 720p photo is the pair's work,
            # about half a second on one core; on a thumbnail what is left is start-up.
            "bgan blur (1 pair, 64x64 photo)": [*bs, "bgan", "blur", "small", "--model", "bgan", "--out", "OUT",
                                                *one],
            "uid blur (1 pair, 64x64 photo)": [*bs, "uid", "blur", "small", "--model", "uid", "--out", "OUT", *one],
            # The learned blurs' other engine: their networks in torch (the GPU's, and the CPU's
            # before ONNX Runtime's), whose import is most of a second.
            "bgan blur --engine torch (1 pair, 64x64 photo)": [*bs, "bgan", "blur", "small", "--model", "bgan",
                                                               "--engine", "torch", "--out", "OUT", *one],
            "uid blur --engine torch (1 pair, 64x64 photo)": [*bs, "uid", "blur", "small", "--model", "uid",
                                                              "--engine", "torch", "--out", "OUT", *one],
        }
        for cmd in runs.values():  # untimed: each command's bytecode and Numba cache written once
            _run(cmd, env, tmp)
            shutil.rmtree(tmp / "OUT", ignore_errors=True)
        times = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, cmd in runs.items():
                times[name].append(_run(cmd, env, tmp))
                shutil.rmtree(tmp / "OUT", ignore_errors=True)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    judged = {name: t for name, t in med.items() if not name.startswith("python") and "--engine torch" not in name}
    rows = [
        f"`benchmarks/bench_startup.py`, {machine_line()}.",
        "",
        "A one-item run of each generator, whole processes from start to exit (`--workers 1`), medians "
        f"of {args.rounds} interleaved rounds; the first pair's own work is in them (a 720x1280 photo; "
        "frames-average: a 360x640 clip; the learned blurs: `tiny` models, on that photo and on a 64x64 "
        "one, in ONNX Runtime (their CPU default) and in torch).",
        "",
        "| run | wall s |",
        "| --- | ---: |",
        *[f"| {name} | {t:.2f} |" for name, t in med.items()],
        "",
        "Under one second (the target, for every generator in its default engine): "
        + ", ".join(name for name, t in judged.items() if t < 1)
        + ". Over: " + (", ".join(name for name, t in judged.items() if t >= 1) or "none") + ".",
    ]
    text = "\n".join(rows)
    print(text)
    if not args.no_write:
        write_section("Start-up of every generator", text)


if __name__ == "__main__":
    main()
