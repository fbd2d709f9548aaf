"""The scene-blur renderer: homography warps, layers composited per sub-frame, rolling shutter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blursynth.errors import BadInputError
from blursynth.ops.warp import Layer, render_subframes, subframe_weights, warp_bilinear


def _naive_warp(src, hm, out_shape, offset=(0.0, 0.0)):
    """Per-pixel reference: project, reflect-101 the four taps, bilinear."""

    def fold(i, n):
        if n == 1:
            return 0
        period = 2 * (n - 1)
        i %= period
        return period - i if i >= n else i

    h, w = src.shape[:2]
    out = np.empty((*out_shape, src.shape[2]), np.float64)
    for r in range(out_shape[0]):
        for c in range(out_shape[1]):
            v = hm @ np.array([c + offset[0], r + offset[1], 1.0])
            qx, qy = v[0] / v[2], v[1] / v[2]
            x0, y0 = math.floor(qx), math.floor(qy)
            fx, fy = qx - x0, qy - y0
            xa, xb, ya, yb = fold(x0, w), fold(x0 + 1, w), fold(y0, h), fold(y0 + 1, h)
            out[r, c] = ((1 - fy) * ((1 - fx) * src[ya, xa] + fx * src[ya, xb])
                         + fy * ((1 - fx) * src[yb, xa] + fx * src[yb, xb]))
    return out


def _shifts(dx, dy=None):
    """Homographies of pure translations: the output pixel sees the source at ``p + (dx, dy)``."""
    dx = np.asarray(dx, np.float64)
    dy = np.zeros_like(dx) if dy is None else np.asarray(dy, np.float64)
    hms = np.repeat(np.eye(3)[None], len(dx), axis=0)
    hms[:, 0, 2] = dx
    hms[:, 1, 2] = dy
    return hms


def test_warp_identity_integer_shift_and_naive():
    rng = np.random.default_rng(0)
    src = rng.random((12, 16, 3), dtype=np.float32)
    assert np.array_equal(warp_bilinear(src, np.eye(3), (12, 16)), src)
    shifted = warp_bilinear(src, _shifts([3.0], [2.0])[0], (8, 10))
    assert np.array_equal(shifted, src[2:10, 3:13])
    hm = np.array([[0.98, 0.05, 1.3], [-0.04, 1.01, -2.2], [1e-3, -5e-4, 1.0]])
    fast = warp_bilinear(src, hm, (15, 20), offset=(-1.5, 2.0))
    assert np.allclose(fast, _naive_warp(src, hm, (15, 20), (-1.5, 2.0)), atol=1e-5)
    plane = warp_bilinear(src[..., 0], hm, (15, 20))
    assert plane.shape == (15, 20) and np.array_equal(plane, warp_bilinear(src, hm, (15, 20))[..., 0])


def test_warp_border_is_reflect101_like_cv2():
    import cv2

    rng = np.random.default_rng(1)
    src = rng.random((10, 14, 3), dtype=np.float32)
    padded = cv2.copyMakeBorder(src, 6, 6, 6, 6, cv2.BORDER_REFLECT_101)
    out = warp_bilinear(src, _shifts([-6.0], [-6.0])[0], padded.shape[:2])
    assert np.array_equal(out, padded)


def test_render_translation_equals_uniform_psf_blur():
    """A translation-only path renders today's uniform PSF blur (render_pair) within one level."""
    from skimage import data

    from blursynth.ops.blur import _encode_hwc, render_pair
    from blursynth.ops.color import CameraResponse
    from blursynth.ops.psf import rasterize_psf
    from blursynth.ops.trajectory import sample_trajectory

    photo = np.ascontiguousarray(data.astronaut()[150:198, 180:244])  # 48x64
    traj, _ = sample_trajectory(rng=(3, 7), n_samples=96, length_px=9.0)
    psf = rasterize_psf(traj)
    expected, _ = render_pair(photo, psf, method="direct")
    crf = CameraResponse.parse("gamma:2.2")
    src = crf.decode_table()[photo]
    offsets = traj - traj.mean(axis=0)  # mass-centred, as the PSF
    blurred, mask = render_subframes(src, _shifts(-offsets[:, 0], -offsets[:, 1]), photo.shape[:2])
    import torch

    got = _encode_hwc(torch.from_numpy(np.ascontiguousarray(blurred.transpose(2, 0, 1))), crf)
    diff = np.abs(got.astype(int) - expected.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.05
    assert not mask.any()


def test_static_camera_with_rolling_shutter_is_sharp_and_unskewed():
    rng = np.random.default_rng(2)
    src = rng.random((20, 24, 3), dtype=np.float32)
    hms = np.repeat(np.eye(3)[None], 9, axis=0)
    for rho in (0.0, 0.3, 1.0):
        out, mask = render_subframes(src, hms, (20, 24), rolling_shutter=rho)
        assert np.allclose(out, src, atol=1e-6) and not mask.any()


def test_rolling_shutter_skews_a_pan_row_by_row():
    """A constant pan: row r sees the path's window starting at r / (H - 1) * rho, so its
    mean shift grows linearly down the frame (the skew), and a global shutter has none."""
    h, w = 16, 40
    src = np.tile(np.arange(w, dtype=np.float32)[None, :, None], (h, 1, 3))  # value = x
    rho, speed, n = 0.5, 6.0, 60  # the pan moves `speed` px per exposure
    times = (np.arange(n) + 0.5) / n * (1 + rho)
    hms = _shifts(speed * times)
    out, _ = render_subframes(src, hms, (h, w), rolling_shutter=rho)
    centre = out[:, 15:25, 0] - np.arange(15, 25)[None]  # the mean shift each row saw
    expect = speed * (np.arange(h) / (h - 1) * rho + 0.5)
    assert np.allclose(centre, expect[:, None], atol=1e-4)
    flat, _ = render_subframes(src, _shifts(speed * (np.arange(n) + 0.5) / n), (h, w))
    assert np.allclose(flat[:, 15:25, 0] - np.arange(15, 25)[None], speed * 0.5, atol=1e-4)


def test_subframe_weights_sum_to_one_and_slide():
    w, lo, hi = subframe_weights(30, 7, 0.4)
    assert np.allclose(w.sum(axis=1), 1.0)
    assert (np.diff(lo) >= 0).all() and (np.diff(hi) >= 0).all() and lo[0] == 0 and hi[-1] == 30
    assert ((w > 0).sum(axis=1) <= hi - lo).all()
    w0, lo0, hi0 = subframe_weights(5, 3, 0.0)
    assert np.array_equal(w0, np.full((3, 5), 0.2)) and (lo0 == 0).all() and (hi0 == 5).all()


def _square_layer(n, value, hms, moving=None):
    return Layer(np.full((n, n, 3), value, np.float32), np.ones((n, n), np.float32), hms, moving)


def test_opaque_object_occlusion_is_exact_and_mask_is_its_swept_area():
    h, w, n = 20, 40, 6
    bg = np.full((h, w, 3), 0.2, np.float32)
    cam = np.repeat(np.eye(3)[None], 8, axis=0)
    # the square's top-left at (5 + t, 7): one pixel per sub-frame, integer steps
    obj = _shifts(-(5.0 + np.arange(8)), np.full(8, -7.0))
    out, mask = render_subframes(bg, cam, (h, w), layers=[_square_layer(n, 0.8, obj)])
    cover = np.zeros((h, w))
    for t in range(8):
        cover[7:7 + n, 5 + t:5 + t + n] += 1.0 / 8
    assert np.allclose(out[..., 0], 0.2 + 0.6 * cover, atol=1e-6)
    assert np.array_equal(mask > 0, cover > 0)  # swept area, interior included


def test_object_without_own_motion_leaves_the_mask_empty():
    h, w, n = 20, 40, 6
    rng = np.random.default_rng(3)
    bg = rng.random((h, w, 3), dtype=np.float32)
    cam = _shifts(np.linspace(-3, 3, 9), np.linspace(1, -1, 9))  # the camera shakes
    placement = np.array([[1.0, 0.0, -10.0], [0.0, 1.0, -6.0], [0.0, 0.0, 1.0]])
    with_scene = placement @ cam  # the object sits still in the scene
    out, mask = render_subframes(bg, cam, (h, w), layers=[_square_layer(n, 0.9, with_scene)])
    assert not mask.any()
    assert out[8:12, 12:14].max() > 0.85  # the object is there, blurred by the camera only
    _, forced = render_subframes(bg, cam, (h, w), layers=[_square_layer(n, 0.9, with_scene, True)])
    assert forced.any()
    still_cam = np.repeat(np.eye(3)[None], 9, axis=0)
    _, none = render_subframes(bg, still_cam, (h, w), layers=[_square_layer(n, 0.9, np.repeat(placement[None], 9, 0))])
    assert not none.any()


def test_soft_alpha_composites_in_order():
    h, w = 6, 8
    bg = np.full((h, w, 3), 0.1, np.float32)
    hms = np.repeat(np.eye(3)[None], 3, axis=0)
    a = Layer(np.full((h, w, 3), 0.5, np.float32), np.full((h, w), 0.5, np.float32), hms)
    b = Layer(np.full((h, w, 3), 1.0, np.float32), np.full((h, w), 0.25, np.float32), hms)
    out, _ = render_subframes(bg, hms, (h, w), layers=[a, b])
    first = 0.1 * 0.5 + 0.5 * 0.5
    assert np.allclose(out, first * 0.75 + 1.0 * 0.25, atol=1e-6)


def test_bytes_do_not_depend_on_threads():
    import numba

    rng = np.random.default_rng(4)
    src = rng.random((64, 48, 3), dtype=np.float32)
    t = np.linspace(-1, 1, 17)
    hms = np.array([[[math.cos(0.02 * s), -math.sin(0.02 * s), 2 * s], [math.sin(0.02 * s), math.cos(0.02 * s), s],
                     [0.0, 0.0, 1.0]] for s in t])
    lay = Layer(rng.random((10, 12, 3), dtype=np.float32), rng.random((10, 12), dtype=np.float32),
                _shifts(-10 - 3 * t, -20 + t))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = render_subframes(src, hms, (64, 48), layers=[lay], rolling_shutter=0.3)
        numba.set_num_threads(max(2, before))
        many = render_subframes(src, hms, (64, 48), layers=[lay], rolling_shutter=0.3)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one[0], many[0]) and np.array_equal(one[1], many[1])


def _shake(t, rot, shift, centre):
    """Rotations by ``rot * t`` about ``centre`` and translations by ``shift * t``."""
    cx, cy = centre
    out = []
    for s in t:
        c, n = math.cos(rot * s), math.sin(rot * s)
        out.append([[c, -n, cx - c * cx + n * cy + shift[0] * s],
                    [n, c, cy - n * cx - c * cy + shift[1] * s], [0.0, 0.0, 1.0]])
    return np.array(out)


def test_layers_sampled_only_where_they_reach_change_no_byte(monkeypatch):
    """Layers are sampled only in the output tiles their alpha > 0 can reach, from a crop around
    it (depth planes are full-frame layers, mostly empty): the bytes are those of sampling every
    layer whole at every pixel."""
    import blursynth.ops.warp as warp

    rng = np.random.default_rng(5)
    h, w = 70, 90  # not multiples of the tile: partial tiles at the right and bottom
    src = rng.random((h + 40, w + 40, 3), dtype=np.float32)
    t = np.linspace(-1, 1, 13)
    centre = ((w + 39) / 2, (h + 39) / 2)
    cam = _shake(t, 0.03, (3.0, -2.0), centre)
    yy, xx = np.mgrid[0 : h + 40, 0 : w + 40]
    band = ((yy + 0.3 * xx) // 17 % 3 == 1).astype(np.float32)  # slanted bands, touching the edges
    blob = ((yy - 40) ** 2 + (xx - 80) ** 2 < 90).astype(np.float32)
    soft = np.pad(rng.random((7, 9), dtype=np.float32), 1)  # an object with a transparent rim
    layers = [Layer(src, band, _shake(t, 0.03, (4.5, -3.0), centre), False),  # nearer: more parallax
              Layer(src, blob, _shake(t, 0.03, (6.0, -4.0), centre), False),
              Layer(src, np.zeros(band.shape, np.float32), cam, False),  # empty: never sampled
              Layer(rng.random((9, 11, 3), dtype=np.float32), soft, _shifts(-45 - 6 * t, -40 + 2 * t))]
    kw = dict(layers=layers, rolling_shutter=0.2, offset=(20.0, 15.0))
    fast = render_subframes(src, cam, (h, w), **kw)
    blob_tiles = warp._layer_tiles(layers[1].homographies, blob, (0, 0), (h, w), (20.0, 15.0))
    assert blob_tiles.any() and not blob_tiles.all()  # the skipping is real
    monkeypatch.setattr(warp, "_layer_crop", lambda alpha: (0, alpha.shape[0], 0, alpha.shape[1]))
    monkeypatch.setattr(warp, "_layer_tiles",
                        lambda hms, alpha, origin, shape, offset, tile=warp.LAYER_TILE_PX:
                        np.ones((-(-shape[0] // tile), -(-shape[1] // tile)), bool))
    whole = render_subframes(src, cam, (h, w), **kw)
    assert np.array_equal(fast[0], whole[0]) and np.array_equal(fast[1], whole[1])
    assert fast[1].any()  # the object moved on its own


@pytest.mark.parametrize("call, match", [
    (lambda s: render_subframes(s[..., :2], np.eye(3)[None], (4, 4)), "src_linear"),
    (lambda s: render_subframes(s, np.eye(2)[None], (4, 4)), "homographies"),
    (lambda s: render_subframes(s, np.full((1, 3, 3), np.nan), (4, 4)), "finite"),
    (lambda s: render_subframes(s, np.array([[[1, 0, 0], [0, 1, 0], [0, 0, -1.0]]]), (4, 4)), "behind"),
    (lambda s: render_subframes(s, np.eye(3)[None], (4, 4), rolling_shutter=-0.1), "rolling_shutter"),
    (lambda s: render_subframes(s, np.eye(3)[None], (4, 4), layers=[Layer(s, s[..., 0] * 2 + 2, np.eye(3)[None])]),
     "alpha"),
    (lambda s: render_subframes(s, np.eye(3)[None], (4, 4), layers=[Layer(s, s[..., 0], np.eye(3)[None].repeat(2, 0))]),
     "layer 0's homographies"),
    (lambda s: warp_bilinear(s, np.eye(3)[None].repeat(2, 0), (4, 4)), "one"),
    (lambda s: warp_bilinear(s, np.eye(3), (0, 4)), "out_shape"),
])
def test_bad_input_is_one_line(call, match):
    src = np.zeros((5, 5, 3), np.float32)
    with pytest.raises(BadInputError, match=match) as info:
        call(src)
    assert "\n" not in str(info.value)
