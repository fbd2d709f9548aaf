"""UID's sizes and the constants its model files and pairs share; no torch here, so a learned blur
that runs its networks in ONNX Runtime (:mod:`blursynth.uid.onnx`) does not import it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

#: Version of the UID model folder's checkpoint format (its format name is
#: :data:`blursynth.nn.runs.UID_FORMAT`).
MODEL_VERSION = 1

#: What the content encoders divide H and W by.
DOWNSAMPLE = 4
DOMAINS = ("blurred", "sharp")


@dataclass(frozen=True)
class UIDConfig:
    """Sizes of UID's networks.

    Attributes
    ----------
    name : str
        ``"paper"``, ``"small"`` or ``"tiny"`` for the built-in ones (see :data:`CONFIGS`).
    width : int
        Channels of the content encoders' first conv; content has ``4 * width`` channels.
    content_blocks : int
        Residual blocks of each content encoder; the last one is shared by both domains.
    generator_blocks : int
        Residual blocks of each generator before its two upsampling convs.
    blur_width : int
        Channels of the blur encoder's first strided conv (doubling to ``4 * blur_width``).
    z_dim : int
        Length of the blur code.
    critic_width : int
        Channels of each critic's first conv.
    critic_layers : int
        Stride-2 convs of each critic (channels doubling up to ``8 * critic_width``).
    code_gain : float or None
        The blur code's scale-and-shift layers start as N(0, ``code_gain / sqrt(z_dim)``), so
        two N(0, I) codes already move an untrained output (a departure from the paper, see
        docs/algorithms.md, UID); None: N(0, 0.02) as the other layers, the choice of ``paper``.
        Left out of :meth:`to_dict` when None, so models without it keep their fingerprints.
    """

    name: str
    width: int = 64
    content_blocks: int = 4
    generator_blocks: int = 4
    blur_width: int = 64
    z_dim: int = 8
    critic_width: int = 64
    critic_layers: int = 4
    code_gain: float | None = None

    def __post_init__(self):
        for key in ("width", "content_blocks", "generator_blocks", "blur_width", "z_dim",
                    "critic_width", "critic_layers"):
            v = getattr(self, key)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"UIDConfig.{key} must be an integer of at least 1; got {v!r}.")
        g = self.code_gain
        if g is not None:
            if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0 < g < 1e6:
                raise ValueError(f"UIDConfig.code_gain must be a positive number or None; "
                                 f"got {g!r}.")
            object.__setattr__(self, "code_gain", float(g))

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["code_gain"] is None:
            del d["code_gain"]
        return d

    @classmethod
    def from_dict(cls, d) -> "UIDConfig":
        return cls(**d)

    def with_sizes(self, *, width=None, z_dim=None, code_gain=None) -> "UIDConfig":
        """A copy with the given sizes (or code gain; 0 for none) changed (None keeps), named
        ``<name>+custom`` if any did."""
        changes = {k: v for k, v in (("width", width), ("z_dim", z_dim), ("code_gain", code_gain))
                   if v is not None}
        if changes.get("code_gain") == 0:
            changes["code_gain"] = None
        if all(getattr(self, k) == v for k, v in changes.items()):
            return self
        return replace(self, name=self.name.split("+")[0] + "+custom", **changes)


#: ``paper``: the sizes of the published networks (64 channels, 4 residual blocks per encoder
#: and generator, an 8-long blur code); ``small``: what a CPU trains in minutes, with the code
#: layers' stronger start (:attr:`UIDConfig.code_gain`); ``tiny``: tests.
CONFIGS = {
    "paper": UIDConfig("paper"),
    "small": UIDConfig("small", width=16, content_blocks=2, generator_blocks=2, blur_width=16,
                       critic_width=16, critic_layers=3, code_gain=2.0),
    "tiny": UIDConfig("tiny", width=8, content_blocks=1, generator_blocks=1, blur_width=8,
                      z_dim=4, critic_width=8, critic_layers=2),
}


def padding(h: int, w: int) -> tuple:
    """``(bottom, right, mode)``: the rows and columns that make an ``h`` x ``w`` image's sides
    multiples of :data:`DOWNSAMPLE`, and torch's padding mode for them (``"reflect"``, or
    ``"replicate"`` where the image is too small to mirror).

    Examples
    --------
    >>> padding(30, 37), padding(2, 2)
    ((2, 3, 'reflect'), (2, 2, 'replicate'))
    """
    ph, pw = -int(h) % DOWNSAMPLE, -int(w) % DOWNSAMPLE
    return ph, pw, "reflect" if min(h, w) > max(ph, pw) else "replicate"
