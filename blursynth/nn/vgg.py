"""VGG19 feature layers with torchvision's parameter names, and loading of its ImageNet weights.

The layers are defined here rather than imported from torchvision because torchvision's PyPI
build does not load beside the CPU torch this project uses; the parameter names
(``features.0.weight``, ``features.0.bias``, ...) match torchvision's so its published file
``vgg19-dcbb9e9d.pth`` loads as is.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import torch
from torch import nn

from ..errors import BadInputError

VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
VGG19_URL = "https://download.pytorch.org/models/" + VGG19_FILENAME
# torchvision names its files with the first 8 hex digits of the file's sha256.
VGG19_SHA256_PREFIX = "dcbb9e9d"

# Channel counts of VGG19's convolutions; "M" is a 2x2 max-pool.
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M")

#: Index in ``features`` of each named layer, as torchvision numbers them.
VGG19_LAYERS = {}
_i = 0
_block, _conv = 1, 1
for _c in _VGG19_CFG:
    if _c == "M":
        VGG19_LAYERS[f"pool{_block}"] = _i
        _i += 1
        _block, _conv = _block + 1, 1
    else:
        VGG19_LAYERS[f"conv{_block}_{_conv}"] = _i
        VGG19_LAYERS[f"relu{_block}_{_conv}"] = _i + 1
        _i += 2
        _conv += 1
del _i, _block, _conv, _c

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg_layers(cfg) -> list:
    """A VGG trunk as torchvision orders it: 3x3 convolutions (padding 1) each followed by a
    ReLU, ``"M"`` a 2x2 max-pool; ``cfg`` lists the convolutions' output channels.

    Examples
    --------
    >>> [type(m).__name__ for m in vgg_layers((8, "M"))]
    ['Conv2d', 'ReLU', 'MaxPool2d']
    """
    layers = []
    in_ch = 3
    for c in cfg:
        if c == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, c, 3, padding=1), nn.ReLU(inplace=True)]
            in_ch = c
    return layers


class VGG19Features(nn.Module):
    """VGG19's convolutional trunk, cut after a given layer, on ImageNet-normalised input.

    Parameters
    ----------
    last_layer : str or int, optional
        Name (``"conv3_3"``, see :data:`VGG19_LAYERS`) or torchvision index of the last layer
        kept. Default ``"conv3_3"`` (index 14), the layer DeblurGAN's perceptual loss uses.

    Notes
    -----
    ``forward`` takes ``(B, 3, H, W)`` RGB in [0, 1] and normalises it with the ImageNet mean
    and standard deviation itself. Weights start random; load them with
    :func:`load_vgg19_features`. Parameters are frozen (``requires_grad=False``).

    Examples
    --------
    >>> import torch
    >>> net = VGG19Features("conv3_3")
    >>> sorted(net.state_dict())[:2]
    ['features.0.bias', 'features.0.weight']
    >>> net(torch.rand(1, 3, 32, 32)).shape
    torch.Size([1, 256, 8, 8])
    """

    def __init__(self, last_layer="conv3_3"):
        super().__init__()
        if isinstance(last_layer, str):
            if last_layer not in VGG19_LAYERS:
                raise ValueError(
                    f"last_layer must be one of {sorted(VGG19_LAYERS)}; got {last_layer!r}."
                )
            last_index = VGG19_LAYERS[last_layer]
        else:
            last_index = int(last_layer)
            if not 0 <= last_index < 2 * 16 + 5:
                raise ValueError(f"last_layer index must be in [0, 36]; got {last_index}.")
        self.features = nn.Sequential(*vgg_layers(_VGG19_CFG)[: last_index + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)
        self.requires_grad_(False)

    def forward(self, image):
        return self.features((image - self.mean) / self.std)


def default_vgg19_path() -> Path:
    """Where torch hub caches torchvision's VGG19 file (``$TORCH_HOME/hub/checkpoints/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME


def _download(url: str, dest: Path, timeout_s: float) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
        if not digest.hexdigest().startswith(VGG19_SHA256_PREFIX):
            raise OSError(f"downloaded file's sha256 does not start with {VGG19_SHA256_PREFIX}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def resolve_vgg19_weights(path=None, *, download=True, timeout_s=30.0) -> Path:
    """Find torchvision's VGG19 ImageNet weights file.

    Parameters
    ----------
    path : str or Path, optional
        An explicit file (``--vgg-weights``); used as given, never searched past.
    download : bool
        Where no file is given or cached, fetch it from download.pytorch.org into the torch hub
        cache (checked against the sha256 prefix in its name).
    timeout_s : float
        Network timeout of the download.

    Returns
    -------
    path : Path
        An existing file.

    Raises
    ------
    BadInputError
        The given file does not exist, or none is cached and it cannot be downloaded; the
        message says how to get the file or to pass ``--perceptual none``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "w.pth"; _ = f.write_bytes(b"x")
    >>> resolve_vgg19_weights(f) == f
    True
    """
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise BadInputError(
                f"--vgg-weights {path}: no such file. Expected torchvision's {VGG19_FILENAME} "
                f"(from {VGG19_URL})."
            )
        return path
    cached = default_vgg19_path()
    if cached.is_file():
        return cached
    if download:
        try:
            _download(VGG19_URL, cached, timeout_s)
            return cached
        except (OSError, urllib.error.URLError) as exc:
            reason = f"download failed ({' '.join(str(exc).split())})"
    else:
        reason = "downloads are off"
    raise BadInputError(
        f"VGG19 weights for the perceptual loss not found at {cached} and {reason}. "
        f"Fetch {VGG19_URL} and pass --vgg-weights PATH (or put it at that path), "
        f"or train with --perceptual none (pixel loss)."
    )


def load_vgg19_features(path, last_layer="conv3_3", *, map_location="cpu") -> VGG19Features:
    """Build :class:`VGG19Features` and load torchvision's weights into it.

    Parameters
    ----------
    path : str or Path
        A state dict file with torchvision's names (``features.N.weight``/``bias``); keys past
        ``last_layer`` and the classifier are ignored.
    last_layer : str or int
        As in :class:`VGG19Features`.

    Returns
    -------
    net : VGG19Features
        In eval mode, parameters frozen.

    Raises
    ------
    BadInputError
        The file is not a torch state dict, or lacks keys (named) or has wrong shapes.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "vgg.pth"
    >>> torch.save(VGG19Features("conv1_2").state_dict(), f)
    >>> load_vgg19_features(f, "conv1_2").features[0].weight.shape
    torch.Size([64, 3, 3, 3])
    """
    net = VGG19Features(last_layer)
    load_checked_state(net, path, what="VGG19 weights",
                       expected=f"torchvision's {VGG19_FILENAME}",
                       key_hint=" (keys features.N.weight/bias)", map_location=map_location)
    return net.eval()


def load_checked_state(net, path, *, what: str, expected: str, key_hint: str = "",
                       map_location="cpu", rename=None, optional=None) -> None:
    """Load into ``net`` the keys it has from a state-dict file, refusing in one line a file
    that is not one, lacks keys (named) or has a wrong shape. Extra keys are ignored.

    Parameters
    ----------
    net : torch.nn.Module
    path : str or Path
    what : str
        What the file is, opening each message (``"VGG19 weights"``).
    expected : str
        The file that was expected, for the messages (``"torchvision's vgg19-dcbb9e9d.pth"``).
    key_hint : str
        Appended to the missing-keys message.
    rename : callable, optional
        Maps a key of ``net`` to the key the file stores it under.
    optional : callable, optional
        ``optional(key) -> bool`` for keys of ``net`` a file may lack (they keep ``net``'s
        value): BatchNorm's ``num_batches_tracked``, which files saved before torch 0.4 lack.

    Raises
    ------
    BadInputError

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "w.pth"
    >>> torch.save({"weight": torch.ones(2, 3)}, f)
    >>> lin = nn.Linear(3, 2, bias=False)
    >>> load_checked_state(lin, f, what="weights", expected="a test file")
    >>> float(lin.weight.detach().sum())
    6.0
    """
    path = Path(path)
    rename = rename or (lambda k: k)
    optional = optional or (lambda k: False)
    try:
        from .runs import quiet_torch_load

        state = quiet_torch_load(path, map_location=map_location)
    except Exception as exc:  # torch raises many types for a file that is not its own
        raise BadInputError(
            f"{what} {path}: not a torch state dict ({type(exc).__name__}). "
            f"Expected {expected}."
        ) from None
    if not isinstance(state, dict):
        raise BadInputError(
            f"{what} {path}: expected a state dict (mapping of names to tensors); "
            f"got {type(state).__name__}."
        )
    wanted = net.state_dict()
    missing = [rename(k) for k in wanted if rename(k) not in state and not optional(k)]
    if missing:
        more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        shown = ", ".join(missing[:6]) + more
        raise BadInputError(f"{what} {path}: missing keys {shown}. Expected {expected}{key_hint}.")
    bad = [k for k in wanted
           if rename(k) in state and tuple(state[rename(k)].shape) != tuple(wanted[k].shape)]
    if bad:
        k = bad[0]
        raise BadInputError(
            f"{what} {path}: {rename(k)} has shape {tuple(state[rename(k)].shape)}, expected "
            f"{tuple(wanted[k].shape)}. Expected {expected}."
        )
    net.load_state_dict({k: state[rename(k)] if rename(k) in state else wanted[k]
                         for k in wanted})
