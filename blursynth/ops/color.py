"""Camera response curves: encoded pixel values to linear light and back.

Blur is a sum of light, so it has to happen on linear intensities: a camera
stores roughly ``linear ** (1 / 2.2)``. :class:`CameraResponse` holds one such
curve (``gamma:G``, ``srgb``, ``none``, the named curves of standards in :data:`NAMED`, an
S-shaped ``filmic`` curve, or a fitted ``poly`` response) and converts NumPy arrays or torch
tensors either way. uint8 input is decoded through a 256-entry table, which is
exact and ten times cheaper than a power per pixel.

:func:`parse_crf_option` also reads ``random`` / ``random:CURVE,CURVE,...``: a set of curves,
one drawn per pair by the commands that take ``--crf`` (:func:`draw_response`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import BadInputError

KINDS = ("gamma", "srgb", "none", "rec709", "smpte240m", "romm", "lstar", "hlg", "filmic", "poly")

#: Curves named by a standard, each with its source (docs/algorithms.md gives the formulas).
NAMED = {
    "rec709": "ITU-R BT.709-6 OETF (also BT.601, BT.2020 for 10-bit)",
    "smpte240m": "SMPTE ST 240M OETF",
    "romm": "ROMM RGB / ProPhoto (ISO 22028-2): 1.8 power with a linear toe",
    "lstar": "CIE 1976 lightness L*/100 (CIE 15:2004; the ECI RGB v2 curve)",
    "hlg": "Hybrid Log-Gamma OETF (ITU-R BT.2100-2)",
}
_ALIASES = {"bt709": "rec709", "bt.709": "rec709", "rec.709": "rec709", "prophoto": "romm",
            "240m": "smpte240m", "l*": "lstar"}

#: ``filmic`` with no numbers: 18% grey encodes to 0.455 (sRGB: 0.461), a toe below linear
#: 0.067 and a shoulder above it.
FILMIC_DEFAULT = (1.4, 2.0, 1.0)
_FILMIC_RANGES = ((0.1, 10.0), (-10.0, 10.0), (0.1, 10.0))  # a, b, c
POLY_MAX_DEGREE = 9

#: The set ``random`` draws from when it names none.
RANDOM_DEFAULT = ("srgb", "rec709", "gamma:2.2", "filmic")

_FORMS = ("gamma:G, srgb, none, rec709, smpte240m, romm, lstar, hlg, filmic[:A,B[,C]] or "
          "poly:C0,C1,...")

# Piecewise sRGB (IEC 61966-2-1) constants.
_SRGB_ENC_KNEE = 0.0031308
_SRGB_DEC_KNEE = 0.04045
_SRGB_SLOPE = 12.92
_SRGB_A = 0.055
_SRGB_EXP = 2.4


@dataclass(frozen=True)
class CameraResponse:
    """A camera response curve, applied elementwise to values in [0, 1].

    Every curve is strictly increasing on [0, 1] with ``decode(0) = 0`` and
    ``decode(1) = 1``; it is hashable (the 8-bit encoder's tables are cached per curve).

    Parameters
    ----------
    kind : str
        ``gamma``: linear = encoded ** gamma. ``srgb``: the piecewise sRGB
        curve. ``none``: identity (blur the encoded pixels, as DeblurGAN does).
        ``rec709``, ``smpte240m``, ``romm``, ``lstar``, ``hlg``: the curves of
        :data:`NAMED`. ``filmic``: Mann's comparametric S-curve with ``params``
        ``(a, b, c)``. ``poly``: a polynomial response with ``params`` its
        coefficients ``(c0, ..., cN)``.
    gamma : float
        Exponent of the ``gamma`` curve, in [1, 5]; ignored for other kinds.
    params : tuple of float
        The ``filmic`` and ``poly`` numbers; empty for other kinds.

    Examples
    --------
    >>> crf = CameraResponse.parse("gamma:2.2")
    >>> float(crf.decode(np.float32(0.5)))  # doctest: +ELLIPSIS
    0.2176...
    >>> crf.spec
    'gamma:2.2'
    >>> CameraResponse.parse("filmic").spec
    'filmic:1.4,2,1'
    """

    kind: str = "gamma"
    gamma: float = 2.2
    params: tuple = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise BadInputError(
                f"camera response must be one of {_FORMS}; got {self.kind!r}."
            )
        if self.kind == "gamma":
            g = float(self.gamma)
            if not (math.isfinite(g) and 1.0 <= g <= 5.0):
                raise BadInputError(
                    f"gamma must be a number in [1, 5]; got {self.gamma!r}. Use e.g. gamma:2.2."
                )
            object.__setattr__(self, "gamma", g)
        else:
            object.__setattr__(self, "gamma", 2.2)  # unused: equal curves compare and hash equal
        params = tuple(float(v) for v in self.params)
        if self.kind == "filmic":
            params = _check_filmic(params)
        elif self.kind == "poly":
            params = _check_poly(params)
        elif params:
            raise BadInputError(
                f"camera response {self.kind} takes no numbers; got {self.params!r}."
            )
        object.__setattr__(self, "params", params)

    @classmethod
    def parse(cls, text: str) -> "CameraResponse":
        """Read one curve: ``"gamma:2.2"``, ``"gamma"`` (2.2), ``"srgb"``, ``"none"``, a name of
        :data:`NAMED`, ``"filmic"`` / ``"filmic:A,B[,C]"`` or ``"poly:C0,C1,...,CN"``.

        Raises
        ------
        BadInputError
            For any other text (``random`` included: see :func:`parse_crf_option`), naming the
            accepted forms.
        """
        if isinstance(text, CameraResponse):
            return text
        raw = str(text).strip().lower()
        name, _, value = raw.partition(":")
        name = _ALIASES.get(name, name)
        if name == "gamma":
            if not value:
                return cls("gamma", 2.2)
            try:
                g = float(value)
            except ValueError:
                raise BadInputError(
                    f"camera response {text!r}: gamma must be a number, e.g. gamma:2.2."
                ) from None
            return cls("gamma", g)
        if name in ("srgb", "none", *NAMED) and not value:
            return cls(name)
        if name in ("filmic", "poly"):
            if not value and name == "filmic":
                return cls("filmic", params=FILMIC_DEFAULT)
            try:
                numbers = tuple(float(v) for v in value.split(","))
            except ValueError:
                example = "filmic:1.4,2,1" if name == "filmic" else "poly:0,1.6,-0.6"
                raise BadInputError(
                    f"camera response {text!r}: {name} takes numbers separated by commas, e.g. "
                    f"{example}."
                ) from None
            if name == "filmic" and len(numbers) == 2:
                numbers = numbers + (1.0,)
            return cls(name, params=numbers)
        if name == "random":
            raise BadInputError(
                f"camera response {text!r}: random draws one curve per pair, which this option "
                f"does not do; give one of {_FORMS}."
            )
        raise BadInputError(
            f"unknown camera response {text!r}; expected {_FORMS} (e.g. gamma:2.2)."
        )

    @property
    def spec(self) -> str:
        """Canonical text, as recorded in a pair's params (parsing it gives this curve back)."""
        if self.kind == "gamma":
            return f"gamma:{_num(self.gamma)}"
        if self.params:
            return f"{self.kind}:" + ",".join(_num(v) for v in self.params)
        return self.kind

    @property
    def is_identity(self) -> bool:
        return self.kind == "none"

    # -- float conversions (NumPy or torch) ---------------------------------
    def decode(self, encoded):
        """Encoded values in [0, 1] to linear light.

        Parameters
        ----------
        encoded : ndarray or torch.Tensor, float, values in [0, 1]
            Any shape. Values outside [0, 1] are clipped first.

        Returns
        -------
        linear : same type, shape and dtype as ``encoded``
        """
        x = _clip01(encoded)
        if self.kind == "none":
            return x
        if self.kind == "gamma":
            return x**self.gamma
        if self.kind == "srgb":
            lo = x / _SRGB_SLOPE
            hi = ((x + _SRGB_A) / (1 + _SRGB_A)) ** _SRGB_EXP
            return _where(x <= _SRGB_DEC_KNEE, lo, hi)
        return _via_float64(self._decode64, x)

    def encode(self, linear):
        """Linear light to encoded values in [0, 1] (clipped to [0, 1] first).

        Parameters
        ----------
        linear : ndarray or torch.Tensor, float
            Any shape.

        Returns
        -------
        encoded : same type, shape and dtype as ``linear``, values in [0, 1]
        """
        y = _clip01(linear)
        if self.kind == "none":
            return y
        if self.kind == "gamma":
            return y ** (1.0 / self.gamma)
        if self.kind == "srgb":
            lo = y * _SRGB_SLOPE
            hi = (1 + _SRGB_A) * y ** (1.0 / _SRGB_EXP) - _SRGB_A
            return _where(y <= _SRGB_ENC_KNEE, lo, hi)
        return _via_float64(self._encode64, y)

    # The curves beyond gamma, sRGB and none, in float64 on values already in [0, 1]; the
    # ends are pinned so that 0 and 1 map to exactly 0 and 1 whatever the rounding.
    def _decode64(self, x):
        if self.kind == "poly":
            out = _invert(self._encode64, x)
        else:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                out = _DECODERS[self.kind](x, *self.params)
        return _pin_ends(x, np.clip(out, 0.0, 1.0))

    def _encode64(self, y):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = _ENCODERS[self.kind](y, *self.params)
        return _pin_ends(y, np.clip(out, 0.0, 1.0))

    # -- uint8 edges ---------------------------------------------------------
    def decode_table(self) -> np.ndarray:
        """The (256,) float32 table mapping uint8 code values to linear light."""
        return _decode_table(self)

    def decode_uint8(self, image):
        """uint8 code values to float32 linear light through the 256-entry table.

        Parameters
        ----------
        image : ndarray or torch.Tensor, uint8
            Any shape (usually (H, W, 3) or (B, C, H, W)).

        Returns
        -------
        linear : float32, same shape (a tensor on the same device for tensors)

        Examples
        --------
        >>> CameraResponse.parse("none").decode_uint8(np.array([0, 255], np.uint8))
        array([0., 1.], dtype=float32)
        """
        table = self.decode_table()
        if _is_tensor(image):
            import torch

            if image.dtype != torch.uint8:
                raise ValueError(f"image must be uint8; got {image.dtype}.")
            return decode_codes(image, torch.tensor(table, device=image.device))
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ValueError(f"image must be uint8; got {image.dtype}.")
        return table[image]


def decode_codes(codes, table):
    """The torch look-up of :meth:`CameraResponse.decode_uint8`: uint8 ``codes`` through a
    256-entry ``table`` already on their device.

    Examples
    --------
    >>> import torch
    >>> table = torch.tensor(CameraResponse.parse("none").decode_table())
    >>> decode_codes(torch.tensor([0, 255], dtype=torch.uint8), table).tolist()
    [0.0, 1.0]
    """
    return table[codes.long()]


@lru_cache(maxsize=32)
def _decode_table(crf: CameraResponse) -> np.ndarray:
    codes = np.arange(256, dtype=np.float64) / 255.0
    table = crf.decode(codes).astype(np.float32)
    table.setflags(write=False)
    return table


def _is_tensor(x) -> bool:
    # Avoid importing torch for pure NumPy callers.
    return type(x).__module__.startswith("torch")


def _clip01(x):
    if _is_tensor(x):
        return x.clamp(0.0, 1.0)
    return np.clip(x, 0.0, 1.0)


def _where(cond, a, b):
    if _is_tensor(a):
        import torch

        return torch.where(cond, a, b)
    return np.where(cond, a, b)


def _num(v: float) -> str:
    """A number as short as ``%g`` where that reads back exactly, else its full repr."""
    short = f"{v:g}"
    return short if float(short) == v else repr(float(v))


def _via_float64(fn, x):
    """``fn`` (float64 NumPy, values in [0, 1]) on an array or tensor, in its type and dtype."""
    if _is_tensor(x):
        import torch

        out = fn(x.detach().cpu().double().numpy())
        return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)
    arr = np.asarray(x)
    out = fn(arr.astype(np.float64))
    dtype = arr.dtype if arr.dtype.kind == "f" else np.float64
    return out.astype(dtype) if isinstance(out, np.ndarray) else dtype.type(out)


def _pin_ends(x, out):
    return np.where(x <= 0.0, 0.0, np.where(x >= 1.0, 1.0, out))


def _invert(forward, y, iterations: int = 64):
    """The x in [0, 1] with ``forward(x) = y``, by bisection (``forward`` increasing)."""
    y = np.asarray(y, np.float64)
    lo, hi = np.zeros_like(y), np.ones_like(y)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = forward(mid) < y
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


# -- the curves beyond gamma, sRGB and none (float64, values in [0, 1]) ----------------------
# Rec. 709 and SMPTE 240M: a linear toe and a 0.45 power. Their published constants leave a
# small jump in the encoded value at the knee (0.081 -> 0.0812 for Rec. 709); decoding maps
# the jump's values to the knee, so the inverse stays monotonic (no 8-bit code falls in it).
def _power_toe_encode(alpha, knee, slope):
    def encode(y):
        return np.where(y < knee, slope * y, (1 + alpha) * y**0.45 - alpha)
    return encode


def _power_toe_decode(alpha, knee, slope):
    def decode(x):
        power = ((x + alpha) / (1 + alpha)) ** (1 / 0.45)
        return np.where(x < slope * knee, x / slope, np.maximum(power, knee))
    return decode


_ROMM_KNEE = 1 / 512  # ISO 22028-2: Et = 2**-9, where 16 * Et = Et ** (1 / 1.8) = 1/32
_LSTAR_EPS = 216 / 24389  # CIE: (6/29)**3
_LSTAR_KAPPA = 24389 / 27  # CIE: (29/3)**3
_HLG_A = 0.17883277  # ITU-R BT.2100-2, Table 5
_HLG_B = 1 - 4 * _HLG_A
_HLG_C = 0.5 - _HLG_A * math.log(4 * _HLG_A)


def _filmic_encode(y, a, b, c):
    e = math.exp(b)
    ya = y**a
    return ((e + 1) * ya / (e * ya + 1)) ** c


def _filmic_decode(x, a, b, c):
    e = math.exp(b)
    s = x ** (1 / c)
    return (s / (e * (1 - s) + 1)) ** (1 / a)


def _poly_encode(y, *coeffs):
    p = np.polynomial.Polynomial(coeffs)
    p0, p1 = p(0.0), p(1.0)
    return (p(y) - p0) / (p1 - p0)


_ENCODERS = {
    "rec709": _power_toe_encode(0.099, 0.018, 4.5),
    "smpte240m": _power_toe_encode(0.1115, 0.0228, 4.0),
    "romm": lambda y: np.where(y < _ROMM_KNEE, 16 * y, y ** (1 / 1.8)),
    "lstar": lambda y: np.where(y > _LSTAR_EPS, 1.16 * np.cbrt(y) - 0.16, _LSTAR_KAPPA * y / 100),
    "hlg": lambda y: np.where(y <= 1 / 12, np.sqrt(3 * y),
                              _HLG_A * np.log(np.maximum(12 * y - _HLG_B, 1e-300)) + _HLG_C),
    "filmic": _filmic_encode,
    "poly": _poly_encode,
}
_DECODERS = {
    "rec709": _power_toe_decode(0.099, 0.018, 4.5),
    "smpte240m": _power_toe_decode(0.1115, 0.0228, 4.0),
    "romm": lambda x: np.where(x < 16 * _ROMM_KNEE, x / 16, x**1.8),
    "lstar": lambda x: np.where(x > 0.08, ((x + 0.16) / 1.16) ** 3, 100 * x / _LSTAR_KAPPA),
    "hlg": lambda x: np.where(x <= 0.5, x * x / 3, (np.exp((x - _HLG_C) / _HLG_A) + _HLG_B) / 12),
    "filmic": _filmic_decode,
}


def _check_filmic(params: tuple) -> tuple:
    if len(params) != 3:
        raise BadInputError(
            f"filmic takes A,B or A,B,C (e.g. filmic:1.4,2,1); got {len(params)} numbers."
        )
    for name, v, (lo, hi) in zip("abc", params, _FILMIC_RANGES):
        if not (math.isfinite(v) and lo <= v <= hi):
            raise BadInputError(
                f"filmic {name} must be in [{lo:g}, {hi:g}]; got {v!r} (e.g. filmic:1.4,2,1)."
            )
    return params


def _check_poly(coeffs: tuple) -> tuple:
    """Coefficients ``c0 .. cN`` of a response increasing on [0, 1] (refused otherwise)."""
    example = "e.g. poly:0,1.6,-0.6"
    if not 2 <= len(coeffs) <= POLY_MAX_DEGREE + 1:
        raise BadInputError(
            f"poly takes 2 to {POLY_MAX_DEGREE + 1} coefficients C0,C1,...; got {len(coeffs)} "
            f"({example})."
        )
    if not all(math.isfinite(c) for c in coeffs):
        raise BadInputError(f"poly coefficients must be finite numbers; got {coeffs!r}.")
    p = np.polynomial.Polynomial(coeffs)
    dp = p.deriv()
    # Increasing on [0, 1]: the derivative is >= 0 on a fine grid and just either side of
    # each of its real roots inside the interval (where it could dip below zero unseen).
    points = [np.linspace(0.0, 1.0, 4097)]
    roots = dp.roots() if dp.degree() > 0 else np.array([])
    for r in roots[np.abs(roots.imag) < 1e-9].real:
        if 0.0 < r < 1.0:
            points.append(np.clip([r - 1e-7, r + 1e-7], 0.0, 1.0))
    slope = dp(np.concatenate(points))
    tolerance = 1e-12 * max(1.0, float(np.abs(slope).max()))  # rounding where the slope touches 0
    if not p(1.0) > p(0.0) or (slope < -tolerance).any():
        raise BadInputError(
            f"camera response poly:{','.join(_num(c) for c in coeffs)} is not increasing on "
            "[0, 1] (its slope goes negative); a camera response must be monotonic: check the "
            f"coefficients' order (C0 first) and signs ({example})."
        )
    return coeffs


# -- sets of curves: --crf random ---------------------------------------------------------------

def _split_curves(text: str) -> list[str]:
    """``"srgb,filmic:1.4,2,1,gamma:2.4"`` -> ``["srgb", "filmic:1.4,2,1", "gamma:2.4"]``: a
    comma-separated part that is a number belongs to the curve before it."""
    curves = []
    for part in (p.strip() for p in text.split(",")):
        try:
            float(part)
        except ValueError:
            curves.append(part)
            continue
        if not curves:
            raise BadInputError(
                f"--crf random:{text}: the set starts with a number; name the curves, e.g. "
                "random:srgb,rec709,filmic."
            )
        curves[-1] += "," + part
    return curves


def parse_crf_option(text) -> tuple:
    """``--crf`` as the commands read it: one curve, or a set to draw one from per pair.

    Parameters
    ----------
    text : str or CameraResponse
        One curve (:meth:`CameraResponse.parse`), ``random`` (the set
        :data:`RANDOM_DEFAULT`) or ``random:CURVE,CURVE,...``.

    Returns
    -------
    curves : tuple of CameraResponse
        One curve for a fixed response; the set (in the order given) for ``random``.

    Raises
    ------
    BadInputError
        An unknown curve, bad numbers, an empty set or a curve named twice.

    Examples
    --------
    >>> [c.spec for c in parse_crf_option("random:srgb,filmic:1.4,2,gamma:2.4")]
    ['srgb', 'filmic:1.4,2,1', 'gamma:2.4']
    """
    if isinstance(text, CameraResponse):
        return (text,)
    raw = str(text).strip()
    name, sep, rest = raw.partition(":")
    if name.strip().lower() != "random":
        return (CameraResponse.parse(raw),)
    if sep and not rest.strip():
        raise BadInputError(
            f"--crf {raw!r} names no curves; give random (the set {','.join(RANDOM_DEFAULT)}) "
            "or random:CURVE,CURVE,..."
        )
    names = _split_curves(rest) if sep else list(RANDOM_DEFAULT)
    curves = []
    for part in names:
        try:
            curve = CameraResponse.parse(part)
        except BadInputError as exc:
            raise BadInputError(f"--crf {raw!r}: {exc}") from None
        if curve in curves:
            raise BadInputError(
                f"--crf {raw!r} names {curve.spec} twice; list each curve once."
            )
        curves.append(curve)
    return tuple(curves)


def is_random_crf(text) -> bool:
    """Whether ``--crf`` text draws a curve per pair (``random`` or ``random:...``)."""
    return not isinstance(text, CameraResponse) and \
        str(text).strip().partition(":")[0].strip().lower() == "random"


def crf_option_spec(text) -> str:
    """Canonical text of ``--crf``: the curve's :attr:`~CameraResponse.spec`, or ``random:`` and
    the set's specs (as recorded in a recipe and a manifest).

    Examples
    --------
    >>> crf_option_spec("random"), crf_option_spec("GAMMA")
    ('random:srgb,rec709,gamma:2.2,filmic:1.4,2,1', 'gamma:2.2')
    """
    curves = parse_crf_option(text)
    if is_random_crf(text):
        return "random:" + ",".join(c.spec for c in curves)
    return curves[0].spec


def draw_response(curves, rng) -> CameraResponse:
    """One curve of a set, drawn with ``rng`` (one integer draw; none for a single curve)."""
    curves = tuple(curves)
    if len(curves) == 1:
        return curves[0]
    return curves[int(rng.integers(len(curves)))]


def describe_crf(text) -> dict:
    """The manifest's ``camera_response`` tag for a ``--crf`` value.

    Returns
    -------
    tag : dict
        ``crf`` (canonical text), ``curves`` (the specs a pair can have) and ``per_pair``
        (True when each pair draws one; its row's ``params.crf`` says which).
    """
    curves = parse_crf_option(text)
    return {"crf": crf_option_spec(text), "curves": [c.spec for c in curves],
            "per_pair": is_random_crf(text)}
