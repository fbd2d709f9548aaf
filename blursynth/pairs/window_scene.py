"""The PSF field and motion mask of a frames-average pair from a ``render-clip --motion
camera6d|scene`` clip: the same columns ``blur --motion scene`` writes.

A window averages frames ``start .. stop-1`` (with ``--interpolate K``, K-1 flow frames between
each two, at linearly interpolated poses); its sharp frame is frame ``win.sharp``. Frame ``k``
shows the photo at ``H_k`` (frame pixel -> photo pixel), the sharp frame at ``H_s``, so frame
``k``'s pixel sees the sharp frame's pixel ``H_s^-1 H_k``: those homographies, one per averaged
frame, are the window's sub-frames, and :func:`blursynth.ops.camera6d.psf_field` rasterises
them at a grid as for a blurred photo. The motion mask is the renderer's
(:func:`blursynth.ops.warp.render_subframes`): 255 where an object moving on its own covers the
pixel in any averaged frame.
"""

from __future__ import annotations

import numpy as np


def window_frame_times(win, interpolate: int = 1) -> np.ndarray:
    """Frame numbers (fractional between real frames) of the frames a window averages."""
    k = max(1, int(interpolate))
    return win.start + np.arange((win.stop - 1 - win.start) * k + 1) / k


def _poses_at(poses, frames):
    poses = np.asarray(poses, np.float64)
    return np.stack([np.interp(frames, np.arange(len(poses)), poses[:, a]) for a in range(6)], axis=1)


def window_homographies(scene: dict, win, interpolate: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(frame -> sharp-frame homographies (T, 3, 3), frame -> reference-frame homographies
    (T, 3, 3)) of the frames a window averages, in the clip frame's pixels."""
    from ..sources.render_scene import frame_homographies

    camera, geometry = scene["camera"], scene["geometry"]
    frames = window_frame_times(win, interpolate)
    local = frame_homographies(camera, geometry, _poses_at(camera["poses"], frames))
    sharp = frame_homographies(camera, geometry, _poses_at(camera["poses"], [float(win.sharp)]))[0]
    return np.einsum("ij,tjk->tik", np.linalg.inv(sharp), local), local


def window_field(scene: dict, win, interpolate: int = 1) -> np.ndarray:
    """(g, g, k, k) float32 local PSFs of the window's camera blur (g: the clip's ``psf_grid``)."""
    from ..ops.camera6d import psf_field

    to_sharp, _ = window_homographies(scene, win, interpolate)
    g = int(scene.get("psf_grid", 5))
    size = (scene["geometry"]["height"], scene["geometry"]["width"])
    return psf_field(to_sharp, size, (g, g))


def window_mask(scene: dict, win, interpolate: int = 1) -> np.ndarray:
    """(h, w) uint8 motion mask of the window: 255 where an object's own motion blurred the
    pixel (all zeros without objects)."""
    from ..ops.warp import render_subframes
    from ..sources.objects import object_layers
    from ..sources.render_scene import clip_times

    h, w = scene["geometry"]["height"], scene["geometry"]["width"]
    objects = scene.get("objects") or []
    if not objects:
        return np.zeros((h, w), np.uint8)
    to_sharp, local = window_homographies(scene, win, interpolate)
    times = clip_times(len(scene["camera"]["poses"]), window_frame_times(win, interpolate))
    big_h, big_w = scene["camera"]["photo_size"]
    # Only the objects' alpha decides the mask: their colours (the photo) are not needed.
    blank = np.zeros((big_h, big_w, 3), np.float32)
    names = {o["source"] for o in objects if "source" in o} | {
        o["colour"]["source"] for o in objects
        if isinstance(o.get("colour"), dict) and "source" in o["colour"]}
    masks = None
    if any(o.get("kind") == "mask" for o in objects):
        from ..sources.objects import load_object_mask

        masks = {n: load_object_mask(scene["object_masks"], n, (big_h, big_w)) for n in names}
    layers = object_layers(objects, (h, w), local, times=times, sources={n: blank for n in names},
                           masks=masks)
    _, mask = render_subframes(np.zeros((2, 2, 3), np.float32), to_sharp, (h, w), layers=layers)
    return mask
