"""``--arch deblurgan-v2`` (Kupyn et al., ICCV 2019): FPN-MobileNet generator, double-scale
RaLSGAN discriminator, content loss 0.5 x pixel MSE + 0.006 x perceptual, adversarial 0.01.

The networks are :mod:`blursynth.nn.fpn`; ``--backbone-weights`` loads torchvision's ImageNet
MobileNet-V2 file into the backbone (``--config paper`` only), else it trains from scratch
(run.json's settings record which).
"""

from __future__ import annotations

import torch

from .archs import Arch
from .trainer import UpdateBase, unwrap

#: The paper's generator loss: L_G = 0.5 L_p (MSE) + 0.006 L_X (perceptual) + 0.01 L_adv.
PIXEL_WEIGHT, PERCEPTUAL_WEIGHT, ADV_WEIGHT = 0.5, 0.006, 0.01

LOSS_COLUMNS = ("loss_d", "loss_g", "loss_adv", "loss_content")


def build(config: dict, seed: int, backbone_weights=None):
    """Generator and discriminator from ``seed``; the backbone from ``backbone_weights``."""
    from ..nn.fpn import FPNConfig, build_fpn
    from ..nn.mobilenetv2 import load_backbone_weights

    gen, disc = build_fpn(FPNConfig(**config), seed=seed)
    if backbone_weights is not None:
        load_backbone_weights(gen.backbone, backbone_weights)
    return gen, disc


def zero_init(generator) -> None:
    """Zero the last conv: tanh(0) = 0, so the untrained generator returns its input."""
    torch.nn.init.zeros_(generator.final.weight)
    torch.nn.init.zeros_(generator.final.bias)


def content(perceptual, vgg_weights):
    from .losses import build_pixel_perceptual_loss

    return build_pixel_perceptual_loss(perceptual, vgg_weights, PIXEL_WEIGHT, PERCEPTUAL_WEIGHT)


class FPNUpdate(UpdateBase):
    """``critic_steps`` discriminator updates (RaLSGAN on both scales, averaged), then one
    generator update on ``content_weight x content + 0.01 x adversarial``.

    Nothing in a step is random (no dropout, no penalty), so it keeps no torch generators.
    """

    BETAS = (0.9, 0.999)  # the paper names Adam without its betas: torch's defaults
    RNG_NAMES = ()

    def step(self, blurred, sharp) -> dict:
        from ..nn.fpn import ralsgan_critic_loss, ralsgan_generator_loss

        self.g.train()
        self.d.train()
        with self._autocast():
            fake = self.g(blurred)
        nan = float("nan")
        if self.critic_steps == 0:
            loss_g, loss_content = self.content_step(fake, sharp)
            return {"loss_d": nan, "loss_g": loss_g.item(), "loss_adv": nan,
                    "loss_content": loss_content.item()}
        b = sharp.shape[0]
        fake_d = fake.detach()
        for _ in range(self.critic_steps):
            self.opt_d.zero_grad(set_to_none=True)
            with self._autocast():
                # One forward over real and generated (InstanceNorm is per sample): one DDP
                # forward per backward.
                scores = self.d(torch.cat([sharp, fake_d]))
                loss_d = sum(ralsgan_critic_loss(s[:b], s[b:]) for s in scores) / len(scores)
            loss_d.backward()
            self.opt_d.step()
        self.opt_g.zero_grad(set_to_none=True)
        disc = unwrap(self.d)
        with self._autocast():
            with torch.no_grad():
                real_scores = disc(sharp)
            fake_scores = disc(fake)
            loss_adv = sum(ralsgan_generator_loss(r, f)
                           for r, f in zip(real_scores, fake_scores)) / len(fake_scores)
            loss_content = self.content(fake, sharp)
            loss_g = self.content_weight * loss_content + ADV_WEIGHT * loss_adv
        torch.autograd.backward(loss_g, inputs=self.g_params)
        self.opt_g.step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "loss_adv": loss_adv.item(),
                "loss_content": loss_content.item()}


def _configs():
    from ..nn.fpn import CONFIGS

    return {name: cfg.to_dict() for name, cfg in CONFIGS.items()}


ARCH = Arch(
    name="deblurgan-v2", configs=_configs(), build=build, update=FPNUpdate,
    loss_columns=LOSS_COLUMNS, tiling="global-stats", has_critic=True,
    defaults={"lr": 1e-4, "critic_steps": 1, "content_weight": 1.0, "perceptual": "vgg"},
    crop_batch={"paper": (256, 1), "small": (64, 4)},
    build_options=("backbone_weights",), zero_init=zero_init, content=content,
    summary="DeblurGAN-v2 (Kupyn et al., ICCV 2019): FPN on MobileNet-V2, double-scale "
            "RaLSGAN discriminator, 0.5 MSE + 0.006 perceptual + 0.01 adversarial.",
    multiple=32)
