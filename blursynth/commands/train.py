"""``blursynth train``: the bundled trainer (``evaluate`` and ``deblur`` live in commands/evaluate.py)."""

from __future__ import annotations


import click

from ._common import (device_option, finite, interrupted_run, no_verify_option, note_fresh_resume,
                      seed_option)


def _data_specs(ctx, param, value):
    from ..train.data import parse_data_spec

    try:
        return tuple(parse_data_spec(v) for v in value)
    except ValueError as exc:  # BadInputError is a ValueError
        raise click.BadParameter(str(exc)) from None


def _online_specs(ctx, param, value):
    from ..train.data import parse_data_spec

    try:
        return tuple(parse_data_spec(v, option="--online") for v in value)
    except ValueError as exc:  # BadInputError is a ValueError
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option("--data", "data", multiple=True, callback=_data_specs,
              metavar="PATH[:WEIGHT]",
              help="Pair dataset, repeatable, with a relative sampling weight (DeblurGAN-Comb: "
                   "--data synth/:2 --data real/:1).")
@click.option("--online", "online", multiple=True, callback=_online_specs,
              metavar="RECIPE[:WEIGHT]",
              help="A recipe whose blur step's pairs are rendered as they are read (the pairs "
                   "'build' would write), repeatable, mixed with --data by weight.")
@click.option("--out", type=click.Path(), required=True,
              help="Run folder (checkpoint, metrics, samples).")
@click.option("--arch", default=None, metavar="NAME",
              help="Architecture: deblurgan, nafnet, and those README lists (an unknown name "
                   "lists them); evaluate, deblur and export-model read it from the run "
                   "[deblurgan; with --resume, the run's own].")
@click.option("--config", default="small", show_default=True, metavar="small|paper|...",
              help="Network sizes: the paper's (DeblurGAN: 11.4M-parameter generator) or a small "
                   "one for CPU; deblurgan-v2 also has paper-inception (Inception-ResNet-v2 "
                   "backbone).")
@click.option("--width", type=click.IntRange(1, None), default=None,
              help="Channel width of architectures that have one (nafnet) [the config's].")
@click.option("--backbone-weights", type=click.Path(), default=None,
              help="ImageNet weights of a pretrained backbone (architectures with one): "
                   "torchvision's MobileNet-V2 file, or for paper-inception Inception-ResNet-v2 "
                   "named as Cadene's pretrainedmodels [default: trained from scratch].")
@click.option("--steps", type=click.IntRange(1, None), default=None, help="Generator updates.")
@click.option("--epochs", type=click.FloatRange(0, None, min_open=True), default=None, callback=finite,
              help="Passes over the training pairs (instead of --steps).")
@click.option("--crop", type=click.IntRange(16, None), default=None,
              help="Training crop side, a multiple of 4 [paper: 256, small: 64].")
@click.option("--batch-size", type=click.IntRange(1, None), default=None, help="Per device [paper: 1, small: 4].")
@click.option("--lr", type=click.FloatRange(0, None, min_open=True), default=None, callback=finite,
              help="Learning rate [the architecture's; deblurgan: Adam 1e-4, constant, then "
                   "linear decay to 0 over the second half].")
@click.option("--critic-steps", type=click.IntRange(0, None), default=None,
              help="Critic updates per generator update; 0 trains on the content loss alone "
                   "(no critic: PSNR-oriented training) [deblurgan: 5; nafnet has no critic: 0].")
@click.option("--content-weight", type=click.FloatRange(0, None, min_open=True), default=None, callback=finite,
              help="Weight of the content loss beside the adversarial loss [deblurgan: 100].")
@click.option("--fft-weight", type=click.FloatRange(0, None), default=None, callback=finite,
              help="Add this weight x the L1 of the images' 2-D spectra to the content loss (MIMO-UNet's "
                   "frequency loss; 0: none) [nafnet small: 1; others: 0].")
@click.option("--rotate/--no-rotate", default=None,
              help="Also turn training crops: top-bottom flips and transposes, so with the "
                   "left-right flip each of the eight rotations and mirrorings is as likely "
                   "(BasicSR's use_rot) [nafnet: on; others: off; --resume: the run's own].")
@click.option("--perceptual", type=click.Choice(["vgg", "none"]), default=None,
              help="Content loss: VGG19 conv3_3 features, or none (L1 pixel loss) [deblurgan: "
                   "vgg; architectures with their own content loss refuse it].")
@click.option("--vgg-weights", type=click.Path(), default=None,
              help="torchvision's vgg19-dcbb9e9d.pth [default: torch hub cache, else download].")
@click.option("--init", type=click.Choice(["paper", "identity"]), default="paper", show_default=True,
              help="paper: DeblurGAN's N(0, 0.02); identity: the same with the generator's last "
                   "conv zeroed, so training starts from output = input.")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Dropout in the generator's ResBlocks [the config's: 0.5, as the paper].")
@seed_option
@device_option
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto",
              show_default=True,
              help="bf16 autocast or fp32; auto: bf16 on CUDA GPUs that support it, fp32 on "
                   "CPU (bf16 pays on CPUs with AMX or AVX512-BF16).")
@click.option("--workers", type=click.IntRange(0, None), default=2, show_default=True,
              help="Data loader worker processes.")
@click.option("--val-data", multiple=True, type=click.Path(), help="Validation dataset(s) [default: a held-out fraction of --data].")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.05, show_default=True,
              help="Fraction of each --data set aside for validation (chosen by a hash of each "
                   "pair's source or id: --split-by).")
@click.option("--split-by", type=click.Choice(["source", "pair"]), default=None,
              help="source: every pair of one photo, clip or recorded sequence on the same side "
                   "of the validation split; pair: each pair on its own (crops of one photo may "
                   "land on both sides) [default: source; with --resume, the run's own: pair for "
                   "runs made before this option].")
@click.option("--val-count", type=click.IntRange(0, None), default=8, show_default=True, help="Validation pairs scored.")
@click.option("--val-crop", type=click.IntRange(16, None), default=256, show_default=True, help="Centre crop of validation pairs.")
@click.option("--val-every", type=click.IntRange(1, None), default=500, show_default=True, help="Steps between validations.")
@click.option("--checkpoint-every", type=click.IntRange(1, None), default=500, show_default=True,
              help="Steps between checkpoints.")
@click.option("--log-every", type=click.IntRange(1, None), default=10, show_default=True, help="Steps between metric rows.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@no_verify_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(data, online, out, arch, config, width, backbone_weights, steps, epochs, crop, batch_size, lr,
          critic_steps, content_weight, fft_weight, rotate, perceptual, vgg_weights,
          init, dropout, seed, device, precision, workers, val_data, val_fraction, split_by, val_count, val_crop, val_every,
          checkpoint_every, log_every, resume, no_verify, quiet):
    """Train a deblurring network (DeblurGAN unless --arch says) on pair datasets mixed by weight.

    \b
    Example:
      blursynth train --data synth/:2 --data real/:1 --out run/ --config paper --steps 100000
      blursynth train --data synth/:2 --data real/:1 --out run/ --config paper --steps 100000 --resume
      blursynth train --arch nafnet --data synth/ --out nafnet/ --steps 2000
      blursynth train --data real/:1 --online recipes/deblurgan-synth.toml:2 --out run/ --steps 5000
    Several GPUs: torchrun --nproc_per_node 4 -m blursynth train ...
    """
    from ..train.loop import TrainSettings, train as run_training

    if not data and not online:
        raise click.UsageError("give --data PATH (a pair dataset) or --online RECIPE, or both.")
    if steps is None and epochs is None:
        raise click.UsageError("give --steps or --epochs.")
    if steps is not None and epochs is not None:
        raise click.UsageError("give only one of --steps and --epochs.")
    if arch is None:  # before anything else: other defaults and checks depend on the arch
        arch = _recorded_arch(out) if resume else None
    # The recipes are resolved here, above both the build that plans them and the trainer.
    sources = []
    if online:
        from ..torch.online import open_online

        sources = [open_online(o.path) for o in online]
    settings = TrainSettings(
        data=data, online=online, out=out, **({"arch": arch} if arch else {}), config=config, width=width,
        backbone_weights=backbone_weights, steps=steps, epochs=epochs, crop=crop,
        batch_size=batch_size, lr=lr, critic_steps=critic_steps, content_weight=content_weight,
        fft_weight=fft_weight, rotate=rotate, perceptual=perceptual,
        vgg_weights=vgg_weights, init=init, dropout=dropout, seed=seed, device=device, precision=precision,
        workers=workers,
        val_data=tuple(val_data), val_fraction=val_fraction, split_by=split_by, val_count=val_count,
        val_crop=val_crop, val_every=val_every, checkpoint_every=checkpoint_every,
        log_every=log_every, resume=resume, progress=not quiet, verify=not no_verify,
    )
    from ..train.checkpoints import RUN_KIND

    note_fresh_resume(out, resume, RUN_KIND)
    try:
        summary = run_training(settings, online=sources)
    except KeyboardInterrupt:
        raise interrupted_run(out) from None
    if summary["rank"] != 0:  # under torchrun, one report is enough
        return
    last = summary["last"]
    msg = f"trained {summary['steps']}/{summary['total_steps']} steps into {summary['out']}"
    if "val_psnr" in last:
        msg += (f"; validation PSNR {last['val_psnr']:.2f} dB (blurred input "
                f"{last['val_psnr_blurred']:.2f}), SSIM {last['val_ssim']:.4f}")
    click.echo(msg)


def _recorded_arch(out) -> str | None:
    """The --arch the run in ``out`` records in its run.json, or None (no readable record: the
    trainer's default, and its resume checks say what is wrong)."""
    import json
    from pathlib import Path

    from ..nn.runs import RUN_JSON

    try:
        arch = json.loads((Path(out) / RUN_JSON).read_text()).get("arch")
    except (OSError, ValueError, AttributeError):
        return None
    return arch if isinstance(arch, str) else None
