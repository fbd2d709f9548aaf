"""PairDataset: a map-style torch dataset over one or more stored pair datasets.

It is the loader ``blursynth train`` reads through (:func:`blursynth.train.loop.build_run`), so
a training loop of one's own gets the same rows, split, crops and mixing as ``train --data
PATH:W``. Two ways to index it:

- ``ds[i]``, ``i`` in ``range(len(ds))``: row ``i`` of the split (datasets one after another),
  cropped and flipped at random keyed by (seed, i, epoch) (:meth:`PairDataset.set_epoch`). This is
  what ``DataLoader(ds, shuffle=True)`` and ``DistributedSampler(ds)`` use.
- ``ds[Draw(i, k)]``, as :meth:`PairDataset.sampler` yields them: sample ``k`` of a mixed run.
  Its row was drawn by the datasets' weights and its crop is keyed by (seed, k), so a row drawn
  twice is cropped twice at random. ``train`` reads these.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from .._rng import check_seed, sample_rng
from ..dataset.split import SPLIT_BY, split_indices, split_keys
from ..errors import BadInputError, DatasetError
from ..train.data import (
    MAX_REDRAWS, STREAM_CROP, STREAM_INDEX_CROP, STREAM_INDEX_REDRAW, STREAM_REDRAW,
    TRAIN_COLUMNS, aligned_crop, aligned_turn, check_ground_truth, draw_index, open_pairs,
    rank_positions, to_tensor,
)

#: ``split=`` choices: every row, the rows a run trains on, the rows it holds out.
SPLITS = (None, "train", "heldout")
#: Rows per dataset whose size is read up front to refuse a crop larger than all of them.
PROBES = 8


class Draw(NamedTuple):
    """One sample of a mixed run: row ``index`` of the dataset, cropped as run sample
    ``position``."""

    index: int
    position: int


class PairDataset(torch.utils.data.Dataset):
    """Rows of one or more pair datasets as float tensors, with aligned random crops and flips.

    Parameters
    ----------
    path_or_paths : str, Path or sequence of them
        Pair datasets (folders with ``manifest.json``), as ``train --data``.
    crop : int, optional
        Side of the square window cut from both images at the same place; None keeps the
        whole images (batch them only if they share a size). A pair smaller than the crop is
        skipped: another pair of the same dataset is drawn in its place (seeded, one warning
        line per dataset and process).
    flip : bool
        Flip both images left-right with probability 1/2.
    rotate : bool
        Also flip both top-bottom and transpose both (square crops), each with probability
        1/2: with ``flip``, any of the eight rotations and mirrorings (``train --rotate``).
    split : {None, 'train', 'heldout'}
        Every row, or the rows ``train`` trains on or holds out for validation with the same
        ``split_by`` and ``heldout`` (``train --split-by``, ``--val-fraction``; ``evaluate``
        scores the held-out rows).
    weights : sequence of float, optional
        Relative frequency of each dataset in :meth:`sampler` and :meth:`sample_weights`
        (``train --data PATH:W``); default 1 each.
    seed : int
        Keys every random choice (crops, flips, draws), with the index and the epoch.
    split_by : {'source', 'pair'}
        Keep every pair of one photo, clip or sequence on one side, or split pairs singly.
    heldout : float
        Fraction held out, in [0, 1) (train's default ``--val-fraction``).
    verify : bool
        Hash each shard against its manifest when first opened (``--no-verify`` turns it off).

    Attributes
    ----------
    paths : list of str
    weights : (D,) float64 ndarray
    rows : list of (n_d,) int64 ndarray
        Rows of each dataset in the split; index ``i`` is ``rows[d][i - offsets[d]]``.
    heldout_rows : list of (m_d,) int64 ndarray
        Rows of each dataset the split holds out (empty with ``split=None`` or ``heldout=0``).
    offsets : (D + 1,) int64 ndarray

    Notes
    -----
    An item is a dict: ``blurred`` and ``sharp`` float32 (3, H, W) tensors in [0, 1] and ``id``
    (str, the pair's id); the default collate makes a batch of it. Datasets are opened in the
    process that reads them (loader workers open their own), never pickled open. Errors name
    ``train``'s options (``--data``, ``--crop``), which are these parameters.

    Examples
    --------
    >>> ds = PairDataset(["synth/", "real/"], crop=128, split="train", weights=[2, 1])  # doctest: +SKIP
    >>> loader = torch.utils.data.DataLoader(ds, batch_size=8, sampler=ds.sampler(8000),
    ...                                      num_workers=2)  # doctest: +SKIP
    >>> batch = next(iter(loader)); batch["blurred"].shape  # doctest: +SKIP
    torch.Size([8, 3, 128, 128])
    """

    def __init__(self, path_or_paths, *, crop=None, flip=True, split=None, weights=None, seed=0,
                 split_by="source", heldout=0.05, verify=True, rotate=False):
        paths = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) \
            else list(path_or_paths)
        if not paths or not all(isinstance(p, (str, os.PathLike)) for p in paths):
            raise BadInputError(f"path_or_paths must be a pair dataset's folder or a list of them; "
                                f"got {path_or_paths!r}.")
        self.paths = [str(p) for p in paths]
        self.weights = _check_weights(weights, len(paths))
        if crop is not None and (isinstance(crop, bool) or not isinstance(crop, (int, np.integer))
                                 or crop < 1):
            raise BadInputError(f"crop must be a whole number of pixels >= 1 or None; got "
                                f"{crop!r}.")
        self.crop = None if crop is None else int(crop)
        if split not in SPLITS:
            raise BadInputError(f"split must be None, 'train' or 'heldout'; got {split!r}.")
        if split_by not in SPLIT_BY:
            raise BadInputError(f"split_by must be one of {', '.join(SPLIT_BY)}; got "
                                f"{split_by!r}.")
        if isinstance(heldout, bool) or not isinstance(heldout, numbers.Real) \
                or not 0 <= heldout < 1:
            raise BadInputError(f"heldout must be a fraction in [0, 1); got {heldout!r}.")
        self.flip, self.rotate = bool(flip), bool(rotate)
        self.split, self.split_by = split, split_by
        self.heldout, self.seed, self.verify = float(heldout), check_seed(seed), bool(verify)
        self.epoch = 0
        self.rows, self.heldout_rows = [], []
        datasets = [open_pairs(p, verify=self.verify) for p in self.paths]
        for path, ds in zip(self.paths, datasets):
            check_ground_truth(ds, path)
            keys = []
            if split is None:
                rows, held = np.arange(len(ds), dtype=np.int64), np.zeros(0, np.int64)
            else:
                keys = split_keys(ds, split_by)
                rows, held = split_indices(keys, self.heldout)
                if split == "heldout":
                    rows, held = held, rows
            if len(rows) == 0:
                raise BadInputError(_empty_split(path, split, len(ds), len(held), self.heldout,
                                                 split_by, len(set(keys))))
            self.rows.append(rows)
            self.heldout_rows.append(held if split == "train" else np.zeros(0, np.int64))
        self.offsets = np.concatenate([[0], np.cumsum([len(r) for r in self.rows])]).astype(np.int64)
        if self.crop is not None:
            for d, ds in enumerate(datasets):
                self._check_crop_fits(d, ds)
        self._cum_weights = np.cumsum(self.weights)
        self._datasets, self._pid = datasets, os.getpid()
        self._warned, self._small = set(), set()

    # -- size, state, pickling ------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __repr__(self) -> str:
        sources = ", ".join(f"{p!r}" + (f" x{w:g}" if len(self.paths) > 1 else "")
                            for p, w in zip(self.paths, self.weights))
        split = "" if self.split is None else f", split {self.split} by {self.split_by}"
        return f"PairDataset({sources}, {len(self)} pairs, crop {self.crop}{split})"

    def set_epoch(self, epoch: int) -> None:
        """Key ``ds[i]``'s crop and flip by ``epoch`` too (call it before each epoch, as
        ``DistributedSampler.set_epoch``). Loader workers see it when they start, so use it
        with ``persistent_workers=False`` (the default)."""
        self.epoch = _check_epoch(epoch)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_datasets"] = None  # each process opens its own
        return state

    def _open(self):
        if self._datasets is None or self._pid != os.getpid():  # a forked worker: reopen
            self._datasets = [open_pairs(p, verify=self.verify) for p in self.paths]
            self._pid = os.getpid()
        return self._datasets

    # -- where an index is ----------------------------------------------------------------

    def locate(self, index: int) -> tuple:
        """(dataset number, row of that dataset) of ``index``."""
        n = len(self)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
                or not -n <= index < n:
            raise IndexError(f"index {index!r} out of range for a PairDataset of {n} rows")
        index = int(index) % n
        d = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return d, int(self.rows[d][index - int(self.offsets[d])])

    def draw(self, position: int, seed: int | None = None) -> Draw:
        """Sample ``position`` of a mixed run: a dataset chosen by the weights, then one of its
        rows uniformly, both keyed by (seed, position) (``train``'s draw)."""
        return Draw(draw_index(self.seed if seed is None else seed, position, self._cum_weights,
                               np.diff(self.offsets), self.offsets), int(position))

    def sample_weights(self) -> torch.Tensor:
        """(len(ds),) float64: each row's probability in :meth:`sampler`'s draws (a dataset's
        weight shared by its rows), for ``WeightedRandomSampler`` and the like."""
        share = self.weights / self.weights.sum()
        return torch.from_numpy(np.concatenate(
            [np.full(len(r), s / len(r)) for r, s in zip(self.rows, share)]))

    def sampler(self, num_samples: int, *, seed: int | None = None, rank: int | None = None,
                world_size: int | None = None, batch_size: int = 1, start: int = 0):
        """A :class:`MixSampler` drawing ``num_samples`` samples per rank by the weights."""
        return MixSampler(self, num_samples, seed=seed, rank=rank, world_size=world_size,
                          batch_size=batch_size, start=start)

    # -- reading --------------------------------------------------------------------------

    def __getitem__(self, index) -> dict:
        if isinstance(index, Draw):
            d, row = self.locate(index.index)
            key = (index.position, STREAM_CROP), (index.position, STREAM_REDRAW)
        else:
            d, row = self.locate(index)
            i = int(index) % len(self)  # ds[-1] is cropped as ds[len(ds) - 1]
            key = (i, STREAM_INDEX_CROP, self.epoch), (i, STREAM_INDEX_REDRAW, self.epoch)
        ds = self._open()[d]
        pair = ds.read(row, TRAIN_COLUMNS)
        h, w = pair["blurred"].shape[:2]
        if self.crop is not None and self.crop > min(h, w):
            self._warn_small(d, pair, h, w)
            pair = self._fitting_pair(d, sample_rng(self.seed, *key[1]))
        # ids are per dataset: `dataset` (the path's position) tells a mix's items apart
        return dict(crop_item(pair, self.crop, sample_rng(self.seed, *key[0]), self.flip,
                              self.rotate),
                    dataset=d)

    def _fitting_pair(self, d, rng):
        """Another pair of dataset ``d`` that fits the crop: up to MAX_REDRAWS random draws,
        then the first that fits in row order from a drawn start (wrapping), so that a rare
        fitting pair is still found; which pair depends only on ``rng``."""
        rows, ds = self.rows[d], self._open()[d]

        def fits(row):
            if (d, row) in self._small:
                return None
            pair = ds.read(row, TRAIN_COLUMNS)
            if self.crop <= min(pair["blurred"].shape[:2]):
                return pair
            self._small.add((d, row))
            return None

        for _ in range(MAX_REDRAWS):
            pair = fits(int(rows[int(rng.integers(len(rows)))]))
            if pair is not None:
                return pair
        start = int(rng.integers(len(rows)))
        for j in range(len(rows)):
            pair = fits(int(rows[(start + j) % len(rows)]))
            if pair is not None:
                return pair
        raise DatasetError(
            f"--data {self.paths[d]}: no training pair is as large as --crop {self.crop}; pass "
            "a smaller --crop or remove the small pairs.")

    def _warn_small(self, d, pair, h, w):
        if d in self._warned:
            return
        self._warned.add(d)
        # One plain line (this may run in a loader worker, outside the CLI's error handling). On
        # a terminal the progress bar's partial line is cleared first; the bar redraws after it.
        clear = "\r\x1b[K" if sys.stderr.isatty() else ""
        sys.stderr.write(
            f"{clear}warning: --data {self.paths[d]}: pair {pair.get('id', '?')} is {h}x{w}, "
            f"smaller than --crop {self.crop}; pairs that small are skipped (another pair of the "
            "same dataset is drawn in their place).\n")
        sys.stderr.flush()

    def _check_crop_fits(self, d, ds):
        """Refuse a crop larger than every one of a few evenly spaced rows of the split (reading
        every image's size up front would read the whole dataset); smaller pairs found later
        are skipped with a warning."""
        rows = self.rows[d]
        probe = rows[np.linspace(0, len(rows) - 1, min(len(rows), PROBES)).round().astype(int)]
        shapes = [ds.read(int(i), TRAIN_COLUMNS)["blurred"].shape[:2] for i in probe]
        if all(self.crop > min(hw) for hw in shapes):
            h, w = max(shapes, key=min)
            raise BadInputError(
                f"--crop {self.crop} is larger than the images of {self.paths[d]} ({h}x{w}); pass "
                f"--crop {min(h, w) // 4 * 4} or less.")


def crop_item(pair, crop, rng, flip=True, rotate=False) -> dict:
    """A loader item of a decoded pair (``blurred``, ``sharp``, ``id``): the same ``crop`` x
    ``crop`` window of both images (None: the whole images), both flipped left-right or neither
    (probability 1/2 with ``flip``), then with ``rotate`` both turned alike
    (:func:`~blursynth.train.data.aligned_turn`), drawn from ``rng`` in that order; float32
    (3, H, W) tensors in [0, 1]."""
    if crop is not None:
        b, s = aligned_crop(pair["blurred"], pair["sharp"], crop, rng, flip=flip)
    else:
        b, s = pair["blurred"], pair["sharp"]
        if flip and rng.random() < 0.5:
            b, s = b[:, ::-1], s[:, ::-1]
    if rotate:  # drawn after the crop and flip, so runs without it keep their streams
        b, s = aligned_turn(b, s, rng)
    return {"blurred": to_tensor(b), "sharp": to_tensor(s), "id": pair["id"]}


class MixSampler(torch.utils.data.Sampler):
    """Draws of a :class:`PairDataset` by its weights, for one rank: :class:`Draw` items.

    Rank ``r`` of ``R`` with per-rank batch ``B`` reads run samples ``k`` whose block
    ``k // B`` is ``r`` modulo ``R``, in order: step ``t`` of rank ``r`` is ``t*B*R + r*B`` to
    ``t*B*R + r*B + B - 1``, so ranks never read the same sample and the run is the same sample
    sequence whatever the number of loader workers. Each sample's dataset, row and crop are a
    pure function of (seed, k): resuming at ``start`` reads what an unbroken run would have,
    in the epoch it stopped in and in the epochs after it.

    Parameters
    ----------
    dataset : PairDataset
    num_samples : int
        Samples per rank per epoch (the loader's batches times ``batch_size``).
    seed : int, optional
        The draws' seed; default the dataset's (the crops always use the dataset's).
    rank, world_size : int, optional
        Default: torch.distributed's when it is initialised, else 0 and 1.
    batch_size : int
        The per-rank batch, so each rank's batches are whole blocks of the run.
    start : int
        Per-rank samples the run has read already, counted over its epochs (a resumed run: steps
        done times ``batch_size``). Epoch ``e`` (:meth:`set_epoch`) skips those of its own
        samples among them, ``min(max(start - e * num_samples, 0), num_samples)``: the epoch
        the run stopped in resumes where it stopped, later epochs are whole.

    Examples
    --------
    >>> ds = PairDataset("pairs/", crop=64, weights=None)  # doctest: +SKIP
    >>> [d.position for d in ds.sampler(4, rank=1, world_size=2, batch_size=2)]  # doctest: +SKIP
    [2, 3, 6, 7]
    """

    def __init__(self, dataset, num_samples, *, seed=None, rank=None, world_size=None,
                 batch_size=1, start=0):
        if rank is None or world_size is None:
            dist = torch.distributed
            on = dist.is_available() and dist.is_initialized()
            rank = (dist.get_rank() if on else 0) if rank is None else rank
            world_size = (dist.get_world_size() if on else 1) if world_size is None else world_size
        for name, value, low in (("num_samples", num_samples, 0), ("batch_size", batch_size, 1),
                                 ("world_size", world_size, 1), ("rank", rank, 0),
                                 ("start", start, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise BadInputError(f"{name} must be a whole number >= {low}; got {value!r}.")
        if rank >= world_size:
            raise BadInputError(f"rank must be below world_size {world_size}; got {rank}.")
        self.dataset = dataset
        self.seed = dataset.seed if seed is None else check_seed(seed)
        self.num_samples, self.batch, self.start = int(num_samples), int(batch_size), int(start)
        self.rank, self.world = int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch``'s samples: run samples after those of the epochs before it."""
        self.epoch = _check_epoch(epoch)

    def _skip(self) -> int:
        """This epoch's per-rank samples that ``start`` says were read."""
        return min(max(self.start - self.epoch * self.num_samples, 0), self.num_samples)

    def __len__(self) -> int:
        return self.num_samples - self._skip()

    def positions(self) -> Sequence:
        """The run samples ``k`` this rank reads this epoch, in order."""
        base = self.epoch * self.num_samples * self.world
        return (base + rank_positions(self._skip(), self.num_samples, self.batch, self.rank,
                                      self.world)).tolist()

    def __iter__(self):
        for k in self.positions():
            yield self.dataset.draw(k, self.seed)


def _check_weights(weights, n) -> np.ndarray:
    if weights is None:
        return np.ones(n, dtype=np.float64)
    try:
        w = np.asarray(list(weights), dtype=np.float64)
    except (TypeError, ValueError):
        raise BadInputError(f"weights must be a list of numbers, one per dataset; got "
                            f"{weights!r}.") from None
    if w.shape != (n,):
        raise BadInputError(f"weights: {len(w)} weight(s) for {n} dataset(s); give one per "
                            "path, e.g. weights=[2, 1] for two datasets.")
    if not all(math.isfinite(x) and x > 0 for x in w):
        raise BadInputError(f"weights must be positive finite numbers; got {list(weights)}.")
    return w


def _check_epoch(epoch) -> int:
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise BadInputError(f"epoch must be a whole number >= 0; got {epoch!r}.")
    return int(epoch)


def _empty_split(path, split, n, other, heldout, split_by, n_keys) -> str:
    if split == "heldout" and heldout == 0:
        return (f"--data {path}: no pairs in the held-out split ({n} pairs); pass a heldout "
                "fraction above 0 or split=None.")
    if split == "heldout" and split_by == "source":
        return (f"--data {path}: no pairs in the held-out split ({n} pairs of {n_keys} "
                f"source{'s' if n_keys != 1 else ''}; sources are held out whole, and a lone "
                "source stays in training); pass split_by='pair', a dataset with more sources, "
                "or split=None.")
    if split == "heldout":
        return (f"--data {path}: no pairs in the held-out split ({n} pair{'s' if n != 1 else ''}"
                "; a lone pair stays in training); pass a dataset with more pairs or "
                "split=None.")
    if split == "train":
        return (f"--data {path}: no pairs left in the training split ({n} pairs, {other} held "
                "out); add pairs or lower --val-fraction.")
    return f"--data {path}: the dataset has no pairs; pass one with at least one pair."


__all__ = ["PairDataset", "MixSampler", "Draw"]
