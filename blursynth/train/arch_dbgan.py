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
from .trainer import UpdateBase, unwrap

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


def content(perceptual, vgg_weights):
    from .losses import build_pixel_perceptual_loss

    return build_pixel_perceptual_loss(perceptual, vgg_weights, 1.0, PERCEPTUAL_WEIGHT)


class DBGANUpdate(UpdateBase):
    """``critic_steps`` critic updates on the relativistic loss (sharp images real, deblurred
    ones generated), then one generator update on ``content_weight x content + 0.01 x the
    relativistic loss with the roles swapped``."""

    BETAS = (0.9, 0.999)
    RNG_NAMES = ()

    def step(self, blurred, sharp) -> dict:
        from ..bgan.losses import relativistic_critic_loss, relativistic_generator_loss

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
                scores = self.d(torch.cat([sharp, fake_d]))
                loss_d = relativistic_critic_loss(scores[:b], scores[b:])
            loss_d.backward()
            self.opt_d.step()
        self.opt_g.zero_grad(set_to_none=True)
        critic = unwrap(self.d)
        with self._autocast():
            with torch.no_grad():
                real_scores = critic(sharp)
            loss_adv = relativistic_generator_loss(real_scores, critic(fake))
            loss_content = self.content(fake, sharp)
            loss_g = self.content_weight * loss_content + ADV_WEIGHT * loss_adv
        torch.autograd.backward(loss_g, inputs=self.g_params)
        self.opt_g.step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "loss_adv": loss_adv.item(),
                "loss_content": loss_content.item()}


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
