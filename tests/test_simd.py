"""The AVX-512 VBMI window kernel: the same integer sums as the scalar kernels, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from blursynth import _simd
from blursynth.video import LinearAverager, average_windows, linear_lut, plan_windows

pytestmark = pytest.mark.skipif(not _simd.available(), reason="this CPU has no AVX-512 VBMI")


def _frames(n, size, seed=0):
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, size, dtype=np.uint8) for _ in range(n)]
    frames[0][:70] = 255  # the one value whose linear light reaches 1 << 24
    frames[-1][70:140] = 0
    return frames


@pytest.mark.parametrize("crf", ["gamma:2.2", "srgb", "none"])
@pytest.mark.parametrize("n", [1, 2, 25, 255])
def test_sums_equal_the_table_sums(crf, n):
    lut, _ = linear_lut(crf)
    size = 64 * 5 + 17  # five whole vectors and a tail the kernel leaves alone
    frames = _frames(n, size, seed=n)
    out = np.full(size, 7, np.uint32)
    assert _simd.window_sums(frames, lut, out)
    expect = np.sum([lut[f].astype(np.uint64) for f in frames], axis=0)
    assert np.array_equal(out[:320], expect[:320])
    assert (out[320:] == 7).all()


def test_add_and_sub_modes():
    lut, _ = linear_lut("gamma:2.2")
    a, b = _frames(2, 128, seed=3)
    out = np.zeros(128, np.uint32)
    _simd.window_sums([a], lut, out)
    _simd.window_sums([b], lut, out, mode="add")
    assert np.array_equal(out, lut[a] + lut[b])
    _simd.window_sums([a], lut, out, mode="sub")
    assert np.array_equal(out, lut[b])
    with pytest.raises(ValueError, match="mode must be one of"):
        _simd.window_sums([a], lut, out, mode="mul")


def test_declines_what_it_cannot_sum(monkeypatch):
    lut, _ = linear_lut("gamma:2.2")
    out = np.zeros(64, np.uint32)
    too_wide = lut.astype(np.uint64) * 2  # entries past 1 << 24 do not split into three byte planes
    assert _simd.plane_tables(too_wide) is None
    assert not _simd.window_sums([np.zeros(64, np.uint8)], too_wide, out)
    assert not _simd.window_sums([np.zeros(64, np.uint8)] * 256, lut, out)  # 16-bit plane sums would overflow
    monkeypatch.setenv("BLURSYNTH_SIMD", "0")
    assert not _simd.available()
    assert not _simd.window_sums([np.zeros(64, np.uint8)], lut, out)
    assert (out == 0).all()


@pytest.mark.parametrize("crf", ["gamma:2.2", "none"])
@pytest.mark.parametrize("overlap", [0, 3])
def test_averager_bytes_match_the_scalar_kernels(crf, overlap, monkeypatch):
    shape = (21, 33, 3)  # 2079 values: 32 vectors and a 31-value tail
    frames = _frames(30, shape[0] * shape[1] * 3, seed=9)
    frames = [f.reshape(shape) for f in frames]
    wins = plan_windows([30], window_min=4, window_max=9, seed=1, overlap=overlap)
    runs = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("BLURSYNTH_SIMD", flag)
        assert LinearAverager(shape, crf, max_items=9).vector == (flag == "1")
        runs[flag] = [(w, b.tobytes()) for w, b, _ in average_windows(enumerate(frames), wins, crf=crf)]
    assert runs["1"] == runs["0"] and len(runs["1"]) == len(wins)
