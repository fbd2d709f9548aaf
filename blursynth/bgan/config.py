"""BGAN's sizes and the constants its model files and pairs share; no torch here, so a learned blur
that runs its generator in ONNX Runtime (:mod:`blursynth.bgan.onnx`) does not import it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

#: Version of the BGAN model folder's checkpoint format (its format name is
#: :data:`blursynth.nn.runs.BGAN_FORMAT`).
MODEL_VERSION = 1

#: Channels of the noise map: a 4-vector drawn from N(0, 1), the same at every pixel.
NOISE_DIM = 4


@dataclass(frozen=True)
class BGANConfig:
    """Sizes of the BGAN generator and critic.

    Attributes
    ----------
    name : str
        ``"paper"``, ``"small"`` or ``"tiny"`` for the built-in ones (see :data:`CONFIGS`).
    width : int
        Channels of the generator's features (64 in the paper).
    n_blocks : int
        Residual blocks of the generator (9 in the paper).
    convs_per_block : int
        3x3 convolutions in each residual block, with ReLUs between them (5 in the paper).
    image_skip : bool
        Add the sharp input to the generator's output, so that the network predicts only the
        change a blur makes. Not in the paper (whose output comes from the last conv alone); with
        the paper's N(0, 0.01) initialisation it makes the untrained generator the identity,
        which a short CPU run needs far fewer steps from.
    critic_width : int
        Channels of the critic's first stage (64, as VGG19).
    critic_stages : tuple of int
        Convolutions per stage of the critic; each stage ends with a stride-2 conv and doubles
        the channels up to 8 x ``critic_width``. VGG19's trunk is (2, 2, 4, 4, 4).
    """

    name: str
    width: int = 64
    n_blocks: int = 9
    convs_per_block: int = 5
    image_skip: bool = False
    critic_width: int = 64
    critic_stages: tuple = (2, 2, 4, 4, 4)

    def __post_init__(self):
        object.__setattr__(self, "critic_stages", tuple(int(s) for s in self.critic_stages))
        for key in ("width", "n_blocks", "convs_per_block", "critic_width"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"BGANConfig.{key} must be at least 1; got {getattr(self, key)}.")
        if not self.critic_stages or min(self.critic_stages) < 1:
            raise ValueError(f"BGANConfig.critic_stages must be positive counts; got "
                             f"{self.critic_stages}.")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["critic_stages"] = list(self.critic_stages)
        return d

    @classmethod
    def from_dict(cls, d) -> "BGANConfig":
        return cls(**d)

    @property
    def receptive_radius(self) -> int:
        """Pixels beyond which an input pixel cannot change the generator's output pixel (exact):
        every layer is a 3x3 conv at stride 1, radius one each.

        Examples
        --------
        >>> CONFIGS["paper"].receptive_radius
        48
        """
        return 1 + self.n_blocks * self.convs_per_block + 2

    def with_sizes(self, *, width=None, n_blocks=None, image_skip=None) -> "BGANConfig":
        """A copy with the given sizes changed (None keeps), named ``<name>+custom`` if any did."""
        changes = {k: v for k, v in (("width", width), ("n_blocks", n_blocks),
                                     ("image_skip", image_skip)) if v is not None}
        if all(getattr(self, k) == v for k, v in changes.items()):
            return self
        return replace(self, name=self.name.split("+")[0] + "+custom", **changes)


#: ``paper``: the published sizes (generator about 1.7M parameters); ``small``: what a CPU can
#: train in minutes; ``tiny``: for tests.
CONFIGS = {
    "paper": BGANConfig("paper"),
    "small": BGANConfig("small", width=16, n_blocks=3, image_skip=True, critic_width=16,
                        critic_stages=(1, 2, 2, 2)),
    "tiny": BGANConfig("tiny", width=8, n_blocks=2, convs_per_block=5, image_skip=True,
                       critic_width=8, critic_stages=(1, 1, 1)),
}
