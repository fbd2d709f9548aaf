"""Blur of one uint8 photo window by a PSF in linear light, with sensor noise and JPEG.

The pipeline of one pair (:func:`render_pair`)::

    photo (uint8) -> decode camera response (256-entry table)
      -> boost highlights -> scale by the exposure gain -> convolve with the PSF
      -> clip to [0, 1] -> sensor noise -> encode camera response -> JPEG round trip -> blurred
    sharp = the same window, through the same decode, exposure gain and encode (no
            highlight boost, no blur, no noise, no JPEG): the photo's own exposure, or
            the same gain and clipping as the blurred image when an exposure gain is given.

Arrays in, arrays out: the photo, the PSF and the pair's noise generator are given; choosing them
(resize, crop, kernels, draws) is :mod:`blursynth.pairs.shake`'s.
"""

from __future__ import annotations

import numpy as np

from .._numba import njit
from ..errors import BadInputError
from .color import CameraResponse
from .convolve import check_fits, check_psf
from .degrade import jpeg_roundtrip, noise_field
from .encode8 import encode_planes, encode_uint8


def render_pair(photo, psf, *, crf="gamma:2.2", border="reflect", saturation=None,
                shot_noise=None, read_noise=None, noise_rng=None, jpeg_quality=None, device=None,
                method="auto", highlight_gain=None, highlight_threshold=None,
                highlight_regions=None, highlight_region_threshold=None):
    """Blur one photo window by a PSF in linear light; return (blurred, sharp).

    Parameters
    ----------
    photo : (H, W, 3) uint8 ndarray, RGB
        The sharp window (already resized and cropped).
    psf : (k, k) float ndarray
        Non-negative, odd ``k``, sums to 1.
    crf : str or CameraResponse
    border : {"reflect", "valid", "wrap"}
        ``valid`` returns both images cropped by ``k // 2`` on every side.
    saturation : float or None
        Exposure gain: linear scale factor of the whole image, the sharp one too,
        applied before the blur (clipped after).
    highlight_gain, highlight_threshold : float or None
        Boost of the photo's near-clipped pixels before the blur
        (:func:`blursynth.ops.degrade.boost_highlights`); the sharp image is not boosted.
    highlight_regions, highlight_region_threshold : int, float or None
        With ``highlight_gain``: also boost the window's small bright regions (at most
        ``highlight_regions`` pixels, from ``highlight_region_threshold`` on;
        :func:`blursynth.ops.degrade.small_bright_regions`).
    shot_noise, read_noise : float or None
        Poisson-Gaussian noise levels (linear); the field is drawn from
        ``noise_rng`` on the CPU.
    noise_rng : numpy.random.Generator or None
    jpeg_quality : int or None
    device : torch.device, str or None
        Where to convolve (None: the CPU).
    method : {"auto", "fft", "direct"}
        Convolution method (``auto`` picks by cost; the choice is part of
        what determines the bytes).

    Returns
    -------
    blurred, sharp : (H', W', 3) uint8 ndarray

    Examples
    --------
    >>> photo = np.full((32, 48, 3), 200, np.uint8)
    >>> psf = np.full((5, 5), 1 / 25, np.float32)
    >>> blurred, sharp = render_pair(photo, psf)
    >>> bool((blurred == 200).all()), sharp.shape
    (True, (32, 48, 3))
    """
    crf = CameraResponse.parse(crf)
    photo = _check_photo(photo)
    psf = np.asarray(psf, np.float32)
    k = check_psf(psf)
    check_fits(photo.shape[0], photo.shape[1], k, border, what="photo window")
    scale = 1.0 if saturation is None else float(saturation)
    boost = _boost(highlight_gain, highlight_threshold)
    regions = _regions(photo, crf.decode_table(), boost, highlight_regions,
                       highlight_region_threshold)
    if _on_cpu(device):
        # NumPy planes all the way (torch only for an FFT-path PSF): no torch import for a
        # CPU pair, which is most of a command's start-up.
        dev = "cpu"
        blurred_lin = _blur_linear_cpu(photo, psf * np.float32(scale), crf, border, method,
                                       boost=boost, regions=regions)
    else:
        import torch

        dev = torch.device(device)
        blurred_lin = _blur_linear_torch(photo, psf * np.float32(scale), crf, border, dev, method,
                                         boost=boost, regions=regions)
    r = k // 2
    window = photo[r:-r, r:-r] if border == "valid" and r else photo
    if shot_noise is not None or read_noise is not None:
        if noise_rng is None:
            raise ValueError("sensor noise needs noise_rng (the pair's own generator).")
        if isinstance(blurred_lin, np.ndarray):
            blurred_lin = np.clip(blurred_lin, np.float32(0.0), np.float32(1.0))
        else:
            blurred_lin = blurred_lin.clamp(0.0, 1.0)
        field = noise_field(tuple(blurred_lin.shape), noise_rng)
        from .degrade import add_sensor_noise

        blurred_lin = add_sensor_noise(
            blurred_lin, shot=float(shot_noise or 0.0), read=float(read_noise or 0.0), noise=field
        )
    blurred = _encode_hwc(blurred_lin, crf)
    if scale != 1.0:
        sharp_lin = _decode_chw(window, crf, dev) * scale
        sharp = _encode_hwc(sharp_lin, crf)
    else:
        # decode then encode of uint8 is the identity for every curve.
        sharp = np.ascontiguousarray(window)
    if jpeg_quality is not None:
        blurred = jpeg_roundtrip(blurred, int(jpeg_quality))
    return blurred, sharp


def _on_cpu(device) -> bool:
    """Whether ``device`` (None, a name or a torch.device) is the CPU, without importing torch."""
    if device is None:
        return True
    return str(getattr(device, "type", device)).split(":")[0] == "cpu"


def _boost(highlight_gain, highlight_threshold):
    """(gain, threshold) of the highlight boost, or None when it is off."""
    if highlight_gain is None:
        return None
    from .degrade import HIGHLIGHT_THRESHOLD

    return (float(highlight_gain),
            HIGHLIGHT_THRESHOLD if highlight_threshold is None else float(highlight_threshold))


def _peak(photo, table):
    """(H, W) float32: each pixel's brightest channel in linear light.

    Decode tables are non-decreasing (every camera response is monotonic), so the brightest
    code decodes to the brightest value: one table look-up per pixel.
    """
    return table[photo.max(axis=2)]


def _regions(photo, table, boost, max_area, region_threshold):
    """(mask, region threshold) of the window's small bright regions, or None when off.

    Found on the photo's own linear values (:func:`_peak` through the decode ``table``), on
    the window the pair is made of, before any padding (:func:`_pad_mask` pads the mask).
    """
    if boost is None or max_area is None:
        return None
    return _small_regions(_peak(photo, table), max_area, region_threshold)


def _small_regions(peak, max_area, region_threshold):
    """(mask, region threshold) of the small bright regions of ``peak`` (each pixel's brightest
    channel in linear light), or None when ``max_area`` is None."""
    if max_area is None:
        return None
    from .degrade import HIGHLIGHT_REGION_THRESHOLD, small_bright_regions

    t = HIGHLIGHT_REGION_THRESHOLD if region_threshold is None else float(region_threshold)
    return small_bright_regions(peak, int(max_area), t), t


def _boost_gains(peak, boost, regions=None):
    """(H, W) float32 gains of the highlight ``boost`` (gain, threshold) on ``peak``;
    ``regions``: (mask of ``peak``'s shape, region threshold) or None."""
    from .degrade import highlight_gains

    if regions is None:
        return highlight_gains(peak, *boost)
    return highlight_gains(peak, *boost, regions=regions[0], region_threshold=regions[1])


def _pad_mask(mask, r, border):
    """A window's bool mask padded as :func:`_pad_photo` pads the photo."""
    return _pad_photo(mask.astype(np.uint8), r, border).astype(bool)


def _check_photo(photo):
    photo = np.asarray(photo)
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise BadInputError(
            f"photo must be uint8 (H, W, 3) RGB; got {photo.dtype} {photo.shape}. "
            "Load it with blursynth.sources.photos.load_rgb8."
        )
    return photo


def _pad_photo(photo, r, border):
    """The 8-bit photo padded by ``r`` on every side for a PSF: reflect-101 or wrap.

    Border ``valid`` (or ``r == 0``) pads nothing: the caller's window is already inside.
    """
    if border == "valid" or not r:
        return photo
    import cv2

    mode = cv2.BORDER_REFLECT_101 if border == "reflect" else cv2.BORDER_WRAP
    return cv2.copyMakeBorder(photo, r, r, r, r, mode)


def _blur_linear_cpu(photo, psf, crf, border, method, boost=None, regions=None):
    """Decode + pad fused (pad the uint8 photo, table-decode each plane), then convolve.

    ``regions``: (mask of the unpadded photo, threshold), padded here as the photo is.
    """
    from .convolve import convolve_planes

    k = psf.shape[0]
    r = k // 2
    padded = _pad_photo(photo, r, border)
    hp, wp = padded.shape[:2]
    planes = np.empty((3, hp, wp), np.float32)
    # One pass from the interleaved photo to the three planes (OpenCV's split, then a LUT per
    # plane, took four times as long: the split alone 3 ms of a 720p pair).
    _decode_planes(padded, crf.decode_table(), planes)
    if boost is not None:
        from .degrade import boost_highlights

        if regions is None:
            planes = boost_highlights(planes, *boost)
        else:
            planes = boost_highlights(planes, *boost, regions=_pad_mask(regions[0], r, border),
                                      region_threshold=regions[1])
    return convolve_planes(planes, psf, method=method)


@njit
def _decode_planes(image, table, out):
    """``out[c, y, x] = table[image[y, x, c]]``: an (H, W, C) uint8 image to (C, H, W) planes."""
    h, w, nc = image.shape
    for y in range(h):
        for x in range(w):
            for c in range(nc):
                out[c, y, x] = table[image[y, x, c]]


def _blur_linear_torch(photo, psf, crf, border, device, method, boost=None, regions=None):
    from .convolve import convolve_padded, pad_image

    x = _decode_chw(photo, crf, device)[None]
    if boost is not None:
        from .degrade import boost_highlights

        if regions is None:
            x = boost_highlights(x, *boost)
        else:
            x = boost_highlights(x, *boost, regions=regions[0], region_threshold=regions[1])
    padded = pad_image(x, psf.shape[0] // 2, border)
    return convolve_padded(padded, psf, method=method)[0]


def _decode_chw(window, crf, device):
    import torch

    t = torch.from_numpy(np.ascontiguousarray(window.transpose(2, 0, 1)))
    return crf.decode_uint8(t.to(device))


def _encode_hwc(linear, crf):
    """(3, H, W) linear tensor to (H, W, 3) uint8 code values (clipped, rounded).

    Both paths count the encoder's decision thresholds below each value, so
    they give the same codes for the same linear values.
    """
    if isinstance(linear, np.ndarray):
        return encode_planes(crf, np.ascontiguousarray(linear, np.float32))
    if linear.device.type == "cpu" and linear.dtype.is_floating_point:
        return encode_planes(crf, linear.detach().float().numpy())
    return np.ascontiguousarray(encode_uint8(crf, linear).permute(1, 2, 0).cpu().numpy())


def render_raw_pair(photo, psf, raw, *, crf="gamma:2.2", border="reflect", noise_rng=None,
                    jpeg_quality=None, device=None, method="auto", mosaic_only=False,
                    highlight_gain=None, highlight_threshold=None, highlight_regions=None,
                    highlight_region_threshold=None, exposure_gain=None):
    """Blur one photo window by a PSF in the camera's RAW space; return (blurred, sharp).

    The RAW path (``blursynth blur --pipeline raw``; :mod:`blursynth.ops.raw`)::

        photo (uint8) -> decode camera response -> unprocess (linear sRGB -> camera)
          -> boost highlights -> scale by the exposure gain
          -> convolve with the PSF -> clip at white -> Bayer mosaic -> Poisson-Gaussian
          noise -> optional quantisation -> demosaic -> white balance, colour correction
          -> encode camera response -> JPEG round trip -> blurred
        sharp = the same window through the same chain without the blur, the noise and
                the JPEG, so the pair differs only by blur and noise.

    Parameters
    ----------
    photo : (H, W, 3) uint8 ndarray, RGB
    psf : (k, k) float ndarray
    raw : dict or RawParams
        The pair's camera (:func:`blursynth.ops.raw.draw_raw_params`).
    crf : str or CameraResponse
    border : {"reflect", "valid", "wrap"}
    noise_rng : numpy.random.Generator or None
        Draws the RAW noise field (one float32 normal per site, on the CPU); needed
        when the camera's noise levels are not both 0.
    jpeg_quality : int or None
    device : torch.device, str or None
        Where to convolve (None: the CPU); the RAW steps run on the CPU.
    method : {"auto", "fft", "direct"}
    mosaic_only : bool
        Return the blurred image's noisy RAW mosaic instead of the pair (``dataset
        export --raw``): the same chain, stopped before demosaicing.
    highlight_gain, highlight_threshold, highlight_regions, highlight_region_threshold
        As :func:`render_pair`'s: the boost is decided on the photo's linear values
        and multiplies the camera colours before the blur (the sensor clips at its
        white level after); the sharp image is not boosted.
    exposure_gain : float or None
        Linear gain of the whole window in camera space, the sharp image too (clipped
        at the white level like the blurred one).

    Returns
    -------
    blurred, sharp : (H', W', 3) uint8 ndarray
        Or, with ``mosaic_only``, the (H', W') float32 mosaic (white level 1.0).

    Examples
    --------
    >>> from blursynth.ops.raw import draw_raw_params
    >>> raw = draw_raw_params(np.random.default_rng(0), noise="off")
    >>> photo = np.full((16, 16, 3), 120, np.uint8)
    >>> blurred, sharp = render_raw_pair(photo, np.full((3, 3), 1 / 9, np.float32), raw)
    >>> bool((blurred == sharp).all()), int(np.abs(sharp.astype(int) - 120).max()) <= 1
    (True, True)
    """
    from . import raw as rawops

    crf = CameraResponse.parse(crf)
    photo = _check_photo(photo)
    p = rawops.RawParams.from_dict(raw)
    psf = np.array(psf, np.float32)  # a copy: a bank's PSFs are read-only, torch warns on those
    k = check_psf(psf)
    check_fits(photo.shape[0], photo.shape[1], k, border, what="photo window")
    noisy = p.shot_noise != 0.0 or p.read_noise != 0.0
    if noisy and noise_rng is None:
        raise ValueError("RAW noise needs noise_rng (the pair's own generator).")
    r = k // 2
    padded = _pad_photo(photo, r, border)
    table = crf.decode_table()
    cam = rawops.unprocess_uint8(padded, table, p)  # (3, Hp, Wp) camera colours
    gains = _raw_highlight_gains(photo, padded, table, r, border,
                                 _boost(highlight_gain, highlight_threshold), highlight_regions,
                                 highlight_region_threshold)
    src = cam if gains is None else cam * gains
    scale = None if exposure_gain is None else np.float32(exposure_gain)
    kernel = psf if scale is None else psf * scale
    if device is None or str(device) == "cpu":
        # NumPy planes: the same numbers as through torch (convolve_planes), and no torch import,
        # which a process of the writer's pool would otherwise pay before its first pair.
        from .convolve import convolve_planes

        blurred_cam = convolve_planes(src, kernel, method=method).transpose(1, 2, 0)
    else:
        import torch

        blurred_cam = _convolve_to_hwc(torch.from_numpy(src)[None], kernel, torch.device(device), method)
    window = (cam[:, r:-r, r:-r] if r else cam).transpose(1, 2, 0)  # less the padding
    if scale is not None:
        window = window * scale
    return develop_raw_pair(blurred_cam, window, p, crf=crf, noise_rng=noise_rng,
                            jpeg_quality=jpeg_quality, mosaic_only=mosaic_only)


def develop_raw_images(blurred_linear, sharp_linear, raw, *, crf="gamma:2.2", noise_rng=None,
                       jpeg_quality=None, mosaic_only=False, highlight_gain=None,
                       highlight_threshold=None, highlight_regions=None,
                       highlight_region_threshold=None, exposure_gain=None):
    """Linear-light blurred and sharp images through the RAW path: (blurred, sharp) uint8.

    Both are unprocessed to the camera's colours (:func:`blursynth.ops.raw.unprocess`) and go
    through :func:`develop_raw_pair`, the blurred one with the noise field: the end of the
    RAW-path sources whose blur is made in linear sRGB (frame averaging, learned blur).

    Parameters
    ----------
    blurred_linear, sharp_linear : (H, W, 3) float32 ndarray
        Linear sRGB in [0, 1]; ``sharp_linear`` may be None with ``mosaic_only``.
    raw, crf, noise_rng, jpeg_quality, mosaic_only
        As :func:`develop_raw_pair`'s.
    highlight_gain, highlight_threshold, highlight_regions, highlight_region_threshold
        The highlight boost (:func:`blursynth.ops.degrade.highlight_gains`), decided on
        ``blurred_linear`` itself (each pixel's brightest channel; the small regions found
        there too) and multiplying its camera colours before the clip at white; the sharp
        image is not boosted. With no pre-blur image, this is the boost of the blurred
        image's own values: docs/algorithms.md, "Highlights on the RAW path".
    exposure_gain : float or None
        Linear gain of both images' camera colours, after the boost (clipped at white).

    Returns
    -------
    blurred, sharp : (H, W, 3) uint8 ndarray, or the blurred RAW mosaic with ``mosaic_only``
    """
    from .raw import unprocess

    blurred_cam = unprocess(blurred_linear, raw)
    sharp_cam = None if mosaic_only else unprocess(sharp_linear, raw)
    boost = _boost(highlight_gain, highlight_threshold)
    if boost is not None:
        peak = np.asarray(blurred_linear, np.float32).max(axis=2)
        gains = _boost_gains(peak, boost, _small_regions(peak, highlight_regions,
                                                         highlight_region_threshold))
        blurred_cam = blurred_cam * gains[..., None]
    if exposure_gain is not None:
        scale = np.float32(exposure_gain)
        blurred_cam = blurred_cam * scale
        sharp_cam = None if sharp_cam is None else sharp_cam * scale
    return develop_raw_pair(blurred_cam, sharp_cam, raw, crf=crf, noise_rng=noise_rng,
                            jpeg_quality=jpeg_quality, mosaic_only=mosaic_only)


def develop_raw_pair(blurred_cam, sharp_cam, raw, *, crf="gamma:2.2", noise_rng=None,
                     jpeg_quality=None, mosaic_only=False):
    """The RAW path's shared end: camera-space blurred and sharp images -> (blurred, sharp).

    Every RAW-path source (trajectory blur, frame averaging, learned blur) ends here, so
    one chain makes their pairs and their exported mosaics::

        blurred_cam -> clip at white -> Bayer mosaic -> noise -> optional quantisation
          -> develop (gains, demosaic, highlights, colour correction) -> encode -> JPEG
        sharp_cam   -> the same without the noise and the JPEG

    Parameters
    ----------
    blurred_cam, sharp_cam : (H, W, 3) float32 ndarray
        Linear camera colours (:func:`blursynth.ops.raw.unprocess`'s output), unclipped;
        ``sharp_cam`` may be None with ``mosaic_only`` (it is not read then).
    raw : dict or RawParams
    crf : str or CameraResponse
    noise_rng : numpy.random.Generator or None
        Needed when the camera's noise levels are not both 0.
    jpeg_quality : int or None
    mosaic_only : bool
        Return the blurred image's noisy RAW mosaic ((H, W) float32) and stop.

    Returns
    -------
    blurred, sharp : (H, W, 3) uint8 ndarray, or the mosaic
    """
    from . import raw as rawops

    crf = CameraResponse.parse(crf)
    p = rawops.RawParams.from_dict(raw)
    noisy = p.shot_noise != 0.0 or p.read_noise != 0.0
    if noisy and noise_rng is None:
        raise ValueError("RAW noise needs noise_rng (the pair's own generator).")
    blurred_raw = rawops.sensor_readout(blurred_cam, p, rng=noise_rng if noisy else None,
                                        noisy=noisy)
    if mosaic_only:
        return blurred_raw
    blurred = _develop_encode(blurred_raw, p, crf)
    sharp = _develop_encode(rawops.sensor_readout(sharp_cam, p, noisy=False), p, crf)
    if jpeg_quality is not None:
        blurred = jpeg_roundtrip(blurred, int(jpeg_quality))
    return blurred, sharp


def _raw_highlight_gains(photo, padded, table, r, border, boost, max_area, region_threshold):
    """(Hp, Wp) float32 highlight gains of the padded photo for the RAW path, or None.

    Decided on the photo's linear values (:func:`_peak`), as the RGB path's boost is; the
    small regions are found on the window (:func:`_regions`), then padded as the photo.
    """
    if boost is None:
        return None
    regions = _regions(photo, table, boost, max_area, region_threshold)
    if regions is not None:
        regions = (_pad_mask(regions[0], r, border), regions[1])
    return _boost_gains(_peak(padded, table), boost, regions)


def _convolve_to_hwc(planes, psf, device, method):
    """(1, 3, Hp, Wp) CPU tensor convolved on ``device``: an (H, W, 3) float32 array on the CPU.

    A view of the planes: the RAW read-out takes any strides, so no copy is made.
    """
    from .convolve import convolve_padded

    out = convolve_padded(planes.to(device), psf, method=method)[0]
    return out.cpu().numpy().transpose(1, 2, 0)


def _develop_encode(raw_mosaic, params, crf):
    from .raw import develop_planes

    return encode_planes(crf, develop_planes(raw_mosaic, params))
