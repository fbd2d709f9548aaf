"""OnlineMix: online sources (:class:`~blursynth.torch.OnlineBlur`) beside stored pair datasets.

The loader of ``blursynth train --data PATH:W --online RECIPE:W``. It needs only the sources'
pairs, never how they were planned: recipes are resolved above it (``blursynth train`` opens
them with :func:`blursynth.torch.online.open_online`), so training imports nothing of the build.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from .._rng import check_seed, sample_rng
from ..errors import BadInputError
from ..train.data import STREAM_CROP, STREAM_INDEX_CROP, TRAIN_COLUMNS, draw_index
from .pairs import Draw, MixSampler, _check_epoch, _check_weights, crop_item


class OnlineMix(torch.utils.data.Dataset):
    """Stored pair datasets and online sources mixed by weight, cropped alike.

    Run sample ``k`` picks a source by the weights (stored datasets first, then the online
    ones) and a pair of it uniformly, both from (seed, k) as ``train`` draws them
    (:func:`blursynth.train.data.draw_index`); a stored pair is read and cropped by the
    :class:`~blursynth.torch.PairDataset`, an online one is rendered and cropped the same way
    (the same crop stream, flip included). A :class:`~blursynth.torch.MixSampler` over it
    (:meth:`sampler`) gives ``train``'s order, ranks and resume.

    Items: ``mix[Draw(i, k)]`` (what :meth:`sampler` yields) is pair ``i`` cropped as run
    sample ``k``; ``mix[i]`` is pair ``i`` (stored rows of the split, then each online source's
    pairs) cropped by (seed, i, epoch) as ``PairDataset``'s ``ds[i]`` (:meth:`set_epoch`), for
    ``DataLoader(mix, shuffle=True)`` and ``DistributedSampler``.

    Parameters
    ----------
    pairs : PairDataset or None
        The stored datasets (their rows of the split), with the same ``crop``; None for online
        sources alone.
    online : sequence of OnlineBlur
    online_weights : sequence of float
    crop : int
        Training crop side; every online pair must be at least this large (checked here).
    seed : int, optional
        Default the PairDataset's (0 without one).
    names : sequence of str, optional
        How errors name each online source (``--online`` recipe paths).
    rotate : bool, optional
        Turn online pairs as :class:`~blursynth.torch.PairDataset`'s ``rotate`` does; default
        the PairDataset's (False without one), which it must equal (the PairDataset turns the
        stored pairs).
    """

    def __init__(self, pairs, online, online_weights, *, crop, seed=None, names=None,
                 rotate=None):
        self.pairs, self.online = pairs, list(online)
        if not self.online:
            raise BadInputError("OnlineMix needs at least one OnlineBlur source.")
        if isinstance(crop, bool) or not isinstance(crop, numbers.Integral) or crop < 1:
            raise BadInputError(f"OnlineMix crop must be a whole number of pixels >= 1; got "
                                f"{crop!r}.")
        self.crop = int(crop)
        if pairs is not None and pairs.crop != self.crop:
            raise BadInputError(f"OnlineMix crop {self.crop} differs from its PairDataset's crop "
                                f"{pairs.crop}; pass the same crop to both (batches need one "
                                "size).")
        online_weights = _check_weights(online_weights, len(self.online))
        stored = pairs.weights if pairs is not None else np.zeros(0)
        self.weights = np.concatenate([stored, online_weights])
        self._cum = np.cumsum(self.weights)
        self.seed = check_seed(pairs.seed if seed is None and pairs is not None else (seed or 0))
        self.flip = True if pairs is None else pairs.flip
        if pairs is not None and rotate is not None and bool(rotate) != pairs.rotate:
            raise BadInputError(f"OnlineMix rotate={bool(rotate)} differs from its PairDataset's "
                                f"rotate={pairs.rotate}; pass the same to both (or leave "
                                "OnlineMix's out).")
        self.rotate = bool(rotate) if rotate is not None else \
            (False if pairs is None else pairs.rotate)
        self.epoch = 0
        self.names = list(names) if names is not None else [repr(o) for o in self.online]
        # Every source's items one after another: the stored datasets' rows, then each online
        # source's pairs from _starts[j].
        stored_lengths = [] if pairs is None else [len(r) for r in pairs.rows]
        n_stored = sum(stored_lengths)
        online_lengths = [len(o) for o in self.online]
        self._starts = (n_stored + np.concatenate([[0], np.cumsum(online_lengths)[:-1]])) \
            .astype(np.int64)
        self._lengths = np.array(stored_lengths + online_lengths, dtype=np.int64)
        stored_starts = [] if pairs is None else list(pairs.offsets[:-1])
        self._source_starts = np.array(stored_starts + list(self._starts), dtype=np.int64)
        self._total = n_stored + sum(online_lengths)
        for name, source in zip(self.names, self.online):
            sides = source.pair_sides()
            small = [hw for hw in sides if min(hw) < self.crop]
            if small:
                h, w = small[0]
                raise BadInputError(
                    f"--online {name}: {len(small)} of its {len(sides)} photos make pairs of "
                    f"{h}x{w}, smaller than --crop {self.crop}; pass --crop "
                    f"{min(h, w) // 4 * 4} or less, or a larger crop in the recipe.")

    def __len__(self) -> int:
        return self._total

    @property
    def rows(self) -> list:
        """Each source's pairs that may be drawn: the stored datasets' rows of the split, then
        every index of each online source (``train`` counts an epoch by them)."""
        stored = list(self.pairs.rows) if self.pairs is not None else []
        return stored + [np.arange(len(o), dtype=np.int64) for o in self.online]

    def set_epoch(self, epoch: int) -> None:
        """Key ``mix[i]``'s crop by ``epoch`` too (the stored datasets' as well)."""
        self.epoch = _check_epoch(epoch)
        if self.pairs is not None:
            self.pairs.set_epoch(epoch)

    def draw(self, position: int, seed: int | None = None) -> Draw:
        """Sample ``position``: a source by the weights, then a pair of it (train's draw)."""
        return Draw(draw_index(self.seed if seed is None else seed, position, self._cum,
                               self._lengths, self._source_starts), int(position))

    def sampler(self, num_samples: int, **kwargs) -> MixSampler:
        """A :class:`~blursynth.torch.MixSampler` of run samples (``train``'s order); keywords
        as :meth:`blursynth.torch.PairDataset.sampler`."""
        return MixSampler(self, num_samples, **kwargs)

    def __getitem__(self, item) -> dict:
        if isinstance(item, Draw):
            index, key = int(item.index), (int(item.position), STREAM_CROP)
        elif isinstance(item, bool) or not isinstance(item, (int, np.integer)) \
                or not -self._total <= item < self._total:
            raise IndexError(f"index {item!r} out of range for an OnlineMix of {self._total} "
                             "pairs (an int, or a Draw from .sampler())")
        else:
            index = int(item) % self._total
            key = (index, STREAM_INDEX_CROP, self.epoch)
        if index < self._starts[0]:  # a stored row: the PairDataset crops it
            return self.pairs[item if isinstance(item, Draw) else index]
        j = int(np.searchsorted(self._starts, index, side="right")) - 1
        pair = self.online[j].read(index - int(self._starts[j]), TRAIN_COLUMNS)
        stored = 0 if self.pairs is None else len(self.pairs.paths)  # sources: stored, then online
        return dict(crop_item(pair, self.crop, sample_rng(self.seed, *key), self.flip,
                              self.rotate),
                    dataset=stored + j)


__all__ = ["OnlineMix"]
