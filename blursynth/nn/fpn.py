"""DeblurGAN-v2's networks (Kupyn et al., ICCV 2019): the FPN generator on a MobileNet-V2
backbone (or, optionally, Inception-ResNet-v2: :mod:`blursynth.nn.inceptionresnetv2`), the
double-scale discriminator, and the relativistic least-squares (RaLSGAN) losses.

Both networks work on images in [-1, 1]. From the paper (section 3.1): the backbone's maps at
five scales go through a feature pyramid (top-down path with lateral connections); the five
final maps are brought to 1/4 of the input size and concatenated, then two upsampling and
convolution stages restore the full size; a skip from input to output makes the network learn
the residual, and a tanh keeps it in range. Where the paper gives no number (the pyramid's and
the heads' channels, how the 1/2-scale map joins, the norm layers) the choices are ours and are
listed in docs/algorithms.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .mobilenetv2 import MobileNetV2, init_mobilenet
from .vgg import IMAGENET_MEAN, IMAGENET_STD

#: ``FPNConfig.backbone`` values.
BACKBONES = ("mobilenetv2", "inceptionresnetv2")


@dataclass(frozen=True)
class FPNConfig:
    """Sizes of DeblurGAN-v2's FPN-MobileNet generator and double-scale discriminator.

    Attributes
    ----------
    name : str
    width : float
        MobileNet-V2 width multiplier (1.0: the paper's backbone, which ImageNet weights fit);
        1.0 with Inception-ResNet-v2, which has none.
    fpn_channels : int
        Channels of the pyramid's maps (lateral 1x1 convs and top-down sums).
    head_channels : int
        Channels of each scale's two-conv head, and of the merged map.
    norm : {"instance", "batch"}
        Norm layer of the pyramid and heads (the backbone keeps its BatchNorm).
    ndf : int
        Width of both discriminator branches.
    local_layers, global_layers : int
        Strided layers of the patch (70 px receptive field at 3) and the whole-image branch.
    backbone : {"mobilenetv2", "inceptionresnetv2"}
        The paper's FPN-MobileNet or its larger FPN-Inception.
    """

    name: str
    width: float = 1.0
    fpn_channels: int = 128
    head_channels: int = 64
    norm: str = "instance"
    ndf: int = 64
    local_layers: int = 3
    global_layers: int = 5
    backbone: str = "mobilenetv2"

    def __post_init__(self):
        if self.norm not in ("instance", "batch"):
            raise ValueError(f"FPNConfig.norm must be instance or batch; got {self.norm!r}.")
        if self.backbone not in BACKBONES:
            raise ValueError(f"FPNConfig.backbone must be one of {', '.join(BACKBONES)}; got "
                             f"{self.backbone!r}.")
        if self.backbone == "inceptionresnetv2" and self.width != 1.0:
            raise ValueError(f"FPNConfig.width must be 1.0 with inceptionresnetv2 (it has no "
                             f"width multiplier); got {self.width}.")

    def to_dict(self):
        d = asdict(self)
        # MobileNet-V2 configs omit the key, so their recorded configs and checkpoint bytes do
        # not depend on it, and their recorded runs resume (a resume compares the recorded
        # config with this one).
        if d["backbone"] == "mobilenetv2":
            del d["backbone"]
        return d


#: ``paper``: MobileNet-V2 at width 1 (ImageNet weights fit it), pyramid 128, heads 64, both
#: discriminator branches 64 wide; ``paper-inception``: Inception-ResNet-v2, pyramid 256 and
#: heads 128 for its wider maps; ``small``: a CPU size.
CONFIGS = {
    "paper": FPNConfig("paper"),
    "paper-inception": FPNConfig("paper-inception", fpn_channels=256, head_channels=128,
                                 backbone="inceptionresnetv2"),
    "small": FPNConfig("small", width=0.35, fpn_channels=32, head_channels=16, ndf=16,
                       global_layers=4),
}

#: Input sides must be multiples of this (five stride-2 stages); others are padded.
MULTIPLE = 32


def _norm(kind, channels):
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.InstanceNorm2d(channels)


def _conv_norm_relu(c_in, c_out, norm):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), _norm(norm, c_out),
                         nn.ReLU(inplace=True))


class FPNGenerator(nn.Module):
    """FPN-MobileNet: ``clamp(x + tanh(G(x)), -1, 1)`` for a ``(B, 3, H, W)`` image in [-1, 1].

    - backbone: :class:`MobileNetV2` (torchvision's names under ``backbone.``) or
      :class:`~blursynth.nn.inceptionresnetv2.InceptionResNetV2` (Cadene's names), its maps at
      1/2, 1/4, 1/8, 1/16, 1/32; the input is taken to the normalisation its ImageNet weights
      were trained with first;
    - pyramid: 1x1 lateral convs to ``fpn_channels``, a top-down path (nearest 2x upsampling,
      add, 3x3 conv-norm-ReLU) down to 1/4;
    - heads: two 3x3 convs with ReLU on each of the four maps 1/4..1/32, each upsampled
      (nearest) to 1/4 and concatenated, then a 3x3 conv-norm-ReLU to ``head_channels``;
    - upsampling: 2x (bilinear), plus the 1/2 backbone map through a 1x1 lateral, a 3x3
      conv-norm-ReLU to half the channels, 2x again, a 3x3 conv to RGB, tanh, the input added.

    Sides that are not multiples of 32 are reflect-padded and the output cropped back.

    Examples
    --------
    >>> g = build_fpn(CONFIGS["small"], seed=0)[0].eval()
    >>> g(torch.zeros(1, 3, 64, 96)).shape
    torch.Size([1, 3, 64, 96])
    """

    multiple = MULTIPLE

    def __init__(self, config: FPNConfig):
        super().__init__()
        self.config = config
        self.backbone = make_backbone(config)
        c1, c2, c3, c4, c5 = self.backbone.stage_channels
        f, h, norm = config.fpn_channels, config.head_channels, config.norm
        self.lateral = nn.ModuleList([nn.Conv2d(c, f, 1) for c in (c2, c3, c4, c5)])
        self.lateral_half = nn.Conv2d(c1, h, 1)
        self.top_down = nn.ModuleList([_conv_norm_relu(f, f, norm) for _ in range(3)])
        self.heads = nn.ModuleList([
            nn.Sequential(nn.Conv2d(f, h, 3, padding=1), nn.ReLU(inplace=True),
                          nn.Conv2d(h, h, 3, padding=1), nn.ReLU(inplace=True))
            for _ in range(4)])
        self.merge = _conv_norm_relu(4 * h, h, norm)
        self.smooth = _conv_norm_relu(h, h // 2, norm)
        self.final = nn.Conv2d(h // 2, 3, 3, padding=1)
        mean = getattr(self.backbone, "input_mean", IMAGENET_MEAN)
        std = getattr(self.backbone, "input_std", IMAGENET_STD)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % MULTIPLE, -width % MULTIPLE
        inp = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x
        c1, c2, c3, c4, c5 = self.backbone.forward_stages(((inp + 1) / 2 - self.mean) / self.std)
        p = self.lateral[3](c5)
        maps = [p]
        for lat, conv, c in zip(self.lateral[2::-1], self.top_down, (c4, c3, c2)):
            p = conv(lat(c) + F.interpolate(p, scale_factor=2, mode="nearest"))
            maps.append(p)
        # maps: 1/32, 1/16, 1/8, 1/4; each head's output brought to 1/4.
        heads = [F.interpolate(head(m), scale_factor=2 ** (3 - i), mode="nearest")
                 if i < 3 else head(m) for i, (head, m) in enumerate(zip(self.heads, maps))]
        y = self.merge(torch.cat(heads, dim=1))
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        y = self.smooth(y + self.lateral_half(c1))
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        out = torch.clamp(inp + torch.tanh(self.final(y)), -1, 1)
        return out[..., :height, :width] if pad_h or pad_w else out

    def receptive_radius(self) -> int:
        """A safe bound on how far (px) an input pixel can change an output pixel.

        Each conv of kernel k met at cumulative stride s adds ``(k // 2) * s``; each
        upsampling from stride s adds s (interpolation reaches one coarse pixel further).
        """
        radius = self.backbone.receptive_radius()
        # top-down convs at 1/16, 1/8, 1/4 plus the upsamplings into them, from 1/32
        radius += 32 + 16 + 16 + 8 + 8 + 4
        radius += 2 * 32  # the 1/32 head's two 3x3 convs (the coarsest dominates)
        radius += 4 + 4 + 2 + 2 + 1  # merge, upsample, smooth, upsample, final
        return radius


class DoubleScaleDiscriminator(nn.Module):
    """Two PatchGAN critics: one on 70 px patches (3 strided layers), one whose receptive field
    spans a whole training crop (``global_layers``); ``forward`` returns both score maps.

    Each branch is DeblurGAN's critic (:class:`blursynth.train.models.Critic`): 4x4 convs,
    LeakyReLU 0.2, InstanceNorm, no sigmoid.

    Examples
    --------
    >>> d = DoubleScaleDiscriminator(CONFIGS["small"])
    >>> [tuple(s.shape) for s in d(torch.zeros(2, 3, 64, 64))]
    [(2, 1, 11, 11), (2, 1, 7, 7)]
    """

    def __init__(self, config: FPNConfig):
        super().__init__()
        from ..train.models import Critic, ModelConfig

        self.local = Critic(ModelConfig("local", ndf=config.ndf, critic_layers=config.local_layers))
        self.whole = Critic(ModelConfig("global", ndf=config.ndf,
                                        critic_layers=config.global_layers))
        self.config = config

    def forward(self, x):
        return self.local(x), self.whole(x)


def ralsgan_critic_loss(real, fake):
    """RaLSGAN for the critic: ``E_r[(D(r) - E_f D(f) - 1)^2] + E_f[(D(f) - E_r D(r) + 1)^2]``.

    Expectations are means over the batch and the score map's positions, in float32 at least.

    Examples
    --------
    >>> float(ralsgan_critic_loss(torch.tensor([1.0]), torch.tensor([0.0])))
    0.0
    """
    acc = torch.promote_types(real.dtype, torch.float32)
    real, fake = real.to(acc), fake.to(acc)
    return ((real - fake.mean() - 1) ** 2).mean() + ((fake - real.mean() + 1) ** 2).mean()


def ralsgan_generator_loss(real, fake):
    """RaLSGAN for the generator: the critic's with real and generated swapped.

    Examples
    --------
    >>> float(ralsgan_generator_loss(torch.tensor([0.0]), torch.tensor([1.0])))
    0.0
    """
    return ralsgan_critic_loss(fake, real)


def make_backbone(config: FPNConfig) -> nn.Module:
    """The config's backbone without its classifier: ``forward_stages``, ``stage_channels``,
    ``receptive_radius()`` and, where not ImageNet's, ``input_mean`` / ``input_std``."""
    if config.backbone == "inceptionresnetv2":
        from .inceptionresnetv2 import InceptionResNetV2

        return InceptionResNetV2(classifier=False)
    return MobileNetV2(config.width, classifier=False)


def init_fpn(module: nn.Module, *, generator: torch.Generator) -> None:
    """Draw the pyramid's, heads' and discriminator's weights N(0, 0.02) (biases 0) and the
    backbone's as MobileNet-V2's (He-normal convs, BatchNorm 1/0; Inception-ResNet-v2's too),
    all from ``generator``."""
    from ..train.models import init_weights

    for name, child in module.named_children():
        if name == "backbone":
            init_mobilenet(child, generator=generator)
        else:
            init_weights(child, generator=generator)


def build_fpn(config: FPNConfig, *, seed: int):
    """Generator and discriminator initialised from ``seed`` (torch's global RNG untouched)."""
    g = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        gen, disc = FPNGenerator(config), DoubleScaleDiscriminator(config)
    init_fpn(gen, generator=g)
    init_fpn(disc, generator=g)
    return gen, disc
