"""Scene blur (``blursynth blur --motion camera6d|scene``): pairs rendered by a 6-DoF camera path.

The pipeline of one pair, every step a pure function of the photo and numbers drawn from the
pair's own keyed streams (9 camera path, 10 objects, 11 defocus and depth, 12 rolling shutter;
the crop, the camera response and the degradations keep streams 2, 3, 4, 5, 6, 7 as uniform
blur draws them)::

    photo (uint8) -> resize -> window (crop) plus the margin the path can see
      -> decode the camera response to linear light -> highlight boost, exposure gain
      -> defocus (depth map)  -> objects (layers)
      -> warp by each sub-frame's homography, composite, average (ops.warp.render_subframes)
      -> noise, encode, JPEG (RGB path) or the RAW chain (ops.blur.develop_raw_images)
    sharp = the window at the reference pose (middle of the exposure), objects there too,
            all in focus: what a deblurrer should return.

Every number drawn is recorded in the row's params, and :func:`scene_pair_from_params` renders
from those params only, so a rebuilt pair is the same bytes (:func:`blursynth.pairs.shake.rebuild_pair`
dispatches here).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .._rng import STREAM_CAMERA, STREAM_OBJECTS, sample_rng
from ..errors import BadInputError, SettingError
from .scene_settings import (
    DEFAULT_DEFOCUS_PX, MAX_DEFOCUS_PX, NEAREST_PARALLAX_DEPTH, STREAM_DEPTH, STREAM_ROLLING, setting_range,
    object_count_range,
)

# ---------------------------------------------------------------------------------------------
# the camera: a drawn 6-DoF path, its sub-frames, homographies and PSF field


def draw_camera(rng, focal_px: float, size, rolling_shutter: float, reference: str, *,
                nearest_depth: float = 1.0, objects=(), source_shapes=None) -> dict:
    """A pair's camera: the drawn path (:func:`blursynth.ops.camera6d.draw_pose_path`) resampled
    at as many sub-frames as keep every pixel's step under one pixel, as JSON-safe params.

    The path spans the sampled time ``[0, 1 + rolling_shutter]``; ``poses`` are the sub-frames'
    (the ones rendered), so a row rebuilds from its params alone. ``nearest_depth`` (in the
    translations' unit): with a depth map, the nearest plane moves most, so it sets the count.
    ``objects`` (drawn params; ``source_shapes`` for user-masked ones): each object's own motion
    with the camera's also moves under one pixel per sub-frame, so objects do not strobe.
    ``reference_pose``: the path's pose at the reference time (0, or the middle of the span),
    the time the objects take, not a sub-frame's (the first is half a sub-frame late).
    """
    from ..ops.camera6d import VERSION, draw_pose_path, reference_pose, subframe_poses, subframes_needed

    path, drawn = draw_pose_path(rng, focal_px=focal_px, size=size)
    ref = reference_pose(path, reference)
    n = subframes_needed(path, size, focal_px=focal_px, depth=min(1.0, float(nearest_depth)))
    if objects:
        from ..sources.objects import max_step_px

        # As subframes_needed: n sub-frames are (T - 1) / n path samples apart.
        hms = _referenced_homographies(path, ref, focal_px, size, 1.0)
        step = max_step_px(objects, hms, np.linspace(0.0, 1.0 + float(rolling_shutter), len(path)),
                           source_shapes=source_shapes)
        n = max(n, int(math.floor((len(path) - 1) * step)) + 1)
    poses = subframe_poses(path, n)
    return {"model": VERSION, "focal_px": float(focal_px), "scene_depth": 1.0, "reference": reference,
            "span": 1.0 + float(rolling_shutter), "n_subframes": int(n), **drawn,
            "reference_pose": [float(v) for v in ref],
            "poses": [[float(v) for v in pose] for pose in poses]}


def _referenced_homographies(poses, ref, focal_px, size, depth):
    """pose_homographies relative to the pose ``ref``: it goes first, as the "start" reference."""
    from ..ops.camera6d import pose_homographies

    return pose_homographies(np.vstack([ref, poses]), focal_px, size, depth=depth, reference="start")[1:]


def _camera_poses(camera):
    """(poses, reference) for camera6d's functions: a recorded ``reference_pose`` first, as
    "start" (rows without one: the reference named, of the sub-frames' poses)."""
    poses = np.asarray(camera["poses"], np.float64)
    if "reference_pose" not in camera:
        return poses, camera["reference"]
    return np.vstack([np.asarray(camera["reference_pose"], np.float64), poses]), "start"


def camera_homographies(camera: dict, size, *, depth: float | None = None) -> np.ndarray:
    """(T, 3, 3) sub-frame homographies of a recorded camera, in the window's pixels, seeing a
    plane at ``depth`` (default the camera's ``scene_depth``)."""
    from ..ops.camera6d import pose_homographies

    poses, reference = _camera_poses(camera)
    hms = pose_homographies(poses, camera["focal_px"], size,
                            depth=camera["scene_depth"] if depth is None else depth, reference=reference)
    return hms[len(hms) - len(camera["poses"]):]


def camera_psf_field(camera: dict, size, grid: int, rolling_shutter: float = 0.0) -> np.ndarray:
    """(g, g, k, k) float32 local PSFs of the camera's blur on a g x g grid of the window.

    With a rolling shutter each grid row's PSFs weigh the sub-frames as that pixel row does.
    """
    from ..ops.camera6d import grid_points, psf_field
    from ..ops.warp import subframe_weights

    hms = camera_homographies(camera, size)
    field = psf_field(hms, size, (grid, grid))
    if rolling_shutter > 0:
        k = field.shape[2]
        weights, _, _ = subframe_weights(len(hms), size[0], rolling_shutter)
        for i, y in enumerate(grid_points(size, (grid, grid))[::grid, 1]):
            field[i] = psf_field(hms, size, (grid, grid), k=k, weights=weights[int(round(y))])[i]
    return field


# ---------------------------------------------------------------------------------------------
# drawing a pair's scene


def _window(s, index, photo_hw, params):
    """The crop window (stream 2, as uniform blur draws it): (y0, x0, h, w)."""
    h, w = photo_hw
    if s.crop is None:
        params["crop"] = None
        return 0, 0, h, w
    ch, cw = s.crop
    from .shake_draws import draw_crop_window

    y0, x0 = draw_crop_window(s.seed, index, photo_hw, (ch, cw), params["photo"])
    params["crop"] = [y0, x0, ch, cw]
    return y0, x0, ch, cw


def draw_scene(job, index: int, photo_hw) -> dict:
    """The random choices of scene pair ``index`` (everything its pixels need) as params."""
    s = job.settings
    photo_i, copy = divmod(index, s.per_image)
    from .shake_draws import draw_degradations, resize_param

    params = {"photo": job.plan.files[photo_i], "photo_index": photo_i, "copy": copy,
              "resize": resize_param(s.resize), "motion": s.motion}
    y0, x0, ch, cw = _window(s, index, photo_hw, params)
    focal = float(s.focal_px) if s.focal_px is not None else float(max(ch, cw))
    rho = 0.0
    if s.rolling_shutter is not None:
        rho = setting_range(s.rolling_shutter, "rolling_shutter", (0.0, 1.0)).draw(
            sample_rng(s.seed, index, STREAM_ROLLING))
    params["rolling_shutter"] = rho
    depths = (1.0,)
    if s.defocus:
        lo_hi = setting_range(s.defocus_px or DEFAULT_DEFOCUS_PX, "defocus_px", (0.0, MAX_DEFOCUS_PX))
        params["defocus"], depth = _draw_defocus(s, index, params, photo_hw, lo_hi)
        scale = params["defocus"]["depth_scale"]
        depths = (max(float(depth.min()) / scale, NEAREST_PARALLAX_DEPTH),
                  max(float(depth.max()) / scale, NEAREST_PARALLAX_DEPTH))
    objects, shapes = [], None
    if s.motion == "scene":  # drawn before the camera: their speed counts in the sub-frames
        shapes = _other_shapes(job, params["photo"])
        objects = _draw_objects(job, index, params, (ch, cw))
    params["camera"] = draw_camera(sample_rng(s.seed, index, STREAM_CAMERA), focal, (ch, cw), rho,
                                   s.reference, nearest_depth=depths[0], objects=objects,
                                   source_shapes=shapes)
    # The region the path sees: the nearest and the farthest plane move most in opposite ways.
    margin = max(_margin(camera_homographies(params["camera"], (ch, cw), depth=d), ch, cw) for d in depths)
    if s.defocus:
        # The lens blurs the region the path sees; its widest disk reads this far beyond it.
        margin += int(math.ceil(lo_hi.hi / 2))
    params["margin_px"] = margin
    if s.motion == "scene":
        params["objects"] = objects
        if s.object_masks is not None:
            params["object_masks"] = str(s.object_masks)
    params["psf_grid"] = int(s.psf_grid)
    draw_degradations(s, index, params)
    return params


def _draw_defocus(s, index, params, photo_hw, lo_hi):
    """The depth over the window (drawn, or the photo's map) and the lens of pair ``index``
    (stream 11): (params, the window's depth)."""
    from ..ops.defocus import draw_defocus, draw_depth

    _, _, ch, cw = params["crop"] if params.get("crop") else (0, 0, *photo_hw)
    rng = sample_rng(s.seed, index, STREAM_DEPTH)
    if s.depth in (None, "random"):
        depth, record = draw_depth((ch, cw), rng=rng)
    else:
        record = {"file": depth_file(s.depth, params["photo"]).name}
        params["depth_folder"] = str(s.depth)
        depth = region_depth(s.depth, params, photo_hw, 0)
    lens = draw_defocus(depth, rng=rng, max_coc_px=(lo_hi.lo, lo_hi.hi), blades=s.aperture_blades)
    # The camera's translations are in units of the window's median depth (the plane of a
    # scene without a map is at 1).
    # depth_range: the margin's depth is clipped to it (scene_images), as the lens, the margin and
    # the sub-frames are sized for the window's depths; nearer content just outside would
    # otherwise blur by disks far past the drawn largest.
    return {"depth": record, "depth_scale": float(np.median(depth.astype(np.float64))),
            "depth_range": [float(depth.min()), float(depth.max())], **lens}, depth


def depth_file(folder, photo):
    """The depth map of ``photo`` in ``folder``: ``<stem>`` with a depth suffix (one line if none)."""
    from pathlib import Path

    from ..sources.depth import DEPTH_SUFFIXES

    for suffix in DEPTH_SUFFIXES:
        p = Path(folder) / (Path(photo).stem + suffix)
        if p.is_file():
            return p
    raise BadInputError(f"--depth {folder}: no depth map for {Path(photo).name} (expected "
                        f"{Path(photo).stem}.png, .tif or .npy there); add it or use --depth random.")


def region_depth(folder, params, photo_hw, margin):
    """The depth map of the pair's photo, resized as the photo, over the window and its margin."""
    from ..ops.defocus import resize_depth
    from ..sources.depth import load_depth

    depth = load_depth(depth_file(folder, params["photo"]), shape=None)
    h, w = photo_hw
    if depth.shape != (h, w):  # the map is the photo's size (checked up front), the photo resized
        depth = resize_depth(depth, (h, w))
    y0, x0, ch, cw = params["crop"] if params.get("crop") else (0, 0, h, w)
    ys = _reflect_index(np.arange(y0 - margin, y0 + ch + margin), h)
    xs = _reflect_index(np.arange(x0 - margin, x0 + cw + margin), w)
    return np.ascontiguousarray(depth[ys[:, None], xs[None, :]])


def _object_settings(s):
    from ..sources.objects import ObjectSettings

    return ObjectSettings(count=object_count_range(s.objects), kind=s.object_kind)


def _other_shapes(job, own) -> dict:
    """{name: (h, w)} of the other photos of the set, resized as the run resizes."""
    from .shake_inputs import resized_shape

    s = job.settings
    return {name: resized_shape(s.resize, *size) for name, size in zip(job.plan.files, job.plan.sizes)
            if name != own}


def _draw_objects(job, index, params, window_hw) -> list:
    """Pair ``index``'s objects (stream 10), cut from the other photos of the set."""
    from ..sources.objects import draw_object_params

    s = job.settings
    shapes = _other_shapes(job, params["photo"])
    masked = () if s.object_masks is None else tuple(n for n in shapes if _has_mask(s.object_masks, n))
    return draw_object_params(sample_rng(s.seed, index, STREAM_OBJECTS), window_hw, _object_settings(s),
                              source_shapes=shapes, masked=masked,
                              reference_time=_reference_time(s.reference, params["rolling_shutter"]))


def _reference_time(reference, rolling_shutter) -> float:
    """The time (in exposures) of the sharp image, as the camera's reference pose has it: 0 for
    ``start``, else the middle of the sampled span ``[0, 1 + rho]``."""
    return 0.0 if reference == "start" else (1.0 + float(rolling_shutter or 0.0)) / 2


def _has_mask(folder, photo) -> bool:
    from ..sources.objects import mask_path

    return mask_path(folder, photo).is_file()


# ---------------------------------------------------------------------------------------------
# rendering a pair from its params


def _reflect_index(i, n):
    """Indices folded into [0, n) by reflect-101, as the warps' borders fold (imported late:
    the warp module loads Numba)."""
    from ..ops.warp import reflect101_index

    return reflect101_index(i, n)


def _margin(hms, ch, cw) -> int:
    """Pixels around the window that some sub-frame sees (plus the bilinear tap and one spare).

    Each coordinate of a homography is a linear-fractional function of the pixel: over the
    window (where its denominator is positive) its extremes lie at the corners.
    """
    corners = np.array([[0.0, 0.0, 1.0], [cw - 1.0, 0.0, 1.0], [0.0, ch - 1.0, 1.0],
                        [cw - 1.0, ch - 1.0, 1.0]])
    q = np.einsum("tij,nj->tni", hms, corners)
    q = q[..., :2] / q[..., 2:]
    beyond = max(-q[..., 0].min(), q[..., 0].max() - (cw - 1),
                 -q[..., 1].min(), q[..., 1].max() - (ch - 1), 0.0)
    return int(math.ceil(beyond)) + 2


def _translate(hms, m):
    """Window-coordinate homographies -> those of the window with ``m`` px of margin around it."""
    shift = np.array([[1.0, 0.0, m], [0.0, 1.0, m], [0.0, 0.0, 1.0]])
    return np.einsum("ij,tjk->tik", shift, hms)


def scene_images(photo, params, *, seed, index, photos=None, mosaic_only=False):
    """Render scene pair ``index`` from the resized photo and its params.

    Parameters
    ----------
    photo : (H, W, 3) uint8 ndarray
        The whole photo, resized as the params say (not cropped).
    params : dict
        The row's params (:func:`draw_scene`).
    seed, index : int
        The row's seed and index (they key the noise field).
    photos : str or Path, optional
        The PHOTOS folder: objects are cut from the other photos named in the params.
    mosaic_only : bool
        RAW-path rows: return the blurred image's RAW mosaic instead.

    Returns
    -------
    dict
        ``blurred``, ``sharp`` ((h, w, 3) uint8), ``motion_mask`` ((h, w) uint8) and
        ``psf_field`` ((g, g, k, k) float32); or ``mosaic`` with ``mosaic_only``.
    """
    from ..ops.blur import _boost, _boost_gains, _small_regions
    from ..ops.color import CameraResponse
    from ..ops.warp import render_subframes

    h, w = photo.shape[:2]
    y0, x0, ch, cw = params["crop"] if params.get("crop") else (0, 0, h, w)
    hms = camera_homographies(params["camera"], (ch, cw))
    m = int(params["margin_px"])
    ys = _reflect_index(np.arange(y0 - m, y0 + ch + m), h)
    xs = _reflect_index(np.arange(x0 - m, x0 + cw + m), w)
    region8 = photo[ys[:, None], xs[None, :]]
    crf = CameraResponse.parse(params["crf"])
    table = crf.decode_table()
    gain = None if params.get("exposure_gain") is None else np.float32(params["exposure_gain"])
    base = table[region8]  # (h + 2m, w + 2m, 3) float32 linear light
    if gain is not None:
        base = base * gain
    src = base
    boost = _boost(params.get("highlight_gain"), params.get("highlight_threshold"))
    if boost is not None:  # decided on the region the path sees (uniform blur: its padded window)
        peak = table[region8.max(axis=2)]
        regions = _small_regions(peak, params.get("highlight_regions"),
                                 params.get("highlight_region_threshold"))
        src = base * _boost_gains(peak, boost, regions)[..., None]
    background, layers = _translate(hms, m), []
    if params.get("defocus") is not None:
        depth = _region_depth_of(params, (h, w), photos)
        src = _defocused(src, depth, params["defocus"])
        seen = np.maximum(depth / np.float32(params["defocus"]["depth_scale"]), NEAREST_PARALLAX_DEPTH)
        background, layers = _parallax(src, seen, params["camera"], (ch, cw), m)
    rho = float(params.get("rolling_shutter") or 0.0)
    sharp_lin = base[m : m + ch, m : m + cw]
    if params.get("objects"):
        from ..sources.objects import composite_reference, object_layers

        sources, masks = _object_sources(params, photos, table, gain)
        layers += object_layers(params["objects"], (ch, cw), hms, rolling_shutter=rho, sources=sources,
                                masks=masks)
        sharp_lin = composite_reference(np.ascontiguousarray(sharp_lin), params["objects"], sources=sources,
                                        masks=masks)
    blurred_lin, mask = render_subframes(np.ascontiguousarray(src, np.float32), background, (ch, cw),
                                         layers=layers, rolling_shutter=rho)
    out = _finish(blurred_lin, sharp_lin, region8[m : m + ch, m : m + cw], params, seed=seed, index=index,
                  mosaic_only=mosaic_only, composited=bool(params.get("objects")))
    if mosaic_only:
        return {"mosaic": out}
    out["motion_mask"] = mask
    out["psf_field"] = camera_psf_field(params["camera"], (ch, cw), int(params.get("psf_grid", 5)), rho)
    return out


def _region_depth_of(params, photo_hw, photos):
    """The pair's depth over the window and its margin: the photo's map around the window, or
    the drawn window depth reflected past the window's edges (what lies there is not drawn)."""
    from ..ops.defocus import depth_from_params

    m = int(params["margin_px"])
    d = params["defocus"]
    if "file" in d["depth"]:
        folder = params.get("depth_folder")
        if folder is None:
            raise BadInputError("this pair's depth map came from a folder that its params do not name.")
        region = region_depth(folder, params, photo_hw, m)
        if "depth_range" in d:  # rows without it: as they were made
            lo, hi = d["depth_range"]
            region = np.clip(region, np.float32(lo), np.float32(hi))
        return region
    depth = depth_from_params(d["depth"])
    ch, cw = depth.shape
    ys = _reflect_index(np.arange(-m, ch + m), ch)
    xs = _reflect_index(np.arange(-m, cw + m), cw)
    return np.ascontiguousarray(depth[ys[:, None], xs[None, :]])


def _defocused(src, depth, lens):
    from ..ops.defocus import defocus_from_params

    try:
        return defocus_from_params(np.ascontiguousarray(src, np.float32), depth, lens)
    except BadInputError as exc:
        if "PSF" not in str(exc):
            raise
        h, w = depth.shape
        raise BadInputError(f"the depth map's largest blur disk does not fit the {h}x{w} region the camera "
                            "sees; use a smaller --defocus range or a larger --crop.") from None


def _parallax(src, depth, camera, size, m):
    """The background path and the nearer planes' layers of a scene with a depth map: the camera's
    translations move each plane by its own parallax (:func:`blursynth.ops.camera6d.depth_planes`)."""
    from ..ops.camera6d import depth_planes, plane_layers

    poses, reference = _camera_poses(camera)
    planes, labels = depth_planes(depth, poses, camera["focal_px"], size, reference=reference)
    paths = [_translate(camera_homographies(camera, size, depth=float(d)), m) for d in planes]
    background, layers = plane_layers(np.ascontiguousarray(src, np.float32), labels, paths)
    return background, list(layers)


@functools.lru_cache(maxsize=8)
def _resized_photo(path: str, resize):
    """(photo's own (H, W), the photo resized): cached per process, as a worker's pairs cut
    objects from the same few photos again and again."""
    from ..sources.photos import load_rgb8
    from .shake_inputs import resize_photo

    raw, _ = load_rgb8(path)
    image = resize_photo(raw, list(resize) if isinstance(resize, tuple) else resize)
    image.setflags(write=False)
    return raw.shape[:2], image


class ObjectSourceError(BadInputError):
    """A photo a pair's objects are cut from does not decode (its header read when the run was
    planned): the writer skips that pair, as it skips a pair whose own photo does not decode.
    ``photo``: its name in PHOTOS."""

    def __init__(self, message: str, photo: str):
        super().__init__(message)
        self.photo = photo

    def __reduce__(self):  # pool processes send it back whole
        return type(self), (str(self), self.photo)


def _object_sources(params, photos, table, gain):
    """Linear-light photos (resized as the pair's) and user masks that the pair's objects name."""
    from ..sources.objects import load_object_mask
    from ..sources.photos import photo_path

    names = sorted({o["source"] for o in params["objects"] if "source" in o}
                   | {o["colour"]["source"] for o in params["objects"]
                      if isinstance(o.get("colour"), dict) and "source" in o["colour"]})
    if names and photos is None:
        raise BadInputError("this pair's objects are cut from other photos: give the PHOTOS folder.")
    sources, masks = {}, {}
    resize = params.get("resize")
    for name in names:
        try:
            raw_hw, image = _resized_photo(str(photo_path(photos, name)),
                                           tuple(resize) if isinstance(resize, list) else resize)
        except BadInputError as exc:
            raise ObjectSourceError(f"{str(exc).rstrip('.')} (an object of this pair is cut from "
                                    "it)", name) from None
        lin = table[image]
        sources[name] = lin * gain if gain is not None else lin
        if any(o.get("kind") == "mask" and o.get("source") == name for o in params["objects"]):
            import cv2

            mask = load_object_mask(params["object_masks"], name, raw_hw)
            if mask.shape != image.shape[:2]:
                mask = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
            masks[name] = mask
    return sources, masks


def _finish(blurred_lin, sharp_lin, window8, params, *, seed, index, mosaic_only=False,
            composited=False) -> dict:
    """Noise, encoding and JPEG after the blur: uniform blur's chain, from linear images."""
    from .shake_draws import STREAM_NOISE, STREAM_RAW_NOISE

    if params.get("raw") is not None:
        from ..ops.blur import develop_raw_images

        noisy = "noise_stream" in params
        res = develop_raw_images(blurred_lin, sharp_lin, params["raw"], crf=params["crf"],
                                 noise_rng=sample_rng(seed, index, STREAM_RAW_NOISE) if noisy else None,
                                 jpeg_quality=params.get("jpeg_quality"), mosaic_only=mosaic_only)
        return res if mosaic_only else {"blurred": res[0], "sharp": res[1]}
    if mosaic_only:
        raise BadInputError("this pair was made on the RGB path; it has no RAW mosaic.")
    from ..ops.blur import _encode_hwc
    from ..ops.color import CameraResponse
    from ..ops.degrade import add_sensor_noise, jpeg_roundtrip, noise_field

    # NumPy planes, as render_pair's CPU path: the same numbers, and no torch import.
    crf = CameraResponse.parse(params["crf"])
    x = np.ascontiguousarray(blurred_lin.transpose(2, 0, 1))
    if "shot_noise" in params or "read_noise" in params:
        x = np.clip(x, x.dtype.type(0.0), x.dtype.type(1.0))
        field = noise_field(tuple(x.shape), sample_rng(seed, index, STREAM_NOISE))
        x = add_sensor_noise(x, shot=float(params.get("shot_noise") or 0.0),
                             read=float(params.get("read_noise") or 0.0), noise=field)
    blurred = _encode_hwc(x, crf)
    if params.get("exposure_gain") is None and not composited:
        sharp = np.ascontiguousarray(window8)  # decode then encode of uint8 is the identity
    else:
        sharp = _encode_hwc(np.ascontiguousarray(sharp_lin.transpose(2, 0, 1)), crf)
    if params.get("jpeg_quality") is not None:
        blurred = jpeg_roundtrip(blurred, int(params["jpeg_quality"]))
    return {"blurred": blurred, "sharp": sharp}


def scene_pair_from_params(photo, params, *, seed, index, photos=None, mosaic_only=False):
    """(blurred, sharp) of a scene row from the loaded (not resized) photo and its params;
    ``photos``: the PHOTOS folder (objects are cut from its other photos)."""
    from .shake_inputs import resize_photo

    res = scene_images(resize_photo(photo, params.get("resize")), params, seed=seed, index=index,
                       photos=photos, mosaic_only=mosaic_only)
    return res["mosaic"] if mosaic_only else (res["blurred"], res["sharp"])


# ---------------------------------------------------------------------------------------------
# rows for the dataset writer


def _scene_rows(start, stop, job):
    """Yield the scene pair rows of samples ``start..stop-1`` (skipping unreadable photos)."""
    from ..dataset.schema import pair_row
    from ..dataset.writer import Skipped
    from .photos import photos_for, warn
    from .shake_inputs import resize_photo

    s = job.settings
    photos = photos_for(job.plan, start, stop, s.per_image, strict=s.strict,
                        prepare=functools.partial(resize_photo, resize=s.resize))
    for index, photo, note in photos:
        try:
            fields = scene_row(job, index, photo, note)
        except ObjectSourceError as exc:
            if s.strict:
                raise BadInputError(f"{exc}; drop --strict to skip unreadable photos.") from None
            warn(f"{str(exc).rstrip('.')}; pair {index} skipped")
            # Listed in the manifest (shards[i].skipped), and told apart from whole photos skipped.
            yield Skipped(index, "an object's photo does not decode", {"photo": exc.photo})
            continue
        yield pair_row(**fields, png_level=s.png_level)


def scene_row(job, index: int, photo, note=None) -> dict:
    """The fields of scene pair ``index``'s row (:func:`blursynth.dataset.schema.pair_row`'s
    keywords but ``png_level``) from its photo as resized (``resize_photo``): the draws, the
    photo's conversion note, the images, the PSF field and its centre PSF.

    ``blur``'s scene rows and :class:`blursynth.torch.OnlineBlur` both make them here."""
    s = job.settings
    params = draw_scene(job, index, photo.shape[:2])
    if note:
        params["converted"] = note
    res = scene_images(photo, params, seed=s.seed, index=index, photos=job.plan.root)
    field = res["psf_field"]
    g = field.shape[0]
    return {"index": index, "blurred": res["blurred"], "sharp": res["sharp"],
            "psf": field[g // 2, field.shape[1] // 2], "source": "trajectory", "seed": s.seed,
            "params": params, "fingerprint": job.fingerprint, "motion_mask": res["motion_mask"],
            "psf_field": field}


@dataclass(frozen=True)
class SceneJob:
    """What a worker needs to make scene rows: the settings, the photo plan and the fingerprint."""

    settings: object  # BlurSettings (not imported: blursynth.pairs.shake imports this module)
    plan: object  # PhotoPlan
    fingerprint: str


def check_scene_inputs(s, plan) -> None:
    """Refuse, in one line and before anything is written, inputs the run cannot use: objects
    that cannot fit a window, cut-outs with one photo, masks or depth maps that do not match
    their photo."""
    from .shake_inputs import resized_shape

    windows = [s.crop if s.crop is not None else resized_shape(s.resize, *size) for size in plan.sizes]
    if s.motion == "scene":
        from ..sources.objects import check_object_count

        settings = _object_settings(s)
        for hw in sorted(set(map(tuple, windows))):  # the smallest by area may not be the narrowest
            check_object_count(settings, hw)
        if s.object_kind == "cutout" and settings.count[1] > 0 and len(plan.files) < 2:
            raise SettingError("--objects: cut-outs come from the other photos of PHOTOS, and it holds one; "
                               "give two or more photos, or --object-kind leaves.", "objects")
        if s.object_masks is not None:
            from ..sources.objects import load_object_mask

            found = [(name, size) for name, size in zip(plan.files, plan.sizes)
                     if _has_mask(s.object_masks, name)]
            if not found:
                raise SettingError(f"--object-masks {s.object_masks}: no mask named as a photo (<stem>.png) "
                                   "there.", "object_masks")
            for name, size in found:
                load_object_mask(s.object_masks, name, size)  # size, layout, non-empty: one line
    if s.defocus and s.depth not in (None, "random"):
        from ..sources.depth import load_depth

        for name, size in zip(plan.files, plan.sizes):
            load_depth(depth_file(s.depth, name), shape=size)


def plan_scene(settings, *, out=None):
    """Check the inputs of a scene blur run and plan it; nothing is written.

    What :func:`blur_scene` writes from and :class:`blursynth.torch.OnlineBlur` renders from.

    Returns
    -------
    settings : BlurSettings
        With the ``object_masks`` and ``depth`` folders made absolute (rows record them so).
    plan : PhotoPlan
    recipe : dict
        What determines the bytes; its fingerprint names the dataset.
    """
    import dataclasses
    from pathlib import Path

    from .shake_inputs import KernelSource, plan_photos

    folders = {key: str(Path(getattr(settings, key)).resolve()) for key in ("object_masks", "depth")
               if getattr(settings, key) not in (None, "random")}
    settings = dataclasses.replace(settings, **folders)
    source = KernelSource("scene", exposures=(1.0,), max_side=1)
    plan = plan_photos(settings, source.max_side, out=out)
    check_scene_inputs(settings, plan)
    recipe = {"command": "blur", **settings.recipe(), "photos_digest": plan.digest(),
              "n_photos": len(plan.files), "device": "cpu"}
    return settings, plan, recipe


def blur_scene(settings, out, *, workers: int = 1, overwrite: bool = False, progress: bool = True,
               options=None) -> dict:
    """:func:`blursynth.pairs.shake.blur_photos` for ``motion`` camera6d or scene.

    Rendered on the CPU (the renderer is a Numba loop; ``--device`` may be auto or cpu only), so
    the fingerprint holds device ``cpu`` and the bytes are the same on every machine. The
    ``--object-masks`` and ``--depth`` folders are resolved to absolute paths here, before any
    worker starts: rows record them as such, so :func:`~blursynth.pairs.shake.rebuild_pair`
    finds them from any working directory (a moved folder: edit the rows' ``object_masks`` /
    ``depth_folder``).
    """
    from ..dataset.schema import SCENE_PAIR_SCHEMA
    from ..ops.color import describe_crf
    from .photos import write_photo_pairs

    settings, plan, recipe = plan_scene(settings, out=out)
    inputs = {"photos": str(settings.photos)}
    for key in ("object_masks", "depth"):
        if getattr(settings, key) not in (None, "random"):
            inputs[key] = str(getattr(settings, key))
    return write_photo_pairs(
        out, plan, per_image=settings.per_image, recipe=recipe, inputs=inputs,
        make_job=functools.partial(SceneJob, settings, plan),
        rows=_scene_rows, shard_size=settings.shard_size, workers=workers, overwrite=overwrite,
        progress=progress, desc="blurring", options=options,
        extra={"camera_response": describe_crf(settings.crf)}, schema=SCENE_PAIR_SCHEMA,
    )
