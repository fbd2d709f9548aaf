"""NAFNet (Chen, Chu, Zhang and Sun, "Simple Baselines for Image Restoration", ECCV 2022).

A U-shaped network of "nonlinear activation free" blocks, built from the paper's description:

- Intro: a 3x3 conv, 3 -> ``width`` channels; ending: a 3x3 conv back to 3, added to the input
  (global residual).
- ``len(enc_blocks)`` encoder levels, each ``enc_blocks[i]`` blocks then a 2x2 stride-2 conv that
  halves the size and doubles the channels; ``middle_blocks`` blocks at the lowest scale; each
  decoder level a 1x1 conv doubling the channels then PixelShuffle(2) (twice the size, half the
  channels), the encoder's features of that level added, then ``dec_blocks[i]`` blocks.
- A block: Layer Normalisation over channels (per pixel), 1x1 conv to 2c, 3x3 depthwise conv,
  SimpleGate (the channel halves multiplied: c), Simplified Channel Attention (the features
  times a 1x1 conv of their global average), 1x1 conv, added back through a learned per-channel
  scale (zero at the start); then Layer Normalisation, 1x1 conv to 2c, SimpleGate, 1x1 conv,
  added back through a second learned scale.

The paper's GoPro model (33.69 dB) is width 64 with 36 blocks: encoder 1, 1, 1, 28, middle 1,
decoder 1, 1, 1, 1. Works on ``(B, 3, H, W)`` images in [-1, 1] (the trainer's convention);
H and W must be multiples of ``2 ** len(enc_blocks)`` (``multiple``).

The channel attention pools the whole image, so tiles need the whole image's pooled vector:
``train/tiling.py`` gathers it over all tiles first (``--norm-stats global``), as it does
InstanceNorm statistics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class NAFNetConfig:
    """Sizes of a NAFNet.

    Attributes
    ----------
    name : str
    width : int
        Channels of the first level (doubled at each level down).
    enc_blocks, dec_blocks : tuple of int
        Blocks per encoder level (top first) and per decoder level (bottom first), as many.
    middle_blocks : int
        Blocks at the lowest scale.
    """

    name: str
    width: int = 64
    enc_blocks: tuple = (1, 1, 1, 28)
    middle_blocks: int = 1
    dec_blocks: tuple = (1, 1, 1, 1)

    def __post_init__(self):
        object.__setattr__(self, "enc_blocks", tuple(int(b) for b in self.enc_blocks))
        object.__setattr__(self, "dec_blocks", tuple(int(b) for b in self.dec_blocks))
        if len(self.enc_blocks) != len(self.dec_blocks):
            raise ValueError(f"enc_blocks and dec_blocks must be as many levels; got "
                             f"{self.enc_blocks} and {self.dec_blocks}.")
        if int(self.width) < 1:
            raise ValueError(f"width must be at least 1; got {self.width}.")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["enc_blocks"], d["dec_blocks"] = list(self.enc_blocks), list(self.dec_blocks)
        return d

    @property
    def multiple(self) -> int:
        return 2 ** len(self.enc_blocks)


#: The paper's GoPro configuration (width 64, 36 blocks) and a small one that trains on a CPU.
NAFNET_CONFIGS = {
    "paper": NAFNetConfig("paper", width=64, enc_blocks=(1, 1, 1, 28), middle_blocks=1,
                          dec_blocks=(1, 1, 1, 1)),
    "small": NAFNetConfig("small", width=16, enc_blocks=(1, 1, 2), middle_blocks=2,
                          dec_blocks=(1, 1, 1)),
}


class LayerNorm2d(nn.Module):
    """Layer Normalisation over the channels of each pixel, with a per-channel scale and shift
    (per pixel, so tiling needs no whole-image statistics for it).

    One fused ``layer_norm`` over the last axis of a channels-last view: on a channels-last
    tensor (how :class:`NAFNet` runs) the permutes cost nothing, and the step is about a fifth
    faster than the eight elementwise kernels of the written-out formula (benchmarks/RESULTS.md,
    "Architectures: channels-last steps on a CPU").

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(2, 4, 3, 3, generator=g)
    >>> norm = LayerNorm2d(4)
    >>> w, b = torch.randn(2, 4, generator=g)
    >>> with torch.no_grad():
    ...     _ = norm.weight.copy_(w), norm.bias.copy_(b)
    >>> mu, var = x.mean(1, keepdim=True), x.var(1, unbiased=False, keepdim=True)
    >>> y = (x - mu) / torch.sqrt(var + 1e-6) * w.view(1, 4, 1, 1) + b.view(1, 4, 1, 1)
    >>> torch.allclose(norm(x), y, atol=1e-5)
    True
    """

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps
        self.shape = (int(channels),)  # a constant, so an ONNX export needs no shape op

    def forward(self, x):
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them (the paper's GELU replacement)."""

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """One block: a gated depthwise-conv part with channel attention, then a gated 1x1 part."""

    def __init__(self, c, dw_expand=2, ffn_expand=2):
        super().__init__()
        dw = c * dw_expand
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.gate = SimpleGate()
        # Simplified Channel Attention: a 1x1 conv of the globally pooled features.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.sca = nn.Conv2d(dw // 2, dw // 2, 1)
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        ffn = c * ffn_expand
        self.norm2 = LayerNorm2d(c)
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp):
        x = self.gate(self.conv2(self.conv1(self.norm1(inp))))
        x = x * self.sca(self.pool(x))
        y = inp + self.conv3(x) * self.beta
        x = self.conv5(self.gate(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class NAFNet(nn.Module):
    """NAFNet's U-Net of :class:`NAFBlock`; ``forward`` maps a blurred ``(B, 3, H, W)`` image in
    [-1, 1] (H, W multiples of :attr:`multiple`) to ``input + residual``.

    Examples
    --------
    >>> import torch
    >>> net = NAFNet(NAFNET_CONFIGS["small"]).eval()
    >>> net(torch.zeros(1, 3, 32, 32)).shape
    torch.Size([1, 3, 32, 32])
    """

    tiling = "global-stats"

    def __init__(self, config: NAFNetConfig):
        super().__init__()
        self.config = config
        w = int(config.width)
        self.intro = nn.Conv2d(3, w, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        c = w
        for n in config.enc_blocks:
            self.encoders.append(nn.Sequential(*[NAFBlock(c) for _ in range(n)]))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*[NAFBlock(c) for _ in range(config.middle_blocks)])
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for n in config.dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(c) for _ in range(n)]))
        self.ending = nn.Conv2d(w, 3, 3, padding=1)
        self.multiple = config.multiple

    def forward(self, inp):
        # Channels-last activations whatever the input's layout: the convolutions then produce
        # channels-last outputs, so every LayerNorm2d is one kernel without copies.
        x = self.intro(inp.contiguous(memory_format=torch.channels_last))
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            x = enc(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = dec(up(x) + skip)
        return inp + self.ending(x)

    def receptive_radius(self) -> int:
        """Pixels beyond which an input pixel cannot change an output pixel, the channel
        attention's pooled means aside (a safe bound: each 3x3 conv adds its scale, each 2x2
        down step its scale, plus one lowest-scale step of slack)."""
        cfg = self.config
        r, scale = 1, 1  # the intro conv
        for n in cfg.enc_blocks:
            r += n * scale + scale  # depthwise 3x3 per block, then the 2x2 stride-2 conv
            scale *= 2
        r += cfg.middle_blocks * scale
        for n in cfg.dec_blocks:
            scale //= 2
            r += n * scale
        return r + 1 + 2 ** len(cfg.enc_blocks)  # the ending conv, and slack


class PSNRLoss(nn.Module):
    """The paper's training loss: minus the PSNR in dB, averaged over the batch, of images in
    [-1, 1] read as [0, 1] (``10 log10(MSE)`` per image)."""

    def __init__(self, eps=1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, output, target):
        diff = (output.float() - target.float()) / 2  # [-1, 1] -> [0, 1] scale
        mse = diff.pow(2).flatten(1).mean(1)
        return (10 * torch.log10(mse + self.eps)).mean()


def build_nafnet(config: NAFNetConfig, *, seed: int) -> NAFNet:
    """A NAFNet initialised from ``seed`` without touching torch's global RNG (torch's default
    conv initialisation, drawn from a generator keyed by the seed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = NAFNet(config)
    return net

