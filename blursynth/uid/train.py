"""The UID training run: settings, the update step, checkpoints.

Its run folder is the other trainers' (:mod:`blursynth.nn.runs`): an atomically replaced
``checkpoint.pt`` that ``--resume`` continues bit for bit, ``run.json``, ``metrics.csv``,
``model.json`` and periodic sample sheets; the data are BGAN's unpaired sets and patches
(:mod:`blursynth.bgan.data`) and the VGG19 policy is the trainer's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .._rng import sample_rng
from ..bgan.data import STREAM_REAL, STREAM_SHARP, UnpairedPatches
from ..bgan.unpaired import UnpairedPlan, check_unpaired_settings, open_unpaired_run
from ..errors import BadInputError, SettingError
from ..nn import runs
from ..nn.runs import METRICS_CSV
from .losses import UIDWeights, critic_loss, generator_loss, kl_divergence
from .model import CONFIGS, DOWNSAMPLE, MODEL_FORMAT, MODEL_JSON, MODEL_VERSION, RUN_KIND, \
    SAMPLES_DIR, UIDConfig, UIDNets, build_uid, model_fingerprint

#: The reparameterisation noise of run sample k (two codes: the real blurred image's and,
#: in the cycle, its transferred blur's). BGAN's data use streams 11-13.
STREAM_EPS = 14
METRIC_COLUMNS = ("step", "lr", "loss_d", "loss_g", "loss_adversarial", "loss_kl", "loss_cycle",
                  "loss_perceptual", "seconds")
#: Self-reconstruction weight of each config when ``--self-reconstruction-weight`` is not given:
#: ``paper`` keeps the paper's losses; ``small`` needs the term for its code to carry the blur
#: (docs/algorithms.md, UID).
SELF_RECONSTRUCTION = {"small": 10.0}
SHEET_LABELS = ("sharp", "transferred blur", "real blurred (its code)", "deblurred")


def metric_columns(weights: UIDWeights) -> tuple:
    """The metrics.csv columns: the self-reconstruction loss's only when the run uses it.

    Examples
    --------
    >>> metric_columns(UIDWeights())[-2:]
    ('loss_perceptual', 'seconds')
    >>> metric_columns(UIDWeights(self_reconstruction=10.0))[-2:]
    ('loss_self_reconstruction', 'seconds')
    """
    if not weights.self_reconstruction:
        return METRIC_COLUMNS
    return METRIC_COLUMNS[:-1] + ("loss_self_reconstruction", "seconds")


@dataclass(frozen=True)
class UIDTrainSettings:
    """Everything a UID training run needs; built by ``blursynth uid train``.

    ``sharp`` and ``real_blur`` are folders of images or pair datasets (their sharp and blurred
    images respectively), unpaired. Loss weights left as None take the paper's
    (:class:`blursynth.uid.losses.UIDWeights`), but for the self-reconstruction term, whose
    default is the config's (:data:`SELF_RECONSTRUCTION`); ``code_gain`` None is the config's.
    """

    sharp: str
    real_blur: str
    out: str
    steps: int
    config: str = "paper"
    width: int | None = None
    z_dim: int | None = None
    code_gain: float | None = None
    patch: int = 128
    batch_size: int = 4
    lr: float = 2e-4
    adversarial_weight: float | None = None
    kl_weight: float | None = None
    cycle_weight: float | None = None
    perceptual_weight: float | None = None
    self_reconstruction_weight: float | None = None
    perceptual: str = "vgg"
    vgg_weights: str | None = None
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    sample_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 10
    max_seconds: float | None = None
    resume: bool = False
    progress: bool = True
    verify: bool = True  # hash a pair dataset's shards against its manifest (--no-verify)

    def model_config(self) -> UIDConfig:
        if self.config not in CONFIGS:
            raise SettingError(f"--config must be one of {sorted(CONFIGS)}; got {self.config!r}.", "config")
        for name, v in (("--width", self.width), ("--z-dim", self.z_dim)):
            if v is not None and v < 1:
                raise SettingError(f"{name} must be at least 1; got {v}.", name[2:].replace("-", "_"))
        g = self.code_gain
        if g is not None and not (isinstance(g, (int, float)) and 0 <= g < 1e6):
            raise SettingError(f"--code-gain must be a number with 0 <= g < 1e6 (0: none); got {g}.", "code_gain")
        return CONFIGS[self.config].with_sizes(width=self.width, z_dim=self.z_dim,
                                               code_gain=g)

    def loss_weights(self) -> UIDWeights:
        paper = UIDWeights()
        given = {"adversarial": self.adversarial_weight, "kl": self.kl_weight,
                 "cycle": self.cycle_weight, "perceptual": self.perceptual_weight,
                 "self_reconstruction": self.self_reconstruction_weight}
        values = {k: getattr(paper, k) if v is None else v for k, v in given.items()}
        if self.self_reconstruction_weight is None:
            values["self_reconstruction"] = SELF_RECONSTRUCTION.get(self.config, 0.0)
        for k, v in values.items():
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                option = k.replace("_", "-")
                raise SettingError(f"--{option}-weight must be a finite number >= 0; got {v}.", f"{k}_weight")
        if values["adversarial"] == 0 and values["cycle"] == 0:
            raise BadInputError("--adversarial-weight 0 and --cycle-weight 0 leave nothing that "
                                "ties the two domains together; give one a positive weight.")
        return UIDWeights(**values)

    def recipe(self) -> dict:
        """The settings a resumed run must share with the run it continues."""
        return {
            "model_config": self.model_config().to_dict(), "patch": self.patch,
            "batch_size": self.batch_size, "lr": self.lr,
            "loss_weights": self.loss_weights().to_dict(), "perceptual": self.perceptual,
            "seed": self.seed, "sharp": str(Path(self.sharp).resolve()),
            "real_blur": str(Path(self.real_blur).resolve()),
        }


def reparameterise(mu, logvar, eps):
    """A blur code drawn from ``N(mu, exp(logvar))`` as ``mu + exp(logvar / 2) * eps``."""
    return mu + torch.exp(0.5 * logvar) * eps.to(mu)


class UIDTrainer:
    """One UID update per :meth:`step`.

    With ``b`` a real blurred batch and ``s`` a sharp one: the blurred image's content and code
    give its deblurred version ``s_b = G_S(E_B(b))``, and the sharp image's content with
    ``b``'s code gives ``b_s = G_B(E_S(s), z_b)``; translating back, ``G_S(E_B(b_s))`` must
    give ``s`` and ``G_B(E_S(s_b), z(b_s))`` must give ``b`` (the cycle terms, L1). The
    critics score ``b`` against ``b_s`` and ``s`` against ``s_b``; the KL term pulls ``b``'s
    code toward N(0, I), and the perceptual term compares ``s_b`` with ``b``. Both optimisers
    step on gradients of the same forward pass (the critics' loss does not reach the
    generators, nor the reverse). With a self-reconstruction weight, ``G_B(E_B(b), z_b)`` must
    also give ``b`` (L1; DRIT's term, not the paper's).

    Parameters
    ----------
    nets : UIDNets
    perceptual : callable
        ``(deblurred, blurred) -> loss`` on [-1, 1] images.
    weights : UIDWeights
    lr : float
        Adam's learning rate for both optimisers (betas 0.5, 0.999).
    """

    def __init__(self, nets: UIDNets, perceptual, weights: UIDWeights, *, lr=2e-4):
        self.nets, self.perceptual, self.weights = nets, perceptual, weights
        self.g_params = [p for m in nets.generator_modules() for p in m.parameters()]
        self.d_params = [p for m in nets.critic_modules() for p in m.parameters()]
        self.opt_g = torch.optim.Adam(self.g_params, lr=lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.d_params, lr=lr, betas=(0.5, 0.999))

    def losses(self, sharp, blurred, eps):
        """The translated batches and the (differentiable) losses, without stepping.

        ``sharp``, ``blurred``: ``(B, 3, h, w)`` in [-1, 1], h and w multiples of 4;
        ``eps``: ``(B, 2, z_dim)`` from N(0, 1).
        """
        n, w = self.nets, self.weights
        mu, logvar = n.blur_code(blurred)
        z = reparameterise(mu, logvar, eps[:, 0])
        content_b, content_s = n.content(blurred, "blurred"), n.content(sharp, "sharp")
        deblurred = n.make_sharp(content_b)
        transferred = n.make_blurred(content_s, z)
        mu2, logvar2 = n.blur_code(transferred)
        z_back = reparameterise(mu2, logvar2, eps[:, 1])
        back_b = n.make_blurred(n.content(deblurred, "sharp"), z_back)
        back_s = n.make_sharp(n.content(transferred, "blurred"))

        k = blurred.shape[0]
        scores_b = n.critic_blurred(torch.cat([blurred, transferred]))
        scores_s = n.critic_sharp(torch.cat([sharp, deblurred]))
        loss_d = critic_loss(scores_b[:k], scores_b[k:]) + critic_loss(scores_s[:k], scores_s[k:])
        loss_adv = generator_loss(scores_b[k:]) + generator_loss(scores_s[k:])
        loss_kl = kl_divergence(mu, logvar)
        loss_cycle = F.l1_loss(back_b, blurred) + F.l1_loss(back_s, sharp)
        loss_p = self.perceptual(deblurred, blurred) if w.perceptual > 0 \
            else deblurred.new_zeros(())
        loss_g = (w.adversarial * loss_adv + w.kl * loss_kl + w.cycle * loss_cycle
                  + w.perceptual * loss_p)
        images = {"transferred": transferred, "deblurred": deblurred}
        out = {"loss_d": loss_d, "loss_g": loss_g, "loss_adversarial": loss_adv,
               "loss_kl": loss_kl, "loss_cycle": loss_cycle, "loss_perceptual": loss_p}
        if w.self_reconstruction > 0:
            # The blurred image from its own content and code (the paper's losses never ask it).
            loss_sr = F.l1_loss(n.make_blurred(content_b, z), blurred)
            out["loss_self_reconstruction"] = loss_sr
            out["loss_g"] = loss_g + w.self_reconstruction * loss_sr
        return images, out

    def step(self, sharp, blurred, eps):
        """One update of all networks; returns the translated batches and the losses (floats)."""
        self.nets.train()
        images, out = self.losses(sharp, blurred, eps)
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)
        torch.autograd.backward(out["loss_g"], inputs=self.g_params, retain_graph=True)
        torch.autograd.backward(out["loss_d"], inputs=self.d_params)
        self.opt_g.step()
        self.opt_d.step()
        return ({k: v.detach() for k, v in images.items()},
                {k: float(v.detach()) for k, v in out.items()})

    def set_lr(self, lr):
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr

    def state_dict(self) -> dict:
        return {"nets": self.nets.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict()}

    def load_state_dict(self, state) -> None:
        self.nets.load_state_dict(state["nets"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])


def training_eps(seed: int, position: int, z_dim: int):
    """The reparameterisation noise of run sample ``position``: (2, z_dim) float32 N(0, 1)."""
    rng = sample_rng(seed, position, STREAM_EPS)
    return rng.standard_normal((2, z_dim)).astype(np.float32)


class UIDPatches(UnpairedPatches):
    """Run sample ``k`` -> (sharp patch, real blurred patch, eps): BGAN's patches (the same
    draws, a pure function of (seed, k)), with :func:`training_eps` in place of its noise."""

    def __init__(self, sharp, real, *, seed: int, patch: int, z_dim: int):
        super().__init__(sharp, real, seed=seed, patch=patch)
        self.z_dim = int(z_dim)

    def __getitem__(self, position):
        from ..train.data import to_tensor

        s = self._draw(self.sharp, position, STREAM_SHARP)
        r = self._draw(self.real, position, STREAM_REAL)
        return to_tensor(s), to_tensor(r), torch.from_numpy(training_eps(self.seed, position,
                                                                         self.z_dim))


# --------------------------------------------------------------------------------------------
# the run: plan -> build -> loop, as BGAN's


@dataclass(frozen=True)
class UIDPlan(UnpairedPlan):
    """A checked UID run: what :func:`plan_training` found; nothing has been written yet."""


def plan_training(settings: UIDTrainSettings) -> UIDPlan:
    """Check every input of a run (settings, image sets, VGG file, the --out folder, a
    checkpoint to resume) and open its data; nothing is written."""
    return open_unpaired_run(UIDPlan, settings, RUN_KIND, _patch_problem)


def check_settings(settings: UIDTrainSettings) -> None:
    """The run's numbers, checked before anything is read (a :class:`SettingError` names the field)."""
    check_unpaired_settings(settings, _patch_problem)


def _patch_problem(patch):
    if patch < 16 or patch % DOWNSAMPLE:
        return f"--patch must be a multiple of {DOWNSAMPLE} of at least 16 px; got {patch}."
    return None


@dataclass
class UIDParts:
    """What :func:`build_training` made: the trainer and the steps done before."""

    trainer: UIDTrainer
    start: int


def build_training(plan: UIDPlan) -> UIDParts:
    """Build the networks (on the device) and restore the checkpoint; nothing is written."""
    nets = build_uid(plan.config, seed=int(plan.settings.seed)).to(plan.device)
    trainer = UIDTrainer(nets, plan.perceptual.to(plan.device), plan.weights, lr=plan.settings.lr)
    start = 0
    if plan.checkpoint is not None:
        trainer.load_state_dict(plan.checkpoint)
        start = int(plan.checkpoint["step"])
    return UIDParts(trainer=trainer, start=start)


def _save(plan: UIDPlan, parts: UIDParts, metrics: runs.MetricsLog, step: int) -> None:
    """The checkpoint, ``model.json`` (what ``uid blur`` and ``uid deblur`` report) and the
    metrics."""
    from ..bgan.unpaired import save_model

    save_model(plan, parts.trainer.state_dict(), {}, model_fingerprint(parts.trainer.nets),
               metrics, step, model_format=MODEL_FORMAT, model_version=MODEL_VERSION,
               model_json=MODEL_JSON)


def run_training(plan: UIDPlan, parts: UIDParts) -> dict:
    """Train from ``parts.start`` to the settings' steps (or their time limit): log, sample
    and checkpoint as the settings say, making the model folder first."""
    total = int(plan.settings.steps)
    if parts.start >= total:
        return {"steps": parts.start, "total_steps": total, "out": str(plan.out), "last": {},
                "fingerprint": model_fingerprint(parts.trainer.nets), "stopped": "done"}
    with runs.writing_run(plan.out, RUN_KIND, stamp=plan.stamp, start=parts.start,
                          sheets=(SAMPLES_DIR,)):
        return _train_steps(plan, parts)


def _train_steps(plan: UIDPlan, parts: UIDParts) -> dict:
    """:func:`run_training`'s steps, in the held model folder."""
    from ..bgan.unpaired import patch_loader, run_steps, start_run_files
    from ..train.models import to_model_range

    settings, device, out = plan.settings, plan.device, plan.out
    trainer, start = parts.trainer, parts.start
    total = int(settings.steps)
    metrics = start_run_files(plan, METRICS_CSV, metric_columns(plan.weights), start,
                              SAMPLES_DIR)
    dataset_ = UIDPatches(plan.sharp, plan.real, seed=int(settings.seed), patch=settings.patch,
                          z_dim=plan.config.z_dim)
    loader = patch_loader(dataset_, settings, start, total, device)

    def one_step(batch):
        s01, b01, eps = batch
        sharp, blurred = to_model_range(s01.to(device)), to_model_range(b01.to(device))
        images, losses = trainer.step(sharp, blurred, eps.to(device))
        return settings.lr, losses, (sharp, images["transferred"], blurred, images["deblurred"])

    step, losses, stopped, t0 = run_steps(
        plan, start, loader, metrics, desc="uid train", sheets_dir=SAMPLES_DIR,
        one_step=one_step, save=lambda step: _save(plan, parts, metrics, step),
        postfix=lambda losses: {"d": f"{losses['loss_d']:.3g}", "g": f"{losses['loss_g']:.3g}",
                                "cyc": f"{losses['loss_cycle']:.3g}"},
        sheet_labels=SHEET_LABELS)
    return {"steps": step, "total_steps": total, "out": str(out), "last": losses,
            "fingerprint": model_fingerprint(trainer.nets), "stopped": stopped,
            "perceptual": plan.perceptual_info, "n_sharp": len(plan.sharp),
            "n_real_blur": len(plan.real), "seconds": time.perf_counter() - t0}


def train_uid(settings: UIDTrainSettings) -> dict:
    """Train UID as ``settings`` says; write the model, metrics and sample sheets to ``out``.

    Everything that can be wrong with the input (the image sets, patch size, VGG file, an
    existing run or a checkpoint of other settings) is checked before anything is written.

    Returns
    -------
    summary : dict
        ``steps`` done, ``total_steps``, ``out``, ``last`` (losses), ``fingerprint`` of the
        model, ``stopped`` (``"done"`` or ``"time"``).

    Examples
    --------
    >>> s = UIDTrainSettings(sharp="faces/", real_blur="blurry/", out="model/", steps=10,
    ...                      config="tiny", patch=32, perceptual="none")   # doctest: +SKIP
    >>> train_uid(s)["steps"]                                              # doctest: +SKIP
    10
    """
    plan = plan_training(settings)
    return run_training(plan, build_training(plan))
