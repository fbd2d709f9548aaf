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
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._numba import njit
from .errors import BadInputError
from .video import LINEAR_SCALE, LinearAverager, linear_lut

QUALITIES = ("lossless", "high")
# codec, pixel format, options. libx264rgb at crf 0 is lossless RGB (no chroma
# subsampling) and decodes with PyAV and OpenCV; "high" is ordinary, widely
# playable H.264 at a quality where the codec's error is about one 8-bit level.
_CODECS = {
    "lossless": ("libx264rgb", "rgb24", {"crf": "0", "preset": "veryfast"}),
    "high": ("libx264", "yuv420p", {"crf": "12", "preset": "medium"}),
}


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
            f"the camera path spans {x_hi - x_lo}x{y_hi - y_lo} px, which leaves room for at most "
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


def render_frames(photo: np.ndarray, traj, *, crf: str = "gamma:2.2", geometry: ClipGeometry | None = None):
    """Yield the clip's frames: the photo seen from each camera position, in 8 bits.

    Parameters
    ----------
    photo : (H, W, 3) uint8 ndarray
        Encoded (camera-response) RGB.
    traj : (T, 2) float ndarray
        Camera position ``(x, y)`` of each frame, in pixels.
    crf : str
        Response used to go to linear light and back (see :func:`blursynth.video.parse_crf`).
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
    lut, _ = linear_lut(crf)
    linear = lut.astype(np.float64)[photo] / LINEAR_SCALE if crf != "none" else photo / 255.0
    # One extra row and column so that bilinear reads at integer positions stay in bounds.
    linear = np.pad(linear, ((0, 1), (0, 1), (0, 0)), mode="edge")
    encoder = LinearAverager((geometry.height, geometry.width, 3), crf, max_items=1)
    h, w = geometry.height, geometry.width
    for x, y in traj:
        px, py = geometry.origin_x + x, geometry.origin_y + y
        if px < 0 or py < 0 or py + h + 1 > linear.shape[0] or px + w + 1 > linear.shape[1]:
            raise ValueError(f"position ({x}, {y}) leaves the photo; use clip_geometry for the frame size.")
        # The shifted frame in the averager's integer linear units, then read out
        # through its exact thresholds: a one-frame "sum".
        _shift_to_sums(linear, float(px), float(py), h, w, float(encoder.scale), encoder.acc)
        encoder.count = 1
        yield encoder.result()


def write_video(frames, out, *, fps: float, quality: str = "lossless") -> int:
    """Write frames to a video file (atomically), or numbered PNGs if ``out`` has no suffix.

    Parameters
    ----------
    frames : iterable of (H, W, 3) uint8 ndarray
    out : str or Path
        ``clip.mp4`` / ``clip.mkv`` / ... or a folder name (``clip/``: ``000000.png`` ...).
    fps : float
    quality : {'lossless', 'high'}

    Returns
    -------
    n_frames : int

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
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}{out.suffix}")
    try:
        if out.suffix == "":
            n = _write_png_folder(frames, tmp)
            if out.exists():
                shutil.rmtree(out)
        else:
            n = _write_container(frames, tmp, fps, quality)
        os.replace(tmp, out)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return n


def _write_png_folder(frames, folder: Path) -> int:
    from .io.images import save_rgb8

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
    with av.open(str(path), "w") as container:
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
    """

    fps: float = 240.0
    n_frames: int = 240
    seed: int = 0
    length_px: float = 120.0
    crf: str = "gamma:2.2"
    quality: str = "lossless"
    size: tuple | None = None


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
    from .trajectory import sample_trajectory

    return sample_trajectory(rng=rng, n_samples=int(n_frames), length_px=float(length_px))


def render_clip(photo: np.ndarray, out, settings: RenderSettings, *, source: str = "") -> dict:
    """Render a clip of a camera moving over ``photo`` and write it with a JSON sidecar.

    The sidecar ``<out>.json`` records the camera position of every frame, the
    frame geometry in the photo and all settings, so the motion is known
    ground truth.

    Parameters
    ----------
    photo : (H, W, 3) uint8 ndarray
    out : str or Path
        Video file, or a folder for numbered PNG frames.
    settings : RenderSettings
    source : str
        Name of the photo, recorded in the sidecar.

    Returns
    -------
    info : dict
        What the sidecar holds.

    Examples
    --------
    >>> import tempfile
    >>> photo = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    >>> out = Path(tempfile.mkdtemp()) / "clip.mkv"
    >>> info = render_clip(photo, out, RenderSettings(n_frames=8, length_px=6.0))
    >>> len(info["positions_xy"]), out.with_name("clip.mkv.json").exists()
    (8, True)
    """
    from ._rng import sample_rng

    if settings.n_frames < 2:
        raise BadInputError(f"--frames must be at least 2; got {settings.n_frames}.")
    if not (settings.fps > 0 and math.isfinite(settings.fps)):
        raise BadInputError(f"--fps must be a positive number; got {settings.fps!r}.")
    if not (settings.length_px >= 0 and math.isfinite(settings.length_px)):
        raise BadInputError(f"--length-px must be >= 0; got {settings.length_px!r}.")
    out = Path(out)
    if settings.length_px > 0:
        traj, traj_params = clip_trajectory(settings.n_frames, settings.length_px,
                                            rng=sample_rng(settings.seed, 0))
    else:
        traj, traj_params = np.zeros((settings.n_frames, 2)), {}
    even = out.suffix != "" and _CODECS[settings.quality][1] == "yuv420p"
    geometry = clip_geometry(photo.shape, traj, settings.size, even=even)
    info = {
        "source": source,
        "fps": settings.fps,
        "n_frames": settings.n_frames,
        "seed": settings.seed,
        "length_px": settings.length_px,
        "crf": settings.crf,
        "quality": settings.quality,
        "geometry": geometry.__dict__,
        "trajectory_params": traj_params,
        "positions_xy": traj.round(9).tolist(),
    }
    write_video(render_frames(photo, traj, crf=settings.crf, geometry=geometry), out,
                fps=settings.fps, quality=settings.quality)
    sidecar = out.with_name(out.name + ".json")
    tmp = sidecar.with_name(f".{sidecar.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    os.replace(tmp, sidecar)
    return info
