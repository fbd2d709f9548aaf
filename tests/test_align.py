"""train/align.py: RealBlur's steps: intensity matching over the whole frame, ECC homography
alignment, cubic resampling and the nearest-neighbour overlap mask."""

import cv2
import numpy as np
import pytest

from blursynth.train.align import (align_to_reference, ecc_homography, match_intensity,
                                   warp_to_reference)

# Reference pixel -> image pixel: a little zoom, shear, shift and perspective.
H_TRUE = np.array([[1.02, 0.015, 1.5],
                   [-0.01, 0.985, -1.2],
                   [1.5e-4, -8e-5, 1.0]])


def _texture(h=96, w=96, seed=0, margin=32):
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.random((h + 2 * margin, w + 2 * margin, 3)), (0, 0), 3.0)
    return np.clip((big - big.mean()) * 8 + 0.5, 0, 1)


def _pair(hom, seed=0, size=160, margin=32):
    """A reference crop of a larger texture and the image with image(hom p) = ref(p): both
    cut from the same texture, so no border padding enters either."""
    big = _texture(size, size, seed, margin)
    ref = big[margin:margin + size, margin:margin + size]
    to_big = np.array([[1, 0, margin], [0, 1, margin], [0, 0, 1.0]]) @ np.linalg.inv(hom)
    image = cv2.warpPerspective(big, to_big, (size, size),
                                flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    return image, ref


def _corners_moved(h1, h2, size):
    pts = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1.0]])
    a, b = pts @ h1.T, pts @ h2.T
    return np.abs(a[:, :2] / a[:, 2:] - b[:, :2] / b[:, 2:]).max()


def test_ecc_recovers_a_known_homography():
    image, ref = _pair(H_TRUE)
    hom, ok = ecc_homography(image, ref)
    assert ok
    assert _corners_moved(hom, H_TRUE, 160) < 0.1
    # and a wrong answer would be far off: the identity moves the corners by pixels
    assert _corners_moved(np.eye(3), H_TRUE, 160) > 1.0


def test_align_to_reference_undoes_gain_and_warp():
    image, ref = _pair(H_TRUE, seed=1)
    image = 0.8 * image
    a = align_to_reference(image, ref)
    assert a.converged
    # the gain comes first, over the whole unaligned frame (RealBlur's order)
    assert a.gain == match_intensity(image, ref)[1]
    inner = a.valid.copy()
    inner[:4], inner[-4:], inner[:, :4], inner[:, -4:] = False, False, False, False
    err = np.abs(a.aligned / (0.8 * a.gain) - ref)[inner]
    assert err.mean() < 0.01
    assert (a.aligned[~a.valid] == 0).all()
    # unaligned, the same pixels are far apart
    assert np.abs(image / 0.8 - ref)[inner].mean() > 5 * err.mean()


def test_valid_region_of_a_translation():
    # reference pixel x reads image pixel x + 2: the last 2 columns have no source pixel; at
    # whole-pixel positions the cubic samples are the pixels themselves
    hom = np.array([[1, 0, 2.0], [0, 1, 0], [0, 0, 1.0]])
    image = np.arange(8 * 10 * 3, dtype=np.float64).reshape(8, 10, 3)
    warped, valid = warp_to_reference(image, hom)
    assert valid[:, :8].all() and not valid[:, 8:].any()
    np.testing.assert_allclose(warped[:, :8], image[:, 2:10], atol=1e-9)
    # the border is reflected, not zero, before the mask is applied (cubic, BORDER_REFLECT)
    assert (warped[:, 8:] != 0).all()


def test_match_intensity_is_least_squares_gain():
    x = np.array([1.0, 2.0, 0.0]).reshape(1, 1, 3)
    y = np.array([2.0, 3.0, 5.0]).reshape(1, 1, 3)
    matched, gain = match_intensity(x, y)
    assert gain == pytest.approx((1 * 2 + 2 * 3) / (1 + 4))  # <x, y> / <x, x>
    np.testing.assert_allclose(matched, gain * x)


def test_ecc_on_a_flat_image_reports_no_convergence():
    flat = np.full((32, 32, 3), 0.5)
    hom, ok = ecc_homography(flat, flat)
    assert not ok
    np.testing.assert_array_equal(hom, np.eye(3))


def test_align_refuses_different_shapes():
    with pytest.raises(ValueError, match="one shape"):
        align_to_reference(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))


def test_a_far_warp_is_kept_as_ecc_found_it(monkeypatch):
    # RealBlur's steps have no fallback: the mask shows how little overlaps
    import blursynth.train.align as align

    far = np.array([[1, 0, 60.0], [0, 1, 0], [0, 0, 1.0]])  # 60 of 96 columns uncovered
    monkeypatch.setattr(align, "ecc_homography", lambda *a, **k: (far, True))
    image, ref = _pair(np.eye(3), size=96)
    a = align.align_to_reference(image, ref)
    assert a.converged and a.valid[:, :36].all() and not a.valid[:, 36:].any()
    np.testing.assert_array_equal(a.homography, far)
