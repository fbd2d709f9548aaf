"""Rendered clips: sub-pixel camera motion over a photo, lossless files, and the tie to trajectory blur."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.signal import fftconvolve

from blursynth._rng import sample_rng
from blursynth.errors import BadInputError
from blursynth.ops.average import average_frames
from blursynth.ops.color import CameraResponse
from blursynth.sources.render import (
    ClipGeometry, RenderSettings, clip_geometry, clip_trajectory, render_clip, render_frames,
    shift_bilinear, write_video,
)
from blursynth.sources.video import iter_frames, probe_source

GAMMA, SRGB = CameraResponse.parse("gamma:2.2"), CameraResponse.parse("srgb")


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[120:240, 150:290])  # 120x140, face and edges


def test_shift_bilinear_integer_half_and_constant():
    rng = np.random.default_rng(0)
    img = rng.random((20, 30, 3))
    g = ClipGeometry(2, 3, 10, 12)
    assert np.array_equal(shift_bilinear(img, 4, 1, g), img[4:14, 6:18])
    half = shift_bilinear(img, 0.5, 0.0, g)
    assert np.allclose(half, 0.5 * (img[3:13, 2:14] + img[3:13, 3:15]))
    quarter = shift_bilinear(img, 0.25, 0.75, g)
    expect = (0.25 * (0.75 * img[3:13, 2:14] + 0.25 * img[3:13, 3:15])
              + 0.75 * (0.75 * img[4:14, 2:14] + 0.25 * img[4:14, 3:15]))
    assert np.allclose(quarter, expect)
    flat = np.full((20, 30, 3), 0.3)
    assert np.allclose(shift_bilinear(flat, 1.37, 2.91, g), 0.3)


def test_geometry_keeps_frames_inside_the_photo():
    traj = np.array([[0.0, 0.0], [-7.5, 3.2], [12.1, -4.9]])
    g = clip_geometry((100, 120, 3), traj)
    for x, y in traj:
        assert g.origin_x + x >= 0 and g.origin_y + y >= 0
        assert g.origin_x + x + g.width <= 120 and g.origin_y + y + g.height <= 100
    assert (g.height, g.width) == (100 - 9, 120 - 21)
    small = clip_geometry((100, 120, 3), traj, size=(50, 61), even=True)
    assert (small.height, small.width) == (50, 60)
    with pytest.raises(BadInputError, match="leaves room"):
        clip_geometry((100, 120, 3), traj * 20)


@pytest.mark.parametrize("crf", ["gamma:2.2", "srgb", "none"])
def test_still_camera_reproduces_the_photo(photo, crf):
    frames = list(render_frames(photo, np.full((3, 2), 5.0), crf=crf,
                                geometry=ClipGeometry(0, 0, 100, 120)))
    for f in frames:
        assert np.array_equal(f, photo[5:105, 5:125])


def test_lossless_file_round_trip_and_png_folder(tmp_path, photo):
    traj, _ = clip_trajectory(12, 10.0, rng=sample_rng(0, 0))
    frames = list(render_frames(photo, traj))
    for name in ("c.mp4", "c.mkv", "frames"):
        n = write_video(iter(frames), tmp_path / name, fps=240)
        assert n == 12
        info = probe_source(tmp_path / name, fps=240 if name == "frames" else None)
        got = [f for _, f in iter_frames(info)]
        assert len(got) == 12 and all(np.array_equal(a, b) for a, b in zip(got, frames))
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_average_of_rendered_clip_equals_blur_by_the_segment_psf(photo):
    """The test that ties frame averaging to trajectory blur.

    Frame k is the photo, in linear light, sampled at camera position p_k with
    bilinear (area) weights, then rounded to 8 bits. Averaging frames s..s+n-1
    in linear light therefore gives the photo correlated with the bilinear
    splat of p_s..p_{s+n-1}, which is exactly what ``rasterize_psf`` builds,
    provided its centring shift is a whole number of pixels: we translate the
    trajectory so the segment's mean is an integer (a global translation of
    the camera path, which changes nothing else).

    Tolerance, in 8-bit levels: each frame's rounding moves it by at most half
    a level in encoded values; for a power-law response the encoded value of a
    linear mean is a power mean, and by Minkowski's inequality that moves it by
    at most half a level too. Both sides are then rounded once more (half a
    level each). So |averaged - reference| <= 1.5, i.e. at most 1 level after
    rounding; typically the error is 0 (float32 PSF values add ~1e-7).
    """
    from blursynth.ops.psf import rasterize_psf

    traj, _ = clip_trajectory(48, 40.0, rng=sample_rng(3, 0))
    s, n = 11, 17
    mean = traj[s:s + n].mean(axis=0)
    traj = traj - (mean - np.round(mean))
    cx, cy = (int(v) for v in np.round(traj[s:s + n].mean(axis=0)))
    geometry = clip_geometry(photo.shape, traj)
    frames = list(render_frames(photo, traj, crf="gamma:2.2", geometry=geometry))
    averaged = average_frames(frames[s:s + n], "gamma:2.2").astype(int)

    psf = rasterize_psf(traj[s:s + n], centre="mass").astype(np.float64)
    k = psf.shape[0]
    half = k // 2
    # The PSF's square is centred on the segment's mean, so on a lopsided segment it can
    # reach past the photo; only its non-zero taps (the path, always inside) matter, so
    # the padding's values never reach the result.
    linear = np.pad(GAMMA.decode(photo / 255.0), ((k, k), (k, k), (0, 0)))
    y0, x0 = geometry.origin_y + cy - half + k, geometry.origin_x + cx - half + k
    region = linear[y0:y0 + geometry.height + k - 1, x0:x0 + geometry.width + k - 1]
    blurred = np.stack([fftconvolve(region[..., c], psf[::-1, ::-1], mode="valid") for c in range(3)], -1)
    reference = np.floor(GAMMA.encode(blurred) * 255 + 0.5)

    diff = np.abs(averaged - reference)
    assert psf.shape[0] >= 5  # a real blur, not a delta
    assert diff.max() <= 1
    assert diff.mean() < 0.15

    # The same through the project's blur engine, with the PSF frames-average
    # records for this window (the camera path flipped into a convolution kernel).
    import torch

    from blursynth.ops.convolve import convolve
    from blursynth.pairs.window_psf import window_psf
    from blursynth.sources.windows import Window

    row_psf = window_psf(traj, Window(0, 0, s, n))
    assert np.allclose(row_psf, psf[::-1, ::-1], atol=1e-7)
    image = torch.from_numpy(np.ascontiguousarray(region.transpose(2, 0, 1)))[None]
    engine = convolve(image, row_psf, border="valid")[0].numpy().transpose(1, 2, 0)
    engine8 = np.floor(GAMMA.encode(engine.astype(np.float64)) * 255 + 0.5)
    assert np.abs(averaged - engine8).max() <= 1
    # And the blur is real: far from the sharp middle frame.
    assert np.abs(averaged - frames[s + n // 2].astype(int)).mean() > 3


def test_render_clip_writes_clip_and_sidecar_deterministically(tmp_path, photo):
    settings = RenderSettings(n_frames=10, length_px=8.0, seed=4, size=(64, 96))
    a = render_clip(photo, tmp_path / "a.mkv", settings, source="astronaut")
    b = render_clip(photo, tmp_path / "b.mkv", settings, source="astronaut")
    assert a["positions_xy"] == b["positions_xy"] and len(a["positions_xy"]) == 10
    side = json.loads((tmp_path / "a.mkv.json").read_text())
    assert side["geometry"] == {"origin_x": a["geometry"]["origin_x"], "origin_y": a["geometry"]["origin_y"],
                                "height": 64, "width": 96}
    fa = [f for _, f in iter_frames(probe_source(tmp_path / "a.mkv"))]
    fb = [f for _, f in iter_frames(probe_source(tmp_path / "b.mkv"))]
    assert len(fa) == 10 and all(np.array_equal(x, y) for x, y in zip(fa, fb))
    steps = np.diff(np.array(side["positions_xy"]), axis=0)
    assert np.isclose(np.hypot(*steps.T).sum(), 8.0)


def test_high_quality_encoding_is_close(tmp_path, photo):
    settings = RenderSettings(n_frames=6, length_px=4.0, seed=1, quality="high", size=(64, 96))
    render_clip(photo, tmp_path / "h.mp4", settings)
    side = json.loads((tmp_path / "h.mp4.json").read_text())
    g = ClipGeometry(**side["geometry"])
    expect = list(render_frames(photo, np.array(side["positions_xy"]), geometry=g))
    got = [f for _, f in iter_frames(probe_source(tmp_path / "h.mp4"))]
    err = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(got, expect)])
    # Lossy 4:2:0 H.264 at crf 12 on a small, detailed crop: measured 2.2-2.7 levels
    # mean error (0.4 of which is 8-bit YUV itself); "lossless" is the exact option.
    assert 0 < err < 4.0


def test_fused_render_kernel_matches_shift_bilinear(photo):
    from blursynth.ops.encode8 import LINEAR_SCALE, linear_lut

    traj = np.array([[0.0, 0.0], [3.3, -1.7], [7.91, 2.05]])
    g = clip_geometry(photo.shape, traj)
    lut, _ = linear_lut("srgb")
    linear = np.pad(lut.astype(np.float64)[photo] / LINEAR_SCALE, ((0, 1), (0, 1), (0, 0)), mode="edge")
    for (x, y), frame in zip(traj, render_frames(photo, traj, crf="srgb", geometry=g)):
        v = SRGB.encode(shift_bilinear(linear, x, y, g)) * 255
        # Same formula; the fused kernel rounds linear light to 2**-24 before the
        # 8-bit read-out, which flips only values within ~1e-4 of a rounding tie
        # (sRGB's dark linear segment is where 2**-24 is largest in 8-bit terms).
        wrong = frame != np.floor(v + 0.5)
        assert np.all(np.abs(v[wrong] - np.floor(v[wrong]) - 0.5) < 2e-4)
        assert np.abs(frame - v).max() <= 0.5 + 2e-4
