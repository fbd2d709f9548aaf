"""Alignment of a deblurred image to its reference before scoring, in the steps and order of
RealBlur's evaluation: intensity matching over the whole frame, ECC homography alignment,
cubic resampling and the overlap mask."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: ECC settings of RealBlur's evaluation: 100 iterations, and an update-norm threshold of 0, so
#: the count alone stops it; Gaussian pre-smoothing of ``ECC_GAUSS_SIZE`` taps.
ECC_ITERATIONS = 100
ECC_EPS = 0.0
ECC_GAUSS_SIZE = 5
#: ITU-R BT.601 luma weights (R, G, B): OpenCV's RGB2GRAY and MATLAB's rgb2gray.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Alignment:
    """The result of :func:`align_to_reference`.

    Attributes
    ----------
    aligned : (H, W, 3) float64 ndarray
        The image times ``gain``, warped onto the reference's grid (cubic, reflected border)
        and zeroed outside ``valid``; not clipped (RealBlur's steps do not clip).
    valid : (H, W) bool ndarray
        The overlap: pixels whose nearest source pixel lies inside the image.
    homography : (3, 3) float64 ndarray
        Maps reference pixel ``(x, y, 1)`` to image pixel coordinates (up to scale).
    gain : float
        The intensity-matching factor applied to the whole image before alignment.
    converged : bool
        False where OpenCV's ECC stopped with an error; the identity warp is used then.
    """

    aligned: np.ndarray
    valid: np.ndarray
    homography: np.ndarray
    gain: float
    converged: bool


def as_unit_float(image) -> np.ndarray:
    """An ``(H, W, 3)`` image as float64 in [0, 1]: uint8 is read as value / 255, floats are
    taken as already in [0, 1].

    Examples
    --------
    >>> float(as_unit_float(np.full((1, 1, 3), 255, np.uint8)).max())
    1.0
    """
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"images must be (H, W, 3); got shape {a.shape}.")
    return a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)


def luma(image) -> np.ndarray:
    """BT.601 luma (:data:`LUMA_WEIGHTS`) of an ``(H, W, 3)`` float RGB image, float64.

    Examples
    --------
    >>> round(float(luma(np.ones((1, 1, 3)))[0, 0]), 12)
    1.0
    """
    return np.asarray(image, np.float64) @ np.array(LUMA_WEIGHTS)


def match_intensity(image, reference) -> tuple[np.ndarray, float]:
    """Scale ``image`` by the gain that best matches ``reference`` in least squares.

    RealBlur's evaluation matches the deblurred image's intensity to the ground truth first,
    over the whole frame before any alignment (its two cameras differ in exposure): one gain
    ``g = <image, reference> / <image, image>`` over all pixels and channels.

    Parameters
    ----------
    image, reference : float ndarray
        Same shape, values in [0, 1].

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


def ecc_homography(image, reference, *, iterations=ECC_ITERATIONS, eps=ECC_EPS,
                   init=None) -> tuple[np.ndarray, bool]:
    """The homography aligning ``image`` to ``reference`` by ECC maximisation.

    Evangelidis and Psarakis's enhanced correlation coefficient (IEEE TPAMI 30(10), 2008), in
    OpenCV's ``findTransformECC`` with ``MOTION_HOMOGRAPHY``, on the images' luma (float32, the
    type OpenCV's ECC computes in), Gaussian pre-smoothing of :data:`ECC_GAUSS_SIZE` taps.

    Parameters
    ----------
    image, reference : (H, W, 3) float ndarray
        Same shape.
    iterations, eps : int, float
        Stopping rule (count or parameter-update norm, whichever first).
    init : (3, 3) ndarray, optional
        Starting warp; identity by default.

    Returns
    -------
    homography : (3, 3) float64 ndarray
        Maps reference pixel coordinates to image coordinates, as OpenCV returns it.
    converged : bool
        False when OpenCV stops with an error (diverged, or a singular system): the identity
        is returned then.

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
    gray = [luma(a).astype(np.float32) for a in (reference, image)]
    try:
        _, warp = cv2.findTransformECC(gray[0], gray[1], warp, cv2.MOTION_HOMOGRAPHY, criteria,
                                       None, ECC_GAUSS_SIZE)
    except cv2.error:
        return np.eye(3), False
    return warp.astype(np.float64), True


def warp_to_reference(image, homography) -> tuple[np.ndarray, np.ndarray]:
    """Resample ``image`` on the reference grid through ``homography`` (reference -> image).

    Returns
    -------
    warped : (H, W, C) float64 ndarray
        Bicubic samples, the image's border reflected where a tap falls outside (values there
        are masked out by ``valid`` anyway).
    valid : (H, W) bool ndarray
        A warp of an all-ones image by nearest neighbour with zeros outside: pixels whose
        nearest source pixel lies inside the image.

    Examples
    --------
    >>> w, v = warp_to_reference(np.ones((4, 5, 3)), np.eye(3))
    >>> bool(v.all()), float(w.min())
    (True, 1.0)
    """
    x = np.asarray(image, np.float64)
    h, w = x.shape[:2]
    hom = np.asarray(homography, np.float64)
    warped = cv2.warpPerspective(x, hom, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_REFLECT)
    if warped.ndim == 2:
        warped = warped[:, :, None]
    ones = np.ones((h, w), np.float32)
    mask = cv2.warpPerspective(ones, hom, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped, mask > 0.5


def align_to_reference(image, reference, *, iterations=ECC_ITERATIONS, eps=ECC_EPS) -> Alignment:
    """RealBlur's alignment (Rim et al., ECCV 2020), its steps in its order: (1) one
    least-squares gain over the whole, unaligned frame (:func:`match_intensity`); (2) the ECC
    homography from the reference's luma to the gained image's (:func:`ecc_homography`,
    100 iterations, eps 0); (3) the gained image warped onto the reference grid, cubic, border
    reflected, and the overlap mask by nearest neighbour (:func:`warp_to_reference`); (4) the
    warped image zeroed outside the mask.

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
    x, y = as_unit_float(image), as_unit_float(reference)
    if x.shape != y.shape:
        raise ValueError(f"image and reference must be two (H, W, 3) arrays of one shape; got "
                         f"{x.shape} and {y.shape}.")
    matched, gain = match_intensity(x, y)
    hom, ok = ecc_homography(matched, y, iterations=iterations, eps=eps)
    warped, valid = warp_to_reference(matched, hom)
    return Alignment(warped * valid[:, :, None], valid, hom, gain, ok)
