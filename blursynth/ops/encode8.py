"""Exact 8-bit encoding of linear light: decision levels, and one read-out kernel for float and integer sums.

The 8-bit code of a linear value ``x`` is round-half-up of ``255 * encode(x)``,
which is the number of *decision levels* ``decode((k - 1/2) / 255)``,
``k = 1 .. 255``, at or below ``x``. Counting them needs no power per pixel.
Two kinds of value are read out this way:

- float32 linear light in [0, 1] (the blur pipeline): the levels rounded up to
  float32 (:func:`float_thresholds`), read out by :func:`encode_planes`;
- integer sums of ``n`` frames looked up in the integer decode table
  :func:`linear_lut` (frame averaging): the levels times ``n * scale``, rounded
  up to integers (:func:`sum_thresholds`), read out by :func:`sum_readout`'s ``encode``.

Both read-outs (and the grouped sums of :mod:`blursynth.ops.average`, which read
a block out without storing it) run the one kernel :func:`_levels`: a table indexed by
``sqrt(value)`` gives the code at the start of the value's bucket, and one
comparison with the next level (or a short walk, for curves too steep for
that) finishes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np

from .._numba import kernel_threads, njit
from .color import CameraResponse

# Linear light is stored as integers: 1.0 -> LINEAR_SCALE. 2**24 keeps the
# quantisation of one frame below 6e-8 and a sum of 255 frames inside uint32.
LINEAR_SCALE = 1 << 24
# Values read out per block of the integer read-out: a block's buckets stay in L1.
READOUT_BLOCK = 4096
# Buckets of the float encoder's start table, uniform in sqrt(linear): for gamma up to
# about 3, sRGB and none, two adjacent buckets never hold two decision levels, so one
# comparison settles a code.
_SQRT_BINS = 4096


def _decision_levels(crf: CameraResponse) -> np.ndarray:
    """(255,) float64: ``decode((k - 1/2) / 255)`` for ``k = 1 .. 255``, where code ``k`` begins."""
    return crf.decode((np.arange(1, 256, dtype=np.float64) - 0.5) / 255.0)


# ---------------------------------------------------------------------------------------------
# the one read-out kernel


@njit
def _levels(values, lo, hi, scale, base, nxt, thresholds, one_step, buckets, dest):
    """``dest[i]`` = the number of ``thresholds[1:256]`` at or below ``values[i]`` (clipped to [lo, hi]).

    ``thresholds`` has 257 entries: ``thresholds[0]`` below every value and a
    sentinel at 256 above every value. ``base[b]`` is the code at the start of
    bucket ``b = int(sqrt(value) * scale)`` (the last bucket takes everything
    above), never above the code of any value the bucket can receive. With
    ``one_step`` a bucket's values span at most one level, so one comparison
    finishes the code; otherwise the code walks up from ``base``. Two passes:
    the buckets first (a float32 sqrt, which vectorises), then the look-ups.
    """
    top = np.int32(base.size - 1)
    for i in range(values.size):
        v = min(max(values[i], lo), hi)
        b = np.int32(math.sqrt(np.float32(v)) * scale)
        buckets[i] = b if b < top else top
    if one_step:
        for i in range(values.size):
            v = min(max(values[i], lo), hi)
            b = buckets[i]
            dest[i] = base[b] + (v >= nxt[b])
    else:
        for i in range(values.size):
            v = min(max(values[i], lo), hi)
            k = base[buckets[i]]
            while v >= thresholds[k + 1]:
                k += 1
            dest[i] = k


# ---------------------------------------------------------------------------------------------
# float linear light


# The caches are keyed on the whole curve (a frozen, hashable CameraResponse: kind and numbers).
@lru_cache(maxsize=32)
def _float_thresholds(crf: CameraResponse) -> np.ndarray:
    exact = _decision_levels(crf)
    t = exact.astype(np.float32)
    low = t.astype(np.float64) < exact
    t[low] = np.nextafter(t[low], np.float32(np.inf))
    t.setflags(write=False)
    return t


def float_thresholds(crf) -> np.ndarray:
    """The (255,) float32 decision levels of the uint8 encoder of float linear light.

    ``thresholds[v - 1]`` is the linear value from which code ``v`` is chosen:
    ``decode((v - 0.5) / 255)``, rounded up to the next float32, so "count the
    thresholds <= x" rounds the encoded value to nearest (halves up) for every
    float32 ``x``.

    Parameters
    ----------
    crf : CameraResponse or str

    Examples
    --------
    >>> t = float_thresholds("none")
    >>> t.shape, bool(t[0] == np.float32(0.5 / 255))
    ((255,), True)
    """
    return _float_thresholds(CameraResponse.parse(crf))


@lru_cache(maxsize=32)
def _float_tables(crf: CameraResponse):
    """(start code of each sqrt-bucket, the padded thresholds, whether one comparison settles a code)."""
    t = _float_thresholds(crf)
    edges = (np.arange(_SQRT_BINS + 1, dtype=np.float64) / _SQRT_BINS) ** 2
    start = np.searchsorted(t, edges.astype(np.float32), side="right").astype(np.int32)
    padded = np.concatenate([[-np.inf], t, [np.inf]]).astype(np.float32)
    # The float32 bucket index can fall one bucket short at an edge, so one comparison needs
    # every two adjacent buckets to hold at most one decision level; steeper curves use the
    # exact search instead.
    one_step = bool(np.all(start[2:] - start[:-2] <= 1))
    # The one level that can lie in (or just past) each bucket, looked up by the bucket itself
    # rather than by the code, so the kernel's two look-ups do not wait on each other.
    nxt = padded[start.astype(np.int64) + 1]
    for table in (start, nxt, padded):
        table.setflags(write=False)  # shared through the cache
    return start, nxt, padded, one_step


def encode_planes(crf, planes) -> np.ndarray:
    """(C, H, W) float32 linear planes to an (H, W, C) uint8 image: clip to [0, 1], encode, round.

    The same codes as :func:`encode_uint8` (a binary search
    over :func:`float_thresholds`), in one pass of the read-out kernel.

    Parameters
    ----------
    crf : CameraResponse or str
    planes : (C, H, W) float32 ndarray
        May be a strided view (e.g. a crop).

    Returns
    -------
    image : (H, W, C) uint8 ndarray

    Examples
    --------
    >>> encode_planes("gamma:2.2", np.array([[[0.0, 0.218, 1.0]]], np.float32))[0, :, 0].tolist()
    [0, 128, 255]
    """
    crf = CameraResponse.parse(crf)
    planes = np.asarray(planes)
    if planes.ndim != 3 or planes.dtype != np.float32:
        raise ValueError(f"planes must be float32 (C, H, W); got {planes.dtype} {planes.shape}.")
    c, h, w = planes.shape
    out = np.empty((h, w, c), np.uint8)
    start, nxt, padded, one_step = _float_tables(crf)
    if one_step:
        with kernel_threads():
            _encode_rows(planes, start, nxt, padded, out)
    else:
        out[...] = np.moveaxis(encode_uint8(crf, planes), 0, -1)
    return out


def encode_uint8(crf, linear):
    """Float linear light to uint8 code values: clip to [0, 1], encode, round (halves up).

    The code of ``x`` is the number of :func:`float_thresholds` that are
    <= ``x``: no power per pixel, and the same on every device.

    Parameters
    ----------
    crf : CameraResponse or str
    linear : ndarray or torch.Tensor, float
        Any shape.

    Returns
    -------
    image : uint8, same shape (a tensor on the same device for tensors)

    Examples
    --------
    >>> encode_uint8("gamma:2.2", np.array([0.0, 0.218, 1.0]))
    array([  0, 128, 255], dtype=uint8)
    """
    thresholds = float_thresholds(crf)
    if type(linear).__module__.startswith("torch"):  # no torch import for NumPy callers
        import torch

        return bucketize_codes(linear, torch.tensor(thresholds, device=linear.device))
    x = np.asarray(linear, dtype=np.float32)
    return np.searchsorted(thresholds, x, side="right").astype(np.uint8)


def bucketize_codes(linear, thresholds):
    """The torch read-out of :func:`encode_uint8`: each value's code is the number of
    ``thresholds`` at or below it, compared in float32.

    Parameters
    ----------
    linear : tensor
        Linear light, any shape and float dtype.
    thresholds : (255,) float32 tensor
        :func:`float_thresholds` of the curve, on ``linear``'s device.

    Returns
    -------
    codes : uint8 tensor, ``linear``'s shape and device

    Examples
    --------
    >>> import torch
    >>> t = torch.tensor(float_thresholds("gamma:2.2"))
    >>> bucketize_codes(torch.tensor([0.0, 0.218, 1.0]), t).tolist()
    [0, 128, 255]
    """
    import torch

    x = linear.float() if linear.dtype != torch.float32 else linear
    return torch.bucketize(x.contiguous(), thresholds, right=True).to(torch.uint8)


_BELOW_ONE = np.float32(np.nextafter(np.float32(1), np.float32(0)))


@njit(parallel=True)
def _encode_rows(planes, start, nxt, padded, out):
    # Rows in parallel; each channel's row is read out into the interleaved image.
    nc, h, w = planes.shape
    scale = np.float32(_SQRT_BINS)
    for y in numba.prange(h):
        buckets = np.empty(w, np.int32)
        for c in range(nc):
            _levels(planes[c, y], np.float32(0), _BELOW_ONE, scale, start, nxt, padded, True, buckets, out[y, :, c])


# ---------------------------------------------------------------------------------------------
# integer sums of frames


def linear_lut(crf) -> tuple[np.ndarray, int]:
    """Integer decode table: ``lut[v]`` is linear light of 8-bit value ``v`` times ``scale``.

    Parameters
    ----------
    crf : CameraResponse or str

    Returns
    -------
    lut : (256,) uint32 ndarray
    scale : int
        Linear value 1.0; ``lut[255] == scale``. For ``none`` the table is the
        identity and ``scale`` is 255, so averaging is exact integer arithmetic.

    Examples
    --------
    >>> lut, scale = linear_lut("gamma:2.2")
    >>> int(lut[0]), int(lut[255]) == scale
    (0, True)
    """
    crf = CameraResponse.parse(crf)
    if crf.is_identity:
        return np.arange(256, dtype=np.uint32), 255
    lut = np.rint(crf.decode(np.arange(256) / 255.0) * LINEAR_SCALE)
    return lut.astype(np.uint32), LINEAR_SCALE


def sum_thresholds(crf, n_items: int) -> np.ndarray:
    """Integer thresholds on a sum of ``n_items`` :func:`linear_lut` values, one per 8-bit code.

    The code of a sum ``S`` is the largest ``k`` with ``S >= T[k]`` (``T[0] =
    0``), which is ``floor(255 * encode(S / (n * scale)) + 1/2)``: rounding
    half up, computed without evaluating ``encode``. For ``none`` the
    thresholds are exact rationals; otherwise they carry float64 rounding
    (relative 1e-16) on top of the table's quantisation (at most ``n/2`` units
    of ``2**-24``), which moves a code only when the exact value is within
    about 1e-3 of a code's rounding tie.

    Returns
    -------
    T : (257,) uint64 ndarray, non-decreasing
        ``T[256]`` is a sentinel no sum reaches.

    Examples
    --------
    >>> T = sum_thresholds("none", 2)  # sums of two 8-bit values
    >>> T[1:4].tolist()  # a sum of 1 rounds up to 1 (mean 0.5), 3 to 2, 5 to 3
    [1, 3, 5]
    """
    crf = CameraResponse.parse(crf)
    k = np.arange(1, 256, dtype=np.int64)
    if crf.is_identity:
        t = (n_items * (2 * k - 1) + 1) // 2  # ceil(n (k - 1/2)), in integers
    else:
        t = np.ceil(n_items * LINEAR_SCALE * _decision_levels(crf)).astype(np.int64)
    return np.concatenate([[0], t, [np.iinfo(np.int64).max]]).astype(np.uint64)


def _bucket_table(thresholds: np.ndarray, s_max: int):
    """Code at the start of each bucket of ``sqrt(S)``, fine enough for one comparison.

    Codes are spaced roughly evenly in ``sqrt`` of linear light for the usual
    responses, so a few thousand buckets hold at most one threshold each; the
    table is refined until that holds, which lets the kernel finish with a
    single branch-free comparison.
    """
    n_buckets = 1024
    while True:
        scale = n_buckets / math.sqrt(s_max + 1.0)
        edges = (np.arange(n_buckets + 1) / scale) ** 2
        # Widen each bucket so that float32 rounding of S and sqrt (relative
        # error under 1e-6) cannot put a sum in a bucket that does not hold it.
        lo = np.clip(np.floor(edges[:-1] * (1 - 1e-6)) - 1, 0, None)
        hi = np.ceil(edges[1:] * (1 + 1e-6)) + 1
        base = np.searchsorted(thresholds, lo.astype(np.uint64), side="right") - 1
        top = np.searchsorted(thresholds, hi.astype(np.uint64), side="right") - 1
        one_step = bool((top - base).max() <= 1)
        if one_step or n_buckets >= 1 << 16:
            break
        n_buckets *= 2
    return base.astype(np.int32), scale, one_step


@dataclass(frozen=True)
class SumReadout:
    """The tables that read sums of ``n_items`` table values out to 8-bit codes (:func:`sum_readout`).

    Attributes
    ----------
    thresholds : (257,) ndarray of the sums' dtype
        :func:`sum_thresholds`, the sentinel capped to the dtype.
    base : (n_buckets,) int32 ndarray
        The code at the start of each bucket.
    nxt : (n_buckets,) ndarray of the sums' dtype
        ``thresholds[base + 1]``: the threshold that can lie in each bucket.
    scale : float
        Buckets per unit of ``sqrt(S)``.
    one_step : bool
    """

    thresholds: np.ndarray
    base: np.ndarray
    nxt: np.ndarray
    scale: float
    one_step: bool

    def encode(self, sums: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """1-D sums to uint8 codes (into ``out`` when given, of the same size)."""
        if out is None:
            out = np.empty(sums.size, np.uint8)
        _encode_sums(sums, self.scale, self.base, self.nxt, self.thresholds, self.one_step, out)
        return out


def sum_readout(crf, n_items: int, dtype=np.uint32) -> SumReadout:
    """The read-out of sums of ``n_items`` :func:`linear_lut` values held in ``dtype``.

    Examples
    --------
    >>> lut, _ = linear_lut("none")
    >>> sum_readout("none", 2).encode(lut[[1, 2]] + lut[[2, 2]]).tolist()  # means 1.5 and 2
    [2, 2]
    """
    crf = CameraResponse.parse(crf)
    thresholds = sum_thresholds(crf, n_items)
    scale = 255 if crf.is_identity else LINEAR_SCALE
    base, bucket_scale, one_step = _bucket_table(thresholds, n_items * scale)
    # The sentinel must stay above every sum in the sums' dtype.
    thresholds = np.minimum(thresholds, np.iinfo(dtype).max).astype(dtype)
    return SumReadout(thresholds, base, thresholds[base.astype(np.int64) + 1], bucket_scale, one_step)


@njit
def _encode_sums(sums, scale, base, nxt, thresholds, one_step, out):
    # Block by block, so that the bucket indices stay in L1.
    sc = np.float32(scale)
    lo, hi = thresholds[0], thresholds[256]  # 0 and the sentinel: no clipping, in the sums' dtype
    buckets = np.empty(READOUT_BLOCK, dtype=np.int32)
    for start in range(0, sums.size, READOUT_BLOCK):
        n = min(READOUT_BLOCK, sums.size - start)
        _levels(sums[start:start + n], lo, hi, sc, base, nxt, thresholds, one_step, buckets, out[start:start + n])
