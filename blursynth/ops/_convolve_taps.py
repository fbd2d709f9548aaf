"""The CPU direct path's sparse convolution: a PSF's non-zero taps and the Numba row kernel
that sums them (:func:`blursynth.ops.convolve.convolve` calls it for float32/float64 images on
the CPU; compiled on first use)."""

from __future__ import annotations

import numpy as np

from .._numba import kernel_threads


def psf_taps(psf):
    """Non-zero taps of a PSF as source offsets into the padded image.

    Parameters
    ----------
    psf : (k, k) ndarray or torch.Tensor

    Returns
    -------
    dy, dx : (n,) int64 ndarray
        Row and column offset of the source pixel of each tap in the padded
        image (``k - 1 - i``, ``k - 1 - j``: convolution flips the PSF), sorted
        by row so consecutive taps reuse cached rows.
    weights : (n,) ndarray, the PSF's dtype

    Examples
    --------
    >>> psf = np.zeros((3, 3), np.float32); psf[1, 2] = 1
    >>> dy, dx, w = psf_taps(psf)
    >>> int(dy[0]), int(dx[0]), float(w[0])
    (1, 0, 1.0)
    """
    values = psf.detach().cpu().numpy() if hasattr(psf, "detach") else np.asarray(psf)
    k = values.shape[-1]
    ii, jj = np.nonzero(values)
    dy = (k - 1 - ii).astype(np.int64)
    dx = (k - 1 - jj).astype(np.int64)
    order = np.lexsort((dx, dy))
    return dy[order], dx[order], values[ii, jj][order]


def _taps_numpy(x, psf):
    """(P, Hp, Wp) float planes -> (P, Hp - k + 1, Wp - k + 1): the Numba row kernel over the taps."""
    k = psf.shape[-1]
    p, hp, wp = x.shape
    dy, dx, w = psf_taps(psf)
    out = np.empty((p, hp - k + 1, wp - k + 1), x.dtype)
    with kernel_threads():
        _taps_kernel()(x, dy, dx, w.astype(x.dtype), out)
    return out


_TAPS_KERNEL = None


def _taps_kernel():
    global _TAPS_KERNEL
    if _TAPS_KERNEL is None:
        _TAPS_KERNEL = _build_taps_kernel()
    return _TAPS_KERNEL


def _build_taps_kernel():
    import numba

    from .._numba import njit

    prange = numba.prange

    # fastmath "contract" only: lets LLVM fuse each multiply-add into one FMA
    # (about 20% faster here); no reassociation, so the sum order, and with it
    # the result, stays fixed whatever the thread count.
    @njit(parallel=True, fastmath={"contract"})
    def _taps_rows(padded, dy, dx, w, out):
        """out[p, y] = sum over taps t of w[t] * padded[p, y + dy[t], dx[t] : dx[t] + W].

        One output row at a time, accumulated in a private row that stays in
        L1; eight taps per pass to cut the accumulator traffic (the loop is
        bound by loads: per eight vector FMAs it loads eight source vectors and
        the accumulator once, where four taps per pass loaded it twice). The
        sum runs in tap order whatever the taps per pass, one FMA after the
        other, so four or eight per pass give the same bytes. Each row is
        summed by one thread, so the result does not depend on the number of
        threads.
        """
        planes, ho, wo = out.shape
        n = dy.shape[0]
        n8 = n - n % 8
        n4 = n - n % 4
        for py in prange(planes * ho):
            p = py // ho
            y = py % ho
            acc = out[p, y]  # the output row itself: no allocation per row
            acc[:] = 0
            for t in range(0, n8, 8):
                w0 = w[t]
                w1 = w[t + 1]
                w2 = w[t + 2]
                w3 = w[t + 3]
                w4 = w[t + 4]
                w5 = w[t + 5]
                w6 = w[t + 6]
                w7 = w[t + 7]
                s0 = padded[p, y + dy[t], dx[t] : dx[t] + wo]
                s1 = padded[p, y + dy[t + 1], dx[t + 1] : dx[t + 1] + wo]
                s2 = padded[p, y + dy[t + 2], dx[t + 2] : dx[t + 2] + wo]
                s3 = padded[p, y + dy[t + 3], dx[t + 3] : dx[t + 3] + wo]
                s4 = padded[p, y + dy[t + 4], dx[t + 4] : dx[t + 4] + wo]
                s5 = padded[p, y + dy[t + 5], dx[t + 5] : dx[t + 5] + wo]
                s6 = padded[p, y + dy[t + 6], dx[t + 6] : dx[t + 6] + wo]
                s7 = padded[p, y + dy[t + 7], dx[t + 7] : dx[t + 7] + wo]
                for x in range(wo):
                    acc[x] = (acc[x] + w0 * s0[x] + w1 * s1[x] + w2 * s2[x] + w3 * s3[x]
                              + w4 * s4[x] + w5 * s5[x] + w6 * s6[x] + w7 * s7[x])
            for t in range(n8, n4, 4):
                w0 = w[t]
                w1 = w[t + 1]
                w2 = w[t + 2]
                w3 = w[t + 3]
                s0 = padded[p, y + dy[t], dx[t] : dx[t] + wo]
                s1 = padded[p, y + dy[t + 1], dx[t + 1] : dx[t + 1] + wo]
                s2 = padded[p, y + dy[t + 2], dx[t + 2] : dx[t + 2] + wo]
                s3 = padded[p, y + dy[t + 3], dx[t + 3] : dx[t + 3] + wo]
                for x in range(wo):
                    acc[x] = acc[x] + w0 * s0[x] + w1 * s1[x] + w2 * s2[x] + w3 * s3[x]
            for t in range(n4, n):
                wt = w[t]
                s = padded[p, y + dy[t], dx[t] : dx[t] + wo]
                for x in range(wo):
                    acc[x] += wt * s[x]

    return _taps_rows
