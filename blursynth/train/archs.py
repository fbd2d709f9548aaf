"""The trainer's architectures: one :class:`Arch` per network, found by name.

``blursynth train --arch NAME`` trains any registered architecture with the same data loader,
schedule, checkpoints, validation, DDP and bf16; ``evaluate``, ``deblur`` and ``export-model``
rebuild the generator from the name and config a run records. DeblurGAN (``deblurgan``, the
default) is defined here; every other architecture lives in ``blursynth/train/arch_<name>.py``
(``-`` in a name is ``_`` in its module name) as a module-level ``ARCH = Arch(...)``, imported
only when the registry is first read, so ``import blursynth`` pays for none of them.

Generators take and give ``(B, 3, H, W)`` images in [-1, 1]. A multi-scale one (DeepDeblur)
takes and may return a list (coarsest first, finest last) in training, and returns only the
finest image in eval mode, from the finest input alone. Every generator has
``receptive_radius() -> int`` (the px beyond which an input pixel cannot change an output
pixel: the tile halo) and may set ``multiple`` (the side every input must be a multiple of;
4 when not set).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

from ..errors import SettingError

#: How tiled inference stays equal to whole-image inference (``Arch.tiling``):
#: ``local``: no layer looks past its receptive field, a halo is enough;
#: ``global-stats``: InstanceNorm2d statistics and AdaptiveAvgPool2d(1) means (NAFNet's
#: channel attention) are gathered over the whole image first, then frozen for the tiles
#: (``--norm-stats global``); ``whole``: the network cannot be tiled exactly (run whole).
TILING = ("local", "global-stats", "whole")

#: (crop, batch size) per config when an Arch gives none: DeblurGAN's.
CROP_BATCH = {"paper": (256, 1), "small": (64, 4)}


@dataclass(frozen=True)
class Arch:
    """One architecture of the trainer.

    Attributes
    ----------
    name : str
        ``--arch`` value, lower case with ``-``.
    configs : dict[str, dict]
        Config name (``small``, ``paper``, more allowed) -> the sizes ``build`` takes. Each dict
        is JSON-serialisable and holds its own ``"name"``; it is recorded in run.json and the
        checkpoint (``model_config``) and given back to ``build`` to rebuild the generator.
    build : callable
        ``build(config: dict, seed: int, **build_options) -> (generator, critic or None)``,
        initialised from ``seed`` without touching torch's global RNG (fork it around layer
        constructors), on the CPU.
    update : type
        An :class:`~blursynth.train.trainer.UpdateBase` subclass:
        ``update(generator, critic, content, *, lr, critic_steps, content_weight, seed, rank,
        amp, **update_options)`` with ``step(blurred, sharp) -> dict`` (keys ``loss_columns``,
        NaN where not run), ``set_lr``, ``state_dict``, ``load_state_dict(state, rank=)``,
        ``rng_state``.
    loss_columns : tuple[str, ...]
        The losses ``step`` returns, in metrics.csv order (``loss_content`` among them: the
        progress bar shows it).
    tiling : str
        One of :data:`TILING`.
    has_critic : bool
        False: ``build`` returns no critic and ``--critic-steps`` must be 0.
    defaults : dict
        This architecture's defaults of ``TrainSettings`` fields left unset (``lr``,
        ``critic_steps``, ``content_weight``, ``perceptual``); DeblurGAN's where not given.
    config_defaults : dict[str, dict]
        Config name -> defaults of that config that differ from ``defaults`` (see
        :meth:`default`).
    crop_batch : dict[str, tuple[int, int]]
        (crop, batch size) per config when ``--crop``/``--batch-size`` are not given.
    build_options, update_options : tuple[str, ...]
        ``TrainSettings`` fields passed by keyword to ``build`` / ``update``.
    schedule : callable or None
        ``schedule(step, total, base_lr) -> lr``; None: DeblurGAN's
        (:func:`~blursynth.train.trainer.lr_at`).
    zero_init : callable or None
        ``zero_init(generator)`` makes an untrained generator return its input
        (``--init identity``); None: the architecture refuses ``--init identity``.
    content : callable or None
        ``content(perceptual, vgg_weights, config) -> (loss module, info dict)`` (``config``: the
        run's config dict, for a loss that differs by config); None: the trainer's
        (``--perceptual vgg|none``, :func:`~blursynth.train.losses.build_content_loss`).
    overrides : tuple[str, ...]
        Config keys the command line may change (``--dropout``: ``dropout``, ``--width``:
        ``width``).
    summary : str
        One line for ``--help`` and the README.
    multiple : int or callable
        The side training crops and tile corners must be a multiple of (an int, or
        ``multiple(config) -> int``); the generator's ``multiple`` attribute says the same.
    resume_refusal : callable or None
        ``resume_refusal(checkpoint) -> str or None``: why ``train --resume`` cannot continue a
        checkpoint of this architecture (a layout its generator does not share has changed since
        it was written), or None.
    """

    name: str
    configs: dict
    build: Callable
    update: type
    loss_columns: tuple
    tiling: str = "local"
    has_critic: bool = True
    defaults: dict = field(default_factory=dict)
    config_defaults: dict = field(default_factory=dict)
    crop_batch: dict = field(default_factory=lambda: dict(CROP_BATCH))
    build_options: tuple = ()
    update_options: tuple = ()
    schedule: Callable | None = None
    zero_init: Callable | None = None
    content: Callable | None = None
    overrides: tuple = ()
    summary: str = ""
    multiple: object = 4  # int, or multiple(config) -> int
    resume_refusal: Callable | None = None


    def __post_init__(self):
        if self.tiling not in TILING:
            raise ValueError(f"Arch {self.name}: tiling must be one of {TILING}; "
                             f"got {self.tiling!r}.")
        for name, cfg in self.configs.items():
            if cfg.get("name") != name:
                raise ValueError(f"Arch {self.name}: config {name!r} must hold name={name!r}.")

    def lr_at(self, step: int, total: int, base: float) -> float:
        """The learning rate at ``step`` of ``total`` (this architecture's schedule)."""
        if self.schedule is None:
            from .trainer import lr_at

            return lr_at(step, total, base)
        return self.schedule(step, total, base)

    def default(self, name: str, config: str, fallback=None):
        """The default of ``TrainSettings`` field ``name`` for config ``config``: the config's
        own (``config_defaults``), else the architecture's (``defaults``), else ``fallback``."""
        return self.config_defaults.get(config, {}).get(name, self.defaults.get(name, fallback))

    def content_loss(self, perceptual: str, vgg_weights, config: dict | None = None):
        """``(loss module, info dict)``: the content loss of a run of ``config`` (see
        ``content``)."""
        if self.content is None:
            from .losses import build_content_loss

            return build_content_loss(perceptual, vgg_weights)
        return self.content(perceptual, vgg_weights, config)

    def config(self, name: str, **overrides) -> dict:
        """Config ``name`` with the given keys replaced (None values are ignored)."""
        if name not in self.configs:
            raise SettingError(f"--config must be one of {', '.join(self.configs)} for --arch "
                               f"{self.name}; got {name!r}.", "config")
        cfg = dict(self.configs[name])
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in self.overrides:
                raise SettingError(f"--{key.replace('_', '-')} does not apply to --arch "
                                   f"{self.name}; leave it out or choose another --arch.", key)
            cfg[key] = value
        return cfg

    def multiple_of(self, config: dict) -> int:
        """The side every input (training crop, tile corner) must be a multiple of."""
        return int(self.multiple(config) if callable(self.multiple) else self.multiple)

    def build_generator(self, config: dict, **build_options):
        """The generator alone, rebuilt from a recorded ``config`` (weights to be loaded)."""
        return self.build(dict(config), 0, **build_options)[0]


def _deblurgan_build(config: dict, seed: int):
    from .models import ModelConfig, build_models

    return build_models(ModelConfig(**config), seed=seed)


def _deblurgan_zero_init(generator) -> None:
    from .models import zero_last_conv

    zero_last_conv(generator)


def _deblurgan_configs() -> dict:
    from .models import CONFIGS

    return {name: cfg.to_dict() for name, cfg in CONFIGS.items()}


def _deblurgan_update():
    from .trainer import Trainer

    return Trainer


#: Columns of DeblurGAN's losses (metrics.csv order).
DEBLURGAN_LOSSES = ("loss_d", "wasserstein", "gp", "loss_g", "loss_adv", "loss_content")


def _make_deblurgan() -> Arch:
    return Arch(
        name="deblurgan", configs=_deblurgan_configs(), build=_deblurgan_build,
        update=_deblurgan_update(), loss_columns=DEBLURGAN_LOSSES,
        tiling="global-stats", has_critic=True,
        defaults={"lr": 1e-4, "critic_steps": 5, "content_weight": 100.0, "perceptual": "vgg"},
        update_options=("gp_weight",), zero_init=_deblurgan_zero_init,
        overrides=("dropout",),
        summary="DeblurGAN (Kupyn et al., CVPR 2018): ResNet generator with a global skip, "
                "PatchGAN WGAN-GP critic, perceptual content loss.")


class _Registry(Mapping):
    """``ARCHS``: name -> :class:`Arch`, filled on first read from this module's DeblurGAN and
    every ``blursynth/train/arch_*.py`` module's ``ARCH``."""

    def __init__(self):
        self._archs = None

    def _load(self) -> dict:
        if self._archs is None:
            archs = {"deblurgan": _make_deblurgan()}
            from . import __path__ as package_path

            for info in sorted(pkgutil.iter_modules(package_path), key=lambda m: m.name):
                if not info.name.startswith("arch_"):
                    continue
                module = importlib.import_module(f"{__package__}.{info.name}")
                arch = getattr(module, "ARCH", None)
                if not isinstance(arch, Arch):
                    raise TypeError(f"{module.__name__} must define ARCH = Arch(...).")
                if arch.name in archs:
                    raise ValueError(f"two architectures are named {arch.name!r}.")
                archs[arch.name] = arch
            self._archs = archs
        return self._archs

    def __getitem__(self, name):
        return self._load()[name]

    def __iter__(self):
        return iter(self._load())

    def __len__(self):
        return len(self._load())


#: Every architecture by name (``deblurgan`` first, then the others alphabetically).
ARCHS = _Registry()

#: The architecture of runs that record none (every run before ``--arch``).
DEFAULT_ARCH = "deblurgan"


def get_arch(name: str) -> Arch:
    """The architecture called ``name``.

    Raises
    ------
    SettingError
        Unknown name (the message lists the known ones).

    Examples
    --------
    >>> get_arch("deblurgan").loss_columns[-1]
    'loss_content'
    """
    try:
        return ARCHS[name]
    except KeyError:
        raise SettingError(f"--arch must be one of {', '.join(ARCHS)}; got {name!r}.",
                           "arch") from None


def run_arch(record: dict) -> Arch:
    """The architecture a checkpoint or run.json records (``deblurgan`` for older runs)."""
    return get_arch(record.get("arch") or DEFAULT_ARCH)
