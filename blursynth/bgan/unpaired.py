"""What the unpaired trainers (BGAN, UID) share: checking and opening a run on a sharp set and a
real blurred set, the patch loader, the progress bar and the model files they write.

Each trainer keeps its own networks, losses, update step and loop body; these helpers are the
parts whose logic is the same, so a fix to one (a check, the order of refusals, the loader)
serves both.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .._stopping import stop_if_asked
from ..errors import BadInputError, SettingError, checking
from ..nn import runs
from ..nn.runs import CHECKPOINT, RUN_JSON


@dataclass(frozen=True)
class UnpairedPlan:
    """A checked run on unpaired sets (what :func:`open_unpaired_run` found); nothing has been
    written yet. Each trainer's plan is this class under its own name."""

    settings: object  # the trainer's settings
    config: object  # its model config
    weights: object  # its loss weights
    sharp: object  # ImageSet
    real: object  # ImageSet
    device: torch.device
    out: Path
    perceptual: torch.nn.Module
    perceptual_info: dict
    recipe: dict
    checkpoint: dict | None  # the run --resume continues
    stamp: tuple | None = None  # runs.checkpoint_stamp of --out when it was checked


def check_unpaired_settings(settings, patch_problem):
    """Refuse a run's bad numbers before anything is read or written (``blursynth build`` checks
    them when it plans); a :class:`SettingError` names the field. Returns ``(model_config(),
    loss_weights())``."""
    from .._rng import check_seed

    with checking("seed"):
        check_seed(settings.seed)
    config = settings.model_config()
    weights = settings.loss_weights()
    if settings.steps < 1:
        raise SettingError(f"--steps must be at least 1; got {settings.steps}.", "steps")
    problem = patch_problem(settings.patch)
    if problem:
        raise SettingError(problem, "patch")
    if settings.batch_size < 1:
        raise SettingError(f"--batch-size must be at least 1; got {settings.batch_size}.", "batch_size")
    if not (settings.lr > 0 and math.isfinite(settings.lr)):
        raise SettingError(f"--lr must be a positive number; got {settings.lr}.", "lr")
    if settings.perceptual not in ("vgg", "none"):
        raise SettingError(f"--perceptual must be vgg or none; got {settings.perceptual!r}.", "perceptual")
    return config, weights


def open_unpaired_run(plan_class, settings, run_kind: runs.RunKind, patch_problem):
    """Check a run's common settings, its --out folder and image sets; open them and return a
    ``plan_class`` (an :class:`UnpairedPlan`) of them with ``settings`` and its
    ``model_config()`` and ``loss_weights()``.

    ``settings`` has the fields both trainers' settings share (steps, patch, batch_size, lr,
    perceptual, vgg_weights, sharp, real_blur, out, resume, verify, device, and ``recipe()``);
    ``patch_problem(patch)`` gives the refusal of a patch size the model cannot take, or None.
    The refusals come in a fixed order: numbers, then the --out folder (a refusal to write into
    the user's own files comes before reading image sets or the VGG file), then the data.
    """
    from ..nn.device import resolve_device
    from ..train.losses import build_content_loss
    from .data import ImageSet, check_patch_fits, check_unpaired
    from .losses import PooledL1

    config, weights = check_unpaired_settings(settings, patch_problem)
    out = Path(settings.out).resolve()
    for option, given in (("--sharp", settings.sharp), ("--real-blur", settings.real_blur)):
        where = Path(given).resolve()
        # Sample sheets written under an input folder would join its images on --resume.
        if where.is_dir() and (out == where or where in out.parents):
            raise BadInputError(f"--out {settings.out} is inside {option} {given}; the run's sample "
                                f"sheets would become training images. Choose an --out outside it.")
    out = Path(settings.out)
    recipe = settings.recipe()
    stamp = runs.checkpoint_stamp(out)
    ckpt = runs.open_run_folder(out, run_kind)
    if ckpt is not None:
        runs.require_resume(out, run_kind, settings.resume)
        runs.check_recipe(ckpt, recipe, out, run_kind)
    sharp = ImageSet(settings.sharp, column="sharp", option="--sharp", verify=settings.verify)
    real = ImageSet(settings.real_blur, column="blurred", option="--real-blur",
                    verify=settings.verify)
    check_unpaired(sharp, real)
    check_patch_fits(sharp, settings.patch, others=[real])
    check_patch_fits(real, settings.patch, others=[sharp])

    device = resolve_device(settings.device, index=0)
    if settings.perceptual == "none":
        perceptual, perceptual_info = PooledL1(4), {"kind": "pooled-l1", "factor": 4}
    else:
        perceptual, perceptual_info = build_content_loss(settings.perceptual,
                                                         settings.vgg_weights)
    return plan_class(settings=settings, config=config, weights=weights, sharp=sharp, real=real,
                      device=device, out=out, perceptual=perceptual,
                      perceptual_info=perceptual_info, recipe=recipe, checkpoint=ckpt, stamp=stamp)


def start_run_files(plan, metrics_csv, columns, start: int, sheets_dir: str) -> runs.MetricsLog:
    """In the held model folder: the sheets folder, ``run.json`` of a new run, and the metrics
    log cut back to ``start`` (the rows a stopped run wrote after its checkpoint go)."""
    settings, out = plan.settings, plan.out
    (out / sheets_dir).mkdir(exist_ok=True)
    if plan.checkpoint is None:
        runs.write_run_json(out / RUN_JSON, {
            # A new run, whatever --resume said (it continues only a checkpoint).
            "settings": dict(asdict(settings), resume=False), "recipe": plan.recipe,
            "perceptual": plan.perceptual_info, "n_sharp": len(plan.sharp),
            "n_real_blur": len(plan.real)})
    metrics = runs.MetricsLog(out / metrics_csv, columns, start)
    metrics.save()
    return metrics


def patch_loader(dataset, settings, start: int, total: int, device):
    """The DataLoader of run samples ``start .. total`` (batches in position order)."""
    from ..train.data import PositionSampler

    return torch.utils.data.DataLoader(
        dataset, batch_size=settings.batch_size,
        sampler=PositionSampler(start, total, settings.batch_size),
        num_workers=max(int(settings.workers), 0), pin_memory=device.type == "cuda",
        prefetch_factor=4 if settings.workers > 0 else None)


def progress_bar(settings, total: int, start: int, desc: str):
    """A tqdm bar of steps, or None when the settings ask for no progress."""
    from .._startup import startup_over

    startup_over()  # the work begins: start-up's objects frozen, the collector back on
    if not settings.progress:
        return None
    from .._progress import progress_bar as bar

    return bar(total=total, initial=start, desc=desc, unit="step")


def run_steps(plan, start: int, loader, metrics: runs.MetricsLog, *, desc: str, sheets_dir: str,
              one_step, save, postfix, sheet_labels=None):
    """The step loop both trainers run in their held model folder.

    ``one_step(batch)`` updates the networks and gives ``(lr, losses, sheet)``: the rate the
    step used, its losses (floats) and the batches of a sample sheet's columns (model range).
    Metrics rows, sample sheets and checkpoints (``save(step)``) come at the settings' periods
    and at the last step; past ``max_seconds`` the run saves and stops. ``postfix(losses)`` is
    the progress bar's. Returns ``(step, losses, stopped, t0)``.
    """
    from ..train.models import from_model_range

    settings, out = plan.settings, plan.out
    total = int(settings.steps)
    bar = progress_bar(settings, total, start, desc)
    t0 = time.perf_counter()
    losses, step, stopped = {}, start, "done"
    try:
        for step, batch in enumerate(loader, start=start + 1):
            lr_used, losses, sheet = one_step(batch)
            if step % settings.log_every == 0 or step == total:
                metrics.append(dict(losses, step=step, lr=lr_used,
                                    seconds=time.perf_counter() - t0))
                metrics.save()
            if step % settings.sample_every == 0 or step == total:
                images = [from_model_range(t) for t in sheet]  # one row per item
                runs.save_sample_sheet(out / sheets_dir / f"step-{step:07d}.png",
                                       list(zip(*images)), level=3, labels=sheet_labels)
            out_of_time = (settings.max_seconds is not None
                           and time.perf_counter() - t0 >= settings.max_seconds)
            if step % settings.checkpoint_every == 0 or step == total or out_of_time:
                save(step)
            stop_if_asked()
            if bar is not None:  # the postfix first: update() draws the bar with this step's
                bar.set_postfix(**postfix(losses), refresh=False)
                bar.update(1)
            if out_of_time and step < total:
                stopped = "time"
                break
    finally:
        if bar is not None:
            bar.close()
    return step, losses, stopped, t0


def save_model(plan, state: dict, extra: dict, fingerprint: str, metrics: runs.MetricsLog,
               step: int, *, model_format: str, model_version: int, model_json: str) -> None:
    """The checkpoint (``state`` and the run's metadata, then ``extra``), ``model.json`` (what
    the blur and deblur commands report) and the metrics."""
    from ..dataset.outputs import atomic_write_text

    # The weights as the recipe records them (UID's leave out a term that is not used).
    config, weights = plan.config.to_dict(), plan.recipe["loss_weights"]
    state.update({"format": model_format, "version": model_version, "step": step,
                  "total_steps": int(plan.settings.steps), "config": config,
                  "recipe": plan.recipe, "loss_weights": weights,
                  "perceptual": plan.perceptual_info}, **extra)
    metrics.save()  # first: a kill between the two never loses a row
    runs.save_checkpoint(state, plan.out / CHECKPOINT)
    info = {"format": model_format, "version": model_version, "step": step, "config": config,
            "fingerprint": fingerprint, "loss_weights": weights,
            "perceptual": plan.perceptual_info}
    atomic_write_text(plan.out / model_json, json.dumps(info, indent=1) + "\n")
