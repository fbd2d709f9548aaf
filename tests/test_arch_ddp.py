"""Two-process DDP (torchrun, gloo, CPU) for the architectures with a critic: deblurgan-v2
(a double-scale critic returning two score maps), deepdeblur (a generator returning a list of
scales in training) and dbgan, as test_train_loop and test_nafnet run deblurgan and nafnet.
Each is one torchrun launch (about ten seconds, mostly process start and the torch import):
deblurgan-v2 runs in the quick suite, the other two are marked slow."""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

FAST = ["--crop", "32", "--batch-size", "2", "--val-count", "0", "--workers", "0", "--quiet",
        "--critic-steps", "1"]


@pytest.mark.parametrize("name", [
    "deblurgan-v2",  # the fast check: one launch (process start and torch import: most of it)
    pytest.param("deepdeblur", marks=pytest.mark.slow),
    pytest.param("dbgan", marks=pytest.mark.slow),
])
def test_two_process_ddp_run_trains_generator_and_critic(name, tiny_pairs_dataset, tmp_path,
                                                         torchrun_lock):
    from blursynth.train.checkpoints import load_checkpoint

    out, states = tmp_path / "ddp", tmp_path / "states"
    states.mkdir()
    perceptual = [] if name == "deepdeblur" else ["--perceptual", "none"]
    recorder = str(Path(__file__).with_name("ddp_rank_states.py"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           recorder, "train", "--arch", name, "--data", str(tiny_pairs_dataset()),
           "--out", str(out), "--steps", "2", "--log-every", "1", *perceptual, *FAST]
    env = dict(os.environ, BLURSYNTH_TEST_ARCH=name, BLURSYNTH_TEST_STATES=str(states))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    # On failure, say how far each rank got (steps it recorded) and what it printed first: a
    # rank that dies by a signal leaves only the launcher's summary at the end of stderr.
    assert done.returncode == 0, (
        {p.name: len(json.loads(p.read_text())) for p in sorted(states.glob("rank*.json"))},
        done.stderr[:1500], done.stderr[-1500:], done.stdout[-500:])
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
    # After each step both ranks hold the same generator and the same critic (the gradients
    # were averaged), and rank 0's are the checkpoint's, moved off the seed's start.
    from blursynth.train.archs import get_arch

    from .ddp_rank_states import digest

    ranks = [json.loads((states / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len(ranks[0]) == 2 and ranks[0] == ranks[1]
    arch = get_arch(name)
    gen, critic = arch.build(dict(ck["model_config"]), run["settings"]["seed"])
    start = digest(gen), digest(critic)
    gen.load_state_dict(ck["generator"])
    critic.load_state_dict(ck["critic"])
    assert ranks[0][-1] == {"generator": digest(gen), "critic": digest(critic)}
    assert digest(gen) != start[0] and digest(critic) != start[1]
    assert ranks[0][0]["critic"] != ranks[0][1]["critic"]  # stepped at each update
