"""``blursynth bgan train|blur``: learn a blur from unpaired real blurred photos, and apply it."""

from __future__ import annotations

import click

from ._common import (
    camera_options, device_option, echo_photo_pairs, learned_writer_options, overwrite_option, positive_int,
    quiet_option, raw_only_degrade_options, run_unpaired_training, seed_option, unpaired_run_options,
    workers_for_device, workers_option,
)


@click.group()
def bgan():
    """Learned blur (BGAN, "Deblurring by Realistic Blurring"): train a generator that blurs
    sharp photos the way a set of real blurred photos is blurred, then make pairs with it.

    \b
    Example:
      blursynth bgan train --sharp photos/ --real-blur blurry/ --out model/ --steps 100000
      blursynth bgan blur more_photos/ --model model/ --out pairs/ --per-image 2
    """


@bgan.command(name="train")
@click.option("--sharp", required=True, type=click.Path(),
              help="Sharp photos: a folder of images, or a pair dataset (its sharp images).")
@click.option("--real-blur", required=True, type=click.Path(),
              help="Real blurred photos, unpaired with --sharp: a folder of images, or a pair "
                   "dataset (its blurred images).")
@click.option("--out", type=click.Path(), required=True,
              help="Model folder (checkpoint, metrics, sample sheets).")
@click.option("--steps", type=click.IntRange(1, None), required=True, help="Updates of both networks.")
@click.option("--config", type=click.Choice(["paper", "small", "tiny"]), default="paper",
              show_default=True,
              help="Network sizes: the paper's (width 64, 9 blocks of 5 convs), small (CPU), tiny (tests).")
@click.option("--width", type=click.IntRange(1, None), default=None, help="Override the generator width.")
@click.option("--blocks", type=click.IntRange(1, None), default=None,
              help="Override the number of residual blocks.")
@click.option("--image-skip/--no-image-skip", default=None,
              help="Add the sharp input to the generator's output (not in the paper; the small and "
                   "tiny configs use it) [default: the config's].")
@click.option("--patch", type=click.IntRange(8, None), default=128, show_default=True,
              help="Training patch side in px.")
@click.option("--batch-size", type=click.IntRange(1, None), default=4, show_default=True)
@click.option("--lr", type=click.FloatRange(0, None, min_open=True), default=1e-4, show_default=True,
              help="Adam learning rate of both networks; dropped when the loss plateaus.")
@click.option("--alpha-weighs", type=click.Choice(["perceptual", "blur"]), default="perceptual",
              show_default=True,
              help="Which term the paper's alpha=0.005 weighs (beta=0.01 weighs the other): the "
                   "perceptual loss, or the relativistic blur loss.")
@click.option("--perceptual-weight", type=click.FloatRange(0, None), default=None,
              help="Override the perceptual loss weight.")
@click.option("--blur-weight", type=click.FloatRange(0, None, min_open=True), default=None,
              help="Override the relativistic blur loss weight.")
@click.option("--perceptual", type=click.Choice(["vgg", "none"]), default="vgg", show_default=True,
              help="Perceptual loss: VGG19 conv3_3 features, or none (L1 of 4x4-pooled images; raise "
                   "--perceptual-weight with it, e.g. to 1).")
@click.option("--vgg-weights", type=click.Path(), default=None,
              help="torchvision's vgg19-dcbb9e9d.pth [default: torch hub cache, else download].")
@click.option("--plateau-window", type=click.IntRange(1, None), default=1000, show_default=True,
              help="Steps averaged into one reading of the generator loss.")
@click.option("--plateau-patience", type=click.IntRange(1, None), default=5, show_default=True,
              help="Readings without improvement before the learning rate drops 10x.")
@unpaired_run_options("sharp | generated | real blurred")
def train(sharp, real_blur, out, steps, config, width, blocks, image_skip, patch, batch_size, lr,
          alpha_weighs, perceptual_weight, blur_weight, perceptual, vgg_weights, plateau_window,
          plateau_patience, seed, device, workers, sample_every, checkpoint_every, log_every,
          max_minutes, resume, no_verify, quiet):
    """Train BGAN on unpaired sets: sharp photos and real blurred photos.

    \b
    Example:
      blursynth bgan train --sharp photos/ --real-blur blurry/ --out model/ --steps 100000
      blursynth bgan train --sharp photos/ --real-blur blurry/ --out model/ --steps 2000 \\
          --config small --patch 64 --perceptual none --max-minutes 10
    """
    from ..bgan.train import RUN_KIND, BGANTrainSettings, train_bgan

    settings = BGANTrainSettings(
        sharp=sharp, real_blur=real_blur, out=out, steps=steps, config=config, width=width,
        blocks=blocks, image_skip=image_skip, patch=patch, batch_size=batch_size, lr=lr,
        alpha_weighs=alpha_weighs, perceptual_weight=perceptual_weight, blur_weight=blur_weight,
        perceptual=perceptual, vgg_weights=vgg_weights, plateau_window=plateau_window,
        plateau_patience=plateau_patience, seed=seed, device=device, workers=workers,
        sample_every=sample_every, checkpoint_every=checkpoint_every, log_every=log_every,
        max_seconds=None if max_minutes is None else 60.0 * max_minutes, resume=resume,
        progress=not quiet, verify=not no_verify,
    )
    run_unpaired_training(
        train_bgan, settings, out,
        lambda last: (f"blur loss {last['loss_blur']:.4g}, critic loss {last['loss_d']:.4g}, "
                      f"perceptual {last['loss_perceptual']:.4g}"), RUN_KIND)


def _no_highlights(ctx, param, value):
    """Refuse the highlight boost: a learned blur has no image before its blur to boost."""
    if value is not None:
        raise click.BadParameter(
            "bgan blur cannot boost highlights: the generator makes the blurred image from the 8-bit "
            "photo, with no blur kernel to spread boosted light and no pre-blur image to boost "
            "(docs/algorithms.md, 'Highlights on the RAW path'); use blur or frames-average "
            "--pipeline raw --highlights.")
    return value


@bgan.command(name="blur")
@click.argument("photos", type=click.Path())
@click.option("--model", required=True, type=click.Path(), help="The --out folder of 'bgan train'.")
@click.option("--out", type=click.Path(), required=True, help="Output dataset directory.")
@click.option("--per-image", type=int, default=1, show_default=True, callback=positive_int,
              help="Pairs per photo, each with its own noise vector.")
@click.option("--tile", type=click.IntRange(16, None), default=512, show_default=True,
              help="Largest output tile side in px (photos of any size; the result does not depend on it).")
@device_option
@learned_writer_options
@click.option("--pipeline", type=click.Choice(["rgb", "raw"]), default="rgb", show_default=True,
              help="rgb: the generator's output is the blurred image; raw: it is decoded with --crf, "
                   "unprocessed to a camera's RAW space, clipped at white, mosaicked, given --noise, "
                   "demosaicked and developed (the sharp photo the same way, without noise).")
@click.option("--crf", default=None,
              help="RAW path: camera response of the photos and the generator's output: gamma:G, srgb, none, "
                   "rec709, smpte240m, romm, lstar, hlg, filmic[:A,B[,C]], poly:C0,C1,..., or random / "
                   "random:CURVE,... (one per pair) [default: gamma:2.2].")
@camera_options
@raw_only_degrade_options
@click.option("--exposure-gain", default=None,
              help="RAW path: linear gain range of both images' camera colours, clipped at white after, e.g. 1-2 "
                   "(off by default).")
@click.option("--highlights", hidden=True, expose_value=False, callback=_no_highlights)
@click.option("--highlight-threshold", hidden=True, expose_value=False, callback=_no_highlights)
@click.option("--highlight-regions", hidden=True, expose_value=False, callback=_no_highlights)
@click.option("--highlight-region-threshold", hidden=True, expose_value=False, callback=_no_highlights)
@seed_option
@workers_option
@overwrite_option
@quiet_option
def blur(photos, model, out, per_image, tile, device, engine, png_level, shard_size, strict, pipeline, crf, camera,
         demosaic, raw_bits, noise, jpeg, exposure_gain, seed, workers, overwrite):
    """Blur sharp PHOTOS with a trained BGAN: pairs with source=bgan.

    Each row records its noise vector and the model's fingerprint, so the pair can be rebuilt.

    \b
    Example:
      blursynth bgan blur photos/ --model model/ --out pairs/ --per-image 2 --seed 1
    """
    from ..pairs.bgan import BGANBlurSettings, bgan_blur

    settings = BGANBlurSettings(photos=photos, model=model, per_image=per_image, seed=seed,
                                tile=tile, device=device, png_level=png_level,
                                shard_size=shard_size, strict=strict, pipeline=pipeline, crf=crf,
                                camera=camera, demosaic=demosaic, raw_bits=raw_bits, noise=noise,
                                jpeg=jpeg, exposure_gain=exposure_gain, engine=engine)
    workers = workers_for_device(workers, settings.render_device)
    manifest = bgan_blur(settings, out, workers=workers, overwrite=overwrite)
    echo_photo_pairs(manifest, out)
