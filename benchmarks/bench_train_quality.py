"""Quality run of the trainer on pairs the project makes: does it learn, and does mixing help?

Run: .venv/bin/python benchmarks/bench_train_quality.py [--minutes 10 | --steps N]
     [--critic-steps 5] [--init identity] [--data v2] [--extra "--lr 5e-4"] [--parallel]
     [--workdir benchmarks/out/trainq]
     [--arch deblurgan deblurgan-v2 deepdeblur dbgan nafnet --minutes 10 --data v3 --parallel
      --seeds 0 1 2]
Writes the "Trainer" section of benchmarks/RESULTS.md; with ``--arch``, the "Architectures:
quality" section instead (step 4 for each named architecture, below).

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
5. ``--arch A B ...``: step 4 for each architecture's small config (``train --arch A``), with its
   own defaults (learning rate, critic steps, losses) unless ``--critic-steps``/``--extra`` say
   otherwise, ``--perceptual none`` (no VGG19 weights offline; DeepDeblur and NAFNet have no
   perceptual term anyway), ``--init identity`` where the architecture has it (else ``paper``).
   ``--minutes`` is calibrated per architecture: its own seconds per step, measured in the same
   run on in-memory crops before any training, so every run gets about the same CPU minutes.
   ``--seeds`` repeats every run with each seed (two at a time with ``--parallel``); the summary
   judges each on the mean over its seeds, since single runs differ by about 0.15 dB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

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


def _launch(pending, parallel: bool, strict: bool = True) -> dict:
    """Train ``pending`` ``(index, out, train args)``: one process per run at once with
    ``parallel`` (each on its own core: the same wall-clock budget for all), else one after
    another. Returns ``{index: wall seconds}`` and writes each run's wall.json; a failed run
    stops the benchmark, or with ``strict=False`` is left out of the answer."""
    walls = {}
    if parallel and pending:
        procs = []
        for i, out, a in pending:
            print("$", " ".join(map(str, a)), flush=True)
            procs.append((i, out, time.perf_counter(), subprocess.Popen(
                [sys.executable, "-m", "blursynth", *map(str, a)], cwd=ROOT, env=ENV,
                stderr=subprocess.DEVNULL)))
        for i, out, t0, proc in procs:
            if proc.wait() != 0:
                if strict:
                    raise SystemExit(f"training {out} failed")
                print(f"training {out} failed", flush=True)
                continue
            walls[i] = time.perf_counter() - t0
            (out / "wall.json").write_text(json.dumps({"seconds": walls[i]}))
    else:
        for i, out, a in pending:
            try:
                walls[i] = cli(*a)
            except subprocess.CalledProcessError:
                if strict:
                    raise
                print(f"training {out} failed", flush=True)
                continue
            (out / "wall.json").write_text(json.dumps({"seconds": walls[i]}))
    return walls


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

ARCH_SECTION = "Architectures: quality"


def arch_time_per_step(name, crop, batch, critic_steps, amp=False) -> float:
    """Seconds per update of ``name``'s small config (its losses, ``--perceptual none``) on
    random crops in memory, laid out channels-last as the trainer lays them out: the median
    of 9 steps after two warm-up steps, so neither the first steps' building of convolution
    primitives nor a step slowed by other work on the machine sets the run's length."""
    import torch

    from blursynth.train.archs import get_arch

    arch = get_arch(name)
    config = arch.config("small")
    gen, critic = arch.build(config, 0)
    from blursynth.train.loop import TRAIN_MEMORY_FORMAT as mem
    from blursynth.train.losses import with_frequency_term

    gen = gen.to(memory_format=mem)
    critic = critic.to(memory_format=mem) if critic is not None else None

    # The runs' content loss (--perceptual none), with the config's frequency term.
    content, _ = with_frequency_term(*arch.content_loss("none", None, config),
                                     float(arch.default("fft_weight", "small", 0.0)))
    update = arch.update(gen, critic, content, lr=float(arch.default("lr", "small", 1e-4)),
                         critic_steps=critic_steps if critic is not None else 0,
                         content_weight=float(arch.default("content_weight", "small", 1.0)),
                         seed=0, rank=0, amp=amp)
    rng = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, 3, crop, crop, generator=rng) * 2 - 1).contiguous(memory_format=mem)
    y = (torch.rand(batch, 3, crop, crop, generator=rng) * 2 - 1).contiguous(memory_format=mem)
    update.step(x, y)
    update.step(x, y)
    times = []
    for _ in range(9):
        t = time.perf_counter()
        update.step(x, y)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def _loss_kind(name, config=None) -> str:
    """The content loss a run of ``name``'s small config trains on (``--perceptual none``), as
    run.json records it."""
    from blursynth.train.archs import get_arch

    arch = get_arch(name)
    kind = arch.content_loss("none", None, config or arch.config("small"))[1]["kind"]
    fft = float(arch.default("fft_weight", "small", 0.0))
    return f"{kind} + {fft:g} fft" if fft else kind


def _seed_rows(d: dict, mix: str) -> list:
    """A settings.json's finished runs on ``mix``: ``[mix, wall, eval, seed]`` each (rows
    recorded before --seeds were seed 0's)."""
    return [list(r[:3]) + [r[3] if len(r) > 3 else 0] for r in d["rows"] if r[0] == mix]


def _run_folder(i: int, seed: int) -> str:
    """The folder of the run on training data ``i`` with ``seed`` (seed 0: ``run{i}``)."""
    return f"run{i}" if seed == 0 else f"run{i}-seed{seed}"


def _run_cells(run: Path) -> str:
    """A run's 'rotate' and 'precision' cells, as its run.json says ('-' before it ran): whether
    it turned its crops (``--rotate``; runs made before the option did not) and the precision
    it trained in (``--precision`` resolved: fp32 or bf16)."""
    meta = run / "run.json"
    if not meta.exists():
        return "- | - | "
    info = json.loads(meta.read_text())
    return (f"{'yes' if info['settings'].get('rotate') else 'no'} | "
            f"{info.get('precision', '-')} | ")


def _arch_facts(name) -> dict:
    from blursynth.train.archs import get_arch

    arch = get_arch(name)
    config = arch.config("small")
    gen, critic = arch.build(config, 0)
    return {"params_g": sum(p.numel() for p in gen.parameters()),
            "loss": _loss_kind(name, config),
            "params_d": sum(p.numel() for p in critic.parameters()) if critic is not None else 0,
            "identity": arch.zero_init is not None,
            "critic_steps": (int(arch.default("critic_steps", "small", 5)) if critic is not None
                             else 0),
            "lr": float(arch.default("lr", "small", 1e-4)),
            "vgg_default": arch.default("perceptual", "small", "vgg") == "vgg"}


def arch_main(args, work: Path, header: str, counts: dict):
    """Step 5 of the module docstring: every ``--arch`` on the same pairs for the same minutes."""
    recipe = DATA_RECIPES[args.data]
    sfx = recipe["suffix"]
    traj, fa = work / f"traj{sfx}", work / f"fa{sfx}"
    runs = {"mix 2:1": [f"{traj}:2", f"{fa}:1"], "trajectory only": [f"{traj}:1"]}
    if recipe.get("leaves"):
        runs = {"mix 2:1": [f"{traj}:1", f"{traj}-leaves:1", f"{fa}:0.5", f"{fa}-leaves:0.5"],
                "trajectory only": [f"{traj}:1", f"{traj}-leaves:1"]}
    extra = args.extra.split()
    amp = any(a == "--precision" and b == "bf16" for a, b in zip(extra, extra[1:]))
    root = work / "archs"
    plan = []
    for name in [] if args.write_only else args.arch:
        facts = _arch_facts(name)
        cs = facts["critic_steps"] if args.critic_steps is None else args.critic_steps
        init = args.init if facts["identity"] else "paper"
        if args.steps:
            sec, steps = None, args.steps
        else:
            sec = arch_time_per_step(name, args.crop, args.batch_size, cs, amp)
            steps = max(20, int(args.minutes * 60 / sec))
            print(f"{name}: {sec:.3f} s/step -> {steps} steps", flush=True)
        tag = f"{name}-{args.data}-steps{steps}-cs{cs}-{init}" + "".join(extra)
        plan.append((name, facts, cs, init, sec, steps, tag))

    def settings(name, facts, cs, init, sec, steps, tag, rows):
        (root / tag).mkdir(parents=True, exist_ok=True)
        path = root / tag / "settings.json"
        was = json.loads(path.read_text()) if path.exists() else {}
        # A later invocation adding seeds keeps the calibration that set the folder's steps
        # (`--steps` with the same count reaches the same folder without calibrating).
        first = {k: was[k] for k in ("sec_per_step", "minutes", "machine") if k in was}
        path.write_text(json.dumps({
            "arch": name, "data": args.data, "steps": steps, "sec_per_step": sec,
            "minutes": None if args.steps else args.minutes, "critic_steps": cs, "init": init,
            "extra": args.extra, "parallel": args.parallel, "threads": args.threads,
            "machine": header, "facts": facts, "counts": counts, "runs": list(runs),
            **first, "seeds": sorted(set(was.get("seeds", [0])) | set(args.seeds)
                                     | {r[3] if len(r) > 3 else 0 for r in rows}),
            "rows": rows}))

    for p in plan:  # listed as not finished until their runs are in
        if not (root / p[-1] / "settings.json").exists():
            settings(*p, [])
    # Every (training data, seed) of an architecture; seed 0 keeps the folders of runs made
    # before --seeds (run0, run1).
    jobs = [(i, mix, data, seed) for seed in args.seeds
            for i, (mix, data) in enumerate(runs.items())]
    for name, facts, cs, init, sec, steps, tag in plan:
        pending, walls = [], {}
        for k, (i, mix, data, seed) in enumerate(jobs):
            out = root / tag / _run_folder(i, seed)
            if (out / "wall.json").exists():
                walls[k] = json.loads((out / "wall.json").read_text())["seconds"]
                continue
            if out.exists():
                print(f"{out} holds an unfinished run; delete it to rerun.", flush=True)
                continue
            d_args = [a for x in data for a in ("--data", x)]
            pending.append((k, out, [
                "train", "--arch", name, *d_args, "--out", out, "--config", "small", "--steps",
                steps, "--crop", args.crop, "--batch-size", args.batch_size, "--perceptual",
                "none", "--workers", 1, "--val-every", max(steps // 5, 1), "--checkpoint-every",
                max(steps // 5, 1), "--val-crop", 128, "--seed", seed, "--critic-steps", cs,
                "--init", init, *extra, "--quiet"]))
        # Side by side, as many at once as there are kinds of training data (one core each).
        wave = len(runs) if args.parallel else 1
        for w in range(0, len(pending), wave):
            walls.update(_launch(pending[w:w + wave], args.parallel, strict=False))
        old = {(r[0], r[3] if len(r) > 3 else 0): r for r in
               json.loads((root / tag / "settings.json").read_text()).get("rows", [])}
        for _, mix, _, seed in jobs:  # this invocation's runs: finished now, or missing
            old.pop((mix, seed), None)
        rows = []
        for k, (i, mix, _, seed) in enumerate(jobs):
            out = root / tag / _run_folder(i, seed)
            if k not in walls:
                continue
            if not (out / "eval.json").exists():
                try:
                    cli("evaluate", "--model", out, "--data", work / "test", "--json",
                        out / "eval.json", "--quiet")
                except subprocess.CalledProcessError:
                    print(f"evaluate {out} failed", flush=True)
                    continue
            rows.append([mix, walls[k], json.loads((out / "eval.json").read_text()), seed])
        rows += list(old.values())  # other seeds' runs, made by earlier invocations
        settings(name, facts, cs, init, sec, steps, tag, rows)
    body = arch_section(root, counts, args)
    print(body)
    if not args.no_write:
        write_section(ARCH_SECTION, body)


def arch_section(root: Path, counts: dict, args) -> str:
    """The section from every ``root/*/settings.json`` (oldest first)."""
    files = sorted(root.glob("*/settings.json"), key=lambda p: p.stat().st_mtime)
    done = [dict(json.loads(f.read_text()), folder=f.parent) for f in files]
    rows, best, bar, missing, seen_data = [], None, None, [], {}
    for d in done:
        f = d["facts"]
        seen_data[d["data"]] = d["counts"]
        for i, mix in enumerate(d["runs"]):
            # Runs recorded before the loss was: their architecture's loss then (nafnet's
            # small config trained on the paper's PSNR loss until its config named one).
            loss = f.get("loss") or ("psnr" if d["arch"] == "nafnet" else _loss_kind(d["arch"]))
            cells = (f"| {d['arch']} | {f['params_g'] / 1e6:.2f}M | {d['critic_steps']} | "
                     f"{loss} | {d['init']} | ")
            tail = ((f"{1 / d['sec_per_step']:.2f} | " if d["sec_per_step"] else "- | ")
                    + f"{d['steps']} | ")
            got = sorted(_seed_rows(d, mix), key=lambda r: r[3])
            missing += [f"{d['arch']} ({mix}, {d['steps']} steps, seed {s})"
                        for s in d.get("seeds", [0]) if s not in {r[3] for r in got} and got]
            if not got:
                missing.append(f"{d['arch']} ({mix}, {d['steps']} steps)")
                rows.append(cells + f"- | - | {mix} | 0 | " + tail + "not finished | | | | | |")
                continue
            for _, wall, rep, seed in got:
                b, o = rep["blurred"], rep["deblurred"]
                rows.append(cells + _run_cells(d["folder"] / _run_folder(i, seed)) + f"{mix} | "
                            f"{seed} | " + tail + f"{wall / 60:.1f} | {rep['n_pairs']} | "
                            f"{b['psnr']:.2f} / {b['ssim']:.4f} | {o['psnr']:.2f} / "
                            f"{o['ssim']:.4f} | {rep['gain_psnr_db']:+.2f} | "
                            f"{o['ssim'] - b['ssim']:+.4f} |")
            # Judged on the mean over the run's seeds (one run moves by about 0.15 dB).
            gain = float(np.mean([r[2]["gain_psnr_db"] for r in got]))
            wall = max(r[1] for r in got)
            # The run named with its options beyond the architecture's defaults, if any.
            who = f"{d['arch']}, {mix}" + (f", `{d['extra']}`" if d["extra"] else "")
            if best is None or gain > best[0]:
                best = (gain, who, d["steps"], d.get("minutes"), wall, len(got))
            # The bar: runs calibrated to at most 10 CPU minutes only.
            if d.get("minutes") and d["minutes"] <= 10 and (bar is None or gain > bar[0]):
                bar = (gain, who, d["steps"], d["minutes"], len(got))
    mix_vs = []
    for d in done:
        got = {m: {r[3]: r[2]["gain_psnr_db"] for r in _seed_rows(d, m)} for m in d["runs"]}
        common = set.intersection(*(set(g) for g in got.values())) if got else set()
        if common and len(got) == 2:  # the seeds both runs have
            a, b = (float(np.mean([got[m][s] for s in common])) for m in d["runs"])
            loss = d["facts"].get("loss") or ("psnr" if d["arch"] == "nafnet" else _loss_kind(d["arch"]))
            mix_vs.append(f"{d['arch']} ({d['steps']} steps, {loss}) {a - b:+.2f} dB")
    minutes = sorted({d.get("minutes") for d in done if d.get("minutes")})
    target = (f"{minutes[0]:g}" if len(minutes) == 1 else "/".join(f"{m:g}" for m in minutes)) \
        if minutes else "(fixed --steps, not calibrated)"
    data_lines = [f"Training pairs `--data {k}`: {_count_text(k, _manifest_counts(root.parent, DATA_RECIPES[k]['suffix']))}"
                  for k in sorted(seen_data)]
    summary = ("No run has finished." if best is None else
               f"Best PSNR gain over the blurred input: {best[0]:+.2f} dB ({best[1]}, {best[2]} steps, "
               + (f"mean of {best[5]} seeds, " if best[5] > 1 else "")
               + (f"{best[3]:g} CPU minutes, " if best[3] else "")
               + f"{best[4] / 60:.1f} wall minutes); "
               + ("no run calibrated to at most 10 CPU minutes, so the issue's +2 dB bar is not judged"
                  if bar is None else
                  f"the issue's +2 dB bar (10 CPU minutes) is {'met' if bar[0] >= 2 else 'NOT met'}: "
                  f"best {bar[0]:+.2f} dB in at most 10 ({bar[1]}, {bar[2]} steps, "
                  + (f"mean of {bar[4]} seeds, " if bar[4] > 1 else "")
                  + f"{bar[3]:g} CPU minutes)")
               + f" (runs of {target} CPU minutes here). 2:1 mix minus trajectory only, per "
               f"run: {', '.join(mix_vs) or 'no complete pair'}.")
    machines = sorted({d["machine"] for d in done})
    return "\n".join([
        "Written by `benchmarks/bench_train_quality.py --arch ...`. "
        + " ".join(f"Measured {m}." for m in machines),
        "Each architecture's small config (`blursynth train --arch NAME --config small`), "
        + (f"trained for about {target} CPU minutes per run: its steps are {target} minutes "
           f"divided by its own seconds per step (column 'steps/s': the update alone, random "
           f"crops in memory, 1 torch thread, measured in the same run before training), so the "
           f"'train min' column (wall clock, with data loading and 5 validation passes) runs "
           f"over. " if minutes else "trained for the steps given (`--steps`, not calibrated). ")
        + "The two runs of an architecture (2:1 mix of trajectory and frame-averaged pairs, and "
        "trajectory pairs only) train "
        + ("side by side (`--parallel`, one process and one torch thread each on this 2-core "
           "machine). " if args.parallel else "one after another. ")
        +
        f"Crops {args.crop}, batch {args.batch_size}, seed 0, each architecture's own learning "
        f"rate, losses and critic steps (column 'critic'), `--perceptual none` for every "
        f"architecture: DeblurGAN, DeblurGAN-v2 and DBGAN default to a VGG19 perceptual term "
        f"whose weights are not on this offline machine, so their content loss here is the L1 "
        f"(DeblurGAN) or MSE + L1 stand-in; DeepDeblur uses its own loss as published, "
        f"NAFNet its small config's (column 'loss': `psnr` is the paper's PSNR loss, which the "
        f"small config trained on until it took the L1, `pixel-l1`). `--init identity` "
        f"(output = input at step 0) where the architecture has "
        f"it; DeepDeblur has none and starts from its paper init."
        + (" DeblurGAN runs here with its defaults (5 WGAN-GP critic steps, lr 1e-4), not the "
           "content-only settings of the 'Trainer' section (`--critic-steps 0 --lr 5e-4 "
           "--dropout 0 --precision bf16`)." if any(
               d["arch"] == "deblurgan" and d["critic_steps"] == 5 and not d["extra"]
               for d in done) else "")
        + "".join(f" More train options of the {d['arch']} runs of {d['steps']} steps: "
                  f"`{d['extra']}`." for d in done if d["extra"]),
        *([f"**These runs had {target} CPU minutes each, not the issue's 10** (the session "
           f"that ran them was short of time): the +2 dB check below is at {target} minutes, "
           f"and a rerun with `--minutes 10` is still to be done."]
          if minutes and max(minutes) < 10 else []),
        *data_lines,
        f"Test: {counts['test']} frame-averaged pairs from clips of 2 other photos (coffee, "
        f"stereo_motorcycle; never seen in training), full 128x128 images, output quantised to "
        f"8 bits, `blursynth evaluate`; gains are deblurred minus blurred input.",
        "",
        "Column 'rotate': whether the run also turned its crops (`--rotate`, from its run.json); "
        "'precision': what it trained in (fp32, or bf16 autocast with `--precision bf16`); "
        "'seed': the run's `--seed` (`--seeds`: an architecture's runs with other seeds, the "
        "same settings otherwise; the summary below takes the mean over a run's seeds).",
        "",
        "| arch | params G | critic | loss | init | rotate | precision | training data | seed | "
        "steps/s | "
        "steps | "
        "train min | "
        "test pairs | blurred PSNR / SSIM | deblurred PSNR / SSIM | PSNR gain dB | SSIM gain |",
        "| --- | ---: | ---: | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- "
        "| --- | ---: | ---: |",
        *rows,
        "",
        summary
        + (f" Not finished: {'; '.join(missing)}." if missing else ""),
    ])


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
    ap.add_argument("--critic-steps", type=int, default=None,
                    help="[5; with --arch each architecture's own default]")
    ap.add_argument("--init", default="identity", choices=["paper", "identity"])
    ap.add_argument("--extra", default="", help="More 'blursynth train' options, space separated.")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads of every command (1 suits a shared 2-core machine).")
    ap.add_argument("--parallel", action="store_true",
                    help="Train both runs at once (one core each).")
    ap.add_argument("--tag", default=None, help="Sub-folder of --workdir for these runs.")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="SEED",
                    help="With --arch: train each run once per seed (its --seed); the summary "
                         "takes the mean over them [0].")
    ap.add_argument("--arch", nargs="+", default=None, metavar="NAME",
                    help="Architectures to compare (the 'Architectures: quality' section).")
    ap.add_argument("--write-only", action="store_true",
                    help="With --arch: write the section from the runs finished so far.")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    args.seeds = sorted(set(args.seeds))
    if args.seeds != [0] and not args.arch:
        ap.error("--seeds needs --arch (the Trainer section's runs have one seed).")
    if args.arch is None and args.critic_steps is None:
        args.critic_steps = 5
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
    if args.arch:
        return arch_main(args, work, header, counts)
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
    walls.update(_launch(pending, args.parallel))
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
