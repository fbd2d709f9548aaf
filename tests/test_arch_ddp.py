"""Two-process DDP (torchrun, gloo, CPU) for the architectures with a critic: deblurgan-v2
(a double-scale critic returning two score maps), deepdeblur (a generator returning a list of
scales in training) and dbgan, as test_train_loop and test_nafnet run deblurgan and nafnet."""

import csv
import json
import math
import subprocess
import sys

import pytest
import torch

FAST = ["--crop", "32", "--batch-size", "2", "--val-count", "0", "--workers", "0", "--quiet",
        "--critic-steps", "1"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deblurgan-v2", "deepdeblur", "dbgan"])
def test_two_process_ddp_run_trains_generator_and_critic(name, tiny_pairs_dataset, tmp_path,
                                                         torchrun_lock):
    from blursynth.train.loop import load_checkpoint

    out = tmp_path / "ddp"
    perceptual = [] if name == "deepdeblur" else ["--perceptual", "none"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "blursynth", "train", "--arch", name, "--data", str(tiny_pairs_dataset()),
           "--out", str(out), "--steps", "2", "--log-every", "1", *perceptual, *FAST]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 2 and run["settings"]["arch"] == name
    ck = load_checkpoint(out)
    assert ck["arch"] == name and ck["step"] == 2 and len(ck["rng_ranks"]) == 2
    # The critic was wrapped and stepped too: its weights and optimizer state are saved
    # (without DDP's "module." prefix, so a single-process resume loads them).
    assert ck["critic"] is not None and ck["opt_d"] is not None
    assert not any(k.startswith("module.") for k in list(ck["generator"]) + list(ck["critic"]))
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2]
    for r in rows:
        assert math.isfinite(float(r["loss_d"])) and math.isfinite(float(r["loss_content"]))
    # Rank 0's generator moved off its seed's start.
    from blursynth.train.archs import get_arch

    arch = get_arch(name)
    start, _ = arch.build(dict(ck["model_config"]), run["settings"]["seed"])
    moved = [k for k, v in start.state_dict().items()
             if v.is_floating_point() and not torch.equal(v, ck["generator"][k])]
    assert moved
