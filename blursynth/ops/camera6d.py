"""A 6-DoF camera-shake model: random pose paths, their homographies, and local PSF fields.

A pose is ``(rx, ry, rz, tx, ty, tz)``: a rotation vector in radians (about the camera's x axis,
pointing right, its y axis, pointing down, and its optical axis z) and a translation in units of
the scene depth. Pose ``(R, T)`` maps a point ``X`` of the reference camera's frame to
``R X + T`` in the shaken camera's frame. A fronto-parallel plane at depth ``d`` is then seen
through the homography ``G = K (R + T e3^T / d) K^-1`` (reference pixel -> shaken pixel), with
``K`` the pinhole intrinsics (focal length ``f`` in pixels, principal point at the frame's
centre). The renderer (:mod:`blursynth.ops.warp`) wants the inverse map, output pixel -> sharp
image position: ``H = G^-1``.

The path is a Markov random walk in the spirit of the planar model of
:mod:`blursynth.ops.trajectory` (Boracchi & Foi): a velocity of fixed step pulled back to the
start (centripetal weight ``c``), kicked by Gaussian shake (strength ``g``) and by rare big
shakes that reverse it, all scaled by an anxiety ``expl``; here in six dimensions, each axis
weighted by a drawn share, the whole path scaled so that its longest image path (over a 3x3
grid of frame points) is ``length_px`` pixels. docs/algorithms.md, "Scene blur: camera shake
with rotation", gives the model, the sources and which defaults are choices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._numba import njit
from .._rng import STREAM_CAMERA
from ..errors import BadInputError, SettingError
from .trajectory import EXPL_CHOICES
from .warp import check_hw

# Names the model's draws and arithmetic; datasets record it, so that a change is never
# mistaken for a resumable run of the same settings.
VERSION = "camera6d-v1"
AXES = ("rx", "ry", "rz", "tx", "ty", "tz")
REFERENCES = ("middle", "start", "mean")


@dataclass(frozen=True)
class PoseConfig:
    """Parameters of the 6-DoF shake model (every default is a choice: docs/algorithms.md).

    Attributes
    ----------
    n_samples : int
        Poses per path (>= 2), uniform in time over the sampled span.
    length_range : (float, float)
        The path's longest image length in pixels, drawn uniform in [lo, hi] per path.
    axis_max : 6 floats
        Upper bounds of each axis' drawn share (rx, ry, rz, tx, ty, tz), in pixel-equivalent
        units: pitch, yaw and the two lateral translations move the frame's centre, roll and
        the axial translation its corner. Rotation is weighted above translation, following
        Whyte et al. (IJCV 2012), who argue from geometry that shake blur is mostly rotation;
        the values are this project's choices, no published measurement (docs/algorithms.md).
    expl : float or None
        Anxiety in (0, 1]; None draws from ``expl_choices``.
    expl_choices : tuple of float
    centripetal_max, big_shake_max, gaussian_shake_max : float
        Upper bounds of the uniform draws of c, p and g (the planar model's values).
    """

    n_samples: int = 512
    length_range: tuple = (10.0, 60.0)
    axis_max: tuple = (1.0, 1.0, 0.5, 0.2, 0.2, 0.1)
    expl: float | None = None
    expl_choices: tuple = EXPL_CHOICES
    centripetal_max: float = 0.7
    big_shake_max: float = 0.2
    gaussian_shake_max: float = 10.0

    def __post_init__(self):
        if int(self.n_samples) != self.n_samples or self.n_samples < 2:
            raise SettingError(f"n_samples must be an integer >= 2; got {self.n_samples!r}.", "n_samples")
        lo, hi = (float(v) for v in self.length_range)
        if not (0.0 <= lo <= hi and math.isfinite(hi)):
            raise SettingError(f"length_range must be 0 <= lo <= hi pixels; got {self.length_range!r}.",
                               "length_range")
        if len(self.axis_max) != 6 or not all(v >= 0.0 and math.isfinite(v) for v in self.axis_max):
            raise SettingError(f"axis_max must be 6 non-negative numbers {AXES}; got {self.axis_max!r}.",
                               "axis_max")
        expls = (self.expl,) if self.expl is not None else tuple(self.expl_choices)
        if not expls or not all(0 < e <= 1 for e in expls):
            raise SettingError(f"expl values must be in (0, 1]; got {expls!r}.",
                               "expl" if self.expl is not None else "expl_choices")
        for name in ("centripetal_max", "big_shake_max", "gaussian_shake_max"):
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):
                raise SettingError(f"{name} must be a non-negative number; got {v!r}.", name)


# -- drawing a path ----------------------------------------------------------------------------
@njit
def _walk(v0, normals, kicks, kick_dirs, kick_angles, expl, c, g, out):
    """Integrate the 6-D walk: ``out[0] = 0``, unit path length in the isotropic space.

    Per step, with probability given by ``kicks`` (already decided), the velocity gets a big
    shake ``2 |v| (-v_hat cos a + w_hat sin a)`` (the planar model's reversal by ``pi + a``,
    ``w_hat`` a random direction orthogonal to ``v``), then ``expl (g N - c x) s``; it is
    rescaled to the step ``s`` and added to the position.
    """
    n_steps = normals.shape[0]
    s = 1.0 / n_steps
    v = v0 * s
    x = np.zeros(6)
    out[0, :] = 0.0
    for t in range(n_steps):
        imp = np.zeros(6)
        if kicks[t]:
            vn = math.sqrt((v * v).sum())
            w = kick_dirs[t].copy()
            w -= (w * v).sum() / (vn * vn) * v
            wn = math.sqrt((w * w).sum())
            a = kick_angles[t]
            if wn > 0.0:
                imp = 2.0 * vn * (-(v / vn) * math.cos(a) + (w / wn) * math.sin(a))
            else:
                imp = -2.0 * v * math.cos(a)
        nv = v + (imp + expl * (g * normals[t] - c * x) * s)
        norm = math.sqrt((nv * nv).sum())
        if norm > 0.0:
            nv = nv * (s / norm)
        v = nv
        x = x + v
        out[t + 1, :] = x


def _as_generator(rng):
    """A numpy Generator from a Generator or a key ``(seed, index[, stream])`` (stream 9 by default)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, tuple) and len(rng) in (2, 3):
        from .._rng import sample_rng

        key = (*rng, STREAM_CAMERA)[:3]
        return sample_rng(*(int(k) for k in key))
    raise TypeError(f"rng must be a numpy Generator or a (seed, index[, stream]) key; got {rng!r}.")


def _check_size(size):
    return check_hw(size, "size")


def _check_focal(focal_px):
    f = float(focal_px)
    if not (f > 0 and math.isfinite(f)):
        # Worded as the value: the ops layer knows no command line (the scene settings check
        # names --focal-px before a pair is drawn).
        raise SettingError(f"focal_px must be a positive number of pixels; got {focal_px!r}.", "focal_px")
    return f


def _unit_scales(focal_px, size):
    """Pose units per pixel-equivalent unit of each axis (1 px at the centre or at the corner)."""
    h, w = size
    corner = max(math.hypot((w - 1) / 2.0, (h - 1) / 2.0), 1.0)
    return np.array([1.0 / focal_px, 1.0 / focal_px, 1.0 / corner, 1.0 / focal_px, 1.0 / focal_px,
                     1.0 / corner])


def image_paths(poses, focal_px, size, points, *, depth=1.0, reference="start"):
    """Where each of ``points`` (sharp-image pixels) is seen at each pose: (T, N, 2) float64.

    The projected path of a scene point on the plane at ``depth``: ``G_t q`` with ``G_t`` the
    reference pixel -> shaken pixel homography (the inverse of :func:`pose_homographies`').
    """
    hms = pose_homographies(poses, focal_px, size, depth=depth, reference=reference)
    return _forward_points(hms, np.asarray(points, np.float64))


def _forward_points(hms, points):
    g = np.linalg.inv(hms)
    q = np.einsum("tij,nj->tni", g, np.c_[points, np.ones(len(points))])
    return q[..., :2] / q[..., 2:]


def _longest_image_path(poses, focal_px, size, points):
    paths = _forward_points(pose_homographies(poses, focal_px, size, reference="start"), points)
    return float(np.sqrt((np.diff(paths, axis=0) ** 2).sum(axis=2)).sum(axis=0).max())


def draw_pose_path(rng, config: PoseConfig | None = None, *, focal_px, size, **overrides):
    """Draw one 6-DoF camera-shake path.

    Every number comes from ``rng`` in this order: 11 uniforms (length, expl choice,
    centripetal, big-shake probability, shake strength, the six axis shares), 6 normals (the
    start direction), then per step 6 normals, one uniform (big shake or not), one uniform (its
    angle) and 6 normals (its direction): a fixed count for a given ``n_samples``.

    Parameters
    ----------
    rng : numpy.random.Generator or tuple
        The pair's generator (``sample_rng(seed, index, 9)``) or its key ``(seed, index[, stream])``.
    config : PoseConfig, optional
        Keyword ``overrides`` (e.g. ``n_samples=64``) replace its fields.
    focal_px : float
        Focal length in pixels (> 0).
    size : (H, W)
        The frame the path is scaled for.

    Returns
    -------
    poses : (T, 6) float64 ndarray
        ``rx, ry, rz`` (rad), ``tx, ty, tz`` (scene depths), uniform in time from the start of
        the sampled span to its end; ``poses[0]`` is zero.
    params : dict
        The drawn numbers: ``length_px``, ``expl``, ``centripetal``, ``prob_big_shake``,
        ``gaussian_shake``, ``axis_shares`` (6), ``n_big_shakes``.

    Examples
    --------
    >>> poses, params = draw_pose_path((0, 1), focal_px=500.0, size=(48, 64), n_samples=32)
    >>> poses.shape, sorted(params)[:3]
    ((32, 6), ['axis_shares', 'centripetal', 'expl'])
    """
    config = config or PoseConfig()
    if overrides:
        config = PoseConfig(**{**config.__dict__, **overrides})
    f = _check_focal(focal_px)
    size = _check_size(size)
    gen = _as_generator(rng)
    n = int(config.n_samples)
    steps = n - 1
    u = gen.random(11)
    normals0 = gen.standard_normal(6)
    normals = gen.standard_normal((steps, 6))
    kick_u = gen.random(steps)
    kick_angle_u = gen.random(steps)
    kick_dirs = gen.standard_normal((steps, 6))

    lo, hi = (float(v) for v in config.length_range)
    length = lo + (hi - lo) * u[0]
    choices = tuple(config.expl_choices)
    expl = float(config.expl) if config.expl is not None else float(choices[min(int(u[1] * len(choices)),
                                                                                 len(choices) - 1)])
    c = config.centripetal_max * u[2]
    p = config.big_shake_max * u[3]
    g = config.gaussian_shake_max * u[4]
    shares = np.asarray(config.axis_max, np.float64) * u[5:11]
    kicks = kick_u < p * expl
    nrm = math.sqrt(float((normals0 * normals0).sum()))
    v0 = normals0 / nrm if nrm > 0 else np.eye(6)[0]
    walk = np.empty((n, 6), np.float64)
    _walk(v0, normals, kicks, kick_dirs, kick_angle_u - 0.5, expl, c, g, walk)
    poses = walk * shares * _unit_scales(f, size)
    # Scale to the drawn image length. The projection is not linear in the pose, so the scale
    # is corrected until the length holds to 1e-9 (two or three passes at shake sizes; a few
    # more when the angles are large, as with a short focal length).
    points = _frame_points(size, 3)
    for _ in range(50):
        current = _longest_image_path(poses, f, size, points)
        if current <= 0.0 or abs(current - length) <= 1e-9 * length:
            break
        poses = poses * (length / current)
    params = {"length_px": float(length), "expl": expl, "centripetal": float(c), "prob_big_shake": float(p),
              "gaussian_shake": float(g), "axis_shares": [float(v) for v in shares],
              "n_big_shakes": int(kicks.sum())}
    return poses, params


# -- poses -> homographies ---------------------------------------------------------------------
def rotation_matrix(rotvec):
    """Rodrigues: the (3, 3) rotation of a rotation vector (radians); (..., 3) gives (..., 3, 3)."""
    r = np.asarray(rotvec, np.float64)
    theta = np.sqrt((r * r).sum(axis=-1))[..., None, None]
    zero = np.zeros(r.shape[:-1])
    kx = np.stack([np.stack([zero, -r[..., 2], r[..., 1]], -1), np.stack([r[..., 2], zero, -r[..., 0]], -1),
                   np.stack([-r[..., 1], r[..., 0], zero], -1)], -2)  # [r]x, unnormalised
    small = theta < 1e-8
    safe = np.where(small, 1.0, theta)
    # sin(t)/t and (1 - cos t)/t^2 as series below 1e-8 rad, where the closed forms lose digits.
    a = np.where(small, 1.0, np.sin(safe) / safe)
    b = np.where(small, 0.5, (1.0 - np.cos(safe)) / (safe * safe))
    return np.eye(3) + a * kx + b * (kx @ kx)


def intrinsics(focal_px, size):
    """(3, 3) pinhole intrinsics: focal ``f`` px, principal point at the frame's centre pixel."""
    h, w = _check_size(size)
    f = _check_focal(focal_px)
    return np.array([[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]])


def reference_pose(poses, reference="middle"):
    """The pose the sharp image is taken at: (6,) float64.

    ``middle``: the pose at the middle of the sampled span (linear between the two samples
    around it); ``start``: the first pose; ``mean``: the mean pose (for a translation-only path,
    the alignment of the uniform blur's mass-centred kernels).
    """
    poses = np.asarray(poses, np.float64)
    if reference == "start":
        return poses[0].copy()
    if reference == "mean":
        return poses.mean(axis=0)
    if reference == "middle":
        pos = 0.5 * (len(poses) - 1)
        i = int(math.floor(pos))
        j = min(i + 1, len(poses) - 1)
        a = pos - i
        return (1.0 - a) * poses[i] + a * poses[j]
    raise BadInputError(f"reference must be one of {', '.join(REFERENCES)}; got {reference!r}.")


def _check_poses(poses):
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 2 or poses.shape[1] != 6 or len(poses) < 1:
        raise BadInputError(f"poses must be (T, 6) [rx, ry, rz, tx, ty, tz]; got shape {poses.shape}.")
    if not np.isfinite(poses).all():
        raise BadInputError("poses must be finite.")
    return poses


def pose_homographies(poses, focal_px, size, *, depth=1.0, reference="middle"):
    """Sub-frame homographies of a pose path seeing a fronto-parallel plane: (T, 3, 3) float64.

    Each maps an output pixel of that pose's sub-frame to the position it sees in the sharp
    image (taken at the ``reference`` pose), ready for :func:`blursynth.ops.warp.render_subframes`;
    normalised so that ``H[2, 2] = 1``.

    Parameters
    ----------
    poses : (T, 6) float ndarray
    focal_px : float
    size : (H, W)
    depth : float
        The plane's depth, in the units of the poses' translations (> 0). A depth map is not a
        plane: :func:`depth_planes` and :func:`plane_layers` render it as planes.
    reference : {'middle', 'start', 'mean'}
        :func:`reference_pose`.

    Examples
    --------
    >>> poses = np.zeros((3, 6)); poses[:, 3] = [0.0, 0.01, 0.02]  # tx, in depths
    >>> hms = pose_homographies(poses, 100.0, (48, 64))
    >>> (hms[:, 0, 2].round(6) + 0.0).tolist()  # the middle pose sees the sharp image unshifted
    [1.0, 0.0, -1.0]
    """
    poses = _check_poses(poses)
    d = float(depth)
    if not (d > 0 and math.isfinite(d)):
        raise BadInputError(f"depth must be a positive number; got {depth!r}.")
    k = intrinsics(focal_px, size)
    k_inv = np.linalg.inv(k)
    ref = reference_pose(poses, reference)
    r_ref = rotation_matrix(ref[:3])
    r_rel = rotation_matrix(poses[:, :3]) @ r_ref.T  # (T, 3, 3)
    t_rel = poses[:, 3:] - r_rel @ ref[3:]
    plane = r_rel.copy()
    plane[:, :, 2] += t_rel / d  # R + T e3^T / d
    out = np.linalg.inv(k @ plane @ k_inv)
    out /= out[:, 2:3, 2:3]
    return out


def depth_planes(depth, poses, focal_px, size, *, reference="middle", max_error_px=0.5, max_planes=16):
    """Split a depth map into fronto-parallel planes fine enough for the path's parallax.

    A depth map is not one homography: only the translations' parallax depends on depth, a
    point at depth ``z`` moving by about ``f |t_xy| / z + r |t_z| / z`` pixels (``r`` the
    centre-to-corner distance). Planes spaced uniformly in inverse depth, each at its bin's
    pixels' middle inverse depth and each pixel moved with its plane's, err by at most
    ``max_error_px`` (no pixel is more than half a bin from its plane) unless ``max_planes``
    caps the count.

    Parameters
    ----------
    depth : (h, w) float ndarray
        Positive depths, in the units of the poses' translations (e.g. a map divided by its
        median, so that the translations are in units of the typical depth).
    poses : (T, 6) float ndarray
    focal_px : float
    size : (H, W)
        The frame the poses are projected in (for ``r``).
    reference : {'middle', 'start', 'mean'}
    max_error_px, max_planes
        The parallax error allowed, and the most planes.

    Returns
    -------
    plane_depths : (n,) float64 ndarray
        Far to near: each plane halfway between its pixels' least and greatest inverse depth
        (a bin holding one depth: that depth).
    labels : (h, w) int32 ndarray
        Each pixel's plane (0: the farthest).

    Examples
    --------
    >>> poses = np.zeros((3, 6)); poses[:, 3] = [-0.01, 0.0, 0.01]
    >>> depth = np.array([[1.0, 1.0], [4.0, 4.0]])
    >>> d, labels = depth_planes(depth, poses, 500.0, (48, 64))
    >>> len(d) > 1, labels.tolist()[1]
    (True, [0, 0])
    """
    z = np.asarray(depth, np.float64)
    if z.ndim != 2 or not (np.isfinite(z).all() and (z > 0).all()):
        raise BadInputError("depth must be an (h, w) map of positive, finite depths.")
    poses = _check_poses(poses)
    f = _check_focal(focal_px)
    h, w = _check_size(size)
    ref = reference_pose(poses, reference)
    r_rel = rotation_matrix(poses[:, :3]) @ rotation_matrix(ref[:3]).T
    t_rel = poses[:, 3:] - r_rel @ ref[3:]
    corner = math.hypot((w - 1) / 2.0, (h - 1) / 2.0)
    move = float((f * np.hypot(t_rel[:, 0], t_rel[:, 1]) + corner * np.abs(t_rel[:, 2])).max())
    inv = 1.0 / z
    lo, hi = float(inv.min()), float(inv.max())
    n = int(min(max(1, math.ceil(move * (hi - lo) / (2.0 * float(max_error_px)))), int(max_planes)))
    if hi == lo:  # a flat map: its own depth, bit for bit
        return np.array([float(z.flat[0])]), np.zeros(z.shape, np.int32)
    width = (hi - lo) / n
    labels = np.minimum(((inv - lo) / width).astype(np.int32), n - 1)
    # Each plane halfway between its pixels' least and greatest inverse depth: no pixel is more
    # than half a bin (move * width / 2 <= max_error_px) from it, and a bin holding one depth is
    # exact. (A plane at its pixels' mean could sit near a bin's edge and err twice the bound.)
    flat_labels, flat_inv = labels.ravel(), inv.ravel()
    least, most = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(least, flat_labels, flat_inv)
    np.maximum.at(most, flat_labels, flat_inv)
    empty = ~np.isfinite(least)  # bins with no pixel: any depth will do, their centre's
    least[empty] = most[empty] = (lo + (np.arange(n) + 0.5) * width)[empty]
    return 1.0 / ((least + most) / 2.0), labels


def plane_layers(image, labels, plane_homographies):
    """The background path and the layers that render a depth-planed scene (far to near).

    The background is the whole image on the farthest plane's path; each nearer plane is a
    :class:`blursynth.ops.warp.Layer` of the same image, its pixels' mask as alpha, on its own
    path, not moving on its own (its parallax is the camera's, so it stays out of the motion
    mask). Where a near plane uncovers what was behind it, the far plane's warp of the image
    shows (the hidden surface is unknown).

    Parameters
    ----------
    image : (h, w, 3) float32 ndarray
        Linear light, in the homographies' source coordinates.
    labels : (h, w) int ndarray
        :func:`depth_planes`' labels.
    plane_homographies : sequence of (T, 3, 3)
        Per plane (far to near), :func:`pose_homographies` at its depth.

    Returns
    -------
    background : (T, 3, 3) float64 ndarray
    layers : list of Layer
    """
    from .warp import Layer

    image = np.asarray(image, np.float32)
    labels = np.asarray(labels)
    if labels.shape != image.shape[:2]:
        raise BadInputError(f"labels must match the image's size {image.shape[:2]}; got {labels.shape}.")
    layers = [Layer(image, (labels == j).astype(np.float32), np.asarray(hms, np.float64), False)
              for j, hms in enumerate(plane_homographies) if j > 0 and (labels == j).any()]
    return np.asarray(plane_homographies[0], np.float64), layers


# -- sub-frames ---------------------------------------------------------------------------------
def _frame_points(size, n=9):
    """An n x n grid of frame pixels (x, y) from corner to corner, row-major: where the path's
    length (n = 3) and its largest step (n = 9) are measured."""
    h, w = size
    xs = np.linspace(0.0, w - 1.0, n)
    ys = np.linspace(0.0, h - 1.0, n)
    return np.array([(x, y) for y in ys for x in xs])


def max_step_px(homographies, size) -> float:
    """Largest move of a frame pixel between consecutive homographies (over a 9x9 grid with the
    corners; a homography's displacement varies smoothly, so its extremes are near these)."""
    hms = np.asarray(homographies, np.float64)
    if len(hms) < 2:
        return 0.0
    pts = _frame_points(_check_size(size))
    q = np.einsum("tij,nj->tni", hms, np.c_[pts, np.ones(len(pts))])
    q = q[..., :2] / q[..., 2:]
    return float(np.sqrt((np.diff(q, axis=0) ** 2).sum(axis=2)).max())


def subframes_needed(path, size, *, focal_px=None, max_step=1.0, depth=1.0):
    """Sub-frames enough that consecutive ones move every frame pixel by less than ``max_step`` px.

    Parameters
    ----------
    path : (T, 3, 3) homographies or (T, 6) poses (then ``focal_px`` is needed)
        Samples uniform in time over the sampled span.
    size : (H, W)
    max_step : float
        The bound in pixels (1: the issue's "under one pixel everywhere").

    Returns
    -------
    n : int
        At least 1. Resampling the path at ``n`` uniform times (:func:`subframe_poses`) spaces
        them ``(T - 1) / n`` sample steps apart at most, each step moving a pixel at most
        :func:`max_step_px`, so ``n > (T - 1) * step / max_step`` suffices.

    Examples
    --------
    >>> hms = np.repeat(np.eye(3)[None], 11, axis=0); hms[:, 0, 2] = np.linspace(0, 5, 11)
    >>> subframes_needed(hms, (8, 8))
    6
    """
    arr = np.asarray(path, np.float64)
    if arr.ndim == 2 and arr.shape[1] == 6:
        if focal_px is None:
            raise BadInputError("subframes_needed: poses need focal_px (or pass homographies).")
        arr = pose_homographies(arr, focal_px, size, depth=depth, reference="start")
    if arr.ndim != 3 or arr.shape[1:] != (3, 3):
        raise BadInputError(f"path must be (T, 3, 3) homographies or (T, 6) poses; got shape {arr.shape}.")
    step = max_step_px(arr, size)
    return max(1, int(math.floor((len(arr) - 1) * step / float(max_step))) + 1)


def subframe_poses(poses, n_subframes):
    """The path at ``n`` sub-frame times: (n, 6) float64.

    ``poses`` are samples at uniform times ``i / (T - 1)`` of the span; sub-frame ``t`` stands
    for the slice ``[t, t + 1] / n`` and takes the pose at its middle ``(t + 0.5) / n``
    (linear interpolation between samples), the convention of
    :func:`blursynth.ops.warp.subframe_weights`.
    """
    poses = _check_poses(poses)
    n = int(n_subframes)
    if n < 1:
        raise BadInputError(f"n_subframes must be >= 1; got {n_subframes!r}.")
    if len(poses) == 1:
        return np.repeat(poses, n, axis=0)
    times = (np.arange(n) + 0.5) / n * (len(poses) - 1)
    i = np.minimum(np.floor(times).astype(np.int64), len(poses) - 2)
    a = (times - i)[:, None]
    return (1.0 - a) * poses[i] + a * poses[i + 1]


# -- PSF fields ----------------------------------------------------------------------------------
def grid_points(size, grid=(5, 5)):
    """Pixel positions ``(x, y)`` of a PSF field's grid: the centres of a gy x gx tiling of the
    frame, row-major, (gy * gx, 2) float64."""
    h, w = _check_size(size)
    gy, gx = (int(v) for v in grid)
    if gy < 1 or gx < 1:
        raise BadInputError(f"grid must be positive (gy, gx); got {grid!r}.")
    xs = (np.arange(gx) + 0.5) * w / gx - 0.5
    ys = (np.arange(gy) + 0.5) * h / gy - 0.5
    return np.array([(x, y) for y in ys for x in xs])


def psf_field(homographies, size, grid=(5, 5), k=None, *, weights=None):
    """The local PSF at each point of a grid, rasterised from the projected path: (gy, gx, k, k).

    At grid point ``q`` the sharp image's content travels along ``G_t q`` (``G_t`` the inverse
    of sub-frame ``t``'s homography); the local PSF is that path's offsets ``G_t q - q``
    splatted bilinearly (:mod:`blursynth.ops.psf`'s splat) around the centre pixel, so it keeps
    the local misalignment (not re-centred on its mass): convolving the sharp image with it
    predicts the render near ``q``. Its sign is the uniform PSFs': a tap at ``(dx, dy)`` from the centre
    moves content by ``(+dx, +dy)``, and a translation-only path with mean-referenced
    homographies gives exactly :func:`blursynth.ops.psf.rasterize_psf`'s kernel.

    Parameters
    ----------
    homographies : (T, 3, 3) float ndarray
        The sub-frames' (equal weights unless ``weights``).
    size : (H, W)
    grid : (gy, gx)
        :func:`grid_points`.
    k : odd int or None
        Side; None takes the smallest odd side holding every point's path (at least 3).
        Mass falling outside a given ``k`` is dropped and each PSF renormalised.
    weights : (T,) float or None
        Per sub-frame weights (e.g. one row's rolling-shutter weights); None: equal.

    Returns
    -------
    field : (gy, gx, k, k) float32 ndarray
        Non-negative, each PSF summing to 1.

    Examples
    --------
    >>> hms = np.repeat(np.eye(3)[None], 5, axis=0); hms[:, 0, 2] = np.linspace(-2, 2, 5)
    >>> psf_field(hms, (48, 64), grid=(2, 3)).shape
    (2, 3, 5, 5)
    """
    from .psf import _splat

    hms = np.asarray(homographies, np.float64)
    if hms.ndim != 3 or hms.shape[1:] != (3, 3) or len(hms) < 1:
        raise BadInputError(f"homographies must be (T, 3, 3); got shape {hms.shape}.")
    gy, gx = (int(v) for v in grid)
    pts = grid_points(size, (gy, gx))
    offsets = _forward_points(hms, pts) - pts[None]  # (T, N, 2)
    if k is None:
        r = float(np.abs(offsets).max()) if offsets.size else 0.0
        k = max(3, 2 * int(math.ceil(r)) + 1)
    elif int(k) != k or k < 3 or k % 2 == 0:
        raise BadInputError(f"k must be an odd integer >= 3; got {k!r}.")
    k = int(k)
    c = float((k - 1) // 2)
    field = np.zeros((gy * gx, k, k), np.float32)
    acc = np.empty((k, k), np.float64)
    for j in range(len(pts)):
        acc[:] = 0.0
        path = np.ascontiguousarray(offsets[:, j])
        if weights is None:
            kept = _splat(path, len(path), c, c, acc)
        else:
            kept = _weighted_splat(path, np.asarray(weights, np.float64), c, acc)
        if kept > 1e-12:
            field[j] = acc / kept
        else:
            field[j, k // 2, k // 2] = 1.0  # the whole path left the canvas: keep its centre
    return field.reshape(gy, gx, k, k)


@njit
def _weighted_splat(path, weights, shift, out):
    """Bilinear splat of each offset with its own weight; returns the mass kept (of sum 1)."""
    k = out.shape[0]
    total = weights.sum()
    kept = 0.0
    for i in range(path.shape[0]):
        w = weights[i] / total
        if w == 0.0:
            continue
        px = path[i, 0] + shift
        py = path[i, 1] + shift
        fx0 = math.floor(px)
        fy0 = math.floor(py)
        fx = px - fx0
        fy = py - fy0
        x0 = int(fx0)
        y0 = int(fy0)
        for dy in range(2):
            yy = y0 + dy
            if yy < 0 or yy >= k:
                continue
            wy = fy if dy else 1.0 - fy
            for dx in range(2):
                xx = x0 + dx
                if xx < 0 or xx >= k:
                    continue
                a = w * wy * (fx if dx else 1.0 - fx)
                out[yy, xx] += a
                kept += a
    return kept
