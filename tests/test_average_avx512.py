"""The frame averager's AVX-512 VBMI backend (ops/_average_avx512.py) against numpy, and against the scalar kernels.

Tests that run a kernel are skipped where the CPU lacks AVX-512 BW and VBMI;
the module's IR, its tables and the fallback after a failed compile are
tested everywhere.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from blursynth.ops import _average_avx512 as avx512
from blursynth.ops.average import LinearAverager
from blursynth.ops.encode8 import linear_lut
from blursynth.pairs.frame_average import average_windows
from blursynth.sources.windows import plan_windows

vbmi = pytest.mark.skipif(not avx512.cpu_supported(), reason="this CPU has no AVX-512 VBMI")

KERNELS = {"window_sums_set", "window_sums_add", "window_sums_sub", "window_sums_levels", "levels", "window_slide"}


@pytest.fixture(autouse=True)
def _vector_kernels_on(monkeypatch):
    # Tests that want the scalar kernels set BLURSYNTH_SIMD=0 themselves; one left in the shell would fail the rest.
    monkeypatch.delenv("BLURSYNTH_SIMD", raising=False)


def test_module_builds_and_verifies():
    from llvmlite import binding as llvm

    module = llvm.parse_assembly(str(avx512._module()))
    module.verify()
    defined = {f.name for f in module.functions if not f.is_declaration}
    assert defined == KERNELS


@vbmi
def test_compiles_where_the_cpu_has_the_instructions():
    assert avx512.available()
    assert set(avx512._kernel[1]) == {"set", "add", "sub", "levels", "readout", "slide"}


def test_a_failed_compile_warns_once_and_leaves_the_scalar_kernels(monkeypatch):
    # Everywhere: the CPU check passes, then the IR does not parse (as an LLVM without these intrinsics).
    monkeypatch.setattr(avx512, "cpu_supported", lambda: True)
    monkeypatch.setattr(avx512, "_module", lambda: "define void @broken( {")
    monkeypatch.setattr(avx512, "_kernel", None)  # restored (compiled or not) after the test
    lut = _lut("gamma")
    frame = np.full(128, 200, np.uint8)
    out = np.full(128, 7, np.uint32)
    steps = avx512.step_tables(_thresholds(lut, 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not avx512.available()
        assert not avx512.available()  # no second compile, no second warning
        assert not avx512.window_sums([frame], lut, out)
        assert not avx512.window_levels([frame], lut, steps, np.zeros(128, np.uint8))
        assert not avx512.window_slide([frame], [], lut, steps, out, np.zeros(128, np.uint8))
        assert not avx512.levels(out, steps, np.zeros(128, np.uint8))
    assert len(caught) == 1 and caught[0].category is RuntimeWarning
    assert str(caught[0].message).startswith("the AVX-512 averaging kernel did not compile (RuntimeError: ")
    assert (out == 7).all()
    avg = LinearAverager((4, 8, 4), "srgb", max_items=2)
    assert not avg.vector
    frames = [f.reshape(4, 8, 4) for f in _frames(2, 128, seed=2)]
    got = avg.window(frames, hold=False)
    monkeypatch.setenv("BLURSYNTH_SIMD", "0")
    assert np.array_equal(got, LinearAverager((4, 8, 4), "srgb", max_items=2).window(frames, hold=False))


def _lut(kind):
    """Tables of each shape the kernels take (the averager's own are tested below)."""
    i = np.arange(256)
    if kind == "gamma":  # entry 255 exactly 1 << 24: the one "top" increment
        return np.rint((i / 255) ** 2.2 * (1 << 24)).astype(np.uint32)
    if kind == "wide":  # all three byte planes busy everywhere, entry 255 the largest below 1 << 24
        lut = np.random.default_rng(5).integers(0, 1 << 24, 256)
        lut[255] = (1 << 24) - 1
        return lut.astype(np.int64)
    return i.astype(np.uint16)  # "ramp": only the low plane


def _sum_ref(frames, lut, start=0):
    """The numpy reference: table sums modulo 2**32."""
    total = np.full(frames[0].size if frames else 0, start, np.uint64)
    for f in frames:
        total += lut[f].astype(np.uint64)
    return (total % (1 << 32)).astype(np.uint32)


def _read_out_ref(thresholds, sums):
    """The largest level k with T[k] <= sum (T non-decreasing, T[0] == 0)."""
    return (np.searchsorted(np.asarray(thresholds[:256], np.uint64), sums.astype(np.uint64), side="right")
            - 1).astype(np.uint8)


def _thresholds(lut, n):
    """Level thresholds for sums of ``n`` frames: 256 even steps up to the largest sum."""
    t = np.floor(np.linspace(0, n * int(np.max(lut)), 257)).astype(np.uint64)
    t[1:] = np.maximum(t[1:], 1)
    return t


def _unaligned(values, offset):
    """A copy of ``values`` starting ``offset`` bytes past a 64-byte boundary."""
    raw = np.empty(values.nbytes + 128, np.uint8)
    start = -raw.ctypes.data % 64 + offset
    view = raw[start:start + values.nbytes].view(values.dtype).reshape(values.shape)
    view[...] = values
    assert view.ctypes.data % 64 == offset
    return view


@vbmi
@pytest.mark.parametrize("kind", ["gamma", "wide", "ramp"])
def test_sums_for_every_frame_count(kind):
    lut = _lut(kind)
    size = 64 * 2 + 37  # two whole vectors and a tail the kernel leaves alone
    pool = _frames(255, size, seed=21)
    expect = np.cumsum(lut[np.array(pool)].astype(np.uint64), axis=0)
    for n in range(1, 256):
        out = np.full(size, 7, np.uint32)
        assert avx512.window_sums(pool[:n], lut, out)
        assert np.array_equal(out[:128], expect[n - 1, :128]), n
        assert (out[128:] == 7).all()


@vbmi
def test_sums_at_the_largest_values():
    # 255 frames of the largest entry: 255 << 24 with the top increment, 255 * (2**24 - 1) without.
    for kind, value in (("gamma", 255), ("wide", 255), ("gamma", 254)):
        lut = _lut(kind)
        frames = [np.full(64, value, np.uint8)] * 255
        out = np.zeros(64, np.uint32)
        assert avx512.window_sums(frames, lut, out)
        assert (out == 255 * int(lut[value])).all() and out[0] < 1 << 32
    assert (out == _sum_ref(frames, lut)).all()


@vbmi
@pytest.mark.parametrize("size", [1, 63, 64, 65, 64 * 3 + 63])
@pytest.mark.parametrize("offset", [0, 1, 4, 63])
def test_any_size_and_alignment(size, offset):
    lut = _lut("gamma")
    frames = [_unaligned(f, offset) for f in _frames(3, size, seed=size)]
    out = _unaligned(np.full(size, 9, np.uint32), offset // 4 * 4)  # uint32 needs its own alignment only
    assert avx512.window_sums(frames, lut, out)
    whole = size // 64 * 64
    assert np.array_equal(out[:whole], _sum_ref(frames, lut)[:whole])
    assert (out[whole:] == 9).all()
    steps = _unaligned(avx512.step_tables(_thresholds(lut, 3)), offset // 4 * 4)
    levels = _unaligned(np.full(size, 3, np.uint8), offset)
    assert avx512.window_levels(frames, lut, steps, levels)
    assert np.array_equal(levels[:whole], _read_out_ref(_thresholds(lut, 3), _sum_ref(frames, lut))[:whole])
    assert (levels[whole:] == 3).all()


@vbmi
def test_add_and_sub_wrap_modulo_2_32():
    lut = _lut("wide")
    frames = _frames(4, 128, seed=22)
    start = np.full(128, (1 << 32) - 5, np.uint32)
    out = start.copy()
    assert avx512.window_sums(frames, lut, out, mode="add")
    assert np.array_equal(out, _sum_ref(frames, lut, start=(1 << 32) - 5))
    assert avx512.window_sums(frames, lut, out, mode="sub")
    assert np.array_equal(out, start)
    small = np.ones(128, np.uint32)
    assert avx512.window_sums(frames, lut, small, mode="sub")
    expect = (1 - _sum_ref(frames, lut).astype(np.int64)) % (1 << 32)
    assert np.array_equal(small, expect.astype(np.uint32))


def _threshold_sets():
    rng = np.random.default_rng(23)
    plateaus = np.repeat(np.sort(rng.integers(1, 1 << 20, 64)), 4)[:255]  # runs of equal thresholds
    return {
        "even": np.arange(257) * 3,
        "plateaus": np.concatenate([[0], plateaus, [1 << 21]]),
        # Above 2**31: the compares are unsigned.
        "unsigned": np.concatenate([[0], np.sort(rng.integers(1, (1 << 32) - 1, 255)), [1 << 32]]),
        "gamma": _thresholds(_lut("gamma"), 255),
    }


@vbmi
@pytest.mark.parametrize("name", list(_threshold_sets()))
def test_readout_at_and_below_every_threshold(name):
    t = _threshold_sets()[name].astype(np.uint64)
    steps = avx512.step_tables(t)
    inner = t[1:256].astype(np.int64)
    sums = np.concatenate([inner, inner - 1, inner + 1, [0, 1, (1 << 32) - 1, (1 << 32) - 2]])
    sums = np.clip(sums, 0, (1 << 32) - 1).astype(np.uint32)
    sums = np.concatenate([sums, np.random.default_rng(24).integers(0, 1 << 32, -sums.size % 64 + 64 + 5,
                                                                    dtype=np.uint32)])
    out = np.full(sums.size, 77, np.uint8)
    assert avx512.levels(sums, steps, out)
    whole = sums.size // 64 * 64
    assert np.array_equal(out[:whole], _read_out_ref(t, sums)[:whole])
    assert (out[whole:] == 77).all() and sums.size - whole == 5


@vbmi
def test_window_levels_for_every_frame_count():
    lut = _lut("gamma")
    pool = _frames(255, 64 + 11, seed=25)
    sums = np.cumsum(lut[np.array(pool)].astype(np.uint64), axis=0)
    for n in range(1, 256):
        t = _thresholds(lut, n)
        out = np.zeros(64 + 11, np.uint8)
        assert avx512.window_levels(pool[:n], lut, avx512.step_tables(t), out)
        assert np.array_equal(out[:64], _read_out_ref(t, sums[n - 1, :64])), n
        assert (out[64:] == 0).all()


@vbmi
@pytest.mark.parametrize("n_adds, n_subs", [(0, 0), (3, 0), (0, 4), (1, 1), (7, 2), (255, 255)])
def test_window_slide_against_numpy(n_adds, n_subs):
    lut = _lut("gamma")
    size = 64 * 2 + 9
    adds, subs = _frames(max(n_adds, 1), size, seed=26)[:n_adds], _frames(max(n_subs, 1), size, seed=27)[:n_subs]
    start = np.random.default_rng(28).integers(0, 1 << 32, size, dtype=np.uint32)
    sums = start.copy()
    t = _thresholds(lut, 255)
    out = np.full(size, 5, np.uint8)
    assert avx512.window_slide(adds, subs, lut, avx512.step_tables(t), sums, out)
    grown = _sum_ref(adds, lut, start=0) if adds else np.zeros(size, np.uint32)
    shrunk = _sum_ref(subs, lut) if subs else np.zeros(size, np.uint32)
    expect = (start.astype(np.int64) + grown - shrunk) % (1 << 32)
    assert np.array_equal(sums[:128], expect[:128])
    assert np.array_equal(sums[128:], start[128:]) and (out[128:] == 5).all()
    assert np.array_equal(out[:128], _read_out_ref(t, sums[:128]))


def _frames(n, size, seed=0):
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, size, dtype=np.uint8) for _ in range(n)]
    frames[0][:70] = 255  # the one value whose linear light reaches 1 << 24
    frames[-1][70:140] = 0
    return frames


@vbmi
@pytest.mark.parametrize("crf", ["gamma:2.2", "srgb", "none"])
@pytest.mark.parametrize("n", [1, 2, 25, 255])
def test_sums_equal_the_table_sums(crf, n):
    lut, _ = linear_lut(crf)
    size = 64 * 5 + 17  # five whole vectors and a tail the kernel leaves alone
    frames = _frames(n, size, seed=n)
    out = np.full(size, 7, np.uint32)
    assert avx512.window_sums(frames, lut, out)
    expect = np.sum([lut[f].astype(np.uint64) for f in frames], axis=0)
    assert np.array_equal(out[:320], expect[:320])
    assert (out[320:] == 7).all()


@vbmi
def test_add_and_sub_modes():
    lut, _ = linear_lut("gamma:2.2")
    a, b = _frames(2, 128, seed=3)
    out = np.zeros(128, np.uint32)
    avx512.window_sums([a], lut, out)
    avx512.window_sums([b], lut, out, mode="add")
    assert np.array_equal(out, lut[a] + lut[b])
    avx512.window_sums([a], lut, out, mode="sub")
    assert np.array_equal(out, lut[b])
    with pytest.raises(ValueError, match="mode must be one of"):
        avx512.window_sums([a], lut, out, mode="mul")


def test_declines_what_it_cannot_sum(monkeypatch):
    lut, _ = linear_lut("gamma:2.2")
    out = np.zeros(64, np.uint32)
    too_wide = lut.astype(np.uint64) * 2  # entries past 1 << 24 do not split into three byte planes
    assert avx512.plane_tables(too_wide) is None
    assert not avx512.window_sums([np.zeros(64, np.uint8)], too_wide, out)
    assert not avx512.window_sums([np.zeros(64, np.uint8)] * 256, lut, out)  # 16-bit plane sums would overflow
    monkeypatch.setenv("BLURSYNTH_SIMD", "0")
    assert not avx512.available()
    assert not avx512.window_sums([np.zeros(64, np.uint8)], lut, out)
    assert (out == 0).all()


@vbmi
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


@vbmi
@pytest.mark.parametrize("crf", ["gamma:2.2", "srgb", "none"])
@pytest.mark.parametrize("n", [1, 3, 16, 255])
def test_readout_equals_the_scalar_readout_at_every_threshold(crf, n):
    avg = LinearAverager((64,), crf, max_items=n)
    readout, steps = avg._table(n)
    t = readout.thresholds[1:256].astype(np.int64)
    # Every level's threshold, one below it, and an even sweep of all sums.
    sums = np.concatenate([t, t - 1, np.linspace(0, n * int(avg.lut.max()), 64 * 40).astype(np.int64)])
    sums = np.concatenate([sums, np.zeros(-sums.size % 64, np.int64)]).clip(0).astype(np.uint32)
    expect = np.empty(sums.size, np.uint8)
    readout.encode(sums, expect)
    got = np.empty(sums.size, np.uint8)
    assert avx512.levels(sums, steps, got)
    assert np.array_equal(got, expect)


@vbmi
@pytest.mark.parametrize("crf", ["gamma:2.2", "none"])
def test_window_levels_equal_sums_then_readout(crf):
    n_frames = 11
    frames = _frames(n_frames, 64 * 9, seed=4)
    avg = LinearAverager((64 * 9,), crf, max_items=n_frames)
    readout, steps = avg._table(n_frames)
    sums = np.zeros(64 * 9, np.uint32)
    avx512.window_sums(frames, avg.lut, sums)
    expect = np.empty(sums.size, np.uint8)
    readout.encode(sums, expect)
    got = np.empty(sums.size, np.uint8)
    assert avx512.window_levels(frames, avg.lut, steps, got)
    assert np.array_equal(got, expect)


@vbmi
def test_step_tables_and_argument_checks():
    steps = avx512.step_tables(np.arange(257) * 3)
    assert steps.shape == (19, 16) and steps.ctypes.data % 64 == 0
    assert steps[18, 15] == 3 * 255  # bit 0's last entry: T[2 * 127 + 1]
    with pytest.raises(ValueError, match="257 values"):
        avx512.step_tables(np.arange(256))
    with pytest.raises(ValueError, match="steps must be"):
        avx512.levels(np.zeros(64, np.uint32), np.zeros((19, 16), np.int64), np.zeros(64, np.uint8))
    with pytest.raises(ValueError, match="out must be"):
        avx512.levels(np.zeros(64, np.uint32), steps, np.zeros(63, np.uint8))
    with pytest.raises(ValueError, match="frames must be"):
        avx512.window_sums([np.zeros(65, np.uint8)], linear_lut("none")[0], np.zeros(64, np.uint32))


@vbmi
def test_copied_tables_need_no_particular_alignment():
    import copy

    frames = [f.reshape(8, 8, 3) for f in _frames(5, 192, seed=6)]
    avg = LinearAverager((8, 8, 3), "gamma:2.2", max_items=5)
    for f in frames:
        avg._add(f)
    expect = avg._result()
    twin = copy.deepcopy(avg)  # its cached tables are copies, aligned to 16 bytes at best
    assert np.array_equal(twin._result(), expect)
    steps = avg._table(5)[1]
    buf = np.empty(steps.size + 1, np.uint32)
    shifted = buf[1:].reshape(steps.shape)  # 4 bytes past a 64-byte boundary at best
    shifted[...] = steps
    out = np.empty(avg.acc.size, np.uint8)
    assert avx512.levels(avg.acc, shifted, out)
    assert np.array_equal(out.reshape(8, 8, 3), expect)
    tables, _ = avx512.plane_tables(avg.lut)
    assert avx512.plane_tables(avg.lut.astype(np.int64) - 1) is None  # negative entries
    assert avx512.plane_tables(avg.lut.astype(np.float64)) is None
    assert tables is avx512.plane_tables(avg.lut)[0]


@vbmi
def test_add_group_uses_the_vector_kernel_and_matches_scalar(monkeypatch):
    frames = [f.reshape(10, 10, 3) for f in _frames(6, 300, seed=8)]
    results = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("BLURSYNTH_SIMD", flag)
        avg = LinearAverager((10, 10, 3), "srgb", max_items=6)
        avg._add_group(frames[:4])
        results[flag] = (avg.acc.copy(), avg._add_group(frames[4:], encode=True))
    assert np.array_equal(results["1"][0], results["0"][0])
    assert np.array_equal(results["1"][1], results["0"][1])


@vbmi
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
        sliding._add(frames[19])
        sliding.reset()
        outputs[flag] = []
        for entering, leaving in steps:
            got = sliding.window(entering, leaving)
            outputs[flag].append(got)
            for f in leaving:
                stepwise._subtract(f)
            for f in entering:
                stepwise._add(f)
            assert np.array_equal(got, stepwise._result())
            assert sliding.count == stepwise.count
        assert np.array_equal(sliding.acc, stepwise.acc)
    # The vector pass (flag 1) against the scalar kernels (flag 0), step by step.
    assert all(np.array_equal(a, b) for a, b in zip(outputs["1"], outputs["0"]))
    with pytest.raises(ValueError, match="cannot hold"):
        sliding._slide([], frames[:13])


@vbmi
def test_window_slide_against_table_sums():
    lut, _ = linear_lut("gamma:2.2")
    adds, subs = _frames(3, 64 * 3, seed=13), _frames(2, 64 * 3, seed=14)
    sums = np.sum([lut[f].astype(np.uint64) for f in subs], axis=0).astype(np.uint32) + 5
    steps = LinearAverager((64 * 3,), "gamma:2.2", max_items=3)._table(3)[1]
    out = np.empty(64 * 3, np.uint8)
    assert avx512.window_slide(adds, subs, lut, steps, sums, out)
    expect = np.sum([lut[f].astype(np.uint64) for f in adds], axis=0) + 5
    assert np.array_equal(sums, expect)
    readout, _ = LinearAverager((64 * 3,), "gamma:2.2", max_items=3)._table(3)
    levels = readout.encode(expect.astype(np.uint32))
    assert np.array_equal(out, levels)
