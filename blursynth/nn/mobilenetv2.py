"""MobileNet-V2 (Sandler et al., CVPR 2018) with torchvision's parameter names, and loading of its
ImageNet weights from a file the user gives (``--backbone-weights``).

As with :mod:`blursynth.nn.vgg`, the layers are defined here rather than imported from
torchvision (whose PyPI build does not load beside this project's CPU torch); the names
(``features.0.0.weight``, ``features.1.conv.0.0.weight``, ..., ``classifier.1.weight``) are
torchvision's, so its published ``mobilenet_v2-b0353104.pth`` (or ``-7ebf99e0``) loads as is.

The network, from the paper's Table 2: a 3x3 stride-2 conv to 32 channels, then inverted
residual blocks given as (expansion t, channels c, repeats n, first stride s)
``(1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1)``, a 1x1 conv
to 1280 channels and a classifier; BatchNorm and ReLU6, linear bottlenecks (no activation after
a block's projection), a residual add where a block keeps its size. 3,504,872 parameters at
width 1 with the 1000-class classifier.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import BadInputError

#: The paper's Table 2: (expansion t, output channels c, repeats n, stride s of the first).
BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1))

MOBILENET_V2_FILENAMES = ("mobilenet_v2-b0353104.pth", "mobilenet_v2-7ebf99e0.pth")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Channels scaled by a width multiplier, rounded to a multiple of ``divisor`` and never
    more than 10% below ``value`` (the rounding the paper's reference models use).

    Examples
    --------
    >>> make_divisible(32 * 0.5), make_divisible(24 * 0.5), make_divisible(16 * 1.0)
    (16, 16, 16)
    """
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def _conv_bn_relu(c_in, c_out, kernel, stride=1, groups=1):
    # Index 0 conv, 1 BatchNorm, 2 ReLU6: torchvision's Conv2dNormActivation numbering.
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """1x1 expansion (skipped at t = 1), 3x3 depthwise, 1x1 linear projection; identity added
    when stride is 1 and the channels match."""

    def __init__(self, c_in, c_out, stride, expansion):
        super().__init__()
        hidden = int(round(c_in * expansion))
        self.use_residual = stride == 1 and c_in == c_out
        layers = []
        if expansion != 1:
            layers.append(_conv_bn_relu(c_in, hidden, 1))
        layers += [_conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)
        self.out_channels = c_out

    def forward(self, x):
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNet-V2 with torchvision's layer numbering.

    Parameters
    ----------
    width : float
        Width multiplier (1.0 in the paper's main model; torchvision's file is for 1.0).
    classifier : bool
        Keep the last 1x1 conv (``features.18``) and the classifier; a backbone for dense
        prediction (:mod:`blursynth.nn.fpn`) drops both and ends at ``features.17``.
    num_classes : int
    blocks : tuple of (t, c, n, s)
        The inverted residual blocks (:data:`BLOCKS`, the paper's Table 2); tests use fewer
        repeats for a backbone with the same maps and a shorter reach.

    Notes
    -----
    ``stage_ends`` lists the index in ``features`` after which the resolution is 1/2, 1/4,
    1/8, 1/16 and 1/32 of the input for the last time: the maps an FPN taps.

    Examples
    --------
    >>> net = MobileNetV2()
    >>> sum(p.numel() for p in net.parameters())
    3504872
    >>> list(net.state_dict())[:2]
    ['features.0.0.weight', 'features.0.1.weight']
    """

    def __init__(self, width: float = 1.0, classifier: bool = True, num_classes: int = 1000,
                 blocks=BLOCKS):
        super().__init__()
        c_in = make_divisible(32 * width)
        layers = [_conv_bn_relu(3, c_in, 3, stride=2)]
        channels, stage_ends, scale = [], [], 2
        for t, c, n, s in blocks:
            c_out = make_divisible(c * width)
            if s == 2:
                stage_ends.append(len(layers) - 1)
                channels.append(c_in)
                scale *= 2
            for i in range(n):
                layers.append(InvertedResidual(c_in, c_out, s if i == 0 else 1, t))
                c_in = c_out
        stage_ends.append(len(layers) - 1)
        channels.append(c_in)
        self.stage_ends = tuple(stage_ends)
        self.stage_channels = tuple(channels)
        head = None
        if classifier:
            last = make_divisible(1280 * max(1.0, width))
            layers.append(_conv_bn_relu(c_in, last, 1))
            head = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))
        self.features = nn.Sequential(*layers)
        self.classifier = head  # registered after features, as torchvision orders its keys
        self.width = float(width)

    def forward_stages(self, x):
        """The maps at 1/2, 1/4, 1/8, 1/16, 1/32 of the input (sides multiples of 32)."""
        out = []
        ends = set(self.stage_ends)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in ends:
                out.append(x)
            if i == self.stage_ends[-1]:
                break
        return out

    def forward(self, x):
        x = self.features(x)
        if self.classifier is None:
            return x
        return self.classifier(x.mean(dim=(2, 3)))

    def receptive_radius(self) -> int:
        """A bound (px) on how far an input pixel can change a pixel of the last map: each
        conv of kernel k met at cumulative stride s adds ``(k // 2) * s``."""
        radius, stride = 0, 1
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):
                radius += (m.kernel_size[0] // 2) * stride
                stride *= m.stride[0]
        return radius


def init_mobilenet(net: nn.Module, *, generator: torch.Generator) -> None:
    """He-normal convs (fan-out), BatchNorm 1/0, linear N(0, 0.01): the paper's reference
    initialisation, drawn from ``generator`` (torch's global RNG is not touched)."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01, generator=generator)
            nn.init.zeros_(m.bias)


def load_backbone_weights(net: MobileNetV2, path, *, prefix: str = "") -> dict:
    """Load torchvision's MobileNet-V2 ImageNet weights into ``net`` (or a part of it).

    Parameters
    ----------
    net : MobileNetV2
        Every key of its state dict must be in the file (keys the file has beyond it, such as
        the classifier of a backbone, are ignored).
    path : str or Path
        A state dict file with torchvision's names, loaded with ``weights_only=True``.
    prefix : str
        Prefix of the keys in the file (``""`` for torchvision's own file).

    Returns
    -------
    info : dict
        ``{"weights": str(path), "keys": n}``, for run.json.

    Raises
    ------
    BadInputError
        No such file, not a torch state dict, missing keys (named) or a key of the wrong shape
        (named, with both shapes): one line (:func:`blursynth.nn.vgg.load_checked_state`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "m.pth"
    >>> torch.save(MobileNetV2().state_dict(), f)
    >>> load_backbone_weights(MobileNetV2(classifier=False), f)["keys"]
    306
    """
    from .vgg import load_checked_state

    path = Path(path)
    expected = (f"torchvision's MobileNet-V2 file ({MOBILENET_V2_FILENAMES[0]}), which fits "
                f"the width-1 backbone of --config paper only")
    if not path.is_file():
        raise BadInputError(f"--backbone-weights {path}: no such file. Expected {expected}.")
    load_checked_state(net, path, what="--backbone-weights", expected=expected,
                       rename=lambda k: prefix + k)
    return {"weights": str(path), "keys": len(net.state_dict())}
