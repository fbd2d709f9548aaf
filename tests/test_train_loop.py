"""train/loop.py: whole runs (exact resume, mixed sizes, VGG file, DDP under torchrun, bf16),
and evaluate and deblur on a trained run."""

import json
import os

import numpy as np
import pytest
import torch

from blursynth.train.checkpoints import load_checkpoint, load_generator
from blursynth.train.trainer import Trainer

FAST_OPTIONS = {"--crop": "32", "--batch-size": "2", "--perceptual": "none", "--critic-steps": "2",
                "--val-count": "2", "--val-crop": "48"}


def fast(*, without=()):
    """Small, quick training options as CLI arguments, leaving out the options named in ``without``."""
    args = [x for key, value in FAST_OPTIONS.items() if key not in without for x in (key, value)]
    return [*args, "--quiet"]


FAST = fast()


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
    # What a kill during a save leaves (D6), and a sheet of a step after the checkpoint.
    (tmp_path / "b" / ".checkpoint.pt.tmp99999").write_bytes(b"half")
    (tmp_path / "b" / "val" / "step-0000003.png").write_bytes(b"stale")
    b = run_cli(*common, "--out", tmp_path / "b", "--workers", "0", "--resume")
    assert b.code == 0, b.err
    assert not (tmp_path / "b" / ".checkpoint.pt.tmp99999").exists()
    assert sorted(p.name for p in (tmp_path / "b" / "val").iterdir()) == [
        "step-0000002.png", "step-0000004.png"]

    ca, cb = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    _assert_same_weights_and_moments(ca, cb, step=4)
    assert torch.equal(ca["rng"]["gp"], cb["rng"]["gp"])
    # The same bytes, too (strings are interned before saving: D7).
    assert (tmp_path / "a" / "checkpoint.pt").read_bytes() == \
        (tmp_path / "b" / "checkpoint.pt").read_bytes()
    rows = lambda p: [l.rsplit(",", 1)[0] for l in (p / "metrics.csv").read_text().splitlines()]  # noqa: E731
    assert rows(tmp_path / "a") == rows(tmp_path / "b")
    assert len(rows(tmp_path / "a")) == 5
    assert sorted(p.name for p in (tmp_path / "a" / "val").iterdir()) == [
        "step-0000002.png", "step-0000004.png"]


def _dying_at(monkeypatch, n):
    """Trainer.step raises KeyboardInterrupt (Ctrl-C, or a kill) at its ``n``-th call."""
    calls, real_step = {"n": 0}, Trainer.step

    def dying_step(self, blurred, sharp):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real_step(self, blurred, sharp)

    monkeypatch.setattr(Trainer, "step", dying_step)
    return lambda: monkeypatch.setattr(Trainer, "step", real_step)


def _rows(out):
    """metrics.csv without its seconds column (wall-clock time)."""
    return [line.rsplit(",", 1)[0] for line in (out / "metrics.csv").read_text().splitlines()]


def test_run_stopped_before_its_first_checkpoint_starts_again_as_a_new_run(
        tiny_pairs_dataset, tmp_path, run_cli, monkeypatch):
    """Rerun with --resume, it is a new run ("resume": false in run.json) with the bytes of a run
    never stopped; its metrics rows were on disk before it stopped (one per log step)."""
    ds = tiny_pairs_dataset()
    common = ["train", "--data", ds, "--steps", "3", "--checkpoint-every", "10", "--val-every",
              "10", "--log-every", "1", "--workers", "0", *FAST]
    a = run_cli(*common, "--out", tmp_path / "a")
    assert a.code == 0, a.err
    restore = _dying_at(monkeypatch, 3)
    b = run_cli(*common, "--out", tmp_path / "b")
    assert b.code == 130 and "before the first checkpoint" in b.err
    assert _rows(tmp_path / "b") == _rows(tmp_path / "a")[:3]  # header, steps 1 and 2
    restore()
    b = run_cli(*common, "--out", tmp_path / "b", "--resume")
    assert b.code == 0, b.err
    assert json.loads((tmp_path / "b" / "run.json").read_text())["settings"]["resume"] is False
    assert (tmp_path / "a" / "checkpoint.pt").read_bytes() == \
        (tmp_path / "b" / "checkpoint.pt").read_bytes()
    assert _rows(tmp_path / "b") == _rows(tmp_path / "a")


def test_a_kill_between_metrics_and_checkpoint_loses_no_metrics_row(tiny_pairs_dataset, tmp_path,
                                                                    run_cli, monkeypatch):
    """D6: the first metrics write once a checkpoint exists is killed; the resumed run's
    metrics.csv has every row of a run that was never stopped."""
    from blursynth.nn import runs

    ds = tiny_pairs_dataset()
    common = ["train", "--data", ds, "--steps", "4", "--checkpoint-every", "2", "--log-every",
              "1", "--val-every", "10", "--workers", "0", *FAST]
    a = run_cli(*common, "--out", tmp_path / "a")
    assert a.code == 0, a.err
    real_save = runs.MetricsLog.save

    def dying_save(self):
        if (self.path.parent / "checkpoint.pt").exists():
            raise KeyboardInterrupt
        real_save(self)

    monkeypatch.setattr(runs.MetricsLog, "save", dying_save)
    b = run_cli(*common, "--out", tmp_path / "b")
    assert b.code == 130
    monkeypatch.setattr(runs.MetricsLog, "save", real_save)
    b = run_cli(*common, "--out", tmp_path / "b", "--resume")
    assert b.code == 0, b.err
    assert _rows(tmp_path / "b") == _rows(tmp_path / "a") and len(_rows(tmp_path / "a")) == 5


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_bytes_of_one_never_stopped(tiny_pairs_dataset,
                                                                           tmp_path, run_cli):
    """D7 with a real kill -9 of the command (as soon as its first checkpoint is on disk, so
    possibly in the middle of the next save): --resume ends with the same checkpoint bytes and
    metrics rows, and no temporary file is left."""
    import signal
    import subprocess
    import sys
    import time

    ds = tiny_pairs_dataset()
    common = ["train", "--data", str(ds), "--steps", "6", "--checkpoint-every", "1",
              "--log-every", "1", "--val-every", "3", "--workers", "0", *FAST]
    # The uninterrupted run is a process of its own too: in this test process, earlier tests
    # may have changed torch's thread count, and with it the float sums of a step.
    a = subprocess.run([sys.executable, "-m", "blursynth", *common, "--out", str(tmp_path / "a")],
                       capture_output=True, text=True)
    assert a.returncode == 0, a.stderr
    b = tmp_path / "b"
    proc = subprocess.Popen([sys.executable, "-m", "blursynth", *common, "--out", str(b)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (b / "checkpoint.pt").exists() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = subprocess.run([sys.executable, "-m", "blursynth", *common, "--out", str(b), "--resume"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a" / "checkpoint.pt").read_bytes() == (b / "checkpoint.pt").read_bytes()
    assert _rows(b) == _rows(tmp_path / "a")
    assert sorted(p.name for p in b.rglob(".*")) == [".blursynth.lock"]


def test_validation_sheets_label_their_columns_and_give_each_rows_psnr(tiny_pairs_dataset,
                                                                      tmp_path, run_cli):
    from blursynth.nn.runs import STRIP
    from blursynth.sources.photos import load_rgb8

    r = run_cli("train", "--data", tiny_pairs_dataset(), "--out", tmp_path / "r", "--steps", "1",
                "--workers", "0", "--val-fraction", "0.5", *FAST)
    assert r.code == 0, r.err
    sheet, _ = load_rgb8(tmp_path / "r" / "val" / "step-0000001.png")
    assert sheet.shape == (STRIP + 2 * (STRIP + 48), 3 * 48, 3)  # --val-count 2, --val-crop 48
    text = (sheet[:STRIP].max(axis=2) > 100).any(axis=0)
    assert all(text[x:x + 48].any() for x in (0, 48, 96))  # blurred | deblurred | sharp
    note = (sheet[STRIP:2 * STRIP].max(axis=2) > 100).any(axis=0)
    assert note[:48].any() and note[48:96].any() and not note[96:].any()  # two PSNRs


def _dataset_with_a_corrupt_image(root, bad_row):
    """12 tiny pairs whose row ``bad_row`` holds a cut-off PNG (its shard's hash is right)."""

    from blursynth.config import fingerprint
    from blursynth.dataset import PAIR_SCHEMA, write_dataset

    from .conftest import _tiny_pair_rows

    fp = fingerprint({"corrupt": bad_row})

    def rows(start, stop):
        made = _tiny_pair_rows(start, stop, size=(48, 64), seed=0, source="trajectory", fp=fp)
        for i, row in zip(range(start, stop), made):
            if i == bad_row:
                row["blurred"] = dict(row["blurred"], bytes=row["blurred"]["bytes"][:50])
            yield row

    write_dataset(root, kind="pairs", schema=PAIR_SCHEMA, n_items=12, shard_size=4,
                  make_rows=rows, fingerprint=fp, command={"corrupt": bad_row}, progress=False)
    return root


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_corrupt_image_mid_training_stops_without_leaving_a_half_run(tmp_path, run_cli,
                                                                       workers):
    """Row 1 is not among the pairs train probes before it starts; it is drawn a few steps in.
    A new run stopped by it leaves nothing; a run with a checkpoint keeps it (and its records)
    to be resumed once the data is fixed."""
    from .conftest import error_line

    ds = _dataset_with_a_corrupt_image(tmp_path / "ds", bad_row=1)
    common = ["train", "--data", ds, "--steps", "20", "--log-every", "1", "--val-fraction", "0",
              "--workers", workers, *FAST]
    r = run_cli(*common, "--out", tmp_path / "new" / "run", "--checkpoint-every", "50")
    assert r.code == 2 and "row 1 blurred" in error_line(r)
    assert len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()
    r = run_cli(*common, "--out", tmp_path / "kept", "--checkpoint-every", "2")
    assert r.code == 2 and "row 1 blurred" in error_line(r)
    step = load_checkpoint(tmp_path / "kept")["step"]
    assert 2 <= step < 20
    assert len(_rows(tmp_path / "kept")) >= step + 1
    assert (tmp_path / "kept" / "run.json").is_file()


def test_train_warns_when_two_datasets_share_their_kernel_draws(tmp_path, run_cli):
    """The demo's photos and leaves, blurred from one bank with --seed 0: pair i of each has
    the same kernel. Another --seed makes no warning."""
    from skimage import data

    from blursynth.sources.photos import save_rgb8

    save_rgb8(tmp_path / "photos" / "a.png", data.astronaut()[:80, :96])
    save_rgb8(tmp_path / "leaves" / "b.png", data.chelsea()[:80, :96])
    r = run_cli("trajectories", "--n", "8", "--canvas", "16", "--length", "10", "--out",
                tmp_path / "bank")
    assert r.code == 0, r.err
    for name, seed in (("photos", 0), ("leaves", 0), ("other", 1)):
        src = tmp_path / ("photos" if name == "other" else name)
        r = run_cli("blur", src, "--kernels", tmp_path / "bank", "--out", tmp_path / f"p-{name}",
                    "--crop", "48x48", "--per-image", "2", "--seed", seed)
        assert r.code == 0, r.err
    args = ["--steps", "1", "--workers", "0", "--val-fraction", "0", *FAST]
    r = run_cli("train", "--data", tmp_path / "p-photos", "--data", tmp_path / "p-leaves:2",
                "--out", tmp_path / "r1", *args)
    assert r.code == 0, r.err
    warning = [line for line in r.err.splitlines() if "share their kernel draws" in line]
    assert len(warning) == 1 and "--seed 0" in warning[0] and "p-leaves" in warning[0]
    r = run_cli("train", "--data", tmp_path / "p-photos", "--data", tmp_path / "p-other",
                "--out", tmp_path / "r2", *args)
    assert r.code == 0, r.err
    assert "share their kernel draws" not in r.err


def test_train_runs_on_a_dataset_of_mixed_sizes(run_cli, tiny_pairs_dataset, tmp_path):
    path = tiny_pairs_dataset(n=8, size=((48, 64), (24, 32)))
    done = run_cli("train", "--data", path, "--out", tmp_path / "r", "--steps", "2",
                   "--workers", "0", "--val-fraction", "0", *FAST)
    assert done.code == 0, done.err
    assert "smaller than --crop 32" in done.err


def test_train_with_vgg_weights_file_records_it(tiny_pairs_dataset, tmp_path, run_cli):
    from blursynth.nn.vgg import VGG19Features

    vgg = tmp_path / "vgg19.pth"
    torch.save(VGG19Features("conv3_3").state_dict(), vgg)  # random weights, torchvision names
    r = run_cli("train", "--data", tiny_pairs_dataset(), "--out", tmp_path / "run", "--steps", "1",
                "--perceptual", "vgg", "--vgg-weights", vgg, "--workers", "0",
                *fast(without=["--perceptual"]))
    assert r.code == 0, r.err
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["content_loss"] == {"kind": "vgg19-conv3_3", "weights": str(vgg)}


def test_out_holding_the_users_files_is_refused_before_missing_vgg_weights(tiny_pairs_dataset, tmp_path,
                                                                          run_cli):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.png").write_bytes(b"not ours")
    r = run_cli("train", "--data", tiny_pairs_dataset(), "--out", mine, "--steps", "1",
                "--perceptual", "vgg", "--vgg-weights", tmp_path / "none.pth", "--workers", "0",
                *fast(without=["--perceptual"]))
    assert r.code == 2 and "not a training run (it holds 'holiday.png')" in r.err, r.err
    assert "vgg" not in r.err.lower()
    assert sorted(p.name for p in mine.iterdir()) == ["holiday.png"]


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


def test_bf16_on_cpu_trains_and_is_recorded(tiny_pairs_dataset, tmp_path, run_cli):
    # bfloat16 autocast on the CPU: the run learns, says so in run.json, and repeats exactly.
    ds = tiny_pairs_dataset()
    outs = []
    for name in ("a", "b"):
        r = run_cli("train", "--data", f"{ds}:1", "--steps", "3", "--precision", "bf16",
                    "--critic-steps", "0", "--workers", "0", "--out", tmp_path / name,
                    *fast(without=["--critic-steps"]))
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
                "--workers", "0", "--out", tmp_path / "c", *fast(without=["--critic-steps"]))
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
                *fast(without=["--critic-steps"]))
    assert r.code == 2
    assert "trained in fp32" in r.err and "--precision fp32" in r.err
    assert (tmp_path / "c" / "checkpoint.pt").read_bytes() == before


@pytest.mark.slow  # starts a subprocess
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="lists processes through /proc")
def test_sigterm_to_the_group_of_a_run_with_loader_workers_is_one_line(tiny_pairs_dataset, tmp_path):
    # The DataLoader's workers die of the same SIGTERM; its iterator's finaliser reports that,
    # which after a stop is noise: the command says one line.
    import signal
    import sys

    from .test_row_feed import _start_with_pool

    cmd = [sys.executable, "-m", "blursynth", "train", "--data", str(tiny_pairs_dataset()), "--steps", "100000",
           "--out", str(tmp_path / "run"), "--workers", "2", *FAST]
    proc, _ = _start_with_pool(cmd, 2)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "step/s" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: terminated (SIGTERM)"), err
