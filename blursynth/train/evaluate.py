"""Evaluation of a trained generator on pair datasets, and deblurring of photos of any size."""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._stopping import stop_if_asked
from ..dataset.outputs import OutputKind, claim, lock_output, remove_temporaries, write_output_file
from ..dataset.split import SPLIT_BY, split_indices, split_keys
from ..errors import BadInputError
from ..nn.device import resolve_device
from .data import open_pairs, to_tensor
from .checkpoints import load_generator
from .tiling import deblur_tensor


@dataclass(frozen=True)
class EvaluateSettings:
    """``blursynth evaluate``: ``split="heldout"`` scores only the pairs a run set aside
    (same hash rule, fraction and ``split_by`` as the run), ``"all"`` every pair.

    ``protocol``: a name of :data:`blursynth.train.protocols.PROTOCOLS`, or ``auto`` (each row
    by :func:`~blursynth.train.protocols.default_protocol`). ``csv_path``: one line per image;
    ``save_outputs``: a folder for the deblurred images (``<dataset>/<pair id>.png``).
    """

    model: str
    data: tuple  # of str
    split: str = "all"
    val_fraction: float | None = None  # None: the run's own
    split_by: str | None = None  # None: the run's own (pair for runs that do not record one)
    limit: int | None = None
    tile: int = 1024
    norm_stats: str = "global"
    device: str = "auto"
    json_path: str | None = None
    protocol: str = "auto"
    csv_path: str | None = None
    save_outputs: str | None = None
    lpips: object = None  # a blursynth.nn.lpips model, scored as the protocols' "lpips"
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


def _check_report_path(p: Path, option: str = "--json", suffix: str = ".json") -> None:
    """Refuse a report path (``--json``, ``--csv``) that could not be written, before the
    scoring runs."""
    if p.is_dir():
        raise BadInputError(f"{option} {p}: is a folder; expected a file name such as "
                            f"{p / ('scores' + suffix)}.")
    if p.exists() and p.suffix.lower() != suffix:
        raise BadInputError(f"{option} {p}: exists and is not a {suffix} file; the report would "
                            f"replace it. Choose a name ending in {suffix}.")
    parent = next((a for a in p.absolute().parents if a.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise BadInputError(f"{option} {p}: cannot write in {parent}; choose a location you can "
                            "write to.")


#: Seam cross-fade of ``evaluate``'s tiles, in pixels (``deblur`` takes ``--blend``).
EVALUATE_BLEND = 16


def _check_tiling(tile: int, norm_stats: str) -> None:
    if norm_stats not in ("global", "tile"):
        raise BadInputError(f"--norm-stats must be global or tile; got {norm_stats!r}.")
    if tile % 4 or tile < 64:
        raise BadInputError(f"--tile must be a multiple of 4, at least 64; got {tile}.")


def _check_halo(gen, tile: int, blend: int) -> None:
    """Refuse a ``--tile`` that leaves no core inside the halo, naming the smallest that runs
    (a larger one runs fewer tiles, so faster)."""
    from .tiling import smallest_tile, tile_halo

    need = smallest_tile(gen, blend)
    if tile < need:
        raise BadInputError(f"--tile {tile} is too small for this model's halo of "
                            f"{tile_halo(gen, blend)} px a side; use --tile {need} or more.")


def _runs_in_tiles(gen, height: int, width: int, tile: int) -> bool:
    """Whether :func:`~blursynth.train.tiling.deblur_tensor` runs an image of this size in
    tiles (a model with a long reach, such as deblurgan-v2's paper-inception, then needs a
    large ``--tile``; an image that fits runs whole with any)."""
    from .tiling import _round_up, multiple_of

    m = multiple_of(gen)
    if getattr(gen, "tiling", None) == "whole":
        return False
    return max(_round_up(height, m), _round_up(width, m)) > tile // m * m


def check_protocol(protocol: str) -> None:
    """Refuse a ``--protocol`` that is neither ``auto`` nor one of the protocols, in one line."""
    from .protocols import PROTOCOLS

    if protocol != "auto" and protocol not in PROTOCOLS:
        raise BadInputError(f"--protocol {protocol!r}: unknown; expected auto or one of "
                            f"{', '.join(PROTOCOLS)}.")


def run_split_by(ckpt: dict, split_by: str | None) -> str:
    """The ``--split-by`` of a run's held-out pairs: ``split_by`` when given, else the run's
    recorded one, else ``pair`` (runs made before splits by source were recorded)."""
    if split_by is not None:
        if split_by not in SPLIT_BY:
            raise BadInputError(f"--split-by must be one of {', '.join(SPLIT_BY)}; got "
                                f"{split_by!r}.")
        return split_by
    return str(ckpt.get("recipe", {}).get("split_by", "pair"))


def plan_rows(settings: EvaluateSettings, ckpt: dict) -> list:
    """``[(path, dataset, rows)]`` to score: every row, or the rows the run held out."""
    plan = []
    for path in settings.data:
        ds = open_pairs(path, verify=settings.verify)
        if settings.split == "heldout":
            trained_on = {str(d[0]) for d in ckpt["recipe"].get("data", [])}
            if trained_on and str(Path(path).resolve()) not in trained_on:
                # Still scored (the dataset may have moved), but the user should know.
                sys.stderr.write(
                    f"warning: --data {path} is not one of the datasets {settings.model} was "
                    "trained on; --split heldout scores the pairs its split rule would hold out "
                    "from a dataset that run did not train on.\n")
            frac = settings.val_fraction
            if frac is None:
                frac = float(ckpt["recipe"].get("val_fraction", 0.05))
            _, rows = split_indices(split_keys(ds, run_split_by(ckpt, settings.split_by)), frac)
        else:
            rows = np.arange(len(ds))
        if settings.limit:
            rows = rows[: settings.limit]
        if len(rows) == 0:
            raise BadInputError(f"--data {path}: no pairs to evaluate in split {settings.split!r}.")
        check_rows_scorable(path, ds, rows, settings.protocol)
        warn_mixed_splits(path, ds, rows)
        plan.append((str(path), ds, rows))
    return plan


def check_rows_scorable(path, ds, rows, protocol: str) -> None:
    """Refuse, in one line and before any row is deblurred, a planned row its protocol cannot
    score: levin (chosen, or a Levin row's own under auto) needs the row's true kernel, kohler
    its recorded frames (an import records their count in params). Only the psf and params
    columns are read, not the images."""
    from .protocols import default_protocol

    for i in rows:
        raw = ds.raw(int(i), columns=["id", "psf", "params"])
        params = json.loads(raw["params"]) if raw.get("params") else {}
        name = default_protocol(params) if protocol == "auto" else protocol
        # a row without ground truth is scored by sharpness under any protocol
        if params.get("ground_truth") is False:
            continue
        if name == "levin" and raw.get("psf") is None:
            raise BadInputError(f"--data {path}: pair {raw['id']} has no true kernel (psf), which "
                                "the levin protocol needs; import the set with `dataset import "
                                "--layout levin`, or score it with --protocol plain.")
        if name == "kohler" and not params.get("gt_frame_count"):
            raise BadInputError(f"--data {path}: pair {raw['id']} has no recorded ground-truth "
                                "frames, which the kohler protocol needs; import the set with "
                                "`dataset import --layout kohler`, or score it with --protocol "
                                "plain.")


def warn_mixed_splits(path, ds, rows) -> None:
    """Warn when the planned rows come from more than one of the set's own splits (an import of
    every list of RealBlur, RSBlur, GoPro or REDS): published figures score the test split
    alone, and a mean over train and test rows compares with none of them."""
    counts = {}
    for i in rows:
        params = ds.raw(int(i), columns=["params"]).get("params")
        split = json.loads(params).get("split") if params else None
        if split is not None:
            counts[split] = counts.get(split, 0) + 1
    if len(counts) > 1:
        listed = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        sys.stderr.write(f"warning: --data {path}: the scored rows come from the set's splits "
                         f"{listed}, averaged together; published figures score its test split "
                         "alone (dataset import --split test).\n")


def output_labels(paths) -> list:
    """A folder name per dataset for saved outputs: its own name, numbered where two share one."""
    names = [Path(p).resolve().name or "data" for p in paths]
    return [n if names.count(n) == 1 else f"{n}-{k}" for k, n in enumerate(names)]


def check_outputs_folder(folder, plan, labels, *, refuse_existing: bool = True) -> list:
    """The output file of every planned row under ``folder``; refuses (one line) a file that
    is in the way or (``refuse_existing``) already exists, before any scoring."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise BadInputError(f"--save-outputs {folder}: is a file; expected a folder.")
    dests = []
    for (path, ds, rows), label in zip(plan, labels):
        ids = ds.table
        dests.append([folder / label / f"{ids.row(int(i), columns=['id'])['id']}.png"
                      for i in rows])
    base = folder.resolve()
    for d in (d for per in dests for d in per):
        # An id is the set's own relative path; one with ``..`` (a hand-made set) would put an
        # output, perhaps over an existing file, outside the folder.
        if not d.resolve().is_relative_to(base):
            raise BadInputError(f"--save-outputs: pair id {d.relative_to(folder).as_posix()!r} "
                                f"would write outside {folder}; ids must not climb out with '..'.")
        if refuse_existing and d.exists():
            raise BadInputError(f"--save-outputs: {d} already exists; choose another folder "
                                "(outputs are never replaced).")
    parent = next((a for a in folder.absolute().parents if a.exists()), None)
    if not folder.exists() and (parent is None or not os.access(parent, os.W_OK | os.X_OK)):
        raise BadInputError(f"--save-outputs {folder}: cannot write in {parent}; choose a folder "
                            "you can write to.")
    return dests


def score_row(gen, pair, protocol: str, *, tile, norm_stats, lpips=None):
    """Deblur one decoded row and score input and output: ``(protocol name, output uint8,
    blurred scores, deblurred scores)``, the scores as :func:`blursynth.train.protocols.score`
    gives them (``auto``: the row's own protocol)."""
    from . import protocols

    name = protocols.default_protocol(pair["params"]) if protocol == "auto" else protocol
    if pair.get("sharp") is None and not pair.get("gt_frames"):
        name = "noref"  # what score() does for a row without ground truth, named as such
    if _runs_in_tiles(gen, *pair["blurred"].shape[:2], tile):
        _check_halo(gen, tile, EVALUATE_BLEND)  # only images run in tiles need room
    out = deblur_array(gen, pair["blurred"], tile=tile, blend=EVALUATE_BLEND, norm_stats=norm_stats)
    try:
        cache = {}  # the row's own work (Levin's reference deconvolution), done once
        before = protocols.score(name, pair["blurred"], pair, lpips=lpips, cache=cache)
        after = protocols.score(name, out, pair, lpips=lpips, cache=cache)
    except BadInputError:
        raise
    except (ValueError, KeyError) as exc:  # a row the protocol cannot score (no kernel, no frames)
        raise BadInputError(f"pair {pair.get('id')}: protocol {name} cannot score it "
                            f"({' '.join(str(exc).split())}); use --protocol auto.") from None
    return name, out, before, after


def score_plan(gen, plan, *, protocol, tile, norm_stats, lpips=None, labels=None, dests=None,
               bar=None) -> list:
    """Score every planned row: one record per image, ``{"dataset", "row", "id", "protocol",
    "blurred": {measure: value}, "deblurred": {...}, "output"}``; with ``dests`` (from
    :func:`check_outputs_folder`) each deblurred image is written there."""
    from ..sources.photos import save_rgb8

    labels = labels or [p for p, _, _ in plan]
    records = []
    # Folders the outputs would make: removed again, with what this run wrote, when a pair is
    # refused part way (a refusal writes nothing).
    made = [] if dests is None else sorted(
        {p for per in dests for d in per for p in (d.parent, *d.parent.parents) if not p.exists()},
        key=lambda p: -len(p.parts))
    try:
        for k, ((path, ds, rows), label) in enumerate(zip(plan, labels)):
            for j, i in enumerate(rows):
                pair = ds[int(i)]
                name, out, before, after = score_row(gen, pair, protocol, tile=tile,
                                                     norm_stats=norm_stats, lpips=lpips)
                dest = None
                if dests is not None:
                    dest = dests[k][j]
                    save_rgb8(dest, out)  # creates the folder; written under a temporary name
                records.append({"dataset": label, "path": path, "row": int(i),
                                "id": str(pair["id"]),
                                "protocol": name, "blurred": before, "deblurred": after,
                                "output": None if dest is None else str(dest)})
                stop_if_asked()
                if bar is not None:
                    bar.update(1)
    except BadInputError:
        for r in records:
            if r["output"]:
                Path(r["output"]).unlink(missing_ok=True)
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # not empty (someone else's file) or already gone
                pass
        raise
    return records


def _mean(values) -> float:
    # Over the finite values: an image identical to its reference (a static scene pair) has an
    # infinite PSNR, which would make the set's mean infinite or NaN; ``n_infinite`` counts them.
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


def summarize(records) -> dict:
    """Means over images of each measure, for the blurred input and the deblurred output, and
    the gains in PSNR and SSIM; measures a protocol gives only some images are averaged over
    those (``n_scored`` counts them)."""
    keys = []
    for r in records:
        keys += [k for k in r["deblurred"] if k not in keys]
    out = {"n_pairs": len(records), "protocols": ",".join(sorted({r["protocol"] for r in records}))}
    for kind in ("blurred", "deblurred"):
        out[kind] = {k: _mean([r[kind][k] for r in records if k in r[kind]]) for k in keys}
    out["n_scored"] = {k: sum(k in r["deblurred"] for r in records) for k in keys}
    infinite = {kind: sum(not np.isfinite(r[kind].get("psnr", 0.0)) for r in records)
                for kind in ("blurred", "deblurred")}
    if any(infinite.values()):
        out["n_infinite_psnr"] = infinite
    nan = float("nan")
    for k in ("psnr", "ssim"):
        out[f"gain_{k}" + ("_db" if k == "psnr" else "")] = (
            out["deblurred"].get(k, nan) - out["blurred"].get(k, nan))
    return out


def _finite_or_none(value):
    # JSON has no NaN or infinity (Python writes bare NaN, which strict parsers reject): a
    # measure not taken, or infinite, is written as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def report_json(report: dict) -> bytes:
    """A report as strict JSON (indented, a final newline): NaN and infinite values as null.

    Examples
    --------
    >>> report_json({"psnr": float("nan"), "n": 1})
    b'{\\n "psnr": null,\\n "n": 1\\n}\\n'
    """
    return (json.dumps(_finite_or_none(report), indent=1, allow_nan=False) + "\n").encode()


#: Per-image CSV: these columns first, then ``blurred_<measure>`` and ``deblurred_<measure>``.
CSV_HEAD = ("dataset", "row", "id", "protocol")


def per_image_csv(records) -> str:
    """One line per image: dataset, row, id, protocol, each measure of the blurred input and of
    the deblurred output (empty where the protocol does not give it), and the saved output."""
    import csv
    import io

    keys = []
    for r in records:
        keys += [k for k in r["deblurred"] if k not in keys]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*CSV_HEAD, *(f"{kind}_{k}" for k in keys for kind in ("blurred", "deblurred")),
                "output"])
    for r in records:
        w.writerow([r["dataset"], r["row"], r["id"], r["protocol"],
                    *(repr(float(r[kind][k])) if k in r[kind] else ""
                      for k in keys for kind in ("blurred", "deblurred")),
                    r["output"] or ""])
    return buf.getvalue()


def evaluate(settings: EvaluateSettings) -> dict:
    """Scores of the deblurred images and of the blurred inputs, by each row's protocol.

    Full images, the output quantised to 8 bits as ``deblur`` writes it, scored by
    :func:`blursynth.train.protocols.score` (``plain``: PSNR, scikit-image's Gaussian SSIM and
    the MATLAB-style SSIM; the other protocols as documented there).

    Returns
    -------
    report : dict
        ``{"model", "step", "arch", "config", "split", "protocol", "n_pairs", "deblurred": {measure: mean},
        "blurred": {...}, "gain_psnr_db", "gain_ssim", "datasets": {path: {...}}}``.
    """
    if settings.split not in ("all", "heldout"):
        raise BadInputError(f"--split must be all or heldout; got {settings.split!r}.")
    if not settings.data:
        raise BadInputError("no --data given; pass the pair dataset to evaluate on.")
    check_protocol(settings.protocol)
    if settings.json_path:
        _check_report_path(Path(settings.json_path))
    if settings.csv_path:
        _check_report_path(Path(settings.csv_path), "--csv", ".csv")
    _check_tiling(settings.tile, settings.norm_stats)
    device = resolve_device(settings.device)
    gen, ckpt = load_generator(settings.model, device)
    plan = plan_rows(settings, ckpt)
    dests = None
    if settings.save_outputs:
        labels = output_labels([p for p, _, _ in plan])
        dests = check_outputs_folder(settings.save_outputs, plan, labels)
    from .._startup import startup_over

    startup_over()  # the work begins: start-up's objects frozen, the collector back on
    bar = None
    if settings.progress:
        from .._progress import progress_bar

        bar = progress_bar(total=sum(len(r) for _, _, r in plan), desc="evaluate", unit="pair")
    try:
        records = score_plan(gen, plan, protocol=settings.protocol, tile=settings.tile,
                             norm_stats=settings.norm_stats, lpips=settings.lpips,
                             dests=dests, bar=bar)
    finally:
        if bar is not None:
            bar.close()
    report = {"model": str(settings.model), "step": int(ckpt["step"]),
              "arch": ckpt.get("arch") or "deblurgan", "config": ckpt["model_config"]["name"],
              "split": settings.split,
              "protocol": settings.protocol, **summarize(records),
              "datasets": {p: summarize([r for r in records if r["path"] == p])
                           for p, _, _ in plan}}
    if settings.split == "heldout":
        report["split_by"] = run_split_by(ckpt, settings.split_by)
    if settings.json_path:
        p = Path(settings.json_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        write_output_file(p, report_json(report), option="--json")
    if settings.csv_path:
        p = Path(settings.csv_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        write_output_file(p, per_image_csv(records).encode(), option="--csv")
    return report


#: Measures shown beside PSNR and SSIM in the text table, when some image has them.
EXTRA_COLUMNS = (("ssim_matlab", "SSIM-M"), ("lpips", "LPIPS"), ("error_ratio", "err.ratio"),
                 ("sharpness", "sharpness"))


def format_report(report: dict) -> str:
    """The evaluation as a text table: blurred input beside the deblurred output.

    PSNR dB and SSIM (scikit-image's Gaussian SSIM) first, then the MATLAB-style SSIM (SSIM-M),
    LPIPS, Levin's error ratio and the no-reference sharpness where some image was given them.
    """
    sets = report["datasets"]
    rows = list(sets.items()) + ([("all", report)] if len(sets) > 1 else [])
    extra = [(k, t) for k, t in EXTRA_COLUMNS if any(k in r["deblurred"] for _, r in rows)]
    lines = [f"model {report['model']} (step {report['step']}, "
             f"{report.get('arch', 'deblurgan')} {report['config']})",
             f"{'':24s} {'pairs':>6s} {'PSNR dB':>8s} {'SSIM':>7s}"
             + "".join(f" {t:>9s}" for _, t in extra)]

    for path, r in rows:
        name = path if len(path) <= 24 else "..." + path[-21:]
        lines.append(f"{name}  (protocol: {r['protocols']})")
        for kind in ("blurred", "deblurred"):
            m = r[kind]
            nan = float("nan")
            lines.append(f"  {kind + ' input' if kind == 'blurred' else kind:22s} "
                         f"{r['n_pairs']:6d} {format_measure(m.get('psnr', nan), '8.2f')} "
                         f"{format_measure(m.get('ssim', nan), '7.4f')}"
                         + "".join(f" {format_measure(m.get(k, nan), '9.4f')}" for k, _ in extra))
        if scored_note(r):
            lines.append(f"  {'images scored':22s} {scored_note(r)}")
        lines.append(f"  {'gain':22s} {'':6s} {format_measure(r['gain_psnr_db'], '+8.2f')} "
                     f"{format_measure(r['gain_ssim'], '+7.4f')}")
    return "\n".join(lines)


def scored_note(summary: dict) -> str:
    """How many images each headline measure covers, where that is not every pair ("" when it
    is): a set mixing rows with and without ground truth averages PSNR over some of its pairs
    and sharpness over the others.

    Examples
    --------
    >>> scored_note({"n_pairs": 8, "n_scored": {"psnr": 6, "ssim": 6, "sharpness": 2}})
    'psnr 6, sharpness 2'
    >>> scored_note({"n_pairs": 2, "n_scored": {"psnr": 2}})
    ''
    """
    counts = summary.get("n_scored", {})
    if all(n == summary["n_pairs"] for n in counts.values()):
        return ""
    return ", ".join(f"{k} {counts[k]}" for k in ("psnr", "sharpness") if counts.get(k))


def format_measure(value, fmt: str, missing: str = "-") -> str:
    """``value`` by the format spec ``fmt``, or ``missing`` (right-aligned to the spec's width)
    for NaN, a measure not taken: the text and markdown tables share it.

    Examples
    --------
    >>> format_measure(1.5, "6.2f"), format_measure(float("nan"), "6.2f")
    ('  1.50', '     -')
    """
    width = int(fmt.lstrip("+").split(".")[0] or 0)
    return f"{value:{fmt}}" if value == value else f"{missing:>{width}}"


#: ``deblur --out``: any folder (the outputs are checked by name: --overwrite).
DEBLURRED = OutputKind(what="deblurred photos",
                       is_file="--out {out}: is a file; expected a folder.",
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


def deblur_images(settings: DeblurSettings, deblur_fn=None) -> dict:
    """Deblur every input photo into ``out``; returns ``{"written": [...], "notes": [...]}``.

    Inputs are checked and the output names planned before any is written; existing outputs
    are refused unless ``overwrite``. ``deblur_fn``: ``uint8 (H, W, 3) -> uint8 (H, W, 3)``,
    a model of another kind loaded by the caller (``uid deblur``); None loads
    ``settings.model`` as a deblurring run and runs it in tiles.
    """
    from ..sources.photos import list_images

    gen = None
    if deblur_fn is None:
        _check_tiling(settings.tile, settings.norm_stats)
        device = resolve_device(settings.device)
        gen, _ = load_generator(settings.model, device)

        def deblur_fn(image):
            return deblur_array(gen, image, tile=settings.tile, blend=settings.blend,
                                norm_stats=settings.norm_stats)
    if not settings.inputs:
        raise BadInputError("no input photos given.")
    out = Path(settings.out)
    plan = []
    for item in settings.inputs:
        p = Path(item)
        if p.is_dir() and (p / "manifest.json").is_file():
            # A pair dataset (a blur step's output, 'uid train --real-blur'): its blurred images,
            # each written as <pair id>.png, as 'uid train' and 'uid blur --blur-from' read them.
            from ..sources.image_sets import ImageSet

            images = ImageSet(p, column="blurred", option="input")
            plan += [(_PairImage(images, i), out / f"{pair_id}.png")
                     for i, pair_id in enumerate(images.ids)]
        elif p.is_dir():
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
    sources = {src.resolve(): src for src, _ in plan if isinstance(src, Path)}
    for _, dst in plan:
        if dst.resolve() in sources:
            raise BadInputError(f"{dst}: would replace the input photo {sources[dst.resolve()]}; "
                                "choose an "
                                "--out other than the input folder.")
    _check_existing(dests, settings.overwrite)
    from ..sources.photos import read_header

    for src, _ in plan:  # every input is checked before the first output is written
        try:
            # as displayed: EXIF orientation applied
            height, width = src.size() if isinstance(src, _PairImage) else read_header(src)[:2]
        except BadInputError:
            raise  # truncated, or over the pixel limit (blur's words)
        except Exception as exc:
            raise BadInputError(f"{src}: cannot read this image ({exc}).") from None
        if min(width, height) < 8:
            raise BadInputError(f"{src}: {height}x{width} is too small; images must be at least 8 "
                                "px a side.")
        if gen is not None and _runs_in_tiles(gen, height, width, settings.tile):
            _check_halo(gen, settings.tile, settings.blend)  # as evaluate: only tiled images
    claimed = claim(out, DEBLURRED)  # before the first (possibly long) deblur, not after it
    written, notes = [], []
    # outside the try: a refused run must not undo the folder the other one writes. keep=False:
    # the folder is a list of images that users glob, so the lock file goes with the run.
    with lock_output(out, keep=False):
        # Again, outside the try too: another run may have written them meanwhile, into the folder
        # this claim made, and undoing that folder would remove its outputs.
        _check_existing(dests, settings.overwrite)
        for folder in sorted({d.parent for d in dests}):  # what a killed run of these outputs left
            remove_temporaries(folder, {d.name for d in dests if d.parent == folder}.__contains__)
        from .._startup import startup_over

        startup_over()  # the work begins: start-up's objects frozen, the collector back on
        bar = None
        if settings.progress:  # once nothing can refuse the run: a refusal is its one line
            from .._progress import progress_bar

            bar = progress_bar(total=len(plan), desc="deblur", unit="image")
        try:
            _deblur_each(plan, deblur_fn, written, notes, bar)
        except BaseException:
            if not written:
                claimed.undo()
            raise
        finally:
            if bar is not None:
                bar.close()
    return {"written": written, "notes": notes}


class _PairImage:
    """The blurred image of pair ``i`` of a dataset given to ``deblur`` (stored RGB8)."""

    def __init__(self, images, i: int):
        self.images, self.i = images, i

    def __str__(self) -> str:
        return self.images.describe(self.i)

    def size(self) -> tuple:
        from ..sources.photos import header_size

        raw = self.images._dataset().raw(self.i, columns=["blurred"])["blurred"]["bytes"]
        hw = header_size(raw)
        return tuple(hw) if hw is not None else self.load()[0].shape[:2]

    def load(self) -> tuple:
        return self.images.load(self.i), None


def _check_existing(dests, overwrite: bool) -> None:
    exist = [] if overwrite else [d for d in dests if d.exists()]
    if exist:
        raise BadInputError(f"{exist[0]}: already exists; pass --overwrite to replace "
                            "outputs or choose another --out.")


def _deblur_each(plan, deblur_fn, written, notes, bar):
    """Deblur and write each (source, destination) of ``plan``, appending to ``written``."""
    from ..sources.photos import GRAY_MODES, load_rgb8, read_header, save_rgb8

    for src, dst in plan:
        image, note = src.load() if isinstance(src, _PairImage) else load_rgb8(src)
        if note:
            notes.append(f"{src}: {note}")
        if min(image.shape[:2]) < 8:
            raise BadInputError(f"{src}: {image.shape[0]}x{image.shape[1]} is too small; "
                                "images must be at least 8 px a side.")
        result = deblur_fn(image)
        if isinstance(src, Path) and read_header(src)[2] in GRAY_MODES:
            # A gray photo goes in as three equal channels and comes back gray: their mean.
            result = np.rint(result.mean(axis=2)).astype(np.uint8)
        save_rgb8(dst, result)  # creates the folder; written to a temporary name and renamed
        written.append(str(dst))
        stop_if_asked()
        if bar is not None:
            bar.update(1)
