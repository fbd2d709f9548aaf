"""The DeblurGAN training run: settings, checkpoints, resume, validation, metrics, DDP."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .._rng import check_seed, sample_rng
from ..errors import BadInputError
from ..io.atomic import atomic_torch_save, atomic_write_text
from ..io.dataset import MANIFEST, PROGRESS
from .data import MixedPairs, PositionSampler, center_crop, open_pairs, pair_ids, \
    split_indices, to_tensor
from .losses import ContentLoss, critic_loss
from .models import CONFIGS, ModelConfig, build_models, from_model_range, to_model_range

STREAM_TORCH = 3  # sample_rng stream of the torch generators (data uses 1 and 2)
CHECKPOINT = "checkpoint.pt"
RUN_JSON = "run.json"
METRICS_CSV = "metrics.csv"
CHECKPOINT_FORMAT = "blursynth-deblurgan"
CHECKPOINT_VERSION = 1
METRIC_COLUMNS = ("step", "lr", "loss_d", "wasserstein", "gp", "loss_g", "loss_adv",
                  "loss_content", "val_psnr", "val_ssim", "val_psnr_blurred", "val_ssim_blurred",
                  "seconds")

#: What a run folder holds (besides the temporary files of atomic writes).
_RUN_NAMES = (CHECKPOINT, RUN_JSON, METRICS_CSV, "val", "tensorboard")


def _is_run_name(name: str) -> bool:
    """A name a run folder may hold: the run's own files, hidden files (temporary files of
    atomic writes, .DS_Store) and logs (``*.log``, ``*.out``: ``train ... > run/train.log``)."""
    return name in _RUN_NAMES or name.startswith(".") or name.endswith((".log", ".out"))


#: Defaults that differ by config: (crop, batch size).
CONFIG_DEFAULTS = {"paper": (256, 1), "small": (64, 4)}


@dataclass(frozen=True)
class TrainSettings:
    """Everything a training run needs; built by ``blursynth train`` or a recipe.

    ``steps`` (generator updates) or ``epochs`` (passes over the training pairs) sets the
    length; ``crop``/``batch_size`` of None take the config's defaults (paper: 256 / 1;
    small: 64 / 4).
    """

    data: tuple  # of DataSource
    out: str
    config: str = "small"
    steps: int | None = None
    epochs: float | None = None
    crop: int | None = None
    batch_size: int | None = None
    lr: float = 1e-4
    critic_steps: int = 5
    gp_weight: float = 10.0
    content_weight: float = 100.0
    perceptual: str = "vgg"
    vgg_weights: str | None = None
    init: str = "paper"
    dropout: float | None = None  # None: the config's (0.5)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    workers: int = 2
    val_data: tuple = ()  # of str; default: a held-out fraction of --data
    val_fraction: float = 0.05
    val_count: int = 8
    val_crop: int = 256
    val_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 10
    resume: bool = False
    progress: bool = True

    def __post_init__(self):
        # The scalar settings are checked here, so a recipe's train step (built by 'blursynth
        # build', --dry-run included) is refused before any step runs, as the CLI is.
        if self.config not in CONFIGS:
            raise BadInputError(f"--config must be one of {sorted(CONFIGS)}; got {self.config!r}.")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise BadInputError(f"--dropout must be in [0, 1); got {self.dropout}.")
        crop0, batch0 = CONFIG_DEFAULTS[self.config]
        crop, batch = int(self.crop or crop0), int(self.batch_size or batch0)
        if crop < 16 or crop % 4:
            raise BadInputError(f"--crop must be a multiple of 4 and at least 16; got {crop}.")
        if batch < 1:
            raise BadInputError(f"--batch-size must be at least 1; got {batch}.")
        if self.init not in ("paper", "identity"):
            raise BadInputError(f"--init must be paper or identity; got {self.init!r}.")
        if not isinstance(self.critic_steps, int) or isinstance(self.critic_steps, bool) or \
                self.critic_steps < 0:
            raise BadInputError(f"--critic-steps must be 0 (content loss alone) or more; got "
                                f"{self.critic_steps}.")
        if self.precision not in PRECISIONS:
            raise BadInputError(f"--precision must be one of {', '.join(PRECISIONS)}; got "
                                f"{self.precision!r}.")
        if (self.steps is None) == (self.epochs is None):
            raise BadInputError("give exactly one of --steps and --epochs.")
        if self.steps is not None and self.steps < 1:
            raise BadInputError(f"--steps must be at least 1; got {self.steps}.")
        if self.epochs is not None and not (math.isfinite(self.epochs) and self.epochs > 0):
            raise BadInputError(f"--epochs must be a positive finite number; got {self.epochs}.")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise BadInputError(f"--lr must be a positive finite number; got {self.lr}.")
        for name in ("content_weight", "gp_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise BadInputError(f"--{name.replace('_', '-')} must be a finite number >= 0; "
                                    f"got {value}.")
        for name in ("val_every", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise BadInputError(f"--{name.replace('_', '-')} must be at least 1; "
                                    f"got {getattr(self, name)}.")
        if self.val_count < 0:  # 0 turns validation off
            raise BadInputError(f"--val-count must be 0 or more; got {self.val_count}.")
        if self.val_crop < 16:
            raise BadInputError(f"--val-crop must be at least 16; got {self.val_crop}.")
        if not 0 <= self.val_fraction < 1:
            raise BadInputError(f"--val-fraction must be in [0, 1); got {self.val_fraction}.")
        check_seed(self.seed)

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
        }


# --------------------------------------------------------------------------------------------
# checkpoints


def load_checkpoint(path) -> dict:
    """Read a run's checkpoint (``run/`` or ``run/checkpoint.pt``), checking what it is.

    Raises
    ------
    BadInputError
        Missing, corrupt, or not a blursynth DeblurGAN checkpoint.
    """
    from ..io.atomic import load_torch_file

    p, ckpt = load_torch_file(
        path, file_name=CHECKPOINT,
        missing=f"{{path}}: no checkpoint; expected a training run folder (with {CHECKPOINT}) or a "
                "checkpoint file.",
        unreadable="{file}: corrupt checkpoint ({error}); restore it from a copy or start a new run in "
                   "another --out.",
    )
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        if isinstance(ckpt, dict) and ckpt.get("format") == "blursynth-bgan":
            raise BadInputError(f"{p}: is a BGAN (learned blur) model, not a DeblurGAN run; "
                                "expected the --out folder of 'blursynth train'.")
        raise BadInputError(f"{p}: not a blursynth DeblurGAN checkpoint.")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise BadInputError(f"{p}: checkpoint version {ckpt.get('version')}; this blursynth "
                            f"reads version {CHECKPOINT_VERSION}.")
    return ckpt


def load_generator(path, device="cpu"):
    """The trained generator of a run or checkpoint, in eval mode, and the checkpoint dict."""
    from .models import Generator

    ckpt = load_checkpoint(path)
    config = ModelConfig(**ckpt["model_config"])
    with torch.random.fork_rng(devices=[]):
        gen = Generator(config)
    try:
        gen.load_state_dict(ckpt["generator"])
    except RuntimeError as exc:
        raise BadInputError(f"{path}: generator weights do not fit config {config.name!r} "
                            f"({str(exc).splitlines()[0]}).") from None
    return gen.to(device).eval(), ckpt


# --------------------------------------------------------------------------------------------
# the trainer


def lr_at(step: int, total: int, base: float) -> float:
    """Constant for the first half of the run, then linear decay to 0 at ``total``.

    Examples
    --------
    >>> [lr_at(s, 10, 1.0) for s in (0, 4, 5, 8, 10)]
    [1.0, 1.0, 1.0, 0.4, 0.0]
    """
    half = total / 2
    if step < half:
        return base
    return base * max(total - step, 0) / max(total - half, 1)


class Trainer:
    """One DeblurGAN update per :meth:`step`: ``critic_steps`` critic updates on the batch and
    the generator's output for it (as DeblurGAN does), then one generator update.

    Parameters
    ----------
    generator, critic : nn.Module
        Possibly wrapped in DistributedDataParallel.
    content : ContentLoss
    seed, rank : int
        Key the generators of the penalty's mixing weights and of dropout masks.
    """

    def __init__(self, generator, critic, content, *, lr=1e-4, critic_steps=5, gp_weight=10.0,
                 content_weight=100.0, seed=0, rank=0, amp=False):
        self.g, self.d, self.content = generator, critic, content
        self.critic_steps, self.gp_weight = int(critic_steps), float(gp_weight)
        self.content_weight = float(content_weight)
        self.opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.999))
        device = next(generator.parameters()).device
        self.device = device
        # Keyed by (seed, rank): each rank masks and mixes differently, reproducibly.
        keys = sample_rng(seed, rank, STREAM_TORCH).integers(0, 2**62, size=2)
        self.rng_gp = torch.Generator(device=device).manual_seed(int(keys[0]))
        self.rng_dropout = torch.Generator(device=device).manual_seed(int(keys[1]))
        for m in _unwrap(generator).modules():
            if hasattr(m, "generator") and type(m).__name__ == "SeededDropout":
                m.generator = self.rng_dropout
        self.amp = bool(amp)
        self.g_params = [p for p in generator.parameters() if p.requires_grad]

    def _autocast(self):
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return torch.autocast(device_type=self.device.type, enabled=False)

    def set_lr(self, lr):
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr

    def step(self, blurred, sharp) -> dict:
        """One update on a batch of ``(B, 3, H, W)`` images in [-1, 1]; returns the losses.

        With ``critic_steps=0`` the generator learns from the content loss alone (the critic
        is neither run nor updated; its losses are NaN): PSNR-oriented training.
        """
        self.g.train()
        self.d.train()
        with self._autocast():
            fake = self.g(blurred)
        if self.critic_steps == 0:
            self.opt_g.zero_grad(set_to_none=True)
            with self._autocast():
                loss_content = self.content(fake, sharp)
                loss_g = self.content_weight * loss_content
            torch.autograd.backward(loss_g, inputs=self.g_params)
            self.opt_g.step()
            nan = float("nan")
            return {"loss_d": nan, "wasserstein": nan, "gp": nan, "loss_g": loss_g.item(),
                    "loss_adv": nan, "loss_content": loss_content.item()}
        fake_d = fake.detach()
        for _ in range(self.critic_steps):
            self.opt_d.zero_grad(set_to_none=True)
            with self._autocast():
                loss_d, wdist, gp = critic_loss(self.d, sharp, fake_d, generator=self.rng_gp,
                                                gp_weight=self.gp_weight)
            loss_d.backward()
            self.opt_d.step()
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            # The critic is run unwrapped and only the generator's parameters receive
            # gradients, so DDP's critic sees exactly one backward per forward.
            loss_adv = -_unwrap(self.d)(fake).float().mean()
            loss_content = self.content(fake, sharp)
            loss_g = loss_adv + self.content_weight * loss_content
        torch.autograd.backward(loss_g, inputs=self.g_params)
        self.opt_g.step()
        return {"loss_d": loss_d.item(), "wasserstein": wdist.item(), "gp": gp.item(),
                "loss_g": loss_g.item(), "loss_adv": loss_adv.item(),
                "loss_content": loss_content.item()}

    def state_dict(self) -> dict:
        return {
            "generator": _unwrap(self.g).state_dict(), "critic": _unwrap(self.d).state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "rng": self.rng_state(),
        }

    def rng_state(self) -> dict:
        """States of this process's penalty and dropout generators."""
        return {"gp": self.rng_gp.get_state(), "dropout": self.rng_dropout.get_state()}

    def load_state_dict(self, state, *, rank: int = 0) -> None:
        """Restore weights, optimisers and this rank's generators from a checkpoint.

        A checkpoint of a distributed run holds every rank's generator states
        (``rng_ranks``); a rank with none saved (more ranks than the run that
        saved) keeps its fresh ``(seed, rank)`` streams rather than copy another
        rank's, which would give two ranks the same masks.
        """
        _unwrap(self.g).load_state_dict(state["generator"])
        _unwrap(self.d).load_state_dict(state["critic"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        ranks = state.get("rng_ranks")
        if ranks is not None:
            rng = ranks[rank] if rank < len(ranks) else None
        else:
            rng = state["rng"] if rank == 0 else None
        if rng is not None:
            self.rng_gp.set_state(rng["gp"])
            self.rng_dropout.set_state(rng["dropout"])


def _unwrap(module):
    return getattr(module, "module", module)


# --------------------------------------------------------------------------------------------
# setup helpers


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


def _pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BadInputError(f"--device {name}: CUDA is not available on this machine; use "
                                f"--device cpu.")
        if name == "cuda":
            name = f"cuda:{local_rank}"
    elif name != "cpu":
        raise BadInputError(f"--device must be auto, cpu, cuda or cuda:N; got {name!r}.")
    return torch.device(name)


def _content_loss(settings):
    """The content loss and a record of which was used (for run.json)."""
    if settings.perceptual == "none":
        return ContentLoss(None), {"kind": "pixel-l1"}
    if settings.perceptual != "vgg":
        raise BadInputError(f"--perceptual must be vgg or none; got {settings.perceptual!r}.")
    from ..nn.vgg import load_vgg19_features, resolve_vgg19_weights

    path = resolve_vgg19_weights(settings.vgg_weights)
    vgg = load_vgg19_features(path, "conv3_3")
    return ContentLoss(vgg), {"kind": "vgg19-conv3_3", "weights": str(path)}


def _plan_data(settings, crop):
    """Open the datasets, split off validation pairs, check crops fit; nothing is written."""
    if not settings.data:
        raise BadInputError("no --data given; pass at least one pair dataset, e.g. --data pairs/.")
    train_rows, val_items = [], []
    for src in settings.data:
        ds = open_pairs(src.path)
        ids = pair_ids(ds)
        frac = 0.0 if settings.val_data else settings.val_fraction
        tr, ho = split_indices(ids, frac)
        if len(tr) == 0:
            raise BadInputError(
                f"--data {src.path}: no pairs left in the training split ({len(ids)} pairs, "
                f"{len(ho)} held out); add pairs or lower --val-fraction.")
        # A few evenly spaced pairs stand for the dataset (reading every image's size up
        # front would read the whole dataset); pairs smaller than the crop found later are
        # skipped by MixedPairs with a warning.
        probe = tr[np.linspace(0, len(tr) - 1, min(len(tr), 8)).round().astype(int)]
        shapes = [ds[int(i)]["blurred"].shape[:2] for i in probe]
        if all(crop > min(hw) for hw in shapes):
            h, w = max(shapes, key=min)
            raise BadInputError(
                f"--crop {crop} is larger than the images of {src.path} ({h}x{w}); pass --crop "
                f"{min(h, w) // 4 * 4} or less.")
        train_rows.append(tr)
        val_items += [(src.path, int(i)) for i in ho]
    for vpath in settings.val_data:
        ds = open_pairs(vpath)
        val_items += [(vpath, i) for i in range(len(ds))]
    # Take evenly spaced held-out pairs of every dataset (datasets are often ordered by
    # photo or clip), interleaved so that the first val_count items cover every dataset.
    by_src = {}
    for p, i in val_items:
        by_src.setdefault(p, []).append(i)
    share = -(-settings.val_count // max(len(by_src), 1))
    for p, rows in by_src.items():
        if len(rows) > share:
            by_src[p] = [rows[int(j)] for j in np.linspace(0, len(rows) - 1, share).round()]
    order = []
    for k in range(max((len(v) for v in by_src.values()), default=0)):
        order += [(p, v[k]) for p, v in by_src.items() if k < len(v)]
    return train_rows, order[: settings.val_count]


def _load_val(val_items, crop):
    datasets, out = {}, []
    for path, i in val_items:
        ds = datasets.setdefault(path, open_pairs(path))
        pair = ds[i]
        out.append((to_tensor(center_crop(pair["blurred"], crop)),
                    to_tensor(center_crop(pair["sharp"], crop))))
    return out


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
    gen.train()
    m = np.nanmean(np.array(rows, dtype=np.float64), axis=0) if rows else [float("nan")] * 4
    return {"val_psnr": m[0], "val_ssim": m[1], "val_psnr_blurred": m[2],
            "val_ssim_blurred": m[3]}, triples


def _save_triples(path: Path, triples, n=4):
    """A PNG with one row per validation pair: blurred | deblurred | sharp."""
    from ..sources.photos import encode_png

    rows = []
    for b, o, s in triples[:n]:
        row = torch.cat([b, o, s], dim=2)
        rows.append(row)
    if not rows:
        return
    w = max(r.shape[2] for r in rows)
    rows = [torch.nn.functional.pad(r, (0, w - r.shape[2])) for r in rows]
    img = (torch.cat(rows, dim=1).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(encode_png(np.ascontiguousarray(img)))
    os.replace(tmp, path)


def _read_metrics(path: Path, upto_step: int):
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if int(r["step"]) <= upto_step]


def _write_metrics(path: Path, rows):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


# --------------------------------------------------------------------------------------------
# the run


def train(settings: TrainSettings) -> dict:
    """Train DeblurGAN as ``settings`` says; write checkpoints, metrics and samples to ``out``.

    Everything that can be wrong with the input (datasets, weights, crop, VGG file, an existing
    run, a checkpoint of another config or a corrupt one) is checked before anything is written.

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
    seed = check_seed(settings.seed)  # the other scalars were checked by TrainSettings
    config = CONFIGS[settings.config]
    if settings.dropout is not None:
        config = replace(config, dropout=float(settings.dropout))
    crop0, batch0 = CONFIG_DEFAULTS[settings.config]
    crop = int(settings.crop or crop0)
    batch = int(settings.batch_size or batch0)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _pick_device(settings.device, local_rank)
    out = Path(settings.out)

    # ---- check every input before writing anything
    train_rows, val_items = _plan_data(settings, crop)
    n_train = sum(len(t) for t in train_rows)
    if settings.steps is not None:
        total = int(settings.steps)
    else:
        total = max(1, math.ceil(settings.epochs * n_train / (batch * world)))
    content, content_info = _content_loss(settings)
    recipe = settings.recipe(crop, batch)
    ckpt = None
    if any((out / name).exists() for name in (MANIFEST, PROGRESS)):
        # Training into a dataset would mix a checkpoint into its shards (and, with --data the
        # same folder, into the data being read).
        raise BadInputError(f"--out {out} is a dataset folder; expected a folder for the training "
                            "run. Choose another --out.")
    precision = resolve_precision(settings.precision, device)
    if (out / CHECKPOINT).exists():
        ckpt = load_checkpoint(out)  # first: another kind of run is named as such
        if not settings.resume:
            raise BadInputError(f"--out {out}: already holds a training run; pass --resume to "
                                f"continue it or choose another --out.")
        if ckpt["model_config"] != config.to_dict():
            raise BadInputError(
                f"{out / CHECKPOINT}: checkpoint is of config {ckpt['model_config']['name']!r} "
                f"({ckpt['model_config']}); this run asks for {config.name!r}. Pass the same "
                f"--config or another --out.")
        diff = [k for k in recipe if ckpt["recipe"].get(k) != recipe[k]]
        if diff:
            k = diff[0]
            raise BadInputError(
                f"{out / CHECKPOINT}: checkpoint was trained with {k}={ckpt['recipe'].get(k)!r}; "
                f"this run asks for {recipe[k]!r}. Resume with the same settings or use another "
                f"--out.")
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
            # Allowed (a run may be lengthened), but the schedule follows the new length.
            at = done
            sys.stderr.write(
                f"warning: {out} was a run of {planned} steps, now {total}: the learning rate "
                f"(constant for the first half, then falling to 0) is recomputed for {total} steps, "
                f"so at step {at} it moves from {lr_at(at, planned, settings.lr):.3g} to "
                f"{lr_at(at, total, settings.lr):.3g}.\n")
    elif out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out}: is a file; expected a folder for the run.")
    elif out.is_dir():
        # A run stopped before its first checkpoint leaves only names of its own; anything
        # else is someone's folder, which a run must not write into. Every rank checks (no rank
        # writes before all have joined the process group), so none is left waiting.
        foreign = sorted(p.name for p in out.iterdir() if not _is_run_name(p.name))
        if foreign:
            raise BadInputError(
                f"--out {out}: is a non-empty folder that is not a training run (it holds "
                f"{foreign[0]!r}); choose a new or empty folder.")

    # ---- build
    distributed = world > 1
    if distributed:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    gen, critic = build_models(config, seed=seed, init=settings.init)
    on_cuda = device.type == "cuda"
    mem = torch.channels_last if on_cuda else torch.contiguous_format
    gen, critic = gen.to(device, memory_format=mem), critic.to(device, memory_format=mem)
    content = content.to(device)
    if distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if on_cuda else None
        gen, critic = DDP(gen, device_ids=ids), DDP(critic, device_ids=ids)
    amp = precision == "bf16"
    trainer = Trainer(gen, critic, content, lr=settings.lr, critic_steps=settings.critic_steps,
                      gp_weight=settings.gp_weight, content_weight=settings.content_weight,
                      seed=seed, rank=rank, amp=amp)
    start = 0
    if ckpt is not None:
        trainer.load_state_dict(ckpt, rank=rank)
        start = int(ckpt["step"])

    main_proc = rank == 0
    if main_proc:
        out.mkdir(parents=True, exist_ok=True)
        (out / "val").mkdir(exist_ok=True)
        if ckpt is None:
            meta = {"settings": {k: (list(v) if isinstance(v, tuple) else v)
                                 for k, v in asdict(settings).items()},
                    "model_config": config.to_dict(), "recipe": recipe, "crop": crop,
                    "batch_size": batch, "world_size": world, "total_steps": total,
                    "content_loss": content_info, "precision": precision,
                    "n_train_pairs": n_train,
                    "val_pairs": [[p, i] for p, i in val_items],
                    "torch": torch.__version__, "python": sys.version.split()[0]}
            atomic_write_text(out / RUN_JSON, json.dumps(meta, indent=1, default=str) + "\n")
    metrics_rows = _read_metrics(out / METRICS_CSV, start) if main_proc else []
    tb = None
    if main_proc:
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(out / "tensorboard"))
        except Exception:  # tensorboard not installed: the CSV is the record
            tb = None

    dataset = MixedPairs([d.path for d in settings.data], train_rows,
                         [d.weight for d in settings.data], seed=seed, crop=crop)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=PositionSampler(start, total, batch, rank, world),
        num_workers=max(int(settings.workers), 0), pin_memory=on_cuda,
        persistent_workers=False, prefetch_factor=4 if settings.workers > 0 else None)
    val = _load_val(val_items, settings.val_crop) if main_proc else []

    def save(step, rng_ranks=None):
        if main_proc:
            state = trainer.state_dict()
            if rng_ranks is not None:
                state["rng_ranks"] = rng_ranks
            state.update({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                          "precision": precision,
                          "step": step, "total_steps": total, "model_config": config.to_dict(),
                          "recipe": recipe, "content_loss": content_info})
            atomic_torch_save(state, out / CHECKPOINT)
            _write_metrics(out / METRICS_CSV, metrics_rows)

    def validate(step, losses):
        figures, triples = _validate(_unwrap(gen), val, device)
        _save_triples(out / "val" / f"step-{step:07d}.png", triples)
        return figures

    bar = None
    if main_proc and settings.progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)
    t0 = time.perf_counter()
    losses, figures, step = {}, {}, start
    try:
        for step, (blurred, sharp) in enumerate(loader, start=start + 1):
            trainer.set_lr(lr_at(step - 1, total, settings.lr))
            blurred = to_model_range(blurred.to(device, non_blocking=True, memory_format=mem))
            sharp = to_model_range(sharp.to(device, non_blocking=True, memory_format=mem))
            losses = trainer.step(blurred, sharp)
            saving = step % settings.checkpoint_every == 0 or step == total
            rng_ranks = None
            if distributed and saving:
                # Every rank's generators go into the checkpoint, so a resumed run
                # continues each rank's masks and penalty mixes exactly.
                rng_ranks = [None] * world
                torch.distributed.all_gather_object(rng_ranks, trainer.rng_state())
            if not main_proc:
                continue
            row = None
            if step % settings.log_every == 0 or step == total:
                row = dict(losses, step=step, lr=lr_at(step - 1, total, settings.lr))
            if val and (step % settings.val_every == 0 or step == total):
                figures = validate(step, losses)
                row = dict(row or dict(losses, step=step, lr=lr_at(step - 1, total, settings.lr)),
                           **figures)
            if row is not None:
                row["seconds"] = time.perf_counter() - t0
                metrics_rows.append({k: _fmt(v) for k, v in row.items()})
                if tb is not None:
                    for k, v in row.items():
                        if k not in ("step",) and isinstance(v, float) and math.isfinite(v):
                            tb.add_scalar(k, v, step)
            if saving:
                save(step, rng_ranks)
            if bar is not None:
                if settings.critic_steps:
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
            "rank": rank,
            "content_loss": content_info, "n_train_pairs": n_train, "n_val_pairs": len(val_items)}
