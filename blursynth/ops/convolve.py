"""Blur (B, C, H, W) torch images by PSFs: FFT or sparse direct, on any device.

One engine, three layers:

- :func:`pad_image` extends the border (``reflect``, ``wrap``; ``valid`` adds
  nothing) by the PSF radius;
- :func:`convolve_padded` computes the *valid* convolution of a padded batch,
  choosing per call between an FFT (``torch.fft.rfft2``) and a direct sum of
  shifted, weighted copies over the PSF's non-zero taps, whichever a cost
  estimate says is cheaper;
- :func:`convolve` (one PSF, or one per sample of the same size) and
  :func:`convolve_many` (per-sample PSFs of any odd sizes) put the two
  together.

On the CPU the direct sum of float32/float64 images is :mod:`blursynth.ops._convolve_taps`'s
Numba row kernel.

Everything follows the input's device and dtype and is differentiable (the
learned blur reuses it). Convolution here is true convolution (the PSF is
flipped), as for a photo: a PSF that is a single tap at offset (dy, dx) from
its centre moves the image content by (+dy, +dx).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import BadInputError
from ._convolve_taps import _taps_numpy, psf_taps  # noqa: F401 (psf_taps: this module's API)

BORDERS = ("reflect", "valid", "wrap")
METHODS = ("auto", "fft", "direct")

# Cost of one tap and pixel of the direct path against one "n log2 n" unit
# of a forward+inverse real FFT pair, in ns, measured on the 2-core CPU this
# project targets (720x1280x3, 65x65 PSF, one thread, quiet machine): the
# Numba row kernel ~0.085, torch's shifted add_ (used when gradients are
# needed) ~0.5, the FFT pair ~0.74, so the direct path wins below ~200 taps
# there. On a GPU each tap is a kernel launch, so FFT wins earlier.
_DIRECT_COST_CPU = 0.09
_DIRECT_COST_TORCH = 0.5
_FFT_COST_CPU = 0.75
_DIRECT_COST_GPU = 4.0


def check_psf(psf, *, name: str = "psf"):
    """Validate one PSF: 2-D, square, odd size, finite, non-negative, non-zero sum.

    Parameters
    ----------
    psf : (k, k) ndarray or torch.Tensor
        Float values. It is used as given (not renormalised), so a PSF that
        sums to 1 preserves energy.

    Returns
    -------
    k : int
        The PSF's side length.

    Examples
    --------
    >>> check_psf(np.full((5, 5), 1 / 25))
    5

    Raises
    ------
    BadInputError
        Naming the rule broken and how to fix it.
    """
    shape = tuple(psf.shape)
    if len(shape) != 2:
        raise BadInputError(
            f"{name} must be 2-D (k, k); got shape {shape}."
            + (" Squeeze the leading axes." if len(shape) > 2 and set(shape[:-2]) == {1} else "")
        )
    k0, k1 = shape
    if k0 != k1 or k0 % 2 == 0:
        raise BadInputError(
            f"{name} must be square with an odd side (centre pixel); got shape {shape}. "
            "Pad it with a zero row/column to the next odd size."
        )
    values = psf.detach().cpu().numpy() if hasattr(psf, "detach") else np.asarray(psf)
    if not np.all(np.isfinite(values)):
        raise BadInputError(f"{name} has NaN or infinite values.")
    if values.min() < 0:
        raise BadInputError(f"{name} must be non-negative; found {values.min():.3g}.")
    if values.sum() <= 0:
        raise BadInputError(f"{name} sums to 0; a PSF must carry light (sum 1).")
    return k0


def output_shape(height: int, width: int, k: int, border: str) -> tuple[int, int]:
    """(H, W) of the blurred image for a ``k x k`` PSF and a border mode.

    Examples
    --------
    >>> output_shape(720, 1280, 65, "valid")
    (656, 1216)
    >>> output_shape(720, 1280, 65, "reflect")
    (720, 1280)
    """
    if border == "valid":
        return height - k + 1, width - k + 1
    return height, width


def check_fits(height: int, width: int, k: int, border: str, *, what: str = "image") -> None:
    """Raise :class:`BadInputError` if a ``k x k`` PSF is larger than an H x W image.

    Examples
    --------
    >>> check_fits(64, 64, 65, "reflect")
    Traceback (most recent call last):
    ...
    blursynth.errors.BadInputError: image is 64x64 but the PSF is 65x65: ...
    """
    _check_border(border)
    if height < k or width < k:
        raise BadInputError(
            f"{what} is {height}x{width} but the PSF is {k}x{k}: the PSF must fit inside the "
            "image. Use a smaller kernel (or exposure) or a larger image or crop."
        )


def pad_image(images, radius: int, border: str = "reflect"):
    """Extend a batch's border by ``radius`` pixels on every side.

    Parameters
    ----------
    images : (B, C, H, W) torch.Tensor
    radius : int
        PSF radius ``k // 2``.
    border : {"reflect", "wrap", "valid"}
        ``reflect`` mirrors without repeating the edge pixel; ``wrap`` is
        periodic; ``valid`` adds nothing.

    Returns
    -------
    padded : (B, C, H + 2r, W + 2r) torch.Tensor (``valid``: the input itself)

    Examples
    --------
    >>> import torch
    >>> pad_image(torch.arange(4.0).reshape(1, 1, 1, 4), 1, "wrap")[0, 0, 0].tolist()
    [3.0, 0.0, 1.0, 2.0, 3.0, 0.0]
    """
    import torch.nn.functional as F

    _check_border(border)
    if border == "valid" or radius == 0:
        return images
    mode = "reflect" if border == "reflect" else "circular"
    return F.pad(images, (radius, radius, radius, radius), mode=mode)


def convolve_padded(padded, psf, *, method: str = "auto"):
    """Valid convolution of a padded batch with one PSF or one per sample.

    Parameters
    ----------
    padded : (B, C, Hp, Wp) torch.Tensor, float
        Already padded by ``k // 2`` where a same-size output is wanted.
    psf : (k, k) or (B, k, k) torch.Tensor or ndarray
        Odd ``k``; moved to ``padded``'s device and dtype.
    method : {"auto", "fft", "direct"}
        ``auto`` picks the cheaper by :func:`choose_method`.

    Returns
    -------
    blurred : (B, C, Hp - k + 1, Wp - k + 1) torch.Tensor

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(1, 3, 20, 20)
    >>> a = convolve_padded(x, torch.full((5, 5), 1 / 25), method="fft")
    >>> b = convolve_padded(x, torch.full((5, 5), 1 / 25), method="direct")
    >>> a.shape, bool(torch.allclose(a, b, atol=1e-6))
    (torch.Size([1, 3, 16, 16]), True)
    """
    import torch

    psf = _as_psf_tensor(psf, padded)
    if psf.ndim not in (2, 3) or psf.shape[-1] != psf.shape[-2] or psf.shape[-1] % 2 == 0:
        raise BadInputError(f"psf must be (k, k) or (B, k, k) with odd k; got {tuple(psf.shape)}.")
    if psf.ndim == 3 and psf.shape[0] != padded.shape[0]:
        raise BadInputError(
            f"got {psf.shape[0]} PSFs for a batch of {padded.shape[0]} images; "
            "pass one PSF or one per image."
        )
    k = psf.shape[-1]
    b, c, hp, wp = padded.shape
    if hp < k or wp < k:
        raise BadInputError(f"padded image {hp}x{wp} is smaller than the {k}x{k} PSF.")
    if method not in METHODS:
        raise BadInputError(f"method must be one of {', '.join(METHODS)}; got {method!r}.")
    if method == "auto":
        method = choose_method(
            psf, (hp, wp), device=padded.device,
            requires_grad=padded.requires_grad or psf.requires_grad,
        )
    if method == "fft":
        return _convolve_fft(padded, psf)
    if psf.ndim == 3:
        # Taps differ per sample; each sample gets its own loop.
        return torch.cat([_convolve_direct(padded[i : i + 1], psf[i]) for i in range(b)])
    return _convolve_direct(padded, psf)


def convolve(images, psf, *, border: str = "reflect", method: str = "auto"):
    """Blur a batch by one PSF, or by one PSF per sample (all the same size).

    Parameters
    ----------
    images : (B, C, H, W) torch.Tensor, float
        Linear-light values (any range; nothing is clipped or rescaled).
    psf : (k, k) or (B, k, k) torch.Tensor or ndarray
        Non-negative, odd ``k``; it should sum to 1 to preserve energy.
    border : {"reflect", "valid", "wrap"}
        ``reflect`` (default) mirrors the image at its edges; ``valid`` crops
        ``k // 2`` pixels per side so that every output pixel saw only the
        image; ``wrap`` treats the image as periodic.
    method : {"auto", "fft", "direct"}

    Returns
    -------
    blurred : (B, C, H', W') torch.Tensor
        Same device and dtype as ``images``; (H', W') from :func:`output_shape`.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(2, 3, 16, 20)
    >>> delta = torch.zeros(5, 5); delta[2, 2] = 1
    >>> torch.allclose(convolve(x, delta), x)
    True
    >>> convolve(x, torch.full((5, 5), 1 / 25), border="valid").shape
    torch.Size([2, 3, 12, 16])
    """
    _check_images(images)
    psf = _as_psf_tensor(psf, images)
    if psf.ndim == 3 and psf.shape[0] != images.shape[0]:
        raise BadInputError(
            f"got {psf.shape[0]} PSFs for a batch of {images.shape[0]} images; "
            "pass one (k, k) PSF or a (B, k, k) stack."
        )
    for i, p in enumerate(psf if psf.ndim == 3 else [psf]):
        k = check_psf(p, name=f"psf[{i}]" if psf.ndim == 3 else "psf")
    check_fits(images.shape[-2], images.shape[-1], k, border)
    return convolve_padded(pad_image(images, k // 2, border), psf, method=method)


def convolve_many(images, psfs, *, border: str = "reflect", method: str = "auto"):
    """Blur each sample by its own PSF; PSFs and images may have different sizes.

    Each sample's pixels are the numbers :func:`convolve` gives it alone (the same method
    choice and kernels, on a batch of one), so they never depend on which other samples share
    the call, and ``valid`` outputs may differ in size. What the batch shares is the work
    around the kernels: the method is chosen on a host copy of each PSF and all PSFs go to the
    device in one copy, so a GPU batch runs without waiting on the host between samples.

    Parameters
    ----------
    images : (B, C, H, W) torch.Tensor, or a sequence of B (C, H_i, W_i) tensors
        Float, on one device.
    psfs : sequence of B (k_i, k_i) ndarrays or tensors
        Non-negative, odd ``k_i`` (each checked as :func:`check_psf` does).
    border, method : as in :func:`convolve`

    Returns
    -------
    blurred : list of B (C, H_i', W_i') torch.Tensor

    Examples
    --------
    >>> import torch
    >>> out = convolve_many(torch.rand(2, 1, 9, 9), [torch.ones(3, 3) / 9, torch.ones(5, 5) / 25],
    ...                     border="valid")
    >>> [tuple(o.shape) for o in out]
    [(1, 7, 7), (1, 5, 5)]
    >>> mixed = convolve_many([torch.rand(3, 9, 9), torch.rand(3, 12, 7)], [np.ones((3, 3)) / 9] * 2)
    >>> [tuple(o.shape) for o in mixed]
    [(3, 9, 9), (3, 12, 7)]
    """
    import torch

    if isinstance(images, torch.Tensor):
        _check_images(images)
        images = list(images)
    if len(psfs) != len(images):
        raise BadInputError(
            f"got {len(psfs)} PSFs for a batch of {len(images)} images; pass one per image."
        )
    if method not in METHODS:
        raise BadInputError(f"method must be one of {', '.join(METHODS)}; got {method!r}.")
    for i, image in enumerate(images):
        if not isinstance(image, torch.Tensor) or image.ndim != 3:
            raise BadInputError(f"images[{i}] must be a (C, H, W) torch tensor; got "
                                f"{tuple(getattr(image, 'shape', ())) or type(image).__name__}.")
        _check_images(image[None])
    if not images:
        return []
    if any(getattr(p, "requires_grad", False) for p in psfs) or any(x.requires_grad for x in images):
        # Gradients: each sample through convolve (its differentiable paths).
        return [convolve(x[None], p, border=border, method=method)[0] for x, p in zip(images, psfs)]
    like = images[0]
    host = [p.detach().cpu().numpy() if hasattr(p, "detach") else np.asarray(p) for p in psfs]
    host = [np.asarray(p, _numpy_dtype(like.dtype)) for p in host]
    if like.dtype not in (torch.float32, torch.float64):  # as convolve: PSFs in the images' dtype
        host = [torch.from_numpy(p).to(like.dtype).float().numpy() for p in host]
    plans = []
    for i, (image, p) in enumerate(zip(images, host)):
        k = check_psf(p, name=f"psf[{i}]")
        check_fits(image.shape[-2], image.shape[-1], k, border)
        pad = 0 if border == "valid" else 2 * (k // 2)
        hp, wp = image.shape[-2] + pad, image.shape[-1] + pad
        chosen = method
        if method == "auto":
            unit = _DIRECT_COST_CPU if like.device.type == "cpu" else _DIRECT_COST_GPU
            chosen = _cheaper(int(np.count_nonzero(p)), k, (hp, wp), unit)
        plans.append((k, chosen))
    # One host-to-device copy for every PSF; each sample reads its own view.
    flat = torch.from_numpy(np.concatenate([p.ravel() for p in host]))
    flat = flat.to(like.device, like.dtype, non_blocking=like.device.type == "cuda")
    out, at = [], 0
    for image, p, (k, chosen) in zip(images, host, plans):
        psf = flat[at : at + k * k].view(k, k)
        at += k * k
        padded = pad_image(image[None], k // 2, border)
        if chosen == "fft":
            out.append(_convolve_fft(padded, psf)[0])
        else:
            out.append(_convolve_direct(padded, psf, host=p)[0])
    return out


def _numpy_dtype(dtype):
    """The NumPy dtype of a float torch dtype (float32 for the ones NumPy lacks)."""
    import torch

    return np.float64 if dtype == torch.float64 else np.float32


def choose_method(psf, padded_hw, *, device=None, requires_grad=None) -> str:
    """Pick ``"fft"`` or ``"direct"`` by estimated cost.

    The direct path costs about (non-zero taps) x (output pixels); the FFT
    about (padded pixels) x log2(padded pixels), independent of the PSF.
    Trajectory PSFs at short exposures have a handful of taps, where the
    direct path wins.

    Parameters
    ----------
    psf : (k, k) or (B, k, k) torch.Tensor
    padded_hw : (int, int)
    device : torch.device or None
    requires_grad : bool or None
        Whether gradients are needed (then the direct path is torch's slower
        differentiable loop); None reads it from ``psf``.

    Returns
    -------
    method : {"fft", "direct"}

    Examples
    --------
    >>> import torch
    >>> few = torch.zeros(65, 65); few[32, 30:35] = 0.2
    >>> choose_method(few, (784, 1344)), choose_method(torch.ones(65, 65), (784, 1344))
    ('direct', 'fft')
    """
    k = psf.shape[-1]
    if psf.requires_grad:
        taps = k * k
    else:
        per = (psf != 0).reshape(-1, k * k).sum(dim=1)
        taps = int(per.max())
    if requires_grad is None:
        requires_grad = psf.requires_grad
    direct_unit = _DIRECT_COST_TORCH if requires_grad else _DIRECT_COST_CPU
    if device is not None and getattr(device, "type", "cpu") != "cpu":
        direct_unit = _DIRECT_COST_GPU
    return _cheaper(taps, k, padded_hw, direct_unit)


def _cheaper(taps: int, k: int, padded_hw, direct_unit: float) -> str:
    """"direct" or "fft" for ``taps`` non-zero taps of a k x k PSF over a padded (H, W) image."""
    hp, wp = padded_hw
    out_px = (hp - k + 1) * (wp - k + 1)
    fh, fw = _fft_shape(hp, wp)
    fft_cost = _FFT_COST_CPU * fh * fw * math.log2(max(fh * fw, 2))
    return "direct" if direct_unit * taps * out_px < fft_cost else "fft"


def convolve_planes(planes, psf, *, method: str = "auto"):
    """Valid convolution of padded NumPy planes by one PSF on the CPU, without torch where it can.

    The same numbers as ``convolve_padded(torch.from_numpy(planes)[None], psf)[0]`` (the same
    choice of method, the same kernels), but the sparse direct path runs on the NumPy arrays
    themselves, so a CPU pair needs no torch import (most of a second of a command's start-up).
    The FFT path goes through torch.

    Parameters
    ----------
    planes : (C, Hp, Wp) float32 ndarray
        Already padded by ``k // 2`` where a same-size output is wanted.
    psf : (k, k) ndarray
        Odd ``k``; cast to the planes' dtype.
    method : {"auto", "fft", "direct"}

    Returns
    -------
    blurred : (C, Hp - k + 1, Wp - k + 1) float32 ndarray

    Examples
    --------
    >>> x = np.random.default_rng(0).random((3, 20, 20), dtype=np.float32)
    >>> psf = np.zeros((5, 5), np.float32); psf[2, 1:4] = 1 / 3
    >>> convolve_planes(x, psf).shape
    (3, 16, 16)
    """
    planes = np.ascontiguousarray(planes)
    psf = np.asarray(psf, planes.dtype)
    if method not in METHODS:
        raise BadInputError(f"method must be one of {', '.join(METHODS)}; got {method!r}.")
    k = psf.shape[-1]
    if method == "auto":
        method = _cheaper(int(np.count_nonzero(psf)), k, planes.shape[-2:], _DIRECT_COST_CPU)
    if method == "direct" and planes.dtype in (np.float32, np.float64):
        c, hp, wp = planes.shape
        if hp < k or wp < k:
            raise BadInputError(f"padded image {hp}x{wp} is smaller than the {k}x{k} PSF.")
        return _taps_numpy(planes, psf)
    import torch

    return convolve_padded(torch.from_numpy(planes)[None], psf, method=method)[0].numpy()


def psf_spectrum(psf, fft_hw):
    """Real FFT of a (k, k) or (B, k, k) PSF zero-padded to ``fft_hw``.

    Only the PSF's k rows go through the row transform; the column transform
    zero-extends them, which is what a padded ``rfft2`` computes, for a
    fraction of the work.

    Returns
    -------
    spectrum : (..., fh, fw // 2 + 1) complex torch.Tensor

    Examples
    --------
    >>> import torch
    >>> psf = torch.rand(5, 5, dtype=torch.float64)
    >>> bool(torch.allclose(psf_spectrum(psf, (16, 20)), torch.fft.rfft2(psf, s=(16, 20))))
    True
    """
    import torch

    fh, fw = fft_hw
    rows = torch.fft.rfft(psf, n=fw, dim=-1)
    return torch.fft.fft(rows, n=fh, dim=-2)


def _convolve_fft(padded, psf):
    import torch

    b, c, hp, wp = padded.shape
    k = psf.shape[-1]
    fh, fw = _fft_shape(hp, wp)
    spectrum = torch.fft.rfft2(padded, s=(fh, fw))
    kspec = psf_spectrum(psf, (fh, fw))
    if psf.ndim == 3:
        kspec = kspec[:, None]
    if spectrum.requires_grad or kspec.requires_grad:
        spectrum = spectrum * kspec
    else:
        spectrum.mul_(kspec)
    # Circular convolution of the zero-extended input; rows and columns from
    # k - 1 on saw no wrapped-around values, which is the valid region.
    full = torch.fft.irfft2(spectrum, s=(fh, fw))
    return full[..., k - 1 : hp, k - 1 : wp]


def _convolve_direct(padded, psf, host=None):
    """The direct sum over the PSF's taps; ``host``: the PSF as a host array (the same values),
    so that a device PSF's taps and weights need no copy back (a wait on the device)."""
    import torch

    k = psf.shape[-1]
    b, c, hp, wp = padded.shape
    ho, wo = hp - k + 1, wp - k + 1
    grad = psf.requires_grad or padded.requires_grad
    if not grad and padded.device.type == "cpu" and padded.dtype in (torch.float32, torch.float64):
        return _convolve_taps_cpu(padded, psf)
    if psf.requires_grad:
        taps = [(i, j) for i in range(k) for j in range(k)]
    elif host is not None:
        taps = list(zip(*(ix.tolist() for ix in np.nonzero(host))))  # row-major, as nonzero
    else:
        taps = [tuple(t) for t in torch.nonzero(psf).tolist()]
    out = padded.new_zeros((b, c, ho, wo))
    if grad:
        for i, j in taps:
            shifted = padded[..., k - 1 - i : k - 1 - i + ho, k - 1 - j : k - 1 - j + wo]
            out = out + psf[i, j] * shifted
        return out
    weights = (host if host is not None else psf.detach().cpu()).tolist()
    for i, j in taps:
        out.add_(
            padded[..., k - 1 - i : k - 1 - i + ho, k - 1 - j : k - 1 - j + wo],
            alpha=weights[i][j],
        )
    return out


def _convolve_taps_cpu(padded, psf):
    """Sparse direct convolution on the CPU through the Numba row kernel."""
    import torch

    k = psf.shape[-1]
    b, c, hp, wp = padded.shape
    x = padded.detach().contiguous().numpy().reshape(b * c, hp, wp)
    out = _taps_numpy(x, psf)
    return torch.from_numpy(out).reshape(b, c, hp - k + 1, wp - k + 1)


def _fft_shape(hp: int, wp: int) -> tuple[int, int]:
    return _fast_len(hp), _fast_len(wp, even=True)


def _fast_len(n: int, *, even: bool = False) -> int:
    """Smallest 2^a 3^b 5^c 7^d >= n (even if asked): sizes every FFT library likes."""
    best = None
    p2 = 2 if even else 1
    while p2 < 2 * n:
        p3 = p2
        while p3 < 2 * n:
            p5 = p3
            while p5 < 2 * n:
                p7 = p5
                while p7 < 2 * n:
                    if p7 >= n and (best is None or p7 < best):
                        best = p7
                    p7 *= 7
                p5 *= 5
            p3 *= 3
        p2 *= 2
    return best


def _as_psf_tensor(psf, like):
    import torch

    if not isinstance(psf, torch.Tensor):
        psf = torch.as_tensor(np.asarray(psf))
    return psf.to(device=like.device, dtype=like.dtype)


def _check_images(images) -> None:
    import torch

    if not isinstance(images, torch.Tensor):
        raise BadInputError(
            f"images must be a (B, C, H, W) torch tensor; got {type(images).__name__}."
        )
    if images.ndim != 4:
        raise BadInputError(
            f"images must be 4-D (B, C, H, W); got shape {tuple(images.shape)}."
            + (" Add a batch axis with images[None]." if images.ndim == 3 else "")
        )
    if not images.is_floating_point():
        raise BadInputError(
            f"images must be float; got {images.dtype}. Decode with CameraResponse.decode_uint8."
        )


def _check_border(border) -> None:
    if border not in BORDERS:
        raise BadInputError(f"border must be one of {', '.join(BORDERS)}; got {border!r}.")
