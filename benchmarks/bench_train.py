"""Training speed of the DeblurGAN trainer: steps per second, small vs paper config.

Run: .venv/bin/python benchmarks/bench_train.py [--steps 5] [--device cpu]
Writes the "Trainer speed" section of benchmarks/RESULTS.md.

A step is one generator update with its critic updates (5 by default), on random crops already
in memory: the numbers are the models' cost, without data loading (which runs in workers).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks._common import machine_line, write_section  # noqa: E402
from blursynth.nn.vgg import VGG19Features  # noqa: E402
from blursynth.train.losses import ContentLoss  # noqa: E402
from blursynth.train.loop import CONFIG_DEFAULTS, TRAIN_MEMORY_FORMAT  # noqa: E402
from blursynth.train.trainer import Trainer  # noqa: E402
from blursynth.train.models import CONFIGS, build_models, count_parameters  # noqa: E402


def steps_per_second(config, *, crop, batch, steps, device, perceptual, critic_steps=5,
                     precision="fp32"):
    g, d = build_models(CONFIGS[config], seed=0)
    g, d = g.to(device), d.to(device)
    # VGG19 with random weights costs the same as with ImageNet's.
    content = ContentLoss(VGG19Features("conv3_3").to(device) if perceptual else None)
    amp = precision == "bf16"
    g, d = g.to(memory_format=TRAIN_MEMORY_FORMAT), d.to(memory_format=TRAIN_MEMORY_FORMAT)
    tr = Trainer(g, d, content, critic_steps=critic_steps, seed=0, amp=amp)
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, 3, crop, crop, generator=gen) * 2 - 1).to(
        device, memory_format=TRAIN_MEMORY_FORMAT)
    y = (torch.rand(batch, 3, crop, crop, generator=gen) * 2 - 1).to(
        device, memory_format=TRAIN_MEMORY_FORMAT)
    for _ in range(3):  # warm-up: oneDNN builds its bf16 kernels over the first few steps
        tr.step(x, y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        tr.step(x, y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t), count_parameters(g), count_parameters(d)


def _bf16_units(device) -> str:
    """Which bf16 units the CPU has, from /proc/cpuinfo (Linux), for the table's note."""
    if device.type != "cpu":
        return ""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return ""
    units = [name for flag, name in (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"))
             if flag in flags]
    return f"; this CPU has {' and '.join(units)}" if units else "; this CPU has no bf16 units"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads [torch's default].")
    ap.add_argument("--no-write", action="store_true", help="Print only; leave RESULTS.md alone.")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    header = machine_line()
    rows = []
    # (config, perceptual, critic steps): the paper's step, and the small config's content-only
    # step (--critic-steps 0) that the CPU quality run uses.
    cases = [("small", False, 5), ("small", True, 5), ("small", False, 0), ("paper", False, 5),
             ("paper", True, 5)]
    for config, perceptual, critic_steps in cases:
        crop, batch = CONFIG_DEFAULTS[config]
        for precision in ("fp32", "bf16"):
            rate, ng, nd = steps_per_second(config, crop=crop, batch=batch, steps=args.steps,
                                            device=device, perceptual=perceptual,
                                            critic_steps=critic_steps, precision=precision)
            row = (f"| {config} | {ng / 1e6:.2f}M / {nd / 1e6:.2f}M | {crop} | {batch} | "
                   f"{'VGG19 conv3_3' if perceptual else 'L1 pixel'} | {critic_steps} | "
                   f"{precision} | {rate:.3g} | {1 / rate:.3g} | "
                   f"{rate * batch * crop * crop / 1e6:.3g} |")
            print(row, flush=True)
            rows.append(row)
    body = "\n".join([
        f"Measured {header}; device {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s); mean of {args.steps} steps after three warm-up steps. "
        "The machine is shared: the load average says how much of it others were using.",
        "A step = the critic updates (WGAN-GP, per-sample penalty; 5 as DeblurGAN) on the batch and "
        "the generator's output, then one generator update (adversarial + 100 x content loss); "
        "with 0 critic updates, the generator update on the content loss alone. bf16 = "
        f"`--precision bf16` (autocast){_bf16_units(device)}.",
        "",
        "| config | params G / D | crop | batch | content loss | critic steps | precision | "
        "steps/s | s/step | Mpx/s |",
        "| --- | --- | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: |",
        *rows,
    ])
    if not args.no_write:
        write_section(f"Trainer speed ({device.type})", body)
    print(body)


if __name__ == "__main__":
    main()
