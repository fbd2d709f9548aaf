"""Exact linear-light averaging of 8-bit frames: :class:`LinearAverager`, one window at a time.

Each frame is taken to linear light through a 256-entry integer table
(:func:`~blursynth.ops.encode8.linear_lut`) and added to an integer sum; a
window's average is mapped back to 8 bits by comparing the sum with exact
integer thresholds (:mod:`blursynth.ops.encode8`). Integer sums make a running
sum equal to re-summing bit for bit, and the thresholds make the output equal
to the float64 formula ``round(255 * encode(mean(decode(frames / 255))))``
except where that value lies within about 1e-3 of a rounding tie.

Two backends give the same bytes: on CPUs with AVX-512 VBMI a window's
look-ups, sums and read-out are one vector pass (:mod:`blursynth.ops._average_avx512`);
elsewhere scalar Numba kernels sum up to :data:`GROUP_FRAMES` frames per pass.
The choice is made here, per averager, and nowhere else.
"""

from __future__ import annotations

import numpy as np

from .._numba import njit
from .color import CameraResponse
# _levels is encode8's read-out core: the grouped scalar pass calls it on each block of sums it has
# just made (the block is never stored whole), so it takes the core, not the validating wrapper.
from .encode8 import READOUT_BLOCK, _levels, linear_lut, sum_readout

# Frames summed per pass by the scalar kernels.
GROUP_FRAMES = 4
# The most frames whose sums fit uint32 (see encode8.LINEAR_SCALE).
_UINT32_MAX_ITEMS = 255


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


@njit
def _sum_group_pairs(acc2, f0, f1, f2, f3, n, first, lut2, encode, scale, base, nxt, thresholds, one_step, out):
    # Up to four frames (the first n of f0..f3) added to the sums in one pass,
    # block by block so that a block's sums stay in L1 between frames; with
    # ``encode`` the block is read out to ``out`` instead of stored, so the
    # last group of a window never writes the sums back. Each uint16 of a frame
    # holds two 8-bit values and lut2 maps it to both look-ups at once, one in
    # each uint32 half of a uint64 (little-endian: the halves are sums 2i and
    # 2i + 1); at most 255 frames cannot carry across. Fixed arity (rather than
    # a typed List of frames) keeps the call free of per-process compilation.
    block_pairs = READOUT_BLOCK // 2
    sums2 = np.empty(block_pairs, dtype=np.uint64)
    buckets = np.empty(READOUT_BLOCK, dtype=np.int32)
    sc = np.float32(scale)
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
        _levels(sums2[:m].view(np.uint32), thresholds[0], thresholds[256], sc, base, nxt, thresholds, one_step,
                buckets, out[2 * start:2 * (start + m)])


class LinearAverager:
    """Averages of windows of frames in linear light, encoded exactly to 8 bits.

    One call per window: :meth:`window` takes the frames that enter it and the
    held frames that leave it, and returns the window's average. Frames shared
    by consecutive windows are summed once.

    Parameters
    ----------
    shape : tuple
        Frame shape, e.g. ``(H, W, 3)``.
    crf : CameraResponse or str
        Camera response (:meth:`CameraResponse.parse`).
    max_items : int
        Most frames a window will hold (chooses uint32 or uint64 sums).

    Notes
    -----
    ``acc`` holds the sums only while ``count > 0``: starting a new window just
    sets ``count`` to 0, and the next frame overwrites ``acc`` instead of
    adding to it, which saves clearing it.

    Examples
    --------
    >>> avg = LinearAverager((2, 2, 3), "gamma:2.2", max_items=2)
    >>> frames = [np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8)]
    >>> int(avg.window(frames)[0, 0, 0])  # 255 * 0.5 ** (1 / 2.2), rounded
    186
    """

    def __init__(self, shape, crf, max_items: int):
        self.shape = tuple(shape)
        self.crf = CameraResponse.parse(crf)
        lut, self.scale = linear_lut(self.crf)
        dtype = np.uint32 if max_items <= _UINT32_MAX_ITEMS else np.uint64
        self.lut = lut.astype(dtype)
        self.acc = np.zeros(int(np.prod(self.shape)), dtype=dtype)
        self.count = 0
        self._tables = {}
        self._lut2 = None

    @property
    def vector(self) -> bool:
        """Whether windows are summed by the AVX-512 kernel (:mod:`._average_avx512`) here."""
        from . import _average_avx512 as avx512

        return self.acc.dtype == np.uint32 and avx512.available() and avx512.plane_tables(self.lut) is not None

    # -- the interface ---------------------------------------------------------------------------
    def window(self, entering, leaving=(), *, hold: bool = True) -> np.ndarray:
        """The next window's average: the held frames less ``leaving``, plus ``entering``.

        Parameters
        ----------
        entering : sequence of ``shape`` uint8 ndarray
            Frames that join the window.
        leaving : sequence of ``shape`` uint8 ndarray
            Frames of the previous window (held with ``hold=True``) that are
            not in this one; all of them, or none, to start afresh.
        hold : bool
            Keep this window's sums for the next call. False when the next
            window shares no frame with this one: its sums are then read out
            without being stored (faster), and the next call starts afresh.

        Returns
        -------
        average : ``shape`` uint8 ndarray

        Examples
        --------
        >>> avg = LinearAverager((1, 1, 3), "none", max_items=2)
        >>> f = [np.full((1, 1, 3), v, np.uint8) for v in (2, 4, 8)]
        >>> avg.window(f[:2])[0, 0].tolist(), avg.window(f[2:], f[:1])[0, 0].tolist()
        ([3, 3, 3], [6, 6, 6])
        """
        entering, leaving, _ = self._next_window(entering, leaving)
        if self.count == 0 and not hold:
            return self._average(entering)
        if self.vector:
            out = self._slide(entering, leaving)
        else:
            for f in leaving:
                self._subtract(f)
            for f in entering:
                self._add(f)
            out = self._result()
        if not hold:
            self.count = 0
        return out

    def window_linear(self, entering, leaving=(), *, hold: bool = True) -> np.ndarray:
        """As :meth:`window`, but the average in linear light, not encoded (the RAW path's input).

        The same exact integer sums, divided by ``count * scale`` in float64 and rounded
        once to float32: a window of equal frames gives exactly :func:`linear_frame` of one.

        Returns
        -------
        average : ``shape`` float32 ndarray, linear light in [0, 1]
        """
        entering, leaving, count = self._next_window(entering, leaving)
        for f in leaving:
            self._subtract(f)
        for f in entering:
            self._add(f)
        out = (self.acc / (float(count) * float(self.scale))).astype(np.float32)
        if not hold:
            self.count = 0
        return out.reshape(self.shape)

    def _next_window(self, entering, leaving):
        """(entering, leaving, frame count) of the next window, checked; when every held frame
        leaves, none is subtracted: the averager starts afresh (``count`` 0, ``leaving`` empty)."""
        entering, leaving = list(entering), list(leaving)
        if len(leaving) > self.count:
            if self.count == 0:
                raise ValueError("no frames to subtract from: the averager holds none")
            raise ValueError(f"{len(leaving)} frames cannot leave a window of {self.count}")
        if len(leaving) == self.count:
            self.count, leaving = 0, []  # none stays: start afresh
        count = self.count - len(leaving) + len(entering)
        if count < 1:
            raise ValueError("a window must hold at least one frame")
        if self.acc.dtype == np.uint32 and count > _UINT32_MAX_ITEMS:
            raise ValueError(f"at most {_UINT32_MAX_ITEMS} frames fit this averager's sums; got {count}.")
        return entering, leaving, count

    def reset(self):
        """Forget the held frames: the next :meth:`window` starts afresh."""
        self.count = 0

    # -- scalar building blocks --------------------------------------------------------------------
    def _add(self, frame: np.ndarray):
        flat = _flat_u8(frame, self.shape)
        mode = "add" if self.count else "set"
        if not self._vector_sums([flat], mode):
            (_add_frame if self.count else _set_frame)(self.acc, flat, self.lut)
        self.count += 1

    def _subtract(self, frame: np.ndarray):
        if self.count < 1:
            raise ValueError("no frames to subtract from")
        flat = _flat_u8(frame, self.shape)
        if not self._vector_sums([flat], "sub"):
            _sub_frame(self.acc, flat, self.lut)
        self.count -= 1

    def _result(self) -> np.ndarray:
        """The average of the frames held, encoded to uint8 ``shape``."""
        from . import _average_avx512 as avx512

        if self.count < 1:
            raise ValueError("no frames to average")
        readout, steps = self._table(self.count)
        out = np.empty(self.acc.size, dtype=np.uint8)
        m = 0
        if steps is not None and avx512.levels(self.acc, steps, out):
            m = self.acc.size // avx512.VECTOR_BYTES * avx512.VECTOR_BYTES
        if m < self.acc.size:
            readout.encode(self.acc[m:], out[m:])
        return out.reshape(self.shape)

    def _average(self, frames) -> np.ndarray:
        """The average of ``frames`` alone, its sums not kept; the same bytes as adding them.

        With the vector kernel the whole window is summed and read out in one
        pass; otherwise, with uint32 sums and an even number of values, the
        frames are summed :data:`GROUP_FRAMES` at a time and the last group is
        read out without storing its sums.
        """
        if not frames:
            raise ValueError("frames must hold at least one frame")
        if self.acc.dtype == np.uint32 and len(frames) > _UINT32_MAX_ITEMS:
            raise ValueError(f"at most {_UINT32_MAX_ITEMS} frames fit this averager's sums; got {len(frames)}.")
        self.reset()
        if self.vector:
            return self._vector_average([_flat_u8(f, self.shape) for f in frames])
        while len(frames) > GROUP_FRAMES:
            self._add_group(frames[:GROUP_FRAMES])
            frames = frames[GROUP_FRAMES:]
        return self._add_group(frames, encode=True)

    def _add_group(self, frames, *, encode: bool = False):
        """Add up to :data:`GROUP_FRAMES` frames in one pass; with ``encode``, return the average.

        With ``encode`` the sums of this last group are read out without being
        stored, so the averager starts afresh afterwards.
        """
        if not 1 <= len(frames) <= GROUP_FRAMES:
            raise ValueError(f"a group holds 1 to {GROUP_FRAMES} frames; got {len(frames)}.")
        if self.vector and self._vector_sums([_flat_u8(f, self.shape) for f in frames],
                                             "add" if self.count else "set"):
            self.count += len(frames)
            if not encode:
                return None
            out = self._result()
            self.count = 0
            return out
        if self.acc.dtype != np.uint32 or self.acc.size % 2 or not np.little_endian:
            for f in frames:
                self._add(f)
            if not encode:
                return None
            out = self._result()
            self.count = 0
            return out
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
        r, _ = self._table(count)
        out = np.empty(self.acc.size if encode else 0, dtype=np.uint8)
        _sum_group_pairs(self.acc.view(np.uint64), *halves, len(frames), self.count == 0, self._lut2, encode,
                         r.scale, r.base, r.nxt, r.thresholds, r.one_step, out)
        self.count = 0 if encode else count
        return out.reshape(self.shape) if encode else None

    # -- the AVX-512 backend -----------------------------------------------------------------------
    def _vector_sums(self, flats, mode: str) -> bool:
        from . import _average_avx512 as avx512

        if self.acc.dtype != np.uint32 or not avx512.window_sums(flats, self.lut, self.acc, mode):
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
        from . import _average_avx512 as avx512

        m = self.acc.size // avx512.VECTOR_BYTES * avx512.VECTOR_BYTES
        tail = self.acc[m:]
        if tail.size:
            for flat in subs:
                _sub_frame(tail, flat[m:], self.lut)
            for j, flat in enumerate(adds):
                (_set_frame if fresh and j == 0 else _add_frame)(tail, flat[m:], self.lut)
        return m, tail

    def _slide(self, entering, leaving) -> np.ndarray:
        """Subtract ``leaving``, add ``entering`` and read out, in one vector pass."""
        from . import _average_avx512 as avx512

        count = self.count + len(entering) - len(leaving)
        if not 1 <= count or count > _UINT32_MAX_ITEMS:
            raise ValueError(f"cannot hold {count} frames after {len(leaving)} leave {self.count}")
        if self.count == 0:
            self.acc[:] = 0  # an empty averager's sums are stale
        adds = [_flat_u8(f, self.shape) for f in entering]
        subs = [_flat_u8(f, self.shape) for f in leaving]
        readout, steps = self._table(count)
        out = np.empty(self.acc.size, dtype=np.uint8)
        if not avx512.window_slide(adds, subs, self.lut, steps, self.acc, out):
            raise RuntimeError("the vector kernel declined a window it was chosen for")
        self.count = count
        m, tail = self._scalar_tail(adds=adds, subs=subs)
        readout.encode(tail, out[m:])
        return out.reshape(self.shape)

    def _vector_average(self, flats) -> np.ndarray:
        from . import _average_avx512 as avx512

        readout, steps = self._table(len(flats))
        out = np.empty(self.acc.size, dtype=np.uint8)
        if not avx512.window_levels(flats, self.lut, steps, out):
            raise RuntimeError("the vector kernel declined a window it was chosen for")
        m, tail = self._scalar_tail(adds=flats, fresh=True)
        readout.encode(tail, out[m:])
        return out.reshape(self.shape)

    def _table(self, count):
        """``(SumReadout, steps)`` for sums of ``count`` frames; ``steps``: the vector read-out's tables."""
        table = self._tables.get(count)
        if table is None:
            readout = sum_readout(self.crf, count, self.acc.dtype.type)
            steps = None
            if self.acc.dtype == np.uint32:  # tiny; used where the vector kernel runs
                from . import _average_avx512 as avx512

                steps = avx512.step_tables(readout.thresholds)
            table = self._tables[count] = (readout, steps)
        return table


def _flat_u8(frame, shape):
    if frame.shape != shape or frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 {shape}; got {frame.dtype} {frame.shape}.")
    return frame.reshape(-1) if frame.flags.c_contiguous else np.ascontiguousarray(frame).reshape(-1)


def linear_frame(frame, crf="gamma:2.2") -> np.ndarray:
    """One uint8 frame in linear light as :meth:`LinearAverager.window_linear` reads it (float32).

    Examples
    --------
    >>> linear_frame(np.array([[[0, 255, 128]]], np.uint8), "none")[0, 0].tolist()
    [0.0, 1.0, 0.501960813999176]
    """
    lut, scale = linear_lut(CameraResponse.parse(crf))
    return (lut[np.asarray(frame, np.uint8)] / float(scale)).astype(np.float32)


def average_frames(frames, crf="gamma:2.2") -> np.ndarray:
    """Average uint8 frames in linear light and encode back (exact; see the module notes).

    Parameters
    ----------
    frames : sequence of (H, W, C) uint8 ndarray
    crf : CameraResponse or str

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
    return LinearAverager(frames[0].shape, crf, max_items=len(frames)).window(frames, hold=False)
