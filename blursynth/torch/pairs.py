"""PairDataset: a map-style torch dataset over one or more stored pair datasets."""

from __future__ import annotations

import torch


class PairDataset(torch.utils.data.Dataset):
    """Rows of one or more pair datasets as tensors (being written; the signature is fixed).

    ``PairDataset(path_or_paths, *, crop=None, flip=True, split=None, weights=None, seed=0,
    split_by="source", heldout=0.05, verify=True)``
    """

    def __init__(self, path_or_paths, *, crop=None, flip=True, split=None, weights=None, seed=0,
                 split_by="source", heldout=0.05, verify=True):
        raise NotImplementedError("blursynth.torch.PairDataset is being written")


class MixSampler(torch.utils.data.Sampler):
    """Indices of a PairDataset drawn by its mixing weights (being written)."""
