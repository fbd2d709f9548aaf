"""The AVX-512 VBMI window kernel: the same integer sums as the scalar kernels, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from blursynth import _simd
from blursynth.video import LinearAverager, average_windows, linear_lut, plan_windows

pytestmark = pytest.mark.skipif(not _simd.cpu_supported(), reason="this CPU has no AVX-512 VBMI")


def test_compiles_where_the_cpu_has_the_instructions():
    assert _simd.available()


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


@pytest.mark.parametrize("crf", ["gamma:2.2", "srgb", "none"])
@pytest.mark.parametrize("n", [1, 3, 16, 255])
def test_readout_equals_the_scalar_readout_at_every_threshold(crf, n):
    from blursynth.video import _encode_sums

    avg = LinearAverager((64,), crf, max_items=n)
    thresholds, base, scale, one_step, steps = avg._table(n)
    t = thresholds[1:256].astype(np.int64)
    # Every level's threshold, one below it, and an even sweep of all sums.
    sums = np.concatenate([t, t - 1, np.linspace(0, n * scale, 64 * 40).astype(np.int64)])
    sums = np.concatenate([sums, np.zeros(-sums.size % 64, np.int64)]).clip(0).astype(np.uint32)
    expect = np.empty(sums.size, np.uint8)
    _encode_sums(sums, scale, base, thresholds, one_step, expect)
    got = np.empty(sums.size, np.uint8)
    assert _simd.levels(sums, steps, got)
    assert np.array_equal(got, expect)


@pytest.mark.parametrize("crf", ["gamma:2.2", "none"])
def test_window_levels_equal_sums_then_readout(crf):
    from blursynth.video import _encode_sums

    n_frames = 11
    frames = _frames(n_frames, 64 * 9, seed=4)
    avg = LinearAverager((64 * 9,), crf, max_items=n_frames)
    thresholds, base, scale, one_step, steps = avg._table(n_frames)
    sums = np.zeros(64 * 9, np.uint32)
    _simd.window_sums(frames, avg.lut, sums)
    expect = np.empty(sums.size, np.uint8)
    _encode_sums(sums, scale, base, thresholds, one_step, expect)
    got = np.empty(sums.size, np.uint8)
    assert _simd.window_levels(frames, avg.lut, steps, got)
    assert np.array_equal(got, expect)


def test_step_tables_and_argument_checks():
    steps = _simd.step_tables(np.arange(257) * 3)
    assert steps.shape == (19, 16) and steps.ctypes.data % 64 == 0
    assert steps[18, 15] == 3 * 255  # bit 0's last entry: T[2 * 127 + 1]
    with pytest.raises(ValueError, match="257 values"):
        _simd.step_tables(np.arange(256))
    with pytest.raises(ValueError, match="steps must be"):
        _simd.levels(np.zeros(64, np.uint32), np.zeros((19, 16), np.int64), np.zeros(64, np.uint8))
    with pytest.raises(ValueError, match="out must be"):
        _simd.levels(np.zeros(64, np.uint32), steps, np.zeros(63, np.uint8))
    with pytest.raises(ValueError, match="frames must be"):
        _simd.window_sums([np.zeros(65, np.uint8)], linear_lut("none")[0], np.zeros(64, np.uint32))


def test_copied_tables_need_no_particular_alignment():
    import copy

    frames = [f.reshape(8, 8, 3) for f in _frames(5, 192, seed=6)]
    avg = LinearAverager((8, 8, 3), "gamma:2.2", max_items=5)
    for f in frames:
        avg.add(f)
    expect = avg.result()
    twin = copy.deepcopy(avg)  # its cached tables are copies, aligned to 16 bytes at best
    assert np.array_equal(twin.result(), expect)
    steps = avg._table(5)[4]
    buf = np.empty(steps.size + 1, np.uint32)
    shifted = buf[1:].reshape(steps.shape)  # 4 bytes past a 64-byte boundary at best
    shifted[...] = steps
    out = np.empty(avg.acc.size, np.uint8)
    assert _simd.levels(avg.acc, shifted, out)
    assert np.array_equal(out.reshape(8, 8, 3), expect)
    tables, _ = _simd.plane_tables(avg.lut)
    assert _simd.plane_tables(avg.lut.astype(np.int64) - 1) is None  # negative entries
    assert _simd.plane_tables(avg.lut.astype(np.float64)) is None
    assert tables is _simd.plane_tables(avg.lut)[0]


def test_add_group_uses_the_vector_kernel_and_matches_scalar(monkeypatch):
    frames = [f.reshape(10, 10, 3) for f in _frames(6, 300, seed=8)]
    results = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("BLURSYNTH_SIMD", flag)
        avg = LinearAverager((10, 10, 3), "srgb", max_items=6)
        avg.add_group(frames[:4])
        results[flag] = (avg.acc.copy(), avg.add_group(frames[4:], encode=True))
    assert np.array_equal(results["1"][0], results["0"][0])
    assert np.array_equal(results["1"][1], results["0"][1])


@pytest.mark.parametrize("crf", ["gamma:2.2", "srgb", "none"])
@pytest.mark.parametrize("shape", [(9, 13, 3), (16, 16, 3)])  # with and without a tail after the vectors
def test_slide_equals_subtract_add_result(crf, shape, monkeypatch):
    frames = [f.reshape(shape) for f in _frames(20, int(np.prod(shape)), seed=12)]
    steps = [(frames[0:5], []), (frames[5:7], frames[0:2]), (frames[7:8], frames[2:6]), ([], frames[6:7]),
             (frames[8:20], frames[7:8])]
    outputs = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("BLURSYNTH_SIMD", flag)
        sliding = LinearAverager(shape, crf, max_items=12)
        stepwise = LinearAverager(shape, crf, max_items=12)
        # Stale sums first: an averager that held other frames and was reset.
        sliding.add(frames[19])
        sliding.reset()
        outputs[flag] = []
        for entering, leaving in steps:
            got = sliding.slide(entering, leaving)
            outputs[flag].append(got)
            for f in leaving:
                stepwise.subtract(f)
            for f in entering:
                stepwise.add(f)
            assert np.array_equal(got, stepwise.result())
            assert sliding.count == stepwise.count
        assert np.array_equal(sliding.acc, stepwise.acc)
    # The vector pass (flag 1) against the scalar kernels (flag 0), step by step.
    assert all(np.array_equal(a, b) for a, b in zip(outputs["1"], outputs["0"]))
    with pytest.raises(ValueError, match="cannot hold"):
        sliding.slide([], frames[:13])


def test_window_slide_against_table_sums():
    lut, _ = linear_lut("gamma:2.2")
    adds, subs = _frames(3, 64 * 3, seed=13), _frames(2, 64 * 3, seed=14)
    sums = np.sum([lut[f].astype(np.uint64) for f in subs], axis=0).astype(np.uint32) + 5
    steps = LinearAverager((64 * 3,), "gamma:2.2", max_items=3)._table(3)[4]
    out = np.empty(64 * 3, np.uint8)
    assert _simd.window_slide(adds, subs, lut, steps, sums, out)
    expect = np.sum([lut[f].astype(np.uint64) for f in adds], axis=0) + 5
    assert np.array_equal(sums, expect)
    from blursynth.video import _encode_sums

    thresholds, base, scale, one_step, _ = LinearAverager((64 * 3,), "gamma:2.2", max_items=3)._table(3)
    levels = np.empty(64 * 3, np.uint8)
    _encode_sums(expect.astype(np.uint32), scale, base, thresholds, one_step, levels)
    assert np.array_equal(out, levels)
