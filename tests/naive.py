"""Slow, obvious reference versions of the fast paths, for tests to compare against."""

from __future__ import annotations

import math

import numpy as np

from blursynth.ops import raw
from blursynth.ops.trajectory import EXPL_CHOICES


M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def _mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class KeyedStream:
    """xoshiro256++ seeded from a (seed, index, stream) key, with ziggurat normals, in plain Python."""

    def __init__(self, seed, index, stream=0):
        h = _mix((seed + GOLDEN) & M64)
        h = _mix(h ^ ((index + 2 * GOLDEN) & M64))
        h = _mix(h ^ ((stream + 3 * GOLDEN) & M64))
        self.s = [_mix((h + (i + 1) * GOLDEN) & M64) for i in range(4)]

    def word(self):
        s0, s1, s2, s3 = self.s
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & M64  # noqa: E731
        result = (rotl((s0 + s3) & M64, 23) + s0) & M64
        t = (s1 << 17) & M64
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        self.s = [s0, s1, s2, rotl(s3, 45)]
        return result

    def uniform(self):
        return (self.word() >> 11) * 2.0**-53

    def normal(self):
        from blursynth._keyrng import ZIG_F, ZIG_K, ZIG_R, ZIG_W

        while True:
            w = self.word()
            layer = w & 255
            v = (w - (1 << 64) if w >> 63 else w) >> 10  # top 54 bits, signed
            if abs(v) < int(ZIG_K[layer]):
                return v * float(ZIG_W[layer])
            x = abs(v) * float(ZIG_W[layer])
            if layer == 0:
                while True:
                    a = -math.log(1.0 - self.uniform()) / ZIG_R
                    b = -math.log(1.0 - self.uniform())
                    if b + b > a * a:
                        return ZIG_R + a if v >= 0 else -(ZIG_R + a)
            lo, hi = float(ZIG_F[layer]), float(ZIG_F[layer + 1])
            if lo + self.uniform() * (hi - lo) < math.exp(-0.5 * x * x):
                return x if v >= 0 else -x


def trajectory(seed, index, n_samples=2000, length_px=60.0, expl=None, expl_choices=EXPL_CHOICES,
               centripetal_max=0.7, big_shake_max=0.2, gaussian_shake_max=10.0, stream=0):
    """The trajectory model with complex numbers, one step at a time, drawing from a plain-Python stream.

    Returns the (T, 2) positions, the five drawn parameters and the big-shake steps.
    """
    rs = KeyedStream(seed, index, stream)
    u = [rs.uniform() for _ in range(5)]
    if expl is None:
        expl = expl_choices[min(int(u[4] * len(expl_choices)), len(expl_choices) - 1)]
    c, p, g, angle = centripetal_max * u[0], big_shake_max * u[1], gaussian_shake_max * u[2], 2 * math.pi * u[3]
    n_steps = n_samples - 1
    normals = [(rs.normal(), rs.normal()) for _ in range(n_steps)]
    events = {}
    q = p * expl
    if q > 0:
        t = 0
        while t < n_steps:
            gap = math.floor(math.log(1.0 - rs.uniform()) / math.log1p(-q))
            if t + gap >= n_steps:
                break
            t += int(gap)
            events[t] = rs.uniform()
            t += 1
    step = length_px / n_steps
    x = 0j
    v = complex(math.cos(angle) * step, math.sin(angle) * step)
    out = [(0.0, 0.0)]
    for t in range(n_steps):
        impulse = 0j
        if t in events:
            a = math.pi + events[t] - 0.5
            impulse = 2 * complex(v.real * math.cos(a) - v.imag * math.sin(a), v.real * math.sin(a) + v.imag * math.cos(a))
        n0, n1 = normals[t]
        dv_re = impulse.real + expl * (g * n0 - c * x.real) * step
        dv_im = impulse.imag + expl * (g * n1 - c * x.imag) * step
        v = complex(v.real + dv_re, v.imag + dv_im)
        norm = math.sqrt(v.real * v.real + v.imag * v.imag)
        v = complex(v.real * (step / norm), v.imag * (step / norm))
        x = complex(x.real + v.real, x.imag + v.imag)
        out.append((x.real, x.imag))
    return np.array(out), (expl, c, p, g, angle), sorted(events)


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


def decode(v, kind, gamma=2.2):
    """Camera response inverse of one encoded value in [0, 1], in plain float64 arithmetic."""
    if kind == "none":
        return v
    if kind == "gamma":
        return v ** gamma
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / (1 + 0.055)) ** 2.4


def encode8_levels(kind, gamma=2.2):
    """The 255 decision levels of the 8-bit encoder: code k starts at decode((k - 1/2) / 255)."""
    return [decode((k - 0.5) / 255.0, kind, gamma) for k in range(1, 256)]


def encode8(linear, kind, gamma=2.2):
    """8-bit codes of linear values: how many decision levels each (clipped to [0, 1]) reaches.

    That is round-half-up of ``255 * encode(x)``, counted instead of computed.
    """
    levels = encode8_levels(kind, gamma)
    out = []
    for x in linear:
        x = min(max(float(x), 0.0), 1.0)
        out.append(sum(1 for level in levels if x >= level))
    return out


def encode8_sums(sums, n_items, kind, gamma=2.2, scale=1 << 24):
    """8-bit codes of the means of integer sums of ``n_items`` table values (1.0 = ``scale``).

    For ``none`` the table is the identity (``scale`` 255) and the levels are exact:
    code k starts at a sum of n (k - 1/2).
    """
    out = []
    if kind == "none":
        for s in sums:
            out.append(sum(1 for k in range(1, 256) if 2 * int(s) >= n_items * (2 * k - 1)))
        return out
    levels = [n_items * scale * level for level in encode8_levels(kind, gamma)]
    for s in sums:
        out.append(sum(1 for level in levels if int(s) >= level))
    return out


# -- the RAW path (ops.raw, ops._raw_kernels): one NumPy step at a time, in float32 (float64
# for the highlight solve), in the kernels' order of operations, so the kernels equal it bit for bit
def raw_matrix(x, m):
    m = np.asarray(m, np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    return np.stack([(m[c, 0] * r + m[c, 1] * g) + m[c, 2] * b for c in range(3)], -1)


def _raw_mask(grey):
    t = np.clip((grey - raw.HIGHLIGHT_KNEE) / (1.0 - raw.HIGHLIGHT_KNEE), 0.0, 1.0)
    return t * t


def raw_unprocess(rgb, p):
    cam = raw_matrix(rgb, p.rgb_to_cam)
    inv = (1.0 / p.wb_gains).astype(np.float32)
    out = cam * inv
    if p.highlights == "preserve":
        grey = (cam[..., 0] + cam[..., 1] + cam[..., 2]) / np.float32(3)
        hot = grey > np.float32(raw.HIGHLIGHT_KNEE)
        m = _raw_mask(grey[hot])[:, None]
        out[hot] = cam[hot] * np.maximum(m + (1 - m) * inv, inv)
    return out


def raw_mosaic(cam, pattern):
    """(H, W, 3) camera colours -> (H, W) Bayer mosaic: each site keeps its channel (no clip,
    noise or quantisation)."""
    ch = raw.cfa_channels(pattern, cam.shape[:2]).astype(np.intp)
    return np.take_along_axis(np.asarray(cam, np.float32), ch[..., None], axis=2)[..., 0]


def raw_readout(cam, p, field=None):
    white = np.float32(p.white_level)
    clipped = np.clip(cam, np.float32(0), white)
    m = raw_mosaic(clipped, p.bayer)
    if field is not None:
        sigma = np.sqrt(np.maximum(m, 0) * np.float32(p.shot_noise)
                        + np.float32(p.read_noise ** 2))
        m = m + sigma * field
    m = np.minimum(m, white)
    if p.raw_bits is not None:
        scale = np.float32(2 ** p.raw_bits - 1) / white
        m = np.rint(m * scale) / scale
    return m


def raw_demosaic(x, pattern, method):
    h, w = x.shape
    ch = raw.cfa_channels(pattern, (h, w))
    pad = np.pad(x, 2, mode="reflect")

    def at(dy, dx):
        return pad[2 + dy:2 + dy + h, 2 + dx:2 + dx + w]

    f32 = np.float32
    c = x
    n, s, e, wst = at(-1, 0), at(1, 0), at(0, 1), at(0, -1)
    axis4 = ((n + s) + (e + wst)) * f32(0.25)
    horiz, vert = (e + wst) * f32(0.5), (n + s) * f32(0.5)
    diag = ((at(-1, -1) + at(-1, 1)) + (at(1, -1) + at(1, 1))) * f32(0.25)
    if method == "malvar":
        n2, s2, e2, w2 = at(-2, 0), at(2, 0), at(0, 2), at(0, -2)
        lap_axis = c - ((n2 + s2) + (e2 + w2)) * f32(0.25)
        hor2, ver2 = (e2 + w2) * f32(0.5), (n2 + s2) * f32(0.5)
        d_c = c - diag
        lap_row = (f32(2) * (c - hor2) + f32(4) * d_c - (c - ver2)) * f32(0.125)
        lap_col = (f32(2) * (c - ver2) + f32(4) * d_c - (c - hor2)) * f32(0.125)
        g_at_rb = axis4 + f32(0.5) * lap_axis
        along_row, along_col = horiz + lap_row, vert + lap_col
        opposite = diag + f32(0.75) * lap_axis
    else:
        g_at_rb, along_row, along_col, opposite = axis4, horiz, vert, diag
    row_other = np.broadcast_to(np.where(ch[:, :1] == 1, ch[:, 1:2], ch[:, :1]), (h, w))
    out = np.empty((h, w, 3), np.float32)
    for k in (0, 2):
        out[..., k] = np.where(ch == k, c, np.where(ch == 2 - k, opposite,
                                                    np.where(row_other == k, along_row, along_col)))
    out[..., 1] = np.where(ch == 1, c, g_at_rb)
    return out


def raw_restore(out, p):
    if p.highlights == "off":
        return out
    inv = 1.0 / p.wb_gains
    hot = (out[..., 0] + out[..., 1] + out[..., 2]) / np.float32(3) > raw.HIGHLIGHT_KNEE
    yh = out[hot].astype(np.float64) * inv

    def grey_at(t):
        m = _raw_mask(t)[:, None]
        s = np.maximum(m + (1 - m) * inv, inv)
        return (yh / s).mean(axis=1), s

    top, _ = grey_at(np.ones(len(yh)))
    lo, hi = np.full(len(yh), raw.HIGHLIGHT_KNEE), np.ones(len(yh))
    for _ in range(52):
        mid = 0.5 * (lo + hi)
        above = grey_at(mid)[0] > mid
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    _, s = grey_at(np.where(top >= 1.0, 1.0, 0.5 * (lo + hi)))
    out[hot] = (yh / s).astype(np.float32)
    return out


def raw_develop(x, p):
    gained = x * p.wb_gains.astype(np.float32)[raw.cfa_channels(p.bayer, x.shape)]
    return raw_matrix(raw_restore(raw_demosaic(gained, p.bayer, p.demosaic), p), p.cam_to_rgb)
