"""``blursynth uid train|deblur|blur``: disentangled blur (UID, Lu et al. 2019) from unpaired
sets."""

from __future__ import annotations

import click

from ._common import (
    device_option, echo_photo_pairs, learned_writer_options, overwrite_option, positive_int, quiet_option,
    run_unpaired_training, seed_option, unpaired_run_options, workers_for_device, workers_option,
)


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


@uid.command(name="train")
@click.option("--sharp", required=True, type=click.Path(),
              help="Sharp photos of the domain: a folder of images, or a pair dataset (its sharp "
                   "images).")
@click.option("--real-blur", required=True, type=click.Path(),
              help="Real blurred photos of the domain, unpaired with --sharp: a folder of images, "
                   "or a pair dataset (its blurred images).")
@click.option("--out", type=click.Path(), required=True,
              help="Model folder (checkpoint, metrics, sample sheets).")
@click.option("--steps", type=click.IntRange(1, None), required=True,
              help="Updates of all networks.")
@click.option("--config", type=click.Choice(["paper", "small", "tiny"]), default="paper",
              show_default=True,
              help="Network sizes: the paper's (64 channels, 4 residual blocks, 8-long blur code), "
                   "small (CPU), tiny (tests).")
@click.option("--width", type=click.IntRange(1, None), default=None,
              help="Override the content encoders' and generators' width.")
@click.option("--z-dim", type=click.IntRange(1, None), default=None,
              help="Override the length of the blur code.")
@click.option("--code-gain", type=click.FloatRange(0, None), default=None,
              help="Start the blur code's scale-and-shift layers as N(0, GAIN/sqrt(z_dim)), so the "
                   "code moves an untrained output (not in the paper); 0: N(0, 0.02) as the other "
                   "layers [default: small 2; paper and tiny 0].")
@click.option("--patch", type=click.IntRange(16, None), default=128, show_default=True,
              help="Training patch side in px (a multiple of 4).")
@click.option("--batch-size", type=click.IntRange(1, None), default=4, show_default=True)
@click.option("--lr", type=click.FloatRange(0, None, min_open=True), default=2e-4,
              show_default=True,
              help="Adam learning rate of both optimisers (betas 0.5, 0.999).")
@click.option("--adversarial-weight", type=click.FloatRange(0, None), default=None,
              help="Weight of the two adversarial terms [default: the paper's 1].")
@click.option("--kl-weight", type=click.FloatRange(0, None), default=None,
              help="Weight of the blur code's KL term [default: the paper's 0.01].")
@click.option("--cycle-weight", type=click.FloatRange(0, None), default=None,
              help="Weight of the two cycle L1 terms [default: the paper's 10].")
@click.option("--perceptual-weight", type=click.FloatRange(0, None), default=None,
              help="Weight of the perceptual term between a blurred image and its deblurred "
                   "version [default: the paper's 0.1].")
@click.option("--self-reconstruction-weight", type=click.FloatRange(0, None), default=None,
              help="Weight of the L1 of a blurred image decoded from its own content and code "
                   "against itself (DRIT's term, not in the paper; without it the code is "
                   "ignored) [default: small 10; paper and tiny 0].")
@click.option("--perceptual", type=click.Choice(["vgg", "none"]), default="vgg", show_default=True,
              help="Perceptual term: VGG19 conv3_3 features, or none (L1 of 4x4-pooled images).")
@click.option("--vgg-weights", type=click.Path(), default=None,
              help="torchvision's vgg19-dcbb9e9d.pth [default: torch hub cache, else download].")
@unpaired_run_options("sharp | transferred blur | the real blurred image whose code was used | "
                      "its deblurred version")
def train(sharp, real_blur, out, steps, config, width, z_dim, code_gain, patch, batch_size, lr,
          adversarial_weight, kl_weight, cycle_weight, perceptual_weight,
          self_reconstruction_weight, perceptual, vgg_weights,
          seed, device, workers, sample_every, checkpoint_every, log_every, max_minutes, resume,
          no_verify, quiet):
    """Train UID on unpaired sets of one domain: sharp photos and real blurred photos.

    \b
    Example:
      blursynth uid train --sharp faces/ --real-blur blurry_faces/ --out model/ --steps 20000
      blursynth uid train --sharp faces/ --real-blur blurry_faces/ --out model/ --steps 2000 \\
          --config small --patch 64 --perceptual none --max-minutes 10
    """
    from ..uid.model import RUN_KIND
    from ..uid.train import UIDTrainSettings, train_uid

    settings = UIDTrainSettings(
        sharp=sharp, real_blur=real_blur, out=out, steps=steps, config=config, width=width,
        z_dim=z_dim, code_gain=code_gain, patch=patch, batch_size=batch_size, lr=lr,
        adversarial_weight=adversarial_weight, kl_weight=kl_weight, cycle_weight=cycle_weight,
        perceptual_weight=perceptual_weight,
        self_reconstruction_weight=self_reconstruction_weight, perceptual=perceptual,
        vgg_weights=vgg_weights,
        seed=seed, device=device, workers=workers, sample_every=sample_every,
        checkpoint_every=checkpoint_every, log_every=log_every,
        max_seconds=None if max_minutes is None else 60.0 * max_minutes, resume=resume,
        progress=not quiet, verify=not no_verify)
    run_unpaired_training(
        train_uid, settings, out,
        lambda last: (f"cycle loss {last['loss_cycle']:.4g}, adversarial "
                      f"{last['loss_adversarial']:.4g}, KL {last['loss_kl']:.4g}, critics "
                      f"{last['loss_d']:.4g}"), RUN_KIND)


@uid.command(name="deblur")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--model", required=True, type=click.Path(), help="The --out folder of 'uid train'.")
@click.option("--out", type=click.Path(), required=True,
              help="Output folder: one PNG per input, with the input's relative name.")
@device_option
@click.option("--overwrite", is_flag=True, help="Replace outputs that already exist.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def deblur(inputs, model, out, device, overwrite, quiet):
    """Deblur blurred photos of the model's domain (files or folders) with a trained UID model.

    \b
    Example:
      blursynth uid deblur blurry_faces/ --model model/ --out deblurred/
    """
    from ..uid.deblur import UIDDeblurSettings, uid_deblur_images

    result = uid_deblur_images(UIDDeblurSettings(model=model, inputs=tuple(inputs), out=out,
                                                 device=device, overwrite=overwrite,
                                                 progress=not quiet))
    for note in result["notes"]:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {len(result['written'])} image(s) to {out} (model step "
               f"{result['model']['step']}, fingerprint {result['model']['fingerprint']})")


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
@learned_writer_options
@seed_option
@workers_option
@overwrite_option
@quiet_option
def blur(photos, model, out, blur_from, blur_prior, per_image, reference_side, device, engine, png_level,
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
                               device=device, png_level=png_level, shard_size=shard_size, strict=strict,
                               engine=engine)
    workers = workers_for_device(workers, settings.render_device)
    manifest = uid_blur(settings, out, workers=workers, overwrite=overwrite)
    echo_photo_pairs(manifest, out)
