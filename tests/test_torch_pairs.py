"""blursynth.torch.PairDataset (issue 20 §1): rows of a split, aligned crops keyed by (seed,
index, epoch), weighted draws as train makes them, DataLoader workers, DistributedSampler, bad
input, and the README's training loop."""

from __future__ import annotations

import functools
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from blursynth._rng import sample_rng
from blursynth.dataset import PAIR_SCHEMA, pair_row, write_dataset
from blursynth.dataset.split import split_indices, split_keys
from blursynth.errors import BadInputError, DatasetError
from blursynth.torch import Draw, MixSampler, PairDataset
from blursynth.train.data import (
    STREAM_CROP, STREAM_INDEX_CROP, aligned_crop, choose_source, open_pairs, to_tensor,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def _rows(start, stop, *, n_photos, size, fp):
    for i in range(start, stop):
        rng = sample_rng(5, i)
        h, w = size[i % len(size)]
        sharp = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        yield pair_row(index=i, blurred=sharp // 2, sharp=sharp, psf=None, source="trajectory",
                       seed=0, params={"photo": f"photos/p{i % n_photos}.png",
                                       "crop": [i, 0, w, h]}, fingerprint=fp)


def _write(out, n, n_photos, size=((20, 24),), fp="fp"):
    write_dataset(out, kind="pairs", schema=PAIR_SCHEMA, n_items=n, shard_size=8,
                  make_rows=functools.partial(_rows, n_photos=n_photos, size=size, fp=fp),
                  fingerprint=fp, command={"test": fp}, progress=False, row_group_size=2)
    return out


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """a: 24 pairs (4 crops each of 6 photos); b: 10 pairs of 5 photos."""
    root = tmp_path_factory.mktemp("torchpairs")
    return _write(root / "a", 24, 6, fp="fp-a"), _write(root / "b", 10, 5, fp="fp-b")


def test_rows_of_each_split_and_the_item(sets):
    a, b = sets
    every = PairDataset([a, b])
    assert len(every) == 34 and every.locate(25) == (1, 1) and every.locate(-1) == (1, 9)
    train = PairDataset([a, b], split="train", heldout=0.3)
    held = PairDataset([a, b], split="heldout", heldout=0.3)
    assert len(train) + len(held) == 34 and len(held) > 0
    for d, path in enumerate((a, b)):
        tr, ho = split_indices(split_keys(open_pairs(path), "source"), 0.3)
        assert train.rows[d].tolist() == tr.tolist() == sorted(set(tr) - set(held.rows[d]))
        assert held.rows[d].tolist() == train.heldout_rows[d].tolist() == ho.tolist()
        photos = lambda rows: {i % (6, 5)[d] for i in rows}  # noqa: E731
        assert not photos(tr) & photos(ho)  # split by source: a photo on one side only
    item = every[25]  # row 1 of b, whole, flipped or not
    pair = open_pairs(b)[1]
    assert set(item) == {"blurred", "sharp", "id", "dataset"} and item["id"] == pair["id"]
    # ids repeat across datasets; `dataset` (the path's position) tells them apart
    assert every[0]["id"] == every[24]["id"] and (every[0]["dataset"], item["dataset"]) == (0, 1)
    assert item["blurred"].dtype == torch.float32 and item["blurred"].shape == (3, 20, 24)
    flipped = to_tensor(pair["blurred"][:, ::-1])
    assert torch.equal(item["blurred"], to_tensor(pair["blurred"])) or \
        torch.equal(item["blurred"], flipped)
    plain = PairDataset([a, b], flip=False)[25]
    assert torch.equal(plain["sharp"], to_tensor(pair["sharp"]))


def test_repr_says_what_the_dataset_reads(sets):
    a, b = sets
    assert repr(PairDataset(a)) == f"PairDataset({str(a)!r}, 24 pairs, crop None)"
    both = PairDataset([a, b], crop=16, split="train", heldout=0.3, weights=[2, 1])
    assert repr(both) == (f"PairDataset({str(a)!r} x2, {str(b)!r} x1, {len(both)} pairs, crop 16, "
                          "split train by source)")


def test_crops_are_aligned_and_keyed_by_seed_index_and_epoch(sets, monkeypatch):
    from blursynth.dataset.reader import PairDataset as Reader

    a, _ = sets
    ds = PairDataset(a, crop=8, seed=3)
    read = []
    real = Reader.read
    monkeypatch.setattr(Reader, "read", lambda self, i, columns=None: read.append(columns)
                        or real(self, i, columns))
    items = {i: ds[i] for i in (0, 7, 19)}
    monkeypatch.undo()
    assert read == [("id", "blurred", "sharp")] * 3  # the images only, never the PSF or params
    for i, item in items.items():
        pair = open_pairs(a)[i]
        b, s = aligned_crop(pair["blurred"], pair["sharp"], 8,
                            sample_rng(3, i, STREAM_INDEX_CROP, 0))
        assert torch.equal(item["blurred"], to_tensor(b)) and torch.equal(item["sharp"], to_tensor(s))
        u8 = lambda x: (x * 255).round().to(torch.uint8)  # noqa: E731
        assert torch.equal(u8(item["blurred"]), u8(item["sharp"]) // 2)  # one window of both
    again = [PairDataset(a, crop=8, seed=3)[i]["blurred"] for i in range(24)]
    assert all(torch.equal(ds[i]["blurred"], again[i]) for i in range(24))
    other = PairDataset(a, crop=8, seed=4)
    assert not all(torch.equal(other[i]["blurred"], again[i]) for i in range(24))
    ds.set_epoch(1)
    assert not all(torch.equal(ds[i]["blurred"], again[i]) for i in range(24))
    ds.set_epoch(0)
    assert torch.equal(ds[5]["blurred"], again[5]) and torch.equal(ds[-1]["blurred"], again[23])
    with pytest.raises(BadInputError, match=r"^epoch must be a whole number >= 0; got -1\.$"):
        ds.set_epoch(-1)


def test_random_access_reads_one_row_group(sets, monkeypatch):
    from blursynth.dataset.reader import ShardedTable

    a, _ = sets
    ds = PairDataset(a, crop=8)
    groups = []
    real = ShardedTable.read_group
    monkeypatch.setattr(ShardedTable, "read_group", lambda self, s, g, columns=None:
                        groups.append((s, g)) or real(self, s, g, columns))
    ds[13]  # shard 1 (rows 8-15), row group 2 (rows 12-13)
    assert groups == [(1, 2)]


def test_draws_are_trains_mix_per_rank_and_resumable(sets):
    a, b = sets
    ds = PairDataset([a, b], crop=8, weights=[2, 1], seed=7, split="train", heldout=0.2)
    cum = np.cumsum([2.0, 1.0])
    draws = list(ds.sampler(3000))
    assert [d.position for d in draws] == list(range(3000))
    for k in (0, 1, 99):  # train's choice: the dataset, then a row uniformly, by (seed, k)
        src, u = choose_source(7, k, cum)
        n = len(ds.rows[src])
        assert draws[k].index == ds.offsets[src] + min(int(u * n), n - 1)
    share_a = np.mean([ds.locate(d.index)[0] == 0 for d in draws])
    assert abs(share_a - 2 / 3) < 0.03
    w = ds.sample_weights()
    assert w.dtype == torch.float64 and len(w) == len(ds)
    assert float(w[: ds.offsets[1]].sum()) == pytest.approx(2 / 3)
    # A drawn sample is cropped by its position: the same row drawn twice is cropped twice.
    item, d = ds[draws[5]], draws[5]
    pair = open_pairs(a if ds.locate(d.index)[0] == 0 else b)[ds.locate(d.index)[1]]
    bb, _ = aligned_crop(pair["blurred"], pair["sharp"], 8, sample_rng(7, 5, STREAM_CROP))
    assert torch.equal(item["blurred"], to_tensor(bb))
    # Ranks read disjoint blocks of the run; a resumed sampler reads the rest of the same run.
    r0 = [d.position for d in ds.sampler(6, rank=0, world_size=2, batch_size=3)]
    r1 = [d.position for d in ds.sampler(6, rank=1, world_size=2, batch_size=3)]
    assert r0 == [0, 1, 2, 6, 7, 8] and r1 == [3, 4, 5, 9, 10, 11]
    tail = list(ds.sampler(6, rank=1, world_size=2, batch_size=3, start=3))
    assert [d.position for d in tail] == r1[3:] and len(ds.sampler(6, start=3)) == 3
    with pytest.MonkeyPatch.context() as mp:  # under torch.distributed: its rank and world
        mp.setattr(torch.distributed, "is_initialized", lambda: True)
        mp.setattr(torch.distributed, "get_rank", lambda group=None: 1)
        mp.setattr(torch.distributed, "get_world_size", lambda group=None: 2)
        assert [d.position for d in ds.sampler(6, batch_size=3)] == r1
    s = ds.sampler(4)
    s.set_epoch(2)
    assert [d.position for d in s] == [8, 9, 10, 11]
    # start counts the run's samples: the epoch it stopped in resumes, later epochs are whole
    resumed, whole = ds.sampler(4, start=2), ds.sampler(4)
    assert [d.position for d in resumed] == [2, 3] and len(resumed) == 2
    for epoch in (1, 2):
        resumed.set_epoch(epoch)
        whole.set_epoch(epoch)
        assert list(resumed) == list(whole) and len(resumed) == 4
    late = ds.sampler(4, start=6)  # stopped in epoch 1: epoch 0 was read whole
    assert len(late) == 0
    late.set_epoch(1)
    assert [d.position for d in late] == [6, 7]
    assert list(ds.sampler(5, seed=1)) != draws[:5]


def test_dataloader_workers_and_distributed_sampler(sets):
    from torch.utils.data import DataLoader, DistributedSampler

    a, b = sets
    ds = PairDataset([a, b], crop=8, seed=2)
    pickle.loads(pickle.dumps(ds))  # nothing open is pickled
    assert pickle.loads(pickle.dumps(ds))._datasets is None
    seen = []
    for rank in (0, 1):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(1)
        ds.set_epoch(1)
        loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=2)
        batches = list(loader)
        order = list(sampler)
        seen += order
        got = torch.cat([x["blurred"] for x in batches])
        want = torch.stack([ds[i]["blurred"] for i in order])
        assert torch.equal(got, want)
        assert sum((x["id"] for x in batches), []) == [ds[i]["id"] for i in order]
    assert sorted(set(seen)) == list(range(len(ds)))
    mixed = DataLoader(ds, batch_size=5, sampler=ds.sampler(10), num_workers=2)
    one = DataLoader(ds, batch_size=5, sampler=ds.sampler(10), num_workers=0)
    assert all(torch.equal(x["sharp"], y["sharp"]) for x, y in zip(mixed, one))


def test_pairs_smaller_than_the_crop(tmp_path, capfd):
    mix = _write(tmp_path / "m", 8, 4, size=((20, 24), (6, 8)))  # odd rows are 6x8
    ds = PairDataset(mix, crop=12, seed=1)
    for i in range(8):
        assert ds[i]["blurred"].shape == (3, 12, 12)
        assert int(ds[i]["id"]) % 2 == 0  # a small pair's place is taken by one that fits
    assert capfd.readouterr().err.count("warning:") == 1  # one line per dataset and process
    with pytest.raises(BadInputError, match=r"^--crop 24 is larger than the images of .*m "
                                            r"\(20x24\); pass --crop 20 or less\.$"):
        PairDataset(mix, crop=24)


@pytest.mark.parametrize("kwargs, message", [
    ({"weights": [1, 2]}, r"^weights: 2 weight\(s\) for 1 dataset\(s\); give one per path"),
    ({"weights": [0]}, r"^weights must be positive finite numbers; got \[0\]\.$"),
    ({"weights": "ab"}, r"^weights must be a list of numbers, one per dataset; got 'ab'\.$"),
    ({"crop": 0}, r"^crop must be a whole number of pixels >= 1 or None; got 0\.$"),
    ({"crop": True}, r"^crop must be"),
    ({"split": "val"}, r"^split must be None, 'train' or 'heldout'; got 'val'\.$"),
    ({"split_by": "photo"}, r"^split_by must be one of source, pair; got 'photo'\.$"),
    ({"heldout": 1.0}, r"^heldout must be a fraction in \[0, 1\); got 1\.0\.$"),
    ({"heldout": "0.1"}, r"^heldout must be a fraction in \[0, 1\); got '0\.1'\.$"),
    ({"seed": -1}, r"^seed must be in"),
    ({"split": "heldout", "heldout": 0}, r"no pairs in the held-out split \(24 pairs\)"),
])
def test_bad_arguments_are_one_line(sets, kwargs, message):
    a, _ = sets
    with pytest.raises(BadInputError, match=message) as info:
        PairDataset(a, **kwargs)
    assert "\n" not in str(info.value)


def test_an_empty_held_out_split_names_its_cause(tmp_path):
    one = _write(tmp_path / "one", 4, 1)  # four crops of one photo
    with pytest.raises(BadInputError, match=r"\(4 pairs of 1 source; sources are held out whole"
                       r".*pass split_by='pair', a dataset with more sources, or split=None\.$"):
        PairDataset(one, split="heldout", heldout=0.3)
    assert len(PairDataset(one, split="heldout", heldout=0.3, split_by="pair")) >= 1
    single = _write(tmp_path / "single", 1, 1)
    with pytest.raises(BadInputError, match=r"\(1 pair; a lone pair stays in training\)"):
        PairDataset(single, split="heldout", heldout=0.3, split_by="pair")


def test_bad_paths_and_samplers(sets, tmp_path):
    a, _ = sets
    with pytest.raises(BadInputError, match=r"^path_or_paths must be a pair dataset's folder"):
        PairDataset([])
    with pytest.raises(DatasetError, match=r"no such folder"):
        PairDataset([a, tmp_path / "none"])
    ds = PairDataset(a)
    with pytest.raises(BadInputError, match=r"^rank must be below world_size 2; got 2\.$"):
        ds.sampler(4, rank=2, world_size=2)
    with pytest.raises(BadInputError, match=r"^num_samples must be a whole number >= 0"):
        MixSampler(ds, -1)
    with pytest.raises(IndexError):
        ds[24]
    assert isinstance(next(iter(ds.sampler(1))), Draw)


def test_readme_training_loop_runs(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    section = text[text.index("### Training your own network"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    for name, n in (("synth", 12), ("real", 6)):
        _write(tmp_path / name, n, 3, size=((72, 80),), fp=name)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert re.search(r"^\d+ training pairs, last L1 \d\.\d{4}$", capsys.readouterr().out, re.M)
