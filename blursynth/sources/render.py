"""Render a high-frame-rate clip of a virtual camera moving over a still photo.

Frame ``k`` shows the photo seen from camera position ``traj[k]``: pixel
``(r, c)`` is the photo's linear light at ``(oy + r + y_k, ox + c + x_k)``,
sampled with bilinear weights. For a pure translation those weights are the
exact areas a sensor pixel covers of the photo's pixel squares, so the
rendering is area-sampled (anti-aliased) at any sub-pixel position, and the
average of frames ``s .. s+n-1`` in linear light is exactly the photo
correlated with the bilinear PSF of ``traj[s:s+n]`` (before each frame is
rounded to 8 bits). That identity is what ties frame averaging to trajectory
blur in the tests.

The module also writes the clip (a video or a frame folder, replaced whole) and
reads its camera-path sidecar back (:func:`known_motion`): the three share the
clip's layout, which is why they sit together at about 600 lines.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._numba import njit
from ..dataset.outputs import OutputKind, claim, lock_output, temporary_path
from ..errors import BadInputError
from ..ops.encode8 import linear_lut, sum_readout

if TYPE_CHECKING:
    from .video import SourceInfo

QUALITIES = ("lossless", "high")
# codec, pixel format, options. libx264rgb at crf 0 is lossless RGB (no chroma
# subsampling) and decodes with PyAV and OpenCV; "high" is ordinary, widely
# playable H.264 at a quality where the codec's error is about one 8-bit level.
_CODECS = {
    "lossless": ("libx264rgb", "rgb24", {"crf": "0", "preset": "veryfast"}),
    "high": ("libx264", "yuv420p", {"crf": "12", "preset": "medium"}),
}


# Containers that hold both codecs and read back frame-exact (checked with PyAV).
CLIP_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".m4v")
# The names _write_png_folder gives frames; an existing folder holding only these is ours.
_FRAME_NAME = re.compile(r"\d{6}\.png")
_SIDECAR_KEYS = ("positions_xy", "geometry", "n_frames", "fps")

# The folder a clip goes in may be anyone's: render-clip adds only the clip and its sidecar
# there, each checked by check_clip_output. Claimed so that it is made (with missing parents)
# and checked writable up front, and removed again when a render fails.
_CLIP_FOLDER = OutputKind(
    what="clip folder",
    is_file="--out {out}: is a file, not a folder; choose another --out.",
    foreign="--out {out}: holds {name}",  # unused: every name is the folder's own
    own=lambda name: True,
)


@dataclass(frozen=True)
class ClipGeometry:
    """Where the frames sit in the photo.

    Attributes
    ----------
    origin_x, origin_y : int
        Photo pixel under frame pixel (0, 0) when the camera is at (0, 0).
    height, width : int
        Frame size.
    """

    origin_x: int
    origin_y: int
    height: int
    width: int


def clip_geometry(photo_shape, traj, size=None, even=False) -> ClipGeometry:
    """Largest frame (or the ``size`` asked) that stays inside the photo along ``traj``.

    Parameters
    ----------
    photo_shape : tuple
        ``(H, W[, C])`` of the photo.
    traj : (T, 2) float ndarray
        Camera positions ``(x, y)`` in pixels.
    size : (int, int), optional
        Frame ``(height, width)``; centred in the room the motion leaves.
    even : bool
        Round the size down to even numbers (needed by 4:2:0 codecs).

    Returns
    -------
    geometry : ClipGeometry

    Examples
    --------
    >>> g = clip_geometry((100, 120, 3), np.array([[0.0, 0.0], [10.5, -3.2]]))
    >>> (g.height, g.width)
    (96, 109)
    """
    traj = np.asarray(traj, dtype=np.float64)
    h_photo, w_photo = int(photo_shape[0]), int(photo_shape[1])
    x_lo, x_hi = math.floor(traj[:, 0].min()), math.ceil(traj[:, 0].max())
    y_lo, y_hi = math.floor(traj[:, 1].min()), math.ceil(traj[:, 1].max())
    room_w, room_h = w_photo - (x_hi - x_lo), h_photo - (y_hi - y_lo)
    if size is None:
        height, width = room_h, room_w
    else:
        height, width = int(size[0]), int(size[1])
    if even:
        height, width = height - height % 2, width - width % 2
    if height < 2 or width < 2 or height > room_h or width > room_w:
        raise BadInputError(
            f"the camera path spans {y_hi - y_lo}x{x_hi - x_lo} (HxW) px, which leaves room for at most "
            f"{max(room_h, 0)}x{max(room_w, 0)} (HxW) frames in a {h_photo}x{w_photo} photo; got a frame "
            f"size of {height}x{width}. Use a larger photo, a shorter path (--length-px) or a smaller --size."
        )
    return ClipGeometry(-x_lo + (room_w - width) // 2, -y_lo + (room_h - height) // 2, height, width)


def shift_bilinear(image, x: float, y: float, geometry: ClipGeometry) -> np.ndarray:
    """Sample ``image`` at ``(origin_y + r + y, origin_x + c + x)`` for every frame pixel ``(r, c)``.

    Parameters
    ----------
    image : (H, W, C) float ndarray
        Linear light; must cover the frame at this position plus one pixel
        (``clip_geometry`` guarantees it, with :func:`render_frames` padding
        the last row and column).
    x, y : float
        Camera position in pixels.
    geometry : ClipGeometry

    Returns
    -------
    frame : (height, width, C) float64 ndarray

    Examples
    --------
    >>> img = np.arange(12.0).reshape(3, 4, 1)
    >>> shift_bilinear(img, 0.5, 0.0, ClipGeometry(0, 0, 2, 2))[..., 0].tolist()
    [[0.5, 1.5], [4.5, 5.5]]
    """
    px, py = geometry.origin_x + x, geometry.origin_y + y
    x0, y0 = math.floor(px), math.floor(py)
    fx, fy = px - x0, py - y0
    h, w = geometry.height, geometry.width
    if x0 < 0 or y0 < 0 or y0 + h + 1 > image.shape[0] or x0 + w + 1 > image.shape[1]:
        raise ValueError(f"position ({x}, {y}) leaves the photo; use clip_geometry for the frame size.")
    a = image[y0:y0 + h, x0:x0 + w]
    b = image[y0:y0 + h, x0 + 1:x0 + w + 1]
    c = image[y0 + 1:y0 + h + 1, x0:x0 + w]
    d = image[y0 + 1:y0 + h + 1, x0 + 1:x0 + w + 1]
    # Area weights of the four photo pixels a shifted sensor pixel covers.
    return (1 - fy) * ((1 - fx) * a + fx * b) + fy * ((1 - fx) * c + fx * d)


@njit
def _shift_to_sums(image, px, py, height, width, scale, out):
    """``shift_bilinear`` fused with scaling to the averager's integer linear units (rounded)."""
    x0 = int(math.floor(px))
    y0 = int(math.floor(py))
    fx = px - x0
    fy = py - y0
    channels = image.shape[2]
    i = 0
    for r in range(height):
        for c in range(width):
            for ch in range(channels):
                top = (1 - fx) * image[y0 + r, x0 + c, ch] + fx * image[y0 + r, x0 + c + 1, ch]
                bottom = (1 - fx) * image[y0 + r + 1, x0 + c, ch] + fx * image[y0 + r + 1, x0 + c + 1, ch]
                out[i] = int(((1 - fy) * top + fy * bottom) * scale + 0.5)  # values are >= 0
                i += 1


def render_frames(photo: np.ndarray, traj, *, crf="gamma:2.2", geometry: ClipGeometry | None = None):
    """Yield the clip's frames: the photo seen from each camera position, in 8 bits.

    Parameters
    ----------
    photo : (H, W, 3) uint8 ndarray
        Encoded (camera-response) RGB.
    traj : (T, 2) float ndarray
        Camera position ``(x, y)`` of each frame, in pixels.
    crf : CameraResponse or str
        Response used to go to linear light and back (:meth:`CameraResponse.parse`).
    geometry : ClipGeometry, optional
        Defaults to the largest frame that fits.

    Yields
    ------
    frame : (height, width, 3) uint8 ndarray

    Examples
    --------
    >>> photo = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    >>> frames = list(render_frames(photo, np.zeros((2, 2))))
    >>> bool((frames[0] == photo).all())
    True
    """
    photo = np.asarray(photo)
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise BadInputError(f"photo must be (H, W, 3) uint8 RGB; got {photo.dtype} {photo.shape}.")
    traj = np.asarray(traj, dtype=np.float64)
    if traj.ndim != 2 or traj.shape[1] != 2 or not np.isfinite(traj).all():
        raise ValueError(f"traj must be finite (T, 2) positions (x, y); got shape {traj.shape}.")
    geometry = geometry or clip_geometry(photo.shape, traj)
    lut, scale = linear_lut(crf)
    linear = lut.astype(np.float64)[photo] / scale
    # One extra row and column so that bilinear reads at integer positions stay in bounds.
    linear = np.pad(linear, ((0, 1), (0, 1), (0, 0)), mode="edge")
    h, w = geometry.height, geometry.width
    readout = sum_readout(crf, 1)
    sums = np.empty(h * w * 3, np.uint32)
    for x, y in traj:
        px, py = geometry.origin_x + x, geometry.origin_y + y
        if px < 0 or py < 0 or py + h + 1 > linear.shape[0] or px + w + 1 > linear.shape[1]:
            raise ValueError(f"position ({x}, {y}) leaves the photo; use clip_geometry for the frame size.")
        # The shifted frame in the averager's integer linear units, then read out
        # through its exact thresholds: a one-frame "sum".
        _shift_to_sums(linear, float(px), float(py), h, w, float(scale), sums)
        yield readout.encode(sums).reshape(h, w, 3)


def write_video(frames, out, *, fps: float, quality: str = "lossless", overwrite: bool = False) -> int:
    """Write frames to a video file, or numbered PNGs if ``out`` has no suffix.

    The clip is written under a temporary name next to ``out`` and renamed
    when complete, so an interrupted run leaves no partial clip. A missing
    parent folder is created.

    Parameters
    ----------
    frames : iterable of (H, W, 3) uint8 ndarray
    out : str or Path
        ``clip.mp4`` / ``.mkv`` / ``.mov`` / ``.avi`` / ``.m4v``, or a folder
        name without a suffix (``clip/``: ``000000.png`` ...).
    fps : float
    quality : {'lossless', 'high'}
    overwrite : bool
        Replace an existing clip file or folder of numbered frames. Without it
        an existing non-empty ``out`` is refused; a folder holding anything
        else is refused either way.

    Returns
    -------
    n_frames : int

    Raises
    ------
    BadInputError
        Unknown suffix, or an existing output that may not be replaced.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "clip.mkv"
    >>> write_video([np.zeros((8, 8, 3), np.uint8)] * 3, out, fps=240)
    3
    """
    out = Path(out)
    if quality not in QUALITIES:
        raise BadInputError(f"quality must be one of {QUALITIES}; got {quality!r}.")
    check_clip_output(out, overwrite=overwrite, sidecar=False)
    folder = claim(out.parent, _CLIP_FOLDER)
    tmp = _staging_name(out)
    try:
        n = _write_frames(frames, tmp, fps, quality, folder=out.suffix == "")
        _install(tmp, out)
    except BaseException:
        _discard(tmp)
        folder.undo()
        raise
    return n


def check_clip_output(out, *, overwrite: bool = False, sidecar: bool = True) -> None:
    """Refuse an output name that would lose data; raises before anything is written.

    ``out`` must have a known video suffix (:data:`CLIP_SUFFIXES`) or none (a
    folder of numbered frames). An existing non-empty ``out`` (or its sidecar
    ``<out>.json`` when ``sidecar``) is refused unless ``overwrite``; even then
    only what render-clip writes is replaced: a folder holding nothing but
    ``NNNNNN.png`` frames or a video file, with (when ``sidecar``) a sidecar
    recording camera positions. Empty files and folders are replaced freely.

    Raises
    ------
    BadInputError

    Examples
    --------
    >>> check_clip_output("clip.xyz")
    Traceback (most recent call last):
    ...
    blursynth.errors.BadInputError: --out clip.xyz: unknown video suffix '.xyz'; use one of .mp4, .mkv, .mov, .avi, .m4v, or a name without a suffix for a folder of PNG frames.
    """
    out = Path(out)
    if out.suffix and out.suffix.lower() not in CLIP_SUFFIXES:
        raise BadInputError(
            f"--out {out}: unknown video suffix '{out.suffix}'; use one of {', '.join(CLIP_SUFFIXES)}, "
            "or a name without a suffix for a folder of PNG frames."
        )
    for parent in (out.parent, *out.parent.parents):
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise BadInputError(f"--out {out}: '{parent}' is a file, not a folder; choose another --out.")
            break
    side = out.with_name(out.name + ".json")
    existing = [p for p in ((out, side) if sidecar else (out,)) if not _is_empty(p)]
    if not existing:
        return
    shown = " and ".join(f"'{p}'" for p in existing)
    if out.is_dir() and out.suffix:
        raise BadInputError(f"--out {out} is a directory; expected a video file name or a name without a suffix.")
    if not overwrite:
        raise BadInputError(
            f"--out {out}: {shown} already exist{'s' if len(existing) == 1 else ''}; pass --overwrite to "
            "replace a clip render-clip wrote, or choose another --out."
        )
    if not _ours(out, side if sidecar else None):
        raise BadInputError(
            f"--out {out}: {shown} {'does' if len(existing) == 1 else 'do'} not look like a clip render-clip "
            "wrote (a video file or a folder of NNNNNN.png frames, with its .json sidecar); not replacing "
            "it even with --overwrite. Move it away or choose another --out."
        )


def _is_empty(path: Path) -> bool:
    """True when nothing is at ``path``, or an empty regular file or empty folder."""
    if not os.path.lexists(path):
        return True
    if path.is_symlink():
        return False
    if path.is_dir():
        return not any(path.iterdir())
    return path.is_file() and path.stat().st_size == 0


def _ours(out: Path, side: Path | None) -> bool:
    """Whether ``out`` (and its sidecar ``side``) can be what render-clip wrote."""
    if not _is_empty(out):
        if out.is_symlink():
            return False
        if out.suffix == "":
            if not out.is_dir() or not all(p.is_file() and not p.is_symlink() and _FRAME_NAME.fullmatch(p.name)
                                           for p in out.iterdir()):
                return False
        elif not out.is_file():
            return False
    if side is None:
        return True
    if _is_empty(side):
        # No sidecar vouches for a non-empty output.
        return _is_empty(out)
    if side.is_symlink() or not side.is_file():
        return False
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and all(k in data for k in _SIDECAR_KEYS)


def _staging_name(out: Path) -> Path:
    # Keep the suffix: the container format is chosen by it.
    return out.with_name(f".{out.stem}.tmp{os.getpid()}{out.suffix}")


def _discard(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink()


def _install(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` to ``out``, replacing what :func:`check_clip_output` allowed."""
    if out.is_dir() and not out.is_symlink():
        old = out.with_name(f".{out.name}.old{os.getpid()}")
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old)
        return
    if tmp.is_dir() and os.path.lexists(out):
        out.unlink()  # an empty file where the frames folder goes
    os.replace(tmp, out)


def _write_frames(frames, tmp: Path, fps: float, quality: str, *, folder: bool) -> int:
    if folder:
        return _write_png_folder(frames, tmp)
    return _write_container(frames, tmp, fps, quality)


def _write_png_folder(frames, folder: Path) -> int:
    from .photos import save_rgb8

    folder.mkdir(parents=True)
    n = 0
    for n, frame in enumerate(frames, start=1):
        save_rgb8(folder / f"{n - 1:06d}.png", frame)
    return n


def _write_container(frames, path: Path, fps: float, quality: str) -> int:
    import fractions

    import av

    codec, pix_fmt, options = _CODECS[quality]
    rate = fractions.Fraction(fps).limit_denominator(1001)
    n = 0
    # MP4/MOV put their index (moov) first, so a copy cut short still plays up to the cut
    # (frames-average then keeps the pairs before it) rather than being unreadable.
    faststart = {"movflags": "+faststart"} if path.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
    with av.open(str(path), "w", options=faststart) as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=rate)
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = pix_fmt
                stream.options = dict(options)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
            n += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return n


@dataclass(frozen=True)
class RenderSettings:
    """Settings of ``blursynth render-clip``.

    Attributes
    ----------
    fps : float
        Frame rate recorded in the clip.
    n_frames : int
    seed : int
    length_px : float
        Path length of the whole clip's camera trajectory, in pixels.
    crf : str
    quality : {'lossless', 'high'}
    size : (int, int) or None
        Frame (height, width); None for the largest that fits.
    motion : {'translation', 'camera6d', 'scene'}
        ``translation``: the planar shake path (today's clips); ``camera6d``: a 6-DoF shake path
        (rotation and translation, :mod:`blursynth.sources.render_scene`), ``length_px`` its
        longest image path; ``scene``: that plus moving objects.
    focal_px : float or None
        camera6d/scene: focal length in pixels (None: the photo's longer side).
    objects : str or None
        scene: object count ``N`` or ``LO-HI`` (None: 1-3).
    object_kind : {'cutout', 'leaves'}
    object_masks : str or None
        scene: folder holding the photo's alpha mask (``<stem>.png``): that part of it moves.
    psf_grid : int
        camera6d/scene: side of the PSF field frames-average records per pair.
    """

    fps: float = 240.0
    n_frames: int = 240
    seed: int = 0
    length_px: float = 120.0
    crf: str = "gamma:2.2"
    quality: str = "lossless"
    size: tuple | None = None
    motion: str = "translation"
    focal_px: float | None = None
    objects: str | None = None
    object_kind: str = "cutout"
    object_masks: str | None = None
    psf_grid: int = 5


def clip_trajectory(n_frames: int, length_px: float, *, rng) -> tuple[np.ndarray, dict]:
    """Camera positions of a clip: one random shake trajectory sampled once per frame.

    Returns
    -------
    traj : (n_frames, 2) float64 ndarray
    params : dict
        The trajectory model's drawn parameters.

    Examples
    --------
    >>> traj, params = clip_trajectory(48, 30.0, rng=0)
    >>> traj.shape, bool(np.isclose(np.hypot(*np.diff(traj, axis=0).T).sum(), 30.0))
    ((48, 2), True)
    """
    from ..ops.trajectory import sample_trajectory

    return sample_trajectory(rng=rng, n_samples=int(n_frames), length_px=float(length_px))


def render_clip(photo: np.ndarray, out, settings: RenderSettings, *, source: str = "",
                overwrite: bool = False) -> dict:
    """Render a clip of a camera moving over ``photo`` and write it with a JSON sidecar.

    The sidecar ``<out>.json`` records the camera position of every frame, the
    frame geometry in the photo and all settings, so the motion is known
    ground truth. Clip and sidecar are written under temporary names and
    renamed when both are complete; a missing parent folder is created (and
    removed again if the run fails).

    Parameters
    ----------
    photo : (H, W, 3) uint8 ndarray
    out : str or Path
        Video file (:data:`CLIP_SUFFIXES`), or a name without a suffix for a
        folder of numbered PNG frames.
    settings : RenderSettings
    source : str
        Name of the photo, recorded in the sidecar.
    overwrite : bool
        Replace an earlier render-clip output at ``out``. An existing
        non-empty ``out`` or sidecar is refused without it, and anything
        render-clip did not write (see :func:`check_clip_output`) is refused
        even with it.

    Returns
    -------
    info : dict
        What the sidecar holds.

    Raises
    ------
    BadInputError
        Bad settings or output name, before anything is written.

    Examples
    --------
    >>> import tempfile
    >>> photo = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    >>> out = Path(tempfile.mkdtemp()) / "clip.mkv"
    >>> info = render_clip(photo, out, RenderSettings(n_frames=8, length_px=6.0))
    >>> len(info["positions_xy"]), out.with_name("clip.mkv.json").exists()
    (8, True)
    """
    from .._rng import sample_rng

    if settings.n_frames < 2:
        raise BadInputError(f"--frames must be at least 2; got {settings.n_frames}.")
    if not (settings.fps > 0 and math.isfinite(settings.fps)):
        raise BadInputError(f"--fps must be a positive number; got {settings.fps!r}.")
    if not (settings.length_px >= 0 and math.isfinite(settings.length_px)):
        raise BadInputError(f"--length-px must be >= 0; got {settings.length_px!r}.")
    if settings.quality not in QUALITIES:
        raise BadInputError(f"quality must be one of {QUALITIES}; got {settings.quality!r}.")
    out = Path(out)
    from .render_scene import check_clip_scene_settings

    check_clip_scene_settings(settings)
    check_clip_output(out, overwrite=overwrite)
    even = out.suffix != "" and _CODECS[settings.quality][1] == "yuv420p"
    info = {
        "source": source,
        "fps": settings.fps,
        "n_frames": settings.n_frames,
        "seed": settings.seed,
        "length_px": settings.length_px,
        "crf": settings.crf,
        "quality": settings.quality,
    }
    if settings.motion != "translation":
        from .render_scene import load_clip_mask, plan_scene_clip, scene_frames

        name = Path(source).name or "photo"
        mask = load_clip_mask(settings, name, photo.shape)
        info.update(plan_scene_clip(photo.shape, settings, source=name, even=even,
                                    mask_hw=None if mask is None else mask.shape))
        frames = scene_frames(photo, info, crf=settings.crf, mask=mask)
    else:
        if settings.length_px > 0:
            traj, traj_params = clip_trajectory(settings.n_frames, settings.length_px,
                                                rng=sample_rng(settings.seed, 0))
        else:
            traj, traj_params = np.zeros((settings.n_frames, 2)), {}
        geometry = clip_geometry(photo.shape, traj, settings.size, even=even)
        info.update(geometry=geometry.__dict__, trajectory_params=traj_params,
                    positions_xy=traj.round(9).tolist())
        frames = render_frames(photo, traj, crf=settings.crf, geometry=geometry)
    sidecar = out.with_name(out.name + ".json")
    folder = claim(out.parent, _CLIP_FOLDER)
    tmp, side_tmp = _staging_name(out), temporary_path(sidecar)
    with lock_output(out.parent, shown=out, keep=False):  # outside the try: a refused run undoes nothing
        # Again, outside the try too: another run may have written the clip meanwhile, in the
        # folder this claim made, and undoing that folder would remove its clip.
        check_clip_output(out, overwrite=overwrite)
        try:
            _remove_staging(out)
            _write_frames(frames, tmp, settings.fps, settings.quality, folder=out.suffix == "")
            side_tmp.write_text(json.dumps(info, indent=1) + "\n")
            _install(tmp, out)
            os.replace(side_tmp, sidecar)
        except BaseException:
            _discard(tmp)
            _discard(side_tmp)
            folder.undo()
            raise
    return info


def _remove_staging(out: Path) -> None:
    """Remove what a killed render of ``out`` left beside it: its staging clip (or frames folder
    holding only frames) and sidecar; only those names, never through a link."""
    clip = re.compile(re.escape(f".{out.stem}.tmp") + r"\d+" + re.escape(out.suffix))
    side = re.compile(re.escape(f".{out.name}.json.tmp") + r"\d+")
    for path in out.parent.iterdir():
        if path.is_symlink() or not (clip.fullmatch(path.name) or side.fullmatch(path.name)):
            continue
        if path.is_file():
            path.unlink(missing_ok=True)
        elif path.is_dir() and all(_FRAME_NAME.fullmatch(p.name) for p in path.iterdir()):
            shutil.rmtree(path, ignore_errors=True)


def known_motion(info: SourceInfo):
    """Camera positions of a clip made by ``render-clip``, from its ``<clip>.json`` sidecar.

    Returns
    -------
    positions : (n_frames, 2) float64 ndarray or None
        None when there is no sidecar with ``positions_xy``.

    Raises
    ------
    BadInputError
        The sidecar's frame count does not match the clip.
    """
    sidecar = Path(info.path).with_name(Path(info.path).name + ".json")
    if not sidecar.is_file():
        return None
    try:
        data = json.loads(sidecar.read_text())
        positions = np.asarray(data["positions_xy"], dtype=np.float64)
    except (ValueError, KeyError, TypeError):
        return None  # some other tool's JSON: not ours to judge
    if positions.shape != (info.n_frames, 2):
        raise BadInputError(
            f"'{sidecar}' records {len(positions)} camera positions but '{info.path}' has {info.n_frames} "
            "frames; re-render the clip or remove the stale sidecar."
        )
    return positions
