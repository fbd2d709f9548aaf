"""Keyed random streams inside Numba: xoshiro256++ words, uniforms and ziggurat normals.

Per-sample NumPy generators cost more than the model they feed when a sample is
a trajectory: building one takes ~25 us and NumPy's float32 normals ~19 ns each
on this machine, against 3 to 6 ns for the same draws inside a jitted loop. So
trajectories draw from a stream that lives in the loop's registers:

- the stream of ``(seed, index, stream)`` starts from a state made by hashing
  the key with the SplitMix64 finaliser (a pure function of the key, so a sample
  is the same whatever process or executor draws it);
- words come from xoshiro256++ (Blackman & Vigna), 2^256 - 1 period;
- uniforms in [0, 1) take the top 53 bits of a word;
- normals use a 256-layer ziggurat (Marsaglia & Tsang 2000), the layer from
  the low 8 bits of a word and the sign and a 53-bit abscissa from its top 54
  bits, so no bit serves twice. The tables are derived below from the density
  alone, by solving for the base layer's edge.

The state is a 4-tuple of uint64 that each draw returns advanced.
"""

from __future__ import annotations

import math

import numpy as np

from ._numba import njit

N_LAYERS = 256
_GOLDEN = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1
_TWO53 = float(2**53)


def _f(x: float) -> float:
    return math.exp(-0.5 * x * x)


def _finv(y: float) -> float:
    return math.sqrt(-2.0 * math.log(y))


def _layers(r: float, n: int = N_LAYERS):
    """Layer edges ``x_1 = r > x_2 > ...`` for base edge ``r``; returns (v, edges, top area error)."""
    v = r * _f(r) + math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))
    x = [r]
    for _ in range(n - 2):
        y = _f(x[-1]) + v / x[-1]
        if y >= 1.0:
            return v, x, -1.0  # r too small: the layers reach the top too early
        x.append(_finv(y))
    # The top layer [0, x_{n-1}] x [f(x_{n-1}), 1] must have area v too.
    return v, x, x[-1] * (1.0 - _f(x[-1])) - v


def ziggurat_tables(n: int = N_LAYERS):
    """Tables of the ``n``-layer ziggurat for the standard normal.

    Returns
    -------
    k : (n,) int64 ndarray
        Fast-path thresholds on the 53-bit integer abscissa.
    w : (n,) float64 ndarray
        Abscissa scale per layer (layer width / 2^53).
    f : (n + 1,) float64 ndarray
        Density ``exp(-x^2/2)`` at the layer edges (``f[n] = 1``, the top).
    edge : float
        ``r``, where the base layer meets the tail.
    """
    lo, hi = 2.0, 5.0
    for _ in range(64):  # bisection on r: the top layer's area error changes sign once
        mid = 0.5 * (lo + hi)
        _, _, err = _layers(mid, n)
        if err < 0:
            lo = mid
        else:
            hi = mid
    r = hi
    v, x, _ = _layers(r, n)
    # widths[0] is the base layer's virtual width (rectangle + tail of area v).
    widths = np.array([v / _f(r), *x], np.float64)  # (n,)
    inner = np.array([*x, 0.0], np.float64)  # inner[i]: the part of layer i under the curve
    k = np.array([math.floor(inner[i] / widths[i] * _TWO53) for i in range(n)], np.int64)
    w = widths / _TWO53
    # f[i]: the density at the bottom of layer i (0 for the base), f[n] = 1 the top.
    f = np.array([0.0, *[_f(xi) for xi in x], 1.0], np.float64)
    return k, w, f, r


ZIG_K, ZIG_W, ZIG_F, ZIG_R = ziggurat_tables()


@njit(inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(inline="always")
def _mix(z):
    """SplitMix64's finaliser: a bijection of uint64 with good avalanche."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def seed_state(seed, index, stream):
    """The stream state (a 4-tuple of uint64) of the key ``(seed, index, stream)``."""
    golden = np.uint64(_GOLDEN)
    h = _mix(np.uint64(seed) + golden)
    h = _mix(h ^ (np.uint64(index) + golden + golden))
    h = _mix(h ^ (np.uint64(stream) + golden * np.uint64(3)))
    return (
        _mix(h + golden),
        _mix(h + golden * np.uint64(2)),
        _mix(h + golden * np.uint64(3)),
        _mix(h + golden * np.uint64(4)),
    )


# The state travels as a tuple, returned with each draw (``x, st = normal(st)``):
# tuples stay in registers, where a state array would be stored and reloaded
# around every draw.


@njit(inline="always")
def next_u64(st):
    """One xoshiro256++ word and the advanced state."""
    s0, s1, s2, s3 = st
    result = _rotl(s0 + s3, 23) + s0
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return result, (s0, s1, s2, s3)


@njit(inline="always")
def uniform(st):
    """A float64 uniform on [0, 1) (53 random bits) and the advanced state."""
    word, st = next_u64(st)
    return float(np.int64(word >> np.uint64(11))) * (1.0 / 9007199254740992.0), st


@njit
def _normal_slow(st, word):
    """The ziggurat's rare path, for a word that missed its layer's inner rectangle."""
    k_tab, w_tab, f_tab, r = ZIG_K, ZIG_W, ZIG_F, ZIG_R
    while True:
        layer = int(word & np.uint64(N_LAYERS - 1))
        v = np.int64(word) >> np.int64(10)  # signed, 54 bits: sign and abscissa
        if abs(v) < k_tab[layer]:
            return v * w_tab[layer], st
        x = abs(v) * w_tab[layer]
        if layer == 0:
            # Tail beyond r (Marsaglia 1964): exact, by rejection from an exponential.
            while True:
                u1, st = uniform(st)
                u2, st = uniform(st)
                a = -math.log(1.0 - u1) / r
                b = -math.log(1.0 - u2)
                if b + b > a * a:
                    return (r + a if v >= 0 else -(r + a)), st
        # Wedge between the inner rectangle and the curve.
        u, st = uniform(st)
        y = f_tab[layer] + u * (f_tab[layer + 1] - f_tab[layer])
        if y < math.exp(-0.5 * x * x):
            return (x if v >= 0 else -x), st
        word, st = next_u64(st)  # rejected: start over with a fresh word


@njit(inline="always")
def normal(st):
    """A standard normal (float64) and the advanced state; one word in ~99% of draws.

    Bits 0-7 of the word pick the layer; bits 10-63, read as a signed number,
    give the sign and a 53-bit abscissa, so no bit serves twice.
    """
    word, st = next_u64(st)
    layer = int(word & np.uint64(N_LAYERS - 1))
    v = np.int64(word) >> np.int64(10)
    if abs(v) < ZIG_K[layer]:
        return v * ZIG_W[layer], st
    return _normal_slow(st, word)


@njit
def _fill(seed, index, stream, kind, out):
    st = seed_state(seed, index, stream)
    if kind == 0:
        for i in range(out.shape[0]):
            out[i], st = uniform(st)
    elif kind == 1:
        for i in range(out.shape[0]):
            out[i], st = normal(st)
    else:
        for i in range(out.shape[0]):
            word, st = next_u64(st)
            out[i] = float(np.int64(word >> np.uint64(11)))


def key_part(value, what: str) -> np.uint64:
    """One part of a stream key as uint64; raises ValueError outside [0, 2**64)."""
    value = int(value)
    if not 0 <= value <= _MASK:
        raise ValueError(f"{what} must be in [0, 2**64); got {value}.")
    return np.uint64(value)


def keyed_draws(seed: int, index: int, n: int, *, kind: str = "normal", stream: int = 0) -> np.ndarray:
    """The first ``n`` draws of the keyed stream ``(seed, index, stream)`` (for tests and checks).

    Parameters
    ----------
    seed, index, stream : int
        The key (non-negative, below 2^64).
    n : int
    kind : {'normal', 'uniform', 'bits53'}

    Returns
    -------
    draws : (n,) float64 ndarray

    Examples
    --------
    >>> a = keyed_draws(1, 2, 3)
    >>> bool((a == keyed_draws(1, 2, 3)).all()), bool((a != keyed_draws(1, 3, 3)).all())
    (True, True)
    """
    kinds = ("uniform", "normal", "bits53")
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}; got {kind!r}.")
    out = np.empty(int(n), np.float64)
    _fill(key_part(seed, "seed"), key_part(index, "index"), key_part(stream, "stream"), kinds.index(kind), out)
    return out
