"""Frame averaging: exactness against the float64 formula, running sums, windows, readers, interpolation."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from blursynth.errors import BadInputError
from blursynth.video import (
    LINEAR_SCALE, LinearAverager, TruncatedVideoWarning, Window, average_frames, average_windows,
    decode_float, encode_float, expanded_frames, iter_frames, linear_lut, parse_window, plan_windows,
    probe_source, window_length,
)

CRFS = ["gamma:2.2", "srgb", "none"]


@pytest.fixture(autouse=True, params=["vector", "scalar"])
def kernel(request, monkeypatch):
    """Every test runs with the AVX-512 kernel (where this CPU has it) and with the scalar kernels."""
    monkeypatch.setenv("BLURSYNTH_SIMD", "1" if request.param == "vector" else "0")
    return request.param


def naive_average(frames, crf):
    """The reference: float64 decode, mean, encode, scaled to 8 bits (not rounded)."""
    stack = np.stack([f.astype(np.float64) / 255.0 for f in frames])
    return encode_float(decode_float(stack, crf).mean(axis=0), crf) * 255.0


def random_frames(n, shape=(16, 24, 3), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


def write_video(path, frames, fps=240, codec="libx264rgb", pix_fmt="rgb24", options=None, container_options=None):
    import av

    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream(codec, rate=fps)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = pix_fmt
        s.options = options if options is not None else ({"crf": "0"} if codec.startswith("libx264") else {})
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


# --- camera response tables --------------------------------------------------------------------

@pytest.mark.parametrize("crf", CRFS)
def test_lut_is_the_rounded_closed_form(crf):
    lut, scale = linear_lut(crf)
    expect = decode_float(np.arange(256) / 255.0, crf) * scale
    assert lut[0] == 0 and lut[255] == scale
    assert np.abs(lut - expect).max() <= 0.5
    assert (np.diff(lut.astype(np.int64)) > 0).all()


# --- exactness ---------------------------------------------------------------------------------

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
    for f in frames:
        avg.add(f)
    assert np.abs(avg.result() - naive_average(frames, "gamma:2.2")).max() <= 0.5 + 1e-9


# --- running sum -------------------------------------------------------------------------------

def test_running_sum_equals_resumming_bit_for_bit():
    frames = random_frames(30, seed=1)
    run = LinearAverager(frames[0].shape, "gamma:2.2", max_items=10)
    for i, f in enumerate(frames):
        run.add(f)
        if i >= 9:
            fresh = LinearAverager(frames[0].shape, "gamma:2.2", max_items=10)
            for g in frames[i - 9:i + 1]:
                fresh.add(g)
            assert np.array_equal(run.acc, fresh.acc)
            run.subtract(frames[i - 9])


@pytest.mark.parametrize("overlap,gap", [(0, 0), (3, 0), (0, 2)])
def test_average_windows_matches_per_window_average(overlap, gap):
    frames = random_frames(60, seed=2)
    wins = plan_windows([60], window_min=5, window_max=9, seed=4, overlap=overlap, gap=gap)
    got = list(average_windows(enumerate(frames), wins, crf="srgb"))
    assert [w for w, _, _ in got] == wins
    for w, blurred, sharp in got:
        assert np.array_equal(blurred, average_frames(frames[w.start:w.stop], "srgb"))
        assert np.array_equal(sharp, frames[w.sharp])


# --- windows -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expect", [("5-25", (5, 25)), ("7", (7, 7)), (" 3 - 4 ", (3, 4)), (9, (9, 9))])
def test_parse_window(text, expect):
    assert parse_window(text) == expect


@pytest.mark.parametrize("text", ["25-5", "0-3", "abc", "4-", "1", "-3", "5-25-30"])
def test_parse_window_rejects(text):
    with pytest.raises(BadInputError, match="--window"):
        parse_window(text)


def test_plan_is_deterministic_and_keyed_by_pair():
    a = plan_windows([500, 300], window_min=5, window_max=25, seed=11)
    b = plan_windows([500, 300], window_min=5, window_max=25, seed=11)
    assert a == b
    assert [w.length for w in a] == [window_length(11, w.index, 5, 25) for w in a]
    assert {w.length for w in a} > {5, 25} or len({w.length for w in a}) > 10
    # A prefix of the plan does not depend on how many pairs are asked for.
    assert plan_windows([500, 300], window_min=5, window_max=25, seed=11, max_pairs=7) == a[:7]
    assert plan_windows([500, 300], window_min=5, window_max=25, seed=12) != a


def test_plan_layout_contiguous_gap_overlap_and_sources():
    wins = plan_windows([100, 40], window_min=5, window_max=9, seed=0)
    for prev, cur in zip(wins, wins[1:]):
        if cur.source == prev.source:
            assert cur.start == prev.stop
        else:
            assert cur.start == 0 and cur.source == prev.source + 1
    assert all(w.stop <= (100, 40)[w.source] for w in wins)
    assert {w.source for w in wins} == {0, 1}
    gapped = plan_windows([100], window_min=5, window_max=5, seed=0, gap=3)
    assert [w.start for w in gapped[:3]] == [0, 8, 16]
    over = plan_windows([100], window_min=6, window_max=6, seed=0, overlap=2)
    assert [w.start for w in over[:3]] == [0, 4, 8]
    with pytest.raises(BadInputError):
        plan_windows([100], window_min=5, window_max=9, seed=0, overlap=5)


def test_odd_only_and_middle_frame_choice():
    wins = plan_windows([1000], window_min=4, window_max=12, seed=5, odd_only=True)
    assert all(w.length % 2 == 1 and 5 <= w.length <= 11 for w in wins)
    assert {w.length for w in wins} == {5, 7, 9, 11}
    odd, even = Window(0, 0, 10, 5), Window(1, 0, 20, 6)
    assert (odd.sharp, odd.sharp_offset_frames) == (12, 0.0)  # the middle frame
    assert (even.sharp, even.sharp_offset_frames) == (23, 0.5)  # later of 22 and 23
    # Through the averager: frames whose value is their index.
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(40)]
    got = {w.start: s[0, 0, 0] for w, _, s in average_windows(enumerate(frames), [odd, even], crf="none")}
    assert got == {10: 12, 20: 23}


# --- readers -----------------------------------------------------------------------------------

def test_video_and_folder_readers_agree_and_seek(tmp_path):
    from blursynth.sources.photos import save_rgb8

    frames = random_frames(30, shape=(32, 48, 3), seed=7)
    write_video(tmp_path / "c.mkv", frames)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        save_rgb8(folder / f"{i + 1:06d}.png", f)
    video = probe_source(tmp_path / "c.mkv")
    assert (video.n_frames, video.height, video.width, video.fps) == (30, 32, 48, 240.0)
    seq = probe_source(folder, fps=240)
    assert seq.n_frames == 30
    for info in (video, seq):
        got = list(iter_frames(info))
        assert [i for i, _ in got] == list(range(30))
        assert all(np.array_equal(f, frames[i]) for i, f in got)
        part = list(iter_frames(info, 17, 21))
        assert [i for i, _ in part] == [17, 18, 19, 20]
        assert all(np.array_equal(f, frames[i]) for i, f in part)


def test_folder_reader_reads_ahead_in_order_and_stops_at_a_broken_frame(tmp_path):
    from blursynth.sources.photos import save_rgb8

    frames = random_frames(12, shape=(16, 24, 3), seed=9)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        save_rgb8(folder / f"{i:06d}.png", f)
    info = probe_source(folder, fps=240)
    path = folder / "000007.png"
    path.write_bytes(path.read_bytes()[:60])  # header intact (probe passes), data cut short
    with pytest.warns(TruncatedVideoWarning, match="000007.png' could not be decoded"):
        got = list(iter_frames(info))
    assert [i for i, _ in got] == list(range(7))
    assert all(np.array_equal(f, frames[i]) for i, f in got)
    save_rgb8(path, np.zeros((16, 20, 3), np.uint8))  # replaced by another size after probing
    with pytest.raises(BadInputError, match="changed size"):
        list(iter_frames(info))


def test_truncated_video_warns_and_keeps_good_frames(tmp_path):
    frames = random_frames(40, shape=(64, 96, 3), seed=8)
    path = tmp_path / "t.mp4"
    write_video(path, frames, codec="libx264", pix_fmt="yuv420p", options={"crf": "18"},
                container_options={"movflags": "faststart"})
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    info = probe_source(cut)
    assert info.n_frames == 40
    with pytest.warns(TruncatedVideoWarning, match="ended at frame"):
        got = [i for i, _ in iter_frames(info)]
    assert 5 < len(got) < 40 and got == list(range(len(got)))


def test_memory_does_not_grow_with_video_length(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    peaks = {}
    for n in (40, 400):
        frames = [np.roll(base, k, axis=1) for k in range(n)]
        write_video(tmp_path / f"c{n}.mkv", frames, codec="ffv1", pix_fmt="bgr0", options={})
        del frames
        info = probe_source(tmp_path / f"c{n}.mkv")
        wins = plan_windows([n], window_min=9, window_max=9, seed=0, overlap=4)
        tracemalloc.start()
        count = sum(1 for _ in average_windows(iter_frames(info), wins, crf="gamma:2.2"))
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert count == len(wins)
    frame_bytes = base.nbytes
    # The window (9 frames) plus accumulator and read-out buffers: about 20 frames, whatever the length.
    assert peaks[400] < 30 * frame_bytes
    assert peaks[400] < 1.3 * peaks[40]


def test_probe_errors(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        probe_source(tmp_path / "nope.mp4")
    (tmp_path / "x.mp4").write_text("not a video")
    with pytest.raises(BadInputError, match="not a video"):
        probe_source(tmp_path / "x.mp4")


# --- interpolation -----------------------------------------------------------------------------

def _moving_bar(n, speed, x0=8):
    """A 12-px grey bar with a 2-px bright line, moving over a smooth texture.

    The wide bar gives the flow estimator something to track; the thin line
    shows the ghost copies in the average.
    """
    import cv2

    noise = cv2.GaussianBlur(np.random.default_rng(1).random((64, 128)).astype(np.float32), (0, 0), 3)
    tex = (40 + 40 * noise / noise.max()).astype(np.uint8)
    out = []
    for k in range(n):
        f = tex.copy()
        x = x0 + speed * k
        f[:, x:x + 12] = 140
        f[:, x + 5:x + 7] = 250
        out.append(np.repeat(f[..., None], 3, 2))
    return out


def _ghost_spacing(avg, lo, hi):
    from scipy.signal import find_peaks

    prof = avg[16:48, :, 0].astype(float).mean(0)
    peaks, _ = find_peaks(prof[lo:hi], prominence=3)
    return float(np.median(np.diff(peaks))), len(peaks)


def test_interpolation_keeps_real_frames_and_halves_ghost_spacing():
    speed, n = 6, 5
    frames = _moving_bar(n, speed)
    lo, hi = 8 + 3, 8 + 9 + speed * (n - 1)
    spacing = {}
    for k in (1, 2):
        items = list(expanded_frames(enumerate(frames), k))
        assert len(items) == (n - 1) * k + 1
        assert [t for t, _ in items] == list(range((n - 1) * k + 1))
        assert all(np.array_equal(f, frames[t // k]) for t, f in items if t % k == 0)
        spacing[k] = _ghost_spacing(average_frames([f for _, f in items], "gamma:2.2"), lo, hi)
    assert spacing[1] == (speed, n)
    assert abs(spacing[2][0] - speed / 2) <= 0.5 and spacing[2][1] >= 2 * n - 2


def test_interpolated_windows_average_the_expanded_stream():
    frames = _moving_bar(9, 4)
    wins = plan_windows([9], window_min=4, window_max=4, seed=0, overlap=1)
    got = list(average_windows(enumerate(frames), wins, crf="gamma:2.2", interpolate=3))
    items = dict(expanded_frames(enumerate(frames), 3))
    for w, blurred, sharp in got:
        expect = average_frames([items[t] for t in range(w.start * 3, (w.stop - 1) * 3 + 1)], "gamma:2.2")
        assert np.array_equal(blurred, expect)
        assert np.array_equal(sharp, frames[w.sharp])


def test_linear_scale_constant():
    assert LINEAR_SCALE * 255 < 2**32


def test_plan_counts_every_decoded_frame(tmp_path):
    from blursynth.video import FramesAverageSettings, iter_pairs, plan_frames_average

    frames = random_frames(30, shape=(16, 16, 3), seed=4)
    write_video(tmp_path / "a.mkv", frames)
    write_video(tmp_path / "b.mkv", frames[:12])
    plan = plan_frames_average([tmp_path / "a.mkv", tmp_path / "b.mkv"],
                               FramesAverageSettings(window_min=4, window_max=6, gap=2, seed=1))
    assert {w.source for w in plan.windows} == {0, 1}

    class Count:
        n = 0

        def update(self, k):
            self.n += k

    bar = Count()
    pairs = list(iter_pairs(plan, progress=bar))
    assert len(pairs) == len(plan.windows) and bar.n == plan.n_frames
    for w, blurred, sharp in pairs:
        src = frames if w.source == 0 else frames[:12]
        assert np.array_equal(blurred, average_frames(src[w.start:w.stop]))


# --- the background averaging thread and the blocked read-out ----------------------------------

# sha256 (first 16 hex) of every (blurred, sharp) of _pinned_run, made by the implementation
# before the read-out was blocked and the sums moved to a background thread: the bytes must not move.
PINNED = {
    ("gamma:2.2", 0): "5986436c3e70acd5", ("gamma:2.2", 4): "5fae309bf72daa56",
    ("srgb", 0): "3dfd3e3369fde11d", ("srgb", 4): "777956a0328dbb4a",
    ("none", 0): "5c39652edee0c761", ("none", 4): "69defcf203fc5a0c",
}


def _pinned_run(crf, overlap):
    import hashlib

    rng = np.random.default_rng(7)
    base = rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)  # 8400 values: more than one read-out block
    frames = [np.roll(base, 3 * i, axis=1) // (1 + i % 3) for i in range(40)]
    wins = plan_windows([40], window_min=5, window_max=12, seed=3, overlap=overlap)
    h = hashlib.sha256()
    for _, blurred, sharp in average_windows(enumerate(frames), wins, crf=crf):
        h.update(blurred.tobytes())
        h.update(sharp.tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("crf,overlap", sorted(PINNED))
def test_average_windows_bytes_are_pinned(crf, overlap):
    assert _pinned_run(crf, overlap) == PINNED[crf, overlap]


@pytest.mark.parametrize("crf", CRFS)
def test_readout_over_several_blocks_matches_naive(crf):
    frames = random_frames(7, shape=(37, 61, 3), seed=11)  # 6771 values: one full block and a partial one
    got = average_frames(frames, crf)
    assert np.abs(got - naive_average(frames, crf)).max() <= 0.5 + 1e-9


def test_reset_then_add_forgets_the_old_sum():
    a, b = random_frames(2, seed=12)
    avg = LinearAverager(a.shape, "srgb", max_items=4)
    for _ in range(3):
        avg.add(a)
    avg.reset()
    avg.add(b)
    assert np.array_equal(avg.result(), average_frames([b], "srgb"))
    with pytest.raises(ValueError, match="no frames"):
        LinearAverager(a.shape, "srgb", max_items=4).subtract(a)


def test_average_windows_raises_background_errors_and_stops_its_thread():
    import threading

    frames = random_frames(12, seed=13)
    frames[7] = frames[7][:8]  # a frame of another size reaches the summing thread
    wins = plan_windows([12], window_min=4, window_max=4, seed=0)
    got = []
    with pytest.raises(ValueError, match="frame must be uint8"):
        for item in average_windows(enumerate(frames), wins, crf="none"):
            got.append(item)
    assert [w.start for w, _, _ in got] == [0]  # the window before the bad frame came out
    # Leaving early (or failing) shuts the thread down.
    stream = average_windows(enumerate(random_frames(12, seed=14)), wins, crf="none")
    next(stream)
    stream.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("blursynth-average")]


@pytest.mark.parametrize("crf", CRFS)
@pytest.mark.parametrize("shape", [(16, 24, 3), (5, 7, 3)])  # even: grouped pair table; odd: running sum
def test_average_of_a_window_equals_the_running_sum(crf, shape):
    frames = random_frames(9, shape=shape, seed=15)
    avg = LinearAverager(shape, crf, max_items=9)
    for f in frames:
        avg.add(f)
    running = avg.result()
    fresh = LinearAverager(shape, crf, max_items=9)
    assert np.array_equal(fresh.average(frames), running)
    # A frame at an odd address (a uint16 view needs 2-byte alignment) gives the same bytes.
    buf = np.empty(frames[0].nbytes + 1, np.uint8)
    odd = buf[1:].reshape(shape)
    odd[...] = frames[0]
    assert np.array_equal(fresh.average([odd] + frames[1:]), running)
    with pytest.raises(ValueError, match="at most 255 frames"):
        LinearAverager((2, 2, 3), crf, max_items=9).average([np.zeros((2, 2, 3), np.uint8)] * 256)


@pytest.mark.parametrize("sizes", [(1,), (4,), (4, 1), (2, 3), (4, 4, 2)])
def test_groups_add_like_single_frames(sizes):
    frames = random_frames(sum(sizes), seed=16)
    single = LinearAverager(frames[0].shape, "gamma:2.2", max_items=10)
    grouped = LinearAverager(frames[0].shape, "gamma:2.2", max_items=10)
    at = 0
    for size in sizes[:-1]:
        grouped.add_group(frames[at:at + size])
        for f in frames[at:at + size]:
            single.add(f)
        assert np.array_equal(grouped.acc, single.acc) and grouped.count == single.count
        at += size
    for f in frames[at:]:
        single.add(f)
    assert np.array_equal(grouped.add_group(frames[at:], encode=True), single.result())
    with pytest.raises(ValueError, match="1 to 4 frames"):
        grouped.add_group(frames[:1] * 5)


def test_memory_is_flat_for_windows_summed_in_groups(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    peaks = {}
    for n in (40, 400):
        write_video(tmp_path / f"c{n}.mkv", [np.roll(base, k, axis=1) for k in range(n)], codec="ffv1",
                    pix_fmt="bgr0", options={})
        info = probe_source(tmp_path / f"c{n}.mkv")
        wins = plan_windows([n], window_min=9, window_max=9, seed=0)  # no overlap: the grouped path
        tracemalloc.start()
        count = sum(1 for _ in average_windows(iter_frames(info), wins, crf="gamma:2.2"))
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert count == len(wins)
    # Two windows of frames, the accumulator and the 512 KiB pair table, whatever the length.
    assert peaks[400] < 30 * base.nbytes + 65536 * 8
    assert peaks[400] < 1.3 * peaks[40]

