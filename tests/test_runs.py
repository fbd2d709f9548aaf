"""nn/runs.py: the run folder both trainers write (checkpoint checks, folder claim, metrics,
run.json, sample sheets)."""

import json

import numpy as np
import pytest
import torch

from blursynth.errors import BadInputError
from blursynth.nn import runs
from blursynth.sources.photos import load_rgb8

KIND = runs.RunKind(
    format="test-run", version=2, names=("checkpoint.pt", "run.json", "metrics.csv", "pics"),
    missing="{path}: nothing here", unreadable="{file}: unreadable ({error})",
    other_formats={"other-run": "{file}: is the other kind"},
    wrong_format="{file}: is format {format!r}, not ours",
    wrong_version="{file}: version {version!r}; we read {expected}",
    needs_resume="--out {out}: pass --resume",
    other_recipe="{file}: was {key}={was}, now {now}",
    is_dataset="--out {out}: a dataset", is_file="--out {out}: a file",
    not_a_run="--out {out}: not a run (it holds {name})",
)


def _save(folder, obj):
    folder.mkdir(exist_ok=True)
    torch.save(obj, folder / runs.CHECKPOINT)
    return folder


def test_checkpoint_of_its_kind_is_read_from_the_folder_or_the_file(tmp_path):
    run = _save(tmp_path / "run", {"format": "test-run", "version": 2, "step": 5})
    assert runs.load_checkpoint(run, KIND)["step"] == 5
    assert runs.load_checkpoint(run / runs.CHECKPOINT, KIND)["step"] == 5


def test_checkpoint_version_and_format_are_refused_with_the_kinds_messages(tmp_path):
    run = _save(tmp_path / "v", {"format": "test-run", "version": 1})
    with pytest.raises(BadInputError) as e:
        runs.load_checkpoint(run, KIND)
    assert str(e.value) == f"{run / runs.CHECKPOINT}: version 1; we read 2"
    _save(run, {"format": "other-run", "version": 2})
    with pytest.raises(BadInputError, match="is the other kind$"):
        runs.load_checkpoint(run, KIND)
    for obj, shown in (({"format": "zip", "version": 2}, "'zip'"), ([1, 2], "None")):
        _save(run, obj)
        with pytest.raises(BadInputError, match=f"is format {shown}, not ours$"):
            runs.load_checkpoint(run, KIND)
    with pytest.raises(BadInputError, match="nothing here$"):
        runs.load_checkpoint(tmp_path / "none", KIND)
    (run / runs.CHECKPOINT).write_bytes(b"not a torch file")
    with pytest.raises(BadInputError, match=r"unreadable \(\w+\)$"):
        runs.load_checkpoint(run, KIND)


def test_open_run_folder_claims_only_new_folders_and_runs_of_its_kind(tmp_path):
    assert runs.open_run_folder(tmp_path / "new", KIND) is None
    # What a run stopped before its first checkpoint leaves, hidden files and logs: ours.
    stopped = tmp_path / "stopped"
    (stopped / "pics").mkdir(parents=True)
    for name in ("run.json", ".checkpoint.pt.tmp9", ".DS_Store", "train.log", "nohup.out"):
        (stopped / name).write_text("")
    assert runs.open_run_folder(stopped, KIND) is None
    (stopped / "holiday.png").write_bytes(b"x")
    (stopped / "a.txt").write_bytes(b"x")
    with pytest.raises(BadInputError, match=r"not a run \(it holds 'a.txt'\)$"):
        runs.open_run_folder(stopped, KIND)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInputError, match="a file$"):
        runs.open_run_folder(tmp_path / "file", KIND)
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text("{}")
    with pytest.raises(BadInputError, match="a dataset$"):
        runs.open_run_folder(data, KIND)
    run = _save(tmp_path / "run", {"format": "test-run", "version": 2, "step": 3})
    assert runs.open_run_folder(run, KIND)["step"] == 3
    _save(run, {"format": "other-run", "version": 1})  # another kind of run is named as such
    with pytest.raises(BadInputError, match="is the other kind"):
        runs.open_run_folder(run, KIND)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"]  # nothing written


def test_metrics_round_trip_keeps_rows_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.csv"
    log = runs.MetricsLog(path, ("step", "loss", "seconds"), 0)
    assert log.rows == []
    for step in (1, 2, 3):
        log.append({"step": step, "loss": 1 / 3 * step, "seconds": float(step),
                    "not_a_column": 7})
    log.save()
    assert path.read_text().splitlines() == [
        "step,loss,seconds", "1,0.333333,1", "2,0.666667,2", "3,1,3"]
    # A resumed run at step 2 drops the row written after that checkpoint, then adds its own.
    again = runs.MetricsLog(path, ("step", "loss", "seconds"), 2)
    assert again.rows == [{"step": "1", "loss": "0.333333", "seconds": "1"},
                          {"step": "2", "loss": "0.666667", "seconds": "2"}]
    again.append({"step": 3, "loss": float("nan")})
    again.save()
    assert path.read_text().splitlines()[-1] == "3,nan,"


def test_run_json_records_the_versions(tmp_path):
    runs.write_run_json(tmp_path / "run.json", {"settings": {"data": ("a", "b")}, "n": 1})
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["settings"] == {"data": ["a", "b"]} and meta["n"] == 1
    assert meta["torch"] == torch.__version__ and list(meta)[-2:] == ["torch", "python"]
    assert (tmp_path / "run.json").read_text().endswith("}\n")


def test_sample_sheet_rows_side_by_side_padded_and_written_as_png(tmp_path):
    a = torch.full((3, 4, 5), 1.0)
    b = torch.zeros(3, 4, 5)
    c = torch.full((3, 4, 3), 0.5)
    rows = [(a, b), (c,), (a,), (b,), (a,)]  # only the first 4 are drawn
    sheet = runs.sample_sheet(rows)
    assert sheet.shape == (16, 10, 3) and sheet.dtype == np.uint8
    assert (sheet[:4, :5] == 255).all() and (sheet[:4, 5:] == 0).all()
    assert (sheet[4:8, :3] == 128).all() and (sheet[4:8, 3:] == 0).all()  # padded black
    assert runs.sample_sheet([]) is None
    for level in (None, 3):
        runs.save_sample_sheet(tmp_path / f"s{level}.png", rows, level=level)
        assert np.array_equal(load_rgb8(tmp_path / f"s{level}.png")[0], sheet)
    runs.save_sample_sheet(tmp_path / "none.png", [])
    assert not (tmp_path / "none.png").exists()


def test_resume_needs_the_flag_and_the_same_recipe(tmp_path):
    runs.require_resume(tmp_path, KIND, True)
    with pytest.raises(BadInputError, match="pass --resume$"):
        runs.require_resume(tmp_path, KIND, False)
    ckpt = {"recipe": {"lr": 0.1, "seed": 0}}
    runs.check_recipe(ckpt, {"lr": 0.1, "seed": 0}, tmp_path, KIND)
    with pytest.raises(BadInputError) as e:
        runs.check_recipe(ckpt, {"lr": 0.1, "seed": 1, "crop": 8}, tmp_path, KIND)
    assert str(e.value) == f"{tmp_path / 'checkpoint.pt'}: was seed=0, now 1"  # the first key
    with pytest.raises(BadInputError, match="was crop=None, now 'a'"):
        runs.check_recipe({}, {"crop": "a"}, tmp_path, KIND)


def test_metrics_are_on_disk_at_every_save_and_a_row_cut_short_is_dropped(tmp_path):
    path = tmp_path / "metrics.csv"
    log = runs.MetricsLog(path, ("step", "loss"), 0)
    log.save()
    assert path.read_text().splitlines() == ["step,loss"]
    inode = path.stat().st_ino
    for step in (1, 2):
        log.append({"step": step, "loss": float(step)})
        log.save()
        assert path.read_text().splitlines()[-1] == f"{step},{step}"
    assert path.stat().st_ino == inode  # appended, not rewritten each time
    # A kill in the middle of appending row 12 left "1" of it: not a row of step 1.
    with open(path, "a") as f:
        f.write("1")
    assert runs.MetricsLog(path, ("step", "loss"), 5).rows == [
        {"step": "1", "loss": "1"}, {"step": "2", "loss": "2"}]


def test_a_raw_pickle_is_refused_without_torchs_warning(tmp_path):
    import pickle
    import warnings

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / runs.CHECKPOINT).write_bytes(pickle.dumps({"format": "test-run"},
                                                                  protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(BadInputError, match="unreadable \\(UnpicklingError\\)"):
            runs.load_checkpoint(tmp_path / "run", KIND)
    assert [str(w.message) for w in caught] == []


def test_checkpoint_bytes_depend_on_the_content_only(tmp_path):
    """A resumed run's optimiser state holds its own copies of names like "step"; pickle would
    write those again where a run that never stopped refers back to one shared string."""
    from collections import OrderedDict

    shared = OrderedDict(w=torch.ones(2))
    shared._metadata = {"": {"version": 1}}
    fresh = {"opt": {"state": {0: {"step": torch.tensor(3.0)}}}, "step": 3, "model": shared}
    copied = {"opt": {"state": {0: {"".join(["st", "ep"]): torch.tensor(3.0)}}},
              "".join(["st", "ep"]): 3, "model": shared}
    runs.save_checkpoint(fresh, tmp_path / "a.pt")
    runs.save_checkpoint(copied, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    back = torch.load(tmp_path / "a.pt", weights_only=True)
    assert back["model"]._metadata == {"": {"version": 1}} and back["step"] == 3


def test_tidy_run_folder_removes_only_its_temporaries_and_later_sheets(tmp_path):
    out = tmp_path / "run"
    (out / "pics").mkdir(parents=True)
    names = [".checkpoint.pt.tmp123", ".metrics.csv.tmp9", ".holiday.png.tmp5", "run.json",
             "train.log", ".blursynth.lock"]
    for name in names:
        (out / name).write_bytes(b"x")
    for name in ("step-0000002.png", "step-0000004.png", ".step-0000004.png.tmp77", "mine.png"):
        (out / "pics" / name).write_bytes(b"x")
    elsewhere = tmp_path / "shared"
    elsewhere.mkdir()
    (elsewhere / "step-0000009.png").write_bytes(b"x")
    (out / "val").symlink_to(elsewhere)  # never cleaned through a link
    runs.tidy_run_folder(out, KIND, step=3, sheets=("pics", "val"))
    assert sorted(p.name for p in out.iterdir()) == [
        ".blursynth.lock", ".holiday.png.tmp5", "pics", "run.json", "train.log", "val"]
    assert sorted(p.name for p in (out / "pics").iterdir()) == ["mine.png", "step-0000002.png"]
    assert (elsewhere / "step-0000009.png").exists()


def test_writing_run_undoes_a_new_run_that_fails_before_its_first_checkpoint(tmp_path):
    made = tmp_path / "new" / "run"
    with pytest.raises(RuntimeError):
        with runs.writing_run(made, KIND, stamp=None, start=0):
            (made / "run.json").write_text("{}")
            raise RuntimeError("bad image")
    assert not (tmp_path / "new").exists()  # the parents it made too
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "train.log").write_text("log")
    with pytest.raises(RuntimeError):
        with runs.writing_run(mine, KIND, stamp=None, start=0):
            (mine / "pics").mkdir()
            (mine / "run.json").write_text("{}")
            raise RuntimeError("bad image")
    assert sorted(p.name for p in mine.iterdir()) == [".blursynth.lock", "train.log"]
    # With a checkpoint written, or a run resumed from one, everything is kept.
    for start in (0, 5):
        with pytest.raises(RuntimeError):
            with runs.writing_run(mine, KIND, stamp=runs.checkpoint_stamp(mine), start=start):
                (mine / "run.json").write_text("{}")
                _save(mine, {"step": 5})
                raise RuntimeError("bad image")
        assert (mine / "run.json").exists() and (mine / runs.CHECKPOINT).exists()


def test_writing_run_refuses_a_checkpoint_written_since_the_run_was_planned(tmp_path):
    stamp = runs.checkpoint_stamp(tmp_path)
    _save(tmp_path, {"step": 1})
    with pytest.raises(BadInputError, match="another run wrote checkpoint.pt there"):
        with runs.writing_run(tmp_path, KIND, stamp=stamp, start=0):
            pass
    assert (tmp_path / runs.CHECKPOINT).exists()


def test_sample_sheet_labels_columns_and_notes_each_row(tmp_path):
    a, b = torch.full((3, 20, 50), 1.0), torch.zeros(3, 20, 50)
    plain = runs.sample_sheet([(a, b), (b, a)])
    sheet = runs.sample_sheet([(a, b), (b, a)], labels=("blurred", "sharp"),
                              notes=[("21.00 dB", ""), ("", "9.50 dB")])
    s = runs.STRIP
    assert sheet.shape == (3 * s + 40, 100, 3)
    assert np.array_equal(sheet[s:][s:s + 20], plain[:20])  # images unchanged, under the strips
    assert np.array_equal(sheet[3 * s + 20:], plain[20:])
    text = lambda strip: (strip.max(axis=2) > 100).any(axis=0)  # noqa: E731 - columns with text
    assert text(sheet[:s])[:50].any() and text(sheet[:s])[50:].any()  # both labels
    assert text(sheet[s:2 * s])[:50].any() and not text(sheet[s:2 * s])[50:].any()
    assert not text(sheet[2 * s + 20:3 * s + 20])[:50].any()
    assert text(sheet[2 * s + 20:3 * s + 20])[50:].any()


class _WithConstant(torch.nn.Module):
    """A layer and a constant no state dict carries (a non-persistent buffer)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.register_buffer("scale", torch.full((1, 4, 1, 1), 0.5), persistent=False)

    def forward(self, x):
        return self.conv(x) * self.scale


def test_restore_model_takes_the_checkpoints_weights_as_load_state_dict_copies_them():
    torch.manual_seed(0)
    trained = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8)).eval()
    with torch.no_grad():
        trained[1].running_mean.uniform_()
    state = trained.state_dict()
    # As a checkpoint may hold them: a weight in another dtype and a strided layout.
    state["0.weight"] = state["0.weight"].double().to(memory_format=torch.channels_last)
    rng_before = torch.get_rng_state()
    config, restored = runs.restore_model(
        "m", lambda: ("cfg", torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8)),
                      state), "a test net")
    assert torch.equal(torch.get_rng_state(), rng_before)  # no initial weights were drawn
    assert config == "cfg"
    for name, t in restored.state_dict().items():
        assert t.device.type == "cpu" and t.is_contiguous(), name
        assert t.dtype == trained.state_dict()[name].dtype, name
        assert torch.equal(t, trained.state_dict()[name].to(t.dtype)), name
        assert t.data_ptr() != state[name].data_ptr(), name  # copies: a mapped checkpoint can go
    x = torch.rand(1, 3, 9, 9)
    with torch.no_grad():
        assert torch.equal(restored.eval()(x), trained(x))


def test_restore_model_builds_a_module_with_a_non_persistent_buffer_the_ordinary_way():
    state = _WithConstant().state_dict()
    rng_before = torch.get_rng_state()
    _, restored = runs.restore_model("m", lambda: (None, _WithConstant(), state), "a test net")
    assert torch.equal(torch.get_rng_state(), rng_before)  # the ordinary build ran under a fork
    assert not restored.scale.is_meta and torch.equal(restored.scale, torch.full((1, 4, 1, 1), 0.5))
    assert torch.equal(restored.conv.weight, state["conv.weight"])


class _Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(3, 3, bias=False)
        self.b = torch.nn.Linear(3, 3, bias=False)
        self.b.weight = self.a.weight


class _Computing(torch.nn.Module):
    """A constructor that computes with its tensors (no meta kernel for .item()), and keeps a
    plain tensor attribute."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        self.steps = int(torch.arange(4).sum().item())
        self.ramp = torch.linspace(0, 1, 3)


class _PlainTensor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        self.ramp = torch.linspace(0, 1, 3)


@pytest.mark.parametrize("cls", [_Tied, _Computing, _PlainTensor])
def test_restore_model_builds_the_ordinary_way_what_the_meta_device_cannot(cls):
    state = cls().state_dict()
    _, restored = runs.restore_model("m", lambda: (None, cls(), state), "a test net")
    assert not any(t.is_meta for t in restored.state_dict().values())
    assert all(torch.equal(restored.state_dict()[k], state[k]) for k in state)
    if cls is _Tied:
        assert restored.b.weight is restored.a.weight  # still one tensor: training keeps them tied
    else:
        assert not restored.ramp.is_meta and torch.equal(restored.ramp, torch.linspace(0, 1, 3))


@pytest.mark.parametrize("change", ["shape", "missing", "extra"])
def test_restore_model_refuses_weights_that_do_not_fit_in_one_line(change):
    state = torch.nn.Conv2d(3, 8, 3).state_dict()
    if change == "shape":
        state["weight"] = state["weight"][:4]
    elif change == "missing":
        del state["bias"]
    else:
        state["other"] = torch.zeros(2)
    with pytest.raises(BadInputError, match=r"^--model m: checkpoint does not hold a test net \("):
        runs.restore_model("m", lambda: (None, torch.nn.Conv2d(3, 8, 3), state), "a test net")


def test_a_mapped_checkpoint_reads_as_the_read_one(tmp_path):
    weights = torch.nn.Conv2d(3, 8, 3).state_dict()
    run = _save(tmp_path / "run", {"format": "test-run", "version": 2, "nets": weights})
    mapped = runs.load_checkpoint(run, KIND, mmap=True)["nets"]
    assert mapped.keys() == weights.keys()
    assert all(torch.equal(mapped[k], weights[k]) for k in weights)


@pytest.mark.slow  # starts a subprocess
def test_restoring_the_learned_blurs_imports_none_of_torchs_compiler(tmp_path):
    # Built on the meta device, a layer whose init goes through torch's Python references
    # (normal_, for one) would import torch._dynamo and sympy: over a second, where skipping
    # the init saves tens of milliseconds. The two models restore_model serves must not.
    import subprocess
    import sys

    script = f"""
import sys, torch
from pathlib import Path
from blursynth.bgan import train as bgan_train
from blursynth.bgan.model import CONFIGS as BGAN, build_bgan
from blursynth.uid import model as uid
root = Path({str(tmp_path)!r})
for name, kind, version, cfg, key, nets in [
        ("bgan", bgan_train.MODEL_FORMAT, bgan_train.MODEL_VERSION, BGAN["tiny"], "generator",
         build_bgan(BGAN["tiny"], seed=0)[0]),
        ("uid", uid.MODEL_FORMAT, uid.MODEL_VERSION, uid.CONFIGS["tiny"], "nets",
         uid.build_uid(uid.CONFIGS["tiny"], seed=0))]:
    (root / name).mkdir()
    torch.save({{"format": kind, "version": version, "step": 1, "config": cfg.to_dict(),
                key: nets.state_dict()}}, root / name / "checkpoint.pt")
before = set(sys.modules)
bgan_train.load_bgan_generator(root / "bgan")
uid.load_uid(root / "uid")
print(sorted(m for m in set(sys.modules) - before if m.split(".")[0] == "sympy" or m.startswith("torch._dynamo")))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
