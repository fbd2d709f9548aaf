"""Exact linear-light averaging (ops/average.py): against the float64 formula, running sums, one-pass windows.

Every test here averages, so each runs with the AVX-512 kernel (where this CPU has it) and the scalar kernels.
"""

from __future__ import annotations

import numpy as np
import pytest

from blursynth.ops.average import LinearAverager, average_frames

from .conftest import naive_average, random_frames

pytestmark = pytest.mark.usefixtures("kernel")

CRFS = ["gamma:2.2", "srgb", "none"]


@pytest.mark.parametrize("crf", CRFS)
@pytest.mark.parametrize("n", [2, 5, 8, 25])
def test_average_equals_naive_float64_within_final_rounding(crf, n):
    frames = random_frames(n, seed=n)
    out = average_frames(frames, crf).astype(np.float64)
    v = naive_average(frames, crf)
    # Output is round-half-up of the float64 value ...
    assert np.abs(out - v).max() <= 0.5 + 1e-9
    # ... and differs from it only at (numerical) ties.
    wrong = out != np.floor(v + 0.5)
    assert np.all(np.abs(v[wrong] - np.floor(v[wrong]) - 0.5) < 1e-3)
    if crf == "none":
        # Integer averaging is exact: round half up of sum / n, in integers.
        total = np.sum([f.astype(np.int64) for f in frames], axis=0)
        assert np.array_equal(out, (2 * total + n) // (2 * n))


def test_exact_on_smooth_and_extreme_content():
    # Dark values are where gamma 2.2 is steepest; 0 and 255 are the ends of the table.
    ramp = np.tile(np.arange(256, dtype=np.uint8), (2, 1))[..., None].repeat(3, 2)
    frames = [np.roll(ramp, k, axis=1) for k in range(7)] + [np.zeros_like(ramp), np.full_like(ramp, 255)]
    for crf in CRFS:
        out = average_frames(frames, crf).astype(np.float64)
        assert np.abs(out - naive_average(frames, crf)).max() <= 0.5 + 1e-9


def test_none_rounds_half_up():
    a, b = np.full((1, 1, 3), 1, np.uint8), np.full((1, 1, 3), 2, np.uint8)
    assert average_frames([a, b], "none")[0, 0, 0] == 2


def test_constant_frames_stay_constant():
    for crf in CRFS:
        for v in (0, 1, 17, 128, 254, 255):
            f = np.full((4, 5, 3), v, np.uint8)
            assert (average_frames([f] * 9, crf) == v).all()


def test_uint64_accumulator_for_long_windows():
    frames = random_frames(300, shape=(2, 3, 3), seed=3)
    avg = LinearAverager(frames[0].shape, "gamma:2.2", max_items=300)
    assert avg.acc.dtype == np.uint64
    assert np.abs(avg.window(frames) - naive_average(frames, "gamma:2.2")).max() <= 0.5 + 1e-9


def test_running_sum_equals_resumming_bit_for_bit():
    frames = random_frames(30, seed=1)
    run = LinearAverager(frames[0].shape, "gamma:2.2", max_items=10)
    run.window(frames[:10])
    for i in range(10, 30):
        # One frame in, one out: the running sums equal summing the new window afresh.
        slid = run.window([frames[i]], [frames[i - 10]])
        fresh = LinearAverager(frames[0].shape, "gamma:2.2", max_items=10)
        assert np.array_equal(slid, fresh.window(frames[i - 9:i + 1]))
        assert np.array_equal(run.acc, fresh.acc)


@pytest.mark.parametrize("crf", CRFS)
def test_readout_over_several_blocks_matches_naive(crf):
    frames = random_frames(7, shape=(37, 61, 3), seed=11)  # 6771 values: one full block and a partial one
    got = average_frames(frames, crf)
    assert np.abs(got - naive_average(frames, crf)).max() <= 0.5 + 1e-9


def test_reset_then_add_forgets_the_old_sum():
    a, b = random_frames(2, seed=12)
    avg = LinearAverager(a.shape, "srgb", max_items=4)
    avg.window([a, a, a])
    avg.reset()
    assert np.array_equal(avg.window([b]), average_frames([b], "srgb"))
    with pytest.raises(ValueError, match="no frames"):
        LinearAverager(a.shape, "srgb", max_items=4).window([], [a])
    with pytest.raises(ValueError, match="cannot leave"):
        avg.window([a], [a, b])


def test_a_window_that_is_not_held_leaves_the_next_to_start_afresh():
    frames = random_frames(6, seed=17)
    avg = LinearAverager(frames[0].shape, "gamma:2.2", max_items=3)
    avg.window(frames[:3])
    assert np.array_equal(avg.window(frames[3:5], frames[:2], hold=False), average_frames(frames[2:5]))
    assert avg.count == 0
    assert np.array_equal(avg.window(frames[5:]), average_frames(frames[5:]))


@pytest.mark.parametrize("crf", CRFS)
@pytest.mark.parametrize("shape", [(16, 24, 3), (5, 7, 3)])  # even: grouped pair table; odd: running sum
def test_average_of_a_window_equals_the_running_sum(crf, shape):
    frames = random_frames(9, shape=shape, seed=15)
    avg = LinearAverager(shape, crf, max_items=9)
    running = avg.window(frames)  # summed and held (the sums stay for a next window)
    fresh = LinearAverager(shape, crf, max_items=9)
    assert np.array_equal(fresh.window(frames, hold=False), running)  # summed in one pass, not held
    # A frame at an odd address (a uint16 view needs 2-byte alignment) gives the same bytes.
    buf = np.empty(frames[0].nbytes + 1, np.uint8)
    odd = buf[1:].reshape(shape)
    odd[...] = frames[0]
    assert np.array_equal(fresh.window([odd] + frames[1:], hold=False), running)
    with pytest.raises(ValueError, match="at most 255 frames"):
        LinearAverager((2, 2, 3), crf, max_items=9).window([np.zeros((2, 2, 3), np.uint8)] * 256, hold=False)


@pytest.mark.parametrize("sizes", [(1,), (4,), (4, 1), (2, 3), (4, 4, 2)])
def test_groups_add_like_single_frames(sizes):
    # The scalar building blocks: a group of frames per pass sums like one frame at a time.
    frames = random_frames(sum(sizes), seed=16)
    single = LinearAverager(frames[0].shape, "gamma:2.2", max_items=10)
    grouped = LinearAverager(frames[0].shape, "gamma:2.2", max_items=10)
    at = 0
    for size in sizes[:-1]:
        grouped._add_group(frames[at:at + size])
        for f in frames[at:at + size]:
            single._add(f)
        assert np.array_equal(grouped.acc, single.acc) and grouped.count == single.count
        at += size
    for f in frames[at:]:
        single._add(f)
    assert np.array_equal(grouped._add_group(frames[at:], encode=True), single._result())
    with pytest.raises(ValueError, match="1 to 4 frames"):
        grouped._add_group(frames[:1] * 5)
