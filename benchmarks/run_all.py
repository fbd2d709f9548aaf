"""Run every benchmark in turn (each writes its own section of benchmarks/RESULTS.md).

Run: .venv/bin/python benchmarks/run_all.py [--only NAME ...]
The machines are shared and noisy: every figure that matters is a ratio against a baseline
measured in the same run. The whole set takes about an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["bench_trajectories", "bench_blur", "bench_raw", "bench_frames", "bench_train", "bench_bgan", "bench_uid", "bench_train_quality",
         "bench_build"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=None, help="benchmark names, e.g. bench_blur")
    args = ap.parse_args()
    names = [n for n in ORDER if (HERE / f"{n}.py").exists() and (args.only is None or n in args.only)]
    failed = []
    for name in names:
        print(f"=== {name}", flush=True)
        t = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / f"{name}.py")])
        print(f"=== {name}: exit {rc} after {time.perf_counter() - t:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
