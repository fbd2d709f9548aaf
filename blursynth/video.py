"""Frames from video files and numbered-frame folders, window planning, exact linear-light averaging.

The pipeline is streaming: frames are decoded one at a time, each is taken to
linear light through a 256-entry integer lookup table and added to a running
integer sum; a window's average is mapped back to 8 bits by comparing the sum
with exact integer thresholds. Integer sums make the running sum equal to
re-summing bit for bit, and the thresholds make the output equal to the naive
float64 formula ``round(255 * encode(mean(decode(frames / 255))))`` except
where that value lies within about 1e-3 of a rounding tie (see
:func:`encode_thresholds`). The sums and read-outs run on one background
thread while the caller's thread decodes the next frames; on CPUs with
AVX-512 VBMI a window's look-ups, sums and read-out are one vector pass
(:mod:`blursynth._simd`), elsewhere scalar Numba kernels give the same bytes.
Memory is O(window): at most two windows of frames and one accumulator.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._numba import njit
from ._rng import sample_rng
from .errors import BadInputError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mts", ".mpg", ".mpeg", ".wmv")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
CRF_NAMES = ("gamma", "srgb", "none")
# Stream key of the window-length draw in sample_rng(seed, pair_index, WINDOW_STREAM).
WINDOW_STREAM = 1
# Linear light is stored as integers: 1.0 -> LINEAR_SCALE. 2**24 keeps the
# quantisation of one frame below 6e-8 and a sum of 255 frames inside uint32.
LINEAR_SCALE = 1 << 24
_UINT32_MAX_ITEMS = 255


class TruncatedVideoWarning(UserWarning):
    """A video ended early or stopped decoding; the frames before the damage were used."""


# Frames summed per pass by LinearAverager.add_group.
GROUP_FRAMES = 4

# ---------------------------------------------------------------------------------------------
# camera response


def parse_crf(text) -> str:
    """Canonical camera-response spec (``'gamma:2.2'``, ``'srgb'``, ``'none'``); see :mod:`blursynth.color`.

    Examples
    --------
    >>> parse_crf("gamma"), parse_crf("SRGB")
    ('gamma:2.2', 'srgb')
    """
    from .color import CameraResponse

    return CameraResponse.parse(text).spec


def decode_float(x, crf: str) -> np.ndarray:
    """Camera response inverse in float64: encoded [0, 1] -> linear light [0, 1].

    Examples
    --------
    >>> float(decode_float(np.array(0.5), "gamma:2.2").round(4))
    0.2176
    """
    from .color import CameraResponse

    return CameraResponse.parse(crf).decode(np.asarray(x, dtype=np.float64))


def encode_float(y, crf: str) -> np.ndarray:
    """Camera response in float64: linear light [0, 1] -> encoded [0, 1] (clipped).

    Examples
    --------
    >>> float(encode_float(decode_float(np.array(0.3), "srgb"), "srgb").round(6))
    0.3
    """
    from .color import CameraResponse

    return CameraResponse.parse(crf).encode(np.asarray(y, dtype=np.float64))


def linear_lut(crf: str) -> tuple[np.ndarray, int]:
    """Integer decode table: ``lut[v]`` is linear light of 8-bit value ``v`` times ``scale``.

    Returns
    -------
    lut : (256,) uint32 ndarray
    scale : int
        Linear value 1.0; ``lut[255] == scale``. For ``crf='none'`` the table
        is the identity and ``scale`` is 255, so averaging is exact integer
        arithmetic.

    Examples
    --------
    >>> lut, scale = linear_lut("gamma:2.2")
    >>> int(lut[0]), int(lut[255]) == scale
    (0, True)
    """
    if crf == "none":
        return np.arange(256, dtype=np.uint32), 255
    lut = np.rint(decode_float(np.arange(256) / 255.0, crf) * LINEAR_SCALE)
    return lut.astype(np.uint32), LINEAR_SCALE


def encode_thresholds(crf: str, n_items: int) -> np.ndarray:
    """Integer thresholds on a sum of ``n_items`` LUT values for each 8-bit output level.

    The output level of a sum ``S`` is the largest ``k`` with ``S >= T[k]``
    (``T[0] = 0``), which is ``floor(255 * encode(S / (n * scale)) + 1/2)``:
    rounding half up, computed without evaluating ``encode``. For ``none`` the
    thresholds are exact rationals; otherwise they carry float64 rounding
    (relative 1e-16) on top of the LUT quantisation (at most ``n/2`` units of
    ``2**-24``), which moves an output only when the exact value is within
    about 1e-3 of a level's rounding tie.

    Returns
    -------
    T : (257,) uint64 ndarray, non-decreasing
        ``T[256]`` is a sentinel no sum reaches.

    Examples
    --------
    >>> T = encode_thresholds("none", 2)  # sums of two 8-bit values
    >>> T[1:4].tolist()  # a sum of 1 rounds up to 1 (mean 0.5), 3 to 2, 5 to 3
    [1, 3, 5]
    """
    k = np.arange(1, 256, dtype=np.int64)
    if crf == "none":
        t = (n_items * (2 * k - 1) + 1) // 2  # ceil(n (k - 1/2)), in integers
    else:
        t = np.ceil(n_items * LINEAR_SCALE * decode_float((k - 0.5) / 255.0, crf)).astype(np.int64)
    return np.concatenate([[0], t, [np.iinfo(np.int64).max]]).astype(np.uint64)


def _bucket_table(thresholds: np.ndarray, s_max: int):
    """Output level at the start of each bucket of ``sqrt(S)``, fine enough for one comparison.

    Levels are spaced roughly evenly in ``sqrt`` of linear light for the usual
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


@njit
def _add_frame(acc, frame, lut):
    for i in range(acc.size):
        acc[i] += lut[frame[i]]


@njit
def _sub_frame(acc, frame, lut):
    for i in range(acc.size):
        acc[i] -= lut[frame[i]]


@njit
def _set_frame(acc, frame, lut):
    for i in range(acc.size):
        acc[i] = lut[frame[i]]


_READOUT_BLOCK = 4096


@njit
def _encode_sums(acc, scale, base, thresholds, one_step, out):
    # Block by block, so the bucket indices stay in L1: first the bucket of
    # sqrt(S) for the block (float32 sqrt, which vectorises; _bucket_table's
    # margins absorb its rounding), then each level from the bucket's base.
    sc = np.float32(scale)
    top = np.int32(base.size - 1)
    buckets = np.empty(_READOUT_BLOCK, dtype=np.int32)
    for start in range(0, acc.size, _READOUT_BLOCK):
        n = min(_READOUT_BLOCK, acc.size - start)
        block = acc[start:start + n]
        dest = out[start:start + n]
        for i in range(n):
            b = np.int32(math.sqrt(np.float32(block[i])) * sc)
            buckets[i] = b if b < top else top
        if one_step:
            for i in range(n):
                k = base[buckets[i]]
                # thresholds has a sentinel at 256, so k + 1 is always a valid index.
                dest[i] = k + (block[i] >= thresholds[k + 1])
        else:
            for i in range(n):
                k = base[buckets[i]]
                while block[i] >= thresholds[k + 1]:
                    k += 1
                dest[i] = k


@njit
def _sum_group_pairs(acc2, f0, f1, f2, f3, n, first, lut2, encode, scale, base, thresholds, one_step, out):
    # Up to four frames (the first n of f0..f3) added to the sums in one pass,
    # block by block so that a block's sums stay in L1 between frames; with
    # ``encode`` the block is read out to ``out`` instead of stored, so the
    # last group of a window never writes the sums back. Each uint16 of a frame
    # holds two 8-bit values and lut2 maps it to both look-ups at once, one in
    # each uint32 half of a uint64 (little-endian: the halves are sums 2i and
    # 2i + 1); at most 255 frames cannot carry across. Fixed arity (rather than
    # a typed List of frames) keeps the call free of per-process compilation.
    block_pairs = _READOUT_BLOCK // 2
    sums2 = np.empty(block_pairs, dtype=np.uint64)
    buckets = np.empty(_READOUT_BLOCK, dtype=np.int32)
    sc = np.float32(scale)
    top = np.int32(base.size - 1)
    for start in range(0, acc2.size, block_pairs):
        m = min(block_pairs, acc2.size - start)
        a0 = f0[start:start + m]
        if first:
            for i in range(m):
                sums2[i] = lut2[a0[i]]
        else:
            held = acc2[start:start + m]
            for i in range(m):
                sums2[i] = held[i] + lut2[a0[i]]
        if n > 1:
            a1 = f1[start:start + m]
            for i in range(m):
                sums2[i] += lut2[a1[i]]
        if n > 2:
            a2 = f2[start:start + m]
            for i in range(m):
                sums2[i] += lut2[a2[i]]
        if n > 3:
            a3 = f3[start:start + m]
            for i in range(m):
                sums2[i] += lut2[a3[i]]
        if not encode:
            acc2[start:start + m] = sums2[:m]
            continue
        block = sums2[:m].view(np.uint32)
        dest = out[2 * start:2 * (start + m)]
        for i in range(2 * m):
            b = np.int32(math.sqrt(np.float32(block[i])) * sc)
            buckets[i] = b if b < top else top
        if one_step:
            for i in range(2 * m):
                k = base[buckets[i]]
                dest[i] = k + (block[i] >= thresholds[k + 1])
        else:
            for i in range(2 * m):
                k = base[buckets[i]]
                while block[i] >= thresholds[k + 1]:
                    k += 1
                dest[i] = k


class LinearAverager:
    """Running sum of frames in linear light, with an exact 8-bit read-out.

    Parameters
    ----------
    shape : tuple
        Frame shape, e.g. ``(H, W, 3)``.
    crf : str
        Camera response (:func:`parse_crf`).
    max_items : int
        Most frames the sum will hold at once (chooses uint32 or uint64).

    Notes
    -----
    ``acc`` holds the sum only while ``count > 0``: :meth:`reset` just sets
    ``count`` to 0, and the next :meth:`add` overwrites ``acc`` instead of
    adding to it, which saves clearing it.

    Examples
    --------
    >>> avg = LinearAverager((2, 2, 3), "gamma:2.2", max_items=2)
    >>> avg.add(np.zeros((2, 2, 3), np.uint8)); avg.add(np.full((2, 2, 3), 255, np.uint8))
    >>> int(avg.result()[0, 0, 0])  # 255 * 0.5 ** (1 / 2.2), rounded
    186
    """

    def __init__(self, shape, crf: str, max_items: int):
        self.shape = tuple(shape)
        self.crf = crf
        self.lut, self.scale = linear_lut(crf)
        dtype = np.uint32 if max_items <= _UINT32_MAX_ITEMS else np.uint64
        self.lut = self.lut.astype(dtype)
        self.acc = np.zeros(int(np.prod(self.shape)), dtype=dtype)
        self.count = 0
        self._tables = {}
        self._lut2 = None

    def reset(self):
        self.count = 0

    @property
    def vector(self) -> bool:
        """Whether whole windows are summed by the AVX-512 kernel (:mod:`blursynth._simd`)."""
        from . import _simd

        return self.acc.dtype == np.uint32 and _simd.available() and _simd.plane_tables(self.lut) is not None

    def add(self, frame: np.ndarray):
        flat = _flat_u8(frame, self.shape)
        mode = "add" if self.count else "set"
        if not self._vector_sums([flat], mode):
            (_add_frame if self.count else _set_frame)(self.acc, flat, self.lut)
        self.count += 1

    def subtract(self, frame: np.ndarray):
        if self.count < 1:
            raise ValueError("no frames to subtract from")
        flat = _flat_u8(frame, self.shape)
        if not self._vector_sums([flat], "sub"):
            _sub_frame(self.acc, flat, self.lut)
        self.count -= 1

    def _vector_sums(self, flats, mode: str) -> bool:
        from . import _simd

        if self.acc.dtype != np.uint32 or not _simd.window_sums(flats, self.lut, self.acc, mode):
            return False
        if mode == "sub":
            self._scalar_tail(subs=flats)
        else:
            self._scalar_tail(adds=flats, fresh=mode == "set")
        return True

    def _scalar_tail(self, adds=(), subs=(), fresh: bool = False):
        """The sums after the vector kernel's whole 64-byte vectors, by the scalar kernels.

        Both sum the same integers, so the bytes match. ``fresh``: the first of
        ``adds`` replaces the held sums. Returns ``(start, sums)`` of the tail.
        """
        from . import _simd

        m = self.acc.size // _simd.VECTOR_BYTES * _simd.VECTOR_BYTES
        tail = self.acc[m:]
        if tail.size:
            for flat in subs:
                _sub_frame(tail, flat[m:], self.lut)
            for j, flat in enumerate(adds):
                (_set_frame if fresh and j == 0 else _add_frame)(tail, flat[m:], self.lut)
        return m, tail

    def slide(self, entering, leaving) -> np.ndarray:
        """Subtract ``leaving``, add ``entering`` and return :meth:`result`; one pass where :attr:`vector`.

        The frames of a window that overlaps the previous one: the bytes are
        those of :meth:`subtract`, :meth:`add` and :meth:`result` in turn.

        Examples
        --------
        >>> avg = LinearAverager((1, 1, 3), "none", max_items=2)
        >>> f = [np.full((1, 1, 3), v, np.uint8) for v in (2, 4, 8)]
        >>> avg.slide(f[:2], [])[0, 0].tolist(), avg.slide(f[2:], f[:1])[0, 0].tolist()
        ([3, 3, 3], [6, 6, 6])
        """
        from . import _simd

        count = self.count + len(entering) - len(leaving)
        if len(leaving) > self.count or not 1 <= count or (self.acc.dtype == np.uint32 and count > _UINT32_MAX_ITEMS):
            raise ValueError(f"cannot hold {count} frames after {len(leaving)} leave {self.count}")
        if not self.vector:
            for f in leaving:
                self.subtract(f)
            for f in entering:
                self.add(f)
            return self.result()
        if self.count == 0:
            self.acc[:] = 0  # an empty averager's sums are stale
        adds = [_flat_u8(f, self.shape) for f in entering]
        subs = [_flat_u8(f, self.shape) for f in leaving]
        thresholds, base, scale, one_step, steps = self._table(count)
        out = np.empty(self.acc.size, dtype=np.uint8)
        if not _simd.window_slide(adds, subs, self.lut, steps, self.acc, out):
            raise RuntimeError("the vector kernel declined a window it was chosen for")
        self.count = count
        m, tail = self._scalar_tail(adds=adds, subs=subs)
        _encode_sums(tail, scale, base, thresholds, one_step, out[m:])
        return out.reshape(self.shape)

    def _vector_average(self, flats) -> np.ndarray:
        from . import _simd

        thresholds, base, scale, one_step, steps = self._table(len(flats))
        out = np.empty(self.acc.size, dtype=np.uint8)
        if not _simd.window_levels(flats, self.lut, steps, out):
            raise RuntimeError("the vector kernel declined a window it was chosen for")
        m, tail = self._scalar_tail(adds=flats, fresh=True)
        _encode_sums(tail, scale, base, thresholds, one_step, out[m:])
        return out.reshape(self.shape)

    def result(self) -> np.ndarray:
        """The average of the frames held, encoded to uint8 ``shape``."""
        from . import _simd

        if self.count < 1:
            raise ValueError("no frames to average")
        thresholds, base, scale, one_step, steps = self._table(self.count)
        out = np.empty(self.acc.size, dtype=np.uint8)
        m = 0
        if steps is not None and _simd.levels(self.acc, steps, out):
            m = self.acc.size // _simd.VECTOR_BYTES * _simd.VECTOR_BYTES
        if m < self.acc.size:
            _encode_sums(self.acc[m:], scale, base, thresholds, one_step, out[m:])
        return out.reshape(self.shape)

    def average(self, frames) -> np.ndarray:
        """The average of ``frames`` alone, encoded to uint8 ``shape``; the same bytes as adding them.

        Empties the running sum (as :meth:`reset`). Where :attr:`vector` holds,
        the whole window is summed and read out in one pass of the AVX-512
        kernel, its sums never stored; otherwise, with uint32 sums and an even
        number of values, the frames are summed four at a time and the last
        four are read out without storing their sums.

        Parameters
        ----------
        frames : sequence of ``shape`` uint8 ndarray
            At most ``max_items`` frames.

        Examples
        --------
        >>> avg = LinearAverager((2, 2, 3), "none", max_items=2)
        >>> avg.average([np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 9, np.uint8)])[0, 0].tolist()
        [5, 5, 5]
        """
        frames = list(frames)
        if not frames:
            raise ValueError("frames must hold at least one frame")
        if self.acc.dtype == np.uint32 and len(frames) > _UINT32_MAX_ITEMS:
            raise ValueError(f"at most {_UINT32_MAX_ITEMS} frames fit this averager's sums; got {len(frames)}.")
        self.reset()
        if self.vector:
            return self._vector_average([_flat_u8(f, self.shape) for f in frames])
        while len(frames) > GROUP_FRAMES:
            self.add_group(frames[:GROUP_FRAMES])
            frames = frames[GROUP_FRAMES:]
        return self.add_group(frames, encode=True)

    def add_group(self, frames, *, encode: bool = False):
        """Add up to :data:`GROUP_FRAMES` frames in one pass; with ``encode``, return :meth:`result`.

        With ``encode`` the sums of this last group are read out without being
        stored, so the averager must be reset before it is used again.

        Examples
        --------
        >>> avg = LinearAverager((2, 2, 3), "none", max_items=3)
        >>> avg.add_group([np.full((2, 2, 3), v, np.uint8) for v in (1, 2, 6)], encode=True)[0, 0].tolist()
        [3, 3, 3]
        """
        if not 1 <= len(frames) <= GROUP_FRAMES:
            raise ValueError(f"a group holds 1 to {GROUP_FRAMES} frames; got {len(frames)}.")
        if self.vector and self._vector_sums([_flat_u8(f, self.shape) for f in frames],
                                             "add" if self.count else "set"):
            self.count += len(frames)
            if not encode:
                return None
            out = self.result()
            self.count = 0
            return out
        if self.acc.dtype != np.uint32 or self.acc.size % 2 or not np.little_endian:
            for f in frames:
                self.add(f)
            return self.result() if encode else None
        if self._lut2 is None:
            # Entry (high byte << 8 | low byte): lut[low] | lut[high] << 32, built by
            # broadcasting so that no temporary of the table's size is made.
            lut64 = self.lut.astype(np.uint64)
            self._lut2 = ((lut64[:, None] << np.uint64(32)) | lut64[None, :]).reshape(-1)
        halves = []
        for f in frames:
            flat = _flat_u8(f, self.shape)
            if flat.ctypes.data % 2:  # a uint16 view needs 2-byte alignment
                flat = flat.copy()
            halves.append(flat.view(np.uint16))
        halves += [halves[0]] * (GROUP_FRAMES - len(halves))  # unused slots, never read
        count = self.count + len(frames)
        thresholds, base, scale, one_step, _ = self._table(count)
        out = np.empty(self.acc.size if encode else 0, dtype=np.uint8)
        _sum_group_pairs(self.acc.view(np.uint64), *halves, len(frames), self.count == 0, self._lut2, encode,
                         scale, base, thresholds, one_step, out)
        self.count = 0 if encode else count
        return out.reshape(self.shape) if encode else None

    def _table(self, count):
        table = self._tables.get(count)
        if table is None:
            thresholds = encode_thresholds(self.crf, count)
            base, scale, one_step = _bucket_table(thresholds, count * self.scale)
            # The sentinel must stay above every sum in the accumulator's dtype.
            thresholds = np.minimum(thresholds, np.iinfo(self.acc.dtype).max).astype(self.acc.dtype)
            steps = None
            if self.acc.dtype == np.uint32:  # the vector read-out's tables (tiny; used where it runs)
                from . import _simd

                steps = _simd.step_tables(thresholds)
            table = self._tables[count] = (thresholds, base, scale, one_step, steps)
        return table


def _flat_u8(frame, shape):
    if frame.shape != shape or frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 {shape}; got {frame.dtype} {frame.shape}.")
    return frame.reshape(-1) if frame.flags.c_contiguous else np.ascontiguousarray(frame).reshape(-1)


def average_frames(frames, crf: str = "gamma:2.2") -> np.ndarray:
    """Average uint8 frames in linear light and encode back (exact; see module notes).

    Parameters
    ----------
    frames : sequence of (H, W, C) uint8 ndarray
    crf : str

    Returns
    -------
    blurred : (H, W, C) uint8 ndarray

    Examples
    --------
    >>> f = [np.full((1, 1, 3), v, np.uint8) for v in (10, 20)]
    >>> average_frames(f, "none")[0, 0].tolist()
    [15, 15, 15]
    """
    frames = list(frames)
    if not frames:
        raise ValueError("frames must hold at least one frame")
    avg = LinearAverager(frames[0].shape, crf, max_items=len(frames))
    for f in frames:
        avg.add(f)
    return avg.result()


# ---------------------------------------------------------------------------------------------
# frame sources


@dataclass(frozen=True)
class SourceInfo:
    """What a frame source holds.

    Attributes
    ----------
    path : str
    kind : {'video', 'frames'}
    n_frames : int
        Frames declared (a damaged video may hold fewer).
    fps : float
        Capture rate (``--fps`` when given, else the container's).
    height, width : int
    files : tuple of str
        Frame files in order (folders only).
    """

    path: str
    kind: str
    n_frames: int
    fps: float
    height: int
    width: int
    files: tuple = ()


_GRAY_PIX = ("gray", "ya", "mono", "y400")


def probe_source(path, *, fps: float | None = None) -> SourceInfo:
    """Check a video file or numbered-frame folder and describe it, without decoding it all.

    Parameters
    ----------
    path : str or Path
        A video file ffmpeg can read, or a folder of numbered frames
        (``000001.png``, ``frame_0002.png``, ...; numbering must not skip).
    fps : float, optional
        Capture rate to use instead of the container's (required for folders).

    Returns
    -------
    info : SourceInfo

    Raises
    ------
    BadInputError
        Missing path, not a video, grayscale, no frame rate, gaps in the
        numbering or mixed frame sizes.

    Examples
    --------
    >>> probe_source("missing.mp4")
    Traceback (most recent call last):
    ...
    blursynth.errors.BadInputError: video 'missing.mp4' does not exist; give a video file or a folder of numbered frames.
    """
    p = Path(path)
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise BadInputError(f"--fps must be a positive number of frames per second; got {fps!r}.")
    if not p.exists():
        raise BadInputError(f"video '{path}' does not exist; give a video file or a folder of numbered frames.")
    if p.is_dir():
        return _probe_folder(p, fps)
    return _probe_video(p, fps)


def _probe_video(p: Path, fps):
    import av

    try:
        container = av.open(str(p))
    except Exception as exc:  # av raises many error types for the same problem
        if _mp4_cut_before_index(p):
            raise BadInputError(
                f"'{p}' was cut short before its index (an MP4/MOV whose 'moov' box comes after the "
                "frames, and is missing), so no frame can be located; copy the file again, or write "
                "videos with the index first (ffmpeg -movflags +faststart) so a cut copy still reads."
            ) from None
        raise BadInputError(
            f"'{p}' is not a video ffmpeg can read ({type(exc).__name__}: {_short(exc)}); "
            "expected e.g. an .mp4 or .mkv file."
        ) from None
    try:
        if not container.streams.video:
            raise BadInputError(f"'{p}' has no video stream; expected a video file.")
        if container.format.name.endswith("_pipe") or container.format.name == "image2":
            raise BadInputError(
                f"'{p}' is a single image, not a video; put numbered frames in a folder and pass the folder."
            )
        stream = container.streams.video[0]
        pix = stream.codec_context.pix_fmt or ""
        if pix.startswith(_GRAY_PIX):
            raise BadInputError(
                f"video '{p}' is grayscale (pixel format {pix}); frames-average needs colour video. "
                "Convert it, e.g. ffmpeg -i in -pix_fmt yuv420p out.mp4."
            )
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        if fps is None:
            if not rate or float(rate) <= 0:
                raise BadInputError(f"video '{p}' declares no frame rate; pass --fps (e.g. --fps 240).")
            fps = float(rate)
        n = stream.frames
        if not n:
            # Containers such as Matroska do not store a count: count packets (no decoding),
            # noting where the last one ends, to tell a cut copy by its declared duration.
            n, end = 0, None
            for pkt in container.demux(stream):
                if pkt.size:
                    n += 1
                    if pkt.pts is not None:
                        stop = pkt.pts + (pkt.duration or 0)
                        end = stop if end is None else max(end, stop)
            _warn_if_cut_short(p, container, stream, n, end)
        width, height = stream.codec_context.width, stream.codec_context.height
    finally:
        container.close()
    if n < 1 or not width or not height:
        raise BadInputError(f"video '{p}' holds no frames; expected a video with at least one frame.")
    return SourceInfo(str(p), "video", int(n), float(fps), int(height), int(width))


def _warn_if_cut_short(p: Path, container, stream, n: int, end) -> None:
    """Warn when a video's frames end well before its declared duration (a cut copy).

    ``end`` is where the last packet ends, in the stream's time base; time is
    compared rather than frame counts, so neither ``--fps`` nor a variable
    frame rate can raise a false alarm.
    """
    if end is None or not stream.time_base or len(container.streams) != 1:
        return  # no timestamps, or an audio track that may well outlast the picture
    if stream.duration:
        declared = float(stream.duration * stream.time_base)
    elif container.duration:
        declared = container.duration / 1e6  # microseconds
    else:
        return
    start = float((stream.start_time or 0) * stream.time_base)
    held = float(end * stream.time_base) - start
    per_frame = held / n if n else 0.0
    if declared - held > max(0.02 * declared, 2 * per_frame):
        warnings.warn(
            f"video '{p}' declares {declared:.3g} s but its {n} frames end at {held:.3g} s; it may have "
            "been cut short. Pairs come from the frames present.",
            TruncatedVideoWarning, stacklevel=3,
        )


def _mp4_cut_before_index(p: Path) -> bool:
    """Whether ``p`` is an ISO media file with its frames ('mdat') and no index ('moov') before its end.

    Either the 'mdat' box runs past the end of the file (a copy cut short) or
    the file ends after it (a recording stopped before the index was written).
    """
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            pos, seen = 0, set()
            for _ in range(10_000):  # a real file has a handful of top-level boxes
                if pos + 8 > size:
                    # The end, and no index: as a recorder stopped mid-write leaves it (mdat size 0).
                    return b"ftyp" in seen and b"mdat" in seen
                f.seek(pos)
                head = f.read(16)
                box_size, kind = int.from_bytes(head[:4], "big"), head[4:8]
                if box_size == 1 and len(head) == 16:
                    box_size = int.from_bytes(head[8:16], "big")
                seen.add(kind)
                if kind == b"moov":
                    return False
                if box_size < 8:  # 0 means "to the end of the file"
                    box_size = size - pos if box_size == 0 else -1
                    if box_size < 0:
                        return False
                if pos + box_size > size:
                    return kind == b"mdat" and b"ftyp" in seen
                pos += box_size
    except OSError:
        return False
    return False


def _short(exc) -> str:
    return " ".join(str(exc).split())[:160]


_NUMBER = re.compile(r"(\d+)$")


def _probe_folder(p: Path, fps):
    from PIL import Image

    files = [f for f in p.iterdir() if f.is_file() and f.suffix.lower() in FRAME_SUFFIXES]
    if not files:
        raise BadInputError(f"folder '{p}' holds no frames; expected numbered images (000001.png, ...).")
    numbered = []
    for f in files:
        m = _NUMBER.search(f.stem)
        if not m:
            raise BadInputError(
                f"frame '{f}' has no number at the end of its name; expected numbered frames (000001.png, ...)."
            )
        numbered.append((int(m.group(1)), f))
    numbered.sort()
    numbers = [n for n, _ in numbered]
    if len(set(numbers)) != len(numbers):
        dup = next(a for a, b in zip(numbers, numbers[1:]) if a == b)
        raise BadInputError(f"folder '{p}' has two frames numbered {dup}; keep one file per number.")
    for a, b in zip(numbers, numbers[1:]):
        if b != a + 1:
            raise BadInputError(
                f"folder '{p}': frame numbering jumps from {a} to {b} ({b - a - 1} missing); "
                "frames must be consecutive."
            )
    size = None
    for _, f in numbered:
        try:
            with Image.open(f) as im:
                this, mode = im.size, im.mode
        except Exception as exc:
            raise BadInputError(f"frame '{f}' is not a readable image ({_short(exc)}).") from None
        if mode in ("1", "L", "LA", "I", "I;16", "I;16B", "F", "La"):
            raise BadInputError(f"frame '{f}' is grayscale (mode {mode}); frames-average needs colour frames.")
        if size is None:
            size = this
        elif this != size:
            raise BadInputError(
                f"folder '{p}': frame '{f.name}' is {this[0]}x{this[1]} but earlier frames are "
                f"{size[0]}x{size[1]}; all frames must have one size."
            )
    if fps is None:
        raise BadInputError(f"folder '{p}' does not record a frame rate; pass --fps (e.g. --fps 240).")
    return SourceInfo(str(p), "frames", len(numbered), float(fps), size[1], size[0],
                      tuple(str(f) for _, f in numbered))


def iter_frames(info: SourceInfo, start: int = 0, stop: int | None = None):
    """Yield ``(index, frame)`` for frames ``start .. stop - 1``, decoding one at a time.

    Parameters
    ----------
    info : SourceInfo
    start, stop : int
        Frame range; ``stop`` defaults to the end.

    Yields
    ------
    index : int
    frame : (H, W, 3) uint8 ndarray, RGB

    Warns
    -----
    TruncatedVideoWarning
        The video stopped decoding (or ended) before ``stop``; frames up to the
        last good one were yielded.

    Examples
    --------
    >>> import tempfile
    >>> from blursynth.render import write_video
    >>> path = Path(tempfile.mkdtemp()) / "c.mkv"
    >>> write_video([np.full((8, 8, 3), 20 * i, np.uint8) for i in range(5)], path, fps=240)
    5
    >>> info = probe_source(path)
    >>> info.n_frames, info.fps
    (5, 240.0)
    >>> [(i, int(f[0, 0, 0])) for i, f in iter_frames(info, 2, 4)]
    [(2, 40), (3, 60)]
    """
    stop = info.n_frames if stop is None else min(stop, info.n_frames)
    if start >= stop:
        return
    if info.kind == "frames":
        yield from _iter_folder(info, start, stop)
    else:
        yield from _iter_video(info, start, stop)


#: Frame files read ahead of the one being handed out, by this many reader threads.
_FOLDER_READ_AHEAD = 4
_FOLDER_READERS = 2


def _read_frame_file(path, height, width):
    import cv2

    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    if bgr.shape[:2] != (height, width):
        raise BadInputError(f"frame '{path}' changed size while reading.")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _iter_folder(info, start, stop):
    # Image decoders run one thread per image and release the GIL, so a few
    # files are decoded ahead on reader threads (in order; at most
    # _FOLDER_READ_AHEAD frames beyond the current one are held).
    from concurrent.futures import ThreadPoolExecutor

    # Imported here, whole, before the reader threads need it: two threads importing OpenCV for
    # the first time at once can see a half-initialised module (no cv2.imread), which happened
    # when a video came before a frame folder in one run.
    importlib.import_module("cv2")

    pool = ThreadPoolExecutor(max_workers=_FOLDER_READERS, thread_name_prefix="blursynth-read")
    pending = deque()
    try:
        nxt = start
        while nxt < stop or pending:
            while nxt < stop and len(pending) <= _FOLDER_READ_AHEAD:
                pending.append((nxt, pool.submit(_read_frame_file, info.files[nxt], info.height,
                                                 info.width)))
                nxt += 1
            i, job = pending.popleft()
            frame = job.result()
            if frame is None:
                warnings.warn(
                    f"frame '{info.files[i]}' could not be decoded; stopping at frame {i}.",
                    TruncatedVideoWarning, stacklevel=2,
                )
                return
            yield i, frame
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _iter_video(info, start, stop):
    # PyAV with frame threading decoded 720p H.264 at 426 frames/s here against
    # OpenCV's 254 (RGB output); see benchmarks/RESULTS.md, "Frame averaging".
    import av

    container = av.open(info.path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames, index = _positioned(container, stream, start)
        if frames is None:  # the seek could not be trusted: decode from the beginning
            container.close()
            container = av.open(info.path)
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames, index = container.decode(stream), 0
        while index < stop:
            try:
                frame = next(frames)
            except StopIteration:
                warnings.warn(
                    f"video '{info.path}' ended at frame {index} of {info.n_frames} declared; "
                    "pairs up to there were kept.", TruncatedVideoWarning, stacklevel=2,
                )
                return
            except (av.error.FFmpegError, ValueError) as exc:
                warnings.warn(
                    f"video '{info.path}' stopped decoding at frame {index} of {info.n_frames} "
                    f"({_short(exc)}); pairs up to there were kept.", TruncatedVideoWarning, stacklevel=2,
                )
                return
            if index >= start:
                # One scaler thread: libswscale's own threads (its default) fight the decoder's
                # frame threads and the averaging thread for two cores; converting on this
                # thread alone decoded a 720p clip 1.2x faster here, with the same bytes.
                yield index, frame.reformat(format="rgb24", threads=1).to_ndarray()
            index += 1
    finally:
        container.close()


def _frame_index(frame, stream):
    start_pts = stream.start_time or 0
    rate = stream.average_rate or stream.guessed_rate
    return int(round(float((frame.pts - start_pts) * stream.time_base * rate)))


def _positioned(container, stream, start):
    """A frame iterator placed at or before frame ``start``, and the index of its next frame.

    Seeks to the key frame before ``start`` and reads the index off the first
    decoded frame's timestamp. Returns ``(None, None)`` when that cannot be
    trusted (no timestamps, or the seek landed after ``start``).
    """
    import itertools

    frames = container.decode(stream)
    if start == 0:
        return frames, 0
    rate = stream.average_rate or stream.guessed_rate
    if not rate or stream.time_base is None:
        return None, None
    # Aim one frame early so rounding of timestamps cannot land the seek after ``start``.
    target = int((stream.start_time or 0) + math.floor((start - 1) / rate / stream.time_base))
    try:
        container.seek(max(target, stream.start_time or 0), stream=stream, backward=True, any_frame=False)
        frames = container.decode(stream)
        first = next(frames)
    except Exception:
        return None, None
    if first.pts is None:
        return None, None
    index = _frame_index(first, stream)
    if index > start or index < 0:
        return None, None
    return itertools.chain([first], frames), index


# ---------------------------------------------------------------------------------------------
# window planning


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


# ---------------------------------------------------------------------------------------------
# optical-flow interpolation


def interpolate_frames(a: np.ndarray, b: np.ndarray, k: int) -> list[np.ndarray]:
    """``k - 1`` frames between ``a`` and ``b`` at times ``1/k .. (k-1)/k``, by optical flow.

    Flow both ways comes from OpenCV's DIS estimator. Each in-between frame
    forward-splats ``a`` along ``t * flow_ab`` and ``b`` along
    ``(1 - t) * flow_ba`` with bilinear weights, blends them ``(1 - t) : t``,
    and where nothing landed falls back to the plain cross-fade. The real
    frames are not changed. Frames under 16 px a side are cross-faded.

    Parameters
    ----------
    a, b : (H, W, 3) uint8 ndarray
    k : int
        Interpolation factor (>= 1; 1 returns no frames).

    Returns
    -------
    frames : list of (H, W, 3) uint8 ndarray

    Examples
    --------
    >>> a = np.zeros((16, 16, 3), np.uint8); b = a.copy()
    >>> len(interpolate_frames(a, b, 4))
    3
    """
    if k <= 1:
        return []
    import cv2

    if min(a.shape[:2]) < 16:
        # DIS needs at least 12 px a side; frames this small get a plain cross-fade.
        flow_ab = flow_ba = np.zeros(a.shape[:2] + (2,), np.float64)
    else:
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
        gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
        flow_ab = dis.calc(ga, gb, None).astype(np.float64)
        flow_ba = dis.calc(gb, ga, None).astype(np.float64)
    fa, fb = a.astype(np.float64), b.astype(np.float64)
    out = []
    for m in range(1, k):
        t = m / k
        acc = np.zeros(a.shape, np.float64)
        weight = np.zeros(a.shape[:2], np.float64)
        _splat_frame(fa, flow_ab, t, 1.0 - t, acc, weight)
        _splat_frame(fb, flow_ba, 1.0 - t, t, acc, weight)
        fade = (1.0 - t) * fa + t * fb
        w = weight[..., None]
        mid = np.where(w > 1e-3, acc / np.maximum(w, 1e-12), fade)
        out.append(np.clip(np.rint(mid), 0, 255).astype(np.uint8))
    return out


@njit
def _splat_frame(img, flow, t, blend, acc, weight):
    h, w = weight.shape
    for y in range(h):
        for x in range(w):
            tx = x + t * flow[y, x, 0]
            ty = y + t * flow[y, x, 1]
            x0 = math.floor(tx)
            y0 = math.floor(ty)
            dx = tx - x0
            dy = ty - y0
            for j in range(2):
                yy = y0 + j
                if yy < 0 or yy >= h:
                    continue
                wy = dy if j else 1.0 - dy
                for i in range(2):
                    xx = x0 + i
                    if xx < 0 or xx >= w:
                        continue
                    wt = blend * wy * (dx if i else 1.0 - dx)
                    if wt == 0.0:
                        continue
                    weight[yy, xx] += wt
                    for c in range(img.shape[2]):
                        acc[yy, xx, c] += wt * img[y, x, c]


def expanded_frames(frames, k: int):
    """Insert ``k - 1`` interpolated frames between consecutive frames of a stream.

    ``frames`` yields ``(index, frame)`` with consecutive indices; this yields
    ``(t, frame)`` with ``t = index * k`` for real frames and ``t = index * k + m``
    for the m-th frame after it. With ``k == 1`` the stream passes through.

    Examples
    --------
    >>> frames = [(i, np.full((8, 8, 3), 10 * i, np.uint8)) for i in range(3)]
    >>> [t for t, _ in expanded_frames(iter(frames), 2)]
    [0, 1, 2, 3, 4]
    """
    if k <= 1:
        yield from frames
        return
    prev = None
    for i, f in frames:
        if prev is not None:
            for m, g in enumerate(interpolate_frames(prev[1], f, k), start=1):
                yield prev[0] * k + m, g
        yield i * k, f
        prev = (i, f)


# ---------------------------------------------------------------------------------------------
# averaging windows of a stream


def average_windows(stream, windows, *, crf: str, interpolate: int = 1):
    """Average each window of a frame stream with one running sum.

    Parameters
    ----------
    stream : iterator of (index, (H, W, 3) uint8 ndarray)
        Consecutive real frames, starting at or before the first window.
    windows : sequence of Window
        Sorted by start, with non-decreasing stops (as :func:`plan_windows` makes).
    crf : str
    interpolate : int
        Interpolation factor K; a window of n real frames averages
        ``(n - 1) K + 1`` frames.

    Yields
    ------
    window : Window
    blurred, sharp : (H, W, 3) uint8 ndarray

    Notes
    -----
    Frames leaving the window are subtracted and entering ones added, so a
    frame shared by overlapping windows is decoded and converted once; the sum
    is an integer, so this equals re-summing exactly (with the vector kernel,
    one pass per window: :meth:`LinearAverager.slide`). A window sharing no
    frame with its neighbours (the default layout) is instead summed whole
    (:meth:`LinearAverager.average`: one vector pass, or
    :data:`GROUP_FRAMES` frames per scalar pass), which gives the same bytes.
    At most two windows of frames are held.

    Examples
    --------
    >>> frames = [np.full((2, 2, 3), 10 * i, np.uint8) for i in range(9)]
    >>> wins = plan_windows([9], window_min=3, window_max=3, seed=0, overlap=1)
    >>> [(w.start, int(b[0, 0, 0]), int(s[0, 0, 0]))
    ...  for w, b, s in average_windows(enumerate(frames), wins, crf="none")]
    [(0, 10, 10), (2, 30, 30), (4, 50, 50), (6, 70, 70)]
    """
    from concurrent.futures import ThreadPoolExecutor

    k = max(1, int(interpolate))
    items = expanded_frames(stream, k)
    # The look-ups, sums and read-outs run on one background thread, in the
    # order they are submitted (so the bytes are those of doing them inline),
    # while this thread decodes the next frames: the Numba kernels release the
    # GIL, and the decoder otherwise sits idle while a frame is summed. A
    # window's pair is yielded once the next window's frames are queued, so
    # at most two windows of frames are alive.
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blursynth-average")
    try:
        yield from _average_windows_on(worker, items, windows, crf, k)
    finally:
        worker.shutdown(wait=True, cancel_futures=True)


def _average_windows_on(worker, items, windows, crf, k):
    held = deque()  # (t, frame) for t in [lo, hi), kept only while a later window overlaps
    averager = None
    hi = None
    pending = None  # (window, futures of its work, sharp frame)
    for n, win in enumerate(windows):
        a, b = win.start * k, (win.stop - 1) * k + 1
        # Frames need holding (to subtract later) only if the next window overlaps this one.
        keep = n + 1 < len(windows) and windows[n + 1].start * k < b
        if averager is None:
            max_items = max(w.length for w in windows) * k
            first_t, first = _next_at_or_after(items, a)
            if first is None:
                break
            averager = LinearAverager(first.shape, crf, max_items)
            # The vector kernel sums a whole window in one pass; the scalar one four frames per pass.
            vector = averager.vector
            queued = (first_t, first)
            hi = a
        else:
            queued = None
        work = []
        # With the vector kernel a window that overlaps the previous one is one pass
        # (LinearAverager.slide): its leaving and entering frames are collected first.
        leaving, entering = [], []
        if held and a >= hi:
            held.clear()
            work.append(worker.submit(averager.reset))
        while held and held[0][0] < a:
            if vector:
                leaving.append(held.popleft()[1])
            else:
                work.append(worker.submit(averager.subtract, held.popleft()[1]))
        if not held:
            leaving.clear()  # the reset forgets them anyway
            work.append(worker.submit(averager.reset))
            hi = a
        # A window that shares no frame with its neighbours is summed a few frames
        # per pass (LinearAverager.add_group), its last group read out directly.
        alone = not held and not keep
        group = []
        sharp = next((f.copy() for t, f in held if t == win.sharp * k), None)
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
            if alone:
                if len(group) == GROUP_FRAMES and not vector:
                    work.append(worker.submit(averager.add_group, group))
                    group = []
                group.append(f)
            elif vector:
                entering.append(f)
            else:
                work.append(worker.submit(averager.add, f))
            if keep:
                held.append((t, f))
            if t == win.sharp * k:
                sharp = f.copy()
            hi = t + 1
        if not complete:
            break
        if alone and vector:
            work.append(worker.submit(averager.average, group))
        elif alone:
            work.append(worker.submit(averager.add_group, group, encode=True))
        elif vector:
            work.append(worker.submit(averager.slide, entering, leaving))
        else:
            work.append(worker.submit(averager.result))
        group = entering = leaving = None  # the job holds them; none outlive it here
        if pending is not None:
            yield _finished(pending)
        pending = (win, work, sharp)
    if pending is not None:
        yield _finished(pending)


def _finished(pending):
    win, work, sharp = pending
    for job in work:
        job.result()  # re-raises an error from the background thread here
    return win, work[-1].result(), sharp


def _next_at_or_after(items, t0):
    for t, f in items:
        if t >= t0:
            return t, f
    return None, None


# ---------------------------------------------------------------------------------------------
# pairs: planning a run, making rows, rebuilding one pair


@dataclass(frozen=True)
class FramesAverageSettings:
    """Settings of ``blursynth frames-average`` (everything that decides the bytes but the inputs).

    Attributes
    ----------
    window_min, window_max : int
        Window length range in real frames (one value: ``window_min == window_max``).
    seed : int
    overlap, gap : int
        Frames shared by / skipped between consecutive windows.
    odd_only : bool
    crf : str
    interpolate : int
        K: K - 1 flow-interpolated frames between consecutive real frames.
    fps : float or None
        Declared capture rate (overrides the container).
    max_pairs : int or None
    png_level : int or None
        None for fpng, 0-9 for zlib.
    shard_size : int
    """

    window_min: int = 7
    window_max: int = 7
    seed: int = 0
    overlap: int = 0
    gap: int = 0
    odd_only: bool = False
    crf: str = "gamma:2.2"
    interpolate: int = 1
    fps: float | None = None
    max_pairs: int | None = None
    png_level: int | None = None
    shard_size: int = 256


def expand_inputs(paths) -> list[str]:
    """Frame sources named by ``paths``: video files, frame folders, or folders of either.

    A folder holding images is one numbered-frame source; otherwise its videos
    and its sub-folders holding images (the GoPro_Large_all layout) are taken,
    sorted by name.
    """
    return [path for path, _ in expand_inputs_named(paths)]


def expand_inputs_named(paths) -> list[tuple[str, str]]:
    """Like :func:`expand_inputs`, each source with a name that does not depend on where it is.

    The name is the source's path relative to the folder holding the input it
    came from: ``clip.mp4`` for an input ``/data/clip.mp4``, ``GoPro/GOPR0372``
    for the sub-folder ``GOPR0372`` of an input ``/data/GoPro``.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / "clip.mkv").write_bytes(b"")
    0
    >>> [name for _, name in expand_inputs_named([d / "clip.mkv"])]
    ['clip.mkv']
    """
    sources = []
    for path in paths:
        p = Path(path)
        if not p.is_dir() or _has_frames(p):
            sources.append((str(p), _base_name(p)))
            continue
        found = sorted(
            [f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES]
            + [d for d in p.iterdir() if d.is_dir() and _has_frames(d)]
        )
        if not found:
            raise BadInputError(
                f"folder '{p}' holds no videos, frames or frame folders; expected e.g. clip.mp4 or 000001.png."
            )
        sources.extend((str(f), f"{_base_name(p)}/{f.name}") for f in found)
    if not sources:
        raise BadInputError("no input given; pass a video file or a folder of frames.")
    seen = {}
    for path, _ in sources:
        key = os.path.realpath(path)
        if key in seen:
            raise BadInputError(
                f"'{path}' is given twice (also as '{seen[key]}'), which would repeat its pairs; "
                "pass each video or frame folder once.")
        seen[key] = path
    return sources


def _base_name(p: Path) -> str:
    # "." or "..": the folder's own name, which (unlike the path) is the same from any directory.
    return p.name if p.name not in ("", "..") else Path(os.path.abspath(p)).name


def _has_frames(folder: Path) -> bool:
    return any(f.suffix.lower() in FRAME_SUFFIXES for f in folder.iterdir() if f.is_file())


@dataclass(frozen=True)
class FramesPlan:
    """A checked run: sources, windows and fingerprint, before anything is written."""

    sources: tuple
    windows: tuple
    settings: FramesAverageSettings
    fingerprint: str
    positions: tuple = ()  # per source: (n_frames, 2) camera path from a render-clip sidecar, or None
    names: tuple = ()  # per source: its location-free name (see expand_inputs_named)

    @property
    def n_frames(self) -> int:
        """Real frames decoded to make every pair: each source's span from first to last window."""
        spans = {}
        for w in self.windows:
            lo, hi = spans.get(w.source, (w.start, w.stop))
            spans[w.source] = (min(lo, w.start), max(hi, w.stop))
        return sum(hi - lo for lo, hi in spans.values())


def plan_frames_average(inputs, settings: FramesAverageSettings) -> FramesPlan:
    """Probe every input and lay out the windows; raises BadInputError before any output exists.

    Parameters
    ----------
    inputs : sequence of str or Path
        Videos, frame folders, or folders of those.
    settings : FramesAverageSettings

    Returns
    -------
    plan : FramesPlan
    """
    from .config import fingerprint

    if settings.window_min < 2 or settings.window_max < settings.window_min:
        raise BadInputError(
            f"window lengths must satisfy 2 <= min <= max; got {settings.window_min}-{settings.window_max}."
        )
    if not 1 <= settings.interpolate <= 16:
        raise BadInputError(f"--interpolate must be in 1..16; got {settings.interpolate}.")
    crf = parse_crf(settings.crf)
    named = expand_inputs_named(inputs)
    sources = tuple(probe_source(p, fps=settings.fps) for p, _ in named)
    names = tuple(name for _, name in named)
    for info in sources:
        if info.n_frames < settings.window_min:
            raise BadInputError(
                f"'{info.path}' has {info.n_frames} frames, fewer than the shortest window "
                f"({settings.window_min}); use a shorter --window or a longer video."
            )
    windows = plan_windows(
        [s.n_frames for s in sources], window_min=settings.window_min, window_max=settings.window_max,
        seed=settings.seed, overlap=settings.overlap, gap=settings.gap, odd_only=settings.odd_only,
        max_pairs=settings.max_pairs,
    )
    if not windows:
        first = window_length(settings.seed, 0, settings.window_min, settings.window_max, settings.odd_only)
        longest = max(s.n_frames for s in sources)
        raise BadInputError(
            f"no window fits in the inputs: the first pair drew {first} frames (--window "
            f"{settings.window_min}-{settings.window_max}) and the longest input has {longest}; "
            f"keep --window's maximum at or below {longest}."
        )
    # The inputs by content identity (name, kind, frames, geometry, bytes), never by where they
    # are: the fingerprint goes into every row, so a path here would make the same run from
    # another directory write other bytes.
    record = {
        "command": "frames-average",
        "settings": {**settings.__dict__, "crf": crf},
        "sources": [
            {"name": name, "kind": s.kind, "n_frames": s.n_frames, "size": [s.height, s.width],
             "fps": s.fps, "bytes": _source_bytes(s)}
            for s, name in zip(sources, names)
        ],
    }
    positions = tuple(known_motion(s) for s in sources)
    record["known_motion"] = [p is not None for p in positions]
    return FramesPlan(sources, tuple(windows), FramesAverageSettings(**{**settings.__dict__, "crf": crf}),
                      fingerprint(record), positions, names)


def _source_bytes(info: SourceInfo) -> int:
    """Size of a source on disk: the video file, or the sum of a folder's frame files."""
    if info.kind == "video":
        return Path(info.path).stat().st_size
    return sum(Path(f).stat().st_size for f in info.files)


def known_motion(info: SourceInfo):
    """Camera positions of a clip made by ``render-clip``, from its ``<clip>.json`` sidecar.

    Returns
    -------
    positions : (n_frames, 2) float64 ndarray or None
        None when there is no sidecar with ``positions_xy``.

    Raises
    ------
    BadInputError
        The sidecar's frame count does not match the clip.
    """
    import json

    sidecar = Path(info.path).with_name(Path(info.path).name + ".json")
    if not sidecar.is_file():
        return None
    try:
        data = json.loads(sidecar.read_text())
        positions = np.asarray(data["positions_xy"], dtype=np.float64)
    except (ValueError, KeyError, TypeError):
        return None  # some other tool's JSON: not ours to judge
    if positions.shape != (info.n_frames, 2):
        raise BadInputError(
            f"'{sidecar}' records {len(positions)} camera positions but '{info.path}' has {info.n_frames} "
            "frames; re-render the clip or remove the stale sidecar."
        )
    return positions


def window_psf(positions: np.ndarray, win: Window, interpolate: int = 1) -> np.ndarray:
    """PSF of a window of a clip with known motion: the camera path over the averaged frames.

    Interpolated frames sit at linearly interpolated positions (what ideal
    optical flow would give). The PSF is centred on its centre of mass.

    Returns
    -------
    psf : (k, k) float32 ndarray, sums to 1

    Examples
    --------
    >>> pos = np.stack([np.arange(10.0), np.zeros(10)], axis=1)  # 1 px per frame to the right
    >>> window_psf(pos, Window(0, 0, 2, 5)).shape
    (5, 5)
    """
    from .ops.psf import rasterize_psf

    seg = positions[win.start:win.stop]
    k = max(1, int(interpolate))
    if k > 1:
        t = np.arange((len(seg) - 1) * k + 1) / k
        seg = np.stack([np.interp(t, np.arange(len(seg)), seg[:, i]) for i in range(2)], axis=1)
    # Frame content moves opposite to the camera: the blur kernel is the flipped camera path.
    return rasterize_psf(-seg, centre="mass")


def pair_params(info: SourceInfo, win: Window, settings: FramesAverageSettings, name: str | None = None,
                source_index: int | None = None) -> dict:
    """Everything needed to rebuild a pair from its row (see :func:`rebuild_pair`).

    ``video`` is the source's location-free ``name`` (its path when no name is
    given) and ``source_index`` its place in the manifest's ``command.inputs``,
    which records the paths as given.
    """
    params = {
        "video": info.path if name is None else name,
        "source_index": win.source if source_index is None else source_index,
        "source_kind": info.kind,
        "frame_start": win.start,
        "frame_stop": win.stop,
        "window_frames": win.length,
        "sharp_frame": win.sharp,
        "sharp_offset_frames": win.sharp_offset_frames,
        "crf": settings.crf,
        "interpolate": settings.interpolate,
        "averaged_frames": (win.length - 1) * settings.interpolate + 1,
        "fps": info.fps,
        "time_start_s": win.start / info.fps,
        "exposure_s": win.length / info.fps,
    }
    if info.kind == "frames":
        params["sharp_file"] = Path(info.files[win.sharp]).name
    return params


def iter_pairs(plan: FramesPlan, start: int = 0, stop: int | None = None, progress=None):
    """Make the pairs of windows ``start .. stop - 1``, streaming each source once.

    Yields
    ------
    window : Window
    blurred, sharp : (H, W, 3) uint8 ndarray
    """
    windows = plan.windows[start:stop]
    i = 0
    while i < len(windows):
        j = i
        while j < len(windows) and windows[j].source == windows[i].source:
            j += 1
        group = windows[i:j]
        info = plan.sources[group[0].source]
        stream = iter_frames(info, group[0].start, group[-1].stop)
        if progress is not None:
            stream = _counted(stream, progress)
        yield from average_windows(stream, group, crf=plan.settings.crf, interpolate=plan.settings.interpolate)
        i = j


def _counted(stream, bar):
    for item in stream:
        bar.update(1)
        yield item


class _FrameReporter:
    """Frames decoded, to the writer's bar (it may live in another process)."""

    def update(self, n):
        from .io.dataset import report_progress

        report_progress(n)


_ALLOCATOR_TUNED = False


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse; process-wide, once. True when it took effect.

    Averaging allocates a frame-sized block per decoded frame and holds a
    window of them while it is summed. With glibc's defaults, blocks that size
    are mapped fresh and returned to the system as soon as they are freed, so
    every page of every frame is faulted in again: about 120-250 page faults
    per 720p frame here, which slowed the pipeline by a sixth
    (benchmarks/RESULTS.md, "Frame averaging"). Raising the mmap threshold to
    64 MiB and the trim threshold to 1 GiB keeps freed frames in the heap,
    where the next frames reuse them; the cost is that the process keeps
    its peak memory (up to 1 GiB of freed blocks) instead of returning it.
    The frames-average command and recipes ask for this
    (``write_frame_pairs(..., keep_freed=True)``) in every process that
    makes pairs; a library caller's process is left alone unless it asks.
    Does nothing where the C library is not glibc.

    Examples
    --------
    >>> keep_freed_memory()  # doctest: +SKIP
    True
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    _ALLOCATOR_TUNED = bool(mallopt(m_mmap_threshold, 64 << 20) and mallopt(m_trim_threshold, 1 << 30))
    return _ALLOCATOR_TUNED


def _make_rows(start, stop, *, plan: FramesPlan, bar=None, keep_freed: bool = False):
    from .io.dataset import pair_row

    if keep_freed:
        keep_freed_memory()
    for win, blurred, sharp in iter_pairs(plan, start, stop, progress=_FrameReporter() if bar is None else bar):
        info = plan.sources[win.source]
        params = pair_params(info, win, plan.settings, plan.names[win.source] if plan.names else None)
        positions = plan.positions[win.source] if plan.positions else None
        psf = None
        if positions is not None:
            psf = window_psf(positions, win, plan.settings.interpolate)
            seg = positions[win.start:win.stop]
            params["psf_from"] = "render-clip camera path"
            # Where the sharp frame's camera sits relative to the blur's centre of mass.
            params["sharp_offset_xy"] = (positions[win.sharp] - seg.mean(axis=0)).round(6).tolist()
        yield pair_row(
            index=win.index, blurred=blurred, sharp=sharp, psf=psf, source="video",
            seed=plan.settings.seed, params=params,
            fingerprint=plan.fingerprint, png_level=plan.settings.png_level,
        )


def write_frame_pairs(inputs, out, settings: FramesAverageSettings, *, workers: int = 1,
                      overwrite: bool = False, progress: bool = True, keep_freed: bool = False) -> dict:
    """Make (blurred, sharp) pairs from high-frame-rate video and write them as a dataset.

    Each pair averages a window of consecutive frames in linear light (exactly;
    see the module notes) and takes the window's middle frame as sharp (the
    later middle frame for even windows, recorded as ``sharp_offset_frames =
    0.5``). Window lengths come from ``sample_rng(seed, pair_index, 1)``, so the
    dataset does not depend on ``workers``.

    Parameters
    ----------
    inputs : sequence of str or Path
    out : str or Path
        Dataset directory.
    settings : FramesAverageSettings
    workers : int
    overwrite : bool
    progress : bool
        Progress bar in frames.
    keep_freed : bool
        Call :func:`keep_freed_memory` in every process that makes pairs
        (this one too when it makes them itself): faster, but such a process
        keeps its peak memory. The command line passes True.

    Returns
    -------
    manifest : dict

    Examples
    --------
    >>> import tempfile
    >>> from blursynth.io.dataset import PairDataset
    >>> from blursynth.render import write_video
    >>> d = Path(tempfile.mkdtemp())
    >>> rng = np.random.default_rng(0)
    >>> write_video([rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(20)], d / "c.mkv", fps=240)
    20
    >>> settings = FramesAverageSettings(window_min=5, window_max=9, seed=1)
    >>> manifest = write_frame_pairs([d / "c.mkv"], d / "pairs", settings, progress=False)
    >>> row = PairDataset(d / "pairs")[0]
    >>> blurred, sharp = rebuild_pair(row["params"], d / "c.mkv")
    >>> bool((blurred == row["blurred"]).all() and (sharp == row["sharp"]).all())
    True
    """
    import functools

    plan = plan_frames_average(inputs, settings)
    # In one process the bar is our own (it appears with the first frame, so an early
    # error prints alone); with a pool, every process reports its frames to the writer's bar.
    in_process = workers <= 1 or len(plan.windows) <= settings.shard_size
    bar = _LazyBar(plan.n_frames) if progress and in_process else None
    make_rows = functools.partial(_make_rows, plan=plan, bar=bar, keep_freed=keep_freed)
    try:
        return _write(out, plan, make_rows, workers, overwrite, progress and not in_process)
    finally:
        if bar is not None:
            bar.close()


class _LazyBar:
    """A frames progress bar that appears with the first frame, so an early error prints alone."""

    def __init__(self, total):
        self.total = total
        self.bar = None

    def update(self, n):
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, unit="frame", desc="frames-average", dynamic_ncols=True)
        self.bar.update(n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _write(out, plan, make_rows, workers, overwrite, progress):
    """The dataset writer, its bar (when ``progress``) counting the plan's frames."""
    from .io.dataset import PAIR_SCHEMA, write_dataset

    settings = plan.settings
    return write_dataset(
        out, kind="pairs", schema=PAIR_SCHEMA, n_items=len(plan.windows), shard_size=settings.shard_size,
        make_rows=make_rows, fingerprint=plan.fingerprint,
        command={"command": "frames-average", "inputs": [s.path for s in plan.sources],
                 **{**plan.settings.__dict__}},
        workers=workers, overwrite=overwrite, unit="frame", desc="frames-average", progress=progress,
        progress_total=plan.n_frames,
    )


def rebuild_pair(params: dict, video=None) -> tuple[np.ndarray, np.ndarray]:
    """Recompute a pair from its row's params.

    Parameters
    ----------
    params : dict
        The row's params.
    video : str or Path, optional
        Where the source is now: e.g. ``manifest["command"]["inputs"][params["source_index"]]``
        (the path the run was given). By default ``params["video"]``, the source's
        name relative to the folder holding the run's input, is looked up from
        the current directory.

    Returns
    -------
    blurred, sharp : (H, W, 3) uint8 ndarray
    """
    path = params["video"] if video is None else str(video)
    info = probe_source(path, fps=params["fps"])
    win = Window(0, 0, int(params["frame_start"]), int(params["window_frames"]))
    for _, blurred, sharp in average_windows(iter_frames(info, win.start, win.stop), [win],
                                             crf=params["crf"], interpolate=int(params["interpolate"])):
        return blurred, sharp
    raise BadInputError(f"'{path}' no longer holds frames {win.start}..{win.stop - 1}.")
