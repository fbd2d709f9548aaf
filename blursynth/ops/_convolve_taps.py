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


def pair_schedule(dy, dx, w):
    """The taps of two output rows at once, ``y`` and ``y + 1``: one entry per source vector
    either row needs, sorted as the taps are.

    Tap ``(dy, dx)`` of row ``y + 1`` reads the source row that tap ``(dy + 1, dx)`` of row ``y``
    reads, so one load serves both where a PSF has vertically adjacent taps (a trajectory's
    rasterised path has them almost everywhere: about 140 entries for 121 taps). Each entry holds
    the weight of each row, 0 where that row has no such tap.

    Returns
    -------
    offset, dx : (m,) int64 ndarray
        Source row (relative to ``y``) and column of each entry, sorted by ``(offset, dx)``: each
        row meets its own taps in :func:`psf_taps`' order.
    w_top, w_bottom : (m,) ndarray
        The weights of row ``y`` and of row ``y + 1``.
    top : (m,) bool ndarray
        Which entries are taps of row ``y`` (an odd last row sums those alone).

    Examples
    --------
    >>> dy, dx, w = np.array([0, 1]), np.array([2, 2]), np.array([0.25, 0.75], np.float32)
    >>> [a.tolist() for a in pair_schedule(dy, dx, w)]
    [[0, 1, 2], [2, 2, 2], [0.25, 0.75, 0.0], [0.0, 0.25, 0.75], [True, True, False]]
    """
    top = dict(zip(zip(dy.tolist(), dx.tolist()), w))
    bottom = {(a + 1, b): v for (a, b), v in top.items()}
    keys = sorted(set(top) | set(bottom))
    zero = w.dtype.type(0)
    return (np.array([k[0] for k in keys], np.int64), np.array([k[1] for k in keys], np.int64),
            np.array([top.get(k, zero) for k in keys], w.dtype),
            np.array([bottom.get(k, zero) for k in keys], w.dtype),
            np.array([k in top for k in keys], np.bool_))


#: Rows go in pairs (:func:`pair_schedule`) when the entries of a pair are at most this many
#: per tap of the two rows: a load then serves 1.25 FMAs or more. A PSF without vertical
#: neighbours (a horizontal streak) has 1 and goes row by row, where no FMA is spent on a
#: weight of 0.
PAIR_LOADS_PER_TAP = 0.8


def _taps_numpy(x, psf):
    """(P, Hp, Wp) float planes -> (P, Hp - k + 1, Wp - k + 1): the Numba row kernel over the taps
    (rows in pairs where the PSF's taps let one load serve both rows).

    Both kernels sum each output pixel's taps in the same order, one FMA after the other. A
    pair's weight of 0 adds 0 * x: nothing, for the inputs a blur has (finite values and
    positive weights whose products are 0 or at least the smallest normal float: no product
    rounds to a signed zero), so the bytes are the row kernel's; the pairs are used only for
    positive weights. Where a product underflows to -0, a pair's 0 * x can turn a -0 into +0;
    a NaN or infinite pixel also reaches the other row of its pair (0 * inf is NaN). Neither
    changes a finite, nonzero value.
    """
    k = psf.shape[-1]
    p, hp, wp = x.shape
    dy, dx, w = psf_taps(psf)
    w = w.astype(x.dtype)
    out = np.empty((p, hp - k + 1, wp - k + 1), x.dtype)
    positive = len(dy) and bool(np.all(w > 0)) and bool(np.all(np.isfinite(w)))
    schedule = pair_schedule(dy, dx, w) if out.shape[1] >= 2 and positive else None
    with kernel_threads():
        if schedule is not None and len(schedule[0]) <= PAIR_LOADS_PER_TAP * 2 * len(dy):
            _taps_kernel("pairs")(x, *schedule, out)
        else:
            _taps_kernel("rows")(x, dy, dx, w, out)
    return out


_TAPS_KERNELS = {}


def _taps_kernel(kind: str = "rows"):
    if kind not in _TAPS_KERNELS:
        _TAPS_KERNELS[kind] = _build_taps_kernel() if kind == "rows" else _build_pairs_kernel()
    return _TAPS_KERNELS[kind]


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


def _build_pairs_kernel():
    import numba

    from .._numba import njit

    prange = numba.prange

    # As _taps_rows: FMA contraction only, so each pixel's sum runs in tap order.
    @njit(parallel=True, fastmath={"contract"})
    def _taps_row_pairs(padded, offset, dx, w_top, w_bottom, top, out):
        """Rows ``y`` and ``y + 1`` (``y`` even) from one pass over :func:`pair_schedule`'s
        entries: eight source vectors loaded per pass feed both rows' sums (16 FMAs against 8
        loads, where a row alone does 8 against 8). An odd last row goes alone, over the entries
        that are its taps. Each pair of rows is summed by one thread."""
        planes, ho, wo = out.shape
        n = offset.shape[0]
        n8 = n - n % 8
        blocks = (ho + 1) // 2
        for pb in prange(planes * blocks):
            p = pb // blocks
            y = (pb % blocks) * 2
            a = out[p, y]
            a[:] = 0
            if y + 1 == ho:
                for t in range(n):
                    wt = w_top[t]
                    if top[t]:
                        s = padded[p, y + offset[t], dx[t] : dx[t] + wo]
                        for x in range(wo):
                            a[x] += wt * s[x]
                continue
            b = out[p, y + 1]
            b[:] = 0
            for t in range(0, n8, 8):
                a0 = w_top[t]
                a1 = w_top[t + 1]
                a2 = w_top[t + 2]
                a3 = w_top[t + 3]
                a4 = w_top[t + 4]
                a5 = w_top[t + 5]
                a6 = w_top[t + 6]
                a7 = w_top[t + 7]
                b0 = w_bottom[t]
                b1 = w_bottom[t + 1]
                b2 = w_bottom[t + 2]
                b3 = w_bottom[t + 3]
                b4 = w_bottom[t + 4]
                b5 = w_bottom[t + 5]
                b6 = w_bottom[t + 6]
                b7 = w_bottom[t + 7]
                s0 = padded[p, y + offset[t], dx[t] : dx[t] + wo]
                s1 = padded[p, y + offset[t + 1], dx[t + 1] : dx[t + 1] + wo]
                s2 = padded[p, y + offset[t + 2], dx[t + 2] : dx[t + 2] + wo]
                s3 = padded[p, y + offset[t + 3], dx[t + 3] : dx[t + 3] + wo]
                s4 = padded[p, y + offset[t + 4], dx[t + 4] : dx[t + 4] + wo]
                s5 = padded[p, y + offset[t + 5], dx[t + 5] : dx[t + 5] + wo]
                s6 = padded[p, y + offset[t + 6], dx[t + 6] : dx[t + 6] + wo]
                s7 = padded[p, y + offset[t + 7], dx[t + 7] : dx[t + 7] + wo]
                for x in range(wo):
                    v0 = s0[x]
                    v1 = s1[x]
                    v2 = s2[x]
                    v3 = s3[x]
                    v4 = s4[x]
                    v5 = s5[x]
                    v6 = s6[x]
                    v7 = s7[x]
                    a[x] = (a[x] + a0 * v0 + a1 * v1 + a2 * v2 + a3 * v3 + a4 * v4 + a5 * v5
                            + a6 * v6 + a7 * v7)
                    b[x] = (b[x] + b0 * v0 + b1 * v1 + b2 * v2 + b3 * v3 + b4 * v4 + b5 * v5
                            + b6 * v6 + b7 * v7)
            for t in range(n8, n):
                at = w_top[t]
                bt = w_bottom[t]
                s = padded[p, y + offset[t], dx[t] : dx[t] + wo]
                for x in range(wo):
                    v = s[x]
                    a[x] = a[x] + at * v
                    b[x] = b[x] + bt * v

    return _taps_row_pairs

