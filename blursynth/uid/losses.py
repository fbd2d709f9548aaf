"""UID's losses: the KL term on the blur code, the adversarial terms, and the paper's weights.

The cycle terms are plain L1 and the perceptual term is the trainer's
:class:`blursynth.train.losses.ContentLoss` (MSE of VGG19 conv3_3 features) or, with
``--perceptual none``, BGAN's :class:`blursynth.bgan.losses.PooledL1`; both compare a blurred
image with its deblurred version, so they keep its content while leaving the blur free to go.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class UIDWeights:
    """Weights of the encoders' and generators' loss.

    ``adversarial * (L_adv,B + L_adv,S) + kl * L_KL + cycle * (L_cc,B + L_cc,S)
    + perceptual * L_p + self_reconstruction * L_sr``; the defaults are the paper's (1, 0.01,
    10, 0.1, and no ``L_sr``). ``L_sr``, the L1 of a blurred image decoded from its own
    content and code against itself, is DRIT's (Lee et al. 2018), not UID's: it gives the
    blurred generator a reason to read the code (docs/algorithms.md, UID).

    Examples
    --------
    >>> UIDWeights()
    UIDWeights(adversarial=1.0, kl=0.01, cycle=10.0, perceptual=0.1, self_reconstruction=0.0)
    >>> UIDWeights().to_dict()   # the paper's terms only
    {'adversarial': 1.0, 'kl': 0.01, 'cycle': 10.0, 'perceptual': 0.1}
    """

    adversarial: float = 1.0
    kl: float = 0.01
    cycle: float = 10.0
    perceptual: float = 0.1
    self_reconstruction: float = 0.0

    def __post_init__(self):
        for key in ("adversarial", "kl", "cycle", "perceptual", "self_reconstruction"):
            v = getattr(self, key)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"UIDWeights.{key} must be a finite number >= 0; got {v!r}.")
            object.__setattr__(self, key, float(v))

    def to_dict(self) -> dict:
        """The weights as a model folder records them: ``self_reconstruction`` only when it is
        used, so runs with the paper's terms keep the files (and resume checks) they had."""
        d = asdict(self)
        if not d["self_reconstruction"]:
            del d["self_reconstruction"]
        return d


def kl_divergence(mu, logvar):
    """KL divergence of ``N(mu, exp(logvar))`` from ``N(0, I)``, summed over the code and
    averaged over the batch: ``mean_b 0.5 * sum_i (mu_i^2 + exp(logvar_i) - logvar_i - 1)``.

    Parameters
    ----------
    mu, logvar : (B, z_dim) tensor

    Returns
    -------
    kl : 0-d tensor
        In float32 at least; 0 exactly when ``mu`` = 0 and ``logvar`` = 0.

    Examples
    --------
    >>> import torch
    >>> float(kl_divergence(torch.zeros(2, 8), torch.zeros(2, 8)))
    0.0
    >>> float(kl_divergence(torch.tensor([[2.0]]), torch.tensor([[0.0]])))   # 0.5 * 2**2
    2.0
    """
    acc = torch.promote_types(mu.dtype, torch.float32)
    mu, logvar = mu.to(acc), logvar.to(acc)
    return 0.5 * (mu.square() + logvar.exp() - logvar - 1).sum(dim=1).mean()


def critic_loss(scores_real, scores_fake):
    """A critic's loss: binary cross-entropy of real patches scored 1 and generated ones 0.

    ``-E log sig(D(real)) - E log(1 - sig(D(fake)))``, with the scores raw logits of any shape.

    Examples
    --------
    >>> import math, torch
    >>> zeros = torch.zeros(1, 1, 2, 2)
    >>> round(float(critic_loss(zeros, zeros)), 6) == round(2 * math.log(2), 6)
    True
    """
    acc = torch.promote_types(scores_real.dtype, torch.float32)
    return F.softplus(-scores_real.to(acc)).mean() + F.softplus(scores_fake.to(acc)).mean()


def generator_loss(scores_fake):
    """The generator's adversarial loss, non-saturating: ``-E log sig(D(fake))``.

    Examples
    --------
    >>> import torch
    >>> bool(generator_loss(torch.full((2,), 3.0)) < generator_loss(torch.zeros(2)))
    True
    """
    acc = torch.promote_types(scores_fake.dtype, torch.float32)
    return F.softplus(-scores_fake.to(acc)).mean()
