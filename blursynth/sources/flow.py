"""Optical-flow interpolation: in-between frames of a stream, by splatting along DIS flow both ways."""

from __future__ import annotations

import math

import numpy as np

from .._numba import njit


def interpolate_frames(a: np.ndarray, b: np.ndarray, k: int) -> list[np.ndarray]:
    """``k - 1`` frames between ``a`` and ``b`` at times ``1/k .. (k-1)/k``, by optical flow.

    Flow both ways comes from OpenCV's DIS estimator. Each in-between frame
    forward-splats ``a`` along ``t * flow_ab`` and ``b`` along
    ``(1 - t) * flow_ba`` with bilinear weights, blends them ``(1 - t) : t``,
    and where nothing landed falls back to the plain cross-fade. The real
    frames are not changed. Frames under 16 px a side are cross-faded.

    Parameters
    ----------
    a, b : (H, W, 3) uint8 ndarray
    k : int
        Interpolation factor (>= 1; 1 returns no frames).

    Returns
    -------
    frames : list of (H, W, 3) uint8 ndarray

    Examples
    --------
    >>> a = np.zeros((16, 16, 3), np.uint8); b = a.copy()
    >>> len(interpolate_frames(a, b, 4))
    3
    """
    if k <= 1:
        return []
    import cv2

    if min(a.shape[:2]) < 16:
        # DIS needs at least 12 px a side; frames this small get a plain cross-fade.
        flow_ab = flow_ba = np.zeros(a.shape[:2] + (2,), np.float64)
    else:
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
        gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
        flow_ab = dis.calc(ga, gb, None).astype(np.float64)
        flow_ba = dis.calc(gb, ga, None).astype(np.float64)
    fa, fb = a.astype(np.float64), b.astype(np.float64)
    out = []
    for m in range(1, k):
        t = m / k
        acc = np.zeros(a.shape, np.float64)
        weight = np.zeros(a.shape[:2], np.float64)
        _splat_frame(fa, flow_ab, t, 1.0 - t, acc, weight)
        _splat_frame(fb, flow_ba, 1.0 - t, t, acc, weight)
        fade = (1.0 - t) * fa + t * fb
        w = weight[..., None]
        mid = np.where(w > 1e-3, acc / np.maximum(w, 1e-12), fade)
        out.append(np.clip(np.rint(mid), 0, 255).astype(np.uint8))
    return out


#: A pixel (8-bit gray, shrunk frames) that changed by more than this between two frames moved
#: or changed; below it, video compression noise.
_CHANGED_LEVELS = 8


def frame_motion_px(a: np.ndarray, b: np.ndarray, *, percentile: float = 95.0, max_side: int = 320):
    """How far the content moves from frame ``a`` to frame ``b``: a percentile of the optical flow's length.

    The frames are shrunk (area average) until their longer side is at most
    ``max_side`` and DIS flow is taken there, then scaled back to the frame's
    pixels: a fast, coarse measure, enough to tell 0.5 px from 10 px.

    Parameters
    ----------
    a, b : (H, W, 3) uint8 ndarray
    percentile : float
        Of the flow's length over all pixels (95: what the fast-moving part does).
    max_side : int

    Returns
    -------
    motion_px : float or None
        In pixels of the full frame; 0 where under 0.1% of the pixels changed by more than
        8 levels; None for frames under 16 px a side, and where the flow does not explain
        the change (warping ``b`` back along it removes less than half of the mean
        difference from ``a`` over the changed pixels).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> tex = rng.integers(0, 256, (64, 96), dtype=np.uint8).repeat(2, 0).repeat(2, 1)
    >>> a = np.stack([tex[:80, :120]] * 3, axis=-1); b = np.stack([tex[:80, 4:124]] * 3, axis=-1)
    >>> 3 < frame_motion_px(a, b) < 5
    True
    """
    import cv2

    h, w = a.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if min(size) < 16:
        return None
    ga, gb = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (a, b))
    if scale < 1:
        ga, gb = (cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in (ga, gb))
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(ga, gb, None)
    # Trust the flow only where it explains the change: over the pixels that changed by more than
    # a few levels, ``b`` warped back along it must be much closer to ``a`` than ``b`` is. Frames
    # of independent noise, a cut or a flash give flow that explains nothing. The test is on the
    # changed pixels alone: in ordinary video most of the frame is still, and its compression
    # noise, which no flow removes, would otherwise hide a subject that moves 10 px.
    ys, xs = np.indices(ga.shape, dtype=np.float32)
    warped = cv2.remap(gb, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    before = np.abs(ga.astype(np.float32) - gb)
    changed = before > _CHANGED_LEVELS
    if changed.mean() < 1e-3:
        return 0.0  # nothing but noise and compression changed
    after = np.abs(ga.astype(np.float32) - warped)
    if after[changed].mean() > 0.5 * before[changed].mean():
        return None
    length = np.hypot(flow[..., 0], flow[..., 1])
    return float(np.percentile(length, percentile)) * (w / size[0])


@njit
def _splat_frame(img, flow, t, blend, acc, weight):
    h, w = weight.shape
    for y in range(h):
        for x in range(w):
            tx = x + t * flow[y, x, 0]
            ty = y + t * flow[y, x, 1]
            x0 = math.floor(tx)
            y0 = math.floor(ty)
            dx = tx - x0
            dy = ty - y0
            for j in range(2):
                yy = y0 + j
                if yy < 0 or yy >= h:
                    continue
                wy = dy if j else 1.0 - dy
                for i in range(2):
                    xx = x0 + i
                    if xx < 0 or xx >= w:
                        continue
                    wt = blend * wy * (dx if i else 1.0 - dx)
                    if wt == 0.0:
                        continue
                    weight[yy, xx] += wt
                    for c in range(img.shape[2]):
                        acc[yy, xx, c] += wt * img[y, x, c]


def expanded_frames(frames, k: int):
    """Insert ``k - 1`` interpolated frames between consecutive frames of a stream.

    ``frames`` yields ``(index, frame)`` with consecutive indices; this yields
    ``(t, frame)`` with ``t = index * k`` for real frames and ``t = index * k + m``
    for the m-th frame after it. With ``k == 1`` the stream passes through.

    Examples
    --------
    >>> frames = [(i, np.full((8, 8, 3), 10 * i, np.uint8)) for i in range(3)]
    >>> [t for t, _ in expanded_frames(iter(frames), 2)]
    [0, 1, 2, 3, 4]
    """
    if k <= 1:
        yield from frames
        return
    prev = None
    for i, f in frames:
        if prev is not None:
            for m, g in enumerate(interpolate_frames(prev[1], f, k), start=1):
                yield prev[0] * k + m, g
        yield i * k, f
        prev = (i, f)
