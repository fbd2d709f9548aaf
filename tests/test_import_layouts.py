"""Test-set importers (``dataset import --layout ...``) and the row contract evaluation reads:
``sharp`` None for images without ground truth, ``gt_frames`` for recorded sequences,
:func:`blursynth.dataset.pair_source`."""

import functools
import json

import numpy as np
import pytest

from blursynth.dataset import (
    GT_FRAMES_PAIR_SCHEMA, PAIR_SCHEMA, PairDataset, pair_row, pair_source, verify_dataset, write_dataset,
)
from blursynth.errors import DatasetError

from .conftest import error_line, write_image


def _img(seed, h=32, w=32):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- the contract ---------------------------------------------------------------------------------


def _contract_rows(start, stop, fp):
    for i in range(start, stop):
        b = _img(i)
        if i == 0:  # no ground truth
            yield pair_row(index=i, blurred=b, sharp=None, psf=None, source="real", seed=0,
                           params={"ground_truth": False}, fingerprint=fp)
        else:
            frames = [_img(100 + i * 10 + k) for k in range(i + 1)]
            yield pair_row(index=i, blurred=b, sharp=frames[0], psf=None, source="real", seed=0,
                           params={"i": i}, fingerprint=fp, gt_frames=frames)


def test_rows_without_sharp_and_with_gt_frames_round_trip(tmp_path):
    write_dataset(tmp_path / "d", kind="pairs", schema=GT_FRAMES_PAIR_SCHEMA, n_items=3, shard_size=2,
                  make_rows=functools.partial(_contract_rows, fp="fp"), fingerprint="fp",
                  command={"test": 1}, progress=False)
    ds = PairDataset(tmp_path / "d")
    assert ds[0]["sharp"] is None and ds[0]["gt_frames"] is None
    np.testing.assert_array_equal(ds[0]["blurred"], _img(0))
    for i in (1, 2):
        row = ds[i]
        assert len(row["gt_frames"]) == i + 1
        for k, frame in enumerate(row["gt_frames"]):
            assert frame.dtype == np.uint8
            np.testing.assert_array_equal(frame, _img(100 + i * 10 + k))
        np.testing.assert_array_equal(row["sharp"], _img(100 + i * 10))
    assert verify_dataset(tmp_path / "d")["rows"] == 3


def test_null_sharp_needs_ground_truth_false():
    with pytest.raises(ValueError, match="ground_truth"):
        pair_row(index=0, blurred=_img(0), sharp=None, psf=None, source="real", seed=0, params={},
                 fingerprint="fp")
    with pytest.raises(ValueError, match="gt_frames"):
        pair_row(index=0, blurred=_img(0), sharp=_img(1), psf=None, source="real", seed=0, params={},
                 fingerprint="fp", gt_frames=[_img(2, 16, 16)])


def test_verify_refuses_null_sharp_without_the_flag():
    from blursynth.dataset.schema import check_pair_row

    row = pair_row(index=0, blurred=_img(0), sharp=None, psf=None, source="real", seed=0,
                   params={"ground_truth": False}, fingerprint="fp")
    check_pair_row(row)
    row["params"] = json.dumps({"ground_truth": True})
    with pytest.raises(DatasetError, match="ground_truth"):
        check_pair_row(row)


def test_pair_source_every_kind():
    assert pair_source({"photo": "x/a.jpg", "crop": [1, 2, 8, 8]}, "trajectory") == "photo:x/a.jpg"
    assert pair_source({"photo": "x/a.jpg", "motion": "scene"}, "scene") == "photo:x/a.jpg"
    assert pair_source({"photo": "b.png", "z": [0.1]}, "bgan") == "photo:b.png"
    # Windows of one clip share it; another clip does not.
    a = pair_source({"video": "clip.mp4", "source_index": 0, "frame_start": 0}, "video")
    b = pair_source({"video": "clip.mp4", "source_index": 0, "frame_start": 40}, "video")
    assert a == b == "video:clip.mp4"
    assert pair_source({"video": "other.mp4", "source_index": 1}, "video") != a
    assert pair_source({"set": "realblur-j", "split": "test", "sequence": "scene230"}, "real") == \
        "real:realblur-j/test/scene230"
    # Older imports: the sequence folder (gopro layout) or the file (flat).
    old = {"blurred_path": "train/GOPR0372_07_00/blur/000001.png", "layout": "gopro"}
    assert pair_source(old, "real") == "real:train/GOPR0372_07_00"
    assert pair_source({"blurred_path": "blur/a.png", "layout": "flat"}, "real") == "real:blur/a.png"
    with pytest.raises(ValueError):
        pair_source({}, "trajectory")
    with pytest.raises(ValueError):
        pair_source({"photo": "a"}, "nope")
