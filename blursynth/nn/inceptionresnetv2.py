"""Inception-ResNet-v2 (Szegedy et al., AAAI 2017) as a dense-prediction backbone for DeblurGAN-v2's
FPN (``--arch deblurgan-v2 --config paper-inception``), and loading of its ImageNet weights
from a file the user gives (``--backbone-weights``).

The paper's scheme (its Figure 15): a stem, Inception-ResNet-A blocks at 35x35, Reduction-A,
Inception-ResNet-B blocks at 17x17, Reduction-B, Inception-ResNet-C blocks at 8x8. Each
Inception-ResNet block runs parallel branches of 1x1 and factorised convs, joins them with a
linear 1x1 conv back to its input's channels, scales that residual (0.17, 0.10, 0.20 for A, B,
C: the paper's section 3.3 asks for 0.1-0.3) and adds it to the input before a ReLU; every conv
outside those joins is conv + BatchNorm + ReLU. The paper's figures disagree on channels
(Reduction-A gives 1152 channels and Inception-ResNet-B returns 1154; Reduction-B gives 2146
and Inception-ResNet-C returns 2048), so the sizes here are those of the ImageNet model the
authors released with TF-slim, the one DeblurGAN-v2 starts from: a stem ending in a four-branch
block of 320 channels, 10 A blocks (branches 32 | 32-32 | 32-48-64), Reduction-A with
k, l, m, n = 256, 256, 384, 384 (the paper's Table 1) to 1088, 20 B blocks (192 | 128-160-192,
1x7 then 7x1), Reduction-B (256-384 | 256-288 | 256-288-320 | max pool) to 2080, 10 C blocks
(192 | 192-224-256, 1x3 then 3x1; the last without scaling or ReLU) and a 1x1 conv to 1536;
BatchNorm's eps 0.001 as that model's. 54,306,464 parameters without the classifier,
55,843,464 with its 1000-class linear layer.

Two changes for a dense backbone, neither touching a weight's shape: every conv and pool is
padded to keep ``ceil(side / stride)`` (the released model pads few of them: a 299 px input
ends at 8 px, not at 1/32 of its side), so the five maps the pyramid taps are exactly 1/2, 1/4,
1/8, 1/16 and 1/32 of an input whose sides are multiples of 32; and the classifier is dropped.

Parameter names follow Cadene's ``pretrainedmodels`` port of the TF-slim checkpoint
(``inceptionresnetv2-520b38e4.pth``, the file DeblurGAN-v2's FPN-Inception loads):
``conv2d_1a.conv.weight``, ``conv2d_1a.bn.running_mean``, ``mixed_5b.branch1.0.conv.weight``,
``repeat.0.branch2.2.bn.bias``, ``repeat_1.19.conv2d.weight``, ``block8.conv2d.bias``,
``conv2d_7b.bn.weight``, ``last_linear.weight`` (1001 classes in that file, the first a
background class; ignored here); timm's ``inception_resnet_v2`` uses the same names for its
layers. torchvision has no Inception-ResNet-v2.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import BadInputError

#: The file DeblurGAN-v2's Inception backbone loads (Cadene's pretrainedmodels names).
INCEPTION_RESNET_V2_FILENAME = "inceptionresnetv2-520b38e4.pth"

#: Residual scales of the A, B and C blocks (the paper's section 3.3: 0.1 to 0.3).
SCALE_A, SCALE_B, SCALE_C = 0.17, 0.10, 0.20

#: Blocks of each kind in the released model (the paper's Figure 15 draws 5, 10, 5).
REPEATS = (10, 20, 10)


def _same(kernel):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return kh // 2, kw // 2


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 0.001) + ReLU, padded to keep ``ceil(side / stride)``."""

    def __init__(self, c_in, c_out, kernel, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, _same(kernel), bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


def _seq(*layers):
    return nn.Sequential(*layers)


def _max_pool(stride):
    return nn.MaxPool2d(3, stride, padding=1)


class _Branches(nn.Module):
    """Parallel branches (``branch0``, ``branch1``, ...) whose outputs are concatenated."""

    def branches(self):
        return [getattr(self, f"branch{i}") for i in range(4) if hasattr(self, f"branch{i}")]

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches()], dim=1)


class Mixed5b(_Branches):
    """The stem's last block, 192 -> 320: 1x1 96 | 1x1 48, 5x5 64 | 1x1 64, 3x3 96, 3x3 96 |
    3x3 average pool, 1x1 64."""

    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(192, 96, 1)
        self.branch1 = _seq(BasicConv2d(192, 48, 1), BasicConv2d(48, 64, 5))
        self.branch2 = _seq(BasicConv2d(192, 64, 1), BasicConv2d(64, 96, 3), BasicConv2d(96, 96, 3))
        self.branch3 = _seq(nn.AvgPool2d(3, 1, padding=1, count_include_pad=False),
                            BasicConv2d(192, 64, 1))


class _Residual(_Branches):
    """``relu(x + scale * conv2d(cat(branches(x))))``; the last C block has no ReLU."""

    def __init__(self, scale, relu=True):
        super().__init__()
        self.scale = scale
        self.relu = nn.ReLU(inplace=False) if relu else None

    def forward(self, x):
        out = x + self.scale * self.conv2d(super().forward(x))
        return self.relu(out) if self.relu is not None else out


class Block35(_Residual):
    """Inception-ResNet-A (paper Figure 16) at 320 channels."""

    def __init__(self, scale=SCALE_A):
        super().__init__(scale)
        self.branch0 = BasicConv2d(320, 32, 1)
        self.branch1 = _seq(BasicConv2d(320, 32, 1), BasicConv2d(32, 32, 3))
        self.branch2 = _seq(BasicConv2d(320, 32, 1), BasicConv2d(32, 48, 3), BasicConv2d(48, 64, 3))
        self.conv2d = nn.Conv2d(128, 320, 1)


class Mixed6a(_Branches):
    """Reduction-A (paper Figure 7, k, l, m, n = 256, 256, 384, 384), 320 -> 1088."""

    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(320, 384, 3, stride=2)
        self.branch1 = _seq(BasicConv2d(320, 256, 1), BasicConv2d(256, 256, 3),
                            BasicConv2d(256, 384, 3, stride=2))
        self.branch2 = _max_pool(2)


class Block17(_Residual):
    """Inception-ResNet-B (paper Figure 17) at 1088 channels."""

    def __init__(self, scale=SCALE_B):
        super().__init__(scale)
        self.branch0 = BasicConv2d(1088, 192, 1)
        self.branch1 = _seq(BasicConv2d(1088, 128, 1), BasicConv2d(128, 160, (1, 7)),
                            BasicConv2d(160, 192, (7, 1)))
        self.conv2d = nn.Conv2d(384, 1088, 1)


class Mixed7a(_Branches):
    """Reduction-B (paper Figure 18), 1088 -> 2080."""

    def __init__(self):
        super().__init__()
        self.branch0 = _seq(BasicConv2d(1088, 256, 1), BasicConv2d(256, 384, 3, stride=2))
        self.branch1 = _seq(BasicConv2d(1088, 256, 1), BasicConv2d(256, 288, 3, stride=2))
        self.branch2 = _seq(BasicConv2d(1088, 256, 1), BasicConv2d(256, 288, 3),
                            BasicConv2d(288, 320, 3, stride=2))
        self.branch3 = _max_pool(2)


class Block8(_Residual):
    """Inception-ResNet-C (paper Figure 19) at 2080 channels."""

    def __init__(self, scale=SCALE_C, relu=True):
        super().__init__(scale, relu)
        self.branch0 = BasicConv2d(2080, 192, 1)
        self.branch1 = _seq(BasicConv2d(2080, 192, 1), BasicConv2d(192, 224, (1, 3)),
                            BasicConv2d(224, 256, (3, 1)))
        self.conv2d = nn.Conv2d(448, 2080, 1)


class InceptionResNetV2(nn.Module):
    """Inception-ResNet-v2 with Cadene's ``pretrainedmodels`` layer names.

    Parameters
    ----------
    classifier : bool
        Keep the average pool and the 1000-class ``last_linear``; a backbone for dense
        prediction (:mod:`blursynth.nn.fpn`) drops them.
    num_classes : int

    Notes
    -----
    Inputs are images normalised as the ImageNet model was trained: RGB in [-1, 1]
    (``input_mean``, ``input_std`` on [0, 1]). ``stage_channels`` are the channels of the maps
    :meth:`forward_stages` returns at 1/2, 1/4, 1/8, 1/16 and 1/32 of the input.

    Examples
    --------
    >>> net = InceptionResNetV2(classifier=False)
    >>> sum(p.numel() for p in net.parameters())
    54306464
    >>> [tuple(m.shape[1:]) for m in net.forward_stages(torch.zeros(1, 3, 32, 64))]
    [(64, 16, 32), (192, 8, 16), (320, 4, 8), (1088, 2, 4), (1536, 1, 2)]
    """

    stage_channels = (64, 192, 320, 1088, 1536)
    input_mean = (0.5, 0.5, 0.5)
    input_std = (0.5, 0.5, 0.5)

    def __init__(self, classifier: bool = False, num_classes: int = 1000):
        super().__init__()
        a, b, c = REPEATS
        self.conv2d_1a = BasicConv2d(3, 32, 3, stride=2)
        self.conv2d_2a = BasicConv2d(32, 32, 3)
        self.conv2d_2b = BasicConv2d(32, 64, 3)
        self.maxpool_3a = _max_pool(2)
        self.conv2d_3b = BasicConv2d(64, 80, 1)
        self.conv2d_4a = BasicConv2d(80, 192, 3)
        self.maxpool_5a = _max_pool(2)
        self.mixed_5b = Mixed5b()
        self.repeat = nn.Sequential(*[Block35() for _ in range(a)])
        self.mixed_6a = Mixed6a()
        self.repeat_1 = nn.Sequential(*[Block17() for _ in range(b)])
        self.mixed_7a = Mixed7a()
        self.repeat_2 = nn.Sequential(*[Block8() for _ in range(c - 1)])
        self.block8 = Block8(scale=1.0, relu=False)
        self.conv2d_7b = BasicConv2d(2080, 1536, 1)
        self.last_linear = nn.Linear(1536, num_classes) if classifier else None

    def _stages(self):
        """The layers in run order, grouped by the scale whose map ends each group."""
        return ((self.conv2d_1a, self.conv2d_2a, self.conv2d_2b),
                (self.maxpool_3a, self.conv2d_3b, self.conv2d_4a),
                (self.maxpool_5a, self.mixed_5b, self.repeat),
                (self.mixed_6a, self.repeat_1),
                (self.mixed_7a, self.repeat_2, self.block8, self.conv2d_7b))

    def forward_stages(self, x):
        """The maps at 1/2, 1/4, 1/8, 1/16, 1/32 of the input (sides multiples of 32)."""
        out = []
        for stage in self._stages():
            for layer in stage:
                x = layer(x)
            out.append(x)
        return out

    def forward(self, x):
        x = self.forward_stages(x)[-1]
        if self.last_linear is None:
            return x
        return self.last_linear(x.mean(dim=(2, 3)))

    def receptive_radius(self) -> int:
        """A bound (px) on how far an input pixel can change a pixel of the 1/32 map.

        Down each axis, a conv or pool of kernel side k met at cumulative stride s adds
        ``(k // 2) * s`` (a 1x7 conv reaches across, not down); parallel branches reach as
        far as their longest; a residual add adds nothing.
        """
        reach, stride = (0, 0), 1
        for stage in self._stages():
            for layer in stage:
                reach, stride = _reach(layer, reach, stride)
        return max(reach)


def _reach(module, reach, stride):
    """``((down, across), stride)`` after ``module``, given them before it."""
    if isinstance(module, BasicConv2d):
        module = module.conv
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        kh, kw = nn.modules.utils._pair(module.kernel_size)
        s = nn.modules.utils._pair(module.stride)[0]
        return (reach[0] + (kh // 2) * stride, reach[1] + (kw // 2) * stride), stride * s
    if isinstance(module, nn.Sequential):
        for m in module:
            reach, stride = _reach(m, reach, stride)
        return reach, stride
    if isinstance(module, _Branches):
        ends = [_reach(b, reach, stride) for b in module.branches()]
        return (max(r[0] for r, _ in ends), max(r[1] for r, _ in ends)), ends[0][1]
    if isinstance(module, nn.ReLU):
        return reach, stride
    raise TypeError(f"no reach for {type(module).__name__}")


def load_inception_weights(net: InceptionResNetV2, path) -> dict:
    """Load ImageNet weights named as Cadene's ``pretrainedmodels`` (``inceptionresnetv2-
    520b38e4.pth``) into ``net``; the file's classifier is ignored, and BatchNorm's
    ``num_batches_tracked`` may be absent (files saved before torch 0.4 lack it).

    Returns
    -------
    info : dict
        ``{"weights": str(path), "keys": n}``: the keys loaded, for run.json.

    Raises
    ------
    BadInputError
        No such file, not a torch state dict, missing keys (named) or a key of the wrong shape
        (named, with both shapes): one line.
    """
    from .vgg import load_checked_state

    path = Path(path)
    expected = (f"Inception-ResNet-v2 ImageNet weights with the names of Cadene's "
                f"pretrainedmodels ({INCEPTION_RESNET_V2_FILENAME})")
    if not path.is_file():
        raise BadInputError(f"--backbone-weights {path}: no such file. Expected {expected}.")
    load_checked_state(net, path, what="--backbone-weights", expected=expected,
                       optional=lambda k: k.endswith("num_batches_tracked"))
    return {"weights": str(path), "keys": len(net.state_dict())}
