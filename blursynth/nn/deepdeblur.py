"""DeepDeblur's networks (Nah, Kim & Lee, "Deep Multi-scale Convolutional Neural Network for
Dynamic Scene Deblurring", CVPR 2017): the multi-scale generator, its discriminator, the
multi-scale content loss and the Gaussian pyramid both are trained on.

From the paper (section 4): K = 3 scales (1/4, 1/2, 1), coarse to fine. Each scale is a 5x5
conv to 64 channels, 19 ResBlocks (5x5 conv, ReLU, 5x5 conv, plus the identity: no batch norm
and no ReLU after the sum), and a 5x5 conv to RGB: 40 convs a scale. A coarser scale's output
goes through a 5x5 up-convolution to the next scale's size and is concatenated with that
scale's blurred input. All in [-1, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class DeepDeblurConfig:
    """Sizes of DeepDeblur's generator and discriminator.

    Attributes
    ----------
    name : str
    scales : int
        K, 3 in the paper.
    channels : int
        Feature channels of every scale (64).
    n_blocks : int
        ResBlocks per scale (19).
    kernel : int
        Conv kernel size (5).
    disc_width : int
        Channels of the discriminator's first conv (32 in the authors' release, which doubles
        them every two convs up to 512: :data:`DISC_LAYERS`).
    """

    name: str
    scales: int = 3
    channels: int = 64
    n_blocks: int = 19
    kernel: int = 5
    disc_width: int = 32

    def to_dict(self):
        return asdict(self)


CONFIGS = {
    "paper": DeepDeblurConfig("paper"),
    "small": DeepDeblurConfig("small", channels=16, n_blocks=3, kernel=3, disc_width=8),
}

#: The discriminator of the paper's Table 1 as its authors released it (Torch,
#: ``generate_discriminator``): (channel multiple of disc_width, stride) of its 5x5 convs,
#: total stride 64; then a 4x4 conv of 16 x disc_width channels at stride 4 (a 256 px crop's
#: 4x4 map to 1x1) and a 1x1 conv to one logit (the release's sigmoid is in the loss).
DISC_LAYERS = ((1, 1), (1, 2), (2, 1), (2, 2), (4, 1), (4, 4), (8, 1), (8, 4), (16, 1))
#: The side of the map the 4x4 stride-4 conv needs: crops under 193 px (3 x 64 + 1) give less.
DISC_LAST = 4


def _binomial_kernel(device, dtype):
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device, dtype=dtype) / 16
    return (k[:, None] * k[None, :]).expand(3, 1, 5, 5)


def downsample(x):
    """One Gaussian-pyramid step: 5x5 binomial blur (reflect padding), keep every second pixel.

    Examples
    --------
    >>> downsample(torch.ones(1, 3, 8, 12)).shape
    torch.Size([1, 3, 4, 6])
    """
    blurred = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), _binomial_kernel(x.device, x.dtype),
                       groups=x.shape[1])
    return blurred[..., ::2, ::2]


def image_pyramid(x, levels: int):
    """``[x at 1/2^(levels-1), ..., x/2, x]``: coarse to fine, the finest last.

    Examples
    --------
    >>> [t.shape[-1] for t in image_pyramid(torch.zeros(1, 3, 16, 16), 3)]
    [4, 8, 16]
    """
    out = [x]
    for _ in range(levels - 1):
        out.append(downsample(out[-1]))
    return out[::-1]


class ResBlock(nn.Module):
    """conv-ReLU-conv plus the identity (no batch norm, no ReLU after the sum)."""

    def __init__(self, channels, kernel):
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(nn.Conv2d(channels, channels, kernel, padding=pad),
                                  nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, kernel, padding=pad))

    def forward(self, x):
        return x + self.body(x)


class ScaleNet(nn.Module):
    """One scale: conv to ``channels``, ``n_blocks`` ResBlocks, conv to RGB."""

    def __init__(self, c_in, config: DeepDeblurConfig):
        super().__init__()
        k, c = config.kernel, config.channels
        self.head = nn.Conv2d(c_in, c, k, padding=k // 2)
        self.blocks = nn.Sequential(*[ResBlock(c, k) for _ in range(config.n_blocks)])
        self.tail = nn.Conv2d(c, 3, k, padding=k // 2)

    def forward(self, x):
        return self.tail(self.blocks(self.head(x)))


class MultiScaleGenerator(nn.Module):
    """DeepDeblur's generator, coarse to fine.

    ``forward(blurred)`` takes a ``(B, 3, H, W)`` image in [-1, 1] (its pyramid is built
    here, after reflect padding to multiples of 2^(scales-1)) or the pyramid itself (a list,
    coarse to fine, as the training loader gives it). In training mode it returns the list of
    every scale's output (finest last); in eval mode only the finest.

    Examples
    --------
    >>> g = build_deepdeblur(CONFIGS["small"], seed=0)[0]
    >>> [tuple(o.shape) for o in g(torch.zeros(2, 3, 32, 32))]
    [(2, 3, 8, 8), (2, 3, 16, 16), (2, 3, 32, 32)]
    >>> g.eval()(torch.zeros(1, 3, 32, 48)).shape
    torch.Size([1, 3, 32, 48])
    """

    def __init__(self, config: DeepDeblurConfig):
        super().__init__()
        self.config = config
        self.multiple = 2 ** (config.scales - 1)
        k = config.kernel
        self.scales = nn.ModuleList([ScaleNet(3 if i == 0 else 6, config)
                                     for i in range(config.scales)])
        # A 5x5 up-convolution (3 -> 3 channels, stride 2) doubles a scale's output.
        self.upconvs = nn.ModuleList([
            nn.ConvTranspose2d(3, 3, k, stride=2, padding=k // 2, output_padding=1)
            for _ in range(config.scales - 1)])

    def forward(self, blurred):
        if isinstance(blurred, (list, tuple)):
            pyramid, height, width = list(blurred), None, None
        else:
            # Sides not multiples of 2^(K-1) are reflect-padded; the outputs are cropped back.
            height, width = blurred.shape[-2:]
            pad_h, pad_w = -height % self.multiple, -width % self.multiple
            if pad_h or pad_w:
                blurred = F.pad(blurred, (0, pad_w, 0, pad_h), mode="reflect")
            pyramid = image_pyramid(blurred, self.config.scales)
        outputs, prev = [], None
        for i, (net, b) in enumerate(zip(self.scales, pyramid)):
            x = b if prev is None else torch.cat([b, self.upconvs[i - 1](prev)], dim=1)
            prev = net(x)
            outputs.append(prev)
        if height is not None:
            k = len(outputs) - 1
            outputs = [o[..., :-(-height // 2 ** (k - i)), :-(-width // 2 ** (k - i))]
                       for i, o in enumerate(outputs)]
        return outputs if self.training else outputs[-1]

    def receptive_radius(self) -> int:
        """A safe bound (px at full size) on how far an input pixel reaches: each scale's convs
        at its own stride, the pyramid's 5x5 blurs and the up-convolutions."""
        c = self.config
        per_scale = (2 + 2 * c.n_blocks) * (c.kernel // 2)
        return sum((per_scale + 2 + c.kernel) * 2 ** s for s in range(c.scales)) + 2 ** c.scales


class Discriminator(nn.Module):
    """DeepDeblur's discriminator (the paper's Table 1 as its authors' release builds it): 5x5
    convs without bias, each followed by LeakyReLU 0.2, at the :data:`DISC_LAYERS` widths and
    strides; a 4x4 conv at stride 4 (no bias, LeakyReLU); a 1x1 conv to a logit.

    ``forward`` gives ``(B, N)`` logits: N = 1 for the paper's 256 px crops, one per 256 px
    window (stride 256) for larger crops, as the release scores them. A crop under 193 px
    reaches the 4x4 conv with a map smaller than 4x4 (64 px: 1x1), which the release cannot
    take; its map is repeated (nearest) to 4 a side, so that the 4x4 conv sees the whole crop
    as it sees a 256 px one.

    Examples
    --------
    >>> Discriminator(CONFIGS["small"])(torch.zeros(2, 3, 64, 64)).shape
    torch.Size([2, 1])
    >>> Discriminator(CONFIGS["small"])(torch.zeros(1, 3, 512, 512)).shape
    torch.Size([1, 4])
    """

    def __init__(self, config: DeepDeblurConfig):
        super().__init__()
        w, layers, c_in = config.disc_width, [], 3
        for mult, stride in DISC_LAYERS:
            layers += [nn.Conv2d(c_in, w * mult, 5, stride=stride, padding=2, bias=False),
                       nn.LeakyReLU(0.2, inplace=True)]
            c_in = w * mult
        self.convs = nn.Sequential(*layers)
        self.last = nn.Sequential(nn.Conv2d(c_in, c_in, DISC_LAST, stride=DISC_LAST, bias=False),
                                  nn.LeakyReLU(0.2, inplace=True))
        # The release's dense layer, a 1x1 conv with a bias (the first author's PyTorch port
        # drops that one bias too).
        self.dense = nn.Conv2d(c_in, 1, 1)

    def forward(self, x):
        f = self.convs(x)
        h, w = f.shape[-2:]
        if h < DISC_LAST or w < DISC_LAST:
            f = F.interpolate(f, size=(max(h, DISC_LAST), max(w, DISC_LAST)), mode="nearest")
        return self.dense(self.last(f)).flatten(1)


def multiscale_content_loss(outputs, targets):
    """``1/(2K) sum_k ||L_k - S_k||^2 / (c_k w_k h_k)``: the paper's Eq. (2), a batch mean.

    Examples
    --------
    >>> a = [torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 4, 4)]
    >>> b = [torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 4, 4)]
    >>> float(multiscale_content_loss(a, b))    # (1 + 0) / (2 * 2)
    0.25
    """
    total = sum(F.mse_loss(o.float(), t.float()) for o, t in zip(outputs, targets))
    return total / (2 * len(outputs))


def init_deepdeblur(module: nn.Module, *, generator: torch.Generator) -> None:
    """Convs and linear layers uniform in +-1/sqrt(fan_in) (torch's default scale), biases 0,
    from ``generator``. The paper does not give its initialisation; He-normal weights would
    grow the signal through 19 ResBlocks without batch norm, this scale keeps it near 1."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, a=5 ** 0.5, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_deepdeblur(config: DeepDeblurConfig, *, seed: int):
    """Generator and discriminator from ``seed`` (torch's global RNG untouched)."""
    g = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        gen, disc = MultiScaleGenerator(config), Discriminator(config)
    init_deepdeblur(gen, generator=g)
    init_deepdeblur(disc, generator=g)
    return gen, disc
