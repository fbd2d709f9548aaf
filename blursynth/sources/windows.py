"""Window plans: which consecutive frames of which source make each pair, drawn per pair from the seed."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._rng import sample_rng
from ..errors import BadInputError

if TYPE_CHECKING:  # the functions that read frames import numpy themselves
    import numpy as np

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


def span_text(lo, hi, fmt: str = "g") -> str:
    """``lo-hi`` as a command line takes it, or the one value where they are equal.

    Examples
    --------
    >>> span_text(5.0, 5.0), span_text(8, 30), span_text(1.25, 1.5, ".2g")
    ('5', '8-30', '1.2-1.5')
    """
    a, b = format(lo, fmt), format(hi, fmt)
    return a if a == b else f"{a}-{b}"


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


def parse_exposure_ms(text) -> tuple[float, float]:
    """``'8-30'`` -> (8.0, 30.0); ``'20'`` -> (20.0, 20.0): an exposure range in milliseconds.

    Examples
    --------
    >>> parse_exposure_ms("8-30"), parse_exposure_ms(16.7)
    ((8.0, 30.0), (16.7, 16.7))
    """
    t = str(text).strip()
    number = r"(\d+(?:\.\d*)?|\.\d+)"
    m = re.fullmatch(number + r"(?:\s*-\s*" + number + ")?", t)
    if not m:
        raise BadInputError(f"--exposure-ms must be milliseconds or a range like 8-30; got {text!r}.")
    lo = float(m.group(1))
    hi = float(m.group(2)) if m.group(2) is not None else lo
    if lo > hi:
        raise BadInputError(f"--exposure-ms range must be low-high with low <= high; got {text!r}. "
                            f"Did you mean {m.group(2)}-{m.group(1)}?")
    if lo <= 0:
        raise BadInputError(f"--exposure-ms must be positive milliseconds; got {text!r}.")
    return lo, hi


def exposure_frames(exposure_ms: tuple[float, float], fps: float) -> tuple[int, int]:
    """Window lengths, in frames, of an exposure range at a frame rate.

    A window of n frames is exposed n / fps seconds (the ``exposure_s`` a row records), so
    the lengths are the whole counts inside ``exposure_ms * fps / 1000``; a range that holds
    no whole count gives the one nearest its middle.

    Raises
    ------
    BadInputError
        The longest exposure is under 2 frames.

    Examples
    --------
    >>> exposure_frames((20, 30), 240), exposure_frames((80, 80), 25)
    ((5, 7), (2, 2))
    """
    lo_ms, hi_ms = exposure_ms
    lo_f, hi_f = lo_ms * fps / 1000, hi_ms * fps / 1000
    if hi_f < 2 - 1e-9:
        raise BadInputError(
            f"--exposure-ms {span_text(lo_ms, hi_ms)} at {fps:g} fps is {span_text(lo_f, hi_f, '.3g')} frames; "
            f"a window needs "
            f"at least 2 frames ({2000 / fps:.4g} ms at {fps:g} fps): ask for a longer exposure."
        )
    lo, hi = max(2, math.ceil(lo_f - 1e-9)), math.floor(hi_f + 1e-9)
    if lo > hi:
        lo = hi = max(2, round((lo_f + hi_f) / 2))
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
                 gap: int = 0, odd_only: bool = False, max_pairs: int | None = None,
                 ranges=None) -> list[Window]:
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
    ranges : sequence of (int, int), optional
        Per source, its own ``(window_min, window_max)`` (``--exposure-ms`` at each
        source's frame rate), in place of the one range. A pair that moves to the
        next source draws its length again, from that source's range.

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
    ranges = [(window_min, window_max)] * len(n_frames) if ranges is None else [tuple(r) for r in ranges]
    shortest = min((lo for lo, _ in ranges), default=window_min)
    if overlap >= shortest:
        raise BadInputError(
            f"--overlap must be smaller than the shortest window ({shortest}); got {overlap}."
        )
    for lo, hi in dict.fromkeys(ranges):
        if odd_only and lo == hi and lo % 2 == 0:
            raise BadInputError(f"--odd-only with windows of {lo} frames leaves no length to draw.")
    windows = []
    source, start = 0, 0
    index = 0
    while source < len(n_frames) and (max_pairs is None or index < max_pairs):
        length = window_length(seed, index, *ranges[source], odd_only)
        while source < len(n_frames) and start + length > n_frames[source]:
            source, start = source + 1, 0
            if source < len(n_frames):
                length = window_length(seed, index, *ranges[source], odd_only)
        if source == len(n_frames):
            break
        windows.append(Window(index, source, start, length))
        start += length + gap - overlap
        index += 1
    return windows


# ---------------------------------------------------------------------------------------------
# scene cuts

#: Default ``cut_threshold``: the colour-histogram distance between consecutive frames above
#: which they belong to different shots. A camera pan of a third of the frame between two
#: frames, or a 20 % change of brightness, stays below 0.4; cuts between the sample photos of
#: scikit-image measure 0.73 to 0.94. Fades and cuts between shots of the same colours pass.
#: (Measured with 512 bins; see frame_signature.)
CUT_THRESHOLD = 0.5

# The histogram is taken over about this many pixels of a frame.
_CUT_SAMPLES = 16384


def frame_signature(frame) -> np.ndarray:
    """Colour histogram of a frame for :func:`cut_distance`: joint RGB bins, summing to 1.

    8 bins a channel (512 in all) from 64x64 pixels up; smaller frames get 4, or 2 below
    16x16, so that a histogram's sampling noise stays far below a cut (two frames of uniform
    noise measure about 0.2-0.3).

    Parameters
    ----------
    frame : (H, W, 3) uint8 ndarray

    Returns
    -------
    signature : (8 ** 3,), (4 ** 3,) or (2 ** 3,) float64 ndarray

    Examples
    --------
    >>> import numpy as np
    >>> sig = frame_signature(np.zeros((64, 64, 3), np.uint8))
    >>> sig.shape, float(sig[0])
    ((512,), 1.0)
    """
    import numpy as np

    h, w = frame.shape[:2]
    step = max(1, int((h * w / _CUT_SAMPLES) ** 0.5))
    sub = frame[::step, ::step]
    n = sub.shape[0] * sub.shape[1]
    bits = 3 if n >= 4096 else 2 if n >= 256 else 1
    shift = 8 - bits
    # On the strided view, channel by channel, in 16 bits: about 0.1 ms for a 720p frame.
    bins = (((sub[..., 0] >> shift).astype(np.uint16) << (2 * bits))
            | ((sub[..., 1] >> shift).astype(np.uint16) << bits) | (sub[..., 2] >> shift))
    counts = np.bincount(bins.ravel(), minlength=1 << (3 * bits)).astype(np.float64)
    return counts / counts.sum()


def cut_distance(a, b) -> float:
    """Distance in [0, 1] between two frames' signatures: the share of pixels whose colour bin changed.

    Examples
    --------
    >>> import numpy as np
    >>> black, white = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
    >>> cut_distance(frame_signature(black), frame_signature(white))
    1.0
    """
    import numpy as np

    return float(0.5 * np.abs(a - b).sum())


def watch_cuts(stream, cuts: dict, threshold: float = CUT_THRESHOLD):
    """Pass a frame stream through, noting each scene cut in ``cuts`` as it goes.

    Parameters
    ----------
    stream : iterator of (index, (H, W, 3) uint8 ndarray)
        Consecutive frames.
    cuts : dict
        Filled with ``{first frame of a new shot: distance}`` for every pair of
        consecutive frames whose :func:`cut_distance` exceeds ``threshold``.
    threshold : float
        In (0, 1]; 1 finds no cut.

    Yields
    ------
    The stream's items, unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> frames = [np.zeros((4, 4, 3), np.uint8)] * 3 + [np.full((4, 4, 3), 255, np.uint8)] * 2
    >>> cuts = {}
    >>> len(list(watch_cuts(enumerate(frames), cuts))), cuts
    (5, {3: 1.0})
    """
    previous = None
    for t, frame in stream:
        signature = frame_signature(frame)
        if previous is not None and previous[0] == t - 1:
            distance = cut_distance(previous[1], signature)
            if distance > threshold:
                cuts[t] = round(distance, 6)
        previous = (t, signature)
        yield t, frame


def cut_in(win: Window, cuts: dict):
    """The first cut inside ``win`` (a frame of it that starts a new shot), or None."""
    inside = [t for t in cuts if win.start < t < win.stop]
    return min(inside) if inside else None
