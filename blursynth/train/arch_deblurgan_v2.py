"""``--arch deblurgan-v2`` (Kupyn et al., ICCV 2019): FPN-MobileNet generator, double-scale
RaLSGAN discriminator, content loss 0.5 x pixel MSE + 0.006 x perceptual, adversarial 0.01.

The networks are :mod:`blursynth.nn.fpn`; ``--backbone-weights`` loads torchvision's ImageNet
MobileNet-V2 file into the backbone (``--config paper`` only), or with ``--config
paper-inception`` (the paper's optional Inception-ResNet-v2 backbone) an Inception-ResNet-v2
file named as Cadene's pretrainedmodels; else the backbone trains from scratch (run.json's
settings record which).
"""

from __future__ import annotations

import torch

from .archs import Arch
from .trainer import RelativisticUpdate

#: The paper's generator loss: L_G = 0.5 L_p (MSE) + 0.006 L_X (perceptual) + 0.01 L_adv.
PIXEL_WEIGHT, PERCEPTUAL_WEIGHT, ADV_WEIGHT = 0.5, 0.006, 0.01

LOSS_COLUMNS = ("loss_d", "loss_g", "loss_adv", "loss_content")


def build(config: dict, seed: int, backbone_weights=None):
    """Generator and discriminator from ``seed``; the backbone from ``backbone_weights``."""
    from ..nn.fpn import FPNConfig, build_fpn

    cfg = FPNConfig(**config)
    gen, disc = build_fpn(cfg, seed=seed)
    if backbone_weights is not None:
        if cfg.backbone == "inceptionresnetv2":
            from ..nn.inceptionresnetv2 import load_inception_weights as load
        else:
            from ..nn.mobilenetv2 import load_backbone_weights as load
        load(gen.backbone, backbone_weights)
    return gen, disc


def zero_init(generator) -> None:
    """Zero the last conv: tanh(0) = 0, so the untrained generator returns its input."""
    torch.nn.init.zeros_(generator.final.weight)
    torch.nn.init.zeros_(generator.final.bias)


def content(perceptual, vgg_weights, config=None):
    from .losses import build_pixel_perceptual_loss

    return build_pixel_perceptual_loss(perceptual, vgg_weights, PIXEL_WEIGHT, PERCEPTUAL_WEIGHT)


class FPNUpdate(RelativisticUpdate):
    """``critic_steps`` discriminator updates (RaLSGAN on both scales, averaged), then one
    generator update on ``content_weight x content + 0.01 x adversarial``.

    The paper names Adam without its betas: torch's defaults (the base class's).
    """

    ADV_WEIGHT = ADV_WEIGHT

    @staticmethod
    def critic_loss(real, fake):
        from ..nn.fpn import ralsgan_critic_loss

        return ralsgan_critic_loss(real, fake)

    @staticmethod
    def generator_loss(real, fake):
        from ..nn.fpn import ralsgan_generator_loss

        return ralsgan_generator_loss(real, fake)


def _configs():
    from ..nn.fpn import CONFIGS

    return {name: cfg.to_dict() for name, cfg in CONFIGS.items()}


ARCH = Arch(
    name="deblurgan-v2", configs=_configs(), build=build, update=FPNUpdate,
    loss_columns=LOSS_COLUMNS, tiling="global-stats", has_critic=True,
    defaults={"lr": 1e-4, "critic_steps": 1, "content_weight": 1.0, "perceptual": "vgg"},
    crop_batch={"paper": (256, 1), "paper-inception": (256, 1), "small": (64, 4)},
    build_options=("backbone_weights",), zero_init=zero_init, content=content,
    summary="DeblurGAN-v2 (Kupyn et al., ICCV 2019): FPN on MobileNet-V2, double-scale "
            "RaLSGAN discriminator, 0.5 MSE + 0.006 perceptual + 0.01 adversarial "
            "(--config paper-inception: the Inception-ResNet-v2 backbone).",
    multiple=32)
