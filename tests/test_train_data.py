"""train/data.py and train's reading of blursynth.torch.PairDataset: weighted mixing of pair
datasets, crops, the held-out split, the sampler."""

import numpy as np
import pytest
import torch

from blursynth.dataset.split import split_indices
from blursynth.torch import PairDataset
from blursynth.train.data import PositionSampler


def mixed(paths, weights, *, seed, crop, verify=True):
    """The training rows as train reads them (every row: no held-out split)."""
    return PairDataset(paths, crop=crop, weights=weights, seed=seed, verify=verify)


def where(ds, k):
    """(dataset, row) of run sample k."""
    return ds.locate(ds.draw(k).index)


def sample(ds, k):
    item = ds[ds.draw(k)]
    return item["blurred"], item["sharp"]


def test_mixing_frequencies_match_weights_and_are_seeded(tiny_pairs_dataset):
    a, b = tiny_pairs_dataset(), tiny_pairs_dataset(n=6, seed=1)
    mix = mixed([a, b], [2.0, 1.0], seed=7, crop=32)
    picks = [where(mix, k) for k in range(3000)]
    share_a = np.mean([s == 0 for s, _ in picks])
    assert abs(share_a - 2 / 3) < 0.03
    rows_a = np.bincount([r for s, r in picks if s == 0], minlength=8)
    assert rows_a.min() > 0.6 * rows_a.mean()  # uniform over the dataset's rows
    again = mixed([a, b], [2.0, 1.0], seed=7, crop=32)
    assert [where(again, k) for k in range(50)] == picks[:50]
    other = mixed([a, b], [2.0, 1.0], seed=8, crop=32)
    assert [where(other, k) for k in range(50)] != picks[:50]
    # A sample is a function of its position: the same crop whatever was read before.
    x1, y1 = sample(mix, 123)
    sample(mix, 5)
    x2, y2 = sample(mix, 123)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and x1.shape == (3, 32, 32)


def test_pairs_smaller_than_the_crop_are_skipped_by_a_seeded_redraw(tiny_pairs_dataset, capfd):
    from blursynth.errors import BadInputError
    from blursynth.train.data import STREAM_CROP, aligned_crop, open_pairs, to_tensor
    from blursynth._rng import sample_rng

    path = tiny_pairs_dataset(n=8, size=((48, 64), (24, 32)))  # odd rows are 24x32
    ds = open_pairs(path)
    mix = mixed([path], [1.0], seed=3, crop=32)
    first = [where(mix, k)[1] for k in range(40)]
    assert {r % 2 for r in first} == {0, 1}  # both sizes are picked first
    for k, row in enumerate(first):
        b, s = sample(mix, k)
        assert b.shape == s.shape == (3, 32, 32)
        if row % 2 == 0:  # a pair that fits reads exactly what it read before the rule
            pair = ds[row]
            eb, es = aligned_crop(pair["blurred"], pair["sharp"], 32, sample_rng(3, k, STREAM_CROP))
            assert torch.equal(b, to_tensor(eb)) and torch.equal(s, to_tensor(es))
    again = mixed([path], [1.0], seed=3, crop=32)
    for k in (1, 7, 30):
        assert all(torch.equal(u, v) for u, v in zip(sample(mix, k), sample(again, k)))
    err = capfd.readouterr().err
    assert err.count("warning:") == 2  # one line per dataset and process (mix, again)
    assert "24x32, smaller than --crop 32" in err and "skipped" in err
    with pytest.raises(BadInputError, match="--crop 60 is larger than the images"):
        mixed([path], [1.0], seed=3, crop=60)
    # One fitting pair among many small ones is still found once the random draws run out.
    rare = tiny_pairs_dataset(n=80, size=((48, 64),) + ((24, 32),) * 79)  # only row 0 fits
    mix = mixed([rare], [1.0], seed=3, crop=32)
    b, _ = sample(mix, next(k for k in range(50) if where(mix, k)[1] != 0))
    row0 = open_pairs(rare)[0]
    assert any(torch.equal(b, to_tensor(row0["blurred"][y:y + 32, x:x + 32]))
               or torch.equal(b, to_tensor(row0["blurred"][y:y + 32, x:x + 32][:, ::-1]))
               for y in range(48 - 31) for x in range(64 - 31))


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


def test_a_changed_shard_stops_training_before_anything_is_written(tiny_pairs_dataset, tmp_path,
                                                                     run_cli):
    import json
    import shutil

    import pyarrow.parquet as pq

    from blursynth.errors import DatasetError

    from .conftest import error_line

    d = tmp_path / "d"
    shutil.copytree(tiny_pairs_dataset(), d)
    shard = d / json.loads((d / "manifest.json").read_text())["shards"][1]["file"]
    rg = pq.ParquetFile(shard).metadata.row_group(0)
    col = next(rg.column(k) for k in range(rg.num_columns)
               if rg.column(k).path_in_schema == "blurred.bytes")
    data = bytearray(shard.read_bytes())
    data[col.data_page_offset + 300] ^= 0x40  # inside the first pair's blurred PNG
    shard.write_bytes(bytes(data))
    args = ["train", "--data", d, "--steps", "1", "--crop", "16", "--config", "small",
            "--device", "cpu", "--perceptual", "none", "--quiet"]
    r = run_cli(*args, "--out", tmp_path / "run")
    assert r.code == 2 and error_line(r).startswith(f"error: {shard}: sha256 "), r
    assert not (tmp_path / "run").exists()
    # A loader worker (here: this process) names the shard and row it could not decode.
    with pytest.raises(DatasetError, match=rf"^{shard} row 0 blurred: cannot decode image"):
        mix = mixed([d], [1.0], seed=0, crop=16, verify=False)
        for k in range(64):
            sample(mix, k)
    with pytest.raises(DatasetError, match="does not match manifest"):
        mixed([d], [1.0], seed=0, crop=16)


def test_evaluate_refuses_a_changed_shard_and_names_the_row_under_no_verify(tiny_pairs_dataset,
                                                                              tmp_path, run_cli):
    import json
    import shutil

    import pyarrow.parquet as pq

    from .conftest import error_line

    run = tmp_path / "run"
    assert run_cli("train", "--data", tiny_pairs_dataset(), "--out", run, "--steps", "1",
                   "--crop", "32", "--batch-size", "2", "--perceptual", "none",
                   "--critic-steps", "1", "--val-count", "1", "--val-crop", "48", "--workers", "0",
                   "--quiet").code == 0
    d = tmp_path / "d"
    shutil.copytree(tiny_pairs_dataset(), d)
    shard = d / json.loads((d / "manifest.json").read_text())["shards"][1]["file"]
    rg = pq.ParquetFile(shard).metadata.row_group(0)
    col = next(rg.column(k) for k in range(rg.num_columns)
               if rg.column(k).path_in_schema == "blurred.bytes")
    data = bytearray(shard.read_bytes())
    data[col.data_page_offset + 300] ^= 0x40  # inside the first pair's blurred PNG
    shard.write_bytes(bytes(data))
    r = run_cli("evaluate", "--model", run, "--data", d, "--quiet")
    assert r.code == 2 and error_line(r).startswith(f"error: {shard}: sha256 "), r
    r = run_cli("evaluate", "--model", run, "--data", d, "--quiet", "--no-verify")
    line = error_line(r)
    assert r.code == 2, line
    assert line.startswith(f"error: {shard} row 0 blurred: cannot decode image"), line
