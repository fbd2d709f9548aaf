"""``blursynth uid train|deblur|blur``: disentangled blur (UID, Lu et al. 2019) from unpaired sets."""

from __future__ import annotations

import click

from ._common import device_option, echo_manifest, overwrite_option, positive_int, seed_option, workers_option


@click.group()
def uid():
    """Disentangled blur (UID, "Unsupervised Domain-Specific Deblurring via Disentangled
    Representations"): learn content and blur codes from unpaired sharp and real blurred photos
    of one domain; transfer a real photo's blur onto sharp photos, or deblur that domain.

    \b
    Example:
      blursynth uid train --sharp faces/ --real-blur blurry_faces/ --out model/ --steps 20000
      blursynth uid deblur blurry_faces/ --model model/ --out deblurred/
    """


# ---------------------------------------------------------------------------------------------
# uid train, uid deblur (model, training and deblurring: blursynth/uid/)


# ---------------------------------------------------------------------------------------------
# uid blur (pairs: blursynth/pairs/uid.py)


@uid.command(name="blur")
@click.argument("photos", type=click.Path())
@click.option("--model", required=True, type=click.Path(), help="The --out folder of 'uid train'.")
@click.option("--out", type=click.Path(), required=True, help="Output dataset directory.")
@click.option("--blur-from", type=click.Path(), default=None,
              help="Blurred images whose blur codes are transferred (a folder, an image, or a pair "
                   "dataset's blurred images); each pair takes the code of one, drawn per pair.")
@click.option("--blur-prior", is_flag=True,
              help="Draw each pair's blur code from the prior N(0, I) (the default without --blur-from).")
@click.option("--per-image", type=int, default=1, show_default=True, callback=positive_int,
              help="Pairs per photo, each with its own blur code.")
@click.option("--reference-side", type=click.IntRange(16, None), default=256, show_default=True,
              help="A --blur-from image larger than this is encoded from its centre square of this side.")
@device_option
@click.option("--png-level", type=click.IntRange(0, 9), default=None,
              help="zlib level; default is the fast fpng encoder.")
@click.option("--shard-size", type=int, default=256, show_default=True, callback=positive_int,
              help="Pairs per shard.")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable photo instead of skipping it.")
@seed_option
@workers_option
@overwrite_option
def blur(photos, model, out, blur_from, blur_prior, per_image, reference_side, device, png_level,
         shard_size, strict, seed, workers, overwrite):
    """Give sharp PHOTOS a blur with a trained UID: pairs with source=uid.

    Each row records its blur code, the --blur-from image it was encoded from (if any) and the
    model's fingerprint, so the pair can be rebuilt.

    \b
    Example:
      blursynth uid blur faces/ --model model/ --blur-from blurry_faces/ --out pairs/ --per-image 2
      blursynth uid blur faces/ --model model/ --blur-prior --out pairs/
    """
    from ..pairs.uid import UIDBlurSettings, uid_blur

    settings = UIDBlurSettings(photos=photos, model=model, blur_from=blur_from, blur_prior=blur_prior,
                               per_image=per_image, reference_side=reference_side, seed=seed,
                               device=device, png_level=png_level, shard_size=shard_size, strict=strict)
    manifest = uid_blur(settings, out, workers=workers, overwrite=overwrite)
    echo_manifest(manifest, out)
    if manifest["skipped_photos"]:
        click.echo(f"warning: skipped {manifest['skipped_photos']} unreadable photo(s); see the warnings "
                   "above (--strict stops instead)", err=True)
