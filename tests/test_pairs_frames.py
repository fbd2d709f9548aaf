"""The frames-average scheduler and plan (pairs/frames.py): windows of a stream, pinned bytes, memory, errors.

Every test here averages, so each runs with the AVX-512 kernel (where this CPU has it) and the scalar kernels.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from blursynth.ops.average import average_frames
from blursynth.pairs.frame_average import average_windows
from blursynth.sources.video import iter_frames, probe_source
from blursynth.sources.windows import plan_windows

from .conftest import random_frames, write_clip

pytestmark = pytest.mark.usefixtures("kernel")


@pytest.mark.parametrize("overlap,gap", [(0, 0), (3, 0), (0, 2)])
def test_average_windows_matches_per_window_average(overlap, gap):
    frames = random_frames(60, seed=2)
    wins = plan_windows([60], window_min=5, window_max=9, seed=4, overlap=overlap, gap=gap)
    got = list(average_windows(enumerate(frames), wins, crf="srgb"))
    assert [w for w, _, _ in got] == wins
    for w, blurred, sharp in got:
        assert np.array_equal(blurred, average_frames(frames[w.start:w.stop], "srgb"))
        assert np.array_equal(sharp, frames[w.sharp])


def test_plan_counts_every_decoded_frame(tmp_path):
    from blursynth.pairs.frames import FramesAverageSettings, iter_pairs, plan_frames_average

    frames = random_frames(30, shape=(16, 16, 3), seed=4)
    write_clip(tmp_path / "a.mkv", frames)
    write_clip(tmp_path / "b.mkv", frames[:12])
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
    for w, blurred, sharp, cut in pairs:
        assert cut is None
        src = frames if w.source == 0 else frames[:12]
        assert np.array_equal(blurred, average_frames(src[w.start:w.stop]))


def test_memory_does_not_grow_with_video_length(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    peaks = {}
    for n in (40, 400):
        frames = [np.roll(base, k, axis=1) for k in range(n)]
        write_clip(tmp_path / f"c{n}.mkv", frames, codec="ffv1", pix_fmt="bgr0", options={})
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


def test_memory_is_flat_for_windows_summed_in_groups(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    peaks = {}
    for n in (40, 400):
        write_clip(tmp_path / f"c{n}.mkv", [np.roll(base, k, axis=1) for k in range(n)], codec="ffv1",
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
