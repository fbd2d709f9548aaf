"""The shapes of scene blur's moving objects, drawn: the anti-aliased coverage (alpha) of a
disk, an ellipse or a polygon over the frame or a box of it, from the shape's recorded numbers.
"""

from __future__ import annotations

import math

import numpy as np

from .._numba import njit

#: Sub-samples per pixel side when a shape's coverage is rendered (16 per pixel: alpha steps of
#: 1/16 along edges, enough that an edge shows no stair steps after the blur).
SUPERSAMPLE = 4


@njit
def _polygon_coverage(vx, vy, x0, y0, alpha, ss):
    """Fraction of each pixel's ss x ss sub-samples inside the polygon (even-odd rule)."""
    n = vx.shape[0]
    inv = 1.0 / (ss * ss)
    for r in range(alpha.shape[0]):
        for c in range(alpha.shape[1]):
            hits = 0
            for j in range(ss):
                py = y0 + r - 0.5 + (j + 0.5) / ss
                for i in range(ss):
                    px = x0 + c - 0.5 + (i + 0.5) / ss
                    inside = False
                    k = n - 1
                    for m in range(n):
                        if (vy[m] > py) != (vy[k] > py):
                            xc = vx[m] + (py - vy[m]) * (vx[k] - vx[m]) / (vy[k] - vy[m])
                            if px < xc:
                                inside = not inside
                        k = m
                    if inside:
                        hits += 1
            alpha[r, c] = hits * inv


@njit
def _ellipse_coverage(cx, cy, a, b, angle, x0, y0, alpha, ss):
    """Fraction of each pixel's ss x ss sub-samples inside the ellipse."""
    ca, sa = math.cos(angle), math.sin(angle)
    inv = 1.0 / (ss * ss)
    for r in range(alpha.shape[0]):
        for c in range(alpha.shape[1]):
            hits = 0
            for j in range(ss):
                dy = y0 + r - 0.5 + (j + 0.5) / ss - cy
                for i in range(ss):
                    dx = x0 + c - 0.5 + (i + 0.5) / ss - cx
                    u = (dx * ca + dy * sa) / a
                    v = (-dx * sa + dy * ca) / b
                    if u * u + v * v <= 1.0:
                        hits += 1
            alpha[r, c] = hits * inv


def shape_box(shape: dict) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the pixels (exclusive ends) a shape can touch, not clipped to a frame."""
    if shape["type"] == "polygon":
        v = np.asarray(shape["vertices_xy"], np.float64)
        lo, hi = v.min(0), v.max(0)
    else:
        cx, cy = shape["centre_xy"]
        r = shape["radius_px"] if shape["type"] == "disk" else max(shape["axes_px"])
        lo, hi = (cx - r, cy - r), (cx + r, cy + r)
    # A pixel reaches half a pixel round its centre.
    return (int(math.floor(lo[0] + 0.5)), int(math.floor(lo[1] + 0.5)),
            int(math.ceil(hi[0] - 0.5)) + 1, int(math.ceil(hi[1] - 0.5)) + 1)


def box_alpha(shape: dict, box) -> np.ndarray:
    """Coverage of ``shape`` over the pixels of ``box``: (y1 - y0, x1 - x0) float32."""
    x0, y0, x1, y1 = box
    alpha = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), np.float32)
    if alpha.size == 0:
        return alpha
    if shape["type"] == "polygon":
        v = np.asarray(shape["vertices_xy"], np.float64)
        _polygon_coverage(np.ascontiguousarray(v[:, 0]), np.ascontiguousarray(v[:, 1]),
                          float(x0), float(y0), alpha, SUPERSAMPLE)
    else:
        cx, cy = shape["centre_xy"]
        a, b = (shape["radius_px"],) * 2 if shape["type"] == "disk" else shape["axes_px"]
        _ellipse_coverage(float(cx), float(cy), float(a), float(b),
                          float(shape.get("angle_rad", 0.0)), float(x0), float(y0), alpha,
                          SUPERSAMPLE)
    return alpha


def shape_alpha(shape: dict, photo_hw) -> np.ndarray:
    """Anti-aliased coverage of a drawn shape over a frame: (H, W) float32 in [0, 1], the
    fraction of ``SUPERSAMPLE**2`` sub-samples per pixel inside it (pixel centres at integer
    coordinates).

    Examples
    --------
    >>> a = shape_alpha({"type": "disk", "centre_xy": [8.0, 8.0], "radius_px": 4.0}, (16, 16))
    >>> float(a[8, 8]), float(a[0, 0]), 0 < float(a[8, 12]) < 1
    (1.0, 0.0, True)
    """
    h, w = (int(v) for v in photo_hw[:2])
    x0, y0, x1, y1 = shape_box(shape)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    alpha = np.zeros((h, w), np.float32)
    if cx1 > cx0 and cy1 > cy0:
        alpha[cy0:cy1, cx0:cx1] = box_alpha(shape, (cx0, cy0, cx1, cy1))
    return alpha
