"""Realistic degradations of a blurred image: saturation, sensor noise, JPEG.

Each is split into *drawing* its parameters (from a range, with the sample's
``rng``) and *applying* them, so a pair can be rebuilt from the numbers stored
in its params. Saturation and noise act on linear light; JPEG on the encoded
uint8 image.

- Saturation: scale linear intensity by a factor >= 1 before blurring and
  clip to [0, 1] after, so highlights that the sensor clipped in the sharp
  photo bloom into bright streaks, as in real blurred photos.
- Sensor noise: Poisson-Gaussian, ``y = x + sqrt(shot * x + read**2) * n``
  with ``n`` standard normal; the heteroscedastic Gaussian approximation of
  ``shot * Poisson(x / shot) + Normal(0, read**2)`` (Foi et al. 2008), exact in
  mean and variance and far cheaper to draw.
- JPEG: encode and decode at a quality in [1, 100].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import BadInputError

# Bounds a user range must stay in: beyond them the result is no longer a
# plausible photo (a shot scale of 0.1 is ~10 photons at full scale).
SATURATION_BOUNDS = (1.0, 16.0)
SHOT_BOUNDS = (0.0, 0.1)
READ_BOUNDS = (0.0, 0.2)
JPEG_BOUNDS = (1, 100)


@dataclass(frozen=True)
class Range:
    """A closed interval [lo, hi] to draw a value from uniformly (lo == hi: fixed).

    Examples
    --------
    >>> Range.parse("0.5-2", name="x", bounds=(0, 10))
    Range(lo=0.5, hi=2.0)
    >>> Range.parse("3", name="x", bounds=(0, 10)).draw(np.random.default_rng(0))
    3.0
    """

    lo: float
    hi: float

    @classmethod
    def parse(cls, text, *, name: str, bounds: tuple[float, float]) -> "Range":
        """Read ``"X"`` or ``"LO-HI"`` and check it lies within ``bounds``.

        Raises
        ------
        BadInputError
            On text that is not a number or range, ``lo > hi``, or values out
            of bounds.
        """
        raw = str(text).strip()
        parts = _split_range(raw)
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = None
        if not values or len(values) > 2 or not all(math.isfinite(v) for v in values):
            raise BadInputError(
                f"{name} must be a number or a range LO-HI; got {text!r}. "
                f"Example: {bounds[0]:g}-{bounds[1]:g}."
            )
        lo, hi = values[0], values[-1]
        if lo > hi:
            raise BadInputError(f"{name} range {text!r} has LO > HI; write it as {hi:g}-{lo:g}.")
        if lo < bounds[0] or hi > bounds[1]:
            raise BadInputError(
                f"{name} {text!r} is out of bounds; expected values in "
                f"[{bounds[0]:g}, {bounds[1]:g}]."
            )
        return cls(lo, hi)

    def draw(self, rng: np.random.Generator) -> float:
        """One value, uniform on [lo, hi]; always consumes one draw from ``rng``."""
        u = rng.random()
        return float(self.lo + (self.hi - self.lo) * u)

    @property
    def spec(self) -> str:
        return f"{self.lo:g}" if self.lo == self.hi else f"{self.lo:g}-{self.hi:g}"


@dataclass(frozen=True)
class Degradations:
    """Which degradations to apply, each as a range to draw from (None: off).

    Parameters
    ----------
    saturation : Range or None
        Linear-light scale factor, in [1, 16].
    shot : Range or None
        Shot-noise scale (variance per unit linear intensity), in [0, 0.1].
    read : Range or None
        Read-noise standard deviation (linear), in [0, 0.2].
    jpeg : Range or None
        JPEG quality, in [1, 100] (drawn, then rounded to an integer).

    Examples
    --------
    >>> d = Degradations.parse(saturation="1-2", noise="0.001-0.01,0.002", jpeg="70-95")
    >>> sorted(d.draw(np.random.default_rng(0)))
    ['jpeg_quality', 'read_noise', 'saturation', 'shot_noise']
    """

    saturation: Range | None = None
    shot: Range | None = None
    read: Range | None = None
    jpeg: Range | None = None

    @classmethod
    def parse(cls, *, saturation=None, noise=None, jpeg=None) -> "Degradations":
        """Build from option text: ``saturation="1-3"``, ``noise="SHOT[,READ]"``
        (each a number or LO-HI), ``jpeg="70-95"``; None, "" or "off" turn one off.
        """
        sat = None
        if not _is_off(saturation):
            sat = Range.parse(saturation, name="saturation", bounds=SATURATION_BOUNDS)
        shot = read = None
        if not _is_off(noise):
            parts = str(noise).split(",")
            if len(parts) > 2:
                raise BadInputError(
                    f"noise must be SHOT or SHOT,READ (each a number or LO-HI); got {noise!r}."
                )
            shot = Range.parse(parts[0], name="shot noise", bounds=SHOT_BOUNDS)
            if len(parts) == 2:
                read = Range.parse(parts[1], name="read noise", bounds=READ_BOUNDS)
        q = None
        if not _is_off(jpeg):
            q = Range.parse(jpeg, name="jpeg quality", bounds=JPEG_BOUNDS)
        return cls(sat, shot, read, q)

    @property
    def any(self) -> bool:
        return any(x is not None for x in (self.saturation, self.shot, self.read, self.jpeg))

    def describe(self) -> dict:
        """The ranges as text, for fingerprints and manifests."""
        return {
            "saturation": self.saturation.spec if self.saturation else None,
            "shot_noise": self.shot.spec if self.shot else None,
            "read_noise": self.read.spec if self.read else None,
            "jpeg_quality": self.jpeg.spec if self.jpeg else None,
        }

    def draw(self, rng: np.random.Generator) -> dict:
        """Draw one sample's values; keys only for the degradations that are on.

        Every range consumes exactly one draw whether on or off, so turning one
        degradation on never changes the values another one draws.
        """
        values = {}
        for key, rng_range in (
            ("saturation", self.saturation),
            ("shot_noise", self.shot),
            ("read_noise", self.read),
            ("jpeg_quality", self.jpeg),
        ):
            u = rng.random()
            if rng_range is not None:
                v = rng_range.lo + (rng_range.hi - rng_range.lo) * u
                values[key] = int(round(v)) if key == "jpeg_quality" else float(v)
        return values


def saturate(linear, factor: float):
    """Scale linear intensity by ``factor`` (>= 1); clipping happens after the blur.

    Parameters
    ----------
    linear : ndarray or torch.Tensor, float
    factor : float

    Returns
    -------
    scaled : same type, shape and dtype

    Examples
    --------
    >>> saturate(np.array([0.25, 0.75], np.float32), 2.0)
    array([0.5, 1.5], dtype=float32)
    """
    if not (math.isfinite(factor) and factor > 0):
        raise BadInputError(f"saturation factor must be > 0; got {factor!r}.")
    return linear * factor


def noise_field(shape, rng: np.random.Generator) -> np.ndarray:
    """Standard normal float32 noise of ``shape``, drawn from ``rng``.

    Drawn on the CPU so the same sample gets the same noise on any device.

    Examples
    --------
    >>> noise_field((3, 2, 2), np.random.default_rng(0)).dtype
    dtype('float32')
    """
    return rng.standard_normal(size=tuple(shape), dtype=np.float32)


def add_sensor_noise(linear, *, shot: float, read: float, rng=None, noise=None):
    """Add Poisson-Gaussian sensor noise to linear light in [0, 1].

    ``y = x + sqrt(shot * x + read**2) * n``, ``n`` standard normal: mean x and
    variance ``shot * x + read**2`` as for ``shot * Poisson(x / shot)`` plus
    Gaussian read noise. The result is not clipped (encoding clips).

    Parameters
    ----------
    linear : ndarray or torch.Tensor, float, values in [0, 1]
    shot : float
        Shot-noise scale, in [0, 0.1].
    read : float
        Read-noise standard deviation, in [0, 0.2].
    rng : numpy.random.Generator, optional
        Draws ``n`` (float32, on the CPU) when ``noise`` is not given.
    noise : ndarray or torch.Tensor, optional
        Pre-drawn standard normal field of ``linear``'s shape.

    Returns
    -------
    noisy : same type, shape and dtype as ``linear``

    Examples
    --------
    >>> x = np.full((64, 64), 0.5, np.float32)
    >>> y = add_sensor_noise(x, shot=0.01, read=0.0, rng=np.random.default_rng(0))
    >>> bool(abs(y.std() - np.sqrt(0.005)) < 0.005)
    True
    """
    if not (SHOT_BOUNDS[0] <= shot <= SHOT_BOUNDS[1]):
        raise BadInputError(f"shot noise must be in {list(SHOT_BOUNDS)}; got {shot!r}.")
    if not (READ_BOUNDS[0] <= read <= READ_BOUNDS[1]):
        raise BadInputError(f"read noise must be in {list(READ_BOUNDS)}; got {read!r}.")
    if noise is None:
        if rng is None:
            raise ValueError("pass rng= (a numpy Generator) or a pre-drawn noise= field.")
        noise = noise_field(linear.shape, np.random.default_rng(rng))
    if type(linear).__module__.startswith("torch"):
        import torch

        noise = torch.as_tensor(noise).to(linear)
        sigma = (linear.clamp(min=0) * shot + read * read).sqrt_()
        return linear + sigma * noise
    sigma = np.sqrt(np.maximum(linear, 0) * np.float32(shot) + np.float32(read * read))
    return (linear + sigma * noise).astype(linear.dtype, copy=False)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG at ``quality`` and decode again.

    Parameters
    ----------
    image : (H, W, 3) uint8 ndarray, RGB
    quality : int in [1, 100]

    Returns
    -------
    image : (H, W, 3) uint8 ndarray, RGB (4:2:0 chroma, as cameras write)

    Examples
    --------
    >>> x = np.full((16, 16, 3), 128, np.uint8)
    >>> bool(np.abs(jpeg_roundtrip(x, 90).astype(int) - 128).max() <= 1)
    True
    """
    import cv2

    q = int(quality)
    if not JPEG_BOUNDS[0] <= q <= JPEG_BOUNDS[1]:
        raise BadInputError(f"jpeg quality must be in [1, 100]; got {quality!r}.")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise BadInputError(f"image must be uint8 (H, W, 3); got {image.dtype} {image.shape}.")
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[:, :, ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:  # pragma: no cover - OpenCV failure
        raise RuntimeError("JPEG encoding failed")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])


def _is_off(value) -> bool:
    return value is None or str(value).strip().lower() in ("", "off", "none", "0")


def _split_range(raw: str) -> list[str]:
    # "LO-HI", allowing exponents such as 1e-3-5e-3 (a '-' after 'e' is a sign).
    for i in range(1, len(raw)):
        if raw[i] == "-" and raw[i - 1] not in "eE":
            return [raw[:i], raw[i + 1 :]]
    return [raw]
