"""Scale-out: 1 vs 2 local workers vs Ray for the blur and frame-average recipes, as whole
`blursynth build` processes (what a user runs); Ray's overhead per shard; and the DeblurGAN-Comb
recipe end to end at its small setting.

Run: .venv/bin/python benchmarks/bench_build.py [--pairs 400] [--rounds 3] [--comb] [--comb-steps 3000]
Writes the "Recipes and scale-out" section of benchmarks/RESULTS.md (and "DeblurGAN-Comb recipe"
with --comb).
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

from benchmarks._common import machine_line, write_section  # noqa: E402
from blursynth.build import plan_build, run_build  # noqa: E402
from blursynth.dataset import PAIR_SCHEMA, Executor, WriteOptions, write_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _build_command(recipe, out, limit, sets, workers, address=None):
    cmd = [sys.executable, "-m", "blursynth", "build", str(ROOT / "recipes" / f"{recipe}.toml"), "--out", str(out),
           "--limit", str(limit), "--workers", str(workers)]
    for s in sets:
        cmd += ["--set", s]
    if address:
        cmd += ["--executor", "ray", "--address", address]
    return cmd


def _env():
    """This environment, less a set ``$BLURSYNTH_WORKERS`` and ``$PYTHONDONTWRITEBYTECODE`` (the
    processes read compiled bytecode, as from an installed package)."""
    return {k: v for k, v in os.environ.items() if k not in ("BLURSYNTH_WORKERS", "PYTHONDONTWRITEBYTECODE")}


def _time_build(recipe, step, out, limit, sets, workers, address=None):
    """Wall seconds of a whole `blursynth build` process that makes ``step`` again (every other
    step of ``out`` is complete, so the command checks it and moves on), and the step's rows."""
    from blursynth.dataset import load_manifest

    shutil.rmtree(out / step, ignore_errors=True)
    t = time.perf_counter()
    done = subprocess.run(_build_command(recipe, out, limit, sets, workers, address), env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"build {recipe} --workers {workers} failed: {done.stderr[-2000:]}")
    return wall, load_manifest(out / step)["num_rows"]


def _start_ray():
    """A local Ray cluster of 2 CPUs started by the `ray` CLI, as a cluster a user connects to
    (``--address``); its address."""
    ray_cli = Path(sys.executable).with_name("ray")
    subprocess.run([str(ray_cli), "start", "--head", "--num-cpus", "2", "--include-dashboard=false",
                    "--disable-usage-stats"], check=True, capture_output=True, env=_env())
    return "auto"


def _stop_ray():
    subprocess.run([str(Path(sys.executable).with_name("ray")), "stop", "--force"], capture_output=True)


def _tiny_rows(start, stop):
    import numpy as np

    from blursynth.dataset import pair_row

    for i in range(start, stop):
        img = np.full((8, 8, 3), i % 256, np.uint8)
        yield pair_row(index=i, blurred=img, sharp=img, psf=None, source="real", seed=0, params={}, fingerprint="o")


def ray_overhead(work: Path, n_shards: int = 48):
    import ray

    def run(mode, out):
        t = time.perf_counter()
        write_dataset(out, kind="pairs", schema=PAIR_SCHEMA, n_items=n_shards, shard_size=1,
                      make_rows=_tiny_rows, fingerprint="o", command={}, progress=False,
                      options=WriteOptions(executor=Executor(mode)))
        return time.perf_counter() - t

    local = run("local", work / "ov-local")
    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    init = time.perf_counter() - t
    run("ray", work / "ov-warm")  # start the workers
    remote = run("ray", work / "ov-ray")
    return local, remote, init


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--comb", action="store_true", help="also run the DeblurGAN-Comb recipe end to end")
    ap.add_argument("--comb-steps", type=int, default=None)
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="Print, do not touch RESULTS.md.")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp())
    try:
        if not args.skip_scaling:
            rows = []
            address = _start_ray()
            try:
                for recipe, step, sets in (
                    ("realistic", "pairs", ["pairs.shard_size=16"]),
                    ("gopro-like", "gopro", ["gopro.shard_size=16", "clips.frames=2400"]),
                ):
                    out = work / recipe
                    # Inputs, kernel bank and clips, once; this run also writes the bytecode the
                    # timed processes read.
                    subprocess.run(_build_command(recipe, out, args.pairs, sets, 1), check=True, capture_output=True,
                                   env=_env())
                    runs = {"nothing to do": (1, None), "local1": (1, None), "local2": (2, None),
                            "ray2": (2, address)}
                    times, n_rows = {k: [] for k in runs}, set()
                    for _ in range(args.rounds):
                        for key, (workers, addr) in runs.items():
                            if key == "nothing to do":
                                t = time.perf_counter()
                                subprocess.run(_build_command(recipe, out, args.pairs, sets, 1), check=True,
                                               capture_output=True, env=_env())
                                times[key].append(time.perf_counter() - t)
                                continue
                            wall, n = _time_build(recipe, step, out, args.pairs, sets, workers, addr)
                            times[key].append(wall)
                            n_rows.add(n)
                    assert len(n_rows) == 1, n_rows
                    rows.append((recipe, step, {k: statistics.median(v) for k, v in times.items()}, n_rows.pop()))
            finally:
                _stop_ray()
            import ray

            local, remote, init = ray_overhead(work)
            ray.shutdown()
            lines = [
                f"`benchmarks/bench_build.py --pairs {args.pairs}`, {machine_line()}.",
                "",
                f"Whole `blursynth build RECIPE --limit {args.pairs}` processes, as a user runs them, each making "
                "one pair step again (shards of 16) after an untimed build made every step once: the",
                "command starts, finds the recipe's other steps (inputs, kernel bank, clips) complete, and",
                "makes the step. gopro-like renders one 2,400-frame clip (`--set clips.frames=2400`). Ray: "
                "`--executor ray --address auto`",
                "on a local cluster of 2 CPUs started beforehand with `ray start` (the driver's connection is "
                f"timed). Medians of {args.rounds} interleaved rounds; \"nothing to do\" is the same command when every",
                "step is complete (start-up and the checks):",
                "",
                "| recipe (step) | pairs | nothing to do | 1 worker | 2 workers | speed-up | Ray, 2 CPUs | "
                "Ray vs 2 workers |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            for recipe, step, t, n in rows:
                one, two, ray_t = t["local1"], t["local2"], t["ray2"]
                lines.append(f"| {recipe} ({step}) | {n} | {t['nothing to do']:.1f} s | {one:.1f} s, {n / one:.1f}/s | "
                             f"{two:.1f} s, {n / two:.1f}/s | {one / two:.2f}x | {ray_t:.1f} s, {n / ray_t:.1f}/s | "
                             f"{two / ray_t:.2f}x |")
            lines += [
                "",
                f"Ray's overhead per shard: 48 one-row shards take {1000 * local / 48:.1f} ms each in this process,",
                f"one after another, and {1000 * remote / 48:.1f} ms each as Ray tasks on 2 warm workers (wall time",
                "over shards, so Ray's scheduling cost is what parallelism does not hide); starting the local",
                f"Ray instance took {init:.1f} s.",
            ]
            body = "\n".join(lines)
            print(body)
            if not args.no_write:
                write_section("Recipes and scale-out", body)
        if args.comb:
            sets = ["train.perceptual=none"]
            if args.comb_steps:
                sets.append(f"train.steps={args.comb_steps}")
            plan = plan_build(ROOT / "recipes/deblurgan-comb.toml", out=work / "comb", sets=sets)
            t = time.perf_counter()
            summary = run_build(plan, workers=2, progress_echo=print)
            wall = time.perf_counter() - t
            report = (work / "comb/evaluate/report.md").read_text()
            body = "\n".join([
                f"`benchmarks/bench_build.py --comb{f' --comb-steps {args.comb_steps}' if args.comb_steps else ''}`, "
                f"{machine_line()}.",
                "",
                "`blursynth build recipes/deblurgan-comb.toml --set train.perceptual=none"
                + (f" --set train.steps={args.comb_steps}" if args.comb_steps else "") + "` (no VGG19 weights can be",
                "downloaded here, so the content loss is the pixel loss), whole pipeline, "
                f"{wall / 60:.1f} minutes on this CPU:",
                "",
                "rows per output: " + ", ".join(f"{k} {v['rows']}" for k, v in summary["steps"].items() if "rows" in v),
                "",
                "Evaluation on the held-out frame-averaged pairs of other photos (`evaluate/report.md`):",
                "",
                "```",
                report.strip(),
                "```",
            ])
            print(body)
            if not args.no_write:
                write_section("DeblurGAN-Comb recipe", body)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
