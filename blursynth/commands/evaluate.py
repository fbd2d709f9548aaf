"""``blursynth evaluate`` and ``deblur``: score and use a trained run."""

from __future__ import annotations

import click

from ..train.protocol_names import PROTOCOLS
from ._common import device_option, no_verify_option


def _lpips_options(f):
    """--lpips, --lpips-backbone, --lpips-weights (LPIPS scored only with a backbone file)."""
    f = click.option("--lpips-weights", type=click.Path(), default=None,
                     help="LPIPS linear heads file [default: the installed lpips package's "
                          "weights/v0.1/NET.pth].")(f)
    f = click.option("--lpips-backbone", type=click.Path(), default=None,
                     help="Score LPIPS too, with this ImageNet backbone file in torchvision's "
                          "format (alexnet-owt-7be5be79.pth or vgg16-397923af.pth).")(f)
    return click.option("--lpips", "lpips_net", type=click.Choice(["alex", "vgg"]),
                        default="alex", show_default=True, help="LPIPS backbone network.")(f)


@click.command()
@click.option("--model", required=True, type=click.Path(), help="Run folder or checkpoint file.")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(),
              help="Pair dataset(s) to score.")
@click.option("--split", type=click.Choice(["all", "heldout"]), default="all", show_default=True,
              help="Every pair, or only those the run held out for validation.")
@click.option("--split-by", type=click.Choice(["source", "pair"]), default=None,
              help="How --split heldout finds the held-out pairs [default: the run's own; pair "
                   "for runs made before train --split-by].")
@click.option("--protocol", default="auto", show_default=True,
              type=click.Choice(["auto", *PROTOCOLS]),
              help="Scoring protocol; auto: each pair's set's own (realblur for RealBlur, levin, "
                   "kohler, noref without ground truth, plain otherwise).")
@click.option("--limit", type=click.IntRange(1, None), default=None,
              help="Score only the first N pairs of each dataset.")
@click.option("--tile", type=click.IntRange(64, None), default=1024, show_default=True,
              help="Largest tile side.")
@click.option("--norm-stats", type=click.Choice(["global", "tile"]), default="global",
              show_default=True,
              help="InstanceNorm statistics from the whole image (exact) or per tile (faster).")
@device_option
@click.option("--json", "json_path", type=click.Path(), default=None,
              help="Also write the figures as JSON here.")
@click.option("--csv", "csv_path", type=click.Path(), default=None,
              help="Also write one line per image (each measure, blurred and deblurred) here.")
@click.option("--save-outputs", type=click.Path(), default=None,
              help="Write the deblurred images here, as DATASET/PAIR_ID.png (never replaced).")
@_lpips_options
@no_verify_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def evaluate(model, data, split, split_by, protocol, limit, tile, norm_stats, device, json_path,
             csv_path, save_outputs, lpips_net, lpips_backbone, lpips_weights, no_verify, quiet):
    """Scores of a trained model on pair datasets, beside the blurred input's.

    \b
    Example:
      blursynth evaluate --model run/ --data test/ --json scores.json --csv images.csv
      blursynth evaluate --model run/ --data realblur_j/ --protocol realblur
    """
    from ..nn.lpips import lpips_from_options
    from ..train.evaluate import EvaluateSettings, evaluate as run_eval, format_report

    lpips = lpips_from_options(lpips_net, lpips_backbone, lpips_weights)
    report = run_eval(EvaluateSettings(model=model, data=tuple(data), split=split,
                                       split_by=split_by,
                                       protocol=protocol, limit=limit,
                                       tile=tile, norm_stats=norm_stats, device=device,
                                       json_path=json_path, csv_path=csv_path,
                                       save_outputs=save_outputs, progress=not quiet,
                                       verify=not no_verify, lpips=lpips))
    click.echo(format_report(report))


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--model", required=True, type=click.Path(), help="Run folder or checkpoint file.")
@click.option("--out", type=click.Path(), required=True,
              help="Output folder (PNG, same relative names).")
@click.option("--tile", type=click.IntRange(64, None), default=1024, show_default=True,
              help="Largest tile side in px: bounds memory for photos of any size.")
@click.option("--blend", type=click.IntRange(0, 256), default=16, show_default=True,
              help="Px on each side of a seam over which tiles are cross-faded.")
@click.option("--norm-stats", type=click.Choice(["global", "tile"]), default="global",
              show_default=True,
              help="InstanceNorm statistics from the whole image (matches whole-image inference) "
                   "or per tile (about 10x fewer operations on large photos).")
@device_option
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def deblur(inputs, model, out, tile, blend, norm_stats, device, overwrite, quiet):
    """Deblur photos (files or folders) of any size with a trained model.

    \b
    Example:
      blursynth deblur --model run/ photos/ --out deblurred/
    """
    from ..train.evaluate import DeblurSettings, deblur_images

    result = deblur_images(DeblurSettings(model=model, inputs=tuple(inputs), out=out, tile=tile,
                                          blend=blend, norm_stats=norm_stats, device=device,
                                          overwrite=overwrite, progress=not quiet))
    for note in result["notes"]:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {len(result['written'])} image(s) to {out}")


def _sets(ctx, param, value):
    from ..train.benchmark import parse_set

    try:
        return tuple(parse_set(v) for v in value)
    except ValueError as exc:  # BadInputError is a ValueError
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option("--model", required=True, type=click.Path(), help="Run folder or checkpoint file.")
@click.option("--set", "sets", multiple=True, required=True, callback=_sets, metavar="NAME=PATH",
              help="A test set (an imported or made pair dataset) and its name in the report; "
                   "repeatable.")
@click.option("--out", type=click.Path(), required=True,
              help="Report folder: report.md, report.json, per_image.csv, worst_best.png[, "
                   "outputs/].")
@click.option("--protocol", default="auto", show_default=True,
              type=click.Choice(["auto", *PROTOCOLS]),
              help="Scoring protocol for every set; auto: each set's own.")
@click.option("--limit", type=click.IntRange(1, None), default=None,
              help="Score only the first N pairs of each set.")
@click.option("--save-outputs", is_flag=True,
              help="Also write the deblurred images, outputs/NAME/PAIR_ID.png.")
@click.option("--sheet-count", type=click.IntRange(0, None), default=3, show_default=True,
              help="Worst and best images each on the contact sheet (ranked by PSNR gain over the "
                   "blurred input).")
@click.option("--tile", type=click.IntRange(64, None), default=1024, show_default=True,
              help="Largest tile side.")
@click.option("--norm-stats", type=click.Choice(["global", "tile"]), default="global",
              show_default=True,
              help="InstanceNorm statistics from the whole image (exact) or per tile (faster).")
@device_option
@click.option("--overwrite", is_flag=True, help="Replace an earlier report in --out.")
@_lpips_options
@no_verify_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def benchmark(model, sets, out, protocol, limit, save_outputs, sheet_count, tile, norm_stats,
              device,
              overwrite, lpips_net, lpips_backbone, lpips_weights, no_verify, quiet):
    """Score a trained model on several test sets, each with its protocol, into one report.

    \b
    Example:
      blursynth benchmark --model run/ --set realblur-j=realblur_j/ --set gopro=gopro_test/ \\
          --out bench/
    """
    from ..nn.lpips import lpips_from_options
    from ..train.benchmark import BenchmarkSettings, benchmark as run_benchmark, format_markdown

    lpips = lpips_from_options(lpips_net, lpips_backbone, lpips_weights)
    report = run_benchmark(BenchmarkSettings(
        model=model, sets=sets, out=out, protocol=protocol, limit=limit, tile=tile,
        norm_stats=norm_stats, device=device, save_outputs=save_outputs, sheet_count=sheet_count,
        overwrite=overwrite, progress=not quiet, verify=not no_verify, lpips=lpips))
    click.echo(format_markdown(report))
    click.echo(f"wrote {out}")
