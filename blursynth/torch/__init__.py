"""Pairs where a training loop needs them: torch datasets over blursynth pairs.

:class:`PairDataset` (:mod:`.pairs`) reads stored pair datasets (crops, flips, the held-out
split and ``--data PATH:W`` mixing as ``blursynth train`` reads them). The names are loaded on
first use, so ``import blursynth.torch`` costs nothing until one is touched.
"""

from __future__ import annotations

from .._lazy import lazy_names

# name -> module of this package that defines it
_PUBLIC = {
    "PairDataset": "pairs",
    "MixSampler": "pairs",
    "OnlineBlur": "online",
    "OnlineMix": "mix",
    "Draw": "pairs",
}

__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC, globals())
