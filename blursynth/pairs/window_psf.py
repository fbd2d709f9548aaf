"""The ground-truth PSF of a frames-average pair whose clip has known motion (``render-clip``).

The camera path over the averaged frames, flipped and centred on its centre of mass, sized
to hold the whole path: a recorded ground truth, which a kernel bank's canvas cap does not
apply to (``--psf-max-size`` caps it, and the mass dropped is recorded).
"""

from __future__ import annotations

import math

import numpy as np

from ..sources.windows import Window


def window_path(positions: np.ndarray, win: Window, interpolate: int = 1) -> np.ndarray:
    """The camera positions a window averages, ``((length - 1) K + 1, 2)`` float64, in pixels.

    Interpolated frames sit at linearly interpolated positions (what ideal
    optical flow would give).
    """
    seg = np.asarray(positions, dtype=np.float64)[win.start:win.stop]
    k = max(1, int(interpolate))
    if k > 1:
        t = np.arange((len(seg) - 1) * k + 1) / k
        seg = np.stack([np.interp(t, np.arange(len(seg)), seg[:, i]) for i in range(2)], axis=1)
    return seg


def path_psf_side(path: np.ndarray) -> int:
    """Side of the odd square PSF that holds all of ``path`` centred on its mean (at least 3)."""
    r = float(np.abs(path - path.mean(axis=0)).max()) if len(path) else 0.0
    return max(3, 2 * math.ceil(r) + 1)


def window_psf_clipped(positions: np.ndarray, win: Window, interpolate: int = 1, *,
                       max_size: int | None = None) -> tuple[np.ndarray, float]:
    """PSF of a window of a clip with known motion, and the fraction of its mass a cap dropped.

    The PSF is the flipped camera path over the averaged frames, centred on its
    centre of mass. It is a recorded ground truth, so by default it is as large
    as the path needs (a kernel bank's canvas does not apply); ``max_size``
    caps its side, dropping the mass outside and renormalising the rest.

    Parameters
    ----------
    positions : (n_frames, 2) float ndarray
        The clip's camera positions ``(x, y)`` in pixels, one per frame.
    win : Window
    interpolate : int
        K, as the pairs were averaged.
    max_size : int, optional
        Largest side (an even value means the odd size below it); None: sized to the path.

    Returns
    -------
    psf : (k, k) float32 ndarray, sums to 1
    clipped : float
        Fraction of the path's mass outside the cap (0.0 when it fits).

    Examples
    --------
    >>> pos = np.stack([10.0 * np.arange(10), np.zeros(10)], axis=1)  # 10 px per frame to the right
    >>> psf, clipped = window_psf_clipped(pos, Window(0, 0, 2, 5))
    >>> psf.shape, clipped
    ((41, 41), 0.0)
    >>> psf, clipped = window_psf_clipped(pos, Window(0, 0, 2, 5), max_size=21)
    >>> psf.shape, round(clipped, 2)
    ((21, 21), 0.4)
    """
    from ..ops.psf import rasterize_psfs

    path = window_path(positions, win, interpolate)
    # The rasteriser sizes the PSF to the path itself; uncapped, its canvas only needs to be
    # larger than that (2 px of room for its own rounding of the centre of mass).
    cap = path_psf_side(path) + 2 if max_size is None else int(max_size)
    # Frame content moves opposite to the camera: the blur kernel is the flipped camera path.
    values, sizes, clipped, _ = rasterize_psfs((-path)[None], (1.0,), centre="mass", max_size=cap)
    k = int(sizes[0, 0])
    return values.reshape(k, k), float(clipped[0, 0])


def window_psf(positions: np.ndarray, win: Window, interpolate: int = 1, *,
               max_size: int | None = None) -> np.ndarray:
    """PSF of a window of a clip with known motion: the camera path over the averaged frames.

    See :func:`window_psf_clipped`, which also returns the mass a ``max_size`` cap dropped.

    Returns
    -------
    psf : (k, k) float32 ndarray, sums to 1

    Examples
    --------
    >>> pos = np.stack([np.arange(10.0), np.zeros(10)], axis=1)  # 1 px per frame to the right
    >>> window_psf(pos, Window(0, 0, 2, 5)).shape
    (5, 5)
    """
    return window_psf_clipped(positions, win, interpolate, max_size=max_size)[0]
