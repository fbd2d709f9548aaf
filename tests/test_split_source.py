"""Held-out splits by source (issue 18 §3): crops of one photo never land on both sides of a
train/validation split under ``--split-by source`` (the default), in ``train``, ``evaluate
--split heldout`` and ``dataset export --split``; ``pair`` keeps the old per-pair rule."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from blursynth.dataset import PAIR_SCHEMA, pair_row, write_dataset
from blursynth.dataset.split import split_indices, split_keys
from blursynth.train.data import open_pairs

from .conftest import error_line

FAST = ["--perceptual", "none", "--crop", "16", "--batch-size", "1", "--workers", "0", "--quiet",
        "--val-count", "2", "--val-crop", "16", "--val-every", "1000", "--checkpoint-every", "1000"]


def _rows(start, stop, *, n_photos, fp):
    rng = np.random.default_rng(0)
    for i in range(start, stop):
        sharp = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
        yield pair_row(index=i, blurred=sharp // 2, sharp=sharp, psf=None, source="trajectory",
                       seed=0, params={"photo": f"photos/p{i % n_photos}.png", "crop": [i, 0, 20, 20]},
                       fingerprint=fp)


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """40 pairs: 4 crops each of 10 photos (pair i from photo i % 10)."""
    out = tmp_path_factory.mktemp("crops") / "ds"
    write_dataset(out, kind="pairs", schema=PAIR_SCHEMA, n_items=40, shard_size=16,
                  make_rows=functools.partial(_rows, n_photos=10, fp="fp-crops"),
                  fingerprint="fp-crops", command={"test": "crops"}, progress=False)
    return out


def _photos(ds, rows):
    return {ds[int(i)]["params"]["photo"] for i in rows}


def test_source_split_keeps_every_crop_of_a_photo_on_one_side(crops):
    ds = open_pairs(crops)
    train, held = split_indices(split_keys(ds, "source"), 0.3)
    assert len(held) and len(train)
    assert not _photos(ds, train) & _photos(ds, held)
    assert len(held) % 4 == 0  # whole photos: 4 crops each
    # Per pair, at this fraction, some photo has crops on both sides: what the user saw.
    train_p, held_p = split_indices(split_keys(ds, "pair"), 0.3)
    assert _photos(ds, train_p) & _photos(ds, held_p)


def test_a_tiny_fraction_still_holds_out_one_whole_source(crops):
    ds = open_pairs(crops)
    train, held = split_indices(split_keys(ds, "source"), 1e-9)
    assert len(held) == 4 and len(_photos(ds, held)) == 1
    assert not _photos(ds, train) & _photos(ds, held)


def test_rows_without_a_source_split_as_pairs(tiny_pairs_dataset):
    # The conftest pairs name no photo: each is its own source, the split is pair's exactly.
    ds = open_pairs(tiny_pairs_dataset())
    assert split_keys(ds, "source") == split_keys(ds, "pair")


def test_unknown_split_by_is_one_line(run_cli, crops, tmp_path):
    r = run_cli("train", "--data", crops, "--out", tmp_path / "run", "--steps", 1, "--split-by", "photo",
                *FAST)
    assert r.code == 2 and "--split-by" in r.err
    assert not (tmp_path / "run").exists()


def _train(run_cli, crops, out, *extra):
    r = run_cli("train", "--data", crops, "--out", out, "--steps", 1, "--val-fraction", "0.3", *FAST, *extra)
    assert r.code == 0, r
    return json.loads((out / "run.json").read_text())


def test_train_records_source_and_evaluate_holds_out_the_same_photos(run_cli, crops, tmp_path):
    meta = _train(run_cli, crops, tmp_path / "run")
    assert meta["recipe"]["split_by"] == "source"
    r = run_cli("evaluate", "--model", tmp_path / "run", "--data", crops, "--split", "heldout",
                "--csv", tmp_path / "s.csv", "--quiet")
    assert r.code == 0, r
    import csv

    ids = [row["id"] for row in csv.DictReader(open(tmp_path / "s.csv"))]
    ds = open_pairs(crops)
    _, held = split_indices(split_keys(ds, "source"), 0.3)
    assert sorted(ids) == sorted(ds[int(i)]["id"] for i in held)


def test_a_run_without_split_by_is_evaluated_per_pair(run_cli, crops, tmp_path):
    meta = _train(run_cli, crops, tmp_path / "run", "--split-by", "pair")
    assert "split_by" not in meta["recipe"]  # as runs made before the option: their split is pair
    r = run_cli("evaluate", "--model", tmp_path / "run", "--data", crops, "--split", "heldout",
                "--csv", tmp_path / "s.csv", "--quiet")
    assert r.code == 0, r
    import csv

    ids = [row["id"] for row in csv.DictReader(open(tmp_path / "s.csv"))]
    ds = open_pairs(crops)
    _, held = split_indices(split_keys(ds, "pair"), 0.3)
    assert sorted(ids) == sorted(ds[int(i)]["id"] for i in held)


def test_a_resumed_run_keeps_its_split_and_another_is_refused_by_name(run_cli, crops, tmp_path):
    _train(run_cli, crops, tmp_path / "run", "--split-by", "pair")  # as a run made before the option
    args = ["train", "--data", crops, "--out", tmp_path / "run", "--val-fraction", "0.3", "--resume", *FAST]
    r = run_cli(*args, "--steps", 2)  # no --split-by: the run's own (pair)
    assert r.code == 0, r
    r = run_cli(*args, "--steps", 3, "--split-by", "source")
    assert r.code == 2 and "split_by" in error_line(r)


def test_export_split_writes_only_that_side(run_cli, crops, tmp_path):
    ds = open_pairs(crops)
    train, held = split_indices(split_keys(ds, "source"), 0.3)
    for side, rows in (("heldout", held), ("train", train)):
        out = tmp_path / side
        r = run_cli("dataset", "export", crops, "--out", out, "--split", side, "--val-fraction", "0.3")
        assert r.code == 0, r
        names = {p.name for p in out.rglob("*.png")}
        assert names and all(any(n.startswith(ds[int(i)]["id"]) for i in rows) for n in names)
        assert len({n.split("_")[0] for n in names}) == len(rows)
