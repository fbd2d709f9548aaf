"""Moving objects for scene blur: cut-outs, dead-leaves disks or user-masked objects, each with
its own motion over the exposure, as layers for :func:`blursynth.ops.warp.render_subframes`.

An object is a layer in the coordinates of the sharp (reference) image, cropped to its box: its
colour ``image`` (linear light) and its coverage ``alpha`` are what the sharp image shows of it,
so the sharp image is the background with the layers composited on it unwarped
(:func:`composite_reference`), and sub-frame ``t`` of the blurred image sees the same layer
through ``inv(A_t) @ H_t``: ``H_t`` the camera's homography (output pixel of sub-frame ``t`` to
the reference image), ``A_t`` the object's own motion (its reference position to its position
at time ``t``, both in reference-image pixels). ``A`` is the identity at the reference time, so
the sharp image and the blur agree on where every object is.

Drawing (:func:`draw_object_params`, from one generator: keyed stream 10 of the pair) is apart
from building (:func:`object_layers`), and the params are plain JSON (floats keep every bit
through ``json``), so a recorded pair rebuilds to the same layers. The draws and ranges are in
docs/algorithms.md, "Scene blur: moving objects".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInputError, SettingError
from ..ops.warp import reflect101_index, subframe_times  # noqa: F401 (subframe_times: part of this API)
from .object_shapes import box_alpha, shape_box

# STREAM_OBJECTS (blursynth._rng): the keyed stream, ``sample_rng(seed, index, STREAM_OBJECTS)``,
# every object draw of a pair uses.
KINDS = ("cutout", "leaves")
#: Smallest object extent in pixels: below it a shape is a few anti-aliased pixels.
MIN_OBJECT_PX = 4.0
#: Vertices of a random polygon: a triangle up to a rough blob.
POLYGON_VERTICES = (3, 10)


@dataclass(frozen=True)
class ObjectSettings:
    """How many objects a pair gets, what they are, and the ranges of their motion.

    Attributes
    ----------
    count : (int, int)
        Inclusive range of the number of objects per pair (uniform).
    kind : {'cutout', 'leaves'}
        ``cutout``: a piece of another photo of the input set, cut by a random polygon or
        ellipse with anti-aliased edges (by the photo's user mask instead, when masks are given);
        ``leaves``: a dead-leaves disk (flat colour taken from a pixel of a photo, radius with
        density proportional to ``r**-3`` as in ``render-leaves``).
    size_fraction : (float, float)
        Object extent (diameter of the shape's circumscribed circle) as a fraction of the frame's
        shorter side, uniform. User-masked objects keep their own size.
    speed_fraction : float
        Largest translation over the exposure, as a fraction of the frame's longer side; the
        speed is uniform in [0, this], the direction uniform.
    curvature : float
        Largest acceleration as a multiple of the drawn speed (per exposure squared), uniform in
        [0, this] and in direction: the path bends by up to ``curvature / 8`` of its length.
    rotation_deg : float
        Largest rotation over the exposure, degrees, uniform in [-this, this].
    scale_change : float
        Largest change of log scale over the exposure (an object nearing or leaving the
        camera), uniform in [-this, this].
    """

    count: tuple[int, int] = (1, 3)
    kind: str = "cutout"
    size_fraction: tuple[float, float] = (0.15, 0.4)
    speed_fraction: float = 0.05
    curvature: float = 1.0
    rotation_deg: float = 15.0
    scale_change: float = 0.1

    def __post_init__(self):
        lo, hi = _pair(self.count)
        if not (_whole(lo) and _whole(hi) and 0 <= lo <= hi <= 64):
            raise SettingError(f"--objects must be LO-HI whole numbers with 0 <= LO <= HI <= 64; "
                               f"got {self.count!r}.", "objects")
        object.__setattr__(self, "count", (int(lo), int(hi)))
        if self.kind not in KINDS:
            raise SettingError(f"--object-kind must be one of {', '.join(KINDS)}; got "
                               f"{self.kind!r}.", "object_kind")
        a, b = _pair(self.size_fraction)
        if not (_finite(a, b) and 0 < a <= b <= 1):
            raise SettingError(f"object size fraction must be LO-HI with 0 < LO <= HI <= 1 of the "
                               f"frame's shorter side; got {self.size_fraction!r}.", "object_size")
        object.__setattr__(self, "size_fraction", (float(a), float(b)))
        for name, top in (("speed_fraction", 1.0), ("curvature", 16.0), ("rotation_deg", 360.0),
                          ("scale_change", 2.0)):
            v = getattr(self, name)
            if not (_finite(v) and 0 <= v <= top):
                raise SettingError(f"object {name.replace('_', ' ')} must be in [0, {top:g}]; "
                                   f"got {v!r}.", f"object_{name}")
            object.__setattr__(self, name, float(v))


def _pair(v):
    try:
        lo, hi = v
    except (TypeError, ValueError):
        return None, None
    return lo, hi


def _whole(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _finite(*vs) -> bool:
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
               and math.isfinite(v) for v in vs)


def check_object_count(settings: ObjectSettings, photo_hw) -> None:
    """Refuse, in one line, settings whose objects cannot fit a ``photo_hw`` frame.

    The smallest object (``size_fraction[0]`` of the shorter side) must be at least
    ``MIN_OBJECT_PX`` wide, and ``count[1]`` such objects must cover at most the whole frame.
    """
    h, w = (int(v) for v in photo_hw[:2])
    lo, hi = settings.count
    if hi == 0:
        return
    d = settings.size_fraction[0] * min(h, w)
    if d < MIN_OBJECT_PX:
        raise SettingError(f"--objects: a {w}x{h} photo is too small for objects of "
                           f"{settings.size_fraction[0]:g} of its shorter side ({d:.1f} px, least "
                           f"{MIN_OBJECT_PX:g}); use larger photos or --objects 0.", "objects")
    if hi * math.pi * d * d / 4 > h * w:
        fit = int(h * w // (math.pi * d * d / 4))
        raise SettingError(f"--objects {lo}-{hi}: {hi} objects of {d:.0f} px cannot fit a {w}x{h} "
                           f"photo; at most {fit}.", "objects")


# -- drawing ---------------------------------------------------------------------------------


def draw_object_params(rng: np.random.Generator, photo_hw, settings: ObjectSettings, *,
                       source_shapes=None, masked=(), reference_time: float = 0.5) -> list[dict]:
    """Draw a pair's objects: what each is, where it sits in the sharp image, how it moves.

    Parameters
    ----------
    rng : numpy.random.Generator
        The pair's object stream, ``sample_rng(seed, index, STREAM_OBJECTS)``.
    photo_hw : (int, int)
        Frame (= sharp image) size.
    settings : ObjectSettings
    source_shapes : mapping of str to (int, int), optional
        Photos a cut-out or a disk colour may come from (other photos of the input set), by name
        (the name the pair's rows use for photos), with their (height, width). Required for
        ``cutout``; for ``leaves`` without sources the colour is uniform in [0, 1) linear.
    masked : collection of str
        Names in ``source_shapes`` that have a user mask: cut-outs then come only from these,
        by their masks.
    reference_time : float
        Time (in exposures) of the sharp image: the camera's reference, ``(1 + rho) / 2`` for
        the middle of the sampled span ``[0, 1 + rho]`` (``rho`` the rolling-shutter read-out;
        0.5 without), 0 for the start.

    Returns
    -------
    list of dict
        One JSON-safe dict per object (format.md, ``objects``).

    Examples
    --------
    >>> from blursynth._rng import STREAM_OBJECTS, sample_rng
    >>> p = draw_object_params(sample_rng(0, 0, STREAM_OBJECTS), (48, 64),
    ...                        ObjectSettings(count=(2, 2), kind="leaves"))
    >>> [o["kind"] for o in p]
    ['leaves', 'leaves']
    """
    h, w = (int(v) for v in photo_hw[:2])
    check_object_count(settings, (h, w))
    names = sorted(source_shapes or {})
    masked = sorted(set(masked))
    if masked:
        missing = [m for m in masked if m not in (source_shapes or {})]
        if missing:
            raise ValueError(f"masked names {missing} are not in source_shapes.")
    if settings.kind == "cutout" and not names and settings.count[1] > 0:
        raise BadInputError("--objects cutout needs other photos to cut objects from; give at "
                            "least two photos, or use --object-kind leaves.")
    lo, hi = settings.count
    n = int(rng.integers(lo, hi + 1))
    objects = []
    for _ in range(n):
        if settings.kind == "leaves":
            obj = _draw_disk(rng, h, w, settings, names, source_shapes)
        elif masked:
            obj = _draw_masked(rng, h, w, masked)
        else:
            obj = _draw_cutout(rng, h, w, settings, names, source_shapes)
        obj["motion"] = _draw_motion(rng, h, w, settings)
        obj["reference_time"] = float(reference_time)
        objects.append(obj)
    return objects


def _centre(rng, h, w):
    # Centres in the middle 80% of each side: an object may cross the frame edge (its layer
    # keeps it whole), but most of it is in view.
    return [float((0.1 + 0.8 * rng.random()) * (w - 1)), float((0.1 + 0.8 * rng.random()) * (h - 1))]


def _draw_disk(rng, h, w, s, names, shapes):
    a, b = (f * min(h, w) / 2 for f in s.size_fraction)
    u = rng.random()
    # Dead-leaves radii (density r**-3 on [a, b], inverse CDF as in sources/leaves.py); a
    # single size (a == b) is that size.
    r = a if a == b else (a ** -2 - u * (a ** -2 - b ** -2)) ** -0.5
    centre = _centre(rng, h, w)
    if names:
        name = names[int(rng.integers(len(names)))]
        sh, sw = shapes[name][:2]
        pixel = [int(rng.integers(sw)), int(rng.integers(sh))]
        colour = {"source": name, "pixel_xy": pixel}
    else:
        colour = {"linear_rgb": [float(v) for v in rng.random(3)]}
    return {"kind": "leaves", "shape": {"type": "disk", "centre_xy": centre, "radius_px": float(r)},
            "colour": colour}


def _draw_cutout(rng, h, w, s, names, shapes):
    name = names[int(rng.integers(len(names)))]
    sh, sw = (int(v) for v in shapes[name][:2])
    radius = rng.uniform(*s.size_fraction) * min(h, w) / 2
    centre = _centre(rng, h, w)
    if rng.random() < 0.5:
        axes = [float(radius), float(radius * rng.uniform(0.4, 1.0))]
        shape = {"type": "ellipse", "centre_xy": centre, "axes_px": axes,
                 "angle_rad": float(rng.uniform(0, math.pi))}
    else:
        k = int(rng.integers(POLYGON_VERTICES[0], POLYGON_VERTICES[1] + 1))
        # A polygon star-shaped about the centre: vertex i at angle (i + u_i / 2) 2 pi / k (u_i
        # uniform), so consecutive vertices are less than half a turn apart and the edges never
        # cross; radii in [0.5, 1] of the extent keep it a blob, not a sliver.
        angles = (np.arange(k) + 0.5 * rng.random(k)) * (2 * math.pi / k)
        radii = radius * rng.uniform(0.5, 1.0, k)
        verts = [[float(centre[0] + r * math.cos(t)), float(centre[1] + r * math.sin(t))]
                 for r, t in zip(radii, angles)]
        shape = {"type": "polygon", "vertices_xy": verts}
    # The source pixel under the object's pivot, anywhere in the source: the texture is copied
    # at an integer offset (no resampling), reflected where the shape reaches past the source.
    src = [int(rng.integers(sw)), int(rng.integers(sh))]
    return {"kind": "cutout", "source": name, "shape": shape, "source_xy": src}


def _draw_masked(rng, h, w, masked):
    name = masked[int(rng.integers(len(masked)))]
    return {"kind": "mask", "source": name, "centre_xy": _centre(rng, h, w)}


def _draw_motion(rng, h, w, s):
    speed = rng.random() * s.speed_fraction * max(h, w)
    heading = rng.uniform(0, 2 * math.pi)
    accel = rng.random() * s.curvature * speed
    bend = rng.uniform(0, 2 * math.pi)
    return {
        "velocity_px": [float(speed * math.cos(heading)), float(speed * math.sin(heading))],
        "acceleration_px": [float(accel * math.cos(bend)), float(accel * math.sin(bend))],
        "rotation_rad": float(math.radians(s.rotation_deg) * rng.uniform(-1, 1)),
        "log_scale": float(s.scale_change * rng.uniform(-1, 1)),
    }


# -- motion ----------------------------------------------------------------------------------


def object_pivot(obj: dict) -> tuple[float, float]:
    """The point an object turns and scales about: its shape's centre (a mask's box centre)."""
    if obj["kind"] == "mask":
        return tuple(obj["centre_xy"])
    shape = obj["shape"]
    if shape["type"] == "polygon":
        v = np.asarray(shape["vertices_xy"], np.float64)
        return float(v[:, 0].mean()), float(v[:, 1].mean())
    return tuple(shape["centre_xy"])


def motion_homographies(obj: dict, times) -> np.ndarray:
    """``A_t^-1`` for each time: reference-image position of what the object shows at ``t``.

    ``A_t`` moves the object from its reference pose (time ``obj['reference_time']``) to its
    pose at ``t``: about its pivot ``c``, scale ``exp(k dt)``, rotate ``w dt``, then translate by
    ``v dt + a dt^2 / 2`` (``dt = t - reference_time``; times in exposures).

    Parameters
    ----------
    obj : dict
        One object of :func:`draw_object_params`.
    times : (T,) array_like of float

    Returns
    -------
    (T, 3, 3) float64 ndarray
    """
    m = obj["motion"]
    cx, cy = object_pivot(obj)
    vx, vy = m["velocity_px"]
    ax, ay = m["acceleration_px"]
    dt = np.asarray(times, np.float64) - float(obj["reference_time"])
    out = np.zeros((dt.size, 3, 3), np.float64)
    for i, d in enumerate(dt):
        dx, dy = vx * d + 0.5 * ax * d * d, vy * d + 0.5 * ay * d * d
        phi, inv_s = m["rotation_rad"] * d, math.exp(-m["log_scale"] * d)
        c, s = math.cos(phi) * inv_s, math.sin(phi) * inv_s
        # inv(A) p = c + S^-1 R^-1 (p - c - d): R^-1 = [[cos, sin], [-sin, cos]].
        px, py = cx + dx, cy + dy
        out[i] = [[c, s, cx - c * px - s * py], [-s, c, cy + s * px - c * py], [0.0, 0.0, 1.0]]
    return out


# -- building --------------------------------------------------------------------------------


def _window(image, x0: int, y0: int, h: int, w: int):
    """``out[r, c] = image[y0 + r, x0 + c]``, reflect-101 outside ``image``."""
    ys = reflect101_index(np.arange(h) + y0, image.shape[0])
    xs = reflect101_index(np.arange(w) + x0, image.shape[1])
    return np.ascontiguousarray(image[np.ix_(ys, xs)])


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) bounding box of ``mask > 0`` (exclusive ends)."""
    ys = np.flatnonzero(mask.max(1) > 0)
    xs = np.flatnonzero(mask.max(0) > 0)
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def object_image(obj: dict, sources=None, masks=None):
    """An object in its reference pose, over its box (not clipped to the frame, so a camera or
    object moving brings its hidden part in): (image (h, w, 3) float32 linear, alpha (h, w)
    float32, x0, y0), the box's top-left pixel in the frame.
    """
    kind = obj["kind"]
    if kind == "mask":
        src = _source(sources, obj["source"])
        if masks is None or obj["source"] not in masks:
            raise ValueError(f"object from {obj['source']!r} needs its mask in masks.")
        mask = np.asarray(masks[obj["source"]], np.float32)
        mx0, my0, mx1, my1 = mask_box(mask)
        cx, cy = obj["centre_xy"]
        # Integer offset: the mask and photo are copied, not resampled.
        dx = int(round((mx0 + mx1 - 1) / 2 - cx))
        dy = int(round((my0 + my1 - 1) / 2 - cy))
        return (np.array(src[my0:my1, mx0:mx1, :3], np.float32),
                np.ascontiguousarray(mask[my0:my1, mx0:mx1]), mx0 - dx, my0 - dy)
    box = shape_box(obj["shape"])
    x0, y0, x1, y1 = box
    alpha = box_alpha(obj["shape"], box)
    if kind == "leaves":
        col = obj["colour"]
        if "linear_rgb" in col:
            rgb = np.asarray(col["linear_rgb"], np.float32)
        else:
            x, y = col["pixel_xy"]
            rgb = np.asarray(_source(sources, col["source"])[y, x, :3], np.float32)
        image = np.empty(alpha.shape + (3,), np.float32)
        image[:] = rgb
        return image, alpha, x0, y0
    src = _source(sources, obj["source"])
    cx, cy = object_pivot(obj)
    sx, sy = obj["source_xy"]
    dx, dy = int(sx - round(cx)), int(sy - round(cy))  # frame pixel + (dx, dy) = source pixel
    image = _window(src[..., :3], x0 + dx, y0 + dy, y1 - y0, x1 - x0).astype(np.float32, copy=False)
    return image, alpha, x0, y0


def _source(sources, name):
    if sources is None or name not in sources:
        raise ValueError(f"object source {name!r} is not in sources.")
    return sources[name]


def _crop(image, alpha, x0, y0):
    """Trim to the box of ``alpha > 0`` (a layer is transparent outside its image, so the crop
    is exact and the renderer skips the pixels the object never reaches)."""
    if not alpha.any():
        return np.zeros((1, 1, 3), np.float32), np.zeros((1, 1), np.float32), x0, y0
    bx0, by0, bx1, by1 = mask_box(alpha)
    return (np.ascontiguousarray(image[by0:by1, bx0:bx1]),
            np.ascontiguousarray(alpha[by0:by1, bx0:bx1]), x0 + bx0, y0 + by0)


def _moves(own, x0, y0, h, w) -> bool:
    """True when the motions ``own`` (T, 3, 3) move a corner of the box at (x0, y0), h x w."""
    from ..ops.warp import STATIC_TOLERANCE_PX

    corners = np.array([[x0, y0, 1.0], [x0 + w - 1.0, y0, 1.0], [x0, y0 + h - 1.0, 1.0],
                        [x0 + w - 1.0, y0 + h - 1.0, 1.0]])
    q = np.einsum("tij,nj->tni", own, corners)
    q = q[..., :2] / q[..., 2:]
    return bool(np.abs(q - q[:1]).max() > STATIC_TOLERANCE_PX)


def object_layers(objects, photo_hw, camera_homographies=None, *, times=None,
                  rolling_shutter: float = 0.0, sources=None, masks=None,
                  reference: bool = False) -> list:
    """Build the layers of drawn objects for :func:`blursynth.ops.warp.render_subframes`.

    Parameters
    ----------
    objects : list of dict
        From :func:`draw_object_params` (or a recorded row).
    photo_hw : (int, int)
        The frame's size (that the objects were drawn for); a layer is not clipped to it, so
        a moving camera or object brings in the part of an object beyond the frame's edge.
    camera_homographies : (T, 3, 3) float64 array_like
        The camera's sub-frame homographies (output pixel to reference image); unused with
        ``reference``.
    times : (T,) array_like of float, optional
        Sub-frame times in exposures; default :func:`subframe_times` ``(T, rolling_shutter)``,
        the renderer's.
    rolling_shutter : float
        Read-out time, fraction of the exposure (for the default ``times``).
    sources : mapping of str to (h, w, 3) float32 ndarray
        Linear-light photos by name (those the objects name).
    masks : mapping of str to (h, w) float32 ndarray, optional
        User masks in [0, 1] by source name (:func:`load_object_mask`).
    reference : bool
        Layers of the sharp image instead: one homography each (the object unmoved), for
        ``render_subframes(sharp, np.eye(3)[None], photo_hw, layers=...)``
        (:func:`composite_reference`).

    Returns
    -------
    list of Layer
        ``Layer(image, alpha, homographies)`` per object, in drawing order (later ones in
        front), cropped to the object's box ``(x0, y0)...``: ``homographies[t] =
        shift(-x0, -y0) @ inv(A_t) @ H_t``.
    """
    from ..ops.warp import Layer

    if reference:
        cam, times = np.eye(3)[None], None
    else:
        cam = np.asarray(camera_homographies, np.float64)
        if cam.ndim != 3 or cam.shape[1:] != (3, 3):
            raise ValueError(f"camera_homographies must be (T, 3, 3); got shape {cam.shape}.")
        times = subframe_times(len(cam), rolling_shutter) if times is None else \
            np.asarray(times, np.float64)
        if times.shape != (len(cam),):
            raise ValueError(f"times must be ({len(cam)},), one per homography; got {times.shape}.")
    layers = []
    for obj in objects:
        image, alpha, x0, y0 = _crop(*object_image(obj, sources, masks))
        shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
        own = np.eye(3)[None] if reference else motion_homographies(obj, times)
        # Moving = its own motion moves its box; not decided against the background, which with
        # a depth map is the farthest plane (a still object would then count as moving).
        layers.append(Layer(image, alpha, np.ascontiguousarray(shift @ own @ cam),
                            moving=_moves(own, x0, y0, *alpha.shape)))
    return layers


def object_corners(obj: dict, source_shapes=None) -> np.ndarray:
    """(4, 2) corners (x, y) of a box holding the object in the reference image. A user-masked
    object's box is not known without its mask: its source photo's frame centred on the object
    bounds it (``source_shapes[name]`` = (h, w))."""
    if obj["kind"] == "mask":
        sh, sw = source_shapes[obj["source"]][:2]
        cx, cy = obj["centre_xy"]
        x0, y0, x1, y1 = cx - sw / 2.0, cy - sh / 2.0, cx + sw / 2.0, cy + sh / 2.0
    else:
        x0, y0, x1, y1 = shape_box(obj["shape"])
    return np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64)


def max_step_px(objects, camera_homographies, times, *, source_shapes=None) -> float:
    """Largest move, in output pixels, of an object's box corner between consecutive times.

    A reference-image point ``p`` of an object is seen at ``inv(H_t) @ A_t @ p`` (its own motion
    then the camera's), so a sub-frame count that keeps this under a pixel keeps moving objects
    from strobing, as :func:`blursynth.ops.camera6d.subframes_needed` does for the camera.
    """
    cam = np.asarray(camera_homographies, np.float64)
    step = 0.0
    for obj in objects:
        fwd = np.linalg.inv(motion_homographies(obj, times) @ cam)
        q = np.einsum("tij,nj->tni", fwd, np.c_[object_corners(obj, source_shapes), np.ones(4)])
        q = q[..., :2] / q[..., 2:]
        if len(q) > 1:
            step = max(step, float(np.sqrt((np.diff(q, axis=0) ** 2).sum(axis=2)).max()))
    return step


def composite_reference(sharp_linear: np.ndarray, objects, *, sources=None,
                        masks=None) -> np.ndarray:
    """The sharp image with its objects in their reference pose (unwarped, by the renderer's
    own compositing arithmetic, so the two images agree bit for bit where nothing moves).

    Parameters
    ----------
    sharp_linear : (H, W, 3) float32 ndarray
        The background photo in linear light.
    objects : list of dict
    sources, masks : as :func:`object_layers`

    Returns
    -------
    (H, W, 3) float32 ndarray
    """
    from ..ops.warp import render_subframes

    hw = np.shape(sharp_linear)[:2]
    layers = object_layers(objects, hw, reference=True, sources=sources, masks=masks)
    out, _ = render_subframes(sharp_linear, np.eye(3)[None], hw, layers=layers)
    return out


def draw_objects(rng: np.random.Generator, photo_hw, settings: ObjectSettings,
                 camera_homographies, *, times=None, rolling_shutter: float = 0.0,
                 sources=None, masks=None, reference_time: float = 0.5):
    """Draw a pair's objects and build their layers (:func:`draw_object_params` then
    :func:`object_layers`).

    Parameters
    ----------
    rng : numpy.random.Generator
        ``sample_rng(seed, index, STREAM_OBJECTS)``.
    photo_hw : (int, int)
    settings : ObjectSettings
    camera_homographies : (T, 3, 3) array_like
    times : (T,) array_like, optional
        Sub-frame times in exposures; default the renderer's (:func:`subframe_times`).
    rolling_shutter : float
        Read-out time, fraction of the exposure (for the default ``times``).
    sources : mapping of str to (h, w, 3) float32 ndarray, optional
        Other photos of the input set in linear light, by name.
    masks : mapping of str to (h, w) float32 ndarray, optional
        User masks of some of ``sources``: cut-outs then come from these only.
    reference_time : float

    Returns
    -------
    layers : list of Layer
    params : list of dict
        JSON-safe; ``object_layers(params, ...)`` rebuilds ``layers``.

    Examples
    --------
    >>> from blursynth._rng import STREAM_OBJECTS, sample_rng
    >>> layers, params = draw_objects(sample_rng(0, 0, STREAM_OBJECTS), (48, 64),
    ...     ObjectSettings(count=(1, 1), kind="leaves"), np.eye(3)[None].repeat(5, 0))
    >>> layers[0].homographies.shape, len(params)
    ((5, 3, 3), 1)
    """
    shapes = {k: np.shape(v)[:2] for k, v in (sources or {}).items()}
    params = draw_object_params(rng, photo_hw, settings, source_shapes=shapes,
                                masked=tuple(masks or ()), reference_time=reference_time)
    return object_layers(params, photo_hw, camera_homographies, times=times,
                         rolling_shutter=rolling_shutter, sources=sources, masks=masks), params


# -- user masks ------------------------------------------------------------------------------


def mask_path(masks_dir, photo) -> Path:
    """Where the mask of ``photo`` is: ``<masks_dir>/<photo stem>.png``."""
    return Path(masks_dir) / (Path(photo).stem + ".png")


def load_object_mask(masks_dir, photo, photo_hw) -> np.ndarray:
    """Read the user mask of ``photo``: (H, W) float32 alpha in [0, 1].

    The mask is ``<masks_dir>/<photo stem>.png``: greyscale (8 or 16 bit), or the alpha channel
    of a grey+alpha or RGBA PNG; white is the object. It must have the photo's size and mark
    something.

    Raises
    ------
    BadInputError
        One line: missing, unreadable, of another size, of another layout, or empty.
    """
    import imageio.v3 as iio

    path = mask_path(masks_dir, photo)
    h, w = (int(v) for v in photo_hw[:2])
    if not path.is_file():
        raise BadInputError(f"--object-masks {masks_dir}: no mask for {Path(photo).name} "
                            f"(expected {path}); add it or leave the photo out.")
    try:
        m = iio.imread(path)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the same bad file
        raise BadInputError(f"--object-masks: cannot read {path} ({exc}); write it as a PNG.") \
            from None
    if m.ndim == 3 and m.shape[2] in (2, 4):
        m = m[..., -1]
    elif m.ndim == 3 and m.shape[2] == 1:
        m = m[..., 0]
    if m.ndim != 2 or m.dtype not in (np.uint8, np.uint16):
        raise BadInputError(f"--object-masks: {path} is {m.dtype} with shape {m.shape}; expected "
                            f"a greyscale or alpha PNG (8 or 16 bit).")
    if m.shape != (h, w):
        raise BadInputError(f"--object-masks: {path} is {m.shape[1]}x{m.shape[0]} but its photo "
                            f"{Path(photo).name} is {w}x{h}; masks must match their photos.")
    if not m.any():
        raise BadInputError(f"--object-masks: {path} is empty (all black); mark the object "
                            f"white or remove the mask.")
    return (m.astype(np.float32) / np.float32(np.iinfo(m.dtype).max))
