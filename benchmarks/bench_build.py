"""Scale-out: 1 vs 2 local workers vs Ray for the blur and frame-average recipes; Ray's overhead
per shard; and the DeblurGAN-Comb recipe end to end at its small setting.

Run: .venv/bin/python benchmarks/bench_build.py [--pairs 96] [--comb] [--comb-steps 3000]
Writes the "Recipes and scale-out" section of benchmarks/RESULTS.md (and "DeblurGAN-Comb recipe"
with --comb).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_line, write_section  # noqa: E402
from blursynth.build import plan_build, run_build  # noqa: E402
from blursynth.build.steps import STEP_KINDS  # noqa: E402
from blursynth.dataset import PAIR_SCHEMA, Executor, WriteOptions, write_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _time_step(plan, name, mode, workers, out):
    """Wall seconds and rows of one step run into ``out``."""
    from blursynth.dataset import load_manifest

    step = next(s for s in plan.steps if s.name == name)
    step = dataclasses.replace(step, out=out)
    t = time.perf_counter()
    STEP_KINDS[step.run].run(step, dataclasses.replace(plan, executor=mode), workers)
    return time.perf_counter() - t, load_manifest(out)["num_rows"]


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
    ap.add_argument("--pairs", type=int, default=96)
    ap.add_argument("--comb", action="store_true", help="also run the DeblurGAN-Comb recipe end to end")
    ap.add_argument("--comb-steps", type=int, default=None)
    ap.add_argument("--skip-scaling", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp())
    try:
        if not args.skip_scaling:
            rows = []
            for recipe, step, sets in (
                ("realistic", "pairs", ["pairs.shard_size=16"]),
                ("gopro-like", "gopro", ["gopro.shard_size=16", "clips.frames=2400"]),
            ):
                plan = plan_build(ROOT / "recipes" / f"{recipe}.toml", out=work / recipe, limit=args.pairs, sets=sets)
                run_build(plan, workers=1, progress_echo=lambda m: None)  # inputs, bank, clips; warms caches
                times, n_rows = {}, set()
                for mode, workers in (("local", 1), ("local", 2), ("ray", 2)):
                    wall, n = _time_step(plan, step, mode, workers, work / f"{recipe}-{mode}{workers}")
                    times[(mode, workers)] = wall
                    n_rows.add(n)
                assert len(n_rows) == 1, n_rows
                rows.append((recipe, step, times, n_rows.pop()))
            import ray

            ray.shutdown()
            local, remote, init = ray_overhead(work)
            ray.shutdown()
            lines = [
                f"`benchmarks/bench_build.py --pairs {args.pairs}`, {machine_line()}.",
                "",
                f"One pair-making step of each recipe, `--limit {args.pairs}`, in shards of 16 (inputs, kernel bank and",
                "clips made beforehand; gopro-like renders one 2,400-frame clip, `--set clips.frames=2400`), wall",
                "seconds and pairs/s, including the workers' start-up; Ray on a local instance with 2 CPUs, started",
                "before timing:",
                "",
                "| recipe (step) | pairs | 1 worker | 2 workers | speed-up | Ray, 2 CPUs | Ray vs 2 workers |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            for recipe, step, t, n in rows:
                one, two, ray_t = t[("local", 1)], t[("local", 2)], t[("ray", 2)]
                lines.append(f"| {recipe} ({step}) | {n} | {one:.1f} s, {n / one:.1f}/s | {two:.1f} s, {n / two:.1f}/s | "
                             f"{one / two:.2f}x | {ray_t:.1f} s, {n / ray_t:.1f}/s | {two / ray_t:.2f}x |")
            lines += [
                "",
                f"Ray's overhead per shard: 48 one-row shards take {1000 * local / 48:.1f} ms each in this process,",
                f"one after another, and {1000 * remote / 48:.1f} ms each as Ray tasks on 2 warm workers (wall time",
                "over shards, so Ray's scheduling cost is what parallelism does not hide); starting the local",
                f"Ray instance took {init:.1f} s.",
            ]
            body = "\n".join(lines)
            print(body)
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
            write_section("DeblurGAN-Comb recipe", body)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
