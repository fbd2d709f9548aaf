"""The averaging scheduler of frames-average: every window of a frame stream from one running sum.

Frames are decoded on the caller's thread while a background thread sums and reads out the
previous window, exactly, in linear light (:class:`~blursynth.ops.average.LinearAverager`).
Memory is O(window): at most two windows of frames and one accumulator.
"""

from __future__ import annotations

from collections import deque

from ..ops.average import LinearAverager
from ..ops.color import CameraResponse
from ..sources.flow import expanded_frames


def average_windows(stream, windows, *, crf, interpolate: int = 1, linear: bool = False):
    """Average each window of a frame stream with one running sum.

    Parameters
    ----------
    stream : iterator of (index, (H, W, 3) uint8 ndarray)
        Consecutive real frames, starting at or before the first window.
    windows : sequence of Window
        Sorted by start, with non-decreasing stops (as :func:`plan_windows` makes).
    crf : CameraResponse, str or callable
        The camera response, or ``crf(window) -> CameraResponse`` for a curve per window.
    interpolate : int
        Interpolation factor K; a window of n real frames averages
        ``(n - 1) K + 1`` frames.
    linear : bool
        Yield the average in linear light ((H, W, 3) float32,
        :meth:`LinearAverager.window_linear`) instead of encoded (the RAW path).

    Yields
    ------
    window : Window
    blurred, sharp : (H, W, 3) uint8 ndarray (blurred float32 with ``linear``)

    Notes
    -----
    Each window is one :meth:`LinearAverager.window` call with the frames
    that enter it and the held frames that leave it, so a frame shared by
    overlapping windows is decoded and converted once; the sum is an integer,
    so this equals re-summing exactly. A window that shares no frame with the
    next is read out without storing its sums. At most two windows of frames
    are held.

    Examples
    --------
    >>> import numpy as np
    >>> from blursynth.sources.windows import plan_windows
    >>> frames = [np.full((2, 2, 3), 10 * i, np.uint8) for i in range(9)]
    >>> wins = plan_windows([9], window_min=3, window_max=3, seed=0, overlap=1)
    >>> [(w.start, int(b[0, 0, 0]), int(s[0, 0, 0]))
    ...  for w, b, s in average_windows(enumerate(frames), wins, crf="none")]
    [(0, 10, 10), (2, 30, 30), (4, 50, 50), (6, 70, 70)]
    """
    from concurrent.futures import ThreadPoolExecutor

    k = max(1, int(interpolate))
    items = expanded_frames(stream, k)
    # A window's sums and read-out run on one background thread, in the order they are
    # submitted (so the bytes are those of doing them inline), while this thread decodes the
    # next window's frames: the kernels release the GIL, and the decoder would otherwise sit
    # idle while a window is summed. A window's pair is yielded once the next window's frames
    # are queued, so at most two windows of frames are alive.
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blursynth-average")
    try:
        yield from _average_windows_on(worker, items, windows, crf if callable(crf) else CameraResponse.parse(crf), k, linear)
    finally:
        worker.shutdown(wait=True, cancel_futures=True)


def _average_windows_on(worker, items, windows, crf, k, linear=False):
    held = deque()  # (t, frame) of the last window, kept only while the next one overlaps it
    averager = None
    hi = None  # one past the last frame read
    pending = None  # (window, its job, sharp frame)
    per_window = callable(crf)  # --crf random: each window's own curve (crf(window))
    for n, win in enumerate(windows):
        a, b = win.start * k, (win.stop - 1) * k + 1
        # Frames need holding (to leave a later window) only if the next window overlaps this one.
        keep = n + 1 < len(windows) and windows[n + 1].start * k < b
        curve = crf(win) if per_window else crf
        if averager is None:
            first_t, first = _next_at_or_after(items, a)
            if first is None:
                break
            averager = LinearAverager(first.shape, curve, max(w.length for w in windows) * k)
            queued = (first_t, first)
            hi = a
        else:
            queued = None
        leaving = []
        while held and held[0][0] < a:
            leaving.append(held.popleft()[1])
        if not held:
            hi = a
        entering = []
        sharp = next((f.copy() for t, f in held if t == win.sharp * k), None)
        if curve != averager.crf:
            # Another curve's sums cannot be shared: a new sum, which the held frames enter again.
            averager = LinearAverager(averager.shape, curve, max(w.length for w in windows) * k)
            entering, leaving = list(held), []
            held.clear()
        complete = True
        while hi < b:
            if queued is not None:
                t, f = queued
                queued = None
            else:
                t, f = next(items, (None, None))
            if t is None:
                complete = False
                break
            if t < a:
                continue
            entering.append((t, f))
            if t == win.sharp * k:
                sharp = f.copy()
            hi = t + 1
        if not complete:
            break
        job = worker.submit(averager.window_linear if linear else averager.window,
                            [f for _, f in entering], leaving, hold=keep)
        if keep:
            held.extend(entering)
        else:
            held.clear()
        entering = leaving = None  # the job holds them; none outlive it here
        if pending is not None:
            yield _finished(pending)
        pending = (win, job, sharp)
    if pending is not None:
        yield _finished(pending)


def _finished(pending):
    win, job, sharp = pending
    return win, job.result(), sharp  # re-raises an error from the background thread here


def _next_at_or_after(items, t0):
    for t, f in items:
        if t >= t0:
            return t, f
    return None, None
