"""Optical-flow interpolation (sources/flow.py): real frames kept, ghosts halved, windows of the expanded stream."""

from __future__ import annotations

import numpy as np
import pytest

from blursynth.ops.average import average_frames
from blursynth.pairs.frames import average_windows
from blursynth.sources.flow import expanded_frames
from blursynth.sources.windows import plan_windows

pytestmark = pytest.mark.usefixtures("kernel")  # every test here averages


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


def test_frame_motion_measures_a_pan_and_refuses_unrelated_frames():
    from skimage import data

    from blursynth.sources.flow import frame_motion_px

    a = data.astronaut()
    for step in (0, 3, 8):
        motion = frame_motion_px(a[:400, :500], a[:400, step:500 + step])
        assert abs(motion - step) < 0.5, (step, motion)
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(2)]
    assert frame_motion_px(*noise) is None  # independent noise: the flow explains nothing
    assert frame_motion_px(a[:300, :300], data.coffee()[:300, :300]) is None  # a cut
    assert frame_motion_px(a[:12, :12], a[:12, 2:14]) is None  # too small to measure


def test_frame_motion_sees_a_small_subject_moving_over_a_still_noisy_frame():
    """Ordinary video: most of the frame is still but for compression noise, and a subject
    covering a few percent of it moves 10 px. The flow explains the subject's change, so the
    motion is measured (it was refused as unexplained when the noise of the still part was
    counted in the test)."""
    from skimage import data

    from blursynth.sources.flow import frame_motion_px

    rng = np.random.default_rng(1)
    back = data.coffee()[:360, :480]
    subject = data.astronaut()[100:180, 180:260]
    frames = []
    for x in (100, 110):
        f = back.copy()
        f[140:220, x:x + 80] = subject
        noise = rng.normal(0, 3, f.shape)
        frames.append(np.clip(f + noise, 0, 255).astype(np.uint8))
    motion = frame_motion_px(*frames, percentile=99)
    assert motion is not None and 6 < motion < 14, motion
