"""``blursynth frames-average`` (pairs from high-frame-rate video) and ``render-clip`` (a clip with known motion)."""

from __future__ import annotations

import re

import click

from ._common import (
    camera_options, echo_manifest, finite, overwrite_option, positive_int, quiet_option,
    raw_only_degrade_options, seed_option, workers_option,
)


class WindowRange(click.ParamType):
    """``5-25`` (a length drawn per pair) or ``9`` (one length), in frames, at least 2.

    Read by :func:`blursynth.sources.windows.parse_window`, as recipes are; its
    error is one line that names ``--window``, printed as it is.
    """

    name = "frames"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        from ..sources.windows import parse_window

        return parse_window(value)


class ExposureRange(click.ParamType):
    """``8-30`` or ``16.7``: exposure in milliseconds, read by :func:`blursynth.sources.windows.parse_exposure_ms`."""

    name = "ms"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        from ..sources.windows import parse_exposure_ms

        return parse_exposure_ms(value)


class Crf(click.ParamType):
    """A camera response, read by :meth:`CameraResponse.parse`; with ``random=True`` also
    ``random[:CURVE,...]``. Returns its canonical text (``CameraResponse.spec``,
    :func:`~blursynth.ops.color.crf_option_spec`)."""

    name = "crf"

    def __init__(self, random: bool = False):
        self.random = random

    def convert(self, value, param, ctx):
        from ..ops.color import CameraResponse, crf_option_spec, is_random_crf  # small module

        try:
            if self.random and is_random_crf(value):
                return crf_option_spec(value)
            return CameraResponse.parse(value).spec
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _positive_fps(ctx, param, value):
    if value is not None and not value > 0:
        raise click.BadParameter(f"must be a positive number of frames per second; got {value}.", ctx, param)
    return value


@click.command(name="frames-average")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(), required=True, help="Output dataset directory.")
@click.option("--window", type=WindowRange(), default=None,
              help="Frames per pair: one length (7) or a range (5-25) drawn per pair from the seed "
                   "[default: 5-25].")
@click.option("--exposure-ms", type=ExposureRange(), default=None,
              help="Instead of --window: exposure per pair in milliseconds, one value (20) or a range "
                   "(8-30) drawn per pair; each input's windows are the whole frame counts of it at that "
                   "input's frame rate.")
@click.option("--overlap", type=click.IntRange(0, None), default=0, show_default=True,
              help="Frames consecutive windows share (a running sum reuses them).")
@click.option("--gap", type=click.IntRange(0, None), default=0, show_default=True,
              help="Frames skipped between consecutive windows.")
@click.option("--odd-only", is_flag=True,
              help="Draw odd lengths only, so the sharp frame is the exact middle. Otherwise an even "
                   "window's sharp frame is the later middle frame, half a frame after the window centre "
                   "(recorded as sharp_offset_frames=0.5).")
@click.option("--crf", type=Crf(random=True), default="gamma:2.2", show_default=True,
              help="Camera response to undo before averaging: gamma:G, srgb, none, rec709, smpte240m, romm, lstar, "
                   "hlg, filmic[:A,B[,C]], poly:C0,C1,..., or random / random:CURVE,CURVE,... (one per pair).")
@click.option("--interpolate", type=click.IntRange(1, 16), default=1, show_default=True,
              help="K: insert K-1 optical-flow frames between real frames before averaging (REDS style).")
@click.option("--fps", type=float, default=None, callback=_positive_fps,
              help="Capture rate, when the container has none or lies (required for frame folders).")
@click.option("--max-pairs", type=int, default=None, callback=positive_int, help="Stop after this many pairs.")
@click.option("--png-level", type=click.IntRange(0, 9), default=None, help="zlib level; default is the fast fpng encoder.")
@click.option("--shard-size", type=int, default=256, show_default=True, callback=positive_int, help="Pairs per shard.")
@click.option("--psf-max-size", type=int, default=None,
              help="Largest side, in pixels, of a render-clip source's ground-truth PSF [default: each "
                   "sized to its camera path]. Mass outside is dropped (recorded per row as psf_clipped) "
                   "with a warning.")
@click.option("--cut-threshold", type=float, default=0.5, show_default=True,
              help="Scene-cut check: consecutive frames whose colour histograms differ by more than this "
                   "share of pixels are a cut, and a window spanning one is skipped (listed in the "
                   "manifest). In (0, 1]; 1 turns the check off.")
@click.option("--pipeline", type=click.Choice(["rgb", "raw"]), default="rgb", show_default=True,
              help="rgb: average and encode; raw: average in linear light, unprocess the mean to a camera's "
                   "RAW space, clip at white, mosaic, add --noise there, demosaic and develop (the sharp frame "
                   "the same way, without noise).")
@camera_options
@raw_only_degrade_options
@click.option("--exposure-gain", default=None,
              help="RAW path: linear gain range of both images' camera colours, clipped at white after, e.g. 1-2 "
                   "(off by default).")
@click.option("--highlights", default=None, metavar="LO-HI",
              help="RAW path: boost range of the window mean's near-clipped pixels in camera space before the "
                   "clip at white, e.g. 2-8; decided on the mean, so it lifts lights that stay put more than "
                   "moving ones' streaks (docs/algorithms.md); the sharp frame is not boosted (off by default).")
@click.option("--highlight-threshold", type=float, default=None,
              help="RAW path: linear value of a pixel's brightest channel from which --highlights boosts it "
                   "(0.5-0.999; default 0.9).")
@click.option("--highlight-regions", type=int, default=None,
              help="RAW path, with --highlights: also boost small bright regions of the mean of at most this many "
                   "pixels, from --highlight-region-threshold on (off by default).")
@click.option("--highlight-region-threshold", type=float, default=None,
              help="RAW path: linear value from which a pixel belongs to a bright region for --highlight-regions "
                   "(0.05-0.99, below --highlight-threshold; default 0.5).")
@seed_option
@workers_option
@overwrite_option
@quiet_option
def frames_average(inputs, out, window, exposure_ms, overlap, gap, odd_only, crf, interpolate, fps, max_pairs, png_level,
                   shard_size, psf_max_size, cut_threshold, pipeline, camera, demosaic, raw_bits, noise, jpeg,
                   exposure_gain, highlights, highlight_threshold, highlight_regions, highlight_region_threshold,
                   seed, workers, overwrite):
    """Pairs from high-frame-rate video: average windows of frames in linear light, middle frame sharp.

    INPUTS are video files, folders of numbered frames, or folders of those
    (GoPro_Large_all layout). A truncated video keeps the pairs made before
    the damage, with a warning.

    \b
    Example:
      blursynth frames-average clip240.mp4 --window 5-25 --out pairs/
      blursynth frames-average GOPR0372_07_00/ --fps 240 --window 7 --out pairs/
      blursynth frames-average film60.mp4 --exposure-ms 30-60 --interpolate 8 --out pairs/
    """
    import warnings

    from ..errors import BadInputError
    from ..pairs.frames import FramesAverageSettings, FramesAverageWarning, write_frame_pairs
    from ..sources.video import TruncatedVideoWarning

    if window is not None and exposure_ms is not None:
        raise BadInputError("give --window or --exposure-ms, not both: --window counts frames, "
                            "--exposure-ms sets the time and counts each input's frames from its frame rate.")
    given = {} if window is None else {"window_min": window[0], "window_max": window[1]}
    settings = FramesAverageSettings(
        **given, seed=seed, overlap=overlap, gap=gap, odd_only=odd_only,
        crf=crf, interpolate=interpolate, fps=fps, max_pairs=max_pairs, png_level=png_level,
        shard_size=shard_size, psf_max_size=psf_max_size, cut_threshold=cut_threshold, exposure_ms=exposure_ms,
        pipeline=pipeline, camera=camera, demosaic=demosaic, raw_bits=raw_bits, noise=noise, jpeg=jpeg,
        exposure_gain=exposure_gain, highlights=highlights, highlight_regions=highlight_regions,
        **{k: v for k, v in (("highlight_threshold", highlight_threshold),
                             ("highlight_region_threshold", highlight_region_threshold)) if v is not None},
    )
    told = (TruncatedVideoWarning, FramesAverageWarning)
    with warnings.catch_warnings(record=True) as caught:
        for category in told:
            warnings.simplefilter("always", category)
        manifest = write_frame_pairs(inputs, out, settings, workers=workers, overwrite=overwrite,
                                     keep_freed=True)
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, told)):
        click.echo(f"warning: {message}", err=True)
    if manifest.get("skipped"):
        n = manifest["skipped"]
        click.echo(f"warning: skipped {n} window{'s that span' if n != 1 else ' that spans'} a scene cut (never averaged "
                   f"across one); {out}/manifest.json lists each under shards[].skipped. --cut-threshold sets "
                   "the check.", err=True)
    echo_manifest(manifest, out)


@click.command(name="render-clip")
@click.argument("photo", type=click.Path())
@click.option("--out", type=click.Path(), required=True,
              help="Clip file (.mp4, .mkv, .mov, .avi, .m4v) or a name without a suffix for a folder of "
                   "numbered PNG frames; missing parent folders are created.")
@click.option("--fps", type=float, default=240.0, show_default=True, callback=_positive_fps, help="Frame rate.")
@click.option("--frames", "n_frames", type=click.IntRange(2, 100000), default=240, show_default=True,
              help="Number of frames.")
@click.option("--length-px", type=click.FloatRange(0, None), default=120.0, show_default=True,
              help="Path length of the camera over the whole clip, in pixels.")
@click.option("--size", default=None, help="Frame size HxW (default: the largest the motion leaves).")
@click.option("--crf", type=Crf(), default="gamma:2.2", show_default=True,
              help="Camera response of the photo; frames are resampled in linear light.")
@click.option("--quality", type=click.Choice(["lossless", "high"]), default="lossless", show_default=True,
              help="lossless: H.264 RGB at crf 0; high: H.264 4:2:0 at crf 12 (plays anywhere).")
@click.option("--motion", type=click.Choice(["translation", "camera6d", "scene"]), default="translation",
              show_default=True,
              help="translation: the planar shake path; camera6d: a 6-DoF hand-shake path (rotation and "
                   "translation, --length-px its longest image path), so the blur of frames-average varies "
                   "across the frame; scene: that plus moving objects (--objects). frames-average then "
                   "records each pair's PSF field and motion mask.")
@click.option("--focal-px", type=float, default=None,
              help="camera6d/scene: focal length in pixels (default: the photo's longer side).")
@click.option("--objects", default=None, metavar="LO-HI",
              help="--motion scene: number of moving objects, N or LO-HI (default 1-3); they move over the "
                   "whole clip.")
@click.option("--object-kind", type=click.Choice(["cutout", "leaves"]), default="cutout", show_default=True,
              help="--motion scene: pieces of the photo cut by random soft shapes, or dead-leaves disks.")
@click.option("--object-masks", type=click.Path(), default=None, metavar="DIR",
              help="--motion scene: a folder holding the photo's alpha PNG (<stem>.png, the photo's size): "
                   "the masked part moves as the objects.")
@click.option("--psf-grid", type=int, default=5, show_default=True,
              help="camera6d/scene: frames-average records N x N local PSFs per pair.")
@seed_option
@click.option("--overwrite", is_flag=True,
              help="Replace a clip (and sidecar) an earlier render-clip wrote at --out; anything else "
                   "there is never replaced.")
def render_clip(photo, out, fps, n_frames, length_px, size, crf, quality, motion, focal_px, objects, object_kind,
                object_masks, psf_grid, seed, overwrite):
    """Render a high-frame-rate clip of a virtual camera moving over PHOTO along a random trajectory.

    Writes OUT and OUT.json (every frame's camera position, the settings and the
    trajectory's parameters; with --motion camera6d|scene also every frame's 6-DoF pose, the
    focal length and the objects). An existing OUT is refused unless --overwrite is
    given and it is an earlier render-clip output.

    \b
    Example:
      blursynth render-clip photo.png --out clip.mp4 --fps 240 --frames 480 --seed 1
      blursynth frames-average clip.mp4 --window 5-25 --out pairs/
      blursynth render-clip photo.png --motion scene --objects 1-3 --out scene.mkv
    """
    from ..sources.photos import load_rgb8
    from ..sources.render import RenderSettings, check_clip_output, render_clip as render
    from ..sources.render_scene import check_clip_scene_settings

    frame_size = None
    if size is not None:
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", size)
        if not m:
            raise click.BadParameter(f"{size!r} is not HxW, e.g. 480x640.", param_hint="--size")
        frame_size = (int(m.group(1)), int(m.group(2)))
        if min(frame_size) < 2:
            raise click.BadParameter(f"{size!r}: frame sides must be at least 2 px, e.g. 480x640.", param_hint="--size")
    settings = RenderSettings(fps=fps, n_frames=n_frames, seed=seed, length_px=length_px, crf=crf,
                              quality=quality, size=frame_size, motion=motion, focal_px=focal_px,
                              objects=objects, object_kind=object_kind, object_masks=object_masks,
                              psf_grid=psf_grid)
    check_clip_scene_settings(settings)  # before the photo is read
    check_clip_output(out, overwrite=overwrite)
    image, note = load_rgb8(photo)
    if note:
        click.echo(f"note: {note}", err=True)
    info = render(image, out, settings, source=str(photo), overwrite=overwrite)
    g = info["geometry"]
    what = {"translation": "camera positions", "camera6d": "camera poses"}.get(motion, "camera poses and objects")
    click.echo(f"wrote {n_frames} frames of {g['height']}x{g['width']} (HxW, as --size) at {fps:g} fps to {out} "
               f"({what} in {out}.json)")


@click.command(name="render-leaves")
@click.option("--out", type=click.Path(), required=True, help="Output folder of PNG images.")
@click.option("--n", "n", type=click.IntRange(1, None), required=True, help="Number of images.")
@click.option("--size", type=click.IntRange(16, 8192), default=512, show_default=True,
              help="Side of the square images, in pixels.")
@click.option("--r-min", type=float, default=2.0, show_default=True, callback=finite,
              help="Smallest disk radius, in pixels.")
@click.option("--r-max", type=float, default=None, callback=finite,
              help="Largest disk radius, in pixels [default: size / 4].")
@click.option("--coverage", type=float, default=0.999, show_default=True, callback=finite,
              help="Fraction of each image the disks cover on average (sets the disk count).")
@click.option("--noise", type=float, default=2.0, show_default=True, callback=finite,
              help="Smooth texture on the disks, standard deviation in 8-bit levels (0: flat).")
@click.option("--colours-from", "colours_from", multiple=True, type=click.Path(),
              help="Photo(s) or folder(s) whose pixels give the disks' colours, repeatable "
                   "[default: uniform over RGB].")
@seed_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def render_leaves(out, n, size, r_min, r_max, coverage, noise, colours_from, seed, quiet):
    """Render dead-leaves images: synthetic sharp images with natural edge statistics.

    Opaque disks with radii distributed as r^-3 fall one over another; blurred by
    'blursynth blur' or filmed by 'render-clip', they add edges at every scale and
    orientation to training pairs made from a few photos. Image i depends only on
    the settings, the colours and (--seed, i): a stopped run resumes, and a larger
    --n adds images.

    \b
    Example:
      blursynth render-leaves --n 200 --colours-from photos/ --out leaves/
      blursynth blur leaves/ --psf-source fresh --crop 256x256 --out pairs-leaves/
    """
    from ..sources.leaves import LeavesSettings, render_leaves as render

    settings = LeavesSettings(n=n, size=size, r_min=r_min, r_max=r_max, coverage=coverage,
                              noise=noise, seed=seed)
    try:
        info = render(out, settings, colours_from=colours_from, progress=not quiet)
    except KeyboardInterrupt:
        from ..errors import Interrupted

        raise Interrupted.of(f"; the images written to {out} are kept: rerun the same command "
                             f"to finish.") from None
    written = info["written"]
    click.echo(f"wrote {written} dead-leaves image{'s' if written != 1 else ''} of "
               f"{size}x{size} to {out}"
               + (f" ({info['kept']} already there kept)" if info["kept"] else ""))
