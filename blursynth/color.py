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

from .errors import BadInputError

KINDS = ("gamma", "srgb", "none")
DEFAULT_CRF = "gamma:2.2"

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

    def encode_thresholds(self) -> np.ndarray:
        """The (255,) float32 decision levels of the uint8 encoder.

        ``thresholds[v - 1]`` is the linear value from which code ``v`` is
        chosen: ``decode((v - 0.5) / 255)``, rounded up to the next float32,
        so "count the thresholds <= x" rounds the encoded value to nearest
        (halves up) for every float32 ``x``.
        """
        return _encode_thresholds(self.kind, self.gamma)

    def encode_uint8(self, linear):
        """Float linear light to uint8 code values: clip to [0, 1], encode, round.

        The code of ``x`` is the number of :meth:`encode_thresholds` that are
        <= ``x``: round-to-nearest of ``255 * encode(x)`` computed with no
        power per pixel, and the same on every device.

        Parameters
        ----------
        linear : ndarray or torch.Tensor, float
            Any shape.

        Returns
        -------
        image : uint8, same shape (a tensor on the same device for tensors)

        Examples
        --------
        >>> CameraResponse.parse("gamma:2.2").encode_uint8(np.array([0.0, 0.218, 1.0]))
        array([  0, 128, 255], dtype=uint8)
        """
        thresholds = self.encode_thresholds()
        if _is_tensor(linear):
            import torch

            t = torch.tensor(thresholds, device=linear.device)
            x = linear.float() if linear.dtype != torch.float32 else linear
            return torch.bucketize(x.contiguous(), t, right=True).to(torch.uint8)
        x = np.asarray(linear, dtype=np.float32)
        return np.searchsorted(thresholds, x, side="right").astype(np.uint8)

    def encode_planes_uint8(self, planes) -> np.ndarray:
        """(C, H, W) float32 linear planes to an (H, W, C) uint8 image, on the CPU.

        Same codes as :meth:`encode_uint8` (tested equal), in one pass: a
        table indexed by ``sqrt(x)`` gives the code at the start of a bin too
        narrow to hold two decision levels, and one or two comparisons with
        the thresholds finish it. Used by the pair pipeline, where encoding
        is a sizeable part of the cost.

        Parameters
        ----------
        planes : (C, H, W) float32 ndarray or CPU tensor
            May be a strided view (e.g. a crop).

        Returns
        -------
        image : (H, W, C) uint8 ndarray
        """
        if _is_tensor(planes):
            planes = planes.detach().numpy()
        planes = np.asarray(planes)
        if planes.ndim != 3 or planes.dtype != np.float32:
            raise ValueError(
                f"planes must be float32 (C, H, W); got {planes.dtype} {planes.shape}."
            )
        c, h, w = planes.shape
        out = np.empty((h, w, c), np.uint8)
        start, nxt, fast = _encode_tables(self.kind, self.gamma)
        if fast:
            _encode_kernel()(planes, start, nxt, out)
        else:
            out[...] = np.moveaxis(self.encode_uint8(planes), 0, -1)
        return out


def parse_crf(text) -> CameraResponse:
    """Shorthand for :meth:`CameraResponse.parse`."""
    return CameraResponse.parse(text)


@lru_cache(maxsize=32)
def _decode_table(kind: str, gamma: float) -> np.ndarray:
    codes = np.arange(256, dtype=np.float64) / 255.0
    table = CameraResponse(kind, gamma).decode(codes).astype(np.float32)
    table.setflags(write=False)
    return table


# Bins of the encoder's start table, uniform in sqrt(linear): for gamma up to
# about 3, sRGB and none, two adjacent bins never hold two decision levels, so
# one comparison settles a code.
_SQRT_BINS = 4096


@lru_cache(maxsize=32)
def _encode_thresholds(kind: str, gamma: float) -> np.ndarray:
    levels = (np.arange(1, 256, dtype=np.float64) - 0.5) / 255.0
    exact = CameraResponse(kind, gamma).decode(levels)
    t = exact.astype(np.float32)
    low = t.astype(np.float64) < exact
    t[low] = np.nextafter(t[low], np.float32(np.inf))
    t.setflags(write=False)
    return t


@lru_cache(maxsize=32)
def _encode_tables(kind: str, gamma: float):
    """(start code of each sqrt-bin, the threshold above that code, whether the fast kernel
    applies)."""
    t = _encode_thresholds(kind, gamma)
    edges = (np.arange(_SQRT_BINS + 1, dtype=np.float64) / _SQRT_BINS) ** 2
    start = np.searchsorted(t, edges.astype(np.float32), side="right").astype(np.int32)
    padded = np.concatenate([[-np.inf], t, [np.inf]]).astype(np.float32)
    # The branch-free kernel needs every two adjacent bins to hold at most one
    # decision level; steeper curves use the exact search instead.
    fast = bool(np.all(start[2:] - start[:-2] <= 1))
    # The one threshold that can lie in (or just past) each bin, looked up by the bin index
    # itself rather than by the code, so the kernel's two look-ups do not wait on each other.
    nxt = padded[start.astype(np.int64) + 1]
    for table in (start, nxt):
        table.setflags(write=False)  # shared through the cache
    return start, nxt, fast


_ENCODE_KERNEL = None


def _encode_kernel():
    global _ENCODE_KERNEL
    if _ENCODE_KERNEL is None:
        import numba

        from ._numba import njit

        bins = np.float32(_SQRT_BINS)
        below_one = np.float32(np.nextafter(np.float32(1), np.float32(0)))

        @njit(parallel=True)
        def _encode_rows(planes, start, nxt, out):
            """out[y, x, c] = number of thresholds <= planes[c, y, x].

            ``start[i]`` is the code at the start of sqrt-bin i and ``nxt[i]``
            threshold ``start[i] + 1`` (+inf above the last). Any two adjacent
            bins hold at most one threshold (checked when the tables are
            built), and the float32 bin index can only fall one bin short at an
            edge, so the code is ``start[i]`` or one more: branch-free.
            """
            nc, h, w = planes.shape
            for y in numba.prange(h):
                # Two passes per row: the bin indices first (vectorizes), then
                # the table look-ups and the one comparison.
                idx = np.empty(w, np.int32)
                for c in range(nc):
                    row = planes[c, y]
                    for x in range(w):
                        v = min(max(row[x], np.float32(0)), below_one)
                        idx[x] = np.int32(np.sqrt(v) * bins)
                    for x in range(w):
                        v = min(max(row[x], np.float32(0)), below_one)
                        i = idx[x]
                        out[y, x, c] = start[i] + np.int32(v >= nxt[i])

        _ENCODE_KERNEL = _encode_rows
    return _ENCODE_KERNEL


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
