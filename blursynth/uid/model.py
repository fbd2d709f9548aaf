"""UID's networks (Lu et al. 2019): content and blur encoders, two generators, two critics.

A blurred image splits into content (a feature map at a quarter of the resolution, from the
blurred domain's content encoder) and a blur code (a vector from the blur encoder); a sharp
image has content only. The blurred generator makes a blurred image from content and a code,
the sharp generator a sharp image from content. The two content encoders share their last
layer, which maps both domains into one content space, so a sharp photo's content and a real
blurred photo's code make a blurred version of the sharp photo (blur transfer), and a blurred
photo's content alone makes its deblurred version.

All images are ``(B, 3, H, W)`` in [-1, 1] (:func:`blursynth.train.models.to_model_range`).
The encoders downsample by 4: :func:`transfer_blur` and :func:`deblur` pad any H x W.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..nn import count_parameters, runs  # noqa: F401 - count_parameters re-exported
from ..nn.runs import CHECKPOINT, METRICS_CSV, RUN_JSON
from .config import CONFIGS, DOMAINS, DOWNSAMPLE, MODEL_VERSION, UIDConfig, padding  # noqa: F401 - re-exported


def _norm(channels):
    return nn.InstanceNorm2d(channels, affine=False)


class ResBlock(nn.Module):
    """conv3-IN-ReLU-conv3-IN plus the identity (reflection padding).

    With ``z_dim`` > 0 each instance normalisation is followed by a scale and shift computed
    from the code, ``h * (1 + gamma(z)) + beta(z)`` per channel: a code concatenated to the
    input of a conv that instance normalisation follows adds a constant per channel, which the
    normalisation removes, so it could not change the output at all.
    """

    def __init__(self, channels: int, z_dim: int = 0):
        super().__init__()
        self.conv1 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
                                   _norm(channels))
        self.conv2 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
                                   _norm(channels))
        self.film = nn.Linear(z_dim, 4 * channels) if z_dim else None

    def forward(self, x, z=None):
        h1, h2 = self.conv1, self.conv2
        if self.film is None:
            return x + h2(torch.relu(h1(x)))
        g1, b1, g2, b2 = self.film(z)[:, :, None, None].chunk(4, dim=1)
        h = torch.relu(h1(x) * (1 + g1) + b1)
        return x + h2(h) * (1 + g2) + b2


def _down_stem(width):
    """conv7 (stride 1) then two conv4 of stride 2, IN and ReLU after each: 3 -> 4*width at H/4."""
    return nn.Sequential(
        nn.ReflectionPad2d(3), nn.Conv2d(3, width, 7), _norm(width), nn.ReLU(inplace=True),
        nn.Conv2d(width, 2 * width, 4, 2, 1), _norm(2 * width), nn.ReLU(inplace=True),
        nn.Conv2d(2 * width, 4 * width, 4, 2, 1), _norm(4 * width), nn.ReLU(inplace=True))


class ContentEncoder(nn.Module):
    """One domain's private part: the stem and ``content_blocks - 1`` residual blocks."""

    def __init__(self, config: UIDConfig):
        super().__init__()
        c = 4 * config.width
        self.stem = _down_stem(config.width)
        self.blocks = nn.Sequential(*[ResBlock(c) for _ in range(config.content_blocks - 1)])

    def forward(self, x):
        return self.blocks(self.stem(x))


class BlurEncoder(nn.Module):
    """Four conv4 of stride 2 (LeakyReLU), a global average, then linear maps to the code's
    mean and log-variance."""

    def __init__(self, config: UIDConfig):
        super().__init__()
        w = config.blur_width
        chans = [3, w, 2 * w, 4 * w, 4 * w]
        layers = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)
        self.mu = nn.Linear(chans[-1], config.z_dim)
        self.logvar = nn.Linear(chans[-1], config.z_dim)

    def forward(self, x):
        f = self.features(x).mean(dim=(2, 3))
        return self.mu(f), self.logvar(f)


class Generator(nn.Module):
    """Residual blocks at H/4, two transposed conv4 of stride 2, conv7 to RGB and tanh.

    With ``z_dim`` > 0 the code scales and shifts the normalised features of every residual
    block (the blurred generator, see :class:`ResBlock`); with 0 it has no code input.
    """

    def __init__(self, config: UIDConfig, z_dim: int):
        super().__init__()
        w = config.width
        self.z_dim = int(z_dim)
        self.blocks = nn.ModuleList([ResBlock(4 * w, self.z_dim)
                                     for _ in range(config.generator_blocks)])
        self.up = nn.Sequential(
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), _norm(2 * w), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), _norm(w), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(3), nn.Conv2d(w, 3, 7), nn.Tanh())

    def forward(self, content, z=None):
        if self.z_dim:
            if z is None or z.dim() != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must be (B, {self.z_dim}); got "
                                 f"{None if z is None else tuple(z.shape)}.")
            z = z.to(content)
        x = content
        for block in self.blocks:
            x = block(x, z)
        return self.up(x)


class Critic(nn.Module):
    """PatchGAN critic: ``critic_layers`` conv4 of stride 2 (LeakyReLU 0.2), then a conv3 to
    one logit per patch: ``(B, 3, H, W) -> (B, 1, h, w)``."""

    def __init__(self, config: UIDConfig):
        super().__init__()
        layers, c_in = [], 3
        for i in range(config.critic_layers):
            c = min(config.critic_width * 2 ** i, 8 * config.critic_width)
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c
        layers.append(nn.Conv2d(c_in, 1, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class UIDNets(nn.Module):
    """All of UID's networks, with the calls the trainer, ``uid blur`` and ``uid deblur`` use.

    Parameters
    ----------
    config : UIDConfig

    Notes
    -----
    Modules: ``content_blurred``, ``content_sharp`` (private parts), ``content_shared`` (the
    shared last block), ``blur_encoder``, ``gen_blurred``, ``gen_sharp``, ``critic_blurred``,
    ``critic_sharp``. Outputs are not clamped beyond tanh's (-1, 1).

    Examples
    --------
    >>> import torch
    >>> nets = build_uid(CONFIGS["tiny"], seed=0)
    >>> x = torch.zeros(2, 3, 16, 20)
    >>> c = nets.content(x, "blurred")
    >>> c.shape
    torch.Size([2, 32, 4, 5])
    >>> mu, logvar = nets.blur_code(x)
    >>> nets.make_blurred(c, mu).shape, nets.make_sharp(c).shape, nets.z_dim
    (torch.Size([2, 3, 16, 20]), torch.Size([2, 3, 16, 20]), 4)
    """

    def __init__(self, config: UIDConfig):
        super().__init__()
        self.config = config
        self.content_blurred = ContentEncoder(config)
        self.content_sharp = ContentEncoder(config)
        self.content_shared = ResBlock(4 * config.width)
        self.blur_encoder = BlurEncoder(config)
        self.gen_blurred = Generator(config, config.z_dim)
        self.gen_sharp = Generator(config, 0)
        self.critic_blurred = Critic(config)
        self.critic_sharp = Critic(config)

    @property
    def z_dim(self) -> int:
        return int(self.config.z_dim)

    def content(self, x, domain: str):
        """Content of ``x`` (``(B, 3, H, W)``, H and W multiples of 4) from the encoder of
        ``domain`` (``"blurred"`` or ``"sharp"``): ``(B, 4 * width, H / 4, W / 4)``."""
        if domain == "blurred":
            private = self.content_blurred
        elif domain == "sharp":
            private = self.content_sharp
        else:
            raise ValueError(f"domain must be one of {DOMAINS}; got {domain!r}.")
        _check_image(x)
        return self.content_shared(private(x))

    def blur_code(self, x_blurred):
        """Blur code of blurred images, any H x W of at least 16: ``(mu, logvar)``, each
        ``(B, z_dim)``; the code is drawn as ``mu + exp(logvar / 2) * N(0, I)``."""
        if x_blurred.dim() != 4 or x_blurred.shape[1] != 3 or min(x_blurred.shape[-2:]) < 16:
            raise ValueError(f"x_blurred must be (B, 3, H, W) with H, W >= 16; got "
                             f"{tuple(x_blurred.shape)}.")
        return self.blur_encoder(x_blurred)

    def make_blurred(self, content, z):
        """Blurred image from content and a blur code ``z`` ``(B, z_dim)``."""
        return self.gen_blurred(content, z)

    def make_sharp(self, content):
        """Sharp image from content."""
        return self.gen_sharp(content)

    def generator_modules(self):
        """The encoders and generators (one optimiser steps them together)."""
        return [self.content_blurred, self.content_sharp, self.content_shared,
                self.blur_encoder, self.gen_blurred, self.gen_sharp]

    def critic_modules(self):
        return [self.critic_blurred, self.critic_sharp]


def _check_image(x):
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W); got shape {tuple(x.shape)}.")
    h, w = x.shape[-2:]
    if h % DOWNSAMPLE or w % DOWNSAMPLE or min(h, w) < DOWNSAMPLE:
        raise ValueError(f"image sides must be multiples of {DOWNSAMPLE}; got {h}x{w}. Pad "
                         f"them (transfer_blur and deblur do).")


def init_uid(nets: UIDNets, *, generator_rng: torch.Generator) -> None:
    """Draw the weights (the paper does not state an initialisation); biases 0.

    Layers followed by instance normalisation (content encoders, generators): N(0, 0.02), the
    usual GAN choice, since the normalisation restores the scale. The blur encoder and the
    critics have no normalisation: He-normal for LeakyReLU(0.2), so a signal passes their
    stacks (with 0.02 the blur code of an untrained encoder is ~1e-4 whatever the image, and
    its gradient as small); the code's log-variance head N(0, 0.02), so training starts near
    unit variance. With ``config.code_gain`` the blurred generator's scale-and-shift layers are
    N(0, ``code_gain / sqrt(z_dim)``) instead (the same draws in the same order, scaled).
    """
    plain = {id(m) for part in (nets.blur_encoder, *nets.critic_modules()) for m in part.modules()}
    gain = nets.config.code_gain
    code = {id(b.film) for b in nets.gen_blurred.blocks} if gain else set()
    for m in nets.modules():
        if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            continue
        if id(m) in plain and m is not nets.blur_encoder.logvar:
            nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu",
                                    generator=generator_rng)
        elif id(m) in code:
            nn.init.normal_(m.weight, 0.0, gain / math.sqrt(nets.z_dim), generator=generator_rng)
        else:
            nn.init.normal_(m.weight, 0.0, 0.02, generator=generator_rng)
        nn.init.zeros_(m.bias)


def build_uid(config: UIDConfig, seed: int) -> UIDNets:
    """UID's networks, initialised from ``seed`` (torch's global RNG is left as it was).

    Examples
    --------
    >>> a, b = build_uid(CONFIGS["tiny"], seed=3), build_uid(CONFIGS["tiny"], seed=3)
    >>> model_fingerprint(a) == model_fingerprint(b)
    True
    """
    rng = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        nets = UIDNets(config)
    init_uid(nets, generator_rng=rng)
    return nets


def _pad(x):
    """Reflect-pad ``x`` to sides that are multiples of :data:`DOWNSAMPLE` (bottom, right)."""
    h, w = x.shape[-2:]
    ph, pw, mode = padding(h, w)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


def transfer_blur(nets: UIDNets, sharp, z):
    """Blur sharp images with blur codes: ``make_blurred(content(sharp, "sharp"), z)``.

    Parameters
    ----------
    nets : UIDNets
    sharp : (B, 3, H, W) tensor
        In [-1, 1]; any H, W (reflect-padded to multiples of 4, cropped back).
    z : (B, z_dim) tensor
        Codes from :meth:`UIDNets.blur_code` of real blurred images, or drawn from N(0, I).

    Returns
    -------
    blurred : (B, 3, H, W) tensor
        In (-1, 1).
    """
    x, h, w = _pad(sharp)
    return nets.make_blurred(nets.content(x, "sharp"), z)[..., :h, :w]


def deblur(nets: UIDNets, blurred):
    """Deblur images of the blurred domain: ``make_sharp(content(blurred, "blurred"))``.

    Parameters
    ----------
    nets : UIDNets
    blurred : (B, 3, H, W) tensor
        In [-1, 1]; any H, W (reflect-padded to multiples of 4, cropped back).

    Returns
    -------
    sharp : (B, 3, H, W) tensor
        In (-1, 1).
    """
    x, h, w = _pad(blurred)
    return nets.make_sharp(nets.content(x, "blurred"))[..., :h, :w]


def model_fingerprint(nets: UIDNets) -> str:
    """16 hex digits of the sha256 of the config and the encoders' and generators' weights.

    The critics are left out: they do not change what the model makes.
    """
    return runs.weights_fingerprint(nets.config.to_dict(), nets.state_dict(), skip="critic_")


# --------------------------------------------------------------------------------------------
# model files


MODEL_JSON = "model.json"
SAMPLES_DIR = "samples"
MODEL_FORMAT = runs.UID_FORMAT

#: The UID model folder and its checkpoint's messages.
RUN_KIND = runs.model_run_kind(
    "UID", format=MODEL_FORMAT, version=MODEL_VERSION, command="uid train",
    names=(CHECKPOINT, MODEL_JSON, RUN_JSON, METRICS_CSV, SAMPLES_DIR),
    others={runs.DEBLURGAN_FORMAT: "a DeblurGAN training run", runs.BGAN_FORMAT: "a BGAN model"})


def load_uid(model_dir, device="cpu"):
    """The trained networks of a ``uid train`` run, in eval mode without gradients.

    Parameters
    ----------
    model_dir : str or Path
        The run folder (or its ``checkpoint.pt``); read with ``weights_only=True``.
    device : str or torch.device

    Returns
    -------
    nets : UIDNets
    config : UIDConfig
    run_info : dict
        ``step``, ``fingerprint`` (:func:`model_fingerprint`), ``config`` (dict),
        ``loss_weights``, ``perceptual``.

    Raises
    ------
    BadInputError
        No model there, another kind of checkpoint, another format version, or weights that
        do not fit the config.
    """
    from ..nn.runs import load_checkpoint

    ckpt = load_checkpoint(model_dir, RUN_KIND, mmap=True)

    def build():
        config = UIDConfig.from_dict(ckpt["config"])
        return config, UIDNets(config), ckpt["nets"]

    config, nets = runs.restore_model(model_dir, build, "UID networks")
    nets.requires_grad_(False)
    info = {"step": int(ckpt.get("step", 0)), "fingerprint": model_fingerprint(nets),
            "config": config.to_dict(), "loss_weights": ckpt.get("loss_weights"),
            "perceptual": ckpt.get("perceptual")}
    return nets.to(device).eval(), config, info
