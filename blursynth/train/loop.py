"""The training run of every architecture: settings, then plan -> build -> loop, alone or under
torchrun.

:func:`plan_run` checks every input and writes nothing (the data through
:mod:`.run_data`, a checkpoint to resume through :mod:`.checkpoints`); :func:`build_run` makes
the models, the data loader and the run folder; :func:`run_loop` trains, validates and
checkpoints.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .._rng import check_seed
from .._stopping import stop_if_asked
from ..errors import SettingError, checking
from ..nn import count_parameters, runs
from ..nn.device import resolve_device
from ..nn.runs import CHECKPOINT, METRICS_CSV, RUN_JSON
from .data import SPLIT_BY, DataSource
from .archs import DEFAULT_ARCH, get_arch
from .losses import with_frequency_term
from .checkpoints import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION, PRECISIONS, RUN_KIND, RUN_OWN,
                          check_resume, resolve_precision)
from .models import from_model_range, to_model_range
from .run_data import load_val, plan_data, warn_shared_kernel_draws
from .trainer import UpdateBase, unwrap

VAL_COLUMNS = ("val_psnr", "val_ssim", "val_psnr_blurred", "val_ssim_blurred")


def metric_columns(arch) -> tuple:
    """metrics.csv's columns for an architecture: step, lr, its losses, validation, seconds."""
    return ("step", "lr", *arch.loss_columns, *VAL_COLUMNS, "seconds")


#: DeblurGAN's metrics.csv columns.
METRIC_COLUMNS = ("step", "lr", "loss_d", "wasserstein", "gp", "loss_g", "loss_adv",
                  "loss_content", *VAL_COLUMNS, "seconds")

#: Columns of a validation sheet (val/step-N.png); each row's notes give the PSNR of the first two.
VAL_SHEET_LABELS = ("blurred", "deblurred", "sharp")

#: DeblurGAN's defaults that differ by config: (crop, batch size); other architectures give
#: theirs in ``Arch.crop_batch``.
CONFIG_DEFAULTS = {"paper": (256, 1), "small": (64, 4)}

#: How training lays out models and batches, on every device: on a CPU channels-last takes a
#: sixth to a fifth off DeepDeblur's and DBGAN's small steps, less off DeblurGAN-v2's, nothing off
#: DeblurGAN's (NAFNet runs channels-last inside whatever it is given); RESULTS.md, "Architectures:
#: channels-last steps on a CPU". The benchmarks that time a step use it too.
TRAIN_MEMORY_FORMAT = torch.channels_last

#: Settings whose default is the architecture's (``Arch.defaults``, else DeblurGAN's).
ARCH_DEFAULTS = {"lr": 1e-4, "critic_steps": 5, "content_weight": 100.0, "perceptual": "vgg",
                 **RUN_OWN}


@dataclass(frozen=True)
class TrainSettings:
    """Everything a training run needs; built by ``blursynth train`` or a recipe.

    ``steps`` (generator updates) or ``epochs`` (passes over the training pairs) sets the
    length; ``crop``/``batch_size`` of None take the config's defaults (DeblurGAN's paper:
    256 / 1; small: 64 / 4). ``lr``, ``critic_steps``, ``content_weight``, ``perceptual``,
    ``fft_weight`` and ``rotate`` of None take the architecture's (``Arch.defaults``, or the
    config's ``Arch.config_defaults``); they are filled in here, so the settings recorded in
    run.json are the ones used (with ``resume``, :data:`RUN_OWN` of None are the run's own).
    """

    data: tuple  # of DataSource
    out: str
    # of DataSource: recipes whose blur step is rendered as it is read (--online RECIPE[:W])
    online: tuple = ()
    config: str = "small"
    arch: str = DEFAULT_ARCH
    steps: int | None = None
    epochs: float | None = None
    crop: int | None = None
    batch_size: int | None = None
    lr: float | None = None  # None: the architecture's (DeblurGAN: 1e-4)
    critic_steps: int | None = None  # None: the architecture's (DeblurGAN: 5)
    gp_weight: float = 10.0
    content_weight: float | None = None  # None: the architecture's (DeblurGAN: 100)
    perceptual: str | None = None  # None: the architecture's (DeblurGAN: vgg)
    # Weight of the spectrum's L1 added to the content loss; None: the architecture's (mostly 0),
    # or with --resume the run's own
    fft_weight: float | None = None
    # Turn training crops too (top-bottom flips and transposes: the eight rotations and
    # mirrorings with the left-right flip); None: the architecture's, or with --resume the run's
    rotate: bool | None = None
    vgg_weights: str | None = None
    init: str = "paper"
    dropout: float | None = None  # None: the config's (0.5)
    width: int | None = None  # None: the config's (architectures with a width option)
    backbone_weights: str | None = None  # architectures with a pretrained backbone
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    workers: int = 2
    val_data: tuple = ()  # of str; default: a held-out fraction of --data
    val_fraction: float = 0.05
    # What --val-fraction holds out: whole sources or single pairs. None: source for a new run,
    # the checkpoint's own for a resumed one (pair for runs made before the option).
    split_by: str | None = None
    val_count: int = 8
    val_crop: int = 256
    val_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 10
    resume: bool = False
    progress: bool = True
    verify: bool = True  # hash each dataset's shards against its manifest (--no-verify)

    def __post_init__(self):
        # The scalar settings are checked here, so a recipe's train step (built by 'blursynth
        # build', --dry-run included) is refused before any step runs, as the CLI is.
        arch = get_arch(self.arch)
        for name, default in ARCH_DEFAULTS.items():
            # A resumed run continues with its own (plan_run reads it from the checkpoint).
            if getattr(self, name) is None and not (name in RUN_OWN and self.resume):
                object.__setattr__(self, name, arch.default(name, self.config, default))
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise SettingError(f"--dropout must be in [0, 1); got {self.dropout}.", "dropout")
        if self.width is not None and (not isinstance(self.width, int) or self.width < 1):
            raise SettingError(f"--width must be a whole number of at least 1; got "
                               f"{self.width!r}.", "width")
        config = self.model_config()  # refuses a config or override the arch does not have
        crop0, batch0 = arch.crop_batch[self.config]
        crop, batch = int(self.crop or crop0), int(self.batch_size or batch0)
        multiple = arch.multiple_of(config)
        if crop < 16 or crop % multiple:
            raise SettingError(f"--crop must be a multiple of {multiple} and at least 16 for "
                               f"--arch {arch.name} --config {self.config}; got {crop}.", "crop")
        if batch < 1:
            raise SettingError(f"--batch-size must be at least 1; got {batch}.", "batch_size")
        if self.init not in ("paper", "identity"):
            raise SettingError(f"--init must be paper or identity; got {self.init!r}.", "init")
        if self.init == "identity" and arch.zero_init is None:
            raise SettingError(f"--init identity: --arch {arch.name} has no identity start; "
                               f"leave --init at paper.", "init")
        if self.backbone_weights is not None and "backbone_weights" not in arch.build_options:
            raise SettingError(f"--backbone-weights does not apply to --arch {arch.name} (it has "
                               f"no pretrained backbone); leave it out.", "backbone_weights")
        if not arch.has_critic and self.critic_steps:
            raise SettingError(f"--critic-steps {self.critic_steps}: --arch {arch.name} has no "
                               f"critic; pass --critic-steps 0 or leave it out.", "critic_steps")
        if not isinstance(self.critic_steps, int) or isinstance(self.critic_steps, bool) or \
                self.critic_steps < 0:
            raise SettingError(f"--critic-steps must be 0 (content loss alone) or more; got "
                               f"{self.critic_steps}.", "critic_steps")
        if self.perceptual not in ("vgg", "none"):
            raise SettingError(f"--perceptual must be vgg or none; got {self.perceptual!r}.",
                               "perceptual")
        if self.precision not in PRECISIONS:
            raise SettingError(f"--precision must be one of {', '.join(PRECISIONS)}; got "
                               f"{self.precision!r}.", "precision")
        if (self.steps is None) == (self.epochs is None):
            raise SettingError("give exactly one of --steps and --epochs.", "steps")
        if self.steps is not None and self.steps < 1:
            raise SettingError(f"--steps must be at least 1; got {self.steps}.", "steps")
        if self.epochs is not None and not (math.isfinite(self.epochs) and self.epochs > 0):
            raise SettingError(f"--epochs must be a positive finite number; got {self.epochs}.", "epochs")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise SettingError(f"--lr must be a positive finite number; got {self.lr}.", "lr")
        for name in ("content_weight", "gp_weight", "fft_weight"):
            value = getattr(self, name)
            if value is None:  # fft_weight of a resumed run: the checkpoint's
                continue
            if not (math.isfinite(value) and value >= 0):
                raise SettingError(f"--{name.replace('_', '-')} must be a finite number >= 0; "
                                   f"got {value}.", name)
        if self.rotate is not None and not isinstance(self.rotate, bool):
            raise SettingError(f"rotate must be true or false; got {self.rotate!r}.", "rotate")
        for name in ("val_every", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise SettingError(f"--{name.replace('_', '-')} must be at least 1; "
                                   f"got {getattr(self, name)}.", name)
        if self.val_count < 0:  # 0 turns validation off
            raise SettingError(f"--val-count must be 0 or more; got {self.val_count}.", "val_count")
        if self.val_crop < 16:
            raise SettingError(f"--val-crop must be at least 16; got {self.val_crop}.", "val_crop")
        if not 0 <= self.val_fraction < 1:
            raise SettingError(f"--val-fraction must be in [0, 1); got {self.val_fraction}.", "val_fraction")
        if self.split_by is not None and self.split_by not in SPLIT_BY:
            raise SettingError(f"--split-by must be one of {', '.join(SPLIT_BY)}; got "
                               f"{self.split_by!r}.", "split_by")
        with checking("seed"):
            check_seed(self.seed)
        if not all(isinstance(o, DataSource) for o in self.online):
            raise SettingError("online: expected --online RECIPE[:WEIGHT] entries (DataSource); "
                               "a recipe's train step takes no online sources.", "online")

    def model_config(self) -> dict:
        """The architecture's config dict with ``--dropout``/``--width`` applied."""
        dropout = None if self.dropout is None else float(self.dropout)
        return get_arch(self.arch).config(self.config, dropout=dropout, width=self.width)

    def recipe(self, crop, batch_size) -> dict:
        """The settings a resumed run must share with the run it continues."""
        return {
            "config": self.config, "crop": crop, "batch_size": batch_size, "lr": self.lr,
            "critic_steps": self.critic_steps, "gp_weight": self.gp_weight,
            "content_weight": self.content_weight, "perceptual": self.perceptual,
            "seed": self.seed, "init": self.init,
            # What was really held out of --data (nothing when --val-data is given).
            "val_fraction": 0.0 if self.val_data else self.val_fraction,
            "data": [[str(Path(d.path).resolve()), d.weight] for d in self.data],
            # Recorded only when it is not the split of runs made before it existed (pair), so
            # those runs resume with --split-by pair, and evaluate reads their split as pair.
            **({} if self.split_by == "pair" else {"split_by": self.split_by or "source"}),
            # Recorded only when used, so runs made before the options resume as they were.
            **{name: getattr(self, name) for name, unused in RUN_OWN.items()
               if getattr(self, name) not in (None, unused)},
        }


# --------------------------------------------------------------------------------------------
# validation


def _validate(gen, val, device):
    from .metrics import psnr, ssim

    gen.eval()
    rows, triples = [], []
    with torch.no_grad():
        for b, s in val:
            b1, s1 = b[None].to(device), s[None].to(device)
            out = from_model_range(gen(to_model_range(b1)))
            # Score what a user gets: the output quantised to 8 bits.
            out = torch.round(out.clamp(0, 1) * 255) / 255
            o64, s64, b64 = out.double().cpu(), s1.double().cpu(), b1.double().cpu()
            small = min(s64.shape[-2:]) < 11
            rows.append((float(psnr(o64, s64)), float("nan") if small else float(ssim(o64, s64)),
                         float(psnr(b64, s64)), float("nan") if small else float(ssim(b64, s64))))
            triples.append((b, out[0].cpu(), s))
    # The sheet's per-row notes: each image's PSNR against the sharp one.
    notes = [(f"{pb:.2f} dB", f"{po:.2f} dB", "") for po, _, pb, _ in rows]
    gen.train()
    m = np.nanmean(np.array(rows, dtype=np.float64), axis=0) if rows else [float("nan")] * 4
    return {"val_psnr": m[0], "val_ssim": m[1], "val_psnr_blurred": m[2],
            "val_ssim_blurred": m[3]}, triples, notes


# --------------------------------------------------------------------------------------------
# the run: plan -> build -> loop


@dataclass(frozen=True)
class RunPlan:
    """A checked run: what :func:`plan_run` found; nothing has been written yet."""

    settings: TrainSettings
    config: dict  # the architecture's config, as recorded (model_config)
    crop: int
    batch: int
    world: int  # processes (torchrun's WORLD_SIZE)
    rank: int
    device: torch.device
    precision: str  # fp32 or bf16
    out: Path
    train_rows: list  # per dataset, the rows it trains on
    val_items: list  # of (dataset path, row)
    total: int  # generator updates
    content: torch.nn.Module
    content_info: dict
    recipe: dict
    checkpoint: dict | None  # the run --resume continues
    stamp: tuple | None = None  # runs.checkpoint_stamp of --out when it was checked
    pairs: object = None  # the training rows: a blursynth.torch.PairDataset (split "train")

    @property
    def arch(self):
        return get_arch(self.settings.arch)

    @property
    def n_train(self) -> int:
        return sum(len(t) for t in self.train_rows)

    @property
    def main(self) -> bool:
        """Whether this process writes (rank 0)."""
        return self.rank == 0


def plan_run(settings: TrainSettings, online=()) -> RunPlan:
    """Check every input of a run (datasets, crop, VGG file, the --out folder, a checkpoint to
    resume and whether it fits these settings); nothing is written.

    ``online``: the :class:`blursynth.torch.OnlineBlur` of each ``settings.online`` recipe, in
    order (:func:`blursynth.torch.online.open_online`); recipes are resolved by the caller, so
    training never imports the build that plans them."""
    check_seed(settings.seed)  # the other scalars were checked by TrainSettings
    arch = get_arch(settings.arch)
    config = settings.model_config()
    crop0, batch0 = arch.crop_batch[settings.config]
    crop = int(settings.crop or crop0)
    batch = int(settings.batch_size or batch0)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(settings.device, index=int(os.environ.get("LOCAL_RANK", "0")))
    out = Path(settings.out)
    # The --out folder first: a refusal to write into the user's own files comes before any
    # complaint about the data or the VGG file. Every rank checks (no rank writes before all
    # have joined the process group), so none is left waiting.
    stamp = runs.checkpoint_stamp(out)
    ckpt = runs.open_run_folder(out, RUN_KIND)
    if settings.split_by is None:  # a resumed run keeps its split; runs before the option: pair
        split_by = ckpt["recipe"].get("split_by", "pair") if ckpt is not None else "source"
        settings = replace(settings, split_by=split_by)
    for name in RUN_OWN:  # --resume without the option: the run's own
        if getattr(settings, name) is None:
            value = (ckpt["recipe"].get(name, RUN_OWN[name]) if ckpt is not None
                     else arch.default(name, settings.config, RUN_OWN[name]))
            settings = replace(settings, **{name: type(RUN_OWN[name])(value)})

    pairs, val_items = plan_data(settings, crop, online)
    train_rows = pairs.rows
    if rank == 0:
        warn_shared_kernel_draws(settings.data)
    n_train = sum(len(t) for t in train_rows)
    if settings.steps is not None:
        total = int(settings.steps)
    else:
        total = max(1, math.ceil(settings.epochs * n_train / (batch * world)))
    recipe = settings.recipe(crop, batch)
    # Absent without --online, so those runs' recipes (and resume checks) do not change.
    if settings.online:
        recipe["online"] = [[str(Path(o.path).resolve()), o.weight, src.fingerprint]
                            for o, src in zip(settings.online, pairs.online)]
    precision = resolve_precision(settings.precision, device)
    if ckpt is not None:
        check_resume(ckpt, settings, config, recipe, precision, device, total, rank)
    # After the resume check: a resume that left out the run's --perceptual none is told so,
    # not sent to look for VGG19 weights it never trained with.
    content, content_info = with_frequency_term(
        *arch.content_loss(settings.perceptual, settings.vgg_weights, config), settings.fft_weight)
    return RunPlan(settings=settings, config=config, crop=crop, batch=batch, world=world,
                   rank=rank, device=device, precision=precision, out=out,
                   train_rows=train_rows, val_items=val_items, total=total, content=content,
                   content_info=content_info, recipe=recipe, checkpoint=ckpt,
                   stamp=stamp, pairs=pairs)


@dataclass
class RunParts:
    """What :func:`build_run` made: the trainer (models and optimisers), the data, the records."""

    trainer: UpdateBase  # the architecture's update
    generator: torch.nn.Module  # possibly DDP-wrapped
    loader: torch.utils.data.DataLoader
    val: list  # of (blurred, sharp) tensors; rank 0 only
    start: int  # steps done before this process started
    metrics: runs.MetricsLog | None  # rank 0 only
    tensorboard: object  # a SummaryWriter, or None
    memory_format: torch.memory_format


def build_run(plan: RunPlan, hold: ExitStack) -> RunParts:
    """Join the process group (under torchrun), build the models and the data loader, restore
    the checkpoint; rank 0 makes the run folder and (for a new run) writes ``run.json``."""
    settings, device = plan.settings, plan.device
    distributed = plan.world > 1
    if distributed:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    arch = plan.arch
    gen, critic = arch.build(dict(plan.config), settings.seed,
                             **{k: getattr(settings, k) for k in arch.build_options})
    if settings.init == "identity":
        arch.zero_init(gen)
    on_cuda = device.type == "cuda"
    mem = TRAIN_MEMORY_FORMAT
    gen = gen.to(device, memory_format=mem)
    if critic is not None:
        critic = critic.to(device, memory_format=mem)
    content = plan.content.to(device) if plan.content is not None else None
    if distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if on_cuda else None
        gen = DDP(gen, device_ids=ids)
        if critic is not None:
            critic = DDP(critic, device_ids=ids)
    trainer = arch.update(gen, critic, content, lr=settings.lr,
                          critic_steps=settings.critic_steps,
                          content_weight=settings.content_weight, seed=settings.seed,
                          rank=plan.rank, amp=plan.precision == "bf16",
                          **{k: getattr(settings, k) for k in arch.update_options})
    start = 0
    if plan.checkpoint is not None:
        trainer.load_state_dict(plan.checkpoint, rank=plan.rank)
        start = int(plan.checkpoint["step"])

    metrics = tb = None
    out = plan.out
    if plan.main:
        # Held until the run ends (``hold`` closes after run_loop): one run per folder.
        hold.enter_context(runs.writing_run(out, RUN_KIND, stamp=plan.stamp, start=start,
                                            sheets=("val",)))
        (out / "val").mkdir(exist_ok=True)
        if plan.checkpoint is None:
            runs.write_run_json(out / RUN_JSON, {
                # A new run, whatever --resume said (it continues only a checkpoint).
                "settings": dict({k: (list(v) if isinstance(v, tuple) else v)
                                  for k, v in asdict(settings).items()}, resume=False),
                "arch": arch.name,
                "model_config": plan.config, "recipe": plan.recipe, "crop": plan.crop,
                "batch_size": plan.batch, "world_size": plan.world, "total_steps": plan.total,
                "content_loss": plan.content_info, "precision": plan.precision,
                "n_train_pairs": plan.n_train,
                # What the README's architecture tables give, to check a run against them.
                "parameters": {"generator": count_parameters(gen),
                               "critic": count_parameters(critic) if critic is not None else 0},
                "val_pairs": [[p, i] for p, i in plan.val_items]})
        metrics = runs.MetricsLog(out / METRICS_CSV, metric_columns(arch), start)
        metrics.save()  # drops the rows a stopped run wrote after its checkpoint
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(out / "tensorboard"))
        except Exception:  # tensorboard not installed: the CSV is the record
            tb = None

    # Step t of rank r reads run samples t*B*R + r*B .. + B - 1, each a pure function of (seed,
    # sample): a resumed run reads what an unbroken one would have.
    loader = torch.utils.data.DataLoader(
        plan.pairs, batch_size=plan.batch,
        sampler=plan.pairs.sampler(plan.total * plan.batch, rank=plan.rank, world_size=plan.world,
                                   batch_size=plan.batch, start=start * plan.batch),
        num_workers=max(int(settings.workers), 0), pin_memory=on_cuda,
        persistent_workers=False, prefetch_factor=4 if settings.workers > 0 else None)
    val = load_val(plan.val_items, settings.val_crop, settings.verify,
                    arch.multiple_of(plan.config)) if plan.main else []
    return RunParts(trainer=trainer, generator=gen, loader=loader, val=val, start=start,
                    metrics=metrics, tensorboard=tb, memory_format=mem)


def _save(plan: RunPlan, parts: RunParts, step: int, rng_ranks=None) -> None:
    """Rank 0: the checkpoint (with every rank's generator states when given) and metrics."""
    state = parts.trainer.state_dict()
    if rng_ranks is not None:
        state["rng_ranks"] = rng_ranks
    state.update({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                  "precision": plan.precision, "arch": plan.arch.name,
                  "step": step, "total_steps": plan.total, "model_config": plan.config,
                  "recipe": plan.recipe, "content_loss": plan.content_info})
    parts.metrics.save()  # first: a kill between the two never loses a row
    runs.save_checkpoint(state, plan.out / CHECKPOINT)


def run_loop(plan: RunPlan, parts: RunParts) -> dict:
    """Train from ``parts.start`` to ``plan.total`` steps: log, validate and checkpoint on rank
    0 as the settings say; leave the process group (under torchrun) at the end."""
    settings, device, total = plan.settings, plan.device, plan.total
    trainer, mem, tb, out = parts.trainer, parts.memory_format, parts.tensorboard, plan.out
    arch = plan.arch
    lr_at = arch.lr_at
    distributed = plan.world > 1
    bar = None
    from .._startup import startup_over

    startup_over()  # the work begins: start-up's objects frozen, the collector back on
    if plan.main and settings.progress:
        from .._progress import progress_bar

        bar = progress_bar(total=total, initial=parts.start, desc="train", unit="step")
    t0 = time.perf_counter()
    losses, figures, step = {}, {}, parts.start
    try:
        for step, batch in enumerate(parts.loader, start=parts.start + 1):
            trainer.set_lr(lr_at(step - 1, total, settings.lr))
            blurred, sharp = batch["blurred"], batch["sharp"]
            blurred = to_model_range(blurred.to(device, non_blocking=True, memory_format=mem))
            sharp = to_model_range(sharp.to(device, non_blocking=True, memory_format=mem))
            losses = trainer.step(blurred, sharp)
            saving = step % settings.checkpoint_every == 0 or step == total
            rng_ranks = None
            if distributed and saving:
                # Every rank's generators go into the checkpoint, so a resumed run
                # continues each rank's masks and penalty mixes exactly.
                rng_ranks = [None] * plan.world
                torch.distributed.all_gather_object(rng_ranks, trainer.rng_state())
            if not plan.main:
                continue
            row = None
            if step % settings.log_every == 0 or step == total:
                row = dict(losses, step=step, lr=lr_at(step - 1, total, settings.lr))
            if parts.val and (step % settings.val_every == 0 or step == total):
                figures, triples, notes = _validate(unwrap(parts.generator), parts.val, device)
                runs.save_sample_sheet(out / "val" / f"step-{step:07d}.png", triples,
                                       labels=VAL_SHEET_LABELS, notes=notes)
                row = dict(row or dict(losses, step=step, lr=lr_at(step - 1, total, settings.lr)),
                           **figures)
            if row is not None:
                row["seconds"] = time.perf_counter() - t0
                parts.metrics.append(row)
                parts.metrics.save()
                if tb is not None:
                    for k, v in row.items():
                        if k not in ("step",) and isinstance(v, float) and math.isfinite(v):
                            tb.add_scalar(k, v, step)
            if saving:
                _save(plan, parts, step, rng_ranks)
            stop_if_asked()
            if bar is not None:
                if settings.critic_steps and "loss_d" in losses and "loss_adv" in losses:
                    bar.set_postfix(d=f"{losses['loss_d']:.3g}", g=f"{losses['loss_adv']:.3g}",
                                    c=f"{losses['loss_content']:.3g}", refresh=False)
                else:
                    bar.set_postfix(c=f"{losses['loss_content']:.3g}", refresh=False)
                bar.update(1)
        if distributed:
            # Every rank leaves together: a rank tearing its process group down while another
            # still talks to it (rank 0 writing the last checkpoint) aborted a CI run once
            # ("terminate called without an active exception" in rank 1).
            torch.distributed.barrier()
    finally:
        if bar is not None:
            bar.close()
        if tb is not None:
            tb.close()
        if distributed:
            torch.distributed.destroy_process_group()
    return {"steps": step, "total_steps": total, "out": str(out), "last": dict(losses, **figures),
            "rank": plan.rank,
            "content_loss": plan.content_info, "n_train_pairs": plan.n_train,
            "n_val_pairs": len(plan.val_items)}


def train(settings: TrainSettings, online=()) -> dict:
    """Train the architecture ``settings.arch`` as ``settings`` says; write checkpoints, metrics and samples to ``out``.

    Everything that can be wrong with the input (datasets, weights, crop, VGG file, an existing
    run, a checkpoint of another config or a corrupt one) is checked before anything is written.
    ``online``: the opened sources of ``settings.online`` (:func:`plan_run`).

    Returns
    -------
    summary : dict
        ``steps``, ``last`` (losses and validation figures), ``out``.

    Examples
    --------
    >>> s = TrainSettings(data=(DataSource("pairs/", 1.0),), out="run/", steps=10,
    ...                   perceptual="none")                       # doctest: +SKIP
    >>> train(s)["steps"]                                          # doctest: +SKIP
    10
    """
    plan = plan_run(settings, online)
    with ExitStack() as hold:
        return run_loop(plan, build_run(plan, hold))
