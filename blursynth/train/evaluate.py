"""Evaluation of a trained generator on pair datasets, and deblurring of photos of any size."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..dataset.outputs import OutputKind, claim, lock_output, remove_temporaries, write_output_file
from ..errors import BadInputError
from ..nn.device import resolve_device
from .data import open_pairs, pair_ids, split_indices, to_tensor
from .loop import load_generator
from .metrics import psnr, ssim
from .tiling import deblur_tensor


@dataclass(frozen=True)
class EvaluateSettings:
    """``blursynth evaluate``: ``split="heldout"`` scores only the pairs a run set aside
    (same hash rule and fraction as the run), ``"all"`` every pair."""

    model: str
    data: tuple  # of str
    split: str = "all"
    val_fraction: float | None = None  # None: the run's own
    limit: int | None = None
    tile: int = 1024
    norm_stats: str = "global"
    device: str = "auto"
    json_path: str | None = None
    progress: bool = True
    verify: bool = True  # hash each dataset's shards against its manifest (--no-verify)


def deblur_array(gen, image_u8, *, tile=1024, blend=16, norm_stats="global") -> np.ndarray:
    """Deblur one uint8 ``(H, W, 3)`` RGB image with a generator; returns uint8 ``(H, W, 3)``.

    Examples
    --------
    >>> from blursynth.train.models import CONFIGS, build_models
    >>> g, _ = build_models(CONFIGS["small"], seed=0)
    >>> deblur_array(g, np.zeros((30, 41, 3), np.uint8)).shape
    (30, 41, 3)
    """
    x = to_tensor(image_u8)[None]
    y = deblur_tensor(gen, x, tile=tile, blend=blend, norm_stats=norm_stats)
    return (y[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def _check_json_path(p: Path) -> None:
    """Refuse a --json path the report could not be written to, before the scoring runs."""
    if p.is_dir():
        raise BadInputError(f"--json {p}: is a folder; expected a file name such as {p / 'scores.json'}.")
    if p.exists() and p.suffix.lower() != ".json":
        raise BadInputError(f"--json {p}: exists and is not a .json file; the report would replace it. "
                            "Choose a name ending in .json.")
    parent = next((a for a in p.absolute().parents if a.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise BadInputError(f"--json {p}: cannot write in {parent}; choose a location you can write to.")


#: Seam cross-fade of ``evaluate``'s tiles, in pixels (``deblur`` takes ``--blend``).
EVALUATE_BLEND = 16


def _check_tiling(tile: int, norm_stats: str) -> None:
    if norm_stats not in ("global", "tile"):
        raise BadInputError(f"--norm-stats must be global or tile; got {norm_stats!r}.")
    if tile % 4 or tile < 64:
        raise BadInputError(f"--tile must be a multiple of 4, at least 64; got {tile}.")


def _check_halo(gen, tile: int, blend: int) -> None:
    halo = gen.receptive_radius() + blend
    if tile < 2 * halo + 8:
        raise BadInputError(f"--tile {tile} is too small for this model's halo of "
                            f"{halo} px a side; use --tile {((2 * halo + 64) // 4) * 4} or more.")


def evaluate(settings: EvaluateSettings) -> dict:
    """PSNR and SSIM of the deblurred images and of the blurred inputs against the sharp ones.

    Full images, the output quantised to 8 bits as ``deblur`` writes it; SSIM as
    :func:`blursynth.train.metrics.ssim` (scikit-image's Gaussian SSIM).

    Returns
    -------
    report : dict
        ``{"model", "n_pairs", "deblurred": {"psnr", "ssim"}, "blurred": {...},
        "gain_psnr_db", "datasets": {path: {...}}}``.
    """
    if settings.split not in ("all", "heldout"):
        raise BadInputError(f"--split must be all or heldout; got {settings.split!r}.")
    if not settings.data:
        raise BadInputError("no --data given; pass the pair dataset to evaluate on.")
    if settings.json_path:
        _check_json_path(Path(settings.json_path))
    _check_tiling(settings.tile, settings.norm_stats)
    device = resolve_device(settings.device)
    gen, ckpt = load_generator(settings.model, device)
    plan = []
    for path in settings.data:
        ds = open_pairs(path, verify=settings.verify)
        if settings.split == "heldout":
            trained_on = {str(d[0]) for d in ckpt["recipe"].get("data", [])}
            if trained_on and str(Path(path).resolve()) not in trained_on:
                # Still scored (the dataset may have moved), but the user should know.
                sys.stderr.write(
                    f"warning: --data {path} is not one of the datasets {settings.model} was "
                    "trained on; --split heldout scores the pairs its ids would hold out from a "
                    "dataset that run did not train on.\n")
            frac = settings.val_fraction
            if frac is None:
                frac = float(ckpt["recipe"].get("val_fraction", 0.05))
            _, rows = split_indices(pair_ids(ds), frac)
        else:
            rows = np.arange(len(ds))
        if settings.limit:
            rows = rows[: settings.limit]
        if len(rows) == 0:
            raise BadInputError(f"--data {path}: no pairs to evaluate in split {settings.split!r}.")
        plan.append((path, ds, rows))
    per = {}
    bar = None
    if settings.progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(r) for _, _, r in plan), desc="evaluate", unit="pair")
    for path, ds, rows in plan:
        scores = []
        for i in rows:
            pair = ds[int(i)]
            if max(-(-n // 4) * 4 for n in pair["blurred"].shape[:2]) > settings.tile:
                _check_halo(gen, settings.tile, EVALUATE_BLEND)  # only images run in tiles need room
            out = deblur_array(gen, pair["blurred"], tile=settings.tile, blend=EVALUATE_BLEND,
                               norm_stats=settings.norm_stats)
            t = lambda a: to_tensor(a)[None].double()  # noqa: E731
            o, b, s = t(out), t(pair["blurred"]), t(pair["sharp"])
            scores.append([float(psnr(o, s)), float(ssim(o, s)), float(psnr(b, s)),
                           float(ssim(b, s))])
            if bar is not None:
                bar.update(1)
        per[str(path)] = np.array(scores)
    if bar is not None:
        bar.close()
    allv = np.concatenate(list(per.values()))

    def summary(a):
        m = np.mean(np.where(np.isfinite(a), a, np.nan), axis=0)
        return {"n_pairs": int(len(a)),
                "deblurred": {"psnr": float(m[0]), "ssim": float(m[1])},
                "blurred": {"psnr": float(m[2]), "ssim": float(m[3])},
                "gain_psnr_db": float(m[0] - m[2]), "gain_ssim": float(m[1] - m[3])}

    report = {"model": str(settings.model), "step": int(ckpt["step"]),
              "config": ckpt["model_config"]["name"], "split": settings.split,
              **summary(allv), "datasets": {p: summary(a) for p, a in per.items()}}
    if settings.json_path:
        p = Path(settings.json_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        write_output_file(p, (json.dumps(report, indent=1) + "\n").encode(), option="--json")
    return report


def format_report(report: dict) -> str:
    """The evaluation as a text table: blurred input beside the deblurred output."""
    lines = [f"{'':24s} {'pairs':>6s} {'PSNR dB':>8s} {'SSIM':>7s}"]
    sets = report["datasets"]
    for path, r in list(sets.items()) + ([("all", report)] if len(sets) > 1 else []):
        name = path if len(path) <= 24 else "..." + path[-21:]
        lines.append(name)
        for kind in ("blurred", "deblurred"):
            lines.append(f"  {kind + ' input' if kind == 'blurred' else kind:22s} "
                         f"{r['n_pairs']:6d} {r[kind]['psnr']:8.2f} {r[kind]['ssim']:7.4f}")
        lines.append(f"  {'gain':22s} {'':6s} {r['gain_psnr_db']:+8.2f} {r['gain_ssim']:+7.4f}")
    return "\n".join(lines)


#: ``deblur --out``: any folder (the outputs are checked by name: --overwrite).
DEBLURRED = OutputKind(what="deblurred photos", is_file="--out {out}: is a file; expected a folder.",
                       foreign="", own=lambda name: True)


@dataclass(frozen=True)
class DeblurSettings:
    """``blursynth deblur``: photos (files or folders) -> PNGs with the same relative names."""

    model: str
    inputs: tuple  # of str
    out: str
    tile: int = 1024
    blend: int = 16
    norm_stats: str = "global"
    device: str = "auto"
    overwrite: bool = False
    progress: bool = True


def deblur_images(settings: DeblurSettings) -> dict:
    """Deblur every input photo into ``out``; returns ``{"written": [...], "notes": [...]}``.

    Inputs are checked and the output names planned before any is written; existing outputs
    are refused unless ``overwrite``.
    """
    from ..sources.photos import list_images

    _check_tiling(settings.tile, settings.norm_stats)
    device = resolve_device(settings.device)
    gen, _ = load_generator(settings.model, device)
    _check_halo(gen, settings.tile, settings.blend)
    if not settings.inputs:
        raise BadInputError("no input photos given.")
    out = Path(settings.out)
    plan = []
    for item in settings.inputs:
        p = Path(item)
        if p.is_dir():
            files = list_images(p, exclude=out)  # an --out inside it holds outputs, not inputs
            if not files:
                raise BadInputError(f"{p}: no images (png, jpg, tif, webp, bmp) in this folder.")
            plan += [(Path(f), out / Path(f).relative_to(p).with_suffix(".png")) for f in files]
        elif p.is_file():
            plan.append((p, out / (p.stem + ".png")))
        else:
            raise BadInputError(f"{p}: no such file or folder.")
    dests = [d for _, d in plan]
    if len(set(dests)) != len(dests):
        raise BadInputError("two inputs would be written to the same output name; deblur them "
                            "into separate --out folders.")
    claim(out, DEBLURRED, create=False)
    sources = {src.resolve(): src for src, _ in plan}
    for _, dst in plan:
        if dst.resolve() in sources:
            raise BadInputError(f"{dst}: would replace the input photo {sources[dst.resolve()]}; choose an "
                                "--out other than the input folder.")
    _check_existing(dests, settings.overwrite)
    from ..sources.photos import read_header

    for src, _ in plan:  # every input is checked before the first output is written
        try:
            height, width = read_header(src)[:2]  # as displayed: EXIF orientation applied
        except BadInputError:
            raise  # truncated, or over the pixel limit (blur's words)
        except Exception as exc:
            raise BadInputError(f"{src}: cannot read this image ({exc}).") from None
        if min(width, height) < 8:
            raise BadInputError(f"{src}: {height}x{width} is too small; images must be at least 8 px a side.")
    claimed = claim(out, DEBLURRED)  # before the first (possibly long) deblur, not after it
    written, notes = [], []
    with lock_output(out):  # outside the try: a refused run must not undo the folder the other one writes
        # Again, outside the try too: another run may have written them meanwhile, into the folder
        # this claim made, and undoing that folder would remove its outputs.
        _check_existing(dests, settings.overwrite)
        for folder in sorted({d.parent for d in dests}):  # what a killed run of these outputs left
            remove_temporaries(folder, {d.name for d in dests if d.parent == folder}.__contains__)
        bar = None
        if settings.progress:  # once nothing can refuse the run: a refusal is its one line
            from tqdm import tqdm

            bar = tqdm(total=len(plan), desc="deblur", unit="image")
        try:
            _deblur_each(plan, gen, settings, written, notes, bar)
        except BaseException:
            if not written:
                claimed.undo()
            raise
        finally:
            if bar is not None:
                bar.close()
    return {"written": written, "notes": notes}


def _check_existing(dests, overwrite: bool) -> None:
    exist = [] if overwrite else [d for d in dests if d.exists()]
    if exist:
        raise BadInputError(f"{exist[0]}: already exists; pass --overwrite to replace "
                            f"outputs or choose another --out.")


def _deblur_each(plan, gen, settings, written, notes, bar):
    """Deblur and write each (source, destination) of ``plan``, appending to ``written``."""
    from ..sources.photos import GRAY_MODES, load_rgb8, read_header, save_rgb8

    for src, dst in plan:
        image, note = load_rgb8(src)
        if note:
            notes.append(f"{src}: {note}")
        if min(image.shape[:2]) < 8:
            raise BadInputError(f"{src}: {image.shape[0]}x{image.shape[1]} is too small; "
                                f"images must be at least 8 px a side.")
        result = deblur_array(gen, image, tile=settings.tile, blend=settings.blend,
                              norm_stats=settings.norm_stats)
        if read_header(src)[2] in GRAY_MODES:
            # A gray photo goes in as three equal channels and comes back gray: their mean.
            result = np.rint(result.mean(axis=2)).astype(np.uint8)
        save_rgb8(dst, result)  # creates the folder; written to a temporary name and renamed
        written.append(str(dst))
        if bar is not None:
            bar.update(1)
