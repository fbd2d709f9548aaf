"""Numba kernels of the RAW path: each fuses, in one pass over the pixels, steps that ops.raw writes as several.

- :func:`unprocess_table` / :func:`unprocess_float`: decode table (uint8 input), inverse
  colour correction, inverse gains with the highlight mask;
- :func:`readout`: clip at white, Bayer mosaic, Poisson-Gaussian noise, quantisation;
- :func:`gain_pad`: white-balance gains on the mosaic, mirrored by 2 sites for the 5x5 filters;
- :func:`develop_rows`: demosaic (bilinear or Malvar-He-Cutler), the highlight inverse above
  the knee, colour correction, written as planes (what ``encode_planes`` reads) or as pixels.

The bytes are those of the step-by-step formulation (ops.raw's docstrings; tests/test_raw_kernels.py
keeps it in NumPy and compares bit for bit): each value goes through the same float32 (or, for
the highlight solve, float64) operations in the same order, and ``_numba.njit`` compiles without
fastmath, so LLVM neither reassociates nor contracts a multiply-add into an FMA. Rows run in
parallel, but every output element is computed from the inputs alone, so the bytes do not
depend on the number of threads.

The private cores take arrays and scalars only; :mod:`blursynth.ops.raw` checks and allocates.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .._numba import njit

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_QUARTER = np.float32(0.25)
_EIGHTH = np.float32(0.125)
_TWO = np.float32(2.0)
_THREE = np.float32(3.0)
_FOUR = np.float32(4.0)
_THREE_QUARTERS = np.float32(0.75)
# Bisection steps of the highlight inverse: the root to float64 resolution on [knee, 1].
BISECTION_STEPS = 52
# Rows developed together: the pixels above the knee of a band are solved in one vector run.
BAND_ROWS = 16


# -- unprocess --------------------------------------------------------------------------------
@njit
def _unprocess_px(r, g, b, m, inv, preserve, knee, span):
    """One pixel of linear sRGB -> camera colours (all float32)."""
    c0 = (m[0, 0] * r + m[0, 1] * g) + m[0, 2] * b
    c1 = (m[1, 0] * r + m[1, 1] * g) + m[1, 2] * b
    c2 = (m[2, 0] * r + m[2, 1] * g) + m[2, 2] * b
    i0, i1, i2 = inv[0], inv[1], inv[2]
    if preserve:
        grey = ((c0 + c1) + c2) / _THREE
        if grey > knee:
            t = min(max((grey - knee) / span, _ZERO), _ONE)
            mask = t * t
            rest = _ONE - mask
            f0 = mask + rest * i0
            f1 = mask + rest * i1
            f2 = mask + rest * i2
            return (c0 * (f0 if f0 >= i0 else i0), c1 * (f1 if f1 >= i1 else i1),
                    c2 * (f2 if f2 >= i2 else i2))
    return c0 * i0, c1 * i1, c2 * i2


@njit(parallel=True)
def unprocess_table(photo, table, m, inv, preserve, knee, span, out):
    """(H, W, 3) uint8 -> ``out`` (3, H, W) float32 camera colours, decoding through ``table``."""
    h, w = photo.shape[0], photo.shape[1]
    for y in numba.prange(h):
        for x in range(w):
            o0, o1, o2 = _unprocess_px(table[photo[y, x, 0]], table[photo[y, x, 1]],
                                       table[photo[y, x, 2]], m, inv, preserve, knee, span)
            out[0, y, x] = o0
            out[1, y, x] = o1
            out[2, y, x] = o2


@njit(parallel=True)
def unprocess_float(image, m, inv, preserve, knee, span, out):
    """(H, W, 3) float32 linear sRGB -> ``out`` (H, W, 3) float32 camera colours."""
    h, w = image.shape[0], image.shape[1]
    for y in numba.prange(h):
        for x in range(w):
            o0, o1, o2 = _unprocess_px(image[y, x, 0], image[y, x, 1], image[y, x, 2],
                                       m, inv, preserve, knee, span)
            out[y, x, 0] = o0
            out[y, x, 1] = o1
            out[y, x, 2] = o2


# -- sensor read-out --------------------------------------------------------------------------
@njit(parallel=True)
def readout(cam, chans, white, noise, shot, read2, noisy, quantised, scale, out):
    """(H, W, 3) camera colours (any strides) -> ``out`` (H, W) RAW mosaic.

    Per site: the channel ``chans[y % 2, x % 2]``, clipped to [0, white]; plus
    ``sqrt(max(v, 0) * shot + read2) * noise[y, x]`` when ``noisy``; then clipped at
    white, and rounded to ``rint(v * scale) / scale`` when ``quantised``.
    """
    h, w = out.shape
    for y in numba.prange(h):
        c_even = chans[y & 1, 0]
        c_odd = chans[y & 1, 1]
        for x in range(w):
            v = cam[y, x, c_odd if x & 1 else c_even]
            v = min(max(v, _ZERO), white)
            if noisy:
                # float64 sqrt rounded to float32 is the correctly rounded float32 sqrt
                # (53 >= 2 * 24 + 2 bits): NumPy's float32 sqrt, bit for bit.
                sigma = np.float32(math.sqrt(max(v, _ZERO) * shot + read2))
                v = v + sigma * noise[y, x]
            v = min(v, white)
            if quantised:
                v = np.float32(np.rint(v * scale)) / scale  # rint in float64 is exact
            out[y, x] = v


# -- develop ----------------------------------------------------------------------------------
@njit(parallel=True)
def gain_pad(raw, chans, gains, out):
    """``out`` (H + 4, W + 4): each site times its channel's gain, mirrored by 2 about the border sites.

    Mirroring about the border site (reflect-101) keeps the Bayer pattern's parity.
    """
    h, w = raw.shape
    for yy in numba.prange(h + 4):
        y = yy - 2
        if y < 0:
            y = -y
        elif y >= h:
            y = 2 * (h - 1) - y
        g_even = gains[chans[y & 1, 0]]
        g_odd = gains[chans[y & 1, 1]]
        for x in range(w):
            out[yy, x + 2] = raw[y, x] * (g_odd if x & 1 else g_even)
        out[yy, 0] = out[yy, 4]
        out[yy, 1] = out[yy, 3]
        out[yy, w + 2] = out[yy, w]
        out[yy, w + 3] = out[yy, w - 1]


@njit
def _factor(mask, inv):
    f = mask + (1.0 - mask) * inv
    return f if f >= inv else inv


@njit
def _grey_at(t, y0, y1, y2, inv0, inv1, inv2, knee, span):
    """The mean of ``y / s(t)``: the grey, before the inverse gains, of a pixel restored with ``t``."""
    u = min(max((t - knee) / span, 0.0), 1.0)
    mask = u * u
    return ((y0 / _factor(mask, inv0) + y1 / _factor(mask, inv1)) + y2 / _factor(mask, inv2)) / 3.0


@njit
def _solve_highlights(y0, y1, y2, n, inv0, inv1, inv2, knee, span):
    """``t`` with ``grey_at(t) = t`` on [knee, 1] for ``n`` pixels; their colours restored in place.

    ``y_c`` (float64) are the pixels' camera colours; on return they hold ``y_c / s_c(t)``.
    Where ``grey_at(1) >= 1`` (the pixel is at or above white) ``t`` is 1 and needs no
    search. The others are bisected together, step by step, so the loop over them
    vectorises.
    """
    t = np.empty(n, np.float64)
    todo = np.empty(n, np.int64)
    k = 0
    for j in range(n):
        if _grey_at(1.0, y0[j], y1[j], y2[j], inv0, inv1, inv2, knee, span) >= 1.0:
            t[j] = 1.0
        else:
            todo[k] = j
            k += 1
    if k:
        a0 = np.empty(k, np.float64)
        a1 = np.empty(k, np.float64)
        a2 = np.empty(k, np.float64)
        lo = np.empty(k, np.float64)
        hi = np.empty(k, np.float64)
        for i in range(k):
            j = todo[i]
            a0[i] = y0[j]
            a1[i] = y1[j]
            a2[i] = y2[j]
            lo[i] = knee
            hi[i] = 1.0
        for _ in range(BISECTION_STEPS):
            for i in range(k):
                mid = 0.5 * (lo[i] + hi[i])
                above = _grey_at(mid, a0[i], a1[i], a2[i], inv0, inv1, inv2, knee, span) > mid
                lo[i] = mid if above else lo[i]
                hi[i] = hi[i] if above else mid
        for i in range(k):
            t[todo[i]] = 0.5 * (lo[i] + hi[i])
    for j in range(n):
        u = min(max((t[j] - knee) / span, 0.0), 1.0)
        mask = u * u
        y0[j] = y0[j] / _factor(mask, inv0)
        y1[j] = y1[j] / _factor(mask, inv1)
        y2[j] = y2[j] / _factor(mask, inv2)


@njit
def _demosaic_row(pad, y, chans, malvar, r_row, g_row, b_row):
    """Row ``y`` of the gained, padded mosaic demosaicked into ``r_row``, ``g_row``, ``b_row``.

    Each site: the bilinear value, plus Malvar-He-Cutler's Laplacian terms when ``malvar``.
    """
    w = pad.shape[1] - 4
    c_even = chans[y & 1, 0]
    c_odd = chans[y & 1, 1]
    row_other = c_odd if c_even == 1 else c_even  # the non-green channel of this row
    py = y + 2
    for x in range(w):
        px = x + 2
        c = pad[py, px]
        n = pad[py - 1, px]
        s = pad[py + 1, px]
        e = pad[py, px + 1]
        wv = pad[py, px - 1]
        diag = ((pad[py - 1, px - 1] + pad[py - 1, px + 1])
                + (pad[py + 1, px - 1] + pad[py + 1, px + 1])) * _QUARTER
        ch = c_odd if x & 1 else c_even
        if ch == 1:
            along_row = (e + wv) * _HALF
            along_col = (n + s) * _HALF
            if malvar:
                hor2 = (pad[py, px + 2] + pad[py, px - 2]) * _HALF
                ver2 = (pad[py - 2, px] + pad[py + 2, px]) * _HALF
                d_c = c - diag
                along_row = along_row + (_TWO * (c - hor2) + _FOUR * d_c - (c - ver2)) * _EIGHTH
                along_col = along_col + (_TWO * (c - ver2) + _FOUR * d_c - (c - hor2)) * _EIGHTH
            gv = c
            if row_other == 0:
                rv, bv = along_row, along_col
            else:
                rv, bv = along_col, along_row
        else:
            gv = ((n + s) + (e + wv)) * _QUARTER
            opposite = diag
            if malvar:
                ring2 = ((pad[py - 2, px] + pad[py + 2, px])
                         + (pad[py, px + 2] + pad[py, px - 2])) * _QUARTER
                lap_axis = c - ring2
                gv = gv + _HALF * lap_axis
                opposite = diag + _THREE_QUARTERS * lap_axis
            if ch == 0:
                rv, bv = c, opposite
            else:
                rv, bv = opposite, c
        r_row[x] = rv
        g_row[x] = gv
        b_row[x] = bv


@njit
def restore_highlights(r_band, g_band, b_band, inv0, inv1, inv2, knee, knee32, span):
    """The highlight inverse of the pixels of gained (rows, W) planes whose grey exceeds
    ``knee32``, in place (a band of :func:`develop_rows`, or ``ops.raw.white_balance``'s image).

    Their camera colours are taken back as ``value * inv`` in float64 and solved
    together (:func:`_solve_highlights`): a band gives the vector loops longer runs
    than a row, and no pixel's result depends on the others.
    """
    rows, w = r_band.shape
    n_hot = 0
    for i in range(rows):
        for x in range(w):
            if ((r_band[i, x] + g_band[i, x]) + b_band[i, x]) / _THREE > knee32:
                n_hot += 1
    if n_hot == 0:
        return
    where = np.empty(n_hot, np.int64)
    y0 = np.empty(n_hot, np.float64)
    y1 = np.empty(n_hot, np.float64)
    y2 = np.empty(n_hot, np.float64)
    k = 0
    for i in range(rows):
        for x in range(w):
            if ((r_band[i, x] + g_band[i, x]) + b_band[i, x]) / _THREE > knee32:
                where[k] = i * w + x
                y0[k] = np.float64(r_band[i, x]) * inv0
                y1[k] = np.float64(g_band[i, x]) * inv1
                y2[k] = np.float64(b_band[i, x]) * inv2
                k += 1
    _solve_highlights(y0, y1, y2, n_hot, inv0, inv1, inv2, knee, span)
    for k in range(n_hot):
        i, x = divmod(where[k], w)
        r_band[i, x] = np.float32(y0[k])
        g_band[i, x] = np.float32(y1[k])
        b_band[i, x] = np.float32(y2[k])


@njit(parallel=True)
def develop_rows(pad, chans, malvar, restore, inv, knee, knee32, span, matrix, apply_matrix, out):
    """Gained, padded mosaic ``pad`` (H + 4, W + 4) -> ``out`` (3, H, W), any strides.

    By bands of :data:`BAND_ROWS` rows: demosaic (:func:`_demosaic_row`); then, when
    ``restore``, the highlight inverse above the knee (:func:`restore_highlights`); then,
    when ``apply_matrix``, ``matrix`` times each colour.
    """
    h = pad.shape[0] - 4
    w = pad.shape[1] - 4
    inv0, inv1, inv2 = inv[0], inv[1], inv[2]
    n_bands = (h + BAND_ROWS - 1) // BAND_ROWS
    for band in numba.prange(n_bands):
        y_start = band * BAND_ROWS
        rows = min(BAND_ROWS, h - y_start)
        r_band = np.empty((rows, w), np.float32)
        g_band = np.empty((rows, w), np.float32)
        b_band = np.empty((rows, w), np.float32)
        for i in range(rows):
            _demosaic_row(pad, y_start + i, chans, malvar, r_band[i], g_band[i], b_band[i])
        if restore:
            restore_highlights(r_band, g_band, b_band, inv0, inv1, inv2, knee, knee32, span)
        for i in range(rows):
            y = y_start + i
            if apply_matrix:
                for x in range(w):
                    rv, gv, bv = r_band[i, x], g_band[i, x], b_band[i, x]
                    out[0, y, x] = (matrix[0, 0] * rv + matrix[0, 1] * gv) + matrix[0, 2] * bv
                    out[1, y, x] = (matrix[1, 0] * rv + matrix[1, 1] * gv) + matrix[1, 2] * bv
                    out[2, y, x] = (matrix[2, 0] * rv + matrix[2, 1] * gv) + matrix[2, 2] * bv
            else:
                for x in range(w):
                    out[0, y, x] = r_band[i, x]
                    out[1, y, x] = g_band[i, x]
                    out[2, y, x] = b_band[i, x]
