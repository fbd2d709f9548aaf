"""``render-clip --motion camera6d|scene``: a clip of a 6-DoF shaking camera, with moving objects.

Frame ``k`` is a sharp render at the frame's time ``t_k = k / (n_frames - 1)`` of the clip: the
photo warped by the homography of the camera's pose at ``t_k`` (:mod:`blursynth.ops.camera6d`,
a plane at depth 1 seen by a pinhole camera), the objects (:mod:`blursynth.sources.objects`)
composited at their positions at ``t_k``, all in linear light, then encoded through the same
exact read-out as a translation clip's frames. Averaging a window of such frames
(``frames-average``) is then the render of that part of the path, sampled once per frame.

The sidecar records the whole pose path, the focal length, the frame's place in the photo and
the objects, so ``frames-average`` can give each pair the PSF field and motion mask of its own
window (:mod:`blursynth.pairs.window_scene`).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ..errors import BadInputError

MOTIONS = ("translation", "camera6d", "scene")
#: Objects move in clip time: their drawn motion (velocity, rotation, scale change) is over the
#: whole clip, not one exposure, so the speed bound is larger than blur's per-exposure 0.05: a
#: window of w frames of an n-frame clip moves an object by up to w / n of this.
CLIP_OBJECT_SPEED = 0.25
REFERENCE = "middle"  # the pose whose view is the photo unwarped: the middle of the clip


def check_clip_scene_settings(settings) -> None:
    """One-line :class:`~blursynth.errors.SettingError` for scene options that do not hold.

    The checks are blur's (:func:`blursynth.pairs.scene_settings.check_scene_settings`) on the options
    render-clip has; ``translation`` is blur's ``uniform`` (no scene option may be given).
    """
    from ..errors import SettingError
    from ..pairs.scene_settings import check_scene_settings

    if settings.motion not in MOTIONS:
        raise SettingError(f"--motion must be one of {', '.join(MOTIONS)}; got {settings.motion!r}.",
                           "motion")
    as_blur = SimpleNamespace(
        motion="uniform" if settings.motion == "translation" else settings.motion,
        focal_px=settings.focal_px, reference="middle", rolling_shutter=None,
        objects=settings.objects, object_kind=settings.object_kind, object_masks=settings.object_masks,
        defocus=False, depth=None, defocus_px=None, aperture_blades=0, psf_grid=settings.psf_grid,
        border="reflect", saturation=None, kernels=None, psf_source="bank", exposure=None)
    try:
        check_scene_settings(as_blur)
    except SettingError as exc:
        if settings.motion == "translation":  # blur's text names blur's default
            raise SettingError(str(exc).replace("add --motion camera6d", "add --motion camera6d to "
                                                "render-clip"), exc.field) from None
        raise


def _corners(ox, oy, h, w):
    return np.array([[ox, oy, 1.0], [ox + w - 1.0, oy, 1.0], [ox, oy + h - 1.0, 1.0],
                     [ox + w - 1.0, oy + h - 1.0, 1.0]])


def _fits(hms, photo_hw, ox, oy, h, w) -> bool:
    """Whether every frame's view of the box stays inside the photo (corners suffice: over a
    box where the denominators are positive, a homography's coordinates peak at corners)."""
    q = np.einsum("tij,nj->tni", hms, _corners(ox, oy, h, w))
    if not (q[..., 2] > 0).all():
        return False
    x, y = q[..., 0] / q[..., 2], q[..., 1] / q[..., 2]
    big_h, big_w = photo_hw
    return bool(x.min() >= 0 and y.min() >= 0 and x.max() <= big_w - 1 and y.max() <= big_h - 1)


def scene_geometry(hms, photo_hw, size=None, even=False):
    """The frame: ``size`` (or the largest with a uniform margin) centred in the photo, such
    that no frame's view leaves the photo: the fields of a
    :class:`~blursynth.sources.render.ClipGeometry` as a dict (``origin_x``, ``origin_y``,
    ``height``, ``width``).
    """
    big_h, big_w = photo_hw

    def geometry(ox, oy, h, w):
        return {"origin_x": ox, "origin_y": oy, "height": h, "width": w}

    def box(d):
        h, w = (big_h - 2 * d, big_w - 2 * d) if size is None else size
        if even:
            h, w = h - h % 2, w - w % 2
        return (big_w - w) // 2, (big_h - h) // 2, h, w

    def ok(d):
        ox, oy, h, w = box(d)
        return h >= 2 and w >= 2 and ox >= 0 and oy >= 0 and _fits(hms, photo_hw, ox, oy, h, w)

    if size is not None:
        if not ok(0):
            _, _, h, w = box(0)
            raise BadInputError(
                f"the camera path's views of a {h}x{w} (HxW) frame centred in the {big_h}x{big_w} photo "
                "leave the photo; use a larger photo, a shorter path (--length-px) or a smaller --size.")
        return geometry(*box(0))
    lo, hi = 0, min(big_h, big_w) // 2 - 1  # smallest margin that fits, by bisection (ok(hi) holds)
    if not ok(hi):
        raise BadInputError(
            f"the camera path moves too far for any frame to stay inside the {big_h}x{big_w} photo; use a "
            "larger photo or a shorter path (--length-px).")
    while lo < hi - 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return geometry(*box(0 if ok(0) else hi))


def _shift(x, y):
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


def clip_homographies(camera: dict) -> np.ndarray:
    """(n_frames, 3, 3) homographies of a recorded clip camera, in the photo's pixels (frame
    pixel plus the geometry's origin -> photo pixel)."""
    from ..ops.camera6d import pose_homographies

    return pose_homographies(np.asarray(camera["poses"], np.float64), camera["focal_px"],
                             tuple(camera["photo_size"]), depth=camera["scene_depth"],
                             reference=camera["reference"])


def frame_homographies(camera: dict, geometry: dict, poses=None) -> np.ndarray:
    """Homographies from a frame pixel to the reference frame's pixel (the view at the clip's
    reference pose, in which the objects are drawn): ``shift(-o) H_k shift(o)``.

    ``poses``: other poses (e.g. interpolated between frames) instead of the recorded ones; they
    are referenced to the recorded path's reference pose, as the frames were.
    """
    from ..ops.camera6d import pose_homographies, reference_pose

    recorded = np.asarray(camera["poses"], np.float64)
    if poses is None:
        hms = clip_homographies(camera)
    else:
        ref = reference_pose(recorded, camera["reference"])
        # The reference as the first pose, then "start": the same plane and reference as the clip's.
        both = np.vstack([ref[None], np.asarray(poses, np.float64)])
        hms = pose_homographies(both, camera["focal_px"], tuple(camera["photo_size"]),
                                depth=camera["scene_depth"], reference="start")[1:]
    ox, oy = geometry["origin_x"], geometry["origin_y"]
    return np.einsum("ij,tjk,kl->til", _shift(-ox, -oy), hms, _shift(ox, oy))


def plan_scene_clip(photo_hw, settings, *, source: str, even: bool, mask_hw=None) -> dict:
    """Draw a scene clip's camera path (stream 9), frame geometry and objects (stream 10).

    Returns the sidecar's scene part: ``motion``, ``camera`` (pose per frame, focal, photo
    size, reference, the drawn parameters), ``geometry``, ``positions_xy`` (the frame centre's
    path: what it sees in the photo minus where it is, a translation clip's camera positions)
    and, for ``scene``, ``objects`` with ``object_time``.
    """
    from .._rng import sample_rng
    from ..ops import warp
    from .._rng import STREAM_CAMERA
    from ..ops.camera6d import VERSION, draw_pose_path

    big_h, big_w = (int(v) for v in photo_hw[:2])
    focal = float(settings.focal_px) if settings.focal_px is not None else float(max(big_h, big_w))
    length = float(settings.length_px)
    poses, drawn = draw_pose_path(sample_rng(settings.seed, 0, STREAM_CAMERA), focal_px=focal,
                                  size=(big_h, big_w), n_samples=int(settings.n_frames),
                                  length_range=(length, length))
    camera = {"model": VERSION, "focal_px": focal, "scene_depth": 1.0, "reference": REFERENCE,
              "photo_size": [big_h, big_w], **drawn, "poses": [[float(v) for v in p] for p in poses]}
    hms = clip_homographies(camera)
    geometry = scene_geometry(hms, (big_h, big_w), settings.size, even=even)
    centre = np.array([geometry["origin_x"] + (geometry["width"] - 1) / 2.0,
                       geometry["origin_y"] + (geometry["height"] - 1) / 2.0, 1.0])
    seen = hms @ centre
    positions = seen[:, :2] / seen[:, 2:] - centre[:2]
    info = {"motion": settings.motion, "scene_settings": scene_settings(settings), "camera": camera,
            "geometry": geometry,
            "psf_grid": int(settings.psf_grid), "warp_version": warp.VERSION,
            "positions_xy": positions.round(9).tolist(), "trajectory_params": drawn}
    if settings.motion == "scene":
        info["objects"] = _draw_clip_objects(settings, (geometry["height"], geometry["width"]), source,
                                             (big_h, big_w), mask_hw)
        info["object_time"] = "clip"  # t_k = k / (n_frames - 1): the objects' motion spans the clip
        if settings.object_masks is not None:
            info["object_masks"] = masks_folder(settings)
    return info


def scene_settings(settings) -> dict:
    """The options of a camera6d/scene clip as given, the masks folder resolved (recorded, so a
    build reuses a clip only when they match)."""
    return {"motion": settings.motion, "focal_px": settings.focal_px, "objects": settings.objects,
            "object_kind": settings.object_kind, "object_masks": masks_folder(settings),
            "psf_grid": int(settings.psf_grid)}


def masks_folder(settings) -> str | None:
    """``--object-masks`` as an absolute path (None without it): frames-average reads the masks
    again from the sidecar, from whatever working directory it runs in (as ``blur`` records its
    masks and depth folders; a moved folder: edit the sidecar's ``object_masks``)."""
    from pathlib import Path

    return None if settings.object_masks is None else str(Path(settings.object_masks).resolve())


def object_settings(settings):
    """The clip's :class:`~blursynth.sources.objects.ObjectSettings` (speed in clip time)."""
    from ..pairs.scene_settings import object_count_range
    from .objects import ObjectSettings

    return ObjectSettings(count=object_count_range(settings.objects), kind=settings.object_kind,
                          speed_fraction=CLIP_OBJECT_SPEED)


def _draw_clip_objects(settings, frame_hw, source, photo_hw, mask_hw):
    from .._rng import sample_rng
    from .._rng import STREAM_OBJECTS
    from .objects import check_object_count, draw_object_params

    objects = object_settings(settings)
    check_object_count(objects, frame_hw)
    # One photo: cut-outs come from the photo itself (another part of it moves over the scene).
    return draw_object_params(sample_rng(settings.seed, 0, STREAM_OBJECTS), frame_hw, objects,
                              source_shapes={source: tuple(photo_hw)},
                              masked=(source,) if mask_hw is not None else (),
                              reference_time=0.5 if REFERENCE == "middle" else 0.0)


def clip_times(n_frames: int, frames) -> np.ndarray:
    """Clip times of (possibly fractional) frame numbers: ``k / (n_frames - 1)``."""
    return np.asarray(frames, np.float64) / max(1, int(n_frames) - 1)


def object_sources(info: dict, linear: np.ndarray, mask=None):
    """``sources`` and ``masks`` of :func:`~blursynth.sources.objects.object_layers` for a clip
    of one photo (its linear image, and its user mask if the objects are masked)."""
    names = {o["source"] for o in info.get("objects") or () if "source" in o} | {
        o["colour"]["source"] for o in info.get("objects") or ()
        if isinstance(o.get("colour"), dict) and "source" in o["colour"]}
    sources = {name: linear for name in names}
    masks = {name: mask for name in names} if mask is not None else None
    return sources, masks


def scene_frames(photo: np.ndarray, info: dict, *, crf="gamma:2.2", mask=None):
    """Yield a scene clip's frames, (height, width, 3) uint8, as :func:`plan_scene_clip` planned.

    ``mask``: the photo's user object mask ((H, W) float32), when its objects are masked.
    """
    from ..ops.encode8 import linear_lut, sum_readout
    from ..ops.warp import Layer, render_subframes, warp_bilinear
    from .objects import object_layers

    lut, scale = linear_lut(crf)
    # The averager's own linear units, so that a still frame reads out as the photo exactly.
    linear = np.ascontiguousarray((lut.astype(np.float64)[photo] / scale).astype(np.float32))
    g = info["geometry"]
    h, w, ox, oy = g["height"], g["width"], g["origin_x"], g["origin_y"]
    camera = info["camera"]
    hms = clip_homographies(camera)
    local = frame_homographies(camera, g)
    objects = info.get("objects") or []
    sources, masks = object_sources(info, linear, mask)
    times = clip_times(len(hms), np.arange(len(hms)))
    readout = sum_readout(crf, 1)
    # Every frame's layers at once (the objects' shapes are rasterised once), then one frame each.
    layers = object_layers(objects, (h, w), local, times=times, sources=sources, masks=masks) \
        if objects else []
    for k in range(len(hms)):
        if objects:
            now = [Layer(lay.image, lay.alpha, lay.homographies[k:k + 1]) for lay in layers]
            frame, _ = render_subframes(linear, (hms[k] @ _shift(ox, oy))[None], (h, w), layers=now)
        else:
            frame = warp_bilinear(linear, hms[k], (h, w), offset=(ox, oy))
        sums = np.floor(np.clip(frame.astype(np.float64), 0.0, 1.0) * scale + 0.5).astype(np.uint32)
        yield readout.encode(sums.reshape(-1)).reshape(h, w, 3)


def load_clip_mask(settings, source: str, photo_hw):
    """The photo's user object mask (``--object-masks``), or None."""
    if settings.motion != "scene" or settings.object_masks is None:
        return None
    from .objects import load_object_mask

    return load_object_mask(settings.object_masks, source, tuple(photo_hw[:2]))


def known_scene(info) -> dict | None:
    """The scene part of a ``render-clip --motion camera6d|scene`` sidecar, or None.

    ``info`` is the clip's :class:`~blursynth.sources.video.SourceInfo`; None for a
    translation clip, no sidecar, or some other tool's JSON. The frame count is checked by
    :func:`blursynth.sources.render.known_motion`.
    """
    import json
    from pathlib import Path

    sidecar = Path(info.path).with_name(Path(info.path).name + ".json")
    if not sidecar.is_file():
        return None
    try:
        data = json.loads(sidecar.read_text())
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("motion") not in MOTIONS[1:] or \
            not isinstance(data.get("camera"), dict):
        return None
    if len(data["camera"].get("poses", ())) != info.n_frames:
        raise BadInputError(
            f"'{sidecar}' records {len(data['camera'].get('poses', ()))} camera poses but '{info.path}' has "
            f"{info.n_frames} frames; re-render the clip or remove the stale sidecar.")
    data["sidecar"] = str(sidecar)
    return data
