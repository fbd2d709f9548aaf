"""The learned blurs' two engines side by side: ONNX Runtime (the CPU's default) against torch.

For the paper-size BGAN generator and UID networks (weights redrawn so that the networks change
the image, as trained ones do), on one thread each (as a pair writer's worker runs them): the time
to make one pair's blurred image from a 256x384 photo, medians of interleaved rounds in this run;
the time to have the network ready in a fresh process (imports, reading the checkpoint, the first
pass); and how far apart the two engines' 8-bit images are.

Run: .venv/bin/python benchmarks/bench_engines.py [--rounds 5] [--no-write]
Writes the "Learned blur: engines" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_line, write_section  # noqa: E402

SHAPE = (256, 384, 3)

#: A fresh process that makes the network ready and blurs one photo; prints seconds to ready.
_READY = """
import sys, time
t = time.perf_counter()
import numpy as np
kind, engine, model = sys.argv[1:4]
photo = np.zeros((64, 64, 3), np.uint8)
if kind == "bgan":
    from blursynth.pairs.bgan import _generator, blur_image
    gen, _ = _generator(model, "cpu", engine)
    blur_image(gen, photo, np.zeros(4, np.float32))
else:
    from blursynth.pairs.uid import _nets, transfer_blur_image
    nets, _ = _nets(model, "cpu", engine)
    transfer_blur_image(nets, photo, np.zeros(nets.z_dim, np.float32))
print(time.perf_counter() - t)
"""


def _models(folder: Path):
    """Paper-size BGAN and UID model folders, weights redrawn from a seeded N(0, std)."""
    import torch

    from blursynth.bgan.model import CONFIGS as BGAN, build_bgan
    from blursynth.nn.runs import BGAN_FORMAT, UID_FORMAT
    from blursynth.uid.model import CONFIGS as UID, build_uid

    def redraw(module, std):
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * std)
        return module.eval()

    gen = redraw(build_bgan(BGAN["paper"], seed=0)[0], 0.02)
    nets = redraw(build_uid(UID["paper"], seed=0), 0.05)
    (folder / "bgan").mkdir()
    (folder / "uid").mkdir()
    torch.save({"format": BGAN_FORMAT, "version": 1, "config": gen.config.to_dict(),
                "generator": gen.state_dict()}, folder / "bgan" / "checkpoint.pt")
    torch.save({"format": UID_FORMAT, "version": 1, "config": nets.config.to_dict(),
                "nets": nets.state_dict()}, folder / "uid" / "checkpoint.pt")
    return folder / "bgan", folder / "uid"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="Print, do not touch RESULTS.md.")
    args = ap.parse_args(argv)
    import numpy as np
    import torch

    from blursynth.pairs.bgan import _generator, blur_image, pair_noise
    from blursynth.pairs.uid import _nets, prior_code, transfer_blur_image

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, SHAPE, dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        bgan, uid = _models(Path(tmp))
        makers = {}
        for engine in ("onnxruntime", "torch"):
            gen, _ = _generator(bgan, "cpu", engine)
            nets, _ = _nets(uid, "cpu", engine)
            makers[("BGAN paper", engine)] = (lambda g=gen: blur_image(g, photo, pair_noise(0, 1)))
            makers[("UID paper", engine)] = (lambda n=nets: transfer_blur_image(n, photo, prior_code(0, 1, 8)))
        images = {key: make() for key, make in makers.items()}  # untimed: the first pass
        times = {key: [] for key in makers}
        for _ in range(args.rounds):
            for key, make in makers.items():
                t = time.perf_counter()
                make()
                times[key].append(time.perf_counter() - t)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        ready = {}
        for _ in range(args.rounds):
            for kind, model in (("bgan", bgan), ("uid", uid)):
                for engine in ("onnxruntime", "torch"):
                    out = subprocess.run([sys.executable, "-c", _READY, kind, engine, str(model)], env=env,
                                         capture_output=True, text=True, check=True).stdout
                    ready.setdefault((kind, engine), []).append(float(out.split()[-1]))
    rows = [
        f"`benchmarks/bench_engines.py`, {machine_line()}.",
        "",
        f"Paper-size networks (weights redrawn from a seeded normal), one thread each; one {SHAPE[0]}x{SHAPE[1]} "
        f"photo's blurred image, median of {args.rounds} interleaved rounds; \"ready\": a fresh process's "
        "imports, checkpoint read and first pass over a 64x64 photo (median of the same rounds); the "
        "8-bit images of the two engines compared.",
        "",
        "| network | ONNX Runtime s | torch s | torch / ORT | ready ORT s | ready torch s | pixels differing "
        "| largest difference |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, kind in (("BGAN paper", "bgan"), ("UID paper", "uid")):
        o, t = (statistics.median(times[(name, e)]) for e in ("onnxruntime", "torch"))
        a, b = images[(name, "onnxruntime")].astype(int), images[(name, "torch")].astype(int)
        ro, rt = (statistics.median(ready[(kind, e)]) for e in ("onnxruntime", "torch"))
        rows.append(f"| {name} | {o:.3f} | {t:.3f} | {t / o:.2f}x | {ro:.2f} | {rt:.2f} | "
                    f"{np.mean(a != b):.2e} | {np.abs(a - b).max()} |")
    text = "\n".join(rows)
    print(text)
    if not args.no_write:
        write_section("Learned blur: engines", text)


if __name__ == "__main__":
    main()
