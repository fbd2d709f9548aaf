"""Window plans: which consecutive frames of which source make each pair, drawn per pair from the seed."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .._rng import sample_rng
from ..errors import BadInputError

# Stream key of the window-length draw in sample_rng(seed, pair_index, WINDOW_STREAM).
WINDOW_STREAM = 1


@dataclass(frozen=True)
class Window:
    """One pair's frames: real frames ``start .. start + length - 1`` of source ``source``.

    The sharp frame is ``start + length // 2``: the middle frame for odd
    lengths and the later of the two middle frames for even ones, which lies
    half a frame after the window's centre (``sharp_offset_frames = 0.5``).
    """

    index: int
    source: int
    start: int
    length: int

    @property
    def sharp(self) -> int:
        return self.start + self.length // 2

    @property
    def sharp_offset_frames(self) -> float:
        return 0.5 if self.length % 2 == 0 else 0.0

    @property
    def stop(self) -> int:
        return self.start + self.length


def parse_window(text) -> tuple[int, int]:
    """``'5-25'`` -> (5, 25); ``'9'`` -> (9, 9). Lengths must be >= 2 and min <= max.

    Examples
    --------
    >>> parse_window("5-25"), parse_window(7)
    ((5, 25), (7, 7))
    """
    t = str(text).strip()
    m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", t)
    if not m:
        raise BadInputError(f"--window must be a length or a range like 5-25; got {text!r}.")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) is not None else lo
    if lo > hi:
        raise BadInputError(f"--window range must be low-high with low <= high; got {text!r}. Did you mean {hi}-{lo}?")
    if lo < 2:
        raise BadInputError(
            f"--window lengths must be at least 2 frames (1 frame is not blurred); got {text!r}."
        )
    return lo, hi


def window_length(seed: int, index: int, window_min: int, window_max: int, odd_only: bool = False) -> int:
    """Length of pair ``index``'s window, drawn from ``sample_rng(seed, index, WINDOW_STREAM)``.

    Examples
    --------
    >>> window_length(0, 3, 5, 25) == window_length(0, 3, 5, 25)
    True
    >>> window_length(0, 3, 4, 12, odd_only=True) % 2
    1
    """
    if window_min == window_max:
        return window_min
    rng = sample_rng(seed, index, WINDOW_STREAM)
    if odd_only:
        lo = window_min | 1
        return lo + 2 * int(rng.integers(0, (window_max - lo) // 2 + 1))
    return int(rng.integers(window_min, window_max + 1))


def plan_windows(n_frames, *, window_min: int, window_max: int, seed: int, overlap: int = 0,
                 gap: int = 0, odd_only: bool = False, max_pairs: int | None = None) -> list[Window]:
    """Lay out pair windows over one or more sources, deterministically.

    Windows follow each other: the next starts ``length + gap - overlap``
    frames after the previous one starts. A pair whose drawn length no longer
    fits in a source moves to the start of the next source with the same
    length, so a pair's length depends only on ``(seed, index)``.

    Parameters
    ----------
    n_frames : sequence of int
        Frames in each source.
    window_min, window_max : int
        Range of window lengths in frames (>= 2).
    seed : int
    overlap : int
        Frames consecutive windows share (< ``window_min``).
    gap : int
        Frames skipped between consecutive windows.
    odd_only : bool
        Draw odd lengths only (the sharp frame is then the exact middle).
    max_pairs : int, optional

    Returns
    -------
    windows : list of Window

    Examples
    --------
    >>> [(w.start, w.length) for w in plan_windows([20], window_min=5, window_max=5, seed=0)]
    [(0, 5), (5, 5), (10, 5), (15, 5)]
    """
    if overlap and gap:
        raise BadInputError("--overlap and --gap exclude each other; give one of them.")
    if overlap < 0 or gap < 0:
        raise BadInputError(f"--overlap and --gap must be >= 0; got {overlap} and {gap}.")
    if overlap >= window_min:
        raise BadInputError(
            f"--overlap must be smaller than the shortest window ({window_min}); got {overlap}."
        )
    if odd_only and window_min == window_max and window_min % 2 == 0:
        raise BadInputError(f"--odd-only with --window {window_min} leaves no length to draw.")
    windows = []
    source, start = 0, 0
    index = 0
    while source < len(n_frames) and (max_pairs is None or index < max_pairs):
        length = window_length(seed, index, window_min, window_max, odd_only)
        while source < len(n_frames) and start + length > n_frames[source]:
            source, start = source + 1, 0
        if source == len(n_frames):
            break
        windows.append(Window(index, source, start, length))
        start += length + gap - overlap
        index += 1
    return windows
