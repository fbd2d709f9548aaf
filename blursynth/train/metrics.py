"""PSNR and SSIM on torch images, matching scikit-image's definitions."""

from __future__ import annotations


import torch


def _check_pair(a, b):
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(
            f"images must be two (B, C, H, W) tensors of the same shape; got {tuple(a.shape)} "
            f"and {tuple(b.shape)}."
        )


def psnr(image, reference, *, data_range=1.0):
    """Peak signal-to-noise ratio of each image against its reference, in dB.

    Parameters
    ----------
    image, reference : (B, C, H, W) float tensor
        Values in ``[0, data_range]``.
    data_range : float

    Returns
    -------
    psnr : (B,) tensor
        ``10 log10(data_range^2 / MSE)``; ``inf`` for identical images.

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(1, 3, 8, 8); y = torch.full_like(x, 0.1)
    >>> round(float(psnr(x, y)), 4)
    20.0
    """
    _check_pair(image, reference)
    mse = ((image - reference) ** 2).flatten(1).mean(dim=1)
    return 10 * torch.log10(data_range ** 2 / mse)


def _gaussian_window(sigma, radius, like):
    x = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def ssim(image, reference, *, data_range=1.0, sigma=1.5):
    """Mean structural similarity of each image against its reference.

    Gaussian-weighted windows (sigma 1.5, radius 5, i.e. 11x11), population covariances,
    K1 = 0.01, K2 = 0.03, mean over the pixels at least 5 from the border and over channels:
    scikit-image's ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range, channel_axis=-1)``.

    Parameters
    ----------
    image, reference : (B, C, H, W) float tensor
        H and W at least 11. Computed in the input's dtype (pass float64 for reference figures).

    Returns
    -------
    ssim : (B,) tensor

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    >>> float(ssim(x, x))
    1.0
    """
    _check_pair(image, reference)
    radius = int(3.5 * sigma + 0.5)  # scipy's gaussian_filter truncates at 3.5 sigma
    if min(image.shape[-2:]) < 2 * radius + 1:
        raise ValueError(f"ssim needs images of at least {2 * radius + 1} px a side; got "
                         f"{tuple(image.shape[-2:])}.")
    w = _gaussian_window(sigma, radius, image)

    def blur(t):
        # 'valid' separable filtering as sliding windows times the taps (fast in float64,
        # unlike a grouped conv): exactly the pixels scikit-image keeps after cropping the
        # border, so its border mode never enters.
        return (t.unfold(-1, w.numel(), 1) @ w).unfold(-2, w.numel(), 1) @ w

    x, y = image, reference
    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(dim=1)
