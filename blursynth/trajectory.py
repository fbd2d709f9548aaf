"""Random camera-shake trajectories: the Markov model of Boracchi & Foi as used by DeblurGAN.

A trajectory is ``(T, 2)`` float64 positions in pixels ``(x, y)``, starting at
the origin, with a fixed path length. Per trajectory we draw a centripetal
weight ``c ~ 0.7 U``, a big-shake probability ``p ~ 0.2 U``, a Gaussian shake
strength ``g ~ 10 U`` and a start angle ``phi ~ U(0, 2 pi)``; ``expl`` comes from
DeblurGAN's set unless given. With step ``s = L / (T - 1)`` and velocity ``v``
(complex), each step adds, with probability ``p * expl``, an impulse
``2 v exp(i (pi + U - 1/2))``, then ``expl (g (N + iN) - c x_t) s``; ``v`` is
rescaled to length ``s`` and ``x_{t+1} = x_t + v``.

Sampling is split from the arithmetic (``draw_trajectory_numbers`` then a
jitted core) so that a trajectory can be replayed from its numbers and the
fast path can be checked against a plain-Python reference. The big-shake
events are drawn as geometric gaps between events (exactly the same
distribution as one Bernoulli draw per step, at a fraction of the cost).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._numba import njit

EXPL_CHOICES = (0.01, 0.009, 0.008, 0.007, 0.005, 0.003)


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
        if int(self.n_samples) != self.n_samples or self.n_samples < 2:
            raise ValueError(f"n_samples must be an integer >= 2; got {self.n_samples!r}.")
        if not (self.length_px > 0 and math.isfinite(self.length_px)):
            raise ValueError(f"length_px must be a positive number of pixels; got {self.length_px!r}.")
        expls = (self.expl,) if self.expl is not None else tuple(self.expl_choices)
        if not expls or not all(0 < e <= 1 for e in expls):
            raise ValueError(f"expl values must be in (0, 1]; got {expls!r}.")
        for name in ("centripetal_max", "big_shake_max", "gaussian_shake_max"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)!r}.")
        if self.big_shake_max > 1:
            raise ValueError(f"big_shake_max is a probability in [0, 1]; got {self.big_shake_max!r}.")


@dataclass(frozen=True)
class TrajectoryNumbers:
    """Every random number one trajectory consumes (replaying them replays it)."""

    expl: float
    centripetal: float
    prob_big_shake: float
    gaussian_shake: float
    angle_rad: float
    normals: np.ndarray  # (T - 1, 2) float32
    event_steps: np.ndarray  # (E,) int64, sorted steps with a big shake
    event_uniforms: np.ndarray  # (E,) float64

    def params(self) -> dict:
        return {
            "expl": self.expl,
            "centripetal": self.centripetal,
            "prob_big_shake": self.prob_big_shake,
            "gaussian_shake": self.gaussian_shake,
            "angle_rad": self.angle_rad,
            "n_big_shakes": int(self.event_steps.size),
        }


def _draw(config: TrajectoryConfig, rng: np.random.Generator, normals: np.ndarray):
    """Draw one trajectory's numbers in a fixed order, the normals into ``normals``."""
    u = rng.random(5)
    if config.expl is None:
        choices = config.expl_choices
        expl = float(choices[min(int(u[4] * len(choices)), len(choices) - 1)])
    else:
        expl = float(config.expl)
    centripetal = config.centripetal_max * float(u[0])
    prob_big_shake = config.big_shake_max * float(u[1])
    gaussian_shake = config.gaussian_shake_max * float(u[2])
    angle_rad = 2.0 * math.pi * float(u[3])
    n_steps = config.n_samples - 1
    rng.standard_normal(dtype=np.float32, out=normals)
    q = prob_big_shake * expl
    if q > 0:
        # Geometric gaps between events: the same law as one Bernoulli(q) per step.
        # Draw a batch big enough for almost every trajectory, topping up if not.
        batch = int(n_steps * q * 2) + 8
        gaps = rng.geometric(q, size=batch)
        while gaps.sum() < n_steps:
            gaps = np.concatenate([gaps, rng.geometric(q, size=batch)])
        event_steps = np.cumsum(gaps) - 1
        event_steps = event_steps[event_steps < n_steps].astype(np.int64)
    else:
        event_steps = np.zeros(0, np.int64)
    event_uniforms = rng.random(event_steps.size)
    return expl, centripetal, prob_big_shake, gaussian_shake, angle_rad, event_steps, event_uniforms


def draw_trajectory_numbers(config: TrajectoryConfig = TrajectoryConfig(), *, rng) -> TrajectoryNumbers:
    """Draw the random numbers of one trajectory, in a fixed order, from ``rng``.

    Parameters
    ----------
    config : TrajectoryConfig
    rng : numpy.random.Generator or int or None

    Returns
    -------
    numbers : TrajectoryNumbers
    """
    rng = np.random.default_rng(rng)
    normals = np.empty((config.n_samples - 1, 2), np.float32)
    expl, c, p, g, angle, steps, uniforms = _draw(config, rng, normals)
    return TrajectoryNumbers(expl, c, p, g, angle, normals, steps, uniforms)


def sample_trajectories(config: TrajectoryConfig, seed: int, indices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trajectories ``indices`` of run ``seed``, each from ``sample_rng(seed, index)``.

    The fast path for many trajectories: the numbers are drawn per sample in
    NumPy, the integration runs in one jitted call.

    Returns
    -------
    trajs : (N, T, 2) float64 ndarray
    params : (N, 5) float64 ndarray
        expl, centripetal, prob_big_shake, gaussian_shake, angle_rad.
    n_big_shakes : (N,) int32 ndarray
    """
    from ._rng import sample_rng

    n, t = len(indices), config.n_samples
    normals = np.empty((n, t - 1, 2), np.float32)
    params = np.empty((n, 5), np.float64)
    steps, uniforms, counts = [], [], np.zeros(n + 1, np.int64)
    for j, i in enumerate(indices):
        expl, c, p, g, angle, ev, evu = _draw(config, sample_rng(seed, int(i)), normals[j])
        params[j] = (expl, c, p, g, angle)
        steps.append(ev)
        uniforms.append(evu)
        counts[j + 1] = ev.size
    offsets = np.cumsum(counts)
    ev_steps = np.concatenate(steps) if n else np.zeros(0, np.int64)
    ev_uniforms = np.concatenate(uniforms) if n else np.zeros(0)
    trajs = np.empty((n, t, 2), np.float64)
    _trajectories_many(normals, ev_steps, ev_uniforms, offsets, params, float(config.length_px) / (t - 1), trajs)
    return trajs, params, np.diff(offsets).astype(np.int32)


@njit
def _trajectory_core(normals, event_steps, event_uniforms, expl, centripetal, gaussian_shake,
                     angle_rad, step, out):
    """Integrate one trajectory into ``out`` ((T, 2) float64) from its drawn numbers."""
    n_steps = normals.shape[0]
    x = 0.0
    y = 0.0
    vx = math.cos(angle_rad) * step
    vy = math.sin(angle_rad) * step
    out[0, 0] = 0.0
    out[0, 1] = 0.0
    k = 0
    n_events = event_steps.shape[0]
    for t in range(n_steps):
        ix = 0.0
        iy = 0.0
        if k < n_events and event_steps[k] == t:
            a = math.pi + event_uniforms[k] - 0.5
            ca = math.cos(a)
            sa = math.sin(a)
            ix = 2.0 * (vx * ca - vy * sa)
            iy = 2.0 * (vx * sa + vy * ca)
            k += 1
        vx = vx + (ix + expl * (gaussian_shake * float(normals[t, 0]) - centripetal * x) * step)
        vy = vy + (iy + expl * (gaussian_shake * float(normals[t, 1]) - centripetal * y) * step)
        norm = math.sqrt(vx * vx + vy * vy)
        if norm > 0.0:
            scale = step / norm
            vx = vx * scale
            vy = vy * scale
        x = x + vx
        y = y + vy
        out[t + 1, 0] = x
        out[t + 1, 1] = y


LANES = 8


@njit
def _trajectories_many(normals, ev_steps, ev_uniforms, offsets, params, step, out):
    """Integrate many trajectories, ``LANES`` at a time.

    One trajectory's update is a chain of dependent operations (a square root
    and a division every step), so a single one leaves the core mostly idle.
    Stepping several independent trajectories together overlaps their chains.
    Each lane does exactly the arithmetic of :func:`_trajectory_core`, in the
    same order, so the results are bit-identical to it.
    """
    n = normals.shape[0]
    n_steps = normals.shape[1]
    for g in range(0, n, LANES):
        m = min(LANES, n - g)
        x = np.zeros(LANES)
        y = np.zeros(LANES)
        vx = np.empty(LANES)
        vy = np.empty(LANES)
        k = np.empty(LANES, np.int64)
        for L in range(m):
            j = g + L
            vx[L] = math.cos(params[j, 4]) * step
            vy[L] = math.sin(params[j, 4]) * step
            k[L] = offsets[j]
            out[j, 0, 0] = 0.0
            out[j, 0, 1] = 0.0
        for t in range(n_steps):
            for L in range(m):
                j = g + L
                expl = params[j, 0]
                centripetal = params[j, 1]
                gaussian_shake = params[j, 3]
                ix = 0.0
                iy = 0.0
                kk = k[L]
                if kk < offsets[j + 1] and ev_steps[kk] == t:
                    a = math.pi + ev_uniforms[kk] - 0.5
                    ca = math.cos(a)
                    sa = math.sin(a)
                    ix = 2.0 * (vx[L] * ca - vy[L] * sa)
                    iy = 2.0 * (vx[L] * sa + vy[L] * ca)
                    k[L] = kk + 1
                nvx = vx[L] + (ix + expl * (gaussian_shake * float(normals[j, t, 0]) - centripetal * x[L]) * step)
                nvy = vy[L] + (iy + expl * (gaussian_shake * float(normals[j, t, 1]) - centripetal * y[L]) * step)
                norm = math.sqrt(nvx * nvx + nvy * nvy)
                if norm > 0.0:
                    scale = step / norm
                    nvx = nvx * scale
                    nvy = nvy * scale
                vx[L] = nvx
                vy[L] = nvy
                x[L] = x[L] + nvx
                y[L] = y[L] + nvy
                out[j, t + 1, 0] = x[L]
                out[j, t + 1, 1] = y[L]


def trajectory_from_numbers(numbers: TrajectoryNumbers, config: TrajectoryConfig = TrajectoryConfig()) -> np.ndarray:
    """Replay a trajectory from its drawn numbers.

    Returns
    -------
    traj : (T, 2) float64 ndarray
        Positions ``(x, y)`` in pixels, ``traj[0] == (0, 0)``.
    """
    out = np.empty((config.n_samples, 2), dtype=np.float64)
    step = float(config.length_px) / (config.n_samples - 1)
    _trajectory_core(
        np.ascontiguousarray(numbers.normals, dtype=np.float32),
        np.ascontiguousarray(numbers.event_steps, dtype=np.int64),
        np.ascontiguousarray(numbers.event_uniforms, dtype=np.float64),
        numbers.expl, numbers.centripetal, numbers.gaussian_shake, numbers.angle_rad, step, out,
    )
    return out


def sample_trajectory(config: TrajectoryConfig | None = None, *, rng, **overrides) -> tuple[np.ndarray, dict]:
    """Draw one random camera-shake trajectory.

    Parameters
    ----------
    config : TrajectoryConfig, optional
        Model parameters; keyword ``overrides`` (e.g. ``length_px=30``) replace fields.
    rng : numpy.random.Generator, int or None
        Source of randomness (use ``blursynth._rng.sample_rng(seed, index)``).

    Returns
    -------
    traj : (T, 2) float64 ndarray
        Positions ``(x, y)`` in pixels; path length ``length_px``.
    params : dict
        The drawn parameters (expl, centripetal, prob_big_shake, gaussian_shake,
        angle_rad, n_big_shakes).

    Examples
    --------
    >>> traj, params = sample_trajectory(rng=0, n_samples=100, length_px=20.0)
    >>> traj.shape
    (100, 2)
    >>> bool(np.isclose(np.hypot(*np.diff(traj, axis=0).T).sum(), 20.0))
    True
    """
    config = config or TrajectoryConfig()
    if overrides:
        config = TrajectoryConfig(**{**config.__dict__, **overrides})
    numbers = draw_trajectory_numbers(config, rng=rng)
    return trajectory_from_numbers(numbers, config), numbers.params()
