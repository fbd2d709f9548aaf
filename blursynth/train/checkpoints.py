"""A training run's checkpoint: its run folder kind and messages, the precision it trains in,
loading its generator, and the checks before a run continues it (``train --resume``)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ..errors import BadInputError, SettingError
from ..nn import runs
from ..nn.runs import CHECKPOINT, METRICS_CSV, RUN_JSON
from .archs import DEFAULT_ARCH, get_arch, run_arch

CHECKPOINT_FORMAT = runs.DEBLURGAN_FORMAT
CHECKPOINT_VERSION = 1

#: Train settings a run's recipe records only when they differ from these values (what runs made
#: before each option trained with), and that a resume given none of takes from its checkpoint,
#: not from the architecture's default (which may have changed since the run began).
RUN_OWN = {"fft_weight": 0.0, "rotate": False}


def run_own_option(name: str, value) -> str:
    """How the command line gives a :data:`RUN_OWN` setting (``--fft-weight 1``, ``--rotate``)."""
    if isinstance(RUN_OWN[name], bool):
        return f"--{'' if value else 'no-'}{name}"
    return f"--{name.replace('_', '-')} {value:g}"

#: The DeblurGAN run folder and its checkpoint's messages.
RUN_KIND = runs.RunKind(
    format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION,
    names=(CHECKPOINT, RUN_JSON, METRICS_CSV, "val", "tensorboard"),
    missing=f"{{path}}: no checkpoint; expected a training run folder (with {CHECKPOINT}) or a "
            "checkpoint file.",
    unreadable="{file}: corrupt checkpoint ({error}); restore it from a copy or start a new run in "
               "another --out.",
    other_formats={runs.BGAN_FORMAT: "{file}: is a BGAN (learned blur) model, not a DeblurGAN run; "
                                     "expected the --out folder of 'blursynth train'.",
                   runs.UID_FORMAT: "{file}: is a UID model (blursynth uid train), not a run of "
                                    "'blursynth train'; deblur with it by 'blursynth uid deblur "
                                    "PHOTOS --model MODEL --out OUT'."},
    wrong_format="{file}: not a blursynth deblurring checkpoint (the --out folder of 'blursynth "
                 "train', any --arch).",
    wrong_version="{file}: checkpoint version {version}; this blursynth reads version {expected}.",
    needs_resume="--out {out}: already holds a training run; pass --resume to continue it or "
                 "choose another --out.",
    other_recipe="{file}: checkpoint was trained with {key}={was}; this run asks for {now}. Resume "
                 "with the same settings or use another --out.",
    is_dataset="--out {out} is a dataset folder; expected a folder for the training run. Choose "
               "another --out.",
    is_file="--out {out}: is a file; expected a folder for the run.",
    not_a_run="--out {out}: is a non-empty folder that is not a training run (it holds {name}); "
              "choose a new or empty folder.",
)


#: ``--precision`` choices: auto is bf16 autocast on a CUDA device that supports it, else fp32.
PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` (autocast) for ``precision`` on ``device``.

    ``auto`` keeps CPUs in fp32: bf16 autocast there is opt-in (``--precision bf16``), since
    it pays only on CPUs with bf16 matrix units (AMX, AVX512-BF16) and changes the numbers.
    """
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise BadInputError(f"--precision bf16: {device} does not support bfloat16; use "
                            f"--precision fp32 (or auto).")
    return precision


def load_checkpoint(path) -> dict:
    """Read a run's checkpoint (``run/`` or ``run/checkpoint.pt``), checking what it is.

    Raises
    ------
    BadInputError
        Missing, corrupt, or not a blursynth DeblurGAN checkpoint.
    """
    return runs.load_checkpoint(path, RUN_KIND)


def load_generator(path, device="cpu"):
    """The trained generator of a run or checkpoint (of any architecture: the one it records,
    ``deblurgan`` for runs from before ``--arch``), in eval mode, and the checkpoint dict."""
    ckpt = load_checkpoint(path)
    name = ckpt.get("arch") or DEFAULT_ARCH
    try:
        arch = run_arch(ckpt)
    except SettingError:
        raise BadInputError(f"{path}: checkpoint of architecture {name!r}, which this blursynth "
                            f"does not have; use a blursynth that trains it.") from None
    config = ckpt["model_config"]
    try:
        gen = arch.build_generator(config)
    except (TypeError, ValueError, KeyError) as exc:
        raise BadInputError(f"{path}: config {config.get('name')!r} of {name} cannot be built "
                            f"({exc}).") from None
    try:
        gen.load_state_dict(ckpt["generator"])
    except RuntimeError as exc:
        raise BadInputError(f"{path}: generator weights do not fit {name} config "
                            f"{config.get('name')!r} ({str(exc).splitlines()[0]}).") from None
    if not hasattr(gen, "tiling"):
        gen.tiling = arch.tiling  # how train/tiling.py tiles it exactly
    return gen.to(device).eval(), ckpt


def _check_online(was, now, out) -> None:
    """Refuse a resume whose ``--online`` sources (``[path, weight, recipe fingerprint]`` each)
    are not the run's, saying both as options."""
    was, now = ([list(e) for e in x] if x else None for x in (was, now))
    if was == now:
        return

    def spec(entries, *, fingerprints=False):
        return " ".join(f"--online {p}:{w:g}" + (f" (recipe {f})" if fingerprints else "") for p, w, f in entries)

    if not now:
        raise BadInputError(f"{out / CHECKPOINT}: the run trained on {spec(was)} too; pass the "
                            "same to resume it, or use another --out.")
    if not was:
        raise BadInputError(f"{out / CHECKPOINT}: the run trained without --online; this run adds "
                            f"{spec(now)}. Resume without it, or use another --out.")
    same_text = spec(was) == spec(now)  # the same files and weights: a recipe was edited
    raise BadInputError(f"{out / CHECKPOINT}: the run trained on {spec(was, fingerprints=same_text)}; "
                        f"this run asks for {spec(now, fingerprints=same_text)}. Resume with the same "
                        "--online, or use another --out.")


def check_resume(ckpt, settings, config, recipe, precision, device, total, rank) -> None:
    """Refuse to continue a checkpoint with other settings; warn when the length changes."""
    out = Path(settings.out)
    runs.require_resume(out, RUN_KIND, settings.resume)
    was = ckpt.get("arch") or DEFAULT_ARCH
    if was != settings.arch:
        raise BadInputError(
            f"{out / CHECKPOINT}: checkpoint is of --arch {was}; this run asks for --arch "
            f"{settings.arch}. Pass --arch {was} to resume it, or use another --out.")
    refusal = get_arch(was).resume_refusal
    why = refusal(ckpt) if refusal is not None else None
    if why:
        raise BadInputError(f"{out / CHECKPOINT}: {why}; its generator still deblurs (evaluate, "
                            f"deblur), but the run cannot continue: train a new one in another "
                            f"--out.")
    if ckpt["model_config"] != config:
        raise BadInputError(
            f"{out / CHECKPOINT}: checkpoint is of config {ckpt['model_config']['name']!r} "
            f"({ckpt['model_config']}); this run asks for {config['name']!r}. Pass the same "
            f"--config or another --out.")
    # Recorded only when used (runs made before an option have none): either side may lack it.
    recorded, differing = ckpt.get("recipe", {}), []
    for name, unused in RUN_OWN.items():
        was, now = recorded.get(name, unused), recipe.get(name, unused)
        if was != now:  # "--fft-weight 0 vs 0.25", "--no-rotate vs --rotate"
            option = run_own_option(name, now)
            recorded_as = run_own_option(name, was).removeprefix(option.split(" ")[0] + " ")
            differing.append(f"{option} vs {recorded_as} (recorded)")
    if differing:
        raise BadInputError(runs.differing_options_message(out, differing))
    _check_online(ckpt.get("recipe", {}).get("online"), recipe.get("online"), out)
    runs.check_recipe(ckpt, recipe, out, RUN_KIND)
    # Checkpoints from before --precision ran bf16 exactly where auto does now.
    trained_in = ckpt.get("precision", resolve_precision("auto", device))
    if trained_in != precision:
        raise BadInputError(
            f"{out / CHECKPOINT}: checkpoint was trained in {trained_in}; this run would "
            f"continue in {precision} (--precision {settings.precision} on {device.type}). "
            f"Pass --precision {trained_in} to resume it, or use another --out.")
    done = int(ckpt["step"])
    if total < done:
        raise BadInputError(
            f"{out / CHECKPOINT}: the run is already at step {done}; a run of {total} steps "
            f"would train nothing. Give more than {done} steps to train further.")
    planned = ckpt.get("total_steps")
    if planned is not None and planned != total and total > done and rank == 0:
        # Allowed (a run may be lengthened), but the schedule follows the new length (no word
        # when the rate at the resumed step stays what it was, e.g. a floor both lengths reach).
        arch = get_arch(settings.arch)
        before, after = (f"{arch.lr_at(done, n, settings.lr):.3g}" for n in (planned, total))
        if before == after:
            return
        shape = " (constant for the first half, then falling to 0)" if arch.schedule is None \
            else ""
        sys.stderr.write(
            f"warning: {out} was a run of {planned} steps, now {total}: the learning rate"
            f"{shape} is recomputed for {total} steps, "
            f"so it goes on after step {done} at {after}, where the {planned}-step schedule "
            f"would be at {before}.\n")
