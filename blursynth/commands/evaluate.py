"""``blursynth evaluate`` and ``deblur``: score and use a trained run."""

from __future__ import annotations

import click

from ._common import device_option, no_verify_option


@click.command()
@click.option("--model", required=True, type=click.Path(), help="Run folder or checkpoint file.")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(), help="Pair dataset(s) to score.")
@click.option("--split", type=click.Choice(["all", "heldout"]), default="all", show_default=True,
              help="Every pair, or only those the run held out for validation.")
@click.option("--limit", type=click.IntRange(1, None), default=None, help="Score only the first N pairs of each dataset.")
@click.option("--tile", type=click.IntRange(64, None), default=1024, show_default=True, help="Largest tile side.")
@click.option("--norm-stats", type=click.Choice(["global", "tile"]), default="global", show_default=True,
              help="InstanceNorm statistics from the whole image (exact) or per tile (faster).")
@device_option
@click.option("--json", "json_path", type=click.Path(), default=None, help="Also write the figures as JSON here.")
@no_verify_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def evaluate(model, data, split, limit, tile, norm_stats, device, json_path, no_verify, quiet):
    """PSNR and SSIM of a trained model on pair datasets, beside the blurred input's.

    \b
    Example:
      blursynth evaluate --model run/ --data test/ --json scores.json
    """
    from ..train.evaluate import EvaluateSettings, evaluate as run_eval, format_report

    report = run_eval(EvaluateSettings(model=model, data=tuple(data), split=split, limit=limit,
                                       tile=tile, norm_stats=norm_stats, device=device,
                                       json_path=json_path, progress=not quiet,
                                       verify=not no_verify))
    click.echo(format_report(report))


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--model", required=True, type=click.Path(), help="Run folder or checkpoint file.")
@click.option("--out", type=click.Path(), required=True, help="Output folder (PNG, same relative names).")
@click.option("--tile", type=click.IntRange(64, None), default=1024, show_default=True,
              help="Largest tile side in px: bounds memory for photos of any size.")
@click.option("--blend", type=click.IntRange(0, 256), default=16, show_default=True,
              help="Px on each side of a seam over which tiles are cross-faded.")
@click.option("--norm-stats", type=click.Choice(["global", "tile"]), default="global", show_default=True,
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
