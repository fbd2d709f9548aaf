"""DeblurGAN's losses: WGAN-GP for the critic; adversarial + 100 x content loss for G."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .models import from_model_range


def gradient_penalty(critic, real, fake, *, generator=None, weight=10.0):
    """WGAN-GP penalty with the gradient norm taken per sample.

    ``weight * mean_i (||grad_x D(x_i)||_2 - 1)^2`` at ``x_i = a_i real_i + (1 - a_i) fake_i``,
    ``a_i ~ U(0, 1)`` one per sample; the norm runs over all of sample i's pixels and channels
    and the critic's patch map is summed (Gulrajani et al. 2017).

    Parameters
    ----------
    critic : callable
        ``(B, C, H, W) -> (B, ...)``.
    real, fake : (B, C, H, W) tensor
        ``fake`` should be detached from the generator.
    generator : torch.Generator, optional
        Source of the mixing weights ``a`` (on the tensors' device).
    weight : float
        lambda, 10 in the paper.

    Returns
    -------
    penalty : 0-d tensor
        Differentiable w.r.t. the critic's parameters.

    Examples
    --------
    >>> import torch
    >>> lin = lambda x: (x * 2.0).sum(dim=(1, 2, 3))   # gradient 2 everywhere
    >>> x = torch.zeros(2, 1, 1, 4)
    >>> float(gradient_penalty(lin, x, x))              # 10 * (sqrt(4 * 2**2) - 1)**2
    90.0
    """
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), generator=generator,
                       device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    score = critic(mixed)
    (grad,) = torch.autograd.grad(score.sum(), mixed, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)
    return weight * ((norms - 1) ** 2).mean()


def critic_loss(critic, real, fake, *, generator=None, gp_weight=10.0):
    """WGAN-GP critic loss ``D(fake) - D(real) + GP``, with one forward pass for all three.

    One pass over ``cat(real, fake, mixed)`` keeps DistributedDataParallel to one forward per
    backward. InstanceNorm normalises each sample alone, so batching them changes nothing.

    Returns
    -------
    loss, wasserstein, penalty : 0-d tensors
        ``wasserstein = D(real) - D(fake)`` (detached) and the penalty (detached).
    """
    b = real.shape[0]
    alpha = torch.rand((b,) + (1,) * (real.dim() - 1), generator=generator,
                       device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(torch.cat([real, fake, mixed]))
    d_real, d_fake, d_mixed = scores[:b], scores[b:2 * b], scores[2 * b:]
    (grad,) = torch.autograd.grad(d_mixed.sum(), mixed, create_graph=True)
    # Reduce in at least float32, whatever autocast ran the critic in.
    acc = torch.promote_types(grad.dtype, torch.float32)
    penalty = gp_weight * ((grad.to(acc).flatten(1).norm(2, dim=1) - 1) ** 2).mean()
    wasserstein = d_real.to(acc).mean() - d_fake.to(acc).mean()
    return -wasserstein + penalty, wasserstein.detach(), penalty.detach()


class ContentLoss(nn.Module):
    """Perceptual loss (MSE of VGG19 conv3_3 features) or, without VGG, an L1 pixel loss.

    Parameters
    ----------
    vgg : nn.Module or None
        Feature extractor on [0, 1] images (:class:`blursynth.nn.vgg.VGG19Features`), or None
        for the pixel loss.

    ``forward(fake, sharp)`` takes ``(B, 3, H, W)`` images in [-1, 1].

    Examples
    --------
    >>> import torch
    >>> float(ContentLoss(None)(torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)))
    1.0
    """

    def __init__(self, vgg=None):
        super().__init__()
        self.vgg = vgg
        if vgg is not None:
            vgg.eval().requires_grad_(False)

    def train(self, mode=True):
        super().train(mode)
        if self.vgg is not None:
            self.vgg.eval()  # fixed feature extractor, whatever the trainer's mode
        return self

    def forward(self, fake, sharp):
        if self.vgg is None:
            return F.l1_loss(fake, sharp)
        f_fake = self.vgg(from_model_range(fake))
        with torch.no_grad():
            f_sharp = self.vgg(from_model_range(sharp))
        return F.mse_loss(f_fake.float(), f_sharp.float())


def build_content_loss(perceptual: str, vgg_weights=None):
    """The content loss ``--perceptual`` names and a record of which was used (for run.json).

    Parameters
    ----------
    perceptual : {"vgg", "none"}
        VGG19 conv3_3 features, or none (L1 of the pixels).
    vgg_weights : str or None
        torchvision's VGG19 file; None: the torch hub cache, else a download.

    Returns
    -------
    loss : ContentLoss
    info : dict
    """
    if perceptual == "none":
        return ContentLoss(None), {"kind": "pixel-l1"}
    if perceptual != "vgg":
        from ..errors import BadInputError

        raise BadInputError(f"--perceptual must be vgg or none; got {perceptual!r}.")
    from ..nn.vgg import load_vgg19_features, resolve_vgg19_weights

    path = resolve_vgg19_weights(vgg_weights)
    vgg = load_vgg19_features(path, "conv3_3")
    return ContentLoss(vgg), {"kind": "vgg19-conv3_3", "weights": str(path)}


class FrequencyLoss(nn.Module):
    """A content loss plus ``weight`` x the L1 of the difference of the images' 2-D spectra.

    The spectra are orthonormal real FFTs (``torch.fft.rfft2(..., norm="ortho")``) of each
    channel, compared on their real and imaginary parts: the frequency reconstruction loss of
    MIMO-UNet (Cho et al., ICCV 2021, Eq. 6), which weighs what a pixel loss lets blur keep, the
    high frequencies' phase and amplitude. With the orthonormal transform the term does not grow
    with the crop (MIMO-UNet's unnormalised FFT and weight 0.1 come to about 25 on 256 px crops
    in these units). ``fake`` and ``sharp`` are images, or lists of them (a multi-scale network's
    outputs and targets: the term is the mean over the scales). Computed in float32 whatever the
    autocast (bf16 has no FFT on the CPU).

    Examples
    --------
    >>> import torch
    >>> loss = FrequencyLoss(ContentLoss(None), 0.5)
    >>> x = torch.zeros(1, 3, 8, 8)
    >>> float(loss(x, x))
    0.0
    >>> y = x.clone(); y[..., 0, 0] = 1.0
    >>> float(loss(y, x))  # pixels: 1/64; spectra: every real part 1/8, imaginary parts 0
    0.046875
    """

    def __init__(self, content: nn.Module, weight: float):
        super().__init__()
        self.content = content
        self.weight = float(weight)

    def forward(self, fake, sharp):
        base = self.content(fake, sharp)
        pairs = list(zip(fake, sharp)) if isinstance(fake, (list, tuple)) else [(fake, sharp)]
        term = sum(spectrum_l1(f, s) for f, s in pairs) / len(pairs)
        return base + self.weight * term


def spectrum_l1(fake: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the real and imaginary parts of the images' orthonormal 2-D
    real FFTs (per channel)."""
    diff = torch.fft.rfft2(fake.float() - sharp.float(), norm="ortho")
    return torch.view_as_real(diff).abs().mean()


def with_frequency_term(content: nn.Module, info: dict, weight: float):
    """``(loss, info)`` with :class:`FrequencyLoss`'s term added at ``weight`` (unchanged at 0)."""
    if not weight:
        return content, info
    return FrequencyLoss(content, weight), {**info, "fft_weight": float(weight)}


class PixelPerceptualLoss(nn.Module):
    """``pixel_weight * MSE(fake, sharp) + perceptual_weight * perceptual(fake, sharp)``.

    The content loss of DeblurGAN-v2 (0.5 and 0.006) and of DBGAN (1 and 0.005); ``perceptual``
    is the trainer's :class:`ContentLoss` (VGG19 conv3_3, or the L1 pixel loss that stands in
    for it under ``--perceptual none``). Images ``(B, 3, H, W)`` in [-1, 1].

    Examples
    --------
    >>> import torch
    >>> loss = PixelPerceptualLoss(ContentLoss(None), 0.5, 0.25)
    >>> float(loss(torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)))   # 0.5 * 1 + 0.25 * 1
    0.75
    """

    def __init__(self, perceptual, pixel_weight, perceptual_weight):
        super().__init__()
        self.perceptual = perceptual
        self.pixel_weight, self.perceptual_weight = float(pixel_weight), float(perceptual_weight)

    def forward(self, fake, sharp):
        mse = F.mse_loss(fake.float(), sharp.float())
        return self.pixel_weight * mse + self.perceptual_weight * self.perceptual(fake, sharp)


def build_pixel_perceptual_loss(perceptual, vgg_weights, pixel_weight, perceptual_weight):
    """:class:`PixelPerceptualLoss` over the ``--perceptual`` loss, and its record for run.json."""
    loss, info = build_content_loss(perceptual, vgg_weights)
    return (PixelPerceptualLoss(loss, pixel_weight, perceptual_weight),
            dict(info, kind=f"{pixel_weight:g} mse + {perceptual_weight:g} {info['kind']}"))
