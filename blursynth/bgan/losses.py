"""BGAN's losses: the relativistic blur loss, its weights beside a perceptual loss, a pooled L1.

The perceptual term is the trainer's :class:`blursynth.train.losses.ContentLoss` (MSE of VGG19
conv3_3 features) or, without VGG, :class:`PooledL1`, applied between a generated blur and its
own sharp input: it keeps the content while the adversarial term moves the blur.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

#: The paper gives alpha = 0.005 and beta = 0.01 for its two generator terms, but its text can be
#: read either way round. ``"perceptual"``: alpha weighs the perceptual loss (the default here);
#: ``"blur"``: alpha weighs the relativistic blur loss.
ALPHA, BETA = 0.005, 0.01
ALPHA_WEIGHS = ("perceptual", "blur")


@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator's loss ``perceptual * L_p + blur * L_blur``.

    Examples
    --------
    >>> LossWeights.paper("perceptual")
    LossWeights(perceptual=0.005, blur=0.01)
    >>> LossWeights.paper("blur")
    LossWeights(perceptual=0.01, blur=0.005)
    """

    perceptual: float
    blur: float

    @classmethod
    def paper(cls, alpha_weighs: str = "perceptual") -> "LossWeights":
        """The paper's (alpha, beta), with alpha on the term named by ``alpha_weighs``."""
        if alpha_weighs == "perceptual":
            return cls(perceptual=ALPHA, blur=BETA)
        if alpha_weighs == "blur":
            return cls(perceptual=BETA, blur=ALPHA)
        raise ValueError(f"alpha_weighs must be one of {ALPHA_WEIGHS}; got {alpha_weighs!r}.")


def _relativistic(scores_a, scores_b):
    """``-E_a log sig(C_a - E_b C_b) - E_b log(1 - sig(C_b - E_a C_a))``, in float32 at least.

    ``log(1 - sig(x)) = log sig(-x)``; log-sigmoid keeps both terms finite for any score.
    """
    acc = torch.promote_types(scores_a.dtype, torch.float32)
    a, b = scores_a.to(acc).flatten(), scores_b.to(acc).flatten()
    return -F.logsigmoid(a - b.mean()).mean() - F.logsigmoid(-(b - a.mean())).mean()


def relativistic_critic_loss(scores_real, scores_fake):
    """The critic's relativistic blur loss.

    ``L_D = -E_r[log sig(C_r - E_f C_f)] - E_f[log(1 - sig(C_f - E_r C_r))]``: the critic is
    rewarded when real blurred photos score above the average generated one, and generated ones
    below the average real one.

    Parameters
    ----------
    scores_real, scores_fake : (B,) tensor
        Raw critic scores (logits) of real blurred and generated images; the expectations are
        means over each batch.

    Returns
    -------
    loss : 0-d tensor

    Examples
    --------
    >>> import math, torch
    >>> loss = relativistic_critic_loss(torch.tensor([0.0]), torch.tensor([0.0]))
    >>> round(float(loss), 6) == round(2 * math.log(2), 6)
    True
    """
    return _relativistic(scores_real, scores_fake)


def relativistic_generator_loss(scores_real, scores_fake):
    """The generator's relativistic blur loss: the critic's with real and generated swapped.

    ``L_G = -E_f[log sig(C_f - E_r C_r)] - E_r[log(1 - sig(C_r - E_f C_f))]``. Both terms carry
    gradient to the generator, the second through ``E_f C_f``.

    Parameters
    ----------
    scores_real, scores_fake : (B,) tensor
        As in :func:`relativistic_critic_loss`.

    Returns
    -------
    loss : 0-d tensor

    Examples
    --------
    >>> import torch
    >>> r, f = torch.tensor([2.0, 1.0]), torch.tensor([-1.0, 0.0])
    >>> bool(relativistic_generator_loss(r, f) > relativistic_critic_loss(r, f))
    True
    """
    return _relativistic(scores_fake, scores_real)


class PooledL1(torch.nn.Module):
    """Content loss without VGG: L1 between ``factor`` x ``factor`` average-pooled images.

    BGAN's perceptual term must keep the content while leaving the generator free to blur. A
    plain L1 on pixels penalises the blur itself; compared at a quarter of the resolution (as
    VGG19's conv3_3 features are), content and colour are held and fine detail is not.

    ``forward(fake, sharp)`` takes ``(B, 3, H, W)`` images (any range; sharp is a target).

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(1, 3, 8, 8); y = x.clone(); y[..., ::2, :] = 1.0   # stripes
    >>> float(PooledL1(4)(torch.full_like(x, 0.5), y))                      # same local mean
    0.0
    """

    def __init__(self, factor: int = 4):
        super().__init__()
        self.factor = int(factor)

    def forward(self, fake, sharp):
        k = self.factor
        return F.l1_loss(F.avg_pool2d(fake, k, ceil_mode=True),
                         F.avg_pool2d(sharp.detach(), k, ceil_mode=True))
