"""``blursynth benchmark``: one trained run scored on several test sets, each by its protocol, as
one report folder (table in markdown and JSON, per-image CSV, deblurred images, a contact sheet
of the worst and best images)."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..dataset.outputs import OutputKind, atomic_write_bytes, claim, lock_output
from ..errors import BadInputError
from ..nn.device import resolve_device
from .evaluate import (
    EXTRA_COLUMNS, EvaluateSettings, _check_tiling, check_outputs_folder, check_protocol,
    deblur_array, EVALUATE_BLEND, format_measure, per_image_csv, plan_rows, report_json,
    score_plan, scored_note, summarize,
)
from .checkpoints import load_generator

#: What a benchmark folder holds.
REPORT_MD, REPORT_JSON, PER_IMAGE_CSV, SHEET, OUTPUTS = (
    "report.md", "report.json", "per_image.csv", "worst_best.png", "outputs")
_OWN = {REPORT_MD, REPORT_JSON, PER_IMAGE_CSV, SHEET, OUTPUTS}
#: The hidden folder a run writes its report into before moving it into place.
STAGING = ".benchmark-staging"

BENCHMARK = OutputKind(
    what="benchmark report",
    is_file="--out {out}: is a file; expected a folder.",
    foreign="--out {out} is not a benchmark report (it holds {name}); choose a new folder.",
    own=lambda name: name in _OWN or name.startswith("."),
    exists="--out {out} exists; choose a new folder or pass --overwrite (an earlier report only).",
)

_SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def parse_set(spec: str) -> tuple:
    """``NAME=PATH`` -> ``(name, path)``; names are file-name safe (they name output folders).

    Examples
    --------
    >>> parse_set("realblur-j=/data/RealBlur_J")
    ('realblur-j', '/data/RealBlur_J')
    """
    name, sep, path = str(spec).partition("=")
    if not sep or not path:
        raise BadInputError(f"--set {spec!r}: expected NAME=PATH, e.g. --set gopro=gopro_test/.")
    if not _SET_NAME.fullmatch(name):
        raise BadInputError(f"--set {spec!r}: the name {name!r} must be letters, digits, '_', "
                            "'.', '+' "
                            "or '-' (it names the set's output folder).")
    return name, path


@dataclass(frozen=True)
class BenchmarkSettings:
    """``blursynth benchmark``: ``sets`` is a tuple of ``(name, dataset path)``."""

    model: str
    sets: tuple
    out: str
    protocol: str = "auto"  # auto: each row's set's own (protocols.default_protocol)
    limit: int | None = None
    tile: int = 1024
    norm_stats: str = "global"
    device: str = "auto"
    save_outputs: bool = False
    sheet_count: int = 3  # worst and best images on the contact sheet, each
    overwrite: bool = False
    lpips: object = None
    progress: bool = True
    verify: bool = True


def benchmark(settings: BenchmarkSettings) -> dict:
    """Score the run on every set and write the report folder; returns the JSON report.

    Every check (sets, names, protocol, the folder) runs before the first image is scored.
    """
    if not settings.sets:
        raise BadInputError("no --set given; pass each test set as --set NAME=PATH.")
    names = [n for n, _ in settings.sets]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BadInputError(f"--set {dup[0]}: given twice; each set needs its own name.")
    check_protocol(settings.protocol)
    _check_tiling(settings.tile, settings.norm_stats)
    out = Path(settings.out)
    claim(out, BENCHMARK, overwrite=settings.overwrite, create=False)
    device = resolve_device(settings.device)
    gen, ckpt = load_generator(settings.model, device)
    plan = []
    for name, path in settings.sets:
        plan += plan_rows(EvaluateSettings(model=settings.model, data=(path,), limit=settings.limit,
                                           protocol=settings.protocol, verify=settings.verify),
                          ckpt)
    dests = None
    if settings.save_outputs:
        # Checked where the outputs end up; written first into the staging folder (below).
        dests = check_outputs_folder(out / OUTPUTS, plan, names,
                                     refuse_existing=not settings.overwrite)
    made = claim(out, BENCHMARK, overwrite=settings.overwrite)
    with lock_output(out):
        # Everything is written into a staging folder and moved into place only once every set
        # is scored: a run refused part way (a row the protocol cannot score) leaves an earlier
        # report as it was, and a refusal writes nothing.
        stage = out / STAGING
        if stage.exists():  # left by a killed run
            shutil.rmtree(stage)
        staged = None if dests is None else [[stage / d.relative_to(out) for d in per]
                                             for per in dests]
        try:
            report = _score_into(stage, settings, gen, ckpt, plan, names, staged)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            made.undo()
            raise
        _replace_report(out, stage)
    return report


def _score_into(stage: Path, settings, gen, ckpt, plan, names, dests) -> dict:
    """Score every planned row and write the whole report folder's content into ``stage``."""
    from .._startup import startup_over

    startup_over()  # the work begins: start-up's objects frozen, the collector back on
    bar = None
    if settings.progress:
        from .._progress import progress_bar

        bar = progress_bar(total=sum(len(r) for _, _, r in plan), desc="benchmark", unit="image")
    try:
        records = score_plan(gen, plan, protocol=settings.protocol, tile=settings.tile,
                             norm_stats=settings.norm_stats, lpips=settings.lpips, labels=names,
                             dests=dests, bar=bar)
    finally:
        if bar is not None:
            bar.close()
    report = {"model": str(settings.model), "step": int(ckpt["step"]),
              "config": ckpt["model_config"]["name"], "arch": ckpt.get("arch", "deblurgan"),
              "protocol": settings.protocol,
              "sets": {n: {"path": str(p), **summarize([r for r in records if r["dataset"] == n])}
                       for n, p in settings.sets}}
    stage.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(stage / REPORT_JSON, report_json(report))
    atomic_write_bytes(stage / REPORT_MD, (format_markdown(report) + "\n").encode())
    atomic_write_bytes(stage / PER_IMAGE_CSV, per_image_csv(records).encode())
    chosen = worst_and_best(records, settings.sheet_count)
    if chosen:
        write_contact_sheet(stage / SHEET, chosen, gen, dict(zip(names, plan)), settings)
    return report


def _replace_report(out: Path, stage: Path) -> None:
    """Move the staged report into ``out``, in place of an earlier report's files."""
    for name in _OWN:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    for p in stage.iterdir():
        p.rename(out / p.name)
    stage.rmdir()


#: Measures in the table, in this order, where some set has them: (key, heading, format).
TABLE_MEASURES = (("psnr", "PSNR dB", ".2f"), ("ssim", "SSIM", ".4f"),
                  *((k, t, ".4f") for k, t in EXTRA_COLUMNS))


def format_markdown(report: dict) -> str:
    """The report's table: per set, its protocol(s), pairs, and each measure as
    blurred input -> deblurred output, with the PSNR gain."""
    sets = report["sets"]
    cols = [(k, t, f) for k, t, f in TABLE_MEASURES
            if any(s["n_scored"].get(k) for s in sets.values())]
    head = ["set", "protocol", "pairs", *(f"{t} (blurred → deblurred)" for _, t, _ in cols),
            "PSNR gain dB"]
    lines = [f"Model: `{report['model']}` (step {report['step']}, {report['arch']} "
             f"{report['config']}); "
             "scores are means over images.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cell(s, k, f):
        b, d = s["blurred"].get(k, float("nan")), s["deblurred"].get(k, float("nan"))
        return "–" if d != d else f"{format_measure(b, f, '–')} → {format_measure(d, f, '–')}"

    for name, s in sets.items():
        gain = s["gain_psnr_db"]
        pairs = str(s["n_pairs"]) + (f" ({scored_note(s)})" if scored_note(s) else "")
        lines.append("| " + " | ".join([name, s["protocols"], pairs,
                                         *(cell(s, k, f) for k, _, f in cols),
                                         format_measure(gain, "+.2f", "–")]) + " |")
    # the reader of a report is pointed at the documentation, not at a Python function
    lines += ["", "SSIM: scikit-image's Gaussian SSIM; SSIM-M: the MATLAB-style SSIM papers report "
              "(docs/algorithms.md, \"Test-set protocols and measures\")."]
    return "\n".join(lines)


def _rank_key(record):
    """What the contact sheet ranks by: the PSNR gain over the blurred input, or for images
    without ground truth the gain in sharpness; None when neither is finite."""
    for k in ("psnr", "sharpness"):
        b, d = record["blurred"].get(k), record["deblurred"].get(k)
        if b is not None and d is not None and np.isfinite(b) and np.isfinite(d):
            return k, d - b
    return None


def worst_and_best(records, n: int) -> list:
    """``[("worst"|"best", record)]``: the ``n`` images the model helped least, then the ``n``
    it helped most (by :func:`_rank_key`; PSNR-scored images rank before sharpness-scored ones
    only among themselves: each group is ranked on its own and PSNR's is used when there is one)."""
    keyed = [(r, _rank_key(r)) for r in records]
    keyed = [(r, k) for r, k in keyed if k is not None]
    kind = "psnr" if any(k[0] == "psnr" for _, k in keyed) else "sharpness"
    ranked = sorted(((k[1], j, r) for j, (r, k) in enumerate(keyed) if k[0] == kind))
    if not ranked:
        return []
    n = min(n, (len(ranked) + 1) // 2)
    worst = [("worst", r) for _, _, r in ranked[:n]]
    best = [("best", r) for _, _, r in reversed(ranked[len(ranked) - n:]) if
            all(r is not w for _, w in worst)]
    return worst + best


#: Longest side of an image on the contact sheet.
SHEET_SIDE = 256


def _thumb(image_u8, side=SHEET_SIDE):
    import cv2

    from .data import to_tensor

    h, w = image_u8.shape[:2]
    f = side / max(h, w)
    if f != 1:
        # Small images are enlarged too (nearest neighbour: their pixels as they are), so every
        # tile is wide enough for its caption (about 40 characters at 256 px).
        image_u8 = cv2.resize(image_u8, (max(1, round(w * f)), max(1, round(h * f))),
                              interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_NEAREST)
    return to_tensor(image_u8)


def write_contact_sheet(path, chosen, gen, plans, settings) -> None:
    """blurred | deblurred | sharp for each chosen image (black where the set has no sharp
    image; for a Köhler row the frame it was scored against), each row headed by its rank, set,
    id and scores (PSNR and SSIM, or sharpness). The deblurred image is made again (the same
    deterministic pass that was scored)."""
    from ..nn.runs import save_sample_sheet

    rows, notes = [], []
    for rank, r in chosen:
        ds = plans[r["dataset"]][1]
        pair = ds[r["row"]]
        out = deblur_array(gen, pair["blurred"], tile=settings.tile, blend=EVALUATE_BLEND,
                           norm_stats=settings.norm_stats)
        sharp, third = pair["sharp"], ""
        if "best_frame" in r["deblurred"] and pair.get("gt_frames"):
            k = int(r["deblurred"]["best_frame"])
            sharp, third = pair["gt_frames"][k], f"{r['protocol']}: frame {k} (best)"
        elif sharp is None:
            sharp, third = np.zeros_like(pair["blurred"]), "(no ground truth)"
        else:
            third = r["protocol"]
        rows.append([_thumb(pair["blurred"]), _thumb(out), _thumb(sharp)])
        b, d = r["blurred"], r["deblurred"]
        if "psnr" in d:
            scores = f"psnr {b['psnr']:.2f} -> {d['psnr']:.2f} dB"
            if "ssim" in d:
                scores += f", ssim {b['ssim']:.3f} -> {d['ssim']:.3f}"
        else:
            scores = f"sharpness {b['sharpness']:.4f} -> {d['sharpness']:.4f}"
        notes.append([f"{rank}: {r['dataset']} {r['id']}", scores, third])
    save_sample_sheet(path, rows, len(rows), labels=["blurred", "deblurred", "sharp"], notes=notes)
