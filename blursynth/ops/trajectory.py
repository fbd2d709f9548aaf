"""Random camera-shake trajectories: the Markov model of Boracchi & Foi as used by DeblurGAN.

A trajectory is ``(T, 2)`` float64 positions in pixels ``(x, y)``, starting at
the origin, with a fixed path length. Per trajectory we draw a centripetal
weight ``c ~ 0.7 U``, a big-shake probability ``p ~ 0.2 U``, a Gaussian shake
strength ``g ~ 10 U`` and a start angle ``phi ~ U(0, 2 pi)``; ``expl`` comes from
DeblurGAN's set unless given. With step ``s = L / (T - 1)`` and velocity ``v``
(complex), each step adds, with probability ``p * expl``, an impulse
``2 v exp(i (pi + U - 1/2))``, then ``expl (g (N + iN) - c x_t) s``; ``v`` is
rescaled to length ``s`` and ``x_{t+1} = x_t + v``.

Each trajectory draws from its own keyed stream (:mod:`blursynth._keyrng`),
inside the same jitted loop that integrates it: per-sample NumPy generators
and NumPy's normals cost several times the model's arithmetic. The big-shake
events are drawn as geometric gaps between events (exactly the same
distribution as one Bernoulli draw per step, at a fraction of the cost).
``tests/naive.py`` holds a plain-Python version of the streams and the model
that the fast path matches bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _keyrng as _kr
from .._numba import njit
from ..errors import SettingError

EXPL_CHOICES = (0.01, 0.009, 0.008, 0.007, 0.005, 0.003)
# Names how trajectories draw their numbers; it goes into the fingerprints of
# datasets made from trajectories, so that a change of streams is never
# mistaken for a resumable run of the same settings.
STREAM_VERSION = "keyed-xoshiro256++-ziggurat256-v1"


@dataclass(frozen=True)
class TrajectoryConfig:
    """Parameters of the trajectory model (DeblurGAN's values by default).

    Attributes
    ----------
    n_samples : int
        Positions per trajectory, T (>= 2).
    length_px : float
        Path length in pixels (> 0).
    expl : float or None
        Anxiety (shake intensity) in (0, 1]; None draws from ``expl_choices``.
    expl_choices : tuple of float
    centripetal_max, big_shake_max, gaussian_shake_max : float
        Upper bounds of the uniform draws of c, p and g.
    """

    n_samples: int = 2000
    length_px: float = 60.0
    expl: float | None = None
    expl_choices: tuple = EXPL_CHOICES
    centripetal_max: float = 0.7
    big_shake_max: float = 0.2
    gaussian_shake_max: float = 10.0

    def __post_init__(self):
        # SettingError is a ValueError that names the field (a recipe points at its key).
        if int(self.n_samples) != self.n_samples or self.n_samples < 2:
            raise SettingError(f"n_samples must be an integer >= 2; got {self.n_samples!r}.", "n_samples")
        if not (self.length_px > 0 and math.isfinite(self.length_px)):
            raise SettingError(f"length_px must be a positive number of pixels; got {self.length_px!r}.",
                               "length_px")
        expls = (self.expl,) if self.expl is not None else tuple(self.expl_choices)
        if not expls or not all(0 < e <= 1 for e in expls):
            raise SettingError(f"expl values must be in (0, 1]; got {expls!r}.",
                               "expl" if self.expl is not None else "expl_choices")
        for name in ("centripetal_max", "big_shake_max", "gaussian_shake_max"):
            if not getattr(self, name) >= 0:
                raise SettingError(f"{name} must be >= 0; got {getattr(self, name)!r}.", name)
        if self.big_shake_max > 1:
            raise SettingError(f"big_shake_max is a probability in [0, 1]; got {self.big_shake_max!r}.",
                               "big_shake_max")


PARAM_NAMES = ("expl", "centripetal", "prob_big_shake", "gaussian_shake", "angle_rad")


def longest_fitting_path(side: int, centre: str = "mass") -> int:
    """The longest path, in px, whose every PSF fits a ``side`` px canvas whatever its shape.

    A path never spans more than its length along x or along y. Centred on its bounding box, a
    PSF reaches at most half that span from its centre pixel; centred on its centre of mass, up
    to the whole span (the mass may sit at one end). The PSF holds ``(side - 1) / 2`` px either
    side of its centre pixel.

    Examples
    --------
    >>> longest_fitting_path(63), longest_fitting_path(63, "bbox")
    (31, 62)
    """
    half = (int(side) - 1) // 2
    return 2 * half if centre == "bbox" else half


def check_path_fits(config: TrajectoryConfig, side: int, *, side_option: str = "--canvas",
                    centre: str = "mass") -> None:
    """Refuse a path length at which every PSF must lose mass off a ``side`` px canvas.

    Every step of a trajectory moves exactly ``length_px / (n_samples - 1)`` px, so its first
    step alone spans at least that over sqrt(2) in x or in y. Where that is ``side`` or more, no
    PSF of two or more samples fits: the rasteriser would crop and renormalise every kernel at
    every exposure, a bank of clipped kernels nobody asked for. Shorter paths that overflow the
    canvas for many draws are left alone (which draws do depends on the draw); kernel banks
    record each kernel's clipped mass. The refusal suggests :func:`longest_fitting_path`, the
    length at which no kernel is clipped (PSFs centred as ``centre`` says).

    Raises
    ------
    SettingError
        Naming ``length_px``.

    Examples
    --------
    >>> check_path_fits(TrajectoryConfig(length_px=60.0), 63)
    >>> check_path_fits(TrajectoryConfig(length_px=1e9), 63)
    Traceback (most recent call last):
    ...
    blursynth.errors.SettingError: --length 1e+09 px over 2000 samples moves 5e+05 px per step, ...
    """
    steps = int(config.n_samples) - 1
    step_px = float(config.length_px) / steps
    if step_px / math.sqrt(2) >= side:
        fit = longest_fitting_path(side, centre)
        where = "bounding box" if centre == "bbox" else "centre of mass"
        raise SettingError(
            f"--length {config.length_px:g} px over {config.n_samples} samples moves "
            f"{step_px:.3g} px per step, more than the {side} px PSF side: every kernel would be clipped at every "
            f"exposure. Use a --length of at most {fit} px, which always fits a {side} px PSF centred on its "
            f"{where} (a path spans at most its length along x or y; longer paths, such as DeblurGAN's 60 px "
            f"on a 64 px canvas, clip some kernels), or a larger {side_option}.", "length_px")


def sample_trajectories(config: TrajectoryConfig, seed: int, indices, *, stream: int = 0):
    """Trajectories ``indices`` of run ``seed``: trajectory ``i`` is a pure function of ``(seed, i)``.

    Every number trajectory ``i`` consumes comes from the keyed stream
    ``(seed, i, stream)`` of :mod:`blursynth._keyrng`, in this order: five
    uniforms (centripetal, big-shake probability, shake strength, start angle,
    expl choice), then two normals per step, then the big-shake events (a
    geometric gap, then the event's angle uniform, until the path ends).

    Parameters
    ----------
    config : TrajectoryConfig
    seed : int
    indices : sequence of int
        Sample indices (non-negative).
    stream : int
        Extra key, to give one sample independent trajectories.

    Returns
    -------
    trajs : (N, T, 2) float64 ndarray
        Positions ``(x, y)`` in pixels, each starting at the origin.
    params : (N, 5) float64 ndarray
        expl, centripetal, prob_big_shake, gaussian_shake, angle_rad.
    n_big_shakes : (N,) int32 ndarray

    Examples
    --------
    >>> trajs, params, n_events = sample_trajectories(TrajectoryConfig(n_samples=50), 0, [3, 4])
    >>> trajs.shape, params.shape
    ((2, 50, 2), (2, 5))
    """
    idx = np.array([_kr.key_part(i, "index") for i in indices], np.uint64)
    n, t = idx.shape[0], config.n_samples
    trajs = np.empty((n, t, 2), np.float64)
    params = np.empty((n, 5), np.float64)
    n_events = np.zeros(n, np.int32)
    expl = float(config.expl) if config.expl is not None else 0.0
    choices = np.asarray(config.expl_choices, np.float64)
    _sample_many(
        _kr.key_part(seed, "seed"), idx, _kr.key_part(stream, "stream"), expl, choices,
        float(config.centripetal_max), float(config.big_shake_max), float(config.gaussian_shake_max),
        float(config.length_px) / (t - 1), trajs, params, n_events,
    )
    return trajs, params, n_events


LANES = 8


@njit
def _draw_lane(st, n_steps, expl_fixed, choices, cmax, pmax, gmax, normals, ev_steps, ev_u, params_row):
    """Draw one trajectory's numbers from stream state ``st``; returns its number of events."""
    u0, st = _kr.uniform(st)
    u1, st = _kr.uniform(st)
    u2, st = _kr.uniform(st)
    u3, st = _kr.uniform(st)
    u4, st = _kr.uniform(st)
    nc = choices.shape[0]
    expl = expl_fixed if expl_fixed > 0.0 else choices[min(int(u4 * nc), nc - 1)]
    params_row[0] = expl
    params_row[1] = cmax * u0
    params_row[2] = pmax * u1
    params_row[3] = gmax * u2
    params_row[4] = 2.0 * math.pi * u3
    for t in range(n_steps):
        a, st = _kr.normal(st)
        b, st = _kr.normal(st)
        normals[t, 0] = a
        normals[t, 1] = b
    # Big shakes: one Bernoulli(q) per step in the model; drawn as geometric gaps
    # between events (the same law) so the common case costs a handful of draws.
    q = params_row[2] * expl
    m = 0
    if q > 0.0:
        log_keep = math.log1p(-q)
        t = 0
        while t < n_steps:
            u, st = _kr.uniform(st)
            gap = math.floor(math.log(1.0 - u) / log_keep)  # steps without an event
            if t + gap >= n_steps:
                break
            t += int(gap)
            ua, st = _kr.uniform(st)
            ev_steps[m] = t
            ev_u[m] = ua
            m += 1
            t += 1
    return m


@njit
def _sample_many(seed, indices, stream, expl_fixed, choices, cmax, pmax, gmax, step, out, params, n_events):
    """Draw and integrate many trajectories, ``LANES`` at a time.

    A group's numbers are drawn into small buffers (they stay in cache), then
    the group is integrated together: one trajectory's update is a chain of
    dependent operations (a square root and a division every step), so a
    single one leaves the core mostly idle, while several independent chains
    overlap. Each lane does the same arithmetic in the same order whatever its
    group, so a trajectory's bytes do not depend on which others share it.
    """
    n = indices.shape[0]
    n_steps = out.shape[1] - 1
    normals = np.empty((LANES, n_steps, 2), np.float64)
    ev_steps = np.empty((LANES, n_steps), np.int64)
    ev_u = np.empty((LANES, n_steps), np.float64)
    counts = np.zeros(LANES, np.int64)
    x = np.zeros(LANES)
    y = np.zeros(LANES)
    vx = np.empty(LANES)
    vy = np.empty(LANES)
    k = np.zeros(LANES, np.int64)
    nxt = np.empty(LANES, np.int64)  # step of each lane's next big shake (n_steps: none left)
    a_expl = np.empty(LANES)
    a_c = np.empty(LANES)
    a_g = np.empty(LANES)
    for g in range(0, n, LANES):
        m = min(LANES, n - g)
        for L in range(m):
            j = g + L
            st = _kr.seed_state(seed, indices[j], stream)
            counts[L] = _draw_lane(
                st, n_steps, expl_fixed, choices, cmax, pmax, gmax, normals[L], ev_steps[L], ev_u[L], params[j]
            )
            n_events[j] = counts[L]
            a_expl[L] = params[j, 0]
            a_c[L] = params[j, 1]
            a_g[L] = params[j, 3]
            x[L] = 0.0
            y[L] = 0.0
            vx[L] = math.cos(params[j, 4]) * step
            vy[L] = math.sin(params[j, 4]) * step
            k[L] = 0
            nxt[L] = ev_steps[L, 0] if counts[L] > 0 else n_steps
            out[j, 0, 0] = 0.0
            out[j, 0, 1] = 0.0
        for t in range(n_steps):
            for L in range(m):
                ix = 0.0
                iy = 0.0
                if nxt[L] == t:
                    kk = k[L]
                    a = math.pi + ev_u[L, kk] - 0.5
                    ca = math.cos(a)
                    sa = math.sin(a)
                    ix = 2.0 * (vx[L] * ca - vy[L] * sa)
                    iy = 2.0 * (vx[L] * sa + vy[L] * ca)
                    k[L] = kk + 1
                    nxt[L] = ev_steps[L, kk + 1] if kk + 1 < counts[L] else n_steps
                expl = a_expl[L]
                nvx = vx[L] + (ix + expl * (a_g[L] * normals[L, t, 0] - a_c[L] * x[L]) * step)
                nvy = vy[L] + (iy + expl * (a_g[L] * normals[L, t, 1] - a_c[L] * y[L]) * step)
                norm = math.sqrt(nvx * nvx + nvy * nvy)
                if norm > 0.0:
                    scale = step / norm
                    nvx = nvx * scale
                    nvy = nvy * scale
                vx[L] = nvx
                vy[L] = nvy
                x[L] = x[L] + nvx
                y[L] = y[L] + nvy
                out[g + L, t + 1, 0] = x[L]
                out[g + L, t + 1, 1] = y[L]


def sample_trajectory(config: TrajectoryConfig | None = None, *, rng, **overrides) -> tuple[np.ndarray, dict]:
    """Draw one random camera-shake trajectory.

    Parameters
    ----------
    config : TrajectoryConfig, optional
        Model parameters; keyword ``overrides`` (e.g. ``length_px=30``) replace fields.
    rng : int, tuple of int, or numpy.random.Generator
        The key: ``seed``, ``(seed, index)`` or ``(seed, index, stream)`` give the
        trajectory :func:`sample_trajectories` makes for that key; a Generator
        gives a key drawn from it (one 63-bit integer).

    Returns
    -------
    traj : (T, 2) float64 ndarray
        Positions ``(x, y)`` in pixels; path length ``length_px``.
    params : dict
        The drawn parameters (expl, centripetal, prob_big_shake, gaussian_shake,
        angle_rad, n_big_shakes).

    Examples
    --------
    >>> traj, params = sample_trajectory(rng=(0, 5), n_samples=100, length_px=20.0)
    >>> traj.shape
    (100, 2)
    >>> bool(np.isclose(np.hypot(*np.diff(traj, axis=0).T).sum(), 20.0))
    True
    """
    config = config or TrajectoryConfig()
    if overrides:
        config = TrajectoryConfig(**{**config.__dict__, **overrides})
    if isinstance(rng, np.random.Generator):
        key = (int(rng.integers(2**63)), 0, 0)
    elif isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        key = (int(rng), 0, 0)
    elif isinstance(rng, tuple) and 1 <= len(rng) <= 3:
        key = (*map(int, rng), 0, 0)[:3]
    else:
        raise TypeError(f"rng must be an int, a (seed, index[, stream]) tuple or a numpy Generator; got {rng!r}.")
    trajs, params, n_events = sample_trajectories(config, key[0], [key[1]], stream=key[2])
    drawn = {name: float(v) for name, v in zip(PARAM_NAMES, params[0])}
    return trajs[0], {**drawn, "n_big_shakes": int(n_events[0])}
