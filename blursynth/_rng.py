"""Seed handling: one generator per sample, keyed by (seed, index)."""

from __future__ import annotations

import numpy as np

from .errors import BadInputError

MAX_SEED = 2**63 - 1

# Keyed streams (the third key of sample_rng) that more than one module draws on: the draw
# lives in ops/sources, the pair assembly in pairs/, and both must name the same number.
STREAM_CAMERA = 9  # the 6-DoF pose path (blursynth.ops.camera6d)
STREAM_OBJECTS = 10  # moving objects: count, sources, shapes, paths (blursynth.sources.objects)


def check_seed(seed) -> int:
    """Return ``seed`` as a non-negative int, or raise :class:`BadInputError`."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise BadInputError(
            f"seed must be a non-negative integer; got {seed!r}. Pass e.g. --seed 0."
        )
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise BadInputError(f"seed must be in [0, 2**63 - 1]; got {seed}.")
    return seed


def sample_rng(seed: int, index: int, *stream: int) -> np.random.Generator:
    """Generator for one sample: a pure function of ``(seed, index, *stream)``.

    Parameters
    ----------
    seed : int
        Run seed (non-negative).
    index : int
        Sample index within the run (non-negative).
    *stream : int
        Optional extra keys, to give independent streams to separate stages
        of the same sample (e.g. kernel choice vs. noise) so that adding a
        stage never changes the numbers another stage draws.

    Returns
    -------
    rng : numpy.random.Generator

    Examples
    --------
    >>> a = sample_rng(7, 3).standard_normal()
    >>> b = sample_rng(7, 3).standard_normal()
    >>> a == b
    True
    """
    return np.random.default_rng([int(seed), int(index), *map(int, stream)])
