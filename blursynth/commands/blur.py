"""``blursynth blur``: pairs from sharp photos blurred by trajectory PSFs in linear light."""

from __future__ import annotations

import click

from ._common import (
    camera_options, echo_photo_pairs, overwrite_option, parse_fraction, photos_decoded_ahead, positive_int,
    quiet_option, seed_option, workers_for_device, workers_option,
)


def _exposure(ctx, param, value):
    if value is None or value.strip().lower() == "random":
        return None
    try:
        f = parse_fraction(value)
    except (ValueError, ZeroDivisionError):
        raise click.BadParameter(f"expected a fraction like 0.5 or 1/2, or 'random'; got {value!r}.")
    if not 0 < f <= 1:
        raise click.BadParameter(f"{value} is outside (0, 1]; an exposure fraction keeps that part of the trajectory.")
    return f


def _size(ctx, param, value):
    """``HxW`` or ``N`` (square) to (height, width)."""
    if value is None:
        return None
    parts = value.lower().split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) not in (1, 2) or min(nums) < 1:
        raise click.BadParameter(f"expected HxW like 256x256 (or one number for a square); got {value!r}.")
    return (nums[0], nums[-1])


def _resize(ctx, param, value):
    """A scale factor like ``0.5``; or, the old width-first spelling, a size ``WxH`` (kept for one
    release: sizes are HxW everywhere else, ``--resize-to``)."""
    if value is None:
        return None
    if "x" in value.lower():
        try:
            w, h = (int(p) for p in value.lower().split("x"))
        except ValueError:
            raise click.BadParameter(f"expected a scale like 0.5 (or a size: --resize-to HxW like 720x1280); "
                                     f"got {value!r}.")
        if w < 1 or h < 1:
            raise click.BadParameter(f"size must be positive; got {value!r}.")
        return (w, h)
    try:
        scale = float(value)
    except ValueError:
        raise click.BadParameter(f"expected a scale like 0.5 (or a size: --resize-to HxW like 720x1280); got {value!r}.")
    if not 0 < scale <= 8:
        raise click.BadParameter(f"scale must be in (0, 8]; got {value!r}.")
    return scale


def _keep(ctx, param, value):
    """Keep a highlight or exposure-gain option's value for the body (not an argument of it)."""
    if value is not None:
        ctx.meta.setdefault("blursynth.blur.degrade", {})[param.name] = value
    return value


def _scene(ctx, param, value):
    """Keep a scene-blur option's value for the body (BlurSettings reads them by name)."""
    if value is not None:
        ctx.meta.setdefault("blursynth.blur.scene", {})[param.name] = value
    return value


def scene_options(f):
    """``--motion`` and the options of scene blur (blursynth.pairs.scene)."""
    options = [
        click.option("--motion", type=click.Choice(["uniform", "camera6d", "scene"]), default=None,
                     callback=_scene, expose_value=False,
                     help="uniform (default): one PSF for the whole image, from --kernels or --psf-source fresh. "
                          "camera6d: a 6-DoF hand-shake path (rotation and translation) warps the photo per "
                          "sub-frame, so the blur varies across the frame; scene: that plus moving objects "
                          "(--objects). Rows record the pose path, the motion mask and a grid of local PSFs."),
        click.option("--focal-px", type=float, default=None, callback=_scene, expose_value=False,
                     help="Scene blur: focal length in pixels (default: the window's longer side, about a 53 "
                          "degree field of view)."),
        click.option("--reference", type=click.Choice(["middle", "start"]), default=None, callback=_scene,
                     expose_value=False,
                     help="Scene blur: the sharp image is the pose at the middle (default) or start of the "
                          "exposure."),
        click.option("--rolling-shutter", default=None, metavar="LO-HI", callback=_scene, expose_value=False,
                     help="Scene blur: read-out time as a fraction of the exposure, drawn per pair, e.g. 0-0.5; "
                          "row r integrates its own time window (off by default)."),
        click.option("--objects", default=None, metavar="LO-HI", callback=_scene, expose_value=False,
                     help="--motion scene: number of moving objects per pair (default 1-3)."),
        click.option("--object-kind", type=click.Choice(["cutout", "leaves"]), default=None, callback=_scene,
                     expose_value=False,
                     help="--motion scene: objects cut from other photos of PHOTOS by random soft shapes "
                          "(default), or dead-leaves disks."),
        click.option("--object-masks", type=click.Path(), default=None, callback=_scene, expose_value=False,
                     metavar="DIR",
                     help="--motion scene: a folder of alpha PNGs named as the photos (<stem>.png, the photo's "
                          "size): every object is the masked part of another photo (not with --object-kind "
                          "leaves)."),
        click.option("--defocus", is_flag=True, default=None, callback=_scene, expose_value=False,
                     help="Scene blur: thin-lens defocus from a depth map (--depth)."),
        click.option("--depth", default=None, metavar="DIR|random", callback=_scene, expose_value=False,
                     help="With --defocus: a folder of depth maps named as the photos (<stem>.png, 8 or 16 "
                          "bit, the photo's size), or random (a piecewise-planar depth per pair; the default)."),
        click.option("--defocus-px", default=None, metavar="LO-HI", callback=_scene, expose_value=False,
                     help="With --defocus: range of the largest blur diameter in pixels, drawn per pair "
                          "(default 2-8); the focus falls on a random part of the depth."),
        click.option("--aperture-blades", type=int, default=None, callback=_scene, expose_value=False,
                     help="With --defocus: 0 for a round aperture (default) or 3-16 blades (polygonal bokeh)."),
        click.option("--psf-grid", type=int, default=None, callback=_scene, expose_value=False,
                     help="Scene blur: the recorded PSF field is N x N local PSFs (default 5)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.command()
@click.argument("photos", type=click.Path())
@click.option("--kernels", type=click.Path(), default=None,
              help="Kernel bank made by 'blursynth trajectories' (for --psf-source bank).")
@click.option("--out", type=click.Path(), required=True, help="Output dataset directory.")
@click.option("--psf-source", type=click.Choice(["bank", "fresh"]), default="bank", show_default=True,
              help="Read PSFs from --kernels, or draw a new trajectory for every pair.")
@click.option("--exposure", default="random", show_default=True, callback=_exposure,
              help="Exposure fraction (one of the bank's) or 'random' (drawn per pair).")
@click.option("--per-image", type=int, default=1, show_default=True, callback=positive_int,
              help="Pairs per photo, each with its own kernel and crop.")
@click.option("--crop", default=None, callback=_size, help="Output size HxW (height first); the window is drawn per pair.")
@click.option("--resize", default=None, callback=_resize,
              help="Scale factor (0.5) applied to each photo first. (The old width-first size WxH is still read, "
                   "with a warning, for this release: use --resize-to.)")
@click.option("--resize-to", default=None, callback=_size,
              help="Size HxW (height first, like --crop) each photo is resized to first.")
@click.option("--crf", default="gamma:2.2", show_default=True,
              help="Camera response: gamma:G, srgb, none (blur encoded pixels, as DeblurGAN), rec709, smpte240m, "
                   "romm, lstar, hlg, filmic[:A,B[,C]] (S-curve), poly:C0,C1,... (fitted response), or random / "
                   "random:CURVE,CURVE,... (one per pair, recorded in its params).")
@click.option("--saturation", default=None,
              help="Old name of --exposure-gain, kept with a warning for this release: it scales the whole image, "
                   "the sharp target too. For light sources that streak, use --highlights.")
@click.option("--exposure-gain", default=None, callback=_keep, expose_value=False,
              help="Linear gain range of the whole image, the sharp target too, before blur, clipped after, e.g. "
                   "1-2: an over-exposed pair (off by default).")
@click.option("--highlights", default=None, callback=_keep, expose_value=False, metavar="LO-HI",
              help="Boost range of the photo's near-clipped pixels in linear light before blur (clipped after), "
                   "e.g. 2-8: light sources streak in the blurred image; the sharp target keeps the photo's "
                   "exposure (off by default).")
@click.option("--highlight-threshold", type=float, default=None, callback=_keep, expose_value=False,
              help="Linear value of a pixel's brightest channel from which --highlights boosts it (0.5-0.999; "
                   "default 0.9, code 243 with gamma 2.2); the boost ramps to its full factor at 1.")
@click.option("--highlight-regions", type=int, default=None, callback=_keep, expose_value=False,
              metavar="MAX_AREA",
              help="With --highlights, also boost small bright regions (lamps, bulbs, glints): 8-connected "
                   "regions of pixels whose brightest channel is at least --highlight-region-threshold, of at "
                   "most MAX_AREA pixels of the window, get the boost ramped from that lower value (off by "
                   "default).")
@click.option("--highlight-region-threshold", type=float, default=None, callback=_keep, expose_value=False,
              help="Linear value from which a pixel belongs to a bright region for --highlight-regions "
                   "(0.05-0.99, below --highlight-threshold; default 0.5, code 186 with gamma 2.2).")
@click.option("--noise", default=None, metavar="SHOT[,READ]|model|profile[:NAME|:FILE]",
              help="Poisson-Gaussian sensor noise in linear light (intensity 0-1), each X or LO-HI: SHOT is the "
                   "variance per unit linear intensity, READ the standard deviation of the signal-independent "
                   "part (variance SHOT*x + READ^2 at intensity x), e.g. 0.0005-0.005,0.002 (with --pipeline raw "
                   "on the RAW mosaic, before white balance, digital gain and colour correction: the same numbers "
                   "give a noisier image than on the RGB path); or 'model' "
                   "(--pipeline raw only): levels drawn per pair from a camera noise model; or 'profile' "
                   "(--pipeline raw only): drawn from the pair's camera's noise profile ('blursynth cameras'; the "
                   "bundled darmstadt line is the model's: for the bundled cameras this draws what 'model' draws), 'profile:NAME' from "
                   "a named one, 'profile:FILE.toml' from your camera's calibration (off by default).")
@click.option("--jpeg", default=None, help="JPEG quality range of the blurred image, e.g. 70-95 (off by default).")
@click.option("--pipeline", type=click.Choice(["rgb", "raw"]), default="rgb", show_default=True,
              help="rgb: blur and noise in linear RGB; raw: unprocess to a camera's RAW space, blur, clip at "
                   "white, mosaic, add --noise there (or '--noise model': levels drawn from a camera noise "
                   "model), demosaic and develop.")
@camera_options
@click.option("--border", type=click.Choice(["reflect", "valid", "wrap"]), default="reflect", show_default=True,
              help="reflect: mirror at the edges; valid: crop so every pixel saw only the photo; wrap: periodic.")
@click.option("--device", default="auto", show_default=True,
              help="Where to convolve: auto (CUDA if present), cpu, cuda or cuda:N. The device type is part "
                   "of the dataset's fingerprint (CPU and CUDA results may differ by one level). Scene blur "
                   "(--motion camera6d|scene) renders on the CPU: auto or cpu only.")
@click.option("--batch", type=int, default=8, show_default=True, callback=positive_int,
              help="Pairs drawn together before rendering, and on a GPU rendered in one call (the "
                   "output does not depend on it).")
@click.option("--length", "length_px", type=click.FloatRange(0, None, min_open=True), default=60.0, show_default=True,
              help="Trajectory length in pixels for --psf-source fresh (not with --motion camera6d|scene).")
@click.option("--canvas", type=click.IntRange(3, 1025), default=64, show_default=True,
              help="Largest PSF side for --psf-source fresh (even values use the odd size below), as "
                   "trajectories' --canvas (not with --motion camera6d|scene).")
@click.option("--strict", is_flag=True,
              help="Stop at the first unreadable photo, or one smaller than --crop, instead of skipping it.")
@click.option("--png-level", type=click.IntRange(0, 9), default=None, help="zlib level; default is the fast fpng encoder.")
@click.option("--shard-size", type=int, default=500, show_default=True, callback=positive_int, help="Pairs per shard.")
@scene_options
@seed_option
@workers_option
@overwrite_option
@quiet_option
def blur(photos, kernels, out, psf_source, exposure, per_image, crop, resize, resize_to, crf, saturation, noise,
         jpeg, pipeline, camera, demosaic, raw_bits, border, device, batch, length_px, canvas, strict, png_level,
         shard_size, seed, workers, overwrite):
    """Blur sharp PHOTOS by trajectory PSFs in linear light: a pair dataset.

    \b
    Example:
      blursynth trajectories --n 10000 --out bank/
      blursynth blur photos/ --kernels bank/ --out pairs/ --crop 256x256 --per-image 4
      blursynth blur photos/ --psf-source fresh --out pairs/ --highlights 2-8 --noise 0.001-0.005 --jpeg 70-95
      blursynth blur photos/ --motion scene --objects 1-3 --rolling-shutter 0-0.3 --out pairs/ --crop 256x256
    """
    # A spare core decodes photos during the imports below (most of the start-up), so the
    # writer's count is worked out before them (scene_settings imports no kernels).
    from ..pairs.scene_settings import render_device

    motion = click.get_current_context().meta.get("blursynth.blur.scene", {}).get("motion")
    workers = workers_for_device(workers, render_device(motion, device))
    with photos_decoded_ahead(photos, out, workers):
        from ..pairs.shake import BlurSettings, blur_photos

        if resize is not None and resize_to is not None:
            raise click.BadParameter("give --resize (a scale) or --resize-to (a size), not both.",
                                     param_hint="--resize-to")
        if isinstance(resize, tuple):
            w, h = resize
            click.echo(f"warning: --resize {w}x{h} is the old width-first spelling (width {w}, height {h}); write "
                       f"--resize-to {h}x{w} (sizes are height x width everywhere); --resize WxH goes in the next "
                       "release.", err=True)
        if resize_to is not None:
            resize = (resize_to[1], resize_to[0])  # BlurSettings.resize and row params keep (width, height)
        settings = BlurSettings(
            photos=photos, kernels=kernels, psf_source=psf_source, exposure=exposure, per_image=per_image,
            crop=crop, resize=resize, crf=crf, saturation=saturation, noise=noise, jpeg=jpeg, border=border,
            **click.get_current_context().meta.get("blursynth.blur.degrade", {}),
            **click.get_current_context().meta.get("blursynth.blur.scene", {}),
            device=device, batch=batch, seed=seed, strict=strict, fresh_length_px=length_px,
            fresh_canvas=canvas, png_level=png_level, shard_size=shard_size,
            pipeline=pipeline, camera=camera, demosaic=demosaic, raw_bits=raw_bits,
        )
        manifest = blur_photos(settings, out, workers=workers, overwrite=overwrite, keep_freed=True)
    echo_photo_pairs(manifest, out)
