"""``--arch nafnet``: NAFNet (Chen et al., ECCV 2022) trained as published: the PSNR loss alone (no
critic), Adam with betas (0.9, 0.9) and no weight decay, learning rate 1e-3 falling to a thousandth
of it (1e-6) by cosine annealing over the run, crops flipped and rotated (``--rotate``; ``use_flip``
and ``use_rot`` in its GoPro training options). The ``small`` config trains on the L1 of the pixels
(its ``loss`` key) plus MIMO-UNet's frequency term (``--fft-weight 1``) at twice the paper's rate:
in CPU minutes on the quality benchmark's pairs the PSNR loss, which weighs each image by one over
its own error, gave less (docs/algorithms.md)."""

from __future__ import annotations

import math

from ..errors import BadInputError
from .archs import Arch
from .trainer import UpdateBase

#: Config dicts (recorded in run.json): the network's sizes (blursynth/nn/nafnet.py says what
#: the keys mean) and ``loss``, the content loss where it is not the paper's ``psnr`` (absent in
#: the paper config, so its runs record the same config as before the key and still resume).
CONFIGS = {
    "paper": {"name": "paper", "width": 64, "enc_blocks": [1, 1, 1, 28], "middle_blocks": 1,
              "dec_blocks": [1, 1, 1, 1]},
    "small": {"name": "small", "width": 16, "enc_blocks": [1, 1, 2], "middle_blocks": 2,
              "dec_blocks": [1, 1, 1], "loss": "l1"},
}
#: ``loss`` values: the paper's PSNR loss, or the L1 of the pixels.
LOSSES = ("psnr", "l1")


def network_config(config: dict):
    """The :class:`~blursynth.nn.nafnet.NAFNetConfig` of a config dict (its sizes)."""
    from ..nn.nafnet import NAFNetConfig

    return NAFNetConfig(**{k: v for k, v in config.items() if k != "loss"})


def build(config: dict, seed: int):
    from ..nn.nafnet import build_nafnet

    return build_nafnet(network_config(config), seed=seed), None


def cosine_lr(step: int, total: int, base: float) -> float:
    """Cosine annealing from ``base`` at step 0 to ``base / 1000`` at ``total`` (the paper's
    1e-3 -> 1e-6).

    Examples
    --------
    >>> [round(cosine_lr(s, 10, 1e-3), 7) for s in (0, 5, 10)]
    [0.001, 0.0005005, 1e-06]
    """
    low = base / 1000
    t = min(max(step / max(total, 1), 0.0), 1.0)
    return low + (base - low) * (1 + math.cos(math.pi * t)) / 2


def content(perceptual: str, vgg_weights=None, config=None):
    """NAFNet's content loss, the config's ``loss``: minus the PSNR (the paper's; also for a
    config without the key) or the L1 of the pixels, whatever ``--perceptual`` would give
    DeblurGAN; ``--perceptual vgg`` is refused rather than ignored."""
    from ..nn.nafnet import PSNRLoss

    loss = (config or {}).get("loss", "psnr")
    if perceptual == "vgg":
        raise BadInputError(f"--perceptual vgg: --arch nafnet trains on its config's "
                            f"{'PSNR' if loss == 'psnr' else 'L1'} loss; leave --perceptual out.")
    if loss not in LOSSES:
        raise BadInputError(f"nafnet config loss {loss!r}: expected one of {', '.join(LOSSES)}.")
    if loss == "l1":
        from .losses import build_content_loss

        return build_content_loss("none")
    return PSNRLoss(), {"kind": "psnr"}


def zero_init(generator) -> None:
    from .models import zero_last_conv

    zero_last_conv(generator)  # the ending conv: output = input


class NAFNetUpdate(UpdateBase):
    """One generator update on the content loss (``loss_content``: the PSNR loss in dB below
    zero, or the pixels' L1)."""

    BETAS = (0.9, 0.9)
    RNG_NAMES = ("dropout",)  # no critic, no penalty; kept so the state has the same shape

    def step(self, blurred, sharp) -> dict:
        self.g.train()
        with self._autocast():
            fake = self.g(blurred)
        loss_g, loss_content = self.content_step(fake, sharp)
        return {"loss_g": loss_g.item(), "loss_content": loss_content.item()}


ARCH = Arch(
    name="nafnet", configs=CONFIGS, build=build, update=NAFNetUpdate,
    loss_columns=("loss_g", "loss_content"), tiling="global-stats",
    has_critic=False,
    defaults={"lr": 1e-3, "critic_steps": 0, "content_weight": 1.0, "perceptual": "none",
              "rotate": True},
    config_defaults={"small": {"lr": 2e-3, "fft_weight": 1.0}},
    crop_batch={"paper": (256, 32), "small": (64, 4)},
    schedule=cosine_lr, zero_init=zero_init, content=content, overrides=("width",),
    multiple=lambda config: 2 ** len(config["enc_blocks"]),
    summary="NAFNet (Chen et al., ECCV 2022): U-Net of activation-free blocks, PSNR loss (small: "
            "L1), no critic; --width sets its channels.")
