"""DeblurGAN's networks: a ResNet generator with a global skip, and a PatchGAN critic.

Both work on images in [-1, 1] (the paper's convention); :func:`to_model_range` and
:func:`from_model_range` convert from and to the package's [0, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..nn import count_parameters  # noqa: F401 - re-exported


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the generator and critic.

    Attributes
    ----------
    name : str
        ``"paper"`` or ``"small"`` for the built-in ones.
    ngf : int
        Generator width (channels of its first conv; 256 = 4 * ngf in the ResBlocks).
    n_blocks : int
        ResBlocks in the generator.
    ndf : int
        Critic width (channels of its first conv).
    critic_layers : int
        Strided conv layers of the critic after the first (3 in the paper).
    dropout : float
        Dropout probability inside each ResBlock (0.5 in the paper).
    """

    name: str
    ngf: int = 64
    n_blocks: int = 9
    ndf: int = 64
    critic_layers: int = 3
    dropout: float = 0.5

    def to_dict(self):
        return asdict(self)


#: The paper's sizes (generator ~11.4M parameters, critic ~2.8M) and a small one for CPU work.
CONFIGS = {
    "paper": ModelConfig("paper", ngf=64, n_blocks=9, ndf=64),
    "small": ModelConfig("small", ngf=16, n_blocks=3, ndf=16),
}


def to_model_range(image01):
    """[0, 1] -> [-1, 1]."""
    return image01 * 2 - 1


def from_model_range(image):
    """[-1, 1] -> [0, 1]."""
    return (image + 1) / 2


class SeededDropout(nn.Module):
    """Dropout whose masks come from ``self.generator`` (a ``torch.Generator``) when one is set.

    The training loop gives it a generator keyed by the run seed, so that masks are part of
    the checkpointed state and never come from torch's global generator.
    """

    def __init__(self, p):
        super().__init__()
        self.p = float(p)
        self.generator = None

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        if self.generator is None:
            return F.dropout(x, self.p, training=True)
        keep = torch.empty_like(x).bernoulli_(1 - self.p, generator=self.generator)
        return x * keep / (1 - self.p)


class ResBlock(nn.Module):
    """pad-conv3-IN-ReLU-Dropout-pad-conv3-IN, plus the identity."""

    def __init__(self, channels, dropout):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
            nn.ReLU(True), SeededDropout(dropout),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
        )

    def forward(self, x):
        return x + self.body(x)


class Generator(nn.Module):
    """DeblurGAN's ResNet generator with the global skip ("ResOut").

    ``forward`` maps a blurred ``(B, 3, H, W)`` image in [-1, 1], H and W multiples of 4, to
    ``clamp(input + G(input), -1, 1)``.

    Parameters
    ----------
    config : ModelConfig

    Examples
    --------
    >>> import torch
    >>> g = Generator(CONFIGS["small"]).eval()
    >>> g(torch.zeros(1, 3, 32, 32)).shape
    torch.Size([1, 3, 32, 32])
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        ngf = config.ngf
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.InstanceNorm2d(ngf),
                  nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                       nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
        layers += [ResBlock(ngf * 4, config.dropout) for _ in range(config.n_blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                          output_padding=1),
                       nn.InstanceNorm2d(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.config = config

    def forward(self, x):
        return torch.clamp(x + self.model(x), -1, 1)

    def receptive_radius(self) -> int:
        """Pixels beyond which an input pixel cannot change an output pixel (a safe bound)."""
        # 7x7 head (3) + two stride-2 convs (1 + 2) + 2 convs of radius 1 per block at stride 4
        # + two transposed convs (4 + 2) + 7x7 tail (3), and one stride of slack.
        return 3 + 1 + 2 + 8 * self.config.n_blocks + 4 + 2 + 3 + 4


class Critic(nn.Module):
    """DeblurGAN's PatchGAN critic (WGAN: no sigmoid).

    4x4 convs: ndf (stride 2, no norm), 2 ndf and 4 ndf (stride 2), 8 ndf (stride 1), then 1;
    LeakyReLU 0.2 and InstanceNorm. Input ``(B, 3, H, W)`` in [-1, 1]; output a
    ``(B, 1, h, w)`` map of patch scores.

    Examples
    --------
    >>> import torch
    >>> Critic(CONFIGS["paper"])(torch.zeros(1, 3, 256, 256)).shape
    torch.Size([1, 1, 35, 35])
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        ndf, n = config.ndf, config.critic_layers
        layers = [nn.Conv2d(3, ndf, 4, stride=2, padding=2), nn.LeakyReLU(0.2, True)]
        mult = 1
        for i in range(1, n + 1):
            prev, mult = mult, min(2 ** i, 8)
            stride = 2 if i < n else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=2),
                       nn.InstanceNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=2)]
        self.model = nn.Sequential(*layers)
        self.config = config

    def forward(self, x):
        return self.model(x)


def init_weights(module: nn.Module, *, generator: torch.Generator) -> None:
    """DeblurGAN's initialisation: conv weights N(0, 0.02), biases 0, drawn from ``generator``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_models(config: ModelConfig, *, seed: int, init: str = "paper"):
    """Generator and critic, initialised from ``seed`` (without touching torch's global RNG).

    ``init="identity"`` zeroes the generator's last conv after DeblurGAN's initialisation, so the
    untrained generator returns its input (the global skip makes that exact) instead of the
    input plus a large random residual; short runs then start from the blurred baseline.
    """
    if init not in ("paper", "identity"):
        raise ValueError(f"init must be 'paper' or 'identity'; got {init!r}.")
    g = torch.Generator().manual_seed(int(seed))
    # torch's layer constructors draw a default init from the global generator; fork it so
    # that building models leaves the caller's global RNG where it was.
    with torch.random.fork_rng(devices=[]):
        gen, critic = Generator(config), Critic(config)
    init_weights(gen, generator=g)
    init_weights(critic, generator=g)
    if init == "identity":
        zero_last_conv(gen)
    return gen, critic


def zero_last_conv(generator: nn.Module) -> None:
    """Zero the generator's last conv: with a global skip, the untrained generator then returns
    its input (``--init identity``)."""
    last = [m for m in generator.modules() if isinstance(m, nn.Conv2d)][-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)


