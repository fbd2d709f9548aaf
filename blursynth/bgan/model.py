"""BGAN's networks: a noise-conditioned residual generator that blurs, and a VGG-style critic.

Both work on images in [-1, 1] (:func:`blursynth.train.models.to_model_range`). Neither has a
normalisation layer, so an image can be run in tiles with a halo as wide as the generator's
receptive radius and give the same result as the whole image.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn import count_parameters  # noqa: F401 - re-exported
from .config import CONFIGS, NOISE_DIM, BGANConfig  # noqa: F401 - re-exported


def noise_map(noise, height: int, width: int):
    """Tile per-image noise vectors over an image: ``(B, 4) -> (B, 4, H, W)``.

    Parameters
    ----------
    noise : (B, 4) tensor
        One N(0, 1) vector per image.
    height, width : int

    Returns
    -------
    map : (B, 4, height, width) tensor
        A view (no copy); every pixel holds its image's vector.

    Examples
    --------
    >>> import torch
    >>> m = noise_map(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), 2, 3)
    >>> m.shape, m[0, :, 1, 2].tolist()
    (torch.Size([1, 4, 2, 3]), [1.0, 2.0, 3.0, 4.0])
    """
    if noise.dim() != 2 or noise.shape[1] != NOISE_DIM:
        raise ValueError(f"noise must be (B, {NOISE_DIM}); got shape {tuple(noise.shape)}.")
    return noise[:, :, None, None].expand(-1, -1, int(height), int(width))


def _conv3(c_in, c_out, stride=1):
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)


class ResidualBlock(nn.Module):
    """``convs`` 3x3 convolutions with a ReLU between each two, plus the identity."""

    def __init__(self, channels: int, convs: int):
        super().__init__()
        layers = []
        for i in range(convs):
            if i:
                layers.append(nn.ReLU(inplace=True))
            layers.append(_conv3(channels, channels))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.body(x)


class BlurGenerator(nn.Module):
    """BGAN's generator: a sharp image and a noise vector in, a blurred image out.

    conv(3 + 4 -> width), ``n_blocks`` residual blocks, a long skip from the first conv's
    output over all the blocks, then conv-ReLU-conv to 3 channels (plus the input image where
    ``config.image_skip``). No normalisation, no resampling: any H x W, fully convolutional.

    Parameters
    ----------
    config : BGANConfig

    Notes
    -----
    ``forward(sharp, noise)`` takes ``sharp`` ``(B, 3, H, W)`` in [-1, 1] and ``noise`` ``(B, 4)``
    and returns ``(B, 3, H, W)``, not clamped (training sees the raw output; clamp to [-1, 1]
    when writing images). Weights start at zero until :func:`init_bgan` draws them.

    Examples
    --------
    >>> import torch
    >>> g, _ = build_bgan(CONFIGS["tiny"], seed=0)
    >>> g(torch.zeros(2, 3, 20, 24), torch.zeros(2, 4)).shape
    torch.Size([2, 3, 20, 24])
    """

    def __init__(self, config: BGANConfig):
        super().__init__()
        w = config.width
        self.config = config
        self.head = _conv3(3 + NOISE_DIM, w)
        self.blocks = nn.Sequential(*[ResidualBlock(w, config.convs_per_block)
                                      for _ in range(config.n_blocks)])
        self.tail = nn.Sequential(_conv3(w, w), nn.ReLU(inplace=True), _conv3(w, 3))

    def forward(self, sharp, noise):
        x = torch.cat([sharp, noise_map(noise.to(sharp), *sharp.shape[-2:])], dim=1)
        features = self.head(x)
        out = self.tail(features + self.blocks(features))
        if self.config.image_skip:
            out = out + sharp
        return out

    def receptive_radius(self) -> int:
        """Pixels beyond which an input pixel cannot change an output pixel (exact).

        Every layer is a 3x3 conv at stride 1: radius one each.
        """
        return self.config.receptive_radius


class BlurCritic(nn.Module):
    """VGG-style critic: stages of 3x3 convs ending in a stride-2 conv, then a small head.

    Stage ``s`` has ``critic_stages[s]`` convs of ``min(critic_width * 2**s, 8 * critic_width)``
    channels with LeakyReLU(0.2); its last conv has stride 2 (where VGG has a max-pool). The
    head averages the features over the image and maps them to one score by two linear layers,
    so any input size gives a ``(B,)`` vector of raw scores (logits, no sigmoid).

    Examples
    --------
    >>> import torch
    >>> _, d = build_bgan(CONFIGS["tiny"], seed=0)
    >>> d(torch.zeros(3, 3, 32, 32)).shape
    torch.Size([3])
    """

    def __init__(self, config: BGANConfig):
        super().__init__()
        layers, c_in = [], 3
        for s, n_convs in enumerate(config.critic_stages):
            c = min(config.critic_width * 2 ** s, 8 * config.critic_width)
            for i in range(n_convs):
                layers += [_conv3(c_in, c, stride=2 if i == n_convs - 1 else 1),
                           nn.LeakyReLU(0.2, inplace=True)]
                c_in = c
        self.features = nn.Sequential(*layers)
        hidden = max(c_in // 4, 16)
        self.head = nn.Sequential(nn.Linear(c_in, hidden), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Linear(hidden, 1))
        self.config = config

    def forward(self, image):
        f = self.features(image).mean(dim=(2, 3))
        return self.head(f)[:, 0]


def init_bgan(generator: BlurGenerator, critic: BlurCritic, *, generator_rng: torch.Generator):
    """Draw the weights: generator convs N(0, 0.01) as in the paper, biases 0; critic He-normal
    for LeakyReLU(0.2) (a plain VGG stack with 0.01 weights would pass almost no signal)."""
    for m in generator.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.01, generator=generator_rng)
            nn.init.zeros_(m.bias)
    for m in critic.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu",
                                    generator=generator_rng)
            nn.init.zeros_(m.bias)


def build_bgan(config: BGANConfig, *, seed: int):
    """Generator and critic, initialised from ``seed`` (torch's global RNG is left as it was).

    Examples
    --------
    >>> g1, _ = build_bgan(CONFIGS["tiny"], seed=3)
    >>> g2, _ = build_bgan(CONFIGS["tiny"], seed=3)
    >>> model_fingerprint(g1) == model_fingerprint(g2)
    True
    """
    rng = torch.Generator().manual_seed(int(seed))
    # Layer constructors draw a default init from the global generator; fork it so that
    # building the models leaves the caller's global state where it was.
    with torch.random.fork_rng(devices=[]):
        gen, critic = BlurGenerator(config), BlurCritic(config)
    init_bgan(gen, critic, generator_rng=rng)
    return gen, critic


def model_fingerprint(generator: BlurGenerator) -> str:
    """16 hex digits of the sha256 of the generator's config and weights (names, shapes, bytes).

    Two generators with the same fingerprint blur identically; a pair records it so that the
    model that made it can be identified.
    """
    from ..nn.runs import weights_fingerprint

    return weights_fingerprint(generator.config.to_dict(), generator.state_dict())


