"""Sub-frame renderer of scene blur: homography warps composited and averaged in linear light.

A homography ``H`` (3x3 float64) maps an OUTPUT pixel ``p = (x, y, 1)`` of a sub-frame to the
SOURCE position ``H p`` (after dividing by its third coordinate) in the image it samples, so a
sub-frame is ``S_t(p) = src(H_t p)``: an inverse warp, bilinear, with reflect-101 borders (the
same extension ``blur --border reflect`` pads with). Pixel coordinates put the top-left pixel's
centre at the origin, x to the right, y down.

:func:`render_subframes` renders every sub-frame, composites the layers (moving objects) over
the background in order (``C = C (1 - a) + O a``), and averages, all in one fused loop per
output pixel: no full-size temporary per sub-frame, and occlusion is exact because every
sub-frame is composited before the average. The running sum is float64: with hundreds of
sub-frames a float32 sum would drift by several units in its last place per pixel, and the sum
lives in registers, so the wider type costs nothing measurable. Rows run in parallel; each
output pixel is computed from the inputs alone, in a fixed order, so the bytes do not depend on
the number of threads.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from .._numba import kernel_threads, njit
from ..errors import BadInputError

# Names the renderer's arithmetic; datasets record it, so a resume never mixes two versions.
VERSION = "warp-bilinear-reflect101-f64sum-v1"
# An 8-bit alpha below half a level rounds to 0: a layer thinner than that covers nothing.
COVERAGE_THRESHOLD = 0.5 / 255.0
# A layer whose motion relative to the background moves no frame corner farther than this over
# the exposure does not move on its own (its blur is the camera's).
STATIC_TOLERANCE_PX = 1e-6
# Side of the output tiles in which the renderer decides whether to sample a layer at all
# (:func:`_layer_tiles`): depth planes are full-frame layers mostly transparent, and sampling
# each of them at every pixel was most of a defocus pair's time.
LAYER_TILE_PX = 16


class Layer(NamedTuple):
    """One object composited over the background in every sub-frame.

    Attributes
    ----------
    image : (h, w, 3) float32 ndarray
        Linear light.
    alpha : (h, w) float32 ndarray
        Coverage in [0, 1] (soft, anti-aliased edges).
    homographies : (T, 3, 3) float64 ndarray
        Output pixel of each sub-frame -> position in ``image`` (the object's own motion
        composed with the camera's).
    moving : bool or None
        Whether the layer moves on its own (its pixels go into the motion mask). None decides
        from the homographies: the layer is static when ``homographies[t] @ inv(background[t])``
        is the same map for every ``t`` (it moves with the scene).
    """

    image: np.ndarray
    alpha: np.ndarray
    homographies: np.ndarray
    moving: bool | None = None


@njit(inline="always")
def _reflect101(i, n):
    """Index ``i`` folded into [0, n) by reflect-101 (``-1 -> 1``, ``n -> n - 2``)."""
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i = i % period  # Numba's % follows Python: non-negative for a positive period
    if i >= n:
        i = period - i
    return i


def reflect101_index(i, n):
    """Integer array ``i`` folded into [0, n) as :func:`_reflect101` folds one index: the same
    border for NumPy indexing outside the kernels (crop windows, margins)."""
    i = np.asarray(i)
    if n == 1:
        return np.zeros_like(i)
    period = 2 * (n - 1)
    i = np.mod(i, period)
    return np.where(i < n, i, period - i)


@njit(inline="always")
def _project(hm, x, y):
    """``hm @ (x, y, 1)`` divided by its third coordinate."""
    w = hm[2, 0] * x + hm[2, 1] * y + hm[2, 2]
    return ((hm[0, 0] * x + hm[0, 1] * y + hm[0, 2]) / w,
            (hm[1, 0] * x + hm[1, 1] * y + hm[1, 2]) / w)


@njit(inline="always")
def _taps(qx, qy, h, w):
    """The four reflected neighbours of ``(qx, qy)`` and its bilinear fractions."""
    fx0 = math.floor(qx)
    fy0 = math.floor(qy)
    fx = qx - fx0
    fy = qy - fy0
    x0 = int(fx0)
    y0 = int(fy0)
    # Inside the image (nearly always) no folding is needed: skip its integer divisions.
    if 0 <= x0 and x0 + 1 < w:
        xa = x0
        xb = x0 + 1
    else:
        xa = _reflect101(x0, w)
        xb = _reflect101(x0 + 1, w)
    if 0 <= y0 and y0 + 1 < h:
        ya = y0
        yb = y0 + 1
    else:
        ya = _reflect101(y0, h)
        yb = _reflect101(y0 + 1, h)
    return xa, xb, ya, yb, fx, fy


@njit(inline="always")
def _bilinear(img, xa, xb, ya, yb, fx, fy, k):
    """Channel ``k`` of ``img`` interpolated between the four taps."""
    gx = 1.0 - fx
    return ((1.0 - fy) * (gx * img[ya, xa, k] + fx * img[ya, xb, k])
            + fy * (gx * img[yb, xa, k] + fx * img[yb, xb, k]))


@njit(inline="always")
def _sample_layer(lay, h, w, qx, qy):
    """(alpha, premultiplied r, g, b) of an RGBA layer at ``(qx, qy)``: bilinear, transparent
    outside.

    The layer holds colour premultiplied by alpha, so interpolating it next to a soft edge (or
    the transparent outside) weighs each colour by its own coverage, as compositing needs.
    """
    fx0 = math.floor(qx)
    fy0 = math.floor(qy)
    if fx0 < -1.0 or fy0 < -1.0 or fx0 >= w or fy0 >= h:
        return 0.0, 0.0, 0.0, 0.0
    fx = qx - fx0
    fy = qy - fy0
    x0 = int(fx0)
    y0 = int(fy0)
    a = 0.0
    o0 = 0.0
    o1 = 0.0
    o2 = 0.0
    for dy in range(2):
        yy = y0 + dy
        if yy < 0 or yy >= h:
            continue
        wy = fy if dy else 1.0 - fy
        for dx in range(2):
            xx = x0 + dx
            if xx < 0 or xx >= w:
                continue
            wt = wy * (fx if dx else 1.0 - fx)
            a += wt * lay[yy, xx, 3]
            o0 += wt * lay[yy, xx, 0]
            o1 += wt * lay[yy, xx, 1]
            o2 += wt * lay[yy, xx, 2]
    return a, o0, o1, o2


@njit(parallel=True)
def _warp(src, hm, ox, oy, out):
    """``out[r, c] = src(hm (c + ox, r + oy))``, bilinear, reflect-101."""
    h, w, ch = src.shape
    ho, wo = out.shape[0], out.shape[1]
    for r in numba.prange(ho):
        for c in range(wo):
            qx, qy = _project(hm, c + ox, r + oy)
            xa, xb, ya, yb, fx, fy = _taps(qx, qy, h, w)
            for k in range(ch):
                top = (1.0 - fx) * src[ya, xa, k] + fx * src[ya, xb, k]
                bottom = (1.0 - fx) * src[yb, xa, k] + fx * src[yb, xb, k]
                out[r, c, k] = (1.0 - fy) * top + fy * bottom


@njit(parallel=True)
def _render(src, hms, weights, t_lo, t_hi, ox, oy, lay, lay_hw, lay_org, lay_hms, lay_moving,
            lay_tiles, tile, out, mask):
    """The fused renderer: per output pixel, every sub-frame composited, weighted and summed.

    ``weights[r, t]`` is sub-frame ``t``'s share of row ``r`` (rolling shutter), non-zero only
    for ``t_lo[r] <= t < t_hi[r]``; ``lay`` holds the layers' premultiplied RGBA, ``lay_hw``
    their sizes, ``lay_org`` where each one's crop starts in its layer (x, y: integers, see
    :func:`_layer_crop`), ``lay_tiles[j]`` the output tiles (``tile`` pixels a side) where
    layer ``j`` can be non-transparent in some sub-frame (:func:`_layer_tiles`): it is not
    sampled elsewhere, where it would sample ``a = 0`` and be skipped anyway (the same values,
    less work).
    """
    h, w = src.shape[0], src.shape[1]
    ho, wo = out.shape[0], out.shape[1]
    n_layers = lay.shape[0]
    for r in numba.prange(ho):
        y = r + oy
        tr = r // tile
        active = np.zeros(n_layers, np.bool_)
        for c in range(wo):
            x = c + ox
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            covered = False
            tc = c // tile
            for j in range(n_layers):
                active[j] = lay_tiles[j, tr, tc]
            for t in range(t_lo[r], t_hi[r]):
                qx, qy = _project(hms[t], x, y)
                xa, xb, ya, yb, fx, fy = _taps(qx, qy, h, w)
                c0 = _bilinear(src, xa, xb, ya, yb, fx, fy, 0)
                c1 = _bilinear(src, xa, xb, ya, yb, fx, fy, 1)
                c2 = _bilinear(src, xa, xb, ya, yb, fx, fy, 2)
                for j in range(n_layers):
                    if not active[j]:
                        continue
                    lx, ly = _project(lay_hms[j, t], x, y)
                    a, o0, o1, o2 = _sample_layer(lay[j], lay_hw[j, 0], lay_hw[j, 1],
                                                  lx - lay_org[j, 0], ly - lay_org[j, 1])
                    if a <= 0.0:
                        continue
                    if lay_moving[j] and a > COVERAGE_THRESHOLD:
                        covered = True
                    keep = 1.0 - a
                    c0 = c0 * keep + o0
                    c1 = c1 * keep + o1
                    c2 = c2 * keep + o2
                wt = weights[r, t]
                s0 += wt * c0
                s1 += wt * c1
                s2 += wt * c2
            out[r, c, 0] = s0
            out[r, c, 1] = s1
            out[r, c, 2] = s2
            mask[r, c] = 255 if covered else 0


def _check_homographies(hms, n, what):
    hms = np.ascontiguousarray(hms, np.float64)
    if hms.ndim == 2:
        hms = hms[None]
    if hms.ndim != 3 or hms.shape[1:] != (3, 3) or (n is not None and hms.shape[0] != n):
        want = "(3, 3) or (T, 3, 3)" if n is None else f"({n}, 3, 3), one per sub-frame"
        raise BadInputError(f"{what} must be {want}; got shape {hms.shape}.")
    if not np.isfinite(hms).all():
        raise BadInputError(f"{what} must be finite.")
    return hms


def _check_in_front(hms, out_shape, offset, what):
    """Refuse maps that send a frame pixel behind the camera (third coordinate <= 0).

    The third coordinate is linear in the pixel, so positive at the four corners means
    positive over the whole frame.
    """
    ho, wo = out_shape
    xs = np.array([0.0, wo - 1.0, 0.0, wo - 1.0]) + offset[0]
    ys = np.array([0.0, 0.0, ho - 1.0, ho - 1.0]) + offset[1]
    w = hms[:, 2, 0, None] * xs + hms[:, 2, 1, None] * ys + hms[:, 2, 2, None]
    if not (w > 0).all():
        raise BadInputError(f"{what} send part of the frame behind the camera (third coordinate <= 0).")


def check_hw(value, name: str = "out_shape") -> tuple[int, int]:
    """``(H, W)`` as two positive ints from a size or shape (a third entry is ignored); anything
    else is a one-line :class:`BadInputError` naming the argument ``name``."""
    try:
        h, w = (int(v) for v in value[:2])
    except (TypeError, ValueError):
        raise BadInputError(f"{name} must be (H, W); got {value!r}.") from None
    if h < 1 or w < 1:
        raise BadInputError(f"{name} must be positive (H, W); got {value!r}.")
    return h, w


def warp_bilinear(src, H, out_shape, *, offset=(0.0, 0.0)):
    """Inverse-warp an image by a homography: ``out[r, c] = src(H (c + ox, r + oy))``.

    Parameters
    ----------
    src : (h, w) or (h, w, C) float32 ndarray
        Any values (linear light, alpha); sampled bilinearly with reflect-101 borders.
    H : (3, 3) float ndarray
        Output pixel -> source position.
    out_shape : (H, W) or (H, W, ...)
        Output size (only the first two entries are read).
    offset : (ox, oy) float
        Position, in ``H``'s output coordinates, of the output's top-left pixel (x first).

    Returns
    -------
    out : (H, W) or (H, W, C) float32 ndarray
        The same number of dimensions as ``src``.

    Examples
    --------
    >>> img = np.arange(12, dtype=np.float32).reshape(3, 4)
    >>> shift = np.array([[1, 0, 0.5], [0, 1, 0], [0, 0, 1.0]])
    >>> warp_bilinear(img, shift, (2, 2)).tolist()
    [[0.5, 1.5], [4.5, 5.5]]
    """
    src = np.asarray(src, np.float32)
    if src.ndim not in (2, 3) or min(src.shape[:2]) < 1:
        raise BadInputError(f"src must be (h, w) or (h, w, C); got shape {src.shape}.")
    plane = src.ndim == 2
    src3 = np.ascontiguousarray(src[..., None] if plane else src)
    hm = _check_homographies(H, None, "H")
    if hm.shape[0] != 1:
        raise BadInputError(f"H must be one (3, 3) homography; got shape {np.shape(H)}.")
    ho, wo = check_hw(out_shape)
    offset = (float(offset[0]), float(offset[1]))
    _check_in_front(hm, (ho, wo), offset, "H")
    out = np.empty((ho, wo, src3.shape[2]), np.float32)
    with kernel_threads():
        _warp(src3, hm[0], offset[0], offset[1], out)
    return out[..., 0] if plane else out


def subframe_times(n_subframes: int, rolling_shutter: float = 0.0) -> np.ndarray:
    """The time, in exposures, of each sub-frame's pose: the middle of its slice of
    ``[0, 1 + rolling_shutter]`` (the slices :func:`subframe_weights` weighs)."""
    n = int(n_subframes)
    return (np.arange(n) + 0.5) * ((1.0 + float(rolling_shutter)) / n)


def subframe_weights(n_subframes: int, n_rows: int, rolling_shutter: float = 0.0):
    """Each row's share of each sub-frame: (weights (n_rows, T) float64, lo, hi (n_rows,) int64).

    Sub-frame ``t`` stands for the time slice ``[t, t + 1] * (1 + rho) / T`` of the sampled
    span ``[0, 1 + rho]`` (its pose is the slice's middle); row ``r`` integrates
    ``[r / (H - 1) * rho, r / (H - 1) * rho + 1]``, so its weight on a sub-frame is the overlap
    of the two, normalised to sum to 1. With ``rho = 0`` every row weighs every sub-frame
    ``1 / T`` (the uniform average, as a PSF's samples weigh).

    Examples
    --------
    >>> w, lo, hi = subframe_weights(4, 3, 1.0)
    >>> w.round(3).tolist(), lo.tolist(), hi.tolist()
    ([[0.5, 0.5, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.5, 0.5]], [0, 1, 2], [2, 3, 4])
    """
    n, rows, rho = int(n_subframes), int(n_rows), float(rolling_shutter)
    if not (0.0 <= rho and math.isfinite(rho)):
        raise BadInputError(f"rolling_shutter must be a non-negative fraction of the exposure; got {rho!r}.")
    weights = np.zeros((rows, n), np.float64)
    if rho == 0.0:
        weights[:] = 1.0 / n
        return weights, np.zeros(rows, np.int64), np.full(rows, n, np.int64)
    dt = (1.0 + rho) / n
    edges = np.arange(n + 1) * dt
    start = (np.arange(rows) / max(rows - 1, 1) * rho)[:, None]
    overlap = np.clip(np.minimum(edges[1:], start + 1.0) - np.maximum(edges[:-1], start), 0.0, None)
    # Slivers below a millionth of a slice are rounding at the window's ends, not coverage.
    overlap[overlap < 1e-9 * dt] = 0.0
    weights = overlap / overlap.sum(axis=1, keepdims=True)
    nz = weights > 0
    lo = nz.argmax(axis=1).astype(np.int64)
    hi = (n - nz[:, ::-1].argmax(axis=1)).astype(np.int64)
    return weights, lo, hi


def _layer_crop(alpha):
    """(y0, y1, x0, x1): the layer's pixels of alpha > 0 with two transparent pixels around them
    (within the layer), or None when it has none.

    The renderer samples the crop at the source position minus ``(x0, y0)``: for any position
    whose taps reach a pixel of alpha > 0 that subtraction of an integer is exact (the position
    lies more than one pixel past ``x0 >= 0``), so its taps, fractions and values are the whole
    layer's; every other position reads alpha 0 either way and the layer is skipped there.
    """
    nz = alpha > 0
    rows = np.flatnonzero(nz.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(nz[rows[0] : rows[-1] + 1].any(axis=0))
    h, w = alpha.shape
    return (max(0, int(rows[0]) - 2), min(h, int(rows[-1]) + 3),
            max(0, int(cols[0]) - 2), min(w, int(cols[-1]) + 3))


def _layer_tiles(layer_hms, alpha, origin, out_shape, offset, tile=LAYER_TILE_PX):
    """(ceil(H / tile), ceil(W / tile)) bool: the output tiles where a layer can be non-transparent
    in some sub-frame.

    ``alpha`` is the layer's crop whose top-left pixel is the layer's ``origin`` (x, y). A tile
    is left out only when every sub-frame samples the layer there where its alpha is 0 at all
    four bilinear taps (the renderer would read ``a = 0`` and skip the layer): leaving it out
    never changes a value. A homography that keeps a tile's box in front of the camera maps it
    to the convex quadrilateral of the box's corners' images, so their bounds over the
    sub-frames, grown by the taps' reach and one pixel of slack for rounding, hold every tap.
    The boxes run from a tile's first pixel to the next tile's, so neighbours share corners
    (each grid point is projected once per sub-frame). A tile is kept when a pixel of alpha > 0
    lies within those bounds (a summed-area table of ``alpha > 0`` answers each tile in constant
    time), or when some corner is not in front of the camera.
    """
    ho, wo = out_shape
    nty, ntx = -(-ho // tile), -(-wo // tile)
    h, w = alpha.shape
    gx = np.minimum(np.arange(ntx + 1) * tile, wo - 1) + offset[0]
    gy = np.minimum(np.arange(nty + 1) * tile, ho - 1) + offset[1]
    xx, yy = np.meshgrid(gx, gy)
    q = layer_hms @ np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)])  # (T, 3, P)
    front = q[:, 2] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        qx = np.where(front, q[:, 0] / q[:, 2], 0.0) - origin[0]
        qy = np.where(front, q[:, 1] / q[:, 2], 0.0) - origin[1]

    def per_tile(v, reduce):  # over the sub-frames, then the tile's four corners
        v = reduce(v, axis=0).reshape(nty + 1, ntx + 1)
        return reduce(np.stack([v[:-1, :-1], v[:-1, 1:], v[1:, :-1], v[1:, 1:]]), axis=0)

    front = per_tile(front, np.min)
    # Taps floor(q) and floor(q) + 1, one pixel of slack on each side.
    x0 = np.floor(per_tile(qx, np.min)) - 1
    x1 = np.floor(per_tile(qx, np.max)) + 2
    y0 = np.floor(per_tile(qy, np.min)) - 1
    y1 = np.floor(per_tile(qy, np.max)) + 2
    inside = (x1 >= 0) & (x0 <= w - 1) & (y1 >= 0) & (y0 <= h - 1)
    a = np.clip(x0, 0, w - 1).astype(np.int64)
    b = np.clip(x1, 0, w - 1).astype(np.int64) + 1
    c = np.clip(y0, 0, h - 1).astype(np.int64)
    d = np.clip(y1, 0, h - 1).astype(np.int64) + 1
    table = np.zeros((h + 1, w + 1), np.int32)
    np.cumsum(np.cumsum(alpha > 0, axis=0, dtype=np.int32), axis=1, out=table[1:, 1:])
    count = table[d, b] - table[c, b] - table[d, a] + table[c, a]
    return ~front | (inside & (count > 0))


def _layer_moves(layer_hms, background, corners):
    """True when the layer moves relative to the background over the exposure."""
    rel = layer_hms @ np.linalg.inv(background)  # background output -> layer source, per t
    pts = np.einsum("tij,nj->tni", rel, corners)
    pts = pts[..., :2] / pts[..., 2:]
    return bool(np.abs(pts - pts[:1]).max() > STATIC_TOLERANCE_PX)


def render_subframes(src_linear, homographies, out_shape, *, layers=(), rolling_shutter=0.0,
                     offset=(0.0, 0.0)):
    """Blur a linear image by a path of sub-frame homographies, with layers over it.

    Parameters
    ----------
    src_linear : (h, w, 3) float32 ndarray
        The sharp background, linear light.
    homographies : (T, 3, 3) float ndarray
        Per sub-frame: output pixel -> position in ``src_linear``. Sub-frames are uniform in
        time over ``[0, 1 + rolling_shutter]`` (:func:`subframe_weights`). The background is
        extended by reflect-101; layers are transparent outside their image.
    out_shape : (H, W)
    layers : sequence of Layer
        Composited in order (the last on top) over the background in every sub-frame.
    rolling_shutter : float
        Read-out time as a fraction of the exposure (0: global shutter).
    offset : (ox, oy) float
        Position of the output's top-left pixel in the homographies' output coordinates.

    Returns
    -------
    blurred_linear : (H, W, 3) float32 ndarray
    motion_mask : (H, W) uint8 ndarray
        255 where a layer that moves on its own covers the pixel (alpha above half an 8-bit
        level) in any sub-frame the pixel's row integrates; 0 elsewhere.

    Examples
    --------
    >>> img = np.full((8, 10, 3), 0.25, np.float32)
    >>> hms = np.repeat(np.eye(3)[None], 5, axis=0)
    >>> hms[:, 0, 2] = np.linspace(-2, 2, 5)  # a horizontal sweep of 4 px
    >>> blurred, mask = render_subframes(img, hms, (8, 10))
    >>> bool(np.allclose(blurred, 0.25)), int(mask.max())
    (True, 0)
    """
    src = np.ascontiguousarray(src_linear, np.float32)
    if src.ndim != 3 or src.shape[2] != 3 or min(src.shape[:2]) < 1:
        raise BadInputError(f"src_linear must be (h, w, 3) linear RGB; got shape {src.shape}.")
    hms = _check_homographies(homographies, None, "homographies")
    n = hms.shape[0]
    ho, wo = check_hw(out_shape)
    offset = (float(offset[0]), float(offset[1]))
    _check_in_front(hms, (ho, wo), offset, "homographies")
    weights, lo, hi = subframe_weights(n, ho, rolling_shutter)
    layers = tuple(layers)
    corners = np.array([[0.0, 0.0, 1.0], [wo - 1.0, 0.0, 1.0], [0.0, ho - 1.0, 1.0],
                        [wo - 1.0, ho - 1.0, 1.0]])
    corners[:, 0] += offset[0]
    corners[:, 1] += offset[1]
    lay_hw = np.ones((len(layers), 2), np.int64)
    lay_org = np.zeros((len(layers), 2), np.float64)
    crops = []
    lay_hms = np.empty((len(layers), n, 3, 3), np.float64)
    lay_moving = np.zeros(len(layers), np.bool_)
    nty, ntx = -(-ho // LAYER_TILE_PX), -(-wo // LAYER_TILE_PX)
    lay_tiles = np.zeros((len(layers), nty, ntx), np.bool_)
    for j, lay in enumerate(layers):
        img = np.asarray(lay.image, np.float32)
        alpha = np.asarray(lay.alpha, np.float32)
        if img.ndim != 3 or img.shape[2] != 3 or alpha.shape != img.shape[:2] or min(alpha.shape) < 1:
            raise BadInputError(f"layer {j}: image must be (h, w, 3) and alpha (h, w) of the same size; "
                                f"got {img.shape} and {alpha.shape}.")
        if not (alpha.min() >= 0.0 and alpha.max() <= 1.0):
            raise BadInputError(f"layer {j}: alpha must be in [0, 1]; "
                                f"got [{alpha.min():g}, {alpha.max():g}].")
        lay_hms[j] = _check_homographies(lay.homographies, n, f"layer {j}'s homographies")
        _check_in_front(lay_hms[j], (ho, wo), offset, f"layer {j}'s homographies")
        # Only the part of alpha > 0 is kept (depth planes are full-frame layers, mostly empty).
        box = _layer_crop(alpha)
        if box is None:  # transparent everywhere: never sampled
            crops.append((np.zeros((1, 1, 3), np.float32), np.zeros((1, 1), np.float32)))
            continue
        y0, y1, x0, x1 = box
        crops.append((img[y0:y1, x0:x1], alpha[y0:y1, x0:x1]))
        lay_hw[j] = (y1 - y0, x1 - x0)
        lay_org[j] = (x0, y0)
        lay_tiles[j] = _layer_tiles(lay_hms[j], crops[j][1], (x0, y0), (ho, wo), offset)
        auto = lay.moving is None
        lay_moving[j] = _layer_moves(lay_hms[j], hms, corners) if auto else bool(lay.moving)
    hmax, wmax = int(lay_hw[:, 0].max(initial=1)), int(lay_hw[:, 1].max(initial=1))
    rgba = np.zeros((len(layers), hmax, wmax, 4), np.float32)
    for j, (img, alpha) in enumerate(crops):
        h, w = alpha.shape
        rgba[j, :h, :w, :3] = img * alpha[..., None]  # premultiplied: see _sample_layer
        rgba[j, :h, :w, 3] = alpha
    out = np.empty((ho, wo, 3), np.float32)
    mask = np.empty((ho, wo), np.uint8)
    with kernel_threads():
        _render(src, hms, weights, lo, hi, offset[0], offset[1], rgba, lay_hw, lay_org, lay_hms,
                lay_moving, lay_tiles, LAYER_TILE_PX, out, mask)
    return out, mask
