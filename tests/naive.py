"""Slow, obvious reference versions of the fast paths, for tests to compare against."""

from __future__ import annotations

import cmath
import math

import numpy as np


def trajectory(numbers, n_samples, length_px):
    """The trajectory model with complex numbers, one step at a time, from drawn numbers."""
    step = length_px / (n_samples - 1)
    x = 0j
    v = cmath.exp(1j * numbers.angle_rad) * step
    events = dict(zip(numbers.event_steps.tolist(), numbers.event_uniforms.tolist()))
    out = [(0.0, 0.0)]
    for t in range(n_samples - 1):
        impulse = 0j
        if t in events:
            a = math.pi + events[t] - 0.5
            impulse = 2 * complex(v.real * math.cos(a) - v.imag * math.sin(a), v.real * math.sin(a) + v.imag * math.cos(a))
        n0 = float(numbers.normals[t, 0])
        n1 = float(numbers.normals[t, 1])
        dv_re = impulse.real + numbers.expl * (numbers.gaussian_shake * n0 - numbers.centripetal * x.real) * step
        dv_im = impulse.imag + numbers.expl * (numbers.gaussian_shake * n1 - numbers.centripetal * x.imag) * step
        v = complex(v.real + dv_re, v.imag + dv_im)
        norm = math.sqrt(v.real * v.real + v.imag * v.imag)
        v = complex(v.real * (step / norm), v.imag * (step / norm))
        x = complex(x.real + v.real, x.imag + v.imag)
        out.append((x.real, x.imag))
    return np.array(out)


def rasterize(traj, exposure_fraction=1.0, size=None, centre="mass", max_size=63):
    """Bilinear splat of the first round(f T) samples, centred, cropped, normalised."""
    n = max(1, int(round(exposure_fraction * len(traj))))
    pts = [(float(a), float(b)) for a, b in traj[:n]]
    if centre == "mass":
        cx = sum(p[0] for p in pts) / n
        cy = sum(p[1] for p in pts) / n
    else:
        cx = 0.5 * (min(p[0] for p in pts) + max(p[0] for p in pts))
        cy = 0.5 * (min(p[1] for p in pts) + max(p[1] for p in pts))
    if size is None:
        r = max(max(abs(p[0] - cx), abs(p[1] - cy)) for p in pts)
        k = max(3, 2 * math.ceil(r) + 1)
        limit = max_size if max_size % 2 else max_size - 1
        k = min(k, limit)
    else:
        k = size
    c = (k - 1) // 2
    acc = [[0.0] * k for _ in range(k)]
    kept = 0.0
    w = 1.0 / n
    for px, py in pts:
        px = px + (c - cx)
        py = py + (c - cy)
        x0, y0 = math.floor(px), math.floor(py)
        fx, fy = px - x0, py - y0
        taps = ((0, 0, w * (1 - fx) * (1 - fy)), (1, 0, w * fx * (1 - fy)),
                (0, 1, w * (1 - fx) * fy), (1, 1, w * fx * fy))
        for dx, dy, weight in taps:
            xx, yy = int(x0) + dx, int(y0) + dy
            if 0 <= xx < k and 0 <= yy < k:
                acc[yy][xx] += weight
                kept += weight
    return (np.array(acc) / kept).astype(np.float32)
