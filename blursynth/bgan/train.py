"""The BGAN training run: settings, the update step, plateau learning-rate drops, checkpoints.

Its run folder is the DeblurGAN trainer's (:mod:`blursynth.nn.runs`): an atomically replaced
``checkpoint.pt`` that ``--resume`` continues, ``run.json``, ``metrics.csv`` and periodic sample
sheets, plus ``model.json``; the VGG19 policy is the trainer's too.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import BadInputError
from ..nn import runs
from ..nn.runs import CHECKPOINT, METRICS_CSV, RUN_JSON
from .config import MODEL_VERSION
from .losses import ALPHA_WEIGHS, LossWeights, relativistic_critic_loss, \
    relativistic_generator_loss
from .model import CONFIGS, BGANConfig, BlurGenerator, build_bgan, model_fingerprint
from .unpaired import UnpairedPlan, check_unpaired_settings, open_unpaired_run

MODEL_JSON = "model.json"
SAMPLES_DIR = "samples"
MODEL_FORMAT = runs.BGAN_FORMAT
METRIC_COLUMNS = ("step", "lr", "loss_d", "loss_g", "loss_blur", "loss_perceptual",
                  "score_real", "score_fake", "seconds")

#: The BGAN model folder and its checkpoint's messages.
RUN_KIND = runs.model_run_kind(
    "BGAN", format=MODEL_FORMAT, version=MODEL_VERSION, command="bgan train",
    names=(CHECKPOINT, MODEL_JSON, RUN_JSON, METRICS_CSV, SAMPLES_DIR),
    others={runs.DEBLURGAN_FORMAT: "a DeblurGAN training run"})


@dataclass(frozen=True)
class BGANTrainSettings:
    """Everything a BGAN training run needs; built by ``blursynth bgan train``.

    ``sharp`` and ``real_blur`` are folders of images or pair datasets (their sharp and blurred
    images respectively). Loss weights left as None take the paper's (alpha, beta) with alpha
    on the term ``alpha_weighs`` names (see :class:`blursynth.bgan.losses.LossWeights`).
    """

    sharp: str
    real_blur: str
    out: str
    steps: int
    config: str = "paper"
    width: int | None = None
    blocks: int | None = None
    image_skip: bool | None = None
    patch: int = 128
    batch_size: int = 4
    lr: float = 1e-4
    alpha_weighs: str = "perceptual"
    perceptual_weight: float | None = None
    blur_weight: float | None = None
    perceptual: str = "vgg"
    vgg_weights: str | None = None
    plateau_window: int = 1000
    plateau_patience: int = 5
    lr_drop: float = 0.1
    min_lr: float = 1e-6
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

    def model_config(self) -> BGANConfig:
        if self.config not in CONFIGS:
            raise BadInputError(f"--config must be one of {sorted(CONFIGS)}; got "
                                f"{self.config!r}.")
        for name, v in (("--width", self.width), ("--blocks", self.blocks)):
            if v is not None and v < 1:
                raise BadInputError(f"{name} must be at least 1; got {v}.")
        return CONFIGS[self.config].with_sizes(width=self.width, n_blocks=self.blocks,
                                               image_skip=self.image_skip)

    def loss_weights(self) -> LossWeights:
        if self.alpha_weighs not in ALPHA_WEIGHS:
            raise BadInputError(f"--alpha-weighs must be one of {ALPHA_WEIGHS}; got "
                                f"{self.alpha_weighs!r}.")
        w = LossWeights.paper(self.alpha_weighs)
        p = w.perceptual if self.perceptual_weight is None else float(self.perceptual_weight)
        b = w.blur if self.blur_weight is None else float(self.blur_weight)
        for name, v in (("--perceptual-weight", p), ("--blur-weight", b)):
            if not (math.isfinite(v) and v >= 0):
                raise BadInputError(f"{name} must be a finite number >= 0; got {v}.")
        if b == 0:
            raise BadInputError("--blur-weight 0 leaves nothing to learn a blur from; give a "
                                "positive weight.")
        return LossWeights(perceptual=p, blur=b)

    def recipe(self) -> dict:
        """The settings a resumed run must share with the run it continues."""
        return {
            "model_config": self.model_config().to_dict(), "patch": self.patch,
            "batch_size": self.batch_size, "lr": self.lr,
            "loss_weights": asdict(self.loss_weights()), "perceptual": self.perceptual,
            "plateau": [self.plateau_window, self.plateau_patience, self.lr_drop, self.min_lr],
            "seed": self.seed, "sharp": str(Path(self.sharp).resolve()),
            "real_blur": str(Path(self.real_blur).resolve()),
        }


class PlateauDrop:
    """Learning rate that drops by ``factor`` when the windowed loss stops improving.

    The loss is averaged over windows of ``window`` steps; a window whose mean is not below
    ``(1 - threshold)`` times the best mean so far counts as bad, and after ``patience`` bad
    windows in a row the rate is multiplied by ``factor`` (not below ``min_lr``).

    Examples
    --------
    >>> p = PlateauDrop(1e-4, window=2, patience=1, factor=0.1)
    >>> [p.update(x) for x in (5, 5, 4, 4, 4, 4)][-1]   # third window no better: drop
    1e-05
    """

    def __init__(self, lr, *, window, patience, factor=0.1, min_lr=1e-6, threshold=1e-3):
        self.lr, self.window, self.patience = float(lr), int(window), int(patience)
        self.factor, self.min_lr, self.threshold = float(factor), float(min_lr), float(threshold)
        self.best, self.bad, self.sum, self.count, self.drops = math.inf, 0, 0.0, 0, 0

    def update(self, loss: float) -> float:
        """Add one step's loss; return the learning rate for the next step."""
        if math.isfinite(loss):
            self.sum += float(loss)
            self.count += 1
        if self.count >= self.window:
            mean = self.sum / self.count
            self.sum, self.count = 0.0, 0
            margin = self.threshold * abs(self.best) if math.isfinite(self.best) else 0.0
            if mean < self.best - margin:
                self.best, self.bad = mean, 0
            else:
                self.bad += 1
                if self.bad >= self.patience and self.lr > self.min_lr:
                    self.lr = max(self.lr * self.factor, self.min_lr)
                    self.bad, self.drops = 0, self.drops + 1
        return self.lr

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("lr", "best", "bad", "sum", "count", "drops")}

    def load_state_dict(self, state) -> None:
        for k, v in state.items():
            setattr(self, k, v)


class BGANTrainer:
    """One BGAN update per :meth:`step`.

    The generator blurs the sharp batch; the critic scores real and generated blur in one pass;
    the generator's loss ``w_p * perceptual(generated, sharp) + w_b * L_G`` and the critic's
    ``L_D`` are both taken from those scores, and each network steps on its own gradient (the
    critic's gradient does not flow into the generator, nor the reverse).

    Parameters
    ----------
    generator : BlurGenerator
    critic : BlurCritic
    perceptual : callable
        ``(generated, sharp) -> loss`` on [-1, 1] images: the trainer's
        :class:`blursynth.train.losses.ContentLoss` (VGG19) or
        :class:`blursynth.bgan.losses.PooledL1`.
    weights : LossWeights
    lr : float
        Adam's learning rate for both (betas 0.9, 0.999).
    """

    def __init__(self, generator, critic, perceptual, weights: LossWeights, *, lr=1e-4):
        self.g, self.d, self.perceptual, self.weights = generator, critic, perceptual, weights
        self.opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.9, 0.999))
        self.opt_d = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.9, 0.999))
        self.g_params = list(generator.parameters())
        self.d_params = list(critic.parameters())

    def set_lr(self, lr):
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr

    def losses(self, sharp, real, noise):
        """Generated batch and the (differentiable) losses, without stepping.

        ``sharp``, ``real``: ``(B, 3, h, w)`` in [-1, 1]; ``noise``: ``(B, 4)``.
        """
        fake = self.g(sharp, noise)
        scores = self.d(torch.cat([real, fake]))
        c_real, c_fake = scores[: real.shape[0]], scores[real.shape[0]:]
        loss_d = relativistic_critic_loss(c_real, c_fake)
        loss_blur = relativistic_generator_loss(c_real, c_fake)
        loss_p = self.perceptual(fake, sharp) if self.weights.perceptual > 0 \
            else fake.new_zeros(())
        loss_g = self.weights.perceptual * loss_p + self.weights.blur * loss_blur
        return fake, {"loss_d": loss_d, "loss_g": loss_g, "loss_blur": loss_blur,
                      "loss_perceptual": loss_p, "score_real": c_real.detach().mean(),
                      "score_fake": c_fake.detach().mean()}

    def step(self, sharp, real, noise):
        """One update of both networks; returns the generated batch and the losses (floats)."""
        self.g.train()
        self.d.train()
        fake, out = self.losses(sharp, real, noise)
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)
        torch.autograd.backward(out["loss_g"], inputs=self.g_params, retain_graph=True)
        torch.autograd.backward(out["loss_d"], inputs=self.d_params)
        self.opt_g.step()
        self.opt_d.step()
        return fake.detach(), {k: float(v.detach()) for k, v in out.items()}

    def state_dict(self) -> dict:
        return {"generator": self.g.state_dict(), "critic": self.d.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}

    def load_state_dict(self, state) -> None:
        self.g.load_state_dict(state["generator"])
        self.d.load_state_dict(state["critic"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])


# --------------------------------------------------------------------------------------------
# model files


def load_checkpoint(path, *, mmap: bool = False) -> dict:
    """Read a BGAN run's ``checkpoint.pt`` (``path`` is the run folder or the file).

    Raises
    ------
    BadInputError
        Missing, corrupt, another kind of file, or a model format version this blursynth does
        not read.
    """
    return runs.load_checkpoint(path, RUN_KIND, mmap=mmap)


def load_bgan_generator(path, device="cpu"):
    """The trained generator of a BGAN run, in eval mode, and its checkpoint metadata.

    Returns
    -------
    generator : BlurGenerator
    info : dict
        ``config`` (dict), ``step``, ``fingerprint`` (:func:`model_fingerprint`).
    """
    ckpt = load_checkpoint(path, mmap=True)

    def build():
        config = BGANConfig.from_dict(ckpt["config"])
        return config, BlurGenerator(config), ckpt["generator"]

    config, gen = runs.restore_model(path, build, "a BGAN generator")
    gen.requires_grad_(False)
    info = {"config": config.to_dict(), "step": int(ckpt.get("step", 0)),
            "fingerprint": model_fingerprint(gen)}
    return gen.to(device).eval(), info


# --------------------------------------------------------------------------------------------
# the run: plan -> build -> loop, as the DeblurGAN trainer's


@dataclass(frozen=True)
class BGANPlan(UnpairedPlan):
    """A checked BGAN run: what :func:`plan_training` found; nothing has been written yet."""


def plan_training(settings: BGANTrainSettings) -> BGANPlan:
    """Check every input of a run (settings, image sets, VGG file, the --out folder, a
    checkpoint to resume) and open its data; nothing is written."""
    return open_unpaired_run(BGANPlan, settings, RUN_KIND, _patch_problem)


def check_settings(settings: BGANTrainSettings) -> None:
    """The run's numbers, checked before anything is read (a :class:`SettingError` names the field)."""
    check_unpaired_settings(settings, _patch_problem)


def _patch_problem(patch):
    return f"--patch must be at least 8 px; got {patch}." if patch < 8 else None


@dataclass
class BGANParts:
    """What :func:`build_training` made: the trainer (networks and optimisers) and the rate."""

    trainer: BGANTrainer
    plateau: PlateauDrop
    start: int  # steps done before this process started


def build_training(plan: BGANPlan) -> BGANParts:
    """Build the networks (on the device) and restore the checkpoint; nothing is written."""
    settings, device = plan.settings, plan.device
    gen, critic = build_bgan(plan.config, seed=int(settings.seed))
    gen, critic = gen.to(device), critic.to(device)
    trainer = BGANTrainer(gen, critic, plan.perceptual.to(device), plan.weights, lr=settings.lr)
    plateau = PlateauDrop(settings.lr, window=settings.plateau_window,
                          patience=settings.plateau_patience, factor=settings.lr_drop,
                          min_lr=settings.min_lr)
    start = 0
    if plan.checkpoint is not None:
        trainer.load_state_dict(plan.checkpoint)
        plateau.load_state_dict(plan.checkpoint["plateau"])
        start = int(plan.checkpoint["step"])
    return BGANParts(trainer=trainer, plateau=plateau, start=start)


def _save(plan: BGANPlan, parts: BGANParts, metrics: runs.MetricsLog, step: int) -> None:
    """The checkpoint, ``model.json`` (what ``bgan blur`` reports) and the metrics."""
    from .unpaired import save_model

    save_model(plan, parts.trainer.state_dict(), {"plateau": parts.plateau.state_dict()},
               model_fingerprint(parts.trainer.g), metrics, step, model_format=MODEL_FORMAT,
               model_version=MODEL_VERSION, model_json=MODEL_JSON)


def run_training(plan: BGANPlan, parts: BGANParts) -> dict:
    """Train from ``parts.start`` to the settings' steps (or their time limit): log, sample
    and checkpoint as the settings say, making the model folder first."""
    out, trainer, plateau, start = plan.out, parts.trainer, parts.plateau, parts.start
    total = int(plan.settings.steps)
    if start >= total:
        return {"steps": start, "total_steps": total, "out": str(out), "last": {},
                "lr": plateau.lr, "fingerprint": model_fingerprint(trainer.g), "stopped": "done"}

    # One run per folder, held until it ends.
    with runs.writing_run(out, RUN_KIND, stamp=plan.stamp, start=start, sheets=(SAMPLES_DIR,)):
        return _train_steps(plan, parts)


def _train_steps(plan: BGANPlan, parts: BGANParts) -> dict:
    """:func:`run_training`'s steps, in the held model folder."""
    from ..train.models import to_model_range
    from .unpaired import patch_loader, run_steps, start_run_files

    settings, device, out = plan.settings, plan.device, plan.out
    trainer, plateau, start = parts.trainer, parts.plateau, parts.start
    total = int(settings.steps)
    metrics = start_run_files(plan, METRICS_CSV, METRIC_COLUMNS, start, SAMPLES_DIR)
    loader = patch_loader(_unpaired(plan.sharp, plan.real, int(settings.seed), settings.patch),
                          settings, start, total, device)

    def one_step(batch):
        s01, r01, noise = batch
        trainer.set_lr(plateau.lr)
        sharp = to_model_range(s01.to(device))
        real = to_model_range(r01.to(device))
        fake, losses = trainer.step(sharp, real, noise.to(device))
        lr_used = plateau.lr
        plateau.update(losses["loss_g"])
        return lr_used, losses, (sharp, fake, real)  # sheet: sharp | generated | real blurred

    step, losses, stopped, t0 = run_steps(
        plan, start, loader, metrics, desc="bgan train", sheets_dir=SAMPLES_DIR,
        one_step=one_step, save=lambda step: _save(plan, parts, metrics, step),
        postfix=lambda losses: {"d": f"{losses['loss_d']:.3g}",
                                "blur": f"{losses['loss_blur']:.3g}",
                                "p": f"{losses['loss_perceptual']:.3g}"})
    return {"steps": step, "total_steps": total, "out": str(out), "last": losses,
            "lr": plateau.lr, "fingerprint": model_fingerprint(trainer.g), "stopped": stopped,
            "perceptual": plan.perceptual_info, "n_sharp": len(plan.sharp),
            "n_real_blur": len(plan.real), "seconds": time.perf_counter() - t0}


def train_bgan(settings: BGANTrainSettings) -> dict:
    """Train BGAN as ``settings`` says; write the model, metrics and sample sheets to ``out``.

    Everything that can be wrong with the input (the image sets, patch size, VGG file, an
    existing run or a checkpoint of other settings) is checked before anything is written.

    Returns
    -------
    summary : dict
        ``steps`` done, ``total_steps``, ``out``, ``last`` (losses), ``lr``, ``fingerprint``
        of the generator, ``stopped`` (``"done"`` or ``"time"``).

    Examples
    --------
    >>> s = BGANTrainSettings(sharp="photos/", real_blur="blurry/", out="model/", steps=10,
    ...                       config="tiny", patch=32, perceptual="none")   # doctest: +SKIP
    >>> train_bgan(s)["steps"]                                              # doctest: +SKIP
    10
    """
    plan = plan_training(settings)
    return run_training(plan, build_training(plan))


def _unpaired(sharp_set, real_set, seed, patch):
    from .data import UnpairedPatches

    return UnpairedPatches(sharp_set, real_set, seed=seed, patch=patch)
