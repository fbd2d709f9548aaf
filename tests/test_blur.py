"""The linear-light blur of one photo window (ops/blur.py): against the reference formula,
degradations, and the torch path a GPU takes against the CPU path."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from blursynth.ops.blur import render_pair
from blursynth.ops.encode8 import encode_uint8

from .conftest import edge_scene


def line_psf(k=7):
    psf = np.zeros((k, k), np.float32)
    psf[k // 2, :] = 1.0 / k
    return psf


def reference_gamma_blur(img, psf, gamma=2.2, scale=1.0):
    """The formula written out in float64: decode, scale, reflect-pad, convolve, clip, encode."""
    lin = (img / 255.0) ** gamma * scale
    r = psf.shape[0] // 2
    padded = np.pad(lin, ((r, r), (r, r), (0, 0)), mode="reflect")
    out = np.stack([scipy.signal.fftconvolve(padded[..., c], psf.astype(np.float64), mode="valid")
                    for c in range(3)], axis=-1)
    return np.floor(np.clip(out, 0, 1) ** (1 / gamma) * 255 + 0.5)


def test_linear_light_blur_matches_reference_formula():
    img = edge_scene()
    blurred, sharp = render_pair(img, line_psf(), crf="gamma:2.2")
    ref = reference_gamma_blur(img, line_psf())
    assert np.abs(blurred.astype(int) - ref).max() <= 1
    assert np.array_equal(sharp, img)
    # Blurring encoded pixels (crf none) is not the same: the edge is darker there.
    naive, _ = render_pair(img, line_psf(), crf="none")
    assert naive[5, 16, 0] < blurred[5, 16, 0] - 10


def test_constant_photo_stays_constant_with_every_curve():
    img = np.full((20, 20, 3), 173, np.uint8)
    psf = np.random.default_rng(0).random((9, 9)).astype(np.float32)
    psf /= psf.sum()
    for crf in ("gamma:2.2", "srgb", "none"):
        for border in ("reflect", "wrap", "valid"):
            b, s = render_pair(img, psf, crf=crf, border=border)
            assert (b == 173).all() and (s == 173).all() and b.shape == s.shape


def test_valid_border_crops_both_images_alike():
    img = edge_scene()
    b, s = render_pair(img, line_psf(7), border="valid")
    assert b.shape == s.shape == (18, 26, 3)
    assert np.array_equal(s, img[3:-3, 3:-3])


def test_saturation_blooms_highlights_and_scales_sharp_alike():
    img = np.full((24, 24, 3), 40, np.uint8)
    img[10:13, 10:13] = 250  # a small highlight
    b1, _ = render_pair(img, line_psf(9))
    b3, s3 = render_pair(img, line_psf(9), saturation=3.0)
    ref = reference_gamma_blur(img, line_psf(9), scale=3.0)
    assert np.abs(b3.astype(int) - ref).max() <= 1
    # The clipped highlight spreads into a brighter, longer streak.
    assert b3[11].astype(int).sum() > b1[11].astype(int).sum()
    assert (s3[11, 11] == 255).all() and s3[0, 0, 0] > 40


def test_noise_statistics_in_linear_light():
    img = np.full((64, 64, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    b, s = render_pair(img, line_psf(3), crf="none", shot_noise=0.01, read_noise=0.0, noise_rng=rng)
    assert np.array_equal(s, img)
    lin = b.astype(np.float64) / 255
    assert lin.std() == pytest.approx(np.sqrt(0.01 * 128 / 255), rel=0.05)
    same, _ = render_pair(img, line_psf(3), crf="none", shot_noise=0.01, read_noise=0.0,
                          noise_rng=np.random.default_rng(0))
    assert np.array_equal(same, b)


def test_jpeg_applies_to_blurred_only():
    img = edge_scene(32, 32)
    b, s = render_pair(img, line_psf(), jpeg_quality=30)
    clean, _ = render_pair(img, line_psf())
    assert not np.array_equal(b, clean) and np.array_equal(s, img)


def test_alignment_of_a_bright_dot_with_a_centred_psf():
    from blursynth.ops.psf import rasterize_psf
    from blursynth.ops.trajectory import sample_trajectory

    traj, _ = sample_trajectory(rng=3, length_px=12.0, n_samples=400)
    psf = rasterize_psf(traj, max_size=15)  # centred on its centre of mass
    img = np.zeros((41, 41, 3), np.uint8)
    img[20, 20] = 255
    b, _ = render_pair(img, psf, crf="none")
    w = b[..., 0].astype(np.float64)
    gy, gx = np.mgrid[:41, :41]
    assert (w * gy).sum() / w.sum() == pytest.approx(20, abs=0.05)
    assert (w * gx).sum() / w.sum() == pytest.approx(20, abs=0.05)


def test_torch_path_for_gpus_agrees_with_cpu_path():
    # The path a CUDA device takes (torch decode, pad, convolve, bucketize encode), run on the CPU.
    import torch

    from blursynth.ops.blur import _blur_linear_cpu, _blur_linear_torch, _encode_hwc
    from blursynth.ops.color import CameraResponse

    img = edge_scene(30, 40)
    psf = np.random.default_rng(2).random((9, 9)).astype(np.float32)
    psf /= psf.sum()
    for crf in ("gamma:2.2", "srgb"):
        for border in ("reflect", "wrap", "valid"):
            c = CameraResponse.parse(crf)
            a = torch.as_tensor(_blur_linear_cpu(img, psf, c, border, "auto"))  # NumPy on the CPU path
            b = _blur_linear_torch(img, psf, c, border, torch.device("cpu"), "fft")
            torch.testing.assert_close(a, b, atol=2e-6, rtol=0)
            ea = _encode_hwc(a, c)
            eb = np.ascontiguousarray(encode_uint8(c, b).permute(1, 2, 0).numpy())
            assert np.abs(ea.astype(int) - eb).max() <= 1
