"""Defocus blur from depth: thin-lens circle of confusion, aperture kernels, layered rendering.

Three layers, kept apart so a pair can be replayed from its recorded numbers:

- the lens: :func:`signed_coc_px` (thin-lens circle of confusion in pixels, signed: positive
  behind the focus plane), :func:`coc_scale_from_lens` (physical lens and sensor) and
  :func:`coc_scale_for_max` (the user-facing "largest blur in pixels" parametrisation);
- the aperture: :func:`aperture_kernel` (an anti-aliased disk, or a regular polygon of
  ``blades`` sides), normalised to sum 1;
- the renderer: :func:`defocus` blurs a linear (H, W, 3) image by a signed CoC map, in layers
  of equal CoC composited back to front (the model and its limits: docs/algorithms.md,
  "Scene blur: defocus").

Random scene geometry and lens settings (:func:`draw_depth`, :func:`draw_defocus`) take a
keyword ``rng`` and return the parameters that rebuild them exactly
(:func:`depth_from_params`, :func:`defocus_from_params`).

Lens, aperture, renderer and the random depth stay in one module (past 600 lines, mostly
docstrings): they share one sign convention for the CoC and one set of recorded params.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import BadInputError
from .warp import check_hw

# Sub-samples per pixel side for the aperture's area coverage: 16 x 16 = 256 samples, so a
# pixel's weight is its covered fraction to within 1/256 (anti-aliased edges), and the disk
# of one diameter is the same whatever the kernel's size.
APERTURE_SUPERSAMPLE = 16

# Depth range of draw_depth in scene units (the lens settings only see depth ratios through
# 1 - focus / depth, so the unit is arbitrary): 1 to 50, as from a near object at arm's length
# to a street's far end.
DRAW_DEPTH_NEAR = 1.0
DRAW_DEPTH_FAR = 50.0
DRAW_PIECES_MAX = 4
DEPTH_PARAMS_VERSION = 1


# ---------------------------------------------------------------- lens


def signed_coc_px(depth, focus_distance: float, coc_scale_px: float):
    """Thin-lens circle of confusion, in pixels, signed by the side of the focus plane.

    ``c = coc_scale_px * (1 - focus_distance / depth)``: 0 at the focus distance, positive
    behind it (growing to ``coc_scale_px`` at infinity), negative in front of it (without
    bound as the depth goes to 0). ``|c|`` is the blur disk's diameter. This is the thin-lens
    circle of confusion ``A * f / (S - f) * |z - S| / z`` (aperture diameter ``A = f / N``,
    focal length ``f``, focus distance ``S``, object distance ``z``; Potmesil and Chakravarty,
    "A lens and aperture camera model for synthetic image generation", SIGGRAPH 1981) with all
    lens constants folded into ``coc_scale_px = A f / (S - f)`` over the pixel pitch.

    Parameters
    ----------
    depth : (H, W) float ndarray
        Positive distances along the optical axis (any unit, the same as ``focus_distance``).
    focus_distance : float
        Distance in focus (> 0).
    coc_scale_px : float
        Diameter of the blur disk at infinity, in pixels (>= 0); see
        :func:`coc_scale_from_lens` and :func:`coc_scale_for_max`.

    Returns
    -------
    coc : (H, W) float32 ndarray

    Examples
    --------
    >>> signed_coc_px(np.array([[1.0, 2.0, 4.0]]), 2.0, 10.0).tolist()
    [[-10.0, 0.0, 5.0]]
    """
    depth = _check_depth(depth)
    focus_distance = _positive(focus_distance, "focus_distance")
    if not (math.isfinite(coc_scale_px) and coc_scale_px >= 0):
        raise BadInputError(f"coc_scale_px must be finite and >= 0; got {coc_scale_px!r}.")
    coc = float(coc_scale_px) * (1.0 - focus_distance / depth.astype(np.float64))
    return coc.astype(np.float32)


def coc_scale_from_lens(focal_length_mm: float, f_number: float, focus_distance_m: float,
                        pixel_pitch_um: float) -> float:
    """``coc_scale_px`` of a real lens and sensor, for a depth map in metres.

    The thin-lens CoC diameter on the sensor is ``(f / N) * f / (S - f) * |1 - S / z|``
    (:func:`signed_coc_px`); divided by the pixel pitch it is in pixels.

    Parameters
    ----------
    focal_length_mm : float
        Focal length ``f`` (> 0).
    f_number : float
        ``N``, the focal length over the aperture diameter (> 0).
    focus_distance_m : float
        ``S``, beyond the focal length.
    pixel_pitch_um : float
        Distance between pixel centres on the sensor (> 0).

    Returns
    -------
    coc_scale_px : float

    Examples
    --------
    >>> round(coc_scale_from_lens(50, 2.0, 2.0, 4.0), 2)  # 50 mm f/2 at 2 m, 4 um pixels
    160.26
    """
    f = _positive(focal_length_mm, "focal_length_mm")
    n = _positive(f_number, "f_number")
    s = _positive(focus_distance_m, "focus_distance_m") * 1000.0
    pitch = _positive(pixel_pitch_um, "pixel_pitch_um") / 1000.0
    if s <= f:
        raise BadInputError(
            f"focus_distance_m ({focus_distance_m}) must be beyond the focal length "
            f"({focal_length_mm} mm): a thin lens cannot focus closer."
        )
    return (f / n) * f / (s - f) / pitch


def coc_scale_for_max(depth_min: float, depth_max: float, focus_distance: float,
                      max_coc_px: float) -> float:
    """``coc_scale_px`` that makes the larger CoC at the two depth extremes ``max_coc_px``.

    The user-facing parametrisation: "the most blurred pixel of the photo has a blur disk of
    ``max_coc_px`` pixels", whatever the depth unit and the focus distance.

    Examples
    --------
    >>> coc_scale_for_max(1.0, 4.0, 2.0, 10.0)  # |1 - 2/1| = 1 > |1 - 2/4| = 0.5
    10.0
    >>> coc_scale_for_max(3.0, 3.0, 3.0, 10.0)  # everything in focus: nothing to scale
    0.0
    """
    lo = _positive(depth_min, "depth_min")
    hi = _positive(depth_max, "depth_max")
    s = _positive(focus_distance, "focus_distance")
    if not (math.isfinite(max_coc_px) and max_coc_px >= 0):
        raise BadInputError(f"max_coc_px must be finite and >= 0; got {max_coc_px!r}.")
    worst = max(abs(1.0 - s / lo), abs(1.0 - s / hi))
    return 0.0 if worst == 0 else float(max_coc_px) / worst


# ---------------------------------------------------------------- aperture


def kernel_radius(diameter_px: float) -> int:
    """Half-side of the kernel holding a blur disk of ``diameter_px``.

    A pixel at integer offset m covers [m - 0.5, m + 0.5], so the disk reaches it when
    m - 0.5 < d / 2: a disk of up to one pixel's diameter stays in the centre pixel (a delta).

    Examples
    --------
    >>> [kernel_radius(d) for d in (0, 1, 1.5, 3, 3.2)]
    [0, 0, 1, 1, 2]
    """
    d = abs(float(diameter_px))
    return max(0, math.ceil(d / 2 + 0.5) - 1)


def aperture_kernel(diameter_px: float, *, blades: int = 0, rotation_rad: float = 0.0,
                    supersample: int = APERTURE_SUPERSAMPLE):
    """The aperture's image on the sensor: an anti-aliased disk or regular polygon, sum 1.

    Parameters
    ----------
    diameter_px : float
        Blur diameter (the disk's, or the diameter of the polygon's circumscribed circle).
        A negative value (a point in front of the focus plane) gives the kernel turned by
        180 degrees, as a real lens images its aperture inverted there; for a disk and for
        even blade counts that is the same kernel.
    blades : int
        0 for a round aperture, else the number of diaphragm blades (>= 3): a regular polygon
        with one vertex pointing up (-y) at ``rotation_rad`` = 0.
    rotation_rad : float
        Turn of the polygon, clockwise on the image (x right, y down).
    supersample : int
        Sub-samples per pixel side; a pixel's weight is the fraction of its sub-samples inside.

    Returns
    -------
    kernel : (k, k) float32 ndarray
        ``k = 2 * kernel_radius(diameter_px) + 1``; non-negative, sums to 1, centred.

    Examples
    --------
    >>> aperture_kernel(0.8).tolist()
    [[1.0]]
    >>> k = aperture_kernel(9.0, blades=6)
    >>> k.shape, round(float(k.sum()), 6)
    ((9, 9), 1.0)
    """
    blades = _check_blades(blades)
    if not math.isfinite(diameter_px):
        raise BadInputError(f"diameter_px must be finite; got {diameter_px!r}.")
    if not math.isfinite(rotation_rad):
        raise BadInputError(f"rotation_rad must be finite; got {rotation_rad!r}.")
    if int(supersample) < 1:
        raise BadInputError(f"supersample must be >= 1; got {supersample!r}.")
    r = kernel_radius(diameter_px)
    if r == 0:
        return np.ones((1, 1), np.float32)
    s = int(supersample)
    radius = abs(float(diameter_px)) / 2
    # Sub-sample offsets symmetric about each pixel's centre, so a mirror-symmetric shape
    # gives a mirror-symmetric kernel.
    sub = (np.arange(s) + 0.5) / s - 0.5
    axis = (np.arange(-r, r + 1)[:, None] + sub[None, :]).reshape(-1)
    y, x = axis[:, None], axis[None, :]
    if blades == 0:
        inside = x * x + y * y <= radius * radius
    else:
        turn = float(rotation_rad) + (math.pi if diameter_px < 0 else 0.0)
        # Sub-samples can sit exactly on an edge (a square's diagonal edges pass through the
        # sub-sample grid); the margin counts them in on every side alike, whatever the
        # rounding of cos and sin, so symmetric shapes give symmetric kernels.
        apothem = radius * math.cos(math.pi / blades) + 1e-9
        inside = np.ones((axis.size, axis.size), bool)
        for b in range(blades):
            # Outward normal of the edge between vertices b and b + 1 (vertex 0 points up).
            phi = turn - math.pi / 2 + (2 * b + 1) * math.pi / blades
            inside &= x * math.cos(phi) + y * math.sin(phi) <= apothem
    k = 2 * r + 1
    counts = inside.reshape(k, s, k, s).sum(axis=(1, 3), dtype=np.float64)
    return (counts / counts.sum()).astype(np.float32)


# ---------------------------------------------------------------- rendering


def coc_layers(coc_min: float, coc_max: float, *, bin_step_px: float = 1.0):
    """Signed CoC values of the layers covering [coc_min, coc_max], back (largest) first.

    Evenly spaced at most ``bin_step_px`` apart on each side of 0, with 0 itself a layer when
    the range crosses it (so pixels in focus stay exactly sharp), and a single layer when the
    range is one value (so a constant depth is one convolution).

    Examples
    --------
    >>> coc_layers(-2.0, 3.0).tolist()
    [3.0, 2.0, 1.0, 0.0, -1.0, -2.0]
    >>> coc_layers(4.5, 4.5).tolist()
    [4.5]
    """
    step = _positive(bin_step_px, "bin_step_px")
    lo, hi = float(coc_min), float(coc_max)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise BadInputError(f"CoC range must be finite with min <= max; got [{lo}, {hi}].")
    if lo == hi:
        return np.array([hi], np.float64)
    parts = [(lo, hi)] if lo >= 0 or hi <= 0 else [(lo, 0.0), (0.0, hi)]
    values = []
    for a, b in parts:
        n = max(1, math.ceil((b - a) / step - 1e-9))
        values.append(np.linspace(a, b, n + 1))
    return np.unique(np.concatenate(values))[::-1].copy()


def layer_weights(coc, layers, j: int):
    """Soft mask of layer ``j``: the hat function of piecewise-linear interpolation.

    Each pixel's weight is split between the two layers whose CoC values bracket its own,
    in proportion to the distance, so the masks sum to 1 and a smooth depth ramp gives a
    smooth blend of kernels rather than visible steps.

    Parameters
    ----------
    coc : (H, W) float32 ndarray
    layers : (L,) float64 ndarray
        Descending, from :func:`coc_layers`.
    j : int

    Returns
    -------
    weight : (H, W) float32 ndarray, in [0, 1]
    """
    c = coc.astype(np.float64)
    w = np.ones(c.shape, np.float64) if len(layers) == 1 else np.zeros(c.shape, np.float64)
    if len(layers) > 1:
        v = layers[j]
        if j > 0:  # the farther neighbour, above v
            up = layers[j - 1]
            w = np.where((c >= v) & (c <= up), (up - c) / (up - v), w)
        else:
            w = np.where(c >= v, 1.0, w)
        if j < len(layers) - 1:  # the nearer neighbour, below v
            down = layers[j + 1]
            w = np.where((c < v) & (c >= down), (c - down) / (v - down), w)
        else:
            w = np.where(c < v, 1.0, w)
    return w.astype(np.float32)


def defocus(image, coc, *, blades: int = 0, rotation_rad: float = 0.0, bin_step_px: float = 1.0,
            border: str = "reflect", device=None):
    """Spatially varying defocus of a linear image: layers of equal CoC, back to front.

    The CoC range is cut into layers (:func:`coc_layers`); each pixel belongs to the two
    nearest layers with soft weights (:func:`layer_weights`). Farthest first, each layer's
    premultiplied colour ``image * w`` and coverage ``w`` are blurred by the layer's aperture
    kernel and composited over what lies behind (``C = C * (1 - a) + c``,
    ``A = A * (1 - a) + a``), so a blurred near object spreads over, and hides, the
    background; the result is ``C / A``, which fills the background hidden behind near
    objects from its visible neighbours (the model and its limits: docs/algorithms.md).

    Parameters
    ----------
    image : (H, W, 3) float32 ndarray
        Linear light.
    coc : (H, W) float ndarray
        Signed CoC diameters in pixels (:func:`signed_coc_px`): positive behind the focus
        plane, negative in front; larger means farther.
    blades, rotation_rad : int, float
        Aperture shape (:func:`aperture_kernel`).
    bin_step_px : float
        Largest CoC difference between neighbouring layers (> 0); smaller is more exact and
        slower (one convolution per layer).
    border : {"reflect", "wrap"}
        How the image continues past its edges (as in :func:`blursynth.ops.convolve.convolve`).
    device : torch.device, str or None
        Where to convolve (None: the CPU, at one thread, so the bytes never depend on the
        thread count).

    Returns
    -------
    out : (H, W, 3) float32 ndarray

    Examples
    --------
    >>> img = np.random.default_rng(0).random((24, 32, 3), dtype=np.float32)
    >>> bool(np.array_equal(defocus(img, np.zeros((24, 32), np.float32)), img))
    True
    """
    import torch

    from .._threads import one_thread
    from .convolve import check_fits, convolve_padded, pad_image

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.float32:
        raise BadInputError(
            f"image must be (H, W, 3) float32 linear light; got {image.shape} {image.dtype}."
        )
    coc = np.asarray(coc)
    if coc.shape != image.shape[:2]:
        raise BadInputError(
            f"coc must be (H, W) = {image.shape[:2]} like the image; got shape {coc.shape}."
        )
    if not np.all(np.isfinite(coc)):
        raise BadInputError("coc has NaN or infinite values.")
    if border not in ("reflect", "wrap"):
        raise BadInputError(f"border must be reflect or wrap; got {border!r}.")
    blades = _check_blades(blades)
    coc = coc.astype(np.float32)
    h, w = coc.shape
    layers = coc_layers(float(coc.min()), float(coc.max()), bin_step_px=bin_step_px)
    kernels = [aperture_kernel(v, blades=blades, rotation_rad=rotation_rad) for v in layers]
    big = max(k.shape[0] for k in kernels)
    check_fits(h, w, big, border, what="image")
    dev = torch.device("cpu") if device is None else torch.device(device)
    radius = big // 2
    # Pad the image and the CoC map once: the weights of the padded CoC times the padded image
    # are the padded weighted planes, so every layer can cut its own window from them.
    pad_src = np.concatenate([image, coc[:, :, None]], axis=2).transpose(2, 0, 1)[None]
    padded = pad_image(torch.from_numpy(np.ascontiguousarray(pad_src)), radius, border)[0].numpy()
    img_p, coc_p = padded[:3], padded[3]
    acc_c = np.zeros((3, h, w), np.float32)
    acc_a = np.zeros((h, w), np.float32)
    with one_thread(dev.type):
        for j, kern in enumerate(kernels):
            # The layer's weight is > 0 exactly between its two neighbouring layers' CoCs; the
            # weights themselves are computed in the layer's window only (the full frame once
            # per layer would cost more than the convolutions).
            up = layers[j - 1] if j > 0 else np.inf
            down = layers[j + 1] if j + 1 < len(layers) else -np.inf
            support = (coc_p > down) & (coc_p < up)
            rows = np.flatnonzero(support.any(axis=1))
            cols = np.flatnonzero(support.any(axis=0))
            if rows.size == 0:
                continue
            r = kern.shape[0] // 2
            # Output pixels this layer can reach: its support grown by r, within the image.
            y0 = max(0, rows[0] - radius - r)
            y1 = min(h, rows[-1] - radius + r + 1)
            x0 = max(0, cols[0] - radius - r)
            x1 = min(w, cols[-1] - radius + r + 1)
            if y0 >= y1 or x0 >= x1:
                continue
            sy = slice(y0 + radius - r, y1 + radius + r)
            sx = slice(x0 + radius - r, x1 + radius + r)
            wgt = layer_weights(coc_p[sy, sx], layers, j)[None]
            planes = np.concatenate([img_p[:, sy, sx] * wgt, wgt])
            src = torch.from_numpy(np.ascontiguousarray(planes, np.float32))[None].to(dev)
            blurred = convolve_padded(src, torch.from_numpy(kern).to(dev))[0].cpu().numpy()
            a = blurred[3]
            acc_c[:, y0:y1, x0:x1] = acc_c[:, y0:y1, x0:x1] * (1 - a) + blurred[:3]
            acc_a[y0:y1, x0:x1] = acc_a[y0:y1, x0:x1] * (1 - a) + a
    # Every pixel keeps some coverage (each kernel's centre tap is > 0), so A > 0; the floor
    # only guards against underflow.
    out = acc_c / np.maximum(acc_a, np.float32(1e-12))
    return np.ascontiguousarray(out.transpose(1, 2, 0), np.float32)


# ---------------------------------------------------------------- random depth and lens


def draw_depth(shape, *, rng):
    """A random piecewise-planar depth map: a background plane and up to 4 nearer planar pieces.

    Planes are drawn in inverse depth, which is linear in the pixel coordinates for a plane of
    the scene seen by a pinhole camera: the background is a slanted plane (a ground or a
    wall, its nearer side mostly towards the bottom of the frame), and 0 to 4 star-shaped
    polygons are planar objects in front of it; each pixel takes the nearest piece covering it.
    Depths lie in [``DRAW_DEPTH_NEAR``, ``DRAW_DEPTH_FAR``] scene units.

    Parameters
    ----------
    shape : (int, int)
        (H, W).
    rng : numpy.random.Generator
        The pair's defocus/depth stream.

    Returns
    -------
    depth : (H, W) float32 ndarray
        Positive.
    params : dict
        JSON-ready; :func:`depth_from_params` rebuilds ``depth`` from it bit for bit.

    Examples
    --------
    >>> d, p = draw_depth((24, 32), rng=np.random.default_rng(0))
    >>> d.shape, bool(np.array_equal(depth_from_params(p), d))
    ((24, 32), True)
    """
    h, w = _check_shape(shape)
    lo, hi = 1.0 / DRAW_DEPTH_FAR, 1.0 / DRAW_DEPTH_NEAR
    # Background: far half of the range, gradient pointing down the frame within 60 degrees.
    d0 = float(rng.uniform(lo, lo + 0.5 * (hi - lo)))
    angle = float(rng.uniform(math.pi / 2 - math.pi / 3, math.pi / 2 + math.pi / 3))
    slope = float(rng.uniform(0.0, 1.0)) * 2 * min(d0 - lo, hi - d0)
    background = _plane(d0, slope, angle)
    pieces = []
    for _ in range(int(rng.integers(0, DRAW_PIECES_MAX + 1))):
        cx = float(rng.uniform(0, w - 1))
        cy = float(rng.uniform(0, h - 1))
        size = float(rng.uniform(0.1, 0.4)) * min(h, w)
        n = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * math.pi, n))
        radii = size * rng.uniform(0.5, 1.0, n)
        vertices = [[cx + float(rr * math.cos(t)), cy + float(rr * math.sin(t))]
                    for rr, t in zip(radii, angles)]
        behind = _plane_at(background, cx, cy, h, w)
        p0 = float(rng.uniform(behind, hi))
        # Objects face the camera more than the background: at most half its slant budget.
        p_slope = float(rng.uniform(0.0, 0.5)) * 2 * min(p0 - lo, hi - p0)
        p_angle = float(rng.uniform(0, 2 * math.pi))
        pieces.append({"vertices": vertices, **_plane(p0, p_slope, p_angle)})
    params = {"version": DEPTH_PARAMS_VERSION, "kind": "piecewise_planar", "shape": [h, w],
              "inverse_depth_range": [lo, hi], "background": background, "pieces": pieces}
    return depth_from_params(params), params


def depth_from_params(params):
    """Rebuild :func:`draw_depth`'s map from its params.

    Returns
    -------
    depth : (H, W) float32 ndarray
    """
    if params.get("kind") != "piecewise_planar" or params.get("version") != DEPTH_PARAMS_VERSION:
        raise BadInputError(
            f"depth params of kind {params.get('kind')!r} version {params.get('version')!r} "
            f"are not piecewise_planar version {DEPTH_PARAMS_VERSION}."
        )
    h, w = _check_shape(params["shape"])
    lo, hi = params["inverse_depth_range"]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    inv = _plane_values(params["background"], xx, yy, h, w)
    for piece in params["pieces"]:
        inside = _inside_polygon(np.asarray(piece["vertices"], np.float64), xx, yy)
        inv = np.where(inside, np.maximum(inv, _plane_values(piece, xx, yy, h, w)), inv)
    # Planes stay inside the range by construction; the clip only absorbs rounding.
    return (1.0 / np.clip(inv, lo, hi)).astype(np.float32)


def draw_defocus(depth, *, rng, max_coc_px, blades: int = 0):
    """Random lens settings for one pair: focus on a random pixel's depth, a blur size, a turn.

    The focus distance is the depth at a uniform random quantile of the map's pixels (as an
    autofocus on some part of the scene); ``coc_scale_px`` is set so that the larger CoC at
    the map's nearest and farthest depths is ``max_coc_px``.

    Parameters
    ----------
    depth : (H, W) float ndarray
        Positive.
    rng : numpy.random.Generator
    max_coc_px : float or (float, float)
        The largest blur diameter in pixels, or a range to draw it from uniformly.
    blades : int
        0 (round) or >= 3; with blades the polygon's turn is drawn uniformly.

    Returns
    -------
    params : dict
        ``focus_quantile``, ``focus_distance``, ``max_coc_px``, ``coc_scale_px``, ``blades``,
        ``rotation_rad``: everything :func:`defocus_from_params` needs.

    Examples
    --------
    >>> p = draw_defocus(np.array([[1.0, 4.0]]), rng=np.random.default_rng(0), max_coc_px=8.0)
    >>> p["max_coc_px"], sorted(p)[:2]
    (8.0, ['blades', 'coc_scale_px'])
    """
    depth = _check_depth(depth)
    blades = _check_blades(blades)
    lo_hi = (max_coc_px, max_coc_px) if np.isscalar(max_coc_px) else tuple(max_coc_px)
    ok = len(lo_hi) == 2 and all(math.isfinite(v) and v >= 0 for v in lo_hi)
    if not ok or lo_hi[0] > lo_hi[1]:
        raise BadInputError(f"max_coc_px must be >= 0 or a range lo <= hi; got {max_coc_px!r}.")
    q = float(rng.uniform(0.0, 1.0))
    m = float(rng.uniform(lo_hi[0], lo_hi[1]))
    rotation = float(rng.uniform(0.0, 2 * math.pi / blades)) if blades else 0.0
    focus = float(np.quantile(depth.astype(np.float64), q))
    scale = coc_scale_for_max(float(depth.min()), float(depth.max()), focus, m)
    return {"focus_quantile": q, "focus_distance": focus, "max_coc_px": m,
            "coc_scale_px": scale, "blades": blades, "rotation_rad": rotation}


def defocus_from_params(image, depth, params, *, bin_step_px: float = 1.0, border="reflect",
                        device=None):
    """Defocus ``image`` by ``depth`` with the lens ``params`` of :func:`draw_defocus`.

    Returns
    -------
    out : (H, W, 3) float32 ndarray
    """
    coc = signed_coc_px(depth, params["focus_distance"], params["coc_scale_px"])
    return defocus(image, coc, blades=params["blades"], rotation_rad=params["rotation_rad"],
                   bin_step_px=bin_step_px, border=border, device=device)


def resize_depth(depth, shape):
    """Resize a depth map with its photo, by nearest neighbour.

    Nearest keeps depth edges as sharp as the map's own: interpolating across an object's
    outline would invent depths that belong to neither side (and give them the wrong blur).

    Parameters
    ----------
    depth : (h, w) float32 ndarray
    shape : (int, int)
        The resized photo's (H, W).

    Returns
    -------
    depth : (H, W) float32 ndarray

    Examples
    --------
    >>> resize_depth(np.array([[1.0, 2.0]], np.float32), (2, 4)).tolist()
    [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]]
    """
    import cv2

    depth = _check_depth(depth).astype(np.float32)
    h, w = _check_shape(shape)
    if depth.shape == (h, w):
        return depth
    return cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)


# ---------------------------------------------------------------- helpers


def _plane(d0, slope, angle):
    return {"inverse_depth": d0, "gx": slope * math.cos(angle), "gy": slope * math.sin(angle)}


def _plane_values(plane, xx, yy, h, w):
    # Gradients are per frame side, so |gx| + |gy| <= 2 * margin keeps the plane in range.
    cx, cy = (w - 1) / 2, (h - 1) / 2
    return plane["inverse_depth"] + plane["gx"] * (xx - cx) / w + plane["gy"] * (yy - cy) / h


def _plane_at(plane, x, y, h, w):
    return float(_plane_values(plane, np.float64(x), np.float64(y), h, w))


def _inside_polygon(vertices, xx, yy):
    """Even-odd rule at the pixel centres (crossings of a ray towards +x)."""
    inside = np.zeros(xx.shape, bool)
    n = len(vertices)
    for i in range(n):
        xa, ya = vertices[i]
        xb, yb = vertices[(i + 1) % n]
        if ya == yb:
            continue
        crosses = (ya > yy) != (yb > yy)
        x_at = xa + (yy - ya) * (xb - xa) / (yb - ya)
        inside ^= crosses & (xx < x_at)
    return inside


def _check_depth(depth):
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.size == 0:
        raise BadInputError(f"depth must be a 2-D (H, W) map; got shape {depth.shape}.")
    if not np.issubdtype(depth.dtype, np.number):
        raise BadInputError(f"depth must be numeric; got dtype {depth.dtype}.")
    if not np.all(np.isfinite(depth)) or depth.min() <= 0:
        raise BadInputError("depth must be finite and > 0 everywhere.")
    return depth


def _check_shape(shape):
    return check_hw(shape, "shape")


def _check_blades(blades):
    if isinstance(blades, bool) or int(blades) != blades or not (blades == 0 or blades >= 3):
        raise BadInputError(
            f"blades must be 0 (round aperture) or an integer >= 3; got {blades!r}."
        )
    return int(blades)


def _positive(value, name):
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise BadInputError(f"{name} must be finite and > 0; got {value!r}.")
    return value
