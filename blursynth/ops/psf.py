"""PSF kernels from trajectories: sub-pixel bilinear rasterization at exposure fractions.

A PSF is a ``(k, k)`` float32 array, ``k`` odd, non-negative, summing to 1. Each
trajectory sample spreads unit mass over its four neighbouring pixels with
weights ``(1 - |dx|)(1 - |dy|)``; this keeps the first moment exactly, so a PSF
whose samples are shifted to put their mean on the centre pixel has its centre
of mass exactly on the centre pixel, and a photo blurred with it stays aligned
with its sharp original.
"""

from __future__ import annotations

import math

import numpy as np

from .._numba import njit

DEFAULT_EXPOSURES = (0.01, 0.1, 0.5, 1.0)
# Names the rasterizer's arithmetic (its last bits); goes into the fingerprints of
# datasets holding PSFs, so a resume never mixes shards of two versions.
RASTER_VERSION = "bilinear-run-sums-v1"
CENTRES = ("mass", "bbox")


def exposure_samples(n_samples: int, exposure_fraction: float) -> int:
    """Number of leading trajectory samples an exposure fraction keeps (at least 1)."""
    return max(1, int(round(exposure_fraction * n_samples)))


@njit
def _prefix_geometry(traj, counts, order, stats):
    """Sums and bounding boxes of the first ``counts[e]`` samples, for every ``e``, in one pass.

    ``order`` sorts ``counts``; row ``e`` of ``stats`` gets ``(sum x, sum y, x min,
    x max, y min, y max)``. The sums run in sample order, exactly as a separate
    pass over each prefix would.
    """
    n_exp = counts.shape[0]
    sx = 0.0
    sy = 0.0
    x0 = traj[0, 0]
    x1 = traj[0, 0]
    y0 = traj[0, 1]
    y1 = traj[0, 1]
    e = 0
    for i in range(counts[order[n_exp - 1]]):
        px = traj[i, 0]
        py = traj[i, 1]
        sx += px
        sy += py
        x0 = min(x0, px)
        x1 = max(x1, px)
        y0 = min(y0, py)
        y1 = max(y1, py)
        while e < n_exp and counts[order[e]] == i + 1:
            row = order[e]
            stats[row, 0] = sx
            stats[row, 1] = sy
            stats[row, 2] = x0
            stats[row, 3] = x1
            stats[row, 4] = y0
            stats[row, 5] = y1
            e += 1


@njit
def _centre_and_size(stats_row, n, centre_mode, fixed_size, max_size):
    """Shift (added to positions) and odd size of a prefix of ``n`` samples, from its geometry."""
    x0 = stats_row[2]
    x1 = stats_row[3]
    y0 = stats_row[4]
    y1 = stats_row[5]
    if centre_mode == 0:
        cx = stats_row[0] / n
        cy = stats_row[1] / n
    else:
        cx = 0.5 * (x0 + x1)
        cy = 0.5 * (y0 + y1)
    if fixed_size > 0:
        k = fixed_size
    else:
        # The farthest sample from the centre along x or y: rounded subtraction is
        # monotonic, so this equals the maximum of |x_i - cx|, |y_i - cy| exactly.
        r = max(0.0, x1 - cx, cx - x0, y1 - cy, cy - y0)
        half = int(math.ceil(r))
        k = max(3, 2 * half + 1)
        if k > max_size:
            k = max_size
    c = (k - 1) // 2
    return c - cx, c - cy, k


@njit
def _flush(out, x0, y0, a00, a10, a01, a11):
    """Add one cell's four accumulated weights into ``out``; returns the mass kept."""
    k = out.shape[0]
    kept = 0.0
    if x0 >= 0 and y0 >= 0 and x0 + 1 < k and y0 + 1 < k:
        out[y0, x0] += a00
        out[y0, x0 + 1] += a10
        out[y0 + 1, x0] += a01
        out[y0 + 1, x0 + 1] += a11
        return a00 + a10 + a01 + a11
    if 0 <= y0 < k:
        if 0 <= x0 < k:
            out[y0, x0] += a00
            kept += a00
        if 0 <= x0 + 1 < k:
            out[y0, x0 + 1] += a10
            kept += a10
    if 0 <= y0 + 1 < k:
        if 0 <= x0 < k:
            out[y0 + 1, x0] += a01
            kept += a01
        if 0 <= x0 + 1 < k:
            out[y0 + 1, x0 + 1] += a11
            kept += a11
    return kept


@njit(inline="always")
def _flush_run(out, x0, y0, w, count, sx, sy, sxy):
    """Add a run's weights (from its sums) into ``out``; returns the mass kept.

    Each weight is a sum of non-negative products; the differences that give
    it can round a hair below zero, so they are clamped (a PSF is non-negative).
    """
    a00 = w * max(0.0, count - sx - sy + sxy)
    a10 = w * max(0.0, sx - sxy)
    a01 = w * max(0.0, sy - sxy)
    a11 = w * sxy
    return _flush(out, x0, y0, a00, a10, a01, a11)


@njit
def _splat(traj, n, shift_x, shift_y, out):
    """Bilinear splat of the first ``n`` samples into ``out``; returns the mass kept.

    Consecutive samples are a fraction of a pixel apart, so runs of them fall in
    the same cell. Over a run only the count and the sums of ``fx``, ``fy`` and
    ``fx fy`` are kept; the four pixels' weights follow from them when the run
    ends (``sum (1 - fx)(1 - fy) = count - Sx - Sy + Sxy`` and so on), one
    read-modify-write of four pixels per run instead of per sample.
    """
    w = 1.0 / n
    kept = 0.0
    cx = -(2**62)
    cy = -(2**62)
    count = 0.0
    sx = sy = sxy = 0.0
    for i in range(n):
        px = traj[i, 0] + shift_x
        py = traj[i, 1] + shift_y
        fx0 = math.floor(px)
        fy0 = math.floor(py)
        fx = px - fx0
        fy = py - fy0
        x0 = int(fx0)
        y0 = int(fy0)
        if x0 != cx or y0 != cy:
            if i > 0:
                kept += _flush_run(out, cx, cy, w, count, sx, sy, sxy)
            cx = x0
            cy = y0
            count = 0.0
            sx = sy = sxy = 0.0
        count += 1.0
        sx += fx
        sy += fy
        sxy += fx * fy
    if n > 0:
        kept += _flush_run(out, cx, cy, w, count, sx, sy, sxy)
    return kept


@njit
def _rasterize_many(trajs, counts, centre_mode, fixed_size, max_size):
    """PSFs for every (trajectory, exposure): flat float32 values, sizes, clipped mass, extents."""
    n_traj = trajs.shape[0]
    n_exp = counts.shape[0]
    order = np.argsort(counts, kind="mergesort")
    stats = np.empty((n_traj, n_exp, 6), np.float64)
    sizes = np.empty((n_traj, n_exp), np.int64)
    shifts = np.empty((n_traj, n_exp, 2), np.float64)
    extents = np.empty((n_traj, n_exp), np.float64)
    total = 0
    for j in range(n_traj):
        _prefix_geometry(trajs[j], counts, order, stats[j])
        for e in range(n_exp):
            sx, sy, k = _centre_and_size(stats[j, e], counts[e], centre_mode, fixed_size, max_size)
            sizes[j, e] = k
            shifts[j, e, 0] = sx
            shifts[j, e, 1] = sy
            extents[j, e] = max(stats[j, e, 3] - stats[j, e, 2], stats[j, e, 5] - stats[j, e, 4])
            total += k * k
    values = np.empty(total, np.float32)
    clipped = np.empty((n_traj, n_exp), np.float64)
    big = sizes.max() if n_traj > 0 else 1
    buffer = np.empty(big * big, np.float64)  # one accumulator, reused
    offset = 0
    for j in range(n_traj):
        for e in range(n_exp):
            k = sizes[j, e]
            flat = buffer[: k * k]
            flat[:] = 0.0
            acc = flat.reshape((k, k))
            kept = _splat(trajs[j], counts[e], shifts[j, e, 0], shifts[j, e, 1], acc)
            clipped[j, e] = max(0.0, 1.0 - kept)
            if kept > 1e-12:
                scale = 1.0 / kept
            else:
                # Every sample fell outside a fixed size smaller than the path: the best
                # PSF that size can hold is the centre of mass alone (clipped records 1).
                flat[:] = 0.0
                acc[(k - 1) // 2, (k - 1) // 2] = 1.0
                clipped[j, e] = 1.0
                scale = 1.0
            for i in range(k * k):
                values[offset + i] = flat[i] * scale
            offset += k * k
    return values, sizes, clipped, extents


def _check_options(exposures, size, centre, max_size):
    exposures = tuple(float(f) for f in exposures)
    if not exposures or not all(0 < f <= 1 for f in exposures):
        raise ValueError(f"exposure fractions must be in (0, 1]; got {exposures!r}.")
    if size is not None and (int(size) != size or size < 3 or size % 2 == 0):
        raise ValueError(f"size must be an odd integer >= 3; got {size!r}. Try {max(3, int(size) | 1)}.")
    if centre not in CENTRES:
        raise ValueError(f"centre must be one of {CENTRES}; got {centre!r}.")
    if int(max_size) != max_size or max_size < 3:
        raise ValueError(f"max_size must be an integer >= 3; got {max_size!r}.")
    max_size = int(max_size) if max_size % 2 else int(max_size) - 1
    return exposures, (0 if size is None else int(size)), CENTRES.index(centre), max_size


def rasterize_psfs(trajs, exposures=DEFAULT_EXPOSURES, *, size=None, centre="mass", max_size=63):
    """Rasterize many trajectories at several exposure fractions in one call.

    Parameters
    ----------
    trajs : (N, T, 2) float64 ndarray
        Trajectories, positions ``(x, y)`` in pixels.
    exposures : sequence of float in (0, 1]
        Exposure fractions; fraction ``f`` keeps the first ``round(f T)`` samples.
    size : odd int or None
        Fixed PSF side; None crops each PSF to the odd square holding its support.
    centre : {'mass', 'bbox'}
        Put the centre of mass (default) or the bounding-box centre (DeblurGAN)
        on the centre pixel.
    max_size : int
        Largest side when ``size`` is None (the canvas; an even value means the
        odd size below it). Mass falling outside is dropped and the PSF renormalized.

    Returns
    -------
    values : (sum k^2,) float32 ndarray
        All PSFs, flattened row-major, one after another (trajectory-major).
    sizes : (N, E) int64 ndarray
        Side of each PSF.
    clipped : (N, E) float64 ndarray
        Fraction of the mass that fell outside and was dropped (0 when it fits).
    extents : (N, E) float64 ndarray
        Larger side of the bounding box of the samples kept, in pixels.
    """
    exposures, fixed, mode, max_size = _check_options(exposures, size, centre, max_size)
    trajs = np.ascontiguousarray(trajs, dtype=np.float64)
    if trajs.ndim != 3 or trajs.shape[2] != 2:
        raise ValueError(f"trajs must be (N, T, 2); got shape {trajs.shape}.")
    counts = np.array([exposure_samples(trajs.shape[1], f) for f in exposures], np.int64)
    return _rasterize_many(trajs, counts, mode, fixed, max_size)


def rasterize_psf(traj, *, exposure_fraction=1.0, size=None, centre="mass", max_size=63):
    """Rasterize one trajectory into a PSF.

    Parameters
    ----------
    traj : (T, 2) float ndarray
        Positions ``(x, y)`` in pixels.
    exposure_fraction : float in (0, 1]
        Keep the first ``round(f T)`` samples (at least one).
    size : odd int or None
        Fixed side, or None for the odd square holding the support.
    centre : {'mass', 'bbox'}
    max_size : int
        Largest side when ``size`` is None.

    Returns
    -------
    psf : (k, k) float32 ndarray
        Non-negative, sums to 1, ``k`` odd.

    Examples
    --------
    >>> traj = np.stack([np.linspace(0, 10, 50), np.zeros(50)], axis=1)
    >>> psf = rasterize_psf(traj)
    >>> psf.shape, bool(np.isclose(psf.sum(), 1))
    ((11, 11), True)
    """
    traj = np.asarray(traj, dtype=np.float64)
    if traj.ndim != 2 or traj.shape[1] != 2:
        raise ValueError(f"traj must be (T, 2) positions (x, y); got shape {traj.shape}.")
    values, sizes, _, _ = rasterize_psfs(
        traj[None], (exposure_fraction,), size=size, centre=centre, max_size=max_size
    )
    k = int(sizes[0, 0])
    return values.reshape(k, k)


def psf_centroid(psf) -> tuple[float, float]:
    """Centre of mass ``(x, y)`` of a PSF in pixel coordinates."""
    psf = np.asarray(psf, dtype=np.float64)
    ys, xs = np.indices(psf.shape)
    total = psf.sum()
    return float((psf * xs).sum() / total), float((psf * ys).sum() / total)
