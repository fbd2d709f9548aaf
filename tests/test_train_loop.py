"""Trainer: learning on a fixed batch, exact resume, weighted mixing, evaluate and deblur."""

import json
import os

import numpy as np
import pytest
import torch

from blursynth.train.data import MixedPairs, PositionSampler, split_indices
from blursynth.train.losses import ContentLoss
from blursynth.train.loop import load_checkpoint, load_generator
from blursynth.train.models import CONFIGS, build_models
from blursynth.train.trainer import Trainer

FAST = ["--crop", "32", "--batch-size", "2", "--perceptual", "none", "--critic-steps", "2",
        "--val-count", "2", "--val-crop", "48", "--quiet"]


def test_small_config_reduces_loss_on_a_fixed_batch():
    g, d = build_models(CONFIGS["small"], seed=0)
    trainer = Trainer(g, d, ContentLoss(None), lr=1e-3, critic_steps=1, seed=0)
    torch_rng = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, 32, 32, generator=torch_rng) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(sharp, 5, stride=1, padding=2,
                                             count_include_pad=False)
    losses = [trainer.step(blurred, sharp)["loss_content"] for _ in range(16)]
    start, end = np.mean(losses[:3]), np.mean(losses[-3:])
    assert end < 0.8 * start, losses  # about 0.53 -> 0.38 here


def _weights(ckpt):
    return {f"{part}.{k}": v for part in ("generator", "critic") for k, v in ckpt[part].items()}


def _assert_same_weights_and_moments(ca, cb, *, step):
    assert ca["step"] == cb["step"] == step
    wa, wb = _weights(ca), _weights(cb)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert ca["opt_g"]["state"][0]["exp_avg"].equal(cb["opt_g"]["state"][0]["exp_avg"])


def test_resume_after_interruption_equals_uninterrupted_run(tiny_pairs_dataset, tmp_path,
                                                           run_cli, monkeypatch):
    ds = tiny_pairs_dataset()
    common = ["train", "--data", f"{ds}:1", "--steps", "4", "--checkpoint-every", "2",
              "--val-every", "2", "--log-every", "1", *FAST]
    a = run_cli(*common, "--out", tmp_path / "a", "--workers", "1")
    assert a.code == 0, a.err

    calls = {"n": 0}
    real_step = Trainer.step

    def dying_step(self, blurred, sharp):
        calls["n"] += 1
        if calls["n"] == 3:  # killed during step 3, after the step-2 checkpoint
            raise KeyboardInterrupt
        return real_step(self, blurred, sharp)

    monkeypatch.setattr(Trainer, "step", dying_step)
    b = run_cli(*common, "--out", tmp_path / "b", "--workers", "0")
    assert b.code == 130 and "--resume" in b.err
    assert load_checkpoint(tmp_path / "b")["step"] == 2
    monkeypatch.setattr(Trainer, "step", real_step)
    b = run_cli(*common, "--out", tmp_path / "b", "--workers", "0", "--resume")
    assert b.code == 0, b.err

    ca, cb = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    _assert_same_weights_and_moments(ca, cb, step=4)
    assert torch.equal(ca["rng"]["gp"], cb["rng"]["gp"])
    rows = lambda p: [l.rsplit(",", 1)[0] for l in (p / "metrics.csv").read_text().splitlines()]  # noqa: E731
    assert rows(tmp_path / "a") == rows(tmp_path / "b")
    assert len(rows(tmp_path / "a")) == 5
    assert sorted(p.name for p in (tmp_path / "a" / "val").iterdir()) == [
        "step-0000002.png", "step-0000004.png"]


def test_mixing_frequencies_match_weights_and_are_seeded(tiny_pairs_dataset):
    a, b = tiny_pairs_dataset(), tiny_pairs_dataset(n=6, seed=1)
    mix = MixedPairs([a, b], [np.arange(8), np.arange(6)], [2.0, 1.0], seed=7, crop=32)
    picks = [mix.locate(k) for k in range(3000)]
    share_a = np.mean([s == 0 for s, _ in picks])
    assert abs(share_a - 2 / 3) < 0.03
    rows_a = np.bincount([r for s, r in picks if s == 0], minlength=8)
    assert rows_a.min() > 0.6 * rows_a.mean()  # uniform over the dataset's rows
    again = MixedPairs([a, b], [np.arange(8), np.arange(6)], [2.0, 1.0], seed=7, crop=32)
    assert [again.locate(k) for k in range(50)] == picks[:50]
    other = MixedPairs([a, b], [np.arange(8), np.arange(6)], [2.0, 1.0], seed=8, crop=32)
    assert [other.locate(k) for k in range(50)] != picks[:50]
    # A sample is a function of its position: the same crop whatever was read before.
    x1, y1 = mix[123]
    mix[5]
    x2, y2 = mix[123]
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and x1.shape == (3, 32, 32)


def test_pairs_smaller_than_the_crop_are_skipped_by_a_seeded_redraw(tiny_pairs_dataset, capfd):
    from blursynth.errors import DatasetError
    from blursynth.train.data import STREAM_CROP, aligned_crop, open_pairs, to_tensor
    from blursynth._rng import sample_rng

    path = tiny_pairs_dataset(n=8, size=((48, 64), (24, 32)))  # odd rows are 24x32
    ds = open_pairs(path)
    mix = MixedPairs([path], [np.arange(8)], [1.0], seed=3, crop=32)
    first = [mix.locate(k)[1] for k in range(40)]
    assert {r % 2 for r in first} == {0, 1}  # both sizes are picked first
    for k, row in enumerate(first):
        b, s = mix[k]
        assert b.shape == s.shape == (3, 32, 32)
        if row % 2 == 0:  # a pair that fits reads exactly what it read before the rule
            pair = ds[row]
            eb, es = aligned_crop(pair["blurred"], pair["sharp"], 32, sample_rng(3, k, STREAM_CROP))
            assert torch.equal(b, to_tensor(eb)) and torch.equal(s, to_tensor(es))
    again = MixedPairs([path], [np.arange(8)], [1.0], seed=3, crop=32)
    for k in (1, 7, 30):
        assert all(torch.equal(u, v) for u, v in zip(mix[k], again[k]))
    err = capfd.readouterr().err
    assert err.count("warning:") == 2  # one line per dataset and process (mix, again)
    assert "24x32, smaller than --crop 32" in err and "skipped" in err
    with pytest.raises(DatasetError, match="no training pair is as large as --crop 60"):
        MixedPairs([path], [np.arange(8)], [1.0], seed=3, crop=60)[0]
    # One fitting pair among many small ones is still found once the random draws run out.
    rare = tiny_pairs_dataset(n=80, size=((48, 64),) + ((24, 32),) * 79)  # only row 0 fits
    mix = MixedPairs([rare], [np.arange(80)], [1.0], seed=3, crop=32)
    b, _ = mix[next(k for k in range(50) if mix.locate(k)[1] != 0)]
    row0 = open_pairs(rare)[0]
    assert any(torch.equal(b, to_tensor(row0["blurred"][y:y + 32, x:x + 32]))
               or torch.equal(b, to_tensor(row0["blurred"][y:y + 32, x:x + 32][:, ::-1]))
               for y in range(48 - 31) for x in range(64 - 31))


def test_train_runs_on_a_dataset_of_mixed_sizes(run_cli, tiny_pairs_dataset, tmp_path):
    path = tiny_pairs_dataset(n=8, size=((48, 64), (24, 32)))
    done = run_cli("train", "--data", path, "--out", tmp_path / "r", "--steps", "2",
                   "--workers", "0", "--val-fraction", "0", *FAST)
    assert done.code == 0, done.err
    assert "smaller than --crop 32" in done.err


def test_position_sampler_splits_steps_across_ranks():
    r0 = list(PositionSampler(1, 3, 2, rank=0, world_size=2))
    r1 = list(PositionSampler(1, 3, 2, rank=1, world_size=2))
    assert r0 == [4, 5, 8, 9] and r1 == [6, 7, 10, 11]


def test_heldout_split_is_deterministic_and_disjoint():
    ids = [f"{i:09d}" for i in range(500)]
    tr, ho = split_indices(ids, 0.1)
    tr2, ho2 = split_indices(ids[::-1], 0.1)
    assert not set(tr) & set(ho)
    assert sorted(ids[i] for i in ho) == sorted(ids[::-1][i] for i in ho2)


def test_train_with_vgg_weights_file_records_it(tiny_pairs_dataset, tmp_path, run_cli):
    from blursynth.nn.vgg import VGG19Features

    vgg = tmp_path / "vgg19.pth"
    torch.save(VGG19Features("conv3_3").state_dict(), vgg)  # random weights, torchvision names
    fast = [x for x in FAST if x not in ("--perceptual", "none")]
    r = run_cli("train", "--data", tiny_pairs_dataset(), "--out", tmp_path / "run", "--steps", "1",
                "--perceptual", "vgg", "--vgg-weights", vgg, "--workers", "0", *fast)
    assert r.code == 0, r.err
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["content_loss"] == {"kind": "vgg19-conv3_3", "weights": str(vgg)}


def test_evaluate_and_deblur(tiny_pairs_dataset, tmp_path, run_cli):
    from blursynth.dataset import PairDataset
    from blursynth.sources.photos import load_rgb8, save_rgb8
    from blursynth.train.evaluate import deblur_array
    from blursynth.train.metrics import psnr

    ds = tiny_pairs_dataset()
    r = run_cli("train", "--data", ds, "--out", tmp_path / "run", "--steps", "1", "--workers", "0",
                *FAST)
    assert r.code == 0, r.err
    r = run_cli("evaluate", "--model", tmp_path / "run", "--data", ds, "--json",
                tmp_path / "e.json", "--quiet")
    assert r.code == 0, r.err
    assert "blurred input" in r.out and "deblurred" in r.out
    report = json.loads((tmp_path / "e.json").read_text())
    pairs = PairDataset(ds)
    t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].double() / 255  # noqa: E731
    want = np.mean([float(psnr(t(pairs[i]["blurred"]), t(pairs[i]["sharp"])))
                    for i in range(len(pairs))])
    assert report["n_pairs"] == len(pairs)
    assert report["blurred"]["psnr"] == pytest.approx(want)
    assert report["gain_psnr_db"] == pytest.approx(report["deblurred"]["psnr"] - want)

    photo = np.ascontiguousarray(np.tile(pairs[0]["blurred"], (3, 3, 1))[:141, :170])
    save_rgb8(tmp_path / "in" / "p.png", photo)
    r = run_cli("deblur", "--model", tmp_path / "run", tmp_path / "in", "--out", tmp_path / "out",
                "--tile", "192", "--blend", "8", "--quiet")  # 2 x 2 tiles
    assert r.code == 0, r.err
    got, _ = load_rgb8(tmp_path / "out" / "p.png")
    gen, _ = load_generator(tmp_path / "run")
    whole = deblur_array(gen, photo, tile=4096)
    assert got.shape == photo.shape
    assert np.abs(got.astype(int) - whole.astype(int)).max() <= 1  # rounding at most


def test_each_rank_restores_its_own_generators():
    g, d = build_models(CONFIGS["small"], seed=0)
    ranks = [Trainer(g, d, ContentLoss(None), seed=3, rank=r) for r in range(2)]
    saved = ranks[0].state_dict()
    saved["rng_ranks"] = [t.rng_state() for t in ranks]
    fresh = Trainer(g, d, ContentLoss(None), seed=3, rank=1)
    fresh.rng_gp.manual_seed(99)  # a state that loading must replace
    fresh.load_state_dict(saved, rank=1)
    assert torch.equal(fresh.rng_gp.get_state(), ranks[1].rng_gp.get_state())
    assert not torch.equal(fresh.rng_gp.get_state(), ranks[0].rng_gp.get_state())
    # A single-process checkpoint holds rank 0's streams only: rank 1 keeps its own keyed ones.
    single = ranks[0].state_dict()
    other = Trainer(g, d, ContentLoss(None), seed=3, rank=1)
    other.load_state_dict(single, rank=1)
    assert torch.equal(other.rng_dropout.get_state(), ranks[1].rng_dropout.get_state())


@pytest.mark.slow
def test_two_process_ddp_run_on_cpu_saves_every_ranks_generators(tiny_pairs_dataset, tmp_path,
                                                                  torchrun_lock):
    """torchrun, two CPU processes (gloo): the DistributedDataParallel path end to end."""
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "blursynth", "train", "--data", str(tiny_pairs_dataset()), "--out", str(out),
           "--steps", "4", "--checkpoint-every", "2", "--workers", "0", *FAST]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    ckpt = load_checkpoint(out)
    assert ckpt["step"] == 4 and len(ckpt["rng_ranks"]) == 2
    a, b = ckpt["rng_ranks"]
    assert not torch.equal(a["dropout"], b["dropout"])  # ranks draw their own masks
    assert torch.equal(a["gp"], ckpt["rng"]["gp"])  # rank 0's are also the single-process record


@pytest.mark.slow
def test_two_process_ddp_run_resumed_after_a_kill_equals_an_uninterrupted_one(tiny_pairs_dataset,
                                                                             tmp_path,
                                                                             torchrun_lock):
    """torchrun, two CPU processes: rank 0 stops during step 3 (after the step-2 checkpoint),
    torchrun stops rank 1, the run is resumed, and it ends with the weights, optimiser moments
    and every rank's generator states of a run that was never stopped."""
    import subprocess
    import sys
    from pathlib import Path

    ds = str(tiny_pairs_dataset())
    args = ["train", "--data", ds, "--steps", "4", "--checkpoint-every", "2", "--workers", "0",
            "--dropout", "0.5", *FAST]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2"]
    dying = str(Path(__file__).with_name("ddp_dying_train.py"))

    def run(script, out, *extra, env=None):
        cmd = [*torchrun, *script, *args, "--out", str(out), *extra]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                              env={**os.environ, **(env or {})})

    a = run(["-m", "blursynth"], tmp_path / "a")
    assert a.returncode == 0, a.stderr[-3000:]
    b = run([dying], tmp_path / "b", env={"BLURSYNTH_TEST_DIE_AT": "3"})
    assert b.returncode != 0 and "--resume" in b.stderr, b.stderr[-3000:]
    assert load_checkpoint(tmp_path / "b")["step"] == 2
    b = run(["-m", "blursynth"], tmp_path / "b", "--resume")
    assert b.returncode == 0, b.stderr[-3000:]

    ca, cb = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    _assert_same_weights_and_moments(ca, cb, step=4)
    for ra, rb in zip(ca["rng_ranks"], cb["rng_ranks"], strict=True):
        assert torch.equal(ra["gp"], rb["gp"]) and torch.equal(ra["dropout"], rb["dropout"])


def test_content_only_training_leaves_the_critic_alone():
    # --critic-steps 0: the generator learns from the content loss; the critic is not updated.
    g, d = build_models(CONFIGS["small"], seed=0)
    before = {k: v.clone() for k, v in d.state_dict().items()}
    trainer = Trainer(g, d, ContentLoss(None), lr=1e-3, critic_steps=0, seed=0)
    torch_rng = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, 32, 32, generator=torch_rng) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(sharp, 5, stride=1, padding=2,
                                             count_include_pad=False)
    steps = [trainer.step(blurred, sharp) for _ in range(16)]
    losses = [s["loss_content"] for s in steps]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
    assert all(np.isnan(s["loss_d"]) and np.isnan(s["loss_adv"]) for s in steps)
    assert steps[-1]["loss_g"] == pytest.approx(100.0 * losses[-1], rel=1e-6)
    for k, v in d.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_bf16_on_cpu_trains_and_is_recorded(tiny_pairs_dataset, tmp_path, run_cli):
    # bfloat16 autocast on the CPU: the run learns, says so in run.json, and repeats exactly.
    ds = tiny_pairs_dataset()
    outs = []
    for name in ("a", "b"):
        r = run_cli("train", "--data", f"{ds}:1", "--steps", "3", "--precision", "bf16",
                    "--critic-steps", "0", "--workers", "0", "--out", tmp_path / name,
                    *FAST[:6], *FAST[8:])  # FAST without its --critic-steps 2
        assert r.code == 0, r.err
        outs.append(load_checkpoint(tmp_path / name))
    meta = json.loads((tmp_path / "a" / "run.json").read_text())
    assert meta["precision"] == "bf16"
    assert meta["settings"]["critic_steps"] == 0
    _assert_same_weights_and_moments(outs[0], outs[1], step=3)
    header, *rows = (tmp_path / "a" / "metrics.csv").read_text().splitlines()
    cols = header.split(",")
    assert rows and all(r.split(",")[cols.index("loss_d")] == "nan" for r in rows)
    assert outs[0]["precision"] == "bf16"
    # fp32 stays the CPU default, and the same run in fp32 ends elsewhere (autocast really ran)
    r = run_cli("train", "--data", f"{ds}:1", "--steps", "3", "--critic-steps", "0",
                "--workers", "0", "--out", tmp_path / "c", *FAST[:6], *FAST[8:])
    assert r.code == 0, r.err
    assert json.loads((tmp_path / "c" / "run.json").read_text())["precision"] == "fp32"
    fp32 = load_checkpoint(tmp_path / "c")
    assert fp32["precision"] == "fp32"
    assert any(not torch.equal(fp32["generator"][k], outs[0]["generator"][k])
               for k in fp32["generator"])
    # a run resumes only in the precision it was trained in
    before = (tmp_path / "c" / "checkpoint.pt").read_bytes()
    r = run_cli("train", "--data", f"{ds}:1", "--steps", "4", "--critic-steps", "0",
                "--workers", "0", "--out", tmp_path / "c", "--resume", "--precision", "bf16",
                *FAST[:6], *FAST[8:])
    assert r.code == 2
    assert "trained in fp32" in r.err and "--precision fp32" in r.err
    assert (tmp_path / "c" / "checkpoint.pt").read_bytes() == before
