"""Held-out splits of a pair dataset: by pair id or by source, from the id, source and params
columns alone (numpy and hashlib only, so exports and ``dataset split`` never import torch).

The split depends only on the keys and the fraction, never on a seed, so ``train``,
``evaluate``, ``dataset split`` and ``dataset export --splits`` agree on which pairs are held out.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import BadInputError

#: ``--split-by`` choices: every pair of one source photo, clip or recorded sequence on one side
#: (``source``), or each pair on its own (``pair``: crops of one photo may land on both sides).
SPLIT_BY = ("source", "pair")


def heldout_fraction_of(pair_id: str) -> float:
    """A number in [0, 1) fixed by the pair's id: pairs below the fraction are held out."""
    h = hashlib.sha256(str(pair_id).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def pair_ids(ds) -> list:
    """Every pair's id, read from the id column alone (no image is decoded)."""
    return [row["id"] for row in ds.table.iter_rows(columns=["id"], batch_size=4096)]


def split_keys(ds, split_by: str) -> list:
    """What each row of ``ds`` is split by: its id (``pair``) or its source (``source``,
    :func:`blursynth.dataset.pair_source`), read from the id, source and params columns alone.

    A row whose params name no source (a dataset made by hand with ``pair_row`` and no photo)
    is its own source: its key is its id, so such datasets split as under ``pair``.
    """
    if split_by not in SPLIT_BY:
        raise BadInputError(f"--split-by must be one of {', '.join(SPLIT_BY)}; got {split_by!r}.")
    if split_by == "pair":
        return pair_ids(ds)
    import json

    from .schema import pair_source

    keys = []
    for row in ds.table.iter_rows(columns=["id", "source", "params"], batch_size=4096):
        try:
            keys.append(pair_source(json.loads(row["params"]) if row["params"] else {},
                                    row["source"]))
        except ValueError:
            keys.append(row["id"])
    return keys


def split_indices(ids, fraction: float):
    """Split row indices into (train, held-out) by a hash of each row's key: its pair id, or
    its source (:func:`split_keys`; rows of one source share a key, so they stay together).

    The split depends only on the keys and ``fraction``, never on a seed, so ``evaluate`` finds
    the same held-out pairs as the run that set them aside. Where the fraction selects none of
    two or more keys, the rows of the key with the smallest hash are held out, so validation
    always has one.

    Returns
    -------
    train, heldout : (n,) int64 ndarrays, sorted

    Examples
    --------
    >>> tr, ho = split_indices([f"{i:09d}" for i in range(1000)], 0.1)
    >>> len(tr) + len(ho), 70 < len(ho) < 130
    (1000, True)
    """
    if not 0 <= fraction < 1:
        raise BadInputError(f"--val-fraction must be in [0, 1); got {fraction}.")
    h = np.array([heldout_fraction_of(i) for i in ids], dtype=np.float64)
    held = h < fraction
    if fraction > 0 and not held.any() and len(set(ids)) >= 2:
        held = h == h.min()  # every row of that key (one row when keys are pair ids)
    idx = np.arange(len(h), dtype=np.int64)
    return idx[~held], idx[held]
