"""Trainer commands on bad input: one error line, exit status 2, nothing written or overwritten."""

import hashlib

import pytest
import torch

from .conftest import error_line

FAST = ["--crop", "32", "--batch-size", "2", "--perceptual", "none", "--critic-steps", "1",
        "--val-count", "1", "--val-crop", "48", "--workers", "0", "--quiet"]


def _snapshot(folder):
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_pairs_dataset):
    from blursynth.cli import main

    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", "--data", str(tiny_pairs_dataset()), "--out", str(out), "--steps", "1",
                 *FAST]) == 0
    return out


def _fails(run_cli, *args, match):
    r = run_cli(*args)
    assert r.code == 2, r
    line = error_line(r)
    assert match in line, line
    return line


def test_data_path_that_is_not_a_dataset(run_cli, tmp_path):
    (tmp_path / "photos").mkdir()
    _fails(run_cli, "train", "--data", tmp_path / "photos", "--out", tmp_path / "run", "--steps", 1,
           *FAST, match="manifest.json")
    _fails(run_cli, "train", "--data", tmp_path / "nowhere", "--out", tmp_path / "run", "--steps",
           1, *FAST, match="no such")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("weight", ["0", "-1", "nan"])
def test_data_weight_zero_or_negative(run_cli, tmp_path, tiny_pairs_dataset, weight):
    _fails(run_cli, "train", "--data", f"{tiny_pairs_dataset()}:{weight}", "--out", tmp_path / "r",
           "--steps", 1, *FAST, match="weight must be a positive number")
    assert not (tmp_path / "r").exists()


def test_no_pairs_in_training_split(run_cli, tmp_path, tiny_pairs_dataset):
    _fails(run_cli, "train", "--data", tiny_pairs_dataset(), "--out", tmp_path / "r", "--steps", 1,
           "--val-fraction", "0.9999999", *FAST, match="no pairs left in the training split")
    assert not (tmp_path / "r").exists()


def test_crop_larger_than_images(run_cli, tmp_path, tiny_pairs_dataset):
    args = [a if a != "32" else "128" for a in FAST]
    _fails(run_cli, "train", "--data", tiny_pairs_dataset(), "--out", tmp_path / "r", "--steps", 1,
           *args, match="--crop 128 is larger than the images")
    assert not (tmp_path / "r").exists()


def test_out_that_is_someone_elses_folder_is_refused(run_cli, tmp_path, tiny_pairs_dataset):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.png").write_bytes(b"not ours")
    before = _snapshot(mine)
    _fails(run_cli, "train", "--data", tiny_pairs_dataset(), "--out", mine, "--steps", 1, *FAST,
           match="not a training run (it holds 'holiday.png')")
    assert _snapshot(mine) == before


def test_out_of_a_run_stopped_before_its_first_checkpoint_is_reused(run_cli, tmp_path,
                                                                     tiny_pairs_dataset):
    run = tmp_path / "run"
    (run / "val").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    (run / ".checkpoint.pt.tmp123").write_bytes(b"")
    r = run_cli("train", "--data", tiny_pairs_dataset(), "--out", run, "--steps", 1,
                "--workers", "0", *FAST)
    assert r.code == 0, r.err
    assert (run / "checkpoint.pt").is_file()


def test_existing_run_needs_resume(run_cli, trained_run, tiny_pairs_dataset):
    before = _snapshot(trained_run)
    _fails(run_cli, "train", "--data", tiny_pairs_dataset(), "--out", trained_run, "--steps", 2,
           *FAST, match="--resume")
    assert _snapshot(trained_run) == before


def test_checkpoint_from_a_different_config(run_cli, trained_run, tiny_pairs_dataset):
    before = _snapshot(trained_run)
    _fails(run_cli, "train", "--data", tiny_pairs_dataset(), "--out", trained_run, "--steps", 2,
           "--resume", "--config", "paper", *FAST, match="checkpoint is of config 'small'")
    assert _snapshot(trained_run) == before


def test_resume_without_the_runs_perceptual_none_is_refused_before_looking_for_vgg(
        run_cli, trained_run, tiny_pairs_dataset, monkeypatch):
    """A resume takes every training option again; one that leaves out the run's
    --perceptual none is told which setting differs, not sent to find VGG19 weights."""
    import blursynth.nn.vgg as vgg

    def no_lookup(*_a, **_k):
        raise AssertionError("looked for VGG19 weights before checking the resume")

    monkeypatch.setattr(vgg, "resolve_vgg19_weights", no_lookup)
    before = _snapshot(trained_run)
    fast = [x for x in FAST if x not in ("--perceptual", "none")]
    _fails(run_cli, "train", "--data", tiny_pairs_dataset(), "--out", trained_run, "--steps", 2,
           "--resume", *fast, match="perceptual='none'; this run asks for 'vgg'")
    assert _snapshot(trained_run) == before


def test_resume_into_a_folder_without_a_checkpoint_says_it_starts_a_new_run(
        run_cli, tiny_pairs_dataset, tmp_path):
    args = ("train", "--data", tiny_pairs_dataset(), "--out", tmp_path / "typo", *FAST)
    r = run_cli(*args, "--steps", 1, "--resume")
    assert r.code == 0, r
    assert "holds no checkpoint to resume; starting a new run there" in r.err
    assert (tmp_path / "typo" / "checkpoint.pt").is_file()
    again = run_cli(*args, "--steps", 2, "--resume")  # now it resumes
    assert again.code == 0 and "no checkpoint" not in again.err, again
    # A folder it may not write into is refused, without announcing a new run first.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    r = run_cli("train", "--data", tiny_pairs_dataset(), "--out", tmp_path / "mine", *FAST,
                "--steps", 1, "--resume")
    assert r.code == 2 and "starting a new run" not in r.err, r
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_run_json_records_the_networks_parameters(trained_run):
    import json

    info = json.loads((trained_run / "run.json").read_text())
    # deblurgan --config small, as the README's table gives it (tests/test_arch_models.py)
    assert info["parameters"] == {"generator": 272_515, "critic": 175_089}


def test_corrupt_checkpoint(run_cli, trained_run, tiny_pairs_dataset, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: 1000])
    before = _snapshot(run)
    _fails(run_cli, "train", "--data", tiny_pairs_dataset(), "--out", run, "--steps", 2, "--resume",
           *FAST, match="corrupt checkpoint")
    _fails(run_cli, "evaluate", "--model", run, "--data", tiny_pairs_dataset(), "--quiet",
           match="corrupt checkpoint")
    _fails(run_cli, "deblur", "--model", run, run / "val", "--out", tmp_path / "o", "--quiet",
           match="corrupt checkpoint")
    assert _snapshot(run) == before and not (tmp_path / "o").exists()


def test_a_raw_pickle_is_refused_in_one_line_without_torchs_warning(run_cli, tiny_pairs_dataset,
                                                                    tmp_path):
    """D14: torch.load warned in two lines about the pickle protocol before the refusal."""
    import pickle
    import warnings

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(pickle.dumps({"format": "blursynth-deblurgan"}, protocol=4))
    (tmp_path / "vgg.pth").write_bytes(pickle.dumps({"features.0.weight": 0}, protocol=4))
    ds = tiny_pairs_dataset()
    fast = [x for x in FAST if x not in ("--perceptual", "none")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fails(run_cli, "train", "--data", ds, "--out", run, "--steps", 2, "--resume", *FAST,
               match="corrupt checkpoint (UnpicklingError)")
        _fails(run_cli, "evaluate", "--model", run, "--data", ds, "--quiet",
               match="corrupt checkpoint (UnpicklingError)")
        _fails(run_cli, "train", "--data", ds, "--out", tmp_path / "r", "--steps", 1,
               "--vgg-weights", tmp_path / "vgg.pth", *fast, match="not a torch state dict")
    assert [str(w.message) for w in caught if "pickle" in str(w.message)] == []


def test_vgg_weights_wrong_file_names_missing_keys(run_cli, tmp_path, tiny_pairs_dataset):
    wrong = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    fast = [x for x in FAST if x not in ("--perceptual", "none")]
    line = _fails(run_cli, "train", "--data", tiny_pairs_dataset(), "--out", tmp_path / "r",
                  "--steps", 1, "--vgg-weights", wrong, *fast, match="missing keys")
    assert "features.0.weight" in line
    _fails(run_cli, "train", "--data", tiny_pairs_dataset(), "--out", tmp_path / "r",
           "--steps", 1, "--vgg-weights", tmp_path / "none.pth", *fast, match="no such file")
    assert not (tmp_path / "r").exists()


def test_deblur_refuses_to_overwrite(run_cli, trained_run, tmp_path):
    from blursynth.sources.photos import save_rgb8
    import numpy as np

    save_rgb8(tmp_path / "in" / "a.png", np.full((20, 24, 3), 128, np.uint8))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"keep")
    _fails(run_cli, "deblur", "--model", trained_run, tmp_path / "in", "--out", tmp_path / "out",
           "--quiet", match="already exists")
    assert (tmp_path / "out" / "a.png").read_bytes() == b"keep"
    _fails(run_cli, "deblur", "--model", tmp_path / "in", tmp_path / "in", "--out",
           tmp_path / "o2", "--quiet", match="no checkpoint")


def test_deblur_out_that_cannot_be_written_is_refused_before_work(run_cli, trained_run, tmp_path,
                                                                  monkeypatch):
    from blursynth.sources.photos import save_rgb8
    from blursynth.train import evaluate
    import numpy as np

    save_rgb8(tmp_path / "in" / "a.png", np.full((20, 24, 3), 128, np.uint8))
    (tmp_path / "file").write_bytes(b"x")
    calls = []
    monkeypatch.setattr(evaluate, "deblur_array", lambda *a, **k: calls.append(1))
    _fails(run_cli, "deblur", "--model", trained_run, tmp_path / "in", "--out",
           tmp_path / "file" / "sub" / "out", "--quiet", match="cannot write there")
    assert calls == []  # refused before the first image was deblurred
    assert (tmp_path / "file").read_bytes() == b"x"
    # An image that fails to decode after the checks: the folder made for it does not stay.
    (tmp_path / "in" / "b.png").write_bytes((tmp_path / "in" / "a.png").read_bytes()[:60])
    monkeypatch.undo()
    r = run_cli("deblur", "--model", trained_run, tmp_path / "in" / "b.png", "--out",
                tmp_path / "new" / "out", "--quiet")
    assert r.code == 2, r
    assert "cannot read this image" not in error_line(r)  # failed in the loop, not up front
    assert not (tmp_path / "new").exists()


def test_evaluate_and_deblur_reject_unknown_device(tmp_path, run_cli):
    # The names themselves: tests/test_device.py. Here: both commands go through that resolver,
    # before the model is read.
    for name in ("foo", "cuda0", "gpu"):
        _fails(run_cli, "evaluate", "--model", tmp_path / "none", "--data", tmp_path, "--device",
               name, match="expected auto, cpu, cuda or cuda:N")
        _fails(run_cli, "deblur", tmp_path, "--model", tmp_path / "none", "--out", tmp_path / "o",
               "--device", name, match="expected auto, cpu, cuda or cuda:N")
    assert not (tmp_path / "o").exists()


def test_train_checks_the_gpu_index_as_every_command_does(run_cli, tmp_path, tiny_pairs_dataset,
                                                          monkeypatch):
    # The trainer once took any cuda:N (BGAN inherited that); now it is the one resolver's rule.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    _fails(run_cli, "train", "--data", tiny_pairs_dataset(), "--out", tmp_path / "r", "--steps", 1,
           *FAST, "--device", "cuda:7", match="--device cuda:7: torch sees 1 CUDA GPU(s)")
    assert not (tmp_path / "r").exists()


def test_deblur_blend_changes_seams(tmp_path):
    import numpy as np

    from blursynth.train.evaluate import deblur_array
    from blursynth.train.models import CONFIGS, build_models

    gen, _ = build_models(CONFIGS["small"], seed=3)
    image = np.random.default_rng(0).integers(0, 256, (96, 200, 3), dtype=np.uint8)
    a = deblur_array(gen, image, tile=160, blend=4, norm_stats="tile")
    b = deblur_array(gen, image, tile=160, blend=16, norm_stats="tile")
    assert a.shape == b.shape == image.shape
    assert not np.array_equal(a, b)  # --blend reaches the tiler


@pytest.mark.parametrize("opt, value", [("--lr", "nan"), ("--content-weight", "inf"), ("--epochs", "inf")])
def test_nan_and_inf_numbers_are_refused(run_cli, tmp_path, tiny_pairs_dataset, opt, value):
    steps = [] if opt == "--epochs" else ["--steps", 1]
    _fails(run_cli, "train", "--data", tiny_pairs_dataset(), "--out", tmp_path / "run", *steps, *FAST,
           opt, value, match="finite")
    assert not (tmp_path / "run").exists()


def test_out_that_is_a_dataset_is_refused(run_cli, tiny_pairs_dataset):
    data = tiny_pairs_dataset()
    before = _snapshot(data)
    for resume in ([], ["--resume"]):
        _fails(run_cli, "train", "--data", data, "--out", data, "--steps", 1, *FAST, *resume,
               match="is a dataset folder")
    assert _snapshot(data) == before


def test_deblur_overwrite_never_replaces_the_inputs(run_cli, trained_run, tmp_path):
    from blursynth.sources.photos import save_rgb8
    import numpy as np

    save_rgb8(tmp_path / "in" / "a.png", np.full((20, 24, 3), 128, np.uint8))
    before = _snapshot(tmp_path / "in")
    for item in (tmp_path / "in", tmp_path / "in" / "a.png"):
        _fails(run_cli, "deblur", "--model", trained_run, item, "--out", tmp_path / "in",
               "--overwrite", "--quiet", match="would replace the input photo")
    assert _snapshot(tmp_path / "in") == before


def test_evaluate_json_path_checked_before_scoring(run_cli, trained_run, tiny_pairs_dataset, tmp_path):
    (tmp_path / "photo.png").write_bytes(b"keep")
    args = ("evaluate", "--model", trained_run, "--data", tiny_pairs_dataset(), "--limit", 1, "--quiet")
    _fails(run_cli, *args, "--json", tmp_path, match="is a folder")
    _fails(run_cli, *args, "--json", tmp_path / "photo.png", match="not a .json file")
    _fails(run_cli, *args, "--json", tmp_path / "photo.png" / "s.json", match="cannot write in")
    assert (tmp_path / "photo.png").read_bytes() == b"keep"
    assert run_cli(*args, "--json", tmp_path / "new" / "s.json").code == 0
    assert (tmp_path / "new" / "s.json").is_file()



def test_evaluate_json_removes_the_temporary_a_killed_evaluate_of_the_same_json_left(
        run_cli, trained_run, tiny_pairs_dataset, tmp_path):
    for name in (".s.json.tmp99999", ".t.json.tmp99999", "t.json"):
        (tmp_path / name).write_text("{}")
    r = run_cli("evaluate", "--model", trained_run, "--data", tiny_pairs_dataset(), "--limit", 1,
                "--quiet", "--json", tmp_path / "s.json")
    assert r.code == 0, r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".t.json.tmp99999", "s.json", "t.json"]


def test_evaluate_heldout_warns_for_a_dataset_the_run_never_used(run_cli, trained_run,
                                                                 tiny_pairs_dataset):
    args = ("evaluate", "--model", trained_run, "--split", "heldout", "--quiet")
    own = run_cli(*args, "--data", tiny_pairs_dataset())
    assert own.code == 0, own.err
    assert "warning" not in own.err
    other = run_cli(*args, "--data", tiny_pairs_dataset(n=40, seed=5))
    assert other.code == 0, other.err
    assert "is not one of the datasets" in other.err


def test_negative_critic_steps_and_unknown_precision(run_cli, tmp_path, tiny_pairs_dataset):
    from blursynth.errors import BadInputError
    from blursynth.train.data import parse_data_spec
    from blursynth.train.loop import TrainSettings

    ds = tiny_pairs_dataset()
    _fails(run_cli, "train", "--data", ds, "--out", tmp_path / "r", "--steps", 1, *FAST,
           "--critic-steps", "-1", match="--critic-steps")
    _fails(run_cli, "train", "--data", ds, "--out", tmp_path / "r", "--steps", 1, *FAST,
           "--precision", "fp16", match="--precision")
    assert not (tmp_path / "r").exists()
    # recipes build TrainSettings directly: the same checks there
    with pytest.raises(BadInputError, match="--precision must be one of auto, fp32, bf16"):
        TrainSettings(data=(parse_data_spec(str(ds)),), out=str(tmp_path / "r"), steps=1,
                      precision="fp16")
    for bad in (-1, 0.5, True):
        with pytest.raises(BadInputError, match="--critic-steps must be 0"):
            TrainSettings(data=(parse_data_spec(str(ds)),), out=str(tmp_path / "r"), steps=1,
                          critic_steps=bad)


def test_evaluate_checks_its_tile_as_deblur_does(run_cli, trained_run, tiny_pairs_dataset):
    args = ("evaluate", "--model", trained_run, "--limit", 1, "--quiet")
    small, large = tiny_pairs_dataset(), tiny_pairs_dataset(n=2, size=(96, 128))
    _fails(run_cli, *args, "--data", small, "--tile", 66, match="multiple of 4")
    # 48x64 pairs fit in a tile of 64 and run whole: no halo needed.
    assert run_cli(*args, "--data", small, "--tile", 64).code == 0
    # 96x128 pairs run in tiles, and the small config's halo (receptive radius and a 16 px
    # blend) leaves no room in 64: one line, exit 2, as deblur says it.
    line = _fails(run_cli, *args, "--data", large, "--tile", 64,
                  match="too small for this model's halo")
    _fails(run_cli, *args, "--data", large, "--tile", 64, "--norm-stats", "tile",
           match="too small for this model's halo")
    # The tile it names is the smallest that runs: that one scores, the next smaller is refused.
    need = int(line.split("use --tile ")[1].split()[0])
    assert need > 64 and need % 4 == 0
    assert run_cli(*args, "--data", large, "--tile", need).code == 0
    _fails(run_cli, *args, "--data", large, "--tile", need - 4,
           match=f"use --tile {need} or more")


def test_deblur_needs_room_for_the_halo_only_for_images_run_in_tiles(run_cli, trained_run,
                                                                     tmp_path):
    import numpy as np

    from blursynth.sources.photos import save_rgb8

    save_rgb8(tmp_path / "in" / "a.png", np.full((48, 64, 3), 128, np.uint8))
    args = ("deblur", "--model", trained_run, "--tile", 64, "--quiet")
    # 48x64 fits in a tile of 64 and runs whole, whatever the model's reach.
    r = run_cli(*args, tmp_path / "in", "--out", tmp_path / "out")
    assert r.code == 0, r.err
    assert (tmp_path / "out" / "a.png").is_file()
    # Beside a 96x128 photo, which would run in tiles: refused before anything is written.
    save_rgb8(tmp_path / "in2" / "a.png", np.full((48, 64, 3), 128, np.uint8))
    save_rgb8(tmp_path / "in2" / "b.png", np.full((96, 128, 3), 128, np.uint8))
    _fails(run_cli, *args, tmp_path / "in2", "--out", tmp_path / "out2",
           match="too small for this model's halo")
    assert not (tmp_path / "out2").exists()


def test_resume_with_more_steps_warns_about_the_schedule(run_cli, tiny_pairs_dataset, tmp_path):
    run = tmp_path / "run"
    args = ("train", "--data", tiny_pairs_dataset(), "--out", run, *FAST, "--lr", "0.001")
    assert run_cli(*args, "--steps", 4).code == 0
    same = run_cli(*args, "--steps", 4, "--resume")
    assert same.code == 0 and "warning" not in same.err
    longer = run_cli(*args, "--steps", 8, "--resume")
    assert longer.code == 0
    # At step 4 of 4 the rate had fallen to 0; in a run of 8 it is still the full 0.001.
    assert "was a run of 4 steps, now 8" in longer.err, longer.err
    assert "goes on after step 4 at 0.001, where the 4-step schedule would be at 0." in longer.err, longer.err
    _fails(run_cli, *args, "--steps", 5, "--resume", match="already at step 8")
    assert run_cli(*args, "--steps", 8, "--resume").code == 0  # a finished run: nothing left to do


def test_interrupted_run_says_rerun_before_the_first_checkpoint_and_resume_after(tmp_path):
    from blursynth.commands._common import interrupted_run
    from blursynth.errors import Interrupted

    first = interrupted_run(tmp_path)
    assert isinstance(first, Interrupted) and first.exit_code == 130
    assert str(first) == (f"interrupted before the first checkpoint; rerun the same command to start "
                          f"again in {tmp_path}.")
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    assert str(interrupted_run(tmp_path)) == (f"interrupted; {tmp_path} keeps its last checkpoint: rerun "
                                              "the same command with --resume to continue.")


def test_data_weight_that_is_not_a_number_is_named_as_such(run_cli, tmp_path, tiny_pairs_dataset):
    path = tiny_pairs_dataset()
    r = run_cli("train", "--data", f"{path}:abc", "--out", tmp_path / "run", "--steps", "1")
    assert r.code == 2 and not (tmp_path / "run").exists()
    assert f"--data {path}:abc: weight 'abc' is not a number; expected PATH[:WEIGHT], e.g. --data {path}:2." \
        in error_line(r)
    # Where no weight is taken, PATH:2 is a path, and there is no such dataset.
    from blursynth.errors import DatasetError
    from blursynth.train.data import open_pairs

    with pytest.raises(DatasetError, match=r"^--data .*:2: no such folder; expected a pair dataset"):
        open_pairs(f"{path}:2")
