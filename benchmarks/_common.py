"""Helpers for benchmarks: timing medians, peak memory of a command, RESULTS.md sections, and the
trainer experiments' runs and scores."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def median_time(fn, *, repeat=5, warmup=1):
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def run_command(args, *, env=None, memory=True):
    """Run a command; return (wall seconds, peak RSS in MB over it and its children).

    Watching the memory polls the process tree every 50 ms, which costs CPU the
    command would otherwise have; with ``memory=False`` the command runs alone
    (peak RSS is then None), for wall times.
    """
    import psutil

    if not memory:
        t = time.perf_counter()
        done = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - t
        if done.returncode != 0:
            raise RuntimeError(f"{args} failed: {done.stderr.decode()[-2000:]}")
        return wall, None
    t = time.perf_counter()
    proc = psutil.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [proc] + proc.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, peak / 1e6


def machine_line() -> str:
    load = os.getloadavg()[0]
    return (
        f"{datetime.date.today()} on {platform.machine()} with {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average at start {load:.2f}"
    )


def write_section(title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section of RESULTS.md."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nEach section is written by the script it names; rerun it to refresh.\n"
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip() + "\n\n" + section
    RESULTS.write_text(text.rstrip() + "\n")


# Trainer experiments (bench_raw_train, bench_scene_train): the same small-config runs on two
# training sets, then `blursynth evaluate` of each run on held-out sets. Shared here so the two
# experiments run and score their networks the same way.

#: Environment of the commands the experiments start (they set OMP_NUM_THREADS in it).
ENV = dict(os.environ)
#: Trainer settings: the best ones of the "Trainer" section (L1 content loss, no critic).
TRAIN_OPTS = ["--config", "small", "--crop", 64, "--batch-size", 4, "--perceptual", "none",
              "--critic-steps", 0, "--init", "identity", "--lr", "5e-4", "--dropout", 0,
              "--precision", "bf16", "--val-fraction", 0, "--val-count", 0, "--workers", 1,
              "--quiet"]


def cli(*args) -> float:
    """Run ``blursynth ARGS`` in the repository (stderr dropped with --quiet); its wall seconds."""
    import sys

    cmd = [sys.executable, "-m", "blursynth", *map(str, args)]
    print("$", " ".join(cmd[2:]), flush=True)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=ENV,
                   stderr=subprocess.DEVNULL if "--quiet" in args else None)
    return time.perf_counter() - t


def train_runs(work: Path, sets: dict, *, steps: int, seeds, parallel: bool) -> dict:
    """(training set name, seed) -> (run folder, wall seconds): one small-config run of
    ``TRAIN_OPTS`` per set (``sets``: name -> dataset folder, in table order) and trainer seed,
    in ``work/steps{steps}/seed{seed}/run{i}``. A finished run (its wall.json) is kept; an
    unfinished one stops the script. ``parallel``: the runs of one seed at once, so they see the
    same load."""
    import sys

    pending, walls = [], {}
    for seed in seeds:
        group = []
        for i, (name, data) in enumerate(sets.items()):
            out = work / f"steps{steps}" / f"seed{seed}" / f"run{i}"
            if (out / "wall.json").exists():
                walls[name, seed] = (out, json.loads((out / "wall.json").read_text())["seconds"])
                continue
            if out.exists():
                raise SystemExit(f"{out} holds an unfinished run; delete it to rerun.")
            group.append(((name, seed), out, [
                "train", "--data", data, "--out", out, "--steps", steps, "--val-every", steps,
                "--checkpoint-every", steps, *TRAIN_OPTS, "--seed", seed]))
        pending.extend([group] if parallel else [[p] for p in group])
    for group in pending:
        procs = []
        for key, out, a in group:
            print("$", " ".join(map(str, a)), flush=True)
            procs.append((key, out, time.perf_counter(), subprocess.Popen(
                [sys.executable, "-m", "blursynth", *map(str, a)], cwd=ROOT, env=ENV,
                stderr=subprocess.DEVNULL)))
        for key, out, t0, proc in procs:
            if proc.wait() != 0:
                raise SystemExit(f"training {out} failed")
            walls[key] = (out, time.perf_counter() - t0)
            (out / "wall.json").write_text(json.dumps({"seconds": walls[key][1]}))
    names = list(sets)
    return {key: walls[key] for key in sorted(walls, key=lambda k: (k[1], names.index(k[0])))}


def train_wall(runs: dict, seeds, parallel: bool) -> float:
    """Training wall seconds of ``train_runs``' runs: with ``parallel`` the slowest run of each
    seed (they ran side by side), else the sum."""
    per_seed = [[w for (_, s), (_, w) in runs.items() if s == seed] for seed in seeds]
    return sum(max(ws) if parallel else sum(ws) for ws in per_seed)


def evaluate_run(run: Path, data: Path) -> dict:
    """`blursynth evaluate`'s JSON of ``run`` on ``data`` (kept in the run folder, with the
    command's wall seconds as ``wall_s``)."""
    js = run / f"eval_{data.name}.json"
    if not js.exists():
        seconds = cli("evaluate", "--model", run, "--data", data, "--json", js, "--quiet")
        js.write_text(json.dumps(dict(json.loads(js.read_text()), wall_s=seconds)))
    return json.loads(js.read_text())


def source_line() -> str:
    """The commit measured, and whether the package had uncommitted edits (a shared tree)."""
    def git(*a):
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--", "blursynth")
    return f"commit {git('rev-parse', '--short', 'HEAD')}" + (
        " with uncommitted edits under blursynth/ (other work in progress)" if dirty else "")


def compare_db(d: float, other: str) -> str:
    """``d`` dB in words against ``other`` (within 0.1 dB counts as level)."""
    if abs(d) < 0.1:
        return f"within 0.1 dB of {other} ({d:+.2f})"
    return f"{abs(d):.2f} dB {'above' if d > 0 else 'below'} {other}"


def fmt_score(score: dict, base: dict | None = None) -> str:
    """'PSNR / SSIM', with the PSNR gain over ``base`` in brackets when given."""
    text = f"{score['psnr']:.2f} / {score['ssim']:.3f}"
    return text + (f" ({score['psnr'] - base['psnr']:+.2f})" if base else "")


def compare_runs(runs: dict, sets: dict, tests, names, *, steps: int, seeds, diff_label: str):
    """Score the trainer experiments' runs ``{(name, seed): (run, wall_s)}`` on each test set
    ``sets[k][0]`` and build the table rows: the blurred input, every run, the mean of seeds,
    and ``names[1]`` minus ``names[0]`` per test set (the mean, then each seed's).

    Returns a dict: ``rows`` (markdown lines), ``scores``, ``first`` (one run's reports),
    ``blurred``, ``mean``, ``diff``, ``per_seed`` and ``eval_min``.
    """
    import statistics

    scores = {key: {k: evaluate_run(run, sets[k][0]) for k in tests}
              for key, (run, _) in runs.items()}
    eval_min = sum(s[k].get("wall_s", 0.0) for s in scores.values() for k in tests) / 60
    first = next(iter(scores.values()))
    blurred = {k: first[k]["blurred"] for k in tests}
    mean = {(n, k): {m: statistics.mean(scores[n, s][k]["deblurred"][m] for s in seeds)
                     for m in ("psnr", "ssim")} for n in names for k in tests}
    rows = ["| blurred input (no model) | - | - | - | "
            + " | ".join(fmt_score(blurred[k]) for k in tests) + " |"]
    for (name, seed), (run, wall) in runs.items():
        rows.append(f"| {name} | {seed} | {steps} | {wall / 60:.1f} | "
                    + " | ".join(fmt_score(scores[name, seed][k]["deblurred"], blurred[k])
                                 for k in tests) + " |")
    if len(seeds) > 1:
        for n in names:
            rows.append(f"| {n}, mean of seeds | | | | "
                        + " | ".join(fmt_score(mean[n, k], blurred[k]) for k in tests) + " |")
    diff = {k: mean[names[1], k]["psnr"] - mean[names[0], k]["psnr"] for k in tests}
    # Per seed, the second minus the first: its range against the mean says how firm it is.
    per_seed = {k: [scores[names[1], s][k]["deblurred"]["psnr"]
                    - scores[names[0], s][k]["deblurred"]["psnr"] for s in seeds]
                for k in tests}
    rows.append(f"| {diff_label}, PSNR dB (per seed) | | | | "
                + " | ".join(f"{diff[k]:+.2f} ({', '.join(f'{d:+.2f}' for d in per_seed[k])})"
                             for k in tests) + " |")
    return {"rows": rows, "scores": scores, "first": first, "blurred": blurred, "mean": mean,
            "diff": diff, "per_seed": per_seed, "eval_min": eval_min}
