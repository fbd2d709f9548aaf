"""``blursynth dataset info|verify|preview|export|import``: look at, check, picture, convert datasets."""

from __future__ import annotations

import json

import click

from ._common import (
    echo_manifest, no_verify_option, overwrite_option, positive_int, quiet_option, refuse_unused_options,
    workers_option,
)


@click.group()
def dataset():
    """Look at, check, picture, convert or import a dataset."""


@dataset.command()
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@no_verify_option
def info(path, as_json, no_verify):
    """Rows, shards, size on disk, sources and the command that made a dataset."""
    from ..dataset.info import dataset_info

    result = dataset_info(path, verify=not no_verify)
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    click.echo(f"{result['path']}: {result['kind']} dataset, {result['rows']} rows in {result['shards']} shard(s), "
               f"{result['bytes'] / 1e6:.1f} MB")
    click.echo(f"fingerprint: {result['fingerprint']}")
    if result.get("skipped"):
        click.echo("skipped (no row; listed in manifest.json): "
                   + ", ".join(f"{n} {reason}" for reason, n in result["skipped"].items()))
    if "sources" in result:
        click.echo("sources: " + ", ".join(f"{k} {v}" for k, v in sorted(result["sources"].items())))
        click.echo(f"rows with a PSF: {result['with_psf']}")
        if result.get("sets"):
            click.echo(f"test sets: {', '.join(result['sets'])}")
        if result.get("without_ground_truth"):
            click.echo(f"rows without ground truth (scored by no-reference measures): {result['without_ground_truth']}")
        if result.get("with_gt_frames"):
            click.echo(f"rows with every ground-truth frame of their recorded sequence: {result['with_gt_frames']}")
        click.echo("image sizes (sampled, HxW): " + ", ".join(f"{k} ({v})" for k, v in result["image_sizes_sampled"].items()))
    if result.get("exposures"):
        click.echo("exposures: " + ", ".join(f"{f:g}" for f in result["exposures"]))
    crf = result.get("camera_response")
    if crf:
        how = (f"one per pair from {', '.join(crf['curves'])} (each row's params.crf)" if crf.get("per_pair")
               else crf["crf"])
        if crf.get("blurred_folder"):
            how += f" ({crf['blurred_folder']}: {crf.get('averaged', '')})"
        click.echo(f"camera response: {how}")
    click.echo("command: " + json.dumps(result["command"], sort_keys=True))


@dataset.command()
@click.argument("path", type=click.Path())
@click.option("--no-decode", is_flag=True, help="Only re-hash shards; do not decode every image.")
@quiet_option
def verify(path, no_decode):
    """Re-hash every shard and decode every row; name the first bad shard and row."""
    from ..dataset.verify import verify_dataset

    report = verify_dataset(path, decode=not no_decode, progress=True)
    click.echo(f"ok: {path}: {report['rows']} rows in {report['shards']} shard(s) match manifest.json"
               + ("" if no_decode else ", every row decodes"))


@dataset.command()
@click.argument("path", type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="PNG file to write.")
@click.option("--count", type=int, default=8, show_default=True, callback=positive_int, help="Pairs to show.")
@click.option("--height", type=click.IntRange(32, 1024), default=160, show_default=True,
              help="Thumbnail height (the crop side with --crop-full-res, cut to the images' size).")
@click.option("--start", type=click.IntRange(0, None), default=0, show_default=True, help="First row.")
@click.option("--crop-full-res", is_flag=True,
              help="Show the HEIGHTxHEIGHT centre of each image at 1:1 instead of the whole image scaled to "
                   "fit, so noise and JPEG artefacts can be seen.")
@no_verify_option
def preview(path, out, count, height, start, crop_full_res, no_verify):
    """Contact sheet of pairs: blurred | sharp | PSF, one pair per line.

    Each line's caption gives the size (HxW), the source file, the exposure, the
    noise and the JPEG quality; every PSF on the sheet is drawn at one scale.
    """
    from ..dataset.reader import load_manifest
    from ..sources.photos import save_rgb8

    if load_manifest(path)["kind"] == "kernels":
        from ..kernelbank import contact_sheet

        sheet = contact_sheet(path, count=count, start=start, verify=not no_verify)
    else:
        from ..dataset.preview import dataset_sheet

        sheet = dataset_sheet(path, count=count, height=height, start=start, verify=not no_verify,
                              crop_full_res=crop_full_res)
    save_rgb8(out, sheet, option="--out")
    click.echo(f"wrote {out} ({sheet.shape[0]}x{sheet.shape[1]} HxW)")


@dataset.command()
@click.argument("path", type=click.Path())
@click.option("--out", type=click.Path(), required=True, help="Folder to write.")
@click.option("--layout", type=click.Choice(["flat", "gopro", "basicsr", "deblurganv2"]), default="flat",
              show_default=True,
              help="flat: blur/, sharp/, psf/ in OUT (in OUT/<split>/ with --splits); gopro: <split>/<sequence>/blur|sharp/ (a sequence per source); "
                   "basicsr: <split>/lq|gt/ with <split>/meta_info.txt and basicsr.yml; deblurganv2: "
                   "<split>/blur|sharp/ with <split>/files_a.txt, files_b.txt and deblurganv2.yaml. psf/ and masks/ "
                   "sit beside the images.")
@click.option("--splits", default=None, metavar="NAME=F,...",
              help="Split every pair by --split-by into train, val and test folders, e.g. "
                   "train=0.9,val=0.05,test=0.05 (fractions summing to 1; val holds out what train --val-fraction "
                   "would). Without it, layouts other than flat put every pair in train/ (val/ with --split heldout).")
@click.option("--format", "fmt", type=click.Choice(["png", "jpeg"]), default="png", show_default=True,
              help="Blurred and sharp images as the stored PNGs, or re-encoded as JPEG (.jpg, --jpeg-quality); "
                   "PSFs and masks stay PNG/npy.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="With --format jpeg: the JPEG quality.")
@click.option("--png", "png_flag", is_flag=True, hidden=True, help="Same as --format png (the default).")
@click.option("--overwrite", is_flag=True, help="Replace an existing folder.")
@click.option("--raw", type=click.Choice(["png16", "npy"]), default=None,
              help="Also write raw/: each RAW-path row's noisy blurred RAW mosaic, rebuilt from its params and "
                   "source, as a 16-bit PNG (white level 65535, negative noise clipped to 0) or float32 .npy "
                   "(white level 1.0), with a JSON sidecar (Bayer pattern, levels, gains, colour matrices, noise).")
@click.option("--sources", multiple=True, type=click.Path(),
              help="With --raw: where the run's inputs are now, if they moved: the photos folder, or every clip "
                   "in the order manifest.json lists them (repeat the option) [default: the paths it records].")
@click.option("--model", type=click.Path(), default=None,
              help="With --raw, for learned-blur rows: the model folder [default: the one manifest.json records].")
@click.option("--split", type=click.Choice(["all", "train", "heldout"]), default="all", show_default=True,
              help="Every pair, or one side of train's validation split (the same hash rule: "
                   "--val-fraction, --split-by).")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.05, show_default=True,
              help="With --split: the fraction held out, as train's --val-fraction.")
@click.option("--split-by", type=click.Choice(["source", "pair"]), default="source", show_default=True,
              help="With --split or --splits: whole source photos, clips or sequences on one side, or single pairs.")
@no_verify_option
@quiet_option
def export(path, out, layout, splits, fmt, jpeg_quality, png_flag, overwrite, raw, sources, model, split,
           val_fraction, split_by, no_verify):
    """Write folders other tools read: blur/, sharp/, psf/ and params.jsonl, or the layout
    of GoPro, BasicSR or DeblurGAN-v2, split by source.

    \b
    Example:
      blursynth dataset export pairs/ --out pairs_png/
      blursynth dataset export pairs/ --out pairs_raw/ --raw png16 --sources photos/
      blursynth dataset export pairs/ --out test_png/ --split heldout --val-fraction 0.1
      blursynth dataset export pairs/ --out gopro/ --layout gopro --splits train=0.9,val=0.05,test=0.05
      blursynth dataset export pairs/ --out bsr/ --layout basicsr --splits train=0.95,val=0.05 --format jpeg
    """
    from ..dataset.export import export_png
    from ..pairs.raw_mosaic import raw_rebuilder

    if png_flag and fmt != "png":
        raise click.UsageError(f"--png and --format {fmt} disagree; give --format alone.")
    refuse_unused_options({
        "jpeg_quality": (fmt == "jpeg", "--format jpeg"),
        "split_by": (split != "all" or splits is not None, "--split or --splits"),
        "val_fraction": (split != "all", "--split train|heldout"),
    })  # --sources and --model without --raw have their own refusal (export_png)
    rows = None
    if split != "all":
        from ..dataset.reader import PairDataset
        from ..dataset.split import split_indices, split_keys

        ds = PairDataset(path, verify=not no_verify)
        train, held = split_indices(split_keys(ds, split_by), val_fraction)
        rows = held if split == "heldout" else train
    report = {}
    n = export_png(path, out, overwrite=overwrite, verify=not no_verify, raw=raw,
                   rebuilder=raw_rebuilder(raw, sources, model), report=report, rows=rows, layout=layout,
                   splits=splits, split_by=split_by, split_name="val" if split == "heldout" else None,
                   image_format=fmt, jpeg_quality=jpeg_quality)
    out = str(out).rstrip("/") or "/"
    what = f"--layout {layout}"
    if layout == "flat":
        what = "blur/, sharp/, psf/, params.jsonl" if splits is None else "<split>/blur|sharp|psf/, params.jsonl"
    if report.get("splits"):
        what += ": " + ", ".join(f"{name} {count}" for name, count in report["splits"].items())
    if splits is not None:
        if report["empty_splits"]:
            k = report["split_keys"]
            click.echo(f"note: no pair fell in {', '.join(report['empty_splits'])} ({k} {split_by}"
                       f"{'' if k == 1 else 's'} to split, each on one side); add sources or change --splits.",
                       err=True)
        else:  # whole sources on each side: a few of them cannot give the fractions asked
            off = coarse_shares(report["splits"], report["fractions"])
            if off:
                fix = "add sources, or --split-by pair" if split_by == "source" else "export more pairs"
                click.echo(f"note: the split is coarse: {', '.join(off)}, with {report['split_keys']} "
                           f"{split_by}s to split, each on one side; {fix}.", err=True)
    raws = f"{out}/raw/" if layout == "flat" and splits is None else "raw/ beside the images"
    if raw is None:
        click.echo(f"exported {n} pair{'' if n == 1 else 's'} to {out}/ ({what})")
        return
    click.echo(f"exported {n} pair{'' if n == 1 else 's'} to {out}/ ({what}) and {report['raw']} RAW mosaics "
               f"to {raws}")
    if report["raw_skipped"]:
        click.echo(f"note: {report['raw_skipped']} row(s) made on the RGB path have no RAW mosaic; they are "
                   "exported without one.", err=True)


def coarse_shares(counts: dict, fractions: dict) -> list:
    """The splits whose share of the pairs is off what was asked, each as ``"NAME got% (asked
    f%)"``: by more than a tenth of all pairs, or by half of the split's own fraction or more.

    Examples
    --------
    >>> coarse_shares({"train": 21, "val": 3, "test": 6}, {"train": 0.6, "val": 0.2, "test": 0.2})
    ['val 10% (asked 20%)']
    >>> coarse_shares({"train": 900, "val": 52, "test": 48}, {"train": 0.9, "val": 0.05, "test": 0.05})
    []
    """
    total = sum(counts.values()) or 1
    return [f"{name} {counts.get(name, 0) / total:.0%} (asked {f:.0%})" for name, f in fractions.items()
            if abs(counts.get(name, 0) / total - f) >= min(0.1 + 1e-9, f / 2)]


@dataset.command(name="import")
@click.argument("folder", type=click.Path())
@click.option("--out", type=click.Path(), required=True, help="Output dataset directory.")
@click.option("--layout", type=click.Choice(["gopro", "flat", "hide", "realblur", "rsblur", "reds", "lai", "kohler",
                                             "levin"]), default="gopro", show_default=True,
              help="gopro: <seq>/blur/NAME beside <seq>/sharp/NAME at any depth; flat: blur/ and sharp/ in FOLDER; "
                   "hide, realblur, rsblur, reds, lai, kohler, levin: each test set as it is distributed "
                   "(docs/datasets.md).")
@click.option("--blur-dir", default=None, help="Name of the blurred folders (gopro, flat) [default: blur].")
@click.option("--blurred", type=click.Choice(["blur", "blur_gamma", "blur_jpeg"]), default=None,
              help="GoPro's blurred folder to read: blur (frames averaged in encoded values, recorded as crf none) "
                   "or blur_gamma (averaged in linear light after gamma 2.2, recorded as crf gamma:2.2); rows and "
                   "the manifest record the folder and its curve. REDS': blur or blur_jpeg. --layout gopro and reds "
                   "only (a flat folder's curve is not known: name it with --blur-dir).")
@click.option("--sharp-dir", default="sharp", show_default=True, help="Name of the sharp folders (gopro, flat).")
@click.option("--list", "lists", multiple=True, type=click.Path(),
              help="realblur, rsblur: a list file of the set to read (repeat for several) [default: every "
                   "RealBlur_{J,R}_{train,test}_list.txt or RSBlur_real_{train,val,test}.txt in FOLDER].")
@click.option("--variant", type=click.Choice(["J", "R"]), default=None,
              help="realblur: RealBlur-J (camera JPEGs) or RealBlur-R (developed RAW), when FOLDER holds both lists.")
@click.option("--split", default=None, help="Import only this split (train, val, test) [default: all found].")
@click.option("--subset", default=None,
              help="Import only this subset: hide close-ups or long-shot; lai real, uniform or nonuniform.")
@click.option("--png-level", type=click.IntRange(0, 9), default=None, help="zlib level; default is the fast fpng encoder.")
@click.option("--shard-size", type=int, default=200, show_default=True, callback=positive_int, help="Pairs per shard.")
@workers_option
@overwrite_option
@quiet_option
def import_(folder, out, layout, blur_dir, blurred, sharp_dir, lists, variant, split, subset, png_level, shard_size,
            workers, overwrite):
    """Bring a deblurring set (GoPro, HIDE, RealBlur, RSBlur, REDS, Lai, Köhler, Levin) or other real
    pairs in as a dataset with source=real.

    Rows record the set, split, sequence and the set's own file names. Lai's real
    photos and REDS' test clips have no ground truth (sharp is empty, params say
    ground_truth false); Köhler's rows carry every ground-truth frame (gt_frames);
    Levin's carry the true kernel as their PSF.

    Grayscale, palette, alpha and 16-bit images are converted to 8-bit RGB, and
    an EXIF orientation is applied (pairs are imported as displayed, upright);
    each row's params say what was converted (converted: "EXIF orientation 6
    applied", for one).

    \b
    Example:
      blursynth dataset import RealBlur/ --layout realblur --variant J --split test --out realblur_j/
    """
    from ..pairs.real import ImportConfig, import_pairs

    config = ImportConfig(layout=layout, blur_dir=blur_dir, blurred=blurred, sharp_dir=sharp_dir, png_level=png_level,
                          shard_size=shard_size, lists=tuple(lists), variant=variant, split=split, subset=subset)
    manifest = import_pairs(folder, out, config, workers=workers, overwrite=overwrite)
    echo_manifest(manifest, out)
