"""LPIPS (Zhang et al., CVPR 2018) on AlexNet or VGG16 features with torchvision's parameter
names, with the published linear heads read from the ``lpips`` package's files.

The ``lpips`` package imports torchvision, which does not load beside this project's CPU torch
(see :mod:`blursynth.nn.vgg`), so it is never imported: only its weight files are read. The
backbone's ImageNet weights come from a file the user gives (torchvision's
``alexnet-owt-7be5be79.pth`` or ``vgg16-397923af.pth``), as the VGG19 of the perceptual loss does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import BadInputError
from .vgg import load_checked_state, vgg_layers

#: torchvision's file names of the ImageNet backbones (``--lpips-backbone``).
BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
#: The ``lpips`` release whose linear heads are read, and where its wheel keeps them.
LPIPS_VERSION = "0.1.4"
HEADS_PATH = "lpips/weights/v0.1/{net}.pth"

_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M")
#: torchvision ``features`` indices of the ReLUs LPIPS compares, and their channel counts:
#: AlexNet relu1..relu5; VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
# The input normalisation the published heads were trained behind (on [-1, 1] RGB): the
# ImageNet statistics the lpips package (v0.1) uses, in that range.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _alexnet_layers() -> list:
    """torchvision's AlexNet ``features`` (indices 0..12)."""
    return [nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2)]


class LPIPS(nn.Module):
    """Learned perceptual image patch similarity; lower is closer.

    ``d(x, y) = sum_l mean_hw( w_l . (n(f_l(x)) - n(f_l(y)))^2 )``: ``f_l`` the backbone's
    five ReLU outputs (:data:`TAPS`), ``n`` each feature vector divided by its L2 norm over
    channels, ``w_l`` the published non-negative linear head (a 1x1 convolution to one
    channel), the mean over the layer's pixels, the sum over layers (Zhang et al. 2018, Eq. 1).

    Parameters
    ----------
    net : {'alex', 'vgg'}

    Notes
    -----
    ``forward(x, y)`` takes two ``(B, 3, H, W)`` RGB tensors in [0, 1] and returns ``(B,)``.
    Weights start random: build with :func:`load_lpips`. The backbone's parameters are
    ``features.N.weight`` / ``bias`` as torchvision names them; the heads are ``heads.L.weight``.

    Examples
    --------
    >>> net = LPIPS("alex")
    >>> sorted(net.state_dict())[:2]
    ['features.0.bias', 'features.0.weight']
    >>> x = torch.rand(2, 3, 64, 64)
    >>> net(x, x).tolist()
    [0.0, 0.0]
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in TAPS:
            raise ValueError(f"net must be 'alex' or 'vgg'; got {net!r}.")
        self.net = net
        layers = _alexnet_layers() if net == "alex" else vgg_layers(_VGG16_CFG)
        self.features = nn.Sequential(*layers[: TAPS[net][-1] + 1])
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS[net])
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def taps(self, image):
        """The backbone's compared feature maps of ``(B, 3, H, W)`` RGB in [0, 1]."""
        h = ((2 * image - 1) - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in TAPS[self.net]:
                out.append(h)
        return out

    def forward(self, image, reference):
        total = 0
        for fx, fy, head in zip(self.taps(image), self.taps(reference), self.heads):
            nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + head((nx - ny) ** 2).mean(dim=(1, 2, 3))
        return total


def find_lpips_heads(net: str, path=None) -> Path:
    """The file of LPIPS's published linear heads for ``net``.

    Parameters
    ----------
    net : {'alex', 'vgg'}
    path : str or Path, optional
        An explicit file (``--lpips-weights``); used as given.

    Returns
    -------
    Path
        ``path``, or the installed ``lpips`` package's ``lpips/weights/v0.1/<net>.pth`` (found
        through ``importlib.metadata``, without importing the package).

    Raises
    ------
    BadInputError
        The file given does not exist, or the package is not installed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "alex.pth"; _ = f.write_bytes(b"x")
    >>> find_lpips_heads("alex", f) == f
    True
    """
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise BadInputError(f"--lpips-weights {path}: no such file. Expected the lpips "
                                f"package's {HEADS_PATH.format(net=net)}.")
        return path
    import importlib.metadata as md

    want = HEADS_PATH.format(net=net)
    try:
        files = md.files("lpips") or []
    except md.PackageNotFoundError:
        files = []
    for f in files:
        if str(f).replace("\\", "/") == want:
            located = Path(f.locate())
            if located.is_file():
                return located
    raise BadInputError(
        f"LPIPS linear weights {want} not found: install them with `pip install --no-deps "
        f"lpips=={LPIPS_VERSION}` (only its files are read) or pass --lpips-weights PATH."
    )


def load_lpips(net: str, backbone, heads=None, *, map_location="cpu") -> LPIPS:
    """Build :class:`LPIPS` with torchvision's backbone weights and the published heads.

    Parameters
    ----------
    net : {'alex', 'vgg'}
    backbone : str or Path
        torchvision's ImageNet file (:data:`BACKBONE_FILES`), or any state dict with its
        ``features.N.weight`` / ``bias`` names (classifier keys are ignored).
    heads : str or Path, optional
        The heads file (``lin0.model.1.weight`` ... as the lpips package stores them);
        :func:`find_lpips_heads` by default.

    Returns
    -------
    LPIPS
        In eval mode, frozen.

    Raises
    ------
    BadInputError
        A file missing, not a state dict, lacking keys (named) or with wrong shapes.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> net = LPIPS("alex")
    >>> torch.save({k: v for k, v in net.state_dict().items() if k.startswith("features")},
    ...            d / "alexnet.pth")
    >>> torch.save({f"lin{i}.model.1.weight": h.weight for i, h in enumerate(net.heads)},
    ...            d / "alex.pth")
    >>> type(load_lpips("alex", d / "alexnet.pth", d / "alex.pth")).__name__
    'LPIPS'
    """
    if net not in TAPS:
        raise BadInputError(f"LPIPS backbone {net!r}: expected alex or vgg.")
    backbone = Path(backbone)
    if not backbone.is_file():
        raise BadInputError(f"--lpips-backbone {backbone}: no such file. Expected torchvision's "
                            f"{BACKBONE_FILES[net]}.")
    heads = find_lpips_heads(net, heads)
    model = LPIPS(net)
    load_checked_state(model.features, backbone, what=f"LPIPS {net} backbone",
                       expected=f"torchvision's {BACKBONE_FILES[net]}",
                       key_hint=" (keys features.N.weight/bias)", map_location=map_location,
                       rename=lambda k: f"features.{k}")
    load_checked_state(model.heads, heads, what=f"LPIPS {net} linear weights",
                       expected=f"the lpips package's {HEADS_PATH.format(net=net)}",
                       map_location=map_location,
                       rename=lambda k: f"lin{k.split('.')[0]}.model.1.weight")
    return model.eval()


def lpips_from_options(net: str, backbone=None, heads=None):
    """The LPIPS model the command-line options ask for, or None.

    Parameters
    ----------
    net : {'alex', 'vgg'}
        ``--lpips``.
    backbone : str or Path, optional
        ``--lpips-backbone``; without it no LPIPS is scored.
    heads : str or Path, optional
        ``--lpips-weights``; the installed lpips package's file by default.

    Raises
    ------
    BadInputError
        ``--lpips-weights`` without ``--lpips-backbone``, or a file :func:`load_lpips` refuses.

    Examples
    --------
    >>> lpips_from_options("alex") is None
    True
    """
    if backbone is None:
        if heads is not None:
            raise BadInputError(f"--lpips-weights {heads} without --lpips-backbone: LPIPS also "
                                f"needs the backbone's ImageNet weights; pass --lpips-backbone "
                                f"PATH (torchvision's {BACKBONE_FILES.get(net, '')}).")
        return None
    return load_lpips(net, backbone, heads)
