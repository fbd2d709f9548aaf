"""DBGAN's deblurring networks (Zhang et al., "Deblurring by Realistic Blurring", CVPR 2020):
the deblurring generator and its critic, trained on the pairs BGAN's learned blur makes.

The paper builds the deblurring generator like BGAN's blurring one (:mod:`blursynth.bgan.model`)
without the noise input and with more residual blocks: a 3x3 conv, 16 residual blocks of five
3x3 convs with ReLUs between them, a long skip over the blocks, then conv-ReLU-conv to RGB. The
critic is BGAN's VGG-style one (:class:`blursynth.bgan.model.BlurCritic`), scored with the
relativistic loss (:mod:`blursynth.bgan.losses`). No normalisation anywhere, so tiles with a halo
of :meth:`DeblurGenerator.receptive_radius` equal whole-image inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..bgan.model import BGANConfig, BlurCritic, ResidualBlock, _conv3


@dataclass(frozen=True)
class DBGANConfig(BGANConfig):
    """Sizes of DBGAN's deblurring generator and critic: BGAN's sizes (and their checks) with
    the paper's 16 residual blocks; the noise input BGAN's generator has is not used here.

    Attributes
    ----------
    name : str
    width : int
        Feature channels of the generator (64).
    n_blocks : int
        Residual blocks (16).
    convs_per_block : int
        3x3 convs per block (5, as BGAN's).
    image_skip : bool
        Add the blurred input to the output (not in the paper; the small config uses it so an
        untrained generator starts near the identity).
    critic_width : int
    critic_stages : tuple of int
        As :class:`blursynth.bgan.model.BGANConfig`'s (VGG19's trunk: 2, 2, 4, 4, 4).
    """

    n_blocks: int = 16


CONFIGS = {
    "paper": DBGANConfig("paper"),
    "small": DBGANConfig("small", width=16, n_blocks=3, image_skip=True, critic_width=16,
                         critic_stages=(1, 2, 2, 2)),
}


class DeblurGenerator(nn.Module):
    """DBGAN's generator: ``(B, 3, H, W)`` blurred in [-1, 1] -> deblurred, any H x W.

    Examples
    --------
    >>> g = build_dbgan(CONFIGS["small"], seed=0)[0]
    >>> g(torch.zeros(2, 3, 20, 24)).shape
    torch.Size([2, 3, 20, 24])
    """

    def __init__(self, config: DBGANConfig):
        super().__init__()
        w = config.width
        self.config = config
        self.head = _conv3(3, w)
        self.blocks = nn.Sequential(*[ResidualBlock(w, config.convs_per_block)
                                      for _ in range(config.n_blocks)])
        self.tail = nn.Sequential(_conv3(w, w), nn.ReLU(inplace=True), _conv3(w, 3))

    def forward(self, blurred):
        features = self.head(blurred)
        out = self.tail(features + self.blocks(features))
        if self.config.image_skip:
            out = out + blurred
        return out

    def receptive_radius(self) -> int:
        """Exact: every layer is a 3x3 conv at stride 1."""
        return 1 + self.config.n_blocks * self.config.convs_per_block + 2


def build_dbgan(config: DBGANConfig, *, seed: int):
    """Generator and critic from ``seed`` (torch's global RNG untouched), initialised as BGAN's:
    generator convs N(0, 0.01), critic He-normal for LeakyReLU 0.2, biases 0."""
    from ..bgan.model import init_bgan

    rng = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        gen, critic = DeblurGenerator(config), BlurCritic(config)
    init_bgan(gen, critic, generator_rng=rng)
    return gen, critic
