"""Pairs where a training loop needs them: torch datasets over blursynth pairs.

:class:`PairDataset` (:mod:`.pairs`) reads stored pair datasets (crops, flips, the held-out
split and ``--data PATH:W`` mixing as ``blursynth train`` reads them). The names are loaded on
first use, so ``import blursynth.torch`` costs nothing until one is touched.
"""

from __future__ import annotations

import importlib

# name -> module of this package that defines it
_PUBLIC = {
    "PairDataset": "pairs",
    "MixSampler": "pairs",
    "OnlineBlur": "online",
    "OnlineMix": "mix",
    "Draw": "pairs",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'blursynth.torch' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
