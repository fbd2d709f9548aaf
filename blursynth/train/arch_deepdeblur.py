"""``--arch deepdeblur`` (Nah et al., CVPR 2017): the 3-scale generator, the multi-scale content
loss (Eq. 2) plus 1e-4 x the adversarial loss, Adam at 5e-5 dropped tenfold for the last third.

The networks are :mod:`blursynth.nn.deepdeblur`. The paper's content loss is MSE at every
scale; it has no perceptual term, so ``--perceptual vgg`` is refused.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..errors import SettingError
from .archs import Arch
from .trainer import UpdateBase, unwrap

#: L_total = L_cont + lambda x L_adv, lambda = 1e-4 (the paper's section 4.2).
ADV_WEIGHT = 1e-4

LOSS_COLUMNS = ("loss_d", "loss_g", "loss_adv", "loss_content")


def build(config: dict, seed: int):
    from ..nn.deepdeblur import DeepDeblurConfig, build_deepdeblur

    return build_deepdeblur(DeepDeblurConfig(**config), seed=seed)


def schedule(step: int, total: int, base: float) -> float:
    """The paper's: ``base`` for the first 3e5 of 4.5e5 iterations, then ``base / 10``
    (here the same fractions of the run: two thirds, then a tenth).

    Examples
    --------
    >>> [schedule(s, 9, 1.0) for s in (0, 5, 6, 8)]
    [1.0, 1.0, 0.1, 0.1]
    """
    return base if step < total * 2 / 3 else base * 0.1


class MultiScaleContent(torch.nn.Module):
    """The paper's Eq. (2) over lists of outputs and targets, coarsest first."""

    def forward(self, outputs, targets):
        from ..nn.deepdeblur import multiscale_content_loss

        return multiscale_content_loss(outputs, targets)


def content(perceptual, vgg_weights, config=None):
    if perceptual != "none":
        raise SettingError(f"--perceptual {perceptual}: --arch deepdeblur's content loss is the "
                           f"paper's multi-scale MSE; leave --perceptual out (or pass none).",
                           "perceptual")
    return MultiScaleContent(), {"kind": "multiscale-mse"}


class DeepDeblurUpdate(UpdateBase):
    """``critic_steps`` discriminator updates (cross-entropy of the finest output against the
    sharp image), then one generator update on ``content_weight x L_cont + 1e-4 x L_adv``.

    The pyramid both are trained on is :func:`blursynth.nn.deepdeblur.image_pyramid` (the
    Gaussian pyramid the generator builds for itself at inference), made here from the pair
    the loader gives.
    """

    BETAS = (0.9, 0.999)  # the paper's beta_1, beta_2
    RNG_NAMES = ()

    def step(self, blurred, sharp) -> dict:
        from ..nn.deepdeblur import image_pyramid

        levels = unwrap(self.g).config.scales
        blurred, targets = image_pyramid(blurred, levels), image_pyramid(sharp, levels)
        self.g.train()
        self.d.train()
        with self._autocast():
            outputs = self.g(blurred)
        nan = float("nan")
        if self.critic_steps == 0:
            loss_g, loss_content = self.content_step(outputs, targets)
            return {"loss_d": nan, "loss_g": loss_g.item(), "loss_adv": nan,
                    "loss_content": loss_content.item()}
        b = sharp.shape[0]
        fake_d = outputs[-1].detach()
        labels = torch.cat([torch.ones(b, device=sharp.device),
                            torch.zeros(b, device=sharp.device)])
        # The critic runs in fp32 even under bf16: on the CPU (torch 2.13, oneDNN) the bf16
        # weight gradient of its stride-4 5x5 conv over a 4x4 map came out NaN at random, one
        # step in several from identical inputs. It is the smaller network, so little is lost.
        fp32 = torch.autocast(device_type=self.device.type, enabled=False)
        for _ in range(self.critic_steps):
            self.opt_d.zero_grad(set_to_none=True)
            with fp32:
                logits = self.d(torch.cat([sharp, fake_d]).float())
                # log D(S) + log(1 - D(G(B))), maximised: the mean of both cross-entropies
                # (over every logit of a crop larger than 256 px, as the release averages them).
                loss_d = 2 * F.binary_cross_entropy_with_logits(
                    logits, labels[:, None].expand_as(logits))
            loss_d.backward()
            self.opt_d.step()
        self.opt_g.zero_grad(set_to_none=True)
        with fp32:
            logits = unwrap(self.d)(outputs[-1].float())
            # The generator maximises log D(G(B)) (the usual non-saturating form of the
            # paper's min over log(1 - D(G(B)))).
            loss_adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        with self._autocast():
            loss_content = self.content(outputs, targets)
            loss_g = self.content_weight * loss_content + ADV_WEIGHT * loss_adv
        torch.autograd.backward(loss_g, inputs=self.g_params)
        self.opt_g.step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "loss_adv": loss_adv.item(),
                "loss_content": loss_content.item()}


def resume_refusal(ckpt):
    """Checkpoints whose critic is the layout used before the authors' release was followed
    (its ``features`` convs with biases, a 512 -> 512 5x5 conv and a linear ``fc``): the
    generator is the same, the critic and its optimiser state cannot be loaded.

    Examples
    --------
    >>> resume_refusal({"critic": {"fc.weight": None}})[:40]
    "its critic is DeepDeblur's earlier discr"
    >>> resume_refusal({"critic": {"features.0.weight": None}}) is None
    True
    """
    if "fc.weight" in (ckpt.get("critic") or {}):
        return ("its critic is DeepDeblur's earlier discriminator (a 512 -> 512 5x5 conv and a "
                "linear layer), not the authors' released one this blursynth trains")
    return None


def _configs():
    from ..nn.deepdeblur import CONFIGS

    return {name: cfg.to_dict() for name, cfg in CONFIGS.items()}


ARCH = Arch(
    name="deepdeblur", configs=_configs(), build=build, update=DeepDeblurUpdate,
    loss_columns=LOSS_COLUMNS, tiling="local", has_critic=True,
    defaults={"lr": 5e-5, "critic_steps": 1, "content_weight": 1.0, "perceptual": "none"},
    crop_batch={"paper": (256, 2), "small": (64, 4)},
    schedule=schedule, zero_init=None, content=content,
    summary="DeepDeblur (Nah et al., CVPR 2017): 3 scales of 19 ResBlocks without batch norm, "
            "up-convolutions between scales, multi-scale MSE + 1e-4 adversarial.",
    multiple=lambda config: 2 ** (int(config.get("scales", 3)) - 1),
    resume_refusal=resume_refusal)
