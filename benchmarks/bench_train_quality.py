"""Quality run of the trainer on pairs the project makes: does it learn, and does mixing help?

Run: .venv/bin/python benchmarks/bench_train_quality.py [--minutes 10 | --steps N]
     [--critic-steps 5] [--init identity] [--data v2] [--extra "--lr 5e-4"] [--parallel]
     [--workdir benchmarks/out/trainq]
Writes the "Trainer" section of benchmarks/RESULTS.md.

1. Sharp photos: scikit-image's samples, split by photo into training (``--data v1``: astronaut,
   chelsea, rocket, immunohistochemistry, hubble_deep_field; ``v2`` adds camera, brick, grass,
   gravel, coins and clock) and test (coffee, stereo_motorcycle).
2. Training pairs: ``blursynth blur`` with fresh random-trajectory PSFs (128x128 crops; v1: 30 px
   paths cut at a random exposure fraction, v2: whole 25 px paths), and ``blursynth render-clip`` +
   ``frames-average`` (240 fps clips of 128x128 frames, windows 5-25; v1 one clip per photo,
   v2 two). ``v3`` adds the same two kinds of pairs made from 72 dead-leaves images.
3. Test pairs: frame-averaged pairs from clips rendered from the test photos only (the same for
   every --data).
4. Two runs of the small config for the same number of steps (``--steps``, or chosen so that
   one takes about ``--minutes`` here): DeblurGAN-Comb-style 2:1 mix of trajectory and frame-averaged pairs,
   and trajectory pairs alone. Then ``blursynth evaluate`` of both on the test pairs, beside
   the blurred input.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_line, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PHOTOS = ("astronaut", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
TEST_PHOTOS = ("coffee", "stereo_motorcycle")
#: Training-data recipes. v1's trajectory pairs are cut at a random exposure fraction of 30 px
#: paths, so a quarter keep 1% of the path (nearly sharp): blurred PSNR 34 dB on average against
#: 27 dB for its frame-averaged pairs and 23 dB for the test pairs. v2 keeps whole 25 px paths
#: (about the frame-averaged pairs' blur: 25.4 against 25.6 dB on 9 of the v2 photos) and has
#: more photos, two clips of each; it was chosen on validation photos (RESULTS.md, "Trainer:
#: validation runs"), never on the test pairs.
#: v3 is v2 plus 72 dead-leaves images (`blursynth render-leaves`), blurred both ways
#: into their own datasets (15 trajectory pairs and one clip per image) that the runs mix in at
#: half of each kind's weight: on validation photos more varied content was the one change that
#: raised the gain (RESULTS.md, "validation runs of 2026-12-01").
DATA_RECIPES = {
    "v1": {"photos": TRAIN_PHOTOS, "exposure": "random", "length": 30, "clips": 1, "suffix": ""},
    "v2": {"photos": TRAIN_PHOTOS + ("camera", "brick", "grass", "gravel", "coins", "clock"),
           "exposure": "1", "length": 25, "clips": 2, "suffix": "-v2"},
    "v3": {"photos": TRAIN_PHOTOS + ("camera", "brick", "grass", "gravel", "coins", "clock"),
           "leaves": 72, "exposure": "1", "length": 25, "clips": 2, "suffix": "-v3"},
}
#: Training photos whose colours the dead-leaves images draw from (never the test photos).
LEAVES_PALETTE = ("astronaut", "chelsea", "immunohistochemistry")
ENV = dict(os.environ)


def cli(*args):
    cmd = [sys.executable, "-m", "blursynth", *map(str, args)]
    print("$", " ".join(cmd[2:]), flush=True)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stderr=subprocess.DEVNULL
                   if "--quiet" in args else None, env=ENV)
    return time.perf_counter() - t


def photos(folder: Path, names):
    import imageio.v3 as iio
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        img = getattr(data, n)()
        img = img[0] if isinstance(img, tuple) else img
        if not (folder / f"{n}.png").exists():
            iio.imwrite(folder / f"{n}.png", img)
    return folder


def clips(folder: Path, photo_dir: Path, names, seed0, frames, per_photo=1):
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, n in enumerate(names):
        for k in range(per_photo):
            # One clip per photo keeps v1's names and seeds; further clips get their own.
            clip = folder / (f"{n}.mp4" if k == 0 else f"{n}-{k}.mp4")
            if not clip.exists():
                cli("render-clip", photo_dir / f"{n}.png", "--out", clip, "--frames", frames,
                    "--size", "128x128", "--length-px", frames * 0.8,
                    "--seed", seed0 + i + 1000 * k)
            out.append(clip)
    return out


def make_data(work: Path, per_image: int, frames: int, recipe: dict):
    """Training pairs of one DATA_RECIPES entry (folders traj<suffix>, fa<suffix>) and the test
    pairs; what exists is kept."""
    sfx, names = recipe["suffix"], recipe["photos"]
    train_ph = photos(work / f"photos_train{sfx}", names)
    test_ph = photos(work / "photos_test", TEST_PHOTOS)
    times = {}
    if not (work / f"traj{sfx}" / "manifest.json").exists():
        times["blur"] = cli("blur", train_ph, "--psf-source", "fresh", "--crop", "128x128",
                            "--per-image", per_image, "--length", recipe["length"],
                            "--exposure", recipe["exposure"], "--out", work / f"traj{sfx}",
                            "--seed", 1)
    if not (work / f"fa{sfx}" / "manifest.json").exists():
        vids = clips(work / f"clips_train{sfx}", train_ph, names, 10, frames, recipe["clips"])
        times["frames-average"] = cli("frames-average", *vids, "--window", "5-25", "--overlap",
                                      "4", "--out", work / f"fa{sfx}", "--seed", 2)
    if recipe.get("leaves"):
        leaves_ph = work / f"leaves{sfx}"
        if not (leaves_ph / f"leaves{recipe['leaves'] - 1:05d}.png").exists():
            cli("render-leaves", "--n", recipe["leaves"], "--size", 512, "--out", leaves_ph,
                *[a for p in LEAVES_PALETTE for a in ("--colours-from", train_ph / f"{p}.png")],
                "--seed", 0, "--quiet")
        leaf_names = [f"leaves{i:05d}" for i in range(recipe["leaves"])]
        if not (work / f"traj{sfx}-leaves" / "manifest.json").exists():
            cli("blur", leaves_ph, "--psf-source", "fresh", "--crop", "128x128", "--per-image",
                15, "--length", recipe["length"], "--exposure", recipe["exposure"], "--out",
                work / f"traj{sfx}-leaves", "--seed", 11)
        if not (work / f"fa{sfx}-leaves" / "manifest.json").exists():
            vids = clips(work / f"clips_leaves{sfx}", leaves_ph, leaf_names, 2000, frames)
            cli("frames-average", *vids, "--window", "5-25", "--overlap", "4", "--out",
                work / f"fa{sfx}-leaves", "--seed", 12)
    if not (work / "test" / "manifest.json").exists():
        vids = clips(work / "clips_test", test_ph, TEST_PHOTOS, 100, frames)
        cli("frames-average", *vids, "--window", "5-25", "--out", work / "test", "--seed", 3)
    return times


def time_per_step(config, crop, batch, critic_steps, init, amp=False):
    import torch

    from blursynth.train.losses import ContentLoss
    from blursynth.train.trainer import Trainer
    from blursynth.train.models import CONFIGS, build_models

    g, d = build_models(CONFIGS[config], seed=0, init=init)
    tr = Trainer(g, d, ContentLoss(None), seed=0, critic_steps=critic_steps, amp=amp)
    x = torch.rand(batch, 3, crop, crop) * 2 - 1
    tr.step(x, x)
    t = time.perf_counter()
    for _ in range(3):
        tr.step(x, x)
    return (time.perf_counter() - t) / 3


def _small_params() -> str:
    from blursynth.train.models import CONFIGS, build_models, count_parameters

    c = CONFIGS["small"]
    g, _ = build_models(c, seed=0)
    return f"ngf {c.ngf}, {c.n_blocks} ResBlocks, {count_parameters(g) / 1e6:.2f}M parameters"


def _manifest_counts(work: Path, sfx: str) -> dict:
    out = {}
    for k in ("traj", "fa"):
        for part in ("", "-leaves"):
            m = work / f"{k}{sfx}{part}" / "manifest.json"
            if m.exists():
                out[k + part] = json.loads(m.read_text())["num_rows"]
    return out


def _count_text(name, counts):
    r = DATA_RECIPES[name]
    exposure = ("exposure fraction drawn per pair from 0.01, 0.1, 0.5, 1" if r["exposure"] ==
                "random" else f"exposure fraction {r['exposure']}")
    return (f"{counts.get('traj', '?')} trajectory pairs (`blursynth blur --psf-source fresh "
            f"--length {r['length']}`, 128x128, {exposure}) and {counts.get('fa', '?')} "
            f"frame-averaged pairs (`render-clip` 240 fps 128x128, {r['clips']} clip(s) per "
            f"photo, `frames-average --window 5-25 --overlap 4`), from {len(r['photos'])} sample "
            f"photos ({', '.join(r['photos'])})"
            + (f"; and {counts.get('traj-leaves', '?')} trajectory pairs (15 per image) and "
               f"{counts.get('fa-leaves', '?')} frame-averaged pairs (one clip per image) from "
               f"{r['leaves']} dead-leaves images (`blursynth render-leaves --size 512 --seed 0`, "
               f"colours from {', '.join(LEAVES_PALETTE)}), which the runs weight as much as the "
               f"photos' pairs of the same kind (mix: --data traj{r['suffix']}:1 --data "
               f"traj{r['suffix']}-leaves:1 --data fa{r['suffix']}:0.5 --data "
               f"fa{r['suffix']}-leaves:0.5)" if r.get("leaves") else "") + ".")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="Target training time per run.")
    ap.add_argument("--steps", type=int, default=None, help="Fixed steps (overrides --minutes).")
    ap.add_argument("--workdir", default=str(ROOT / "benchmarks" / "out" / "trainq"))
    ap.add_argument("--data", default="v1", choices=sorted(DATA_RECIPES),
                    help="Training-data recipe (DATA_RECIPES); the test pairs are the same.")
    ap.add_argument("--per-image", type=int, default=40)
    ap.add_argument("--frames", type=int, default=480)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--critic-steps", type=int, default=5)
    ap.add_argument("--init", default="identity", choices=["paper", "identity"])
    ap.add_argument("--extra", default="", help="More 'blursynth train' options, space separated.")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads of every command (1 suits a shared 2-core machine).")
    ap.add_argument("--parallel", action="store_true",
                    help="Train both runs at once (one core each).")
    ap.add_argument("--tag", default=None, help="Sub-folder of --workdir for these runs.")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    ENV["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    header = machine_line()
    recipe = DATA_RECIPES[args.data]
    sfx = recipe["suffix"]
    make_data(work, args.per_image, args.frames, recipe)
    counts = dict(_manifest_counts(work, sfx), test=json.loads(
        (work / "test" / "manifest.json").read_text())["num_rows"])
    print("pairs:", counts, flush=True)
    if args.steps:
        steps = args.steps
    else:
        extra_opts = args.extra.replace("=", " ").split()
        amp = any(a == "--precision" and b == "bf16" for a, b in zip(extra_opts, extra_opts[1:]))
        sec = time_per_step("small", args.crop, args.batch_size, args.critic_steps, args.init,
                            amp)
        steps = max(20, int(args.minutes * 60 / sec))
        print(f"{sec:.2f} s/step -> {steps} steps", flush=True)
    extra = args.extra.split()
    traj, fa = work / f"traj{sfx}", work / f"fa{sfx}"
    runs = {"mix 2:1 (trajectory : frame-averaged)": [f"{traj}:2", f"{fa}:1"],
            "trajectory only": [f"{traj}:1"]}
    if recipe.get("leaves"):  # leaves give half of each kind of pair
        runs = {"mix 2:1 (trajectory : frame-averaged)": [f"{traj}:1", f"{traj}-leaves:1",
                                                          f"{fa}:0.5", f"{fa}-leaves:0.5"],
                "trajectory only": [f"{traj}:1", f"{traj}-leaves:1"]}
    # v1's folders keep their earlier names (no data prefix), so their runs are still found.
    tag = args.tag or (f"{args.data}-" if args.data != "v1" else "") + \
        f"steps{steps}-cs{args.critic_steps}-{args.init}" + "".join(extra)
    pending, walls = [], {}
    for i, (name, data) in enumerate(runs.items()):
        out = work / tag / f"run{i}"
        if (out / "wall.json").exists():
            walls[i] = json.loads((out / "wall.json").read_text())["seconds"]
            continue
        if out.exists():
            raise SystemExit(f"{out} holds an unfinished run; delete it to rerun.")
        d_args = [a for x in data for a in ("--data", x)]
        pending.append((i, out, ["train", *d_args, "--out", out, "--config", "small", "--steps",
                                 steps, "--crop", args.crop, "--batch-size", args.batch_size,
                                 "--perceptual", "none", "--workers", 1, "--val-every",
                                 max(steps // 5, 1), "--checkpoint-every", max(steps // 5, 1),
                                 "--val-crop", 128, "--seed", 0, "--critic-steps",
                                 args.critic_steps, "--init", args.init, *extra, "--quiet"]))
    if args.parallel and pending:
        # One process per run, each on its own core: same wall-clock budget for both.
        procs = []
        for i, out, a in pending:
            print("$", " ".join(map(str, a)), flush=True)
            procs.append((i, out, time.perf_counter(), subprocess.Popen(
                [sys.executable, "-m", "blursynth", *map(str, a)], cwd=ROOT, env=ENV,
                stderr=subprocess.DEVNULL)))
        for i, out, t0, proc in procs:
            if proc.wait() != 0:
                raise SystemExit(f"training {out} failed")
            walls[i] = time.perf_counter() - t0
            (out / "wall.json").write_text(json.dumps({"seconds": walls[i]}))
    else:
        for i, out, a in pending:
            walls[i] = cli(*a)
            (out / "wall.json").write_text(json.dumps({"seconds": walls[i]}))
    results = []
    for i, name in enumerate(runs):
        out = work / tag / f"run{i}"
        if not (out / "eval.json").exists():
            cli("evaluate", "--model", out, "--data", work / "test", "--json", out / "eval.json",
                "--quiet")
        rep = json.loads((out / "eval.json").read_text())
        results.append((name, walls[i], rep))
    flags = (f"--data {args.data} --steps {steps} --critic-steps {args.critic_steps} "
             f"--init {args.init}"
             f"{' --extra ' + repr(args.extra) if args.extra else ''}"
             f"{' --parallel' if args.parallel else ''}")
    (work / tag / "settings.json").write_text(json.dumps({
        "flags": flags, "machine": header, "threads": args.threads, "data": args.data,
        "counts": counts,
        "rows": [[name, steps, wall, rep] for name, wall, rep in results]}))
    # The table lists every settings folder measured so far (each a rerun away from refresh).
    rows, gains, seen = [], [], {}
    for f in sorted(work.glob("*/settings.json"), key=lambda p: p.stat().st_mtime):
        done = json.loads(f.read_text())
        gains.append([r[3]["gain_psnr_db"] for r in done["rows"]])
        data = done.get("data", "v1")  # runs from before --data trained on v1
        seen[data] = _manifest_counts(work, DATA_RECIPES[data]["suffix"])
        flags_shown = done["flags"] if done["flags"].startswith("--data") else \
            f"--data v1 {done['flags']}"
        for name, n_steps, wall, rep in done["rows"]:
            rows.append(f"| `{flags_shown}` | {name} | {n_steps} | {wall / 60:.1f} | "
                        f"{rep['n_pairs']} | "
                        f"{rep['blurred']['psnr']:.2f} / {rep['blurred']['ssim']:.4f} | "
                        f"{rep['deblurred']['psnr']:.2f} / {rep['deblurred']['ssim']:.4f} | "
                        f"{rep['gain_psnr_db']:+.2f} |")
    body = "\n".join([
        f"Last measured {header}.",
        f"Quality runs of `benchmarks/bench_train_quality.py` (flags in the first column): small "
        f"config (generator {_small_params()}), crops {args.crop}, batch {args.batch_size}, "
        f"{args.threads} torch thread(s) per run, L1 pixel content loss (`--perceptual none`: no "
        f"VGG19 weights can be fetched on this offline machine), seed 0, CPU, on a 2-core machine "
        f"shared with other work (so minutes vary with its load). `--init identity` starts the "
        f"generator at output = input; after DeblurGAN's N(0, 0.02) start (one step) the "
        f"output scored 14.8 dB on session 1's test pairs, 8 dB below the blurred input.",
        *[f"Training pairs `--data {k}`: {_count_text(k, seen.get(k) or {})}"
          for k in sorted(DATA_RECIPES) if k in seen],
        f"Test: {counts['test']} frame-averaged pairs from clips of 2 other photos (coffee, "
        f"stereo_motorcycle; never seen in training), full 128x128 images, output quantised to "
        f"8 bits, `blursynth evaluate`.",
        "",
        "| settings | training data | steps | train min | test pairs | blurred input PSNR / SSIM "
        "| deblurred PSNR / SSIM | PSNR gain dB |",
        "| --- | --- | ---: | ---: | ---: | --- | --- | ---: |",
        *rows,
        "",
        f"Best PSNR gain over the blurred input: {max(g[0] for g in gains):+.2f} dB (mix) and "
        f"{max(g[1] for g in gains):+.2f} dB (trajectory only); "
        f"{'the 1 dB floor is met' if max(max(g) for g in gains) >= 1 else 'the 1 dB floor is NOT met in these CPU-minute runs'}. "
        f"Training on the 2:1 mix beat trajectory pairs alone on these frame-averaged test pairs "
        f"in {sum(g[0] > g[1] for g in gains)} of {len(gains)} settings (by "
        f"{min(g[0] - g[1] for g in gains):+.2f} to {max(g[0] - g[1] for g in gains):+.2f} dB).",
    ])
    print(body)
    if not args.no_write:
        write_section("Trainer", body)


if __name__ == "__main__":
    main()
