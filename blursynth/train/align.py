"""Alignment of a deblurred image to its reference before scoring: intensity matching, ECC
homography alignment and the valid (overlapping) region, as RealBlur's evaluation describes it."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: ECC settings: at most this many iterations, stopping earlier when the parameter update's norm
#: falls under ``ECC_EPS``; Gaussian pre-smoothing of ``ECC_GAUSS_SIZE`` taps (OpenCV's default).
ECC_ITERATIONS = 100
ECC_EPS = 1e-6
ECC_GAUSS_SIZE = 5
#: A homography covering less of the reference than this is refused (identity used instead).
MIN_VALID_FRACTION = 0.5


@dataclass(frozen=True)
class Alignment:
    """The result of :func:`align_to_reference`.

    Attributes
    ----------
    aligned : (H, W, 3) float64 ndarray
        The image warped onto the reference's pixel grid (0 outside), times ``gain``, clipped
        to [0, 1].
    valid : (H, W) bool ndarray
        Pixels whose warped source lies inside the image: the region to score.
    homography : (3, 3) float64 ndarray
        Maps reference pixel ``(x, y, 1)`` to image pixel coordinates (up to scale).
    gain : float
        The intensity-matching factor applied to the image.
    converged : bool
        False where ECC did not converge, or its warp covered under
        :data:`MIN_VALID_FRACTION` of the reference; the identity warp is used then.
    """

    aligned: np.ndarray
    valid: np.ndarray
    homography: np.ndarray
    gain: float
    converged: bool


def match_intensity(image, reference) -> tuple[np.ndarray, float]:
    """Scale ``image`` by the gain that best matches ``reference`` in least squares.

    RealBlur's evaluation matches the deblurred image's intensity to the ground truth before
    aligning (its captures differ in exposure between the two cameras); one gain
    ``g = <image, reference> / <image, image>`` over all pixels and channels is that match.

    Parameters
    ----------
    image, reference : float ndarray
        Same shape (any: an image, or the pixels of a region), values in [0, 1].

    Returns
    -------
    matched : float64 ndarray
        ``g * image`` (not clipped).
    gain : float
        ``g``; 1 for an all-zero image.

    Examples
    --------
    >>> x = np.full((2, 2, 3), 0.25)
    >>> match_intensity(x, 2 * x)[1]
    2.0
    """
    x = np.asarray(image, np.float64)
    y = np.asarray(reference, np.float64)
    den = float(np.sum(x * x))
    gain = float(np.sum(x * y)) / den if den > 0 else 1.0
    return x * gain, gain


def _gray(image: np.ndarray) -> np.ndarray:
    # ITU-R BT.601 luma, the weights OpenCV's and MATLAB's rgb2gray use.
    return (image @ np.array([0.299, 0.587, 0.114])).astype(np.float32)


def ecc_homography(image, reference, *, iterations=ECC_ITERATIONS, eps=ECC_EPS,
                   init=None) -> tuple[np.ndarray, bool]:
    """The homography aligning ``image`` to ``reference`` by ECC maximisation.

    Evangelidis and Psarakis's enhanced correlation coefficient (IEEE TPAMI 30(10), 2008), in
    OpenCV's ``findTransformECC`` with ``MOTION_HOMOGRAPHY``, on the images' luma.

    Parameters
    ----------
    image, reference : (H, W, 3) float ndarray
        Values in [0, 1], same shape.
    iterations, eps : int, float
        Stopping rule (count or parameter-update norm, whichever first).
    init : (3, 3) ndarray, optional
        Starting warp; identity by default.

    Returns
    -------
    homography : (3, 3) float64 ndarray
        Maps reference pixel coordinates to image coordinates (normalised so ``[2, 2] == 1``).
    converged : bool
        False when OpenCV reports that ECC diverged or met a singular system: the identity is
        returned then.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = cv2.GaussianBlur(rng.random((64, 64, 3)), (0, 0), 2)
    >>> h, ok = ecc_homography(a, a)
    >>> ok, bool(np.allclose(h, np.eye(3), atol=1e-4))
    (True, True)
    """
    warp = np.eye(3, dtype=np.float32) if init is None else np.asarray(init, np.float32).copy()
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, int(iterations), float(eps))
    try:
        _, warp = cv2.findTransformECC(_gray(reference), _gray(image), warp,
                                       cv2.MOTION_HOMOGRAPHY, criteria, None, ECC_GAUSS_SIZE)
    except cv2.error:
        return np.eye(3), False
    warp = warp.astype(np.float64)
    return warp / warp[2, 2], True


def warp_to_reference(image, homography) -> tuple[np.ndarray, np.ndarray]:
    """Resample ``image`` on the reference grid through ``homography`` (reference -> image).

    Returns
    -------
    warped : (H, W, C) float64 ndarray
        Bilinear samples; 0 where the source falls outside.
    valid : (H, W) bool ndarray
        Pixels whose source point lies inside ``[0, W-1] x [0, H-1]``, so every bilinear tap
        is a real pixel.

    Examples
    --------
    >>> w, v = warp_to_reference(np.ones((4, 5, 3)), np.eye(3))
    >>> bool(v.all()), float(w.min())
    (True, 1.0)
    """
    x = np.asarray(image, np.float64)
    h, w = x.shape[:2]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpPerspective(x, homography, (w, h), flags=flags,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if warped.ndim == 2:
        warped = warped[:, :, None]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    pts = np.stack([xs, ys, np.ones_like(xs)], -1) @ np.asarray(homography, np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        sx, sy = pts[..., 0] / pts[..., 2], pts[..., 1] / pts[..., 2]
    tol = 1e-6  # a pixel exactly on the border edge counts as inside
    valid = ((pts[..., 2] > 0) & (sx >= -tol) & (sx <= w - 1 + tol)
             & (sy >= -tol) & (sy <= h - 1 + tol))
    return warped, valid


def align_to_reference(image, reference, *, iterations=ECC_ITERATIONS, eps=ECC_EPS) -> Alignment:
    """Align ``image`` to ``reference`` by an ECC homography, match its intensity, and say which
    pixels overlap: the steps RealBlur's evaluation (Rim et al., ECCV 2020) takes before
    computing PSNR and SSIM over the overlapping region. The gain is fitted on the overlap
    after the alignment (ECC itself is invariant to gain and offset).

    Parameters
    ----------
    image, reference : (H, W, 3) uint8 or float ndarray
        uint8 is read as value / 255; floats are taken as [0, 1].

    Returns
    -------
    Alignment

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> ref = cv2.GaussianBlur(rng.random((48, 48, 3)), (0, 0), 2)
    >>> a = align_to_reference(0.5 * ref, ref)
    >>> round(a.gain, 6), a.converged, bool(a.valid.all())
    (2.0, True, True)
    """
    x, y = _as_unit_float(image), _as_unit_float(reference)
    if x.shape != y.shape or x.ndim != 3:
        raise ValueError(f"image and reference must be two (H, W, 3) arrays of one shape; got "
                         f"{x.shape} and {y.shape}.")
    # ECC's correlation coefficient ignores gain and offset, so the alignment needs no
    # intensity match; the gain is fitted after it, on the overlap, where pixels correspond.
    hom, ok = ecc_homography(x, y, iterations=iterations, eps=eps)
    warped, valid = warp_to_reference(x, hom)
    if valid.mean() < MIN_VALID_FRACTION:
        # RealBlur's residual misalignment is a few pixels; a warp leaving most of the frame
        # uncovered is ECC wandering off on an image unlike its reference, not an alignment.
        hom, ok = np.eye(3), False
        warped, valid = warp_to_reference(x, hom)
    _, gain = match_intensity(warped[valid], y[valid])
    # clipped as an image brightened by that gain and saved would be
    return Alignment(np.clip(warped * gain, 0.0, 1.0), valid, hom, gain, ok)


def _as_unit_float(a) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)
