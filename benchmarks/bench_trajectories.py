"""Trajectory + PSF throughput against plain Python, and `blursynth trajectories` end to end.

Run: .venv/bin/python benchmarks/bench_trajectories.py [--n 100000] [--quick]
Writes the "Trajectories and kernel banks" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_line, median_time, run_command, write_section  # noqa: E402
from blursynth.kernelbank import KernelBankConfig, bank_chunk  # noqa: E402
from blursynth.ops.trajectory import TrajectoryConfig  # noqa: E402
from tests import naive  # noqa: E402

EXPOSURES = (0.01, 0.1, 0.5, 1.0)


def plain_python_set(i):
    """The same streams, model and rasterization in plain Python (the baseline)."""
    config = TrajectoryConfig()
    traj, _, _ = naive.trajectory(0, i, config.n_samples, config.length_px)
    return [naive.rasterize(traj, f) for f in EXPOSURES]


def stage_costs(n):
    """Microseconds per set of each stage of bank_chunk, one core, medians of 5 rounds."""
    import io

    import pyarrow.parquet as pq

    from blursynth._keyrng import keyed_draws
    from blursynth.ops.psf import _rasterize_many, exposure_samples
    from blursynth.ops.trajectory import sample_trajectories

    tc = TrajectoryConfig()
    counts = np.array([exposure_samples(tc.n_samples, f) for f in EXPOSURES], np.int64)
    trajs, _, _ = sample_trajectories(tc, 0, range(n))
    config = KernelBankConfig(n=n)
    table = bank_chunk(np.arange(n), config)

    def numpy_draws():  # the previous design: a NumPy generator per sample, float32 normals
        buf = np.empty((tc.n_samples - 1, 2), np.float32)
        for i in range(n):
            g = np.random.default_rng([0, i])
            g.random(5)
            g.standard_normal(dtype=np.float32, out=buf)

    def parquet():
        pq.write_table(table, io.BytesIO(), compression="zstd", use_dictionary=False,
                       write_statistics=False, row_group_size=256)

    work = {
        "NumPy: a generator per sample + 3,998 float32 normals (previous design, draws only)": numpy_draws,
        "keyed stream: 3,998 ziggurat normals (draws only)": lambda: keyed_draws(0, 0, 3998 * n),
        "trajectory: keyed draws + integration": lambda: sample_trajectories(tc, 0, range(n)),
        "4 PSFs: rasterization": lambda: _rasterize_many(trajs, counts, 0, 0, 63),
        "whole row chunk (trajectory, PSFs, Arrow table)": lambda: bank_chunk(np.arange(n), config),
        "Parquet write of those rows (zstd)": parquet,
    }
    for fn in work.values():
        fn()  # warm-up: compile or load the Numba cache
    return {name: median_time(fn, repeat=5) / n * 1e6 for name, fn in work.items()}


SPIN = "import time; t = time.perf_counter(); x = 0\nfor i in range(10_000_000): x += i\nprint(time.perf_counter() - t)"


def host_speed():
    """Seconds of a fixed pure-Python loop, alone and as two copies at once.

    The machine is a share of a host: how fast one vCPU runs, and whether the
    two run at once at full speed, moves with the host's load. Every figure of
    this section is read against these two numbers.
    """
    import subprocess

    def run(k):
        procs = [subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True) for _ in range(k)]
        return max(float(p.communicate()[0]) for p in procs)

    return run(1), run(2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    args = ap.parse_args()
    n_plain = 5 if args.quick else 20
    n_fast = 2000 if args.quick else 10000

    t = time.perf_counter()
    for i in range(n_plain):
        plain_python_set(i)
    plain_rate = n_plain / (time.perf_counter() - t)

    config = KernelBankConfig(n=n_fast)
    bank_chunk(np.arange(4), config)  # compile / load the Numba cache
    fast_time = median_time(lambda: bank_chunk(np.arange(n_fast), config), repeat=3)
    fast_rate = n_fast / fast_time

    stages = stage_costs(2560 if not args.quick else 512)
    spin_one, spin_two = host_speed()

    work = Path(tempfile.mkdtemp())
    blursynth = str(Path(sys.executable).with_name("blursynth"))
    rows = []
    try:
        for n, workers in ((args.n // 10, 2), (args.n, 1), (args.n, 2)):
            out = work / f"bank{n}_{workers}"
            cmd = [blursynth, "trajectories", "--n", str(n), "--out", str(out), "--workers", str(workers)]
            walls = []
            for _ in range(2):  # wall time from runs left alone; the memory from a watched one
                walls.append(run_command(cmd, memory=False)[0])
                shutil.rmtree(out)
            _, peak = run_command(cmd)
            shutil.rmtree(out)
            wall = min(walls)
            rows.append((n, workers, wall, n / wall, peak))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        f"`benchmarks/bench_trajectories.py`, {machine_line()}.",
        "",
        "Trajectory (2000 samples, 60 px) + 4 PSFs (exposures 1/100, 1/10, 1/2, 1), one process:",
        "",
        "| implementation | sets/s | ratio |",
        "| --- | ---: | ---: |",
        f"| plain Python, same model and splat (tests/naive.py) | {plain_rate:.1f} | 1.0x |",
        f"| blursynth (keyed streams + Numba cores, 1 core) | {fast_rate:,.0f} | {fast_rate / plain_rate:,.0f}x |",
        "",
        "Where one set's time goes, one core (microseconds per trajectory + 4 PSFs, medians of 5 rounds):",
        "",
        "| stage | us per set |",
        "| --- | ---: |",
        *[f"| {name} | {us:.1f} |" for name, us in stages.items()],
        "",
        "`blursynth trajectories` end to end (Parquet shards, manifest, sha256): wall time (best of two runs",
        "left alone) and peak RSS of the command and its workers together (from a third, watched run):",
        "",
        f"Host speed at the time: a fixed pure-Python loop took {spin_one:.2f} s alone and {spin_two:.2f} s as",
        "two copies at once (equal times: both vCPUs at full speed; double: one core's worth).",
        "",
        "| --n | --workers | wall s | sets/s | peak RSS MB |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, workers, wall, rate, peak in rows:
        lines.append(f"| {n:,} | {workers} | {wall:.1f} | {rate:,.0f} | {peak:.0f} |")
    body = "\n".join(lines)
    print(body)
    if not args.quick:
        write_section("Trajectories and kernel banks", body)


if __name__ == "__main__":
    main()
