"""``blursynth bgan train|blur`` end to end on tiny data: run folder, resume, pairs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from blursynth.dataset import PairDataset
from blursynth.sources.photos import load_rgb8, save_rgb8

from .conftest import error_line

PATCH = 32
TRAIN = ("--config", "tiny", "--patch", PATCH, "--batch-size", 2, "--perceptual", "none",
         "--quiet", "--log-every", 1)


def _box_blur_x(img, k=7):
    pad = np.pad(img.astype(np.float64), ((0, 0), (k // 2, k // 2), (0, 0)), mode="edge")
    out = sum(pad[:, i:i + img.shape[1]] for i in range(k)) / k
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """Three sharp crops of one photo, three horizontally blurred crops of another."""
    from skimage import data

    root = tmp_path_factory.mktemp("bgan_sets")
    a, c = data.astronaut(), data.chelsea()
    for i in range(3):
        save_rgb8(root / "sharp" / f"s{i}.png", a[60 * i:60 * i + 40, 70 * i:70 * i + 48])
        save_rgb8(root / "real" / f"r{i}.png", _box_blur_x(c[50 * i:50 * i + 40, 60 * i:60 * i + 48]))
    save_rgb8(root / "photos" / "big.png", a[:70, :90])
    save_rgb8(root / "photos" / "sub" / "small.png", c[:13, :20])
    return root


@pytest.fixture(scope="module")
def model(sets, tmp_path_factory):
    """A tiny model trained for 3 steps by the CLI."""
    from blursynth.cli import main

    out = tmp_path_factory.mktemp("bgan_model") / "m"
    code = main(["bgan", "train", "--sharp", str(sets / "sharp"), "--real-blur",
                 str(sets / "real"), "--out", str(out), "--steps", "3", "--sample-every", "2",
                 *map(str, TRAIN)])
    assert code == 0
    return out


def test_train_writes_run_folder(model):
    assert (model / "checkpoint.pt").is_file() and (model / "run.json").is_file()
    info = json.loads((model / "model.json").read_text())
    assert info["format"] == "blursynth-bgan" and info["step"] == 3
    assert info["loss_weights"] == {"perceptual": 0.005, "blur": 0.01}
    assert info["perceptual"]["kind"] == "pooled-l1"
    rows = (model / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,lr,loss_d") and len(rows) == 4
    sheets = sorted(p.name for p in (model / "samples").iterdir())
    assert sheets == ["step-0000002.png", "step-0000003.png"]
    sheet, _ = load_rgb8(model / "samples" / sheets[-1])
    assert sheet.shape == (2 * PATCH, 3 * PATCH, 3)  # batch rows of sharp | generated | real


def test_resume_equals_uninterrupted(sets, tmp_path, run_cli):
    args = ("bgan", "train", "--sharp", sets / "sharp", "--real-blur", sets / "real", *TRAIN)
    straight, split = tmp_path / "a", tmp_path / "b"
    assert run_cli(*args, "--out", straight, "--steps", 4).code == 0
    assert run_cli(*args, "--out", split, "--steps", 2).code == 0
    again = run_cli(*args, "--out", split, "--steps", 4)
    assert again.code == 2 and "--resume" in error_line(again)
    assert run_cli(*args, "--out", split, "--steps", 4, "--resume").code == 0
    fp = [json.loads((d / "model.json").read_text())["fingerprint"] for d in (straight, split)]
    assert fp[0] == fp[1]
    # The same checkpoint bytes and metrics rows (but their seconds) as the run never stopped.
    assert (straight / "checkpoint.pt").read_bytes() == (split / "checkpoint.pt").read_bytes()
    rows = lambda d: [l.rsplit(",", 1)[0] for l in (d / "metrics.csv").read_text().splitlines()]  # noqa: E731
    assert rows(straight) == rows(split) and len(rows(split)) == 5
    other = run_cli(*args, "--out", split, "--steps", 5, "--resume", "--patch", 24)
    assert other.code == 2 and "patch" in error_line(other)


def test_resume_into_a_fresh_folder_says_it_starts_a_new_run(sets, tmp_path, run_cli):
    args = ("bgan", "train", "--sharp", sets / "sharp", "--real-blur", sets / "real", *TRAIN,
            "--steps", 1, "--resume")
    r = run_cli(*args, "--out", tmp_path / "new")
    assert r.code == 0 and "holds no checkpoint to resume; starting a new run" in r.err, r
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    refused = run_cli(*args, "--out", tmp_path / "mine")
    assert refused.code == 2 and "starting a new run" not in refused.err, refused
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_ctrl_c_says_whether_there_is_a_checkpoint_to_resume(sets, tmp_path, run_cli,
                                                            monkeypatch):
    from blursynth.bgan.train import BGANTrainer

    calls, real_step = {"n": 0}, BGANTrainer.step

    def dying_step(self, *args):
        calls["n"] += 1
        if calls["n"] in (1, 3, 6):  # the first run's step 1; the second's 2; the third's 3
            raise KeyboardInterrupt
        return real_step(self, *args)

    monkeypatch.setattr(BGANTrainer, "step", dying_step)
    r = _train(run_cli, sets, tmp_path / "m", sets / "sharp", sets / "real", "--steps", 3,
               "--checkpoint-every", 1)
    assert r.code == 130 and "before the first checkpoint; rerun the same command" in r.err
    r = _train(run_cli, sets, tmp_path / "m", sets / "sharp", sets / "real", "--steps", 3,
               "--checkpoint-every", 1)
    assert r.code == 130 and "keeps its last checkpoint" in r.err and "--resume" in r.err
    rows = (tmp_path / "m" / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["step", "1"]
    # Metrics rows are on disk at every log step, not only with a checkpoint.
    r = _train(run_cli, sets, tmp_path / "n", sets / "sharp", sets / "real", "--steps", 3,
               "--checkpoint-every", 10)
    assert r.code == 130 and not (tmp_path / "n" / "checkpoint.pt").exists()
    rows = (tmp_path / "n" / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["step", "1", "2"]


def test_train_with_vgg_weights_file(sets, tmp_path, run_cli):
    from blursynth.nn.vgg import VGG19Features

    weights = tmp_path / "vgg19-random.pth"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.save(VGG19Features("conv3_3").state_dict(), weights)
    args = [a for a in TRAIN if a not in ("--perceptual", "none")]
    r = run_cli("bgan", "train", "--sharp", sets / "sharp", "--real-blur", sets / "real",
                "--out", tmp_path / "m", "--steps", 1, *args, "--vgg-weights", weights)
    assert r.code == 0, r.err
    run = json.loads((tmp_path / "m" / "run.json").read_text())
    assert run["perceptual"]["kind"] == "vgg19-conv3_3"
    missing = run_cli("bgan", "train", "--sharp", sets / "sharp", "--real-blur", sets / "real",
                      "--out", tmp_path / "m2", "--steps", 1, *args, "--vgg-weights",
                      tmp_path / "nope.pth")
    assert missing.code == 2 and "--vgg-weights" in error_line(missing)
    assert not (tmp_path / "m2").exists()


def test_out_holding_the_users_files_is_refused_before_missing_vgg_weights(sets, tmp_path, run_cli):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.png").write_bytes(b"not ours")
    args = [a for a in TRAIN if a not in ("--perceptual", "none")]
    r = run_cli("bgan", "train", "--sharp", sets / "sharp", "--real-blur", sets / "real", "--out", mine,
                "--steps", 1, *args, "--vgg-weights", tmp_path / "nope.pth")
    assert r.code == 2 and "not a BGAN model (it holds 'holiday.png')" in error_line(r), r.err
    assert "vgg" not in r.err.lower()
    assert sorted(p.name for p in mine.iterdir()) == ["holiday.png"]


def _shard_bytes(path):
    return {p.name: p.read_bytes() for p in sorted((Path(path) / "data").glob("*.parquet"))}


@pytest.fixture(scope="module")
def strong_model(model, tmp_path_factory):
    """The trained tiny model with its generator weights scaled up 8x, so that its blur and the
    effect of the noise show in 8-bit pixels (3 steps from N(0, 0.01) barely move them)."""
    ckpt = torch.load(model / "checkpoint.pt", weights_only=True)
    ckpt["generator"] = {k: v * 8 if k.endswith("weight") else v
                         for k, v in ckpt["generator"].items()}
    out = tmp_path_factory.mktemp("bgan_strong") / "m"
    out.mkdir()
    torch.save(ckpt, out / "checkpoint.pt")
    return out


@pytest.mark.slow  # two worker processes start (torch imports)
def test_blur_pairs_deterministic_rebuildable(sets, strong_model, tmp_path, run_cli):
    from blursynth.pairs.bgan import pair_noise, rebuild_pair
    from blursynth.bgan.train import load_bgan_generator

    args = ("bgan", "blur", sets / "photos", "--model", strong_model, "--per-image", 2,
            "--shard-size", 3, "--tile", 32, "--seed", 5)
    r = run_cli(*args, "--out", tmp_path / "p1")
    assert r.code == 0, r.err
    assert "wrote 4 rows" in r.out
    assert run_cli(*args, "--out", tmp_path / "p2", "--workers", 2).code == 0
    assert _shard_bytes(tmp_path / "p1") == _shard_bytes(tmp_path / "p2")

    ds = PairDataset(tmp_path / "p1")
    assert len(ds) == 4
    fp = load_bgan_generator(strong_model)[1]["fingerprint"]
    rows = [ds[i] for i in range(len(ds))]
    for i, row in enumerate(rows):
        p = row["params"]
        assert row["source"] == "bgan" and row["seed"] == 5 and row["psf"] is None
        assert p["model_fingerprint"] == fp and p["variant"] == i % 2
        assert p["noise"] == [float(v) for v in pair_noise(5, i)]
        photo, _ = load_rgb8(sets / "photos" / p["photo"])
        assert np.array_equal(row["sharp"], photo)
        assert row["blurred"].shape == photo.shape
        assert not np.array_equal(row["blurred"], photo)
        blurred, sharp = rebuild_pair(row, sets / "photos", model=strong_model)
        assert np.array_equal(blurred, row["blurred"]) and np.array_equal(sharp, row["sharp"])
    # The 70x90 photo ran in tiles of 32 px, the 13x20 one whole.
    assert [r["params"]["photo"] for r in rows] == ["big.png"] * 2 + ["sub/small.png"] * 2
    # Two noise vectors for the same photo give two different blurs.
    assert not np.array_equal(rows[0]["blurred"], rows[1]["blurred"])
    # Another seed draws other noise for the same index.
    assert not np.array_equal(pair_noise(6, 0), pair_noise(5, 0))


@pytest.mark.slow  # two worker processes start (torch imports)
def test_raw_pipeline_bytes_do_not_depend_on_workers(sets, strong_model, tmp_path, run_cli):
    """bgan blur --pipeline raw: the camera, noise levels, noise field and JPEG come from keyed
    streams, so one and two worker processes write the same shards."""
    args = ("bgan", "blur", sets / "photos", "--model", strong_model, "--per-image", 2,
            "--shard-size", 2, "--tile", 32, "--seed", 3, "--pipeline", "raw", "--noise", "model",
            "--raw-bits", "10-14", "--jpeg", "80-95", "--crf", "random")
    assert run_cli(*args, "--out", tmp_path / "w1").code == 0
    r = run_cli(*args, "--out", tmp_path / "w2", "--workers", 2)
    assert r.code == 0, r.err
    one, two = _shard_bytes(tmp_path / "w1"), _shard_bytes(tmp_path / "w2")
    assert len(one) == 2 and one == two
    rows = PairDataset(tmp_path / "w1")
    assert len(rows) == 4 and all(rows[i]["params"]["raw"]["shot_noise"] > 0 for i in range(4))


# --- bad input: one line, exit 2, nothing written ----------------------------------------------

def _train(run_cli, sets, out, sharp, real, *extra):
    return run_cli("bgan", "train", "--sharp", sharp, "--real-blur", real, "--out", out,
                   "--steps", 1, *TRAIN, *extra)


def test_missing_and_empty_real_blur(sets, tmp_path, run_cli):
    r = _train(run_cli, sets, tmp_path / "o", sets / "sharp", tmp_path / "nowhere")
    assert r.code == 2 and "--real-blur" in error_line(r) and "no such" in error_line(r)
    (tmp_path / "empty").mkdir()
    r = _train(run_cli, sets, tmp_path / "o", sets / "sharp", tmp_path / "empty")
    assert r.code == 2 and "no images found" in error_line(r)
    assert not (tmp_path / "o").exists()


def test_same_files_refused(sets, tmp_path, run_cli):
    r = _train(run_cli, sets, tmp_path / "o", sets / "sharp", sets / "sharp")
    assert r.code == 2 and "are the same files" in error_line(r)
    # Byte-identical copies under another name are the same images too.
    for p in (sets / "sharp").iterdir():
        save_rgb8(tmp_path / "copy" / p.name, load_rgb8(p)[0])
        (tmp_path / "copy" / p.name).write_bytes(p.read_bytes())
    r = _train(run_cli, sets, tmp_path / "o", sets / "sharp", tmp_path / "copy")
    assert r.code == 2 and "unpaired" in error_line(r)
    assert not (tmp_path / "o").exists()


def test_images_smaller_than_patch(sets, tmp_path, run_cli):
    r = _train(run_cli, sets, tmp_path / "o", sets / "sharp", sets / "real", "--patch", 44)
    line = error_line(r)
    assert r.code == 2 and "smaller than the 44 px patch" in line and "--patch 40" in line
    assert not (tmp_path / "o").exists()


def test_max_minutes_nan_is_refused(sets, tmp_path, run_cli):
    r = _train(run_cli, sets, tmp_path / "o", sets / "sharp", sets / "real", "--max-minutes", "nan")
    assert r.code == 2 and "--max-minutes" in error_line(r) and "finite" in error_line(r)
    assert not (tmp_path / "o").exists()


def test_out_inside_an_input_folder_is_refused(sets, tmp_path, run_cli):
    import shutil

    shutil.copytree(sets / "sharp", tmp_path / "sharp")
    for out in (tmp_path / "sharp", tmp_path / "sharp" / "model"):
        r = _train(run_cli, sets, out, tmp_path / "sharp", sets / "real")
        assert r.code == 2 and "is inside --sharp" in error_line(r)
    assert sorted(p.name for p in (tmp_path / "sharp").iterdir()) == ["s0.png", "s1.png", "s2.png"]
    r = _train(run_cli, sets, tmp_path / "sharp" / "m", sets / "sharp", tmp_path / "sharp")
    assert r.code == 2 and "is inside --real-blur" in error_line(r)


def test_out_that_is_someone_elses_folder_is_refused(sets, tmp_path, run_cli,
                                                      tiny_pairs_dataset):
    """As train does: a non-empty folder that is not a BGAN model (or a dataset) is not written
    into (bgan train used to refuse only an --out that is a file)."""
    import hashlib

    def snapshot(folder):
        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.png").write_bytes(b"not ours")
    r = _train(run_cli, sets, mine, sets / "sharp", sets / "real")
    assert r.code == 2 and "not a BGAN model (it holds 'holiday.png')" in error_line(r)
    assert snapshot(mine) == {"holiday.png": hashlib.sha256(b"not ours").hexdigest()}
    data = tiny_pairs_dataset()
    before = snapshot(data)
    for resume in ((), ("--resume",)):
        r = _train(run_cli, sets, data, sets / "sharp", sets / "real", *resume)
        assert r.code == 2 and "is a dataset folder" in error_line(r)
    assert snapshot(data) == before
    (tmp_path / "file").write_bytes(b"x")
    r = _train(run_cli, sets, tmp_path / "file", sets / "sharp", sets / "real")
    assert r.code == 2 and "is a file" in error_line(r)
    # A run stopped before its first checkpoint left only its own names: it is reused.
    stopped = tmp_path / "stopped"
    (stopped / "samples").mkdir(parents=True)
    (stopped / "run.json").write_text("{}")
    (stopped / ".checkpoint.pt.tmp123").write_bytes(b"")
    r = _train(run_cli, sets, stopped, sets / "sharp", sets / "real")
    assert r.code == 0, r.err
    assert (stopped / "checkpoint.pt").is_file()


def test_both_trainers_refuse_an_out_another_process_is_writing(sets, model, tmp_path, run_cli,
                                                               tiny_pairs_dataset):
    """D3: a second process holding the folder's lock (as a running train or bgan train does)
    gets one line naming it; the folder, a run in it included, is left as it was."""
    import shutil
    import subprocess
    import sys

    from blursynth.dataset.outputs import LOCK_NAME

    def snapshot(folder):
        return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    hold = ("import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'%d\\n' % os.getpid())\n"
            "print('held', flush=True); time.sleep(120)\n")
    busy, resumed = tmp_path / "busy", tmp_path / "m"
    busy.mkdir()
    shutil.copytree(model, resumed)
    holders = [subprocess.Popen([sys.executable, "-c", hold, str(folder / LOCK_NAME)],
                                stdout=subprocess.PIPE, text=True) for folder in (busy, resumed)]
    try:
        for holder in holders:
            assert holder.stdout.readline() == "held\n"
        before = snapshot(resumed)
        tries = [(busy, holders[0], lambda: _train(run_cli, sets, busy, sets / "sharp",
                                                   sets / "real")),
                 (resumed, holders[1], lambda: _train(run_cli, sets, resumed, sets / "sharp",
                                                      sets / "real", "--steps", 5, "--resume")),
                 (busy, holders[0], lambda: run_cli("train", "--data", tiny_pairs_dataset(),
                                                    "--out", busy, "--steps", 1, "--perceptual",
                                                    "none", "--crop", "32", "--quiet"))]
        for out, holder, attempt in tries:
            r = attempt()
            assert r.code == 2, r.err
            assert error_line(r) == (f"error: --out {out}: another blursynth process (pid "
                                     f"{holder.pid}) is writing there; wait for it to finish or "
                                     "choose another --out.")
        assert sorted(p.name for p in busy.iterdir()) == [LOCK_NAME]
        assert snapshot(resumed) == before
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()


def test_train_checks_the_gpu_index(sets, tmp_path, run_cli, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    r = _train(run_cli, sets, tmp_path / "o", sets / "sharp", sets / "real", "--device", "cuda:7")
    assert r.code == 2 and "--device cuda:7: torch sees 1 CUDA GPU(s)" in error_line(r)
    assert not (tmp_path / "o").exists()


def test_model_of_another_version_or_kind(sets, model, tmp_path, run_cli):
    ckpt = torch.load(model / "checkpoint.pt", weights_only=True)
    ckpt["version"] = 99
    (tmp_path / "old").mkdir()
    torch.save(ckpt, tmp_path / "old" / "checkpoint.pt")
    r = run_cli("bgan", "blur", sets / "photos", "--model", tmp_path / "old", "--out", tmp_path / "p")
    assert r.code == 2 and "version 99" in error_line(r)
    torch.save({"format": "blursynth-deblurgan", "version": 1}, tmp_path / "old" / "checkpoint.pt")
    r = run_cli("bgan", "blur", sets / "photos", "--model", tmp_path / "old", "--out", tmp_path / "p")
    assert r.code == 2 and "not a BGAN model" in error_line(r)
    r = run_cli("bgan", "blur", sets / "photos", "--model", tmp_path / "none", "--out", tmp_path / "p")
    assert r.code == 2 and "no BGAN model" in error_line(r)
    assert not (tmp_path / "p").exists()


def test_each_trainer_names_the_other_kind_of_run_in_its_out(sets, model, tmp_path, run_cli,
                                                             tiny_pairs_dataset):
    deblurgan = tmp_path / "deblurgan"
    deblurgan.mkdir()
    torch.save({"format": "blursynth-deblurgan", "version": 1}, deblurgan / "checkpoint.pt")
    r = _train(run_cli, sets, deblurgan, sets / "sharp", sets / "real")
    assert r.code == 2 and "is a DeblurGAN training run, not a BGAN model" in error_line(r)
    r = run_cli("train", "--data", tiny_pairs_dataset(), "--out", model, "--steps", 1,
                "--perceptual", "none", "--crop", "32")
    assert r.code == 2 and "is a BGAN (learned blur) model, not a DeblurGAN run" in error_line(r)


def test_time_limit_stops_with_a_checkpoint(sets, tmp_path):
    from blursynth.bgan.train import BGANTrainSettings, load_checkpoint, train_bgan

    s = BGANTrainSettings(sharp=str(sets / "sharp"), real_blur=str(sets / "real"),
                          out=str(tmp_path / "m"), steps=50, config="tiny", patch=PATCH,
                          batch_size=2, perceptual="none", max_seconds=0.0, progress=False)
    summary = train_bgan(s)
    assert summary["stopped"] == "time" and summary["steps"] == 1
    assert load_checkpoint(tmp_path / "m")["step"] == 1


def _photos_with_bad_files(sets, tmp_path):
    """The sample photos plus, sorted after them, a file with no image header and a truncated PNG."""
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(sets / "photos", folder)
    (folder / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    good = (folder / "big.png").read_bytes()
    (folder / "zz_truncated.png").write_bytes(good[: len(good) // 3])
    return folder


def test_blur_skips_unreadable_photos_with_a_warning(sets, model, tmp_path, run_cli):
    folder = _photos_with_bad_files(sets, tmp_path)
    r = run_cli("bgan", "blur", folder, "--model", model, "--out", tmp_path / "p", "--shard-size", 1,
                "--tile", 32)
    assert r.code == 0, r.err
    assert "zz_broken.png" in r.err and "zz_truncated.png" in r.err
    assert "skipped 2 unreadable photo(s)" in r.err
    assert "wrote 2 rows" in r.out
    ds = PairDataset(tmp_path / "p")
    assert [ds[i]["params"]["photo"] for i in range(len(ds))] == ["big.png", "sub/small.png"]


@pytest.mark.parametrize("bad", ["zz_broken.png", "zz_truncated.png"])
def test_blur_strict_stops_on_an_unreadable_photo(sets, model, tmp_path, run_cli, bad):
    folder = _photos_with_bad_files(sets, tmp_path)
    (folder / ({"zz_broken.png", "zz_truncated.png"} - {bad}).pop()).unlink()
    r = run_cli("bgan", "blur", folder, "--model", model, "--out", tmp_path / "p", "--shard-size", 1,
                "--tile", 32, "--strict")
    assert r.code == 2
    line = error_line(r)
    assert bad in line and "--strict" in line
    if bad == "zz_broken.png":  # the header check comes before anything is written
        assert not (tmp_path / "p").exists()


def test_a_dataset_whose_shard_does_not_match_its_manifest_is_refused_unless_no_verify(
        sets, tmp_path, run_cli, tiny_pairs_dataset):
    """As train: a pair dataset given as --real-blur is checked against its manifest as it is
    opened, and --no-verify is the escape."""
    import json
    import shutil

    d = tmp_path / "real"
    shutil.copytree(tiny_pairs_dataset(), d)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["shards"][0]["sha256"] = "0" * 64
    (d / "manifest.json").write_text(json.dumps(manifest))
    r = _train(run_cli, sets, tmp_path / "o", sets / "sharp", d)
    assert r.code == 2 and "sha256" in error_line(r), r.err
    assert not (tmp_path / "o").exists()
    r = _train(run_cli, sets, tmp_path / "o", sets / "sharp", d, "--no-verify")
    assert r.code == 0, r.err


def test_the_patch_suggested_fits_both_sets(sets, tmp_path, run_cli):
    import shutil

    shutil.copytree(sets / "real", tmp_path / "real")
    save_rgb8(tmp_path / "real" / "r9.png", np.zeros((36, 48, 3), np.uint8))  # the smallest side of both sets
    r = _train(run_cli, sets, tmp_path / "o", sets / "sharp", tmp_path / "real", "--patch", 44)
    line = error_line(r)
    assert r.code == 2 and line.startswith(f"error: --sharp {sets / 'sharp'}:") and "--patch 36 or less" in line
