"""``train --rotate``: crops turned alike (top-bottom flips and transposes) after the crop and
flip, drawn after them so runs without it keep their streams; recorded, and kept on resume."""

import hashlib
import json

import numpy as np
import pytest
import torch

from blursynth.torch import PairDataset
from blursynth.train.data import aligned_turn

from .conftest import error_line

FAST = ["--crop", "32", "--batch-size", "2", "--val-count", "0", "--workers", "0", "--quiet"]


def turns(x):
    """The four images aligned_turn can make of a square (C, H, W) tensor."""
    out = []
    for v in (x, x.flip(1)):
        out += [v, v.transpose(1, 2)]
    return out


def test_a_turned_item_is_a_turn_of_the_unturned_one(tiny_pairs_dataset):
    data = tiny_pairs_dataset()
    plain = PairDataset(data, crop=32, seed=3)
    turned = PairDataset(data, crop=32, seed=3, rotate=True)
    kinds = set()
    for i in range(len(plain)):
        a, b = plain[i], turned[i]
        # The same window and left-right flip (drawn first), then one of four turns, the same
        # for both images of the pair.
        match = [k for k, t in enumerate(turns(a["blurred"])) if torch.equal(t, b["blurred"])]
        assert match, i
        assert torch.equal(turns(a["sharp"])[match[0]], b["sharp"])
        kinds.add(match[0])
    assert len(kinds) > 1  # 8 pairs: more than one turn drawn


def test_without_rotate_the_stream_is_the_one_before_the_option(tiny_pairs_dataset):
    # The digest of these items as PairDataset gave them before rotate existed (commit ab8a0d8):
    # the turn's draws come after the crop and flip, so runs without it read the same crops.
    ds = PairDataset(tiny_pairs_dataset(), crop=32, seed=3)
    h = hashlib.sha256()
    for i in range(len(ds)):
        h.update(ds[i]["blurred"].numpy().tobytes())
        h.update(ds[i]["sharp"].numpy().tobytes())
    assert h.hexdigest() == "e5611fb539c569e178be55157f4edf5d00792cc7b9dadbef8a208048c6b49537"


def test_the_setting_reaches_the_loader(tmp_path, tiny_pairs_dataset):
    from blursynth.train.loop import DataSource, TrainSettings
    from blursynth.train.run_data import plan_data

    data = (DataSource(str(tiny_pairs_dataset()), 1.0),)
    for arch, rotate, expect in (("deblurgan", None, False), ("deblurgan", True, True),
                                 ("nafnet", None, True), ("nafnet", False, False)):
        settings = TrainSettings(data=data, out=str(tmp_path / "o"), steps=1, arch=arch,
                                 rotate=rotate)
        pairs, _ = plan_data(settings, 32)
        assert pairs.rotate is expect, (arch, rotate)


class _Online:
    """An online source of two fixed 40x40 pairs (what OnlineMix reads of an OnlineBlur)."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.images = [rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(2)]

    def __len__(self):
        return 2

    def pair_sides(self):
        return [(40, 40)] * 2

    def read(self, i, columns=None):
        return {"blurred": self.images[i], "sharp": 255 - self.images[i], "id": f"{i}"}


def test_online_pairs_are_turned_as_the_stored_ones(tiny_pairs_dataset):
    from blursynth.errors import BadInputError
    from blursynth.torch.mix import OnlineMix

    plain = OnlineMix(None, [_Online()], [1.0], crop=32, seed=1)
    turned = OnlineMix(None, [_Online()], [1.0], crop=32, seed=1, rotate=True)
    kinds = set()
    for k in range(16):
        a, b = plain[k % 2], turned[k % 2]
        turned.set_epoch(k), plain.set_epoch(k)
        match = [j for j, t in enumerate(turns(a["blurred"])) if torch.equal(t, b["blurred"])]
        assert match and torch.equal(turns(a["sharp"])[match[0]], b["sharp"])
        kinds.add(match[0])
    assert len(kinds) > 1
    stored = PairDataset(tiny_pairs_dataset(), crop=32, rotate=True)
    assert OnlineMix(stored, [_Online()], [1.0], crop=32).rotate is True
    with pytest.raises(BadInputError, match="rotate=False differs from its PairDataset's"):
        OnlineMix(stored, [_Online()], [1.0], crop=32, rotate=False)


def test_a_pair_that_is_not_square_keeps_its_shape():
    img = np.arange(2 * 5 * 3).reshape(2, 5, 3)
    shapes = {aligned_turn(img, img + 1, np.random.default_rng(k))[0].shape for k in range(20)}
    assert shapes == {(2, 5, 3)}


def test_a_run_records_rotate_and_a_resume_keeps_or_refuses(run_cli, tmp_path, tiny_pairs_dataset):
    data = tiny_pairs_dataset()
    run = tmp_path / "run"
    args = ["train", "--data", data, "--out", run, "--perceptual", "none", "--critic-steps", 0,
            *FAST]
    r = run_cli(*args, "--steps", 2, "--rotate")
    assert r.code == 0, r
    assert json.loads((run / "run.json").read_text())["settings"]["rotate"] is True
    assert torch.load(run / "checkpoint.pt", weights_only=True)["recipe"]["rotate"] is True
    before = (run / "checkpoint.pt").read_bytes()
    r = run_cli(*args, "--steps", 4, "--resume", "--no-rotate")
    assert r.code == 2, r
    assert "--no-rotate vs --rotate (recorded)" in error_line(r)
    assert (run / "checkpoint.pt").read_bytes() == before
    r = run_cli(*args, "--steps", 4, "--resume")  # without the option: the run's own
    assert r.code == 0, r
    assert json.loads((run / "run.json").read_text())["settings"]["rotate"] is True


def test_deblurgan_runs_unturned_and_records_nothing(run_cli, tmp_path, tiny_pairs_dataset):
    run = tmp_path / "run"
    r = run_cli("train", "--data", tiny_pairs_dataset(), "--out", run, "--steps", 1,
                "--perceptual", "none", "--critic-steps", 0, *FAST)
    assert r.code == 0, r
    assert json.loads((run / "run.json").read_text())["settings"]["rotate"] is False
    assert "rotate" not in torch.load(run / "checkpoint.pt", weights_only=True)["recipe"]


@pytest.mark.parametrize("value", ["yes", 1])
def test_a_setting_that_is_not_a_bool_is_refused(tmp_path, value):
    from blursynth.errors import SettingError
    from blursynth.train.loop import DataSource, TrainSettings

    with pytest.raises(SettingError, match="rotate must be true or false"):
        TrainSettings(data=(DataSource(str(tmp_path), 1.0),), out=str(tmp_path / "o"), steps=1,
                      rotate=value)


def test_nafnet_rotates_by_default_and_older_runs_resume_unturned(run_cli, tmp_path,
                                                                  tiny_pairs_dataset):
    # A nafnet run made before the option recorded no rotate (as --no-rotate records none): a
    # resume without the option continues it unturned, not with the architecture's new default.
    data = tiny_pairs_dataset()
    run = tmp_path / "run"
    args = ["train", "--data", data, "--out", run, "--arch", "nafnet", *FAST]
    assert run_cli(*args, "--steps", 2, "--no-rotate").code == 0
    assert "rotate" not in torch.load(run / "checkpoint.pt", weights_only=True)["recipe"]
    r = run_cli(*args, "--steps", 4, "--resume")
    assert r.code == 0, r
    assert json.loads((run / "run.json").read_text())["settings"]["rotate"] is False
    assert run_cli(*args[:4], tmp_path / "new", *args[5:], "--steps", 1).code == 0
    assert json.loads((tmp_path / "new" / "run.json").read_text())["settings"]["rotate"] is True
