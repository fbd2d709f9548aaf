"""``--arch dbgan`` (Zhang et al., "Deblurring by Realistic Blurring", CVPR 2020): the deblurring
generator and critic of :mod:`blursynth.nn.dbgan`, trained with pixel MSE + 0.005 x perceptual
+ 0.01 x the relativistic loss of :mod:`blursynth.bgan.losses` (sharp against deblurred).

The paper trains it on pairs that BGAN's learned blur made (``bgan train``, ``bgan blur``), with
real pairs mixed in: ``recipes/dbgan.toml``.
"""

from __future__ import annotations

import torch

from ..errors import SettingError
from .archs import Arch
from .trainer import RelativisticUpdate

#: alpha (perceptual) and beta (adversarial); the pixel MSE has weight 1.
PERCEPTUAL_WEIGHT, ADV_WEIGHT = 0.005, 0.01

LOSS_COLUMNS = ("loss_d", "loss_g", "loss_adv", "loss_content")


def build(config: dict, seed: int):
    from ..nn.dbgan import DBGANConfig, build_dbgan

    return build_dbgan(DBGANConfig(**config), seed=seed)


def zero_init(generator) -> None:
    """Zero the last conv; with the image skip the untrained generator returns its input."""
    if not generator.config.image_skip:
        raise SettingError(f"--init identity: dbgan config {generator.config.name!r} has no "
                           f"image skip (the paper's has none); use --config small.", "init")
    last = generator.tail[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)


def content(perceptual, vgg_weights, config=None):
    from .losses import build_pixel_perceptual_loss

    return build_pixel_perceptual_loss(perceptual, vgg_weights, 1.0, PERCEPTUAL_WEIGHT)


class DBGANUpdate(RelativisticUpdate):
    """``critic_steps`` critic updates on the relativistic loss (sharp images real, deblurred
    ones generated), then one generator update on ``content_weight x content + 0.01 x the
    relativistic loss with the roles swapped``."""

    ADV_WEIGHT = ADV_WEIGHT

    @staticmethod
    def critic_loss(real, fake):
        from ..bgan.losses import relativistic_critic_loss

        return relativistic_critic_loss(real, fake)

    @staticmethod
    def generator_loss(real, fake):
        from ..bgan.losses import relativistic_generator_loss

        return relativistic_generator_loss(real, fake)


def _configs():
    from ..nn.dbgan import CONFIGS

    return {name: cfg.to_dict() for name, cfg in CONFIGS.items()}


ARCH = Arch(
    name="dbgan", configs=_configs(), build=build, update=DBGANUpdate,
    loss_columns=LOSS_COLUMNS, tiling="local", has_critic=True,
    defaults={"lr": 1e-4, "critic_steps": 1, "content_weight": 1.0, "perceptual": "vgg"},
    crop_batch={"paper": (128, 4), "small": (64, 4)},
    zero_init=zero_init, content=content,
    summary="DBGAN (Zhang et al., CVPR 2020): 16 residual blocks of five convs, VGG-style "
            "critic, MSE + 0.005 perceptual + 0.01 relativistic loss.",
    multiple=4)
