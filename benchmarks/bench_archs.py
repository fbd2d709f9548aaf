"""Training speed of every ``--arch``: steps per second of its small and paper configs, each as
a ratio to DeblurGAN's step at the same config, measured in the same run (the paper's variants,
such as deblurgan-v2's paper-inception, against DeblurGAN's paper config).

Run: .venv/bin/python benchmarks/bench_archs.py [--steps 3] [--paper-crop 128] [--device cpu]
     [--note "what else ran on the machine"]
Writes the "Architectures: training speed" section of benchmarks/RESULTS.md.

A step is the architecture's own update (its critic steps, its losses) on random crops already in
memory, with ``--perceptual none`` (the L1 stand-in where an architecture has a perceptual term):
the models' cost, without data loading. Paper configs run at ``--paper-crop`` (default 128: a
256 px DeepDeblur step takes minutes on a 2-core CPU) with the paper's batch size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks._common import machine_line, write_section  # noqa: E402
from blursynth.errors import SettingError  # noqa: E402
from blursynth.train.archs import ARCHS, get_arch  # noqa: E402
from blursynth.train.losses import build_content_loss  # noqa: E402
from blursynth.train.loop import TRAIN_MEMORY_FORMAT  # noqa: E402


def _content(arch):
    """The architecture's content loss without VGG (its own where it refuses ``none``)."""
    make = arch.content or build_content_loss
    try:
        return make("none", None)
    except SettingError:
        return make(arch.defaults.get("perceptual", "vgg"), None)


def steps_per_second(name, config, *, crop, batch, steps, device):
    arch = get_arch(name)
    gen, critic = arch.build(arch.config(config), 0)
    gen = gen.to(device, memory_format=TRAIN_MEMORY_FORMAT)
    critic = critic.to(device, memory_format=TRAIN_MEMORY_FORMAT) if critic is not None else None
    content, _ = _content(arch)
    critic_steps = int(arch.defaults.get("critic_steps", 5)) if critic is not None else 0
    update = arch.update(gen, critic, content.to(device), lr=1e-4, critic_steps=critic_steps,
                         content_weight=float(arch.defaults.get("content_weight", 1.0)),
                         seed=0, rank=0, amp=False)
    rng = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, 3, crop, crop, generator=rng) * 2 - 1).to(
        device, memory_format=TRAIN_MEMORY_FORMAT)
    y = (torch.rand(batch, 3, crop, crop, generator=rng) * 2 - 1).to(
        device, memory_format=TRAIN_MEMORY_FORMAT)
    update.step(x, y)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        update.step(x, y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    n_g = sum(p.numel() for p in gen.parameters())
    n_d = sum(p.numel() for p in critic.parameters()) if critic is not None else 0
    return steps / (time.perf_counter() - t), n_g, n_d, critic_steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--paper-crop", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--archs", nargs="*", default=None, help="[every registered one]")
    ap.add_argument("--configs", nargs="*", default=["small", "paper", "paper-inception"],
                    help="Configs measured, where an arch has them [%(default)s].")
    ap.add_argument("--no-write", action="store_true", help="Print only; leave RESULTS.md alone.")
    ap.add_argument("--note", default="",
                    help="What else ran on the machine, said in the section (e.g. 'The machine "
                         "was shared with two test runs.').")
    args = ap.parse_args()
    device = torch.device(args.device)
    header = machine_line()
    names = args.archs or list(ARCHS)
    rows, base = [], {}
    for config in args.configs:
        # DeblurGAN first: the baseline of this config (of "paper" for the paper's variants),
        # measured in this run.
        family = config.split("-")[0]
        for name in ["deblurgan"] + [n for n in names if n != "deblurgan"]:
            arch = get_arch(name)
            cfg = config if name != "deblurgan" or family in base else family
            if cfg not in arch.configs or (name == "deblurgan" and family in base):
                continue
            crop, batch = arch.crop_batch[cfg]
            if family == "paper":
                crop = args.paper_crop
            rate, n_g, n_d, cs = steps_per_second(name, cfg, crop=crop, batch=batch,
                                                  steps=args.steps, device=device)
            px = rate * batch * crop * crop
            if name == "deblurgan":
                base[family] = px
            row = (f"| {name} | {cfg} | {n_g / 1e6:.2f}M / {n_d / 1e6:.2f}M | {crop} | "
                   f"{batch} | {cs} | {rate:.3g} | {1 / rate:.3g} | {px / 1e6:.3g} | "
                   f"{px / base[family]:.2f} |")
            print(row, flush=True)
            rows.append(row)
    body = "\n".join([
        f"Measured {header}; device {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), fp32; mean of {args.steps} steps after one warm-up "
        f"step. {args.note + ' ' if args.note else ''}Compare the ratio column, which divides each "
        "architecture's pixels per second by DeblurGAN's at the same config in this run, more "
        "than the absolute figures.",
        f"A step = the architecture's update with its default critic steps and losses, "
        f"`--perceptual none`; paper configs at crop {args.paper_crop} with the paper's batch.",
        "",
        "| arch | config | params G / D | crop | batch | critic steps | steps/s | s/step | "
        "Mpx/s | x DeblurGAN (px/s) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
    ])
    if not args.no_write:
        write_section(f"Architectures: training speed ({device.type})", body)
    print(body)


if __name__ == "__main__":
    main()
