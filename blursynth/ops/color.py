"""Camera response curves: encoded pixel values to linear light and back.

Blur is a sum of light, so it has to happen on linear intensities: a camera
stores roughly ``linear ** (1 / 2.2)``. :class:`CameraResponse` holds one such
curve (``gamma:G``, ``srgb`` or ``none``) and converts NumPy arrays or torch
tensors either way. uint8 input is decoded through a 256-entry table, which is
exact and ten times cheaper than a power per pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import BadInputError

KINDS = ("gamma", "srgb", "none")

# Piecewise sRGB (IEC 61966-2-1) constants.
_SRGB_ENC_KNEE = 0.0031308
_SRGB_DEC_KNEE = 0.04045
_SRGB_SLOPE = 12.92
_SRGB_A = 0.055
_SRGB_EXP = 2.4


@dataclass(frozen=True)
class CameraResponse:
    """A camera response curve, applied elementwise to values in [0, 1].

    Parameters
    ----------
    kind : {"gamma", "srgb", "none"}
        ``gamma``: linear = encoded ** gamma. ``srgb``: the piecewise sRGB
        curve. ``none``: identity (blur the encoded pixels, as DeblurGAN does).
    gamma : float
        Exponent of the ``gamma`` curve, in [1, 5]; ignored for other kinds.

    Examples
    --------
    >>> crf = CameraResponse.parse("gamma:2.2")
    >>> float(crf.decode(np.float32(0.5)))  # doctest: +ELLIPSIS
    0.2176...
    >>> crf.spec
    'gamma:2.2'
    """

    kind: str = "gamma"
    gamma: float = 2.2

    def __post_init__(self):
        if self.kind not in KINDS:
            raise BadInputError(
                f"camera response must be one of gamma:G, srgb, none; got {self.kind!r}."
            )
        if self.kind == "gamma":
            g = float(self.gamma)
            if not (math.isfinite(g) and 1.0 <= g <= 5.0):
                raise BadInputError(
                    f"gamma must be a number in [1, 5]; got {self.gamma!r}. Use e.g. gamma:2.2."
                )
            object.__setattr__(self, "gamma", g)

    @classmethod
    def parse(cls, text: str) -> "CameraResponse":
        """Read ``"gamma:2.2"``, ``"gamma"`` (2.2), ``"srgb"`` or ``"none"``.

        Raises
        ------
        BadInputError
            For any other text, naming the accepted forms.
        """
        if isinstance(text, CameraResponse):
            return text
        raw = str(text).strip().lower()
        name, _, value = raw.partition(":")
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
        if name in ("srgb", "none") and not value:
            return cls(name)
        raise BadInputError(
            f"unknown camera response {text!r}; expected gamma:G (e.g. gamma:2.2), srgb or none."
        )

    @property
    def spec(self) -> str:
        """Canonical text form, as recorded in a pair's params."""
        if self.kind == "gamma":
            return f"gamma:{self.gamma:g}"
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
        lo = x / _SRGB_SLOPE
        hi = ((x + _SRGB_A) / (1 + _SRGB_A)) ** _SRGB_EXP
        return _where(x <= _SRGB_DEC_KNEE, lo, hi)

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
        lo = y * _SRGB_SLOPE
        hi = (1 + _SRGB_A) * y ** (1.0 / _SRGB_EXP) - _SRGB_A
        return _where(y <= _SRGB_ENC_KNEE, lo, hi)

    # -- uint8 edges ---------------------------------------------------------
    def decode_table(self) -> np.ndarray:
        """The (256,) float32 table mapping uint8 code values to linear light."""
        return _decode_table(self.kind, self.gamma)

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
            return torch.tensor(table, device=image.device)[image.long()]
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ValueError(f"image must be uint8; got {image.dtype}.")
        return table[image]


@lru_cache(maxsize=32)
def _decode_table(kind: str, gamma: float) -> np.ndarray:
    codes = np.arange(256, dtype=np.float64) / 255.0
    table = CameraResponse(kind, gamma).decode(codes).astype(np.float32)
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
