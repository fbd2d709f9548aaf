"""Realistic degradations of a blurred image: highlights, exposure gain, sensor noise, JPEG.

Each is split into *drawing* its parameters (from a range, with the sample's
``rng``) and *applying* them, so a pair can be rebuilt from the numbers stored
in its params. Saturation and noise act on linear light; JPEG on the encoded
uint8 image.

- Highlights: pixels near clipping in the sharp photo (the brightest channel's
  linear value above a threshold) are boosted by a drawn factor before blurring
  and the blurred image is clipped to [0, 1] after, so light sources the sensor
  clipped streak as in real blurred photos; the sharp target is the photo as it
  was (its boosted highlights clip back to what the photo had). Optionally small
  bright regions (8-connected, at most N pixels above a lower threshold: lamps,
  bulbs) are boosted too, from that lower threshold on.
- Exposure gain (``--exposure-gain``; ``--saturation`` is its old name): scale
  the whole image's linear intensity, the sharp target too, by a factor >= 1
  before blurring and clip after: an over-exposed pair, not a highlight model.
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
EXPOSURE_GAIN_BOUNDS = SATURATION_BOUNDS
HIGHLIGHT_BOUNDS = (1.0, 64.0)
# Linear value of the brightest channel from which a pixel counts as a highlight (gamma 2.2:
# 0.9 is code 243 of 255); the boost ramps from 1 there to the full factor at 1.0.
HIGHLIGHT_THRESHOLD_BOUNDS = (0.5, 0.999)
HIGHLIGHT_THRESHOLD = 0.9
# Small bright regions (--highlight-regions): an 8-connected region of pixels whose brightest
# channel is at least the region threshold (linear; 0.5 is code 186 under gamma 2.2), with an area
# of at most MAX_AREA pixels of the pair's window, is boosted from that lower threshold on.
HIGHLIGHT_REGION_AREA_BOUNDS = (1, 1_000_000)
HIGHLIGHT_REGION_THRESHOLD_BOUNDS = (0.05, 0.99)
HIGHLIGHT_REGION_THRESHOLD = 0.5
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
            # The hint must itself be accepted: the swapped range only when it is in bounds.
            fix = f"write it as {hi:g}-{lo:g}" if bounds[0] <= hi and lo <= bounds[1] else \
                f"write it as LO-HI with values in [{bounds[0]:g}, {bounds[1]:g}]"
            raise BadInputError(f"{name} range {text!r} has LO > HI; {fix}.")
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
        Linear-light scale factor of the whole image, in [1, 16] (the old name of
        ``exposure_gain``; recorded as ``saturation``).
    shot : Range or None
        Shot-noise scale (variance per unit linear intensity), in [0, 0.1].
    read : Range or None
        Read-noise standard deviation (linear), in [0, 0.2].
    jpeg : Range or None
        JPEG quality, in [1, 100] (drawn, then rounded to an integer).
    exposure_gain : Range or None
        ``saturation`` under the name that says what it is, recorded as
        ``exposure_gain`` (it draws the same number; give one of the two).
    highlights : Range or None
        Boost of the sharp photo's near-clipped pixels before blurring, in [1, 64].
    highlight_threshold : float
        Linear value of a pixel's brightest channel where the boost starts.
    highlight_regions : int or None
        Also boost small bright regions: 8-connected regions of pixels whose brightest
        channel is at least ``highlight_region_threshold``, of at most this many pixels,
        are boosted from that lower threshold on (None: off).
    highlight_region_threshold : float
        Linear value where a small region's boost starts (below ``highlight_threshold``).

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
    exposure_gain: Range | None = None
    highlights: Range | None = None
    highlight_threshold: float = HIGHLIGHT_THRESHOLD
    highlight_regions: int | None = None
    highlight_region_threshold: float = HIGHLIGHT_REGION_THRESHOLD

    @classmethod
    def parse(cls, *, saturation=None, noise=None, jpeg=None, exposure_gain=None,
              highlights=None, highlight_threshold=HIGHLIGHT_THRESHOLD, highlight_regions=None,
              highlight_region_threshold=HIGHLIGHT_REGION_THRESHOLD) -> "Degradations":
        """Build from option text: ``saturation="1-3"``, ``noise="SHOT[,READ]"``
        (each a number or LO-HI), ``jpeg="70-95"``, ``exposure_gain="1-2"``,
        ``highlights="2-8"``, ``highlight_regions=64`` (a number of pixels); None, ""
        or "off" turn one off.
        """
        sat = gain = None
        if not _is_off(saturation):
            sat = Range.parse(saturation, name="saturation", bounds=SATURATION_BOUNDS)
        if not _is_off(exposure_gain):
            gain = Range.parse(exposure_gain, name="exposure gain", bounds=EXPOSURE_GAIN_BOUNDS)
        if sat is not None and gain is not None:
            raise BadInputError(
                "give --exposure-gain or its old name --saturation, not both (they are one gain)."
            )
        boost = None
        if not _is_off(highlights):
            boost = Range.parse(highlights, name="highlights", bounds=HIGHLIGHT_BOUNDS)
        threshold = check_highlight_threshold(highlight_threshold)
        regions = None if _is_off(highlight_regions) else check_highlight_regions(highlight_regions)
        region_threshold = check_highlight_region_threshold(
            highlight_region_threshold, threshold if regions is not None else None)
        shot = read = None
        if not _is_off(noise):
            parts = str(noise).split(",")
            if any(c.isalpha() for c in parts[0].replace("e", "").replace("E", "")):
                # a word where numbers go: most likely a misspelt RAW-path noise spec
                raise BadInputError(
                    f"noise {noise!r} is neither numbers (SHOT or SHOT,READ, each X or LO-HI, e.g. "
                    "0.001-0.005,0.002) nor, with --pipeline raw, 'model', 'profile', 'profile:NAME' "
                    "or 'profile:FILE.toml'."
                )
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
        return cls(sat, shot, read, q, gain, boost, threshold, regions, region_threshold)

    @property
    def any(self) -> bool:
        return any(x is not None for x in (self.saturation, self.shot, self.read, self.jpeg,
                                           self.exposure_gain, self.highlights))

    def describe(self) -> dict:
        """The ranges as text, for fingerprints and manifests (``exposure_gain`` and the
        highlight keys only when on)."""
        d = {
            "saturation": self.saturation.spec if self.saturation else None,
            "shot_noise": self.shot.spec if self.shot else None,
            "read_noise": self.read.spec if self.read else None,
            "jpeg_quality": self.jpeg.spec if self.jpeg else None,
        }
        if self.exposure_gain is not None:
            d["exposure_gain"] = self.exposure_gain.spec
        if self.highlights is not None:
            d["highlight_gain"] = self.highlights.spec
            d["highlight_threshold"] = self.highlight_threshold
            if self.highlight_regions is not None:
                d["highlight_regions"] = self.highlight_regions
                d["highlight_region_threshold"] = self.highlight_region_threshold
        return d

    def draw(self, rng: np.random.Generator) -> dict:
        """Draw one sample's values; keys only for the degradations that are on.

        Every range consumes exactly one draw whether on or off, so turning one
        degradation on never changes the values another one draws. The exposure
        gain takes the draw its old name ``saturation`` took (the same value under
        either name); the highlight gain's draw comes after the other four.
        """
        values = {}
        gain_key, gain = (("exposure_gain", self.exposure_gain) if self.exposure_gain is not None
                          else ("saturation", self.saturation))
        for key, rng_range in (
            (gain_key, gain),
            ("shot_noise", self.shot),
            ("read_noise", self.read),
            ("jpeg_quality", self.jpeg),
            ("highlight_gain", self.highlights),
        ):
            u = rng.random()
            if rng_range is not None:
                v = rng_range.lo + (rng_range.hi - rng_range.lo) * u
                values[key] = int(round(v)) if key == "jpeg_quality" else float(v)
        if self.highlights is not None:
            values["highlight_threshold"] = float(self.highlight_threshold)
            if self.highlight_regions is not None:  # fixed values: no draw
                values["highlight_regions"] = int(self.highlight_regions)
                values["highlight_region_threshold"] = float(self.highlight_region_threshold)
        return values


def _linear_value(value, bounds, what: str) -> float:
    """``value`` as a float in ``bounds``, or :class:`BadInputError` naming ``what``."""
    lo, hi = bounds
    try:
        t = float(value)
    except (TypeError, ValueError):
        t = float("nan")
    if not (lo <= t <= hi):
        raise BadInputError(f"{what} must be a linear value in [{lo:g}, {hi:g}]; got {value!r}.")
    return t


def check_highlight_threshold(value) -> float:
    """``value`` as a float in :data:`HIGHLIGHT_THRESHOLD_BOUNDS`, or :class:`BadInputError`."""
    return _linear_value(value, HIGHLIGHT_THRESHOLD_BOUNDS, "highlight threshold")


def check_highlight_regions(value) -> int:
    """``value`` as a whole number of pixels in :data:`HIGHLIGHT_REGION_AREA_BOUNDS`, or
    :class:`BadInputError`."""
    lo, hi = HIGHLIGHT_REGION_AREA_BOUNDS
    try:
        f = float(value)
        n = int(f) if not isinstance(value, bool) and f == int(f) else None
    except (TypeError, ValueError, OverflowError):
        n = None
    if n is None or not lo <= n <= hi:
        raise BadInputError(
            f"highlight regions must be a largest area in pixels, a whole number in [{lo}, {hi}]; "
            f"got {value!r}. Example: 64 (lamps and bulbs up to 8x8 px)."
        )
    return n


def check_highlight_region_threshold(value, threshold: float | None = None) -> float:
    """``value`` as a float in :data:`HIGHLIGHT_REGION_THRESHOLD_BOUNDS` and (when given) below
    the highlight ``threshold``, or :class:`BadInputError`."""
    t = _linear_value(value, HIGHLIGHT_REGION_THRESHOLD_BOUNDS, "highlight region threshold")
    if threshold is not None and not t < threshold:
        raise BadInputError(
            f"highlight region threshold {t:g} must be below the highlight threshold {threshold:g} "
            "(small regions are boosted from a lower value than every near-clipped pixel)."
        )
    return t


def small_bright_regions(peak, max_area: int, threshold: float) -> np.ndarray:
    """Pixels of the small bright regions of an image: (H, W) bool.

    A region is an 8-connected set of pixels whose ``peak`` (the brightest channel's
    linear value) is at least ``threshold``; it is small when it has at most
    ``max_area`` pixels. Lamps, bulbs and specular glints are small; a bright sky or
    wall is not.

    Examples
    --------
    >>> peak = np.zeros((6, 8), np.float32)
    >>> peak[1:3, 1:3] = 0.7          # a 4-pixel lamp
    >>> peak[:, 5:] = 0.8             # an 18-pixel lit wall
    >>> small_bright_regions(peak, 8, 0.5).sum(), bool(small_bright_regions(peak, 8, 0.5)[1, 1])
    (np.int64(4), True)
    """
    import cv2

    bright = (np.asarray(peak) >= np.float32(threshold)).astype(np.uint8)
    if not bright.any():
        return bright.astype(bool)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] <= int(max_area)
    small[0] = False  # label 0 is the dark background
    return small[labels]


def highlight_gains(peak, factor: float, threshold: float = HIGHLIGHT_THRESHOLD, *,
                    regions=None, region_threshold: float = HIGHLIGHT_REGION_THRESHOLD):
    """Per-pixel highlight boost from the brightest channel's linear value ``peak``.

    ``1 + (factor - 1) * clip((peak - t) / (1 - t), 0, 1)``, with ``t`` the
    ``threshold``, or for pixels of ``regions`` (a bool mask of ``peak``'s shape,
    :func:`small_bright_regions`) the larger of that and the same ramp from
    ``region_threshold``. float32, ``peak``'s shape (numpy).

    Examples
    --------
    >>> np.round(highlight_gains(np.array([0.5, 0.95, 1.0], np.float32), 4.0, 0.9), 4).tolist()
    [1.0, 2.5, 4.0]
    """
    w = _ramp(np.asarray(peak, dtype=np.float32), threshold, regions, region_threshold)
    return (w * np.float32(factor - 1.0) + np.float32(1.0)).astype(np.float32, copy=False)


def _ramp(m, threshold: float, regions=None, region_threshold: float = HIGHLIGHT_REGION_THRESHOLD):
    """The boost's weight in [0, 1] from the brightest channel ``m`` (NumPy float32 or torch).

    ``clip((m - t) / (1 - t), 0, 1)``; in ``regions`` (bool, ``m``'s last two dimensions) the
    larger of that and the same ramp from ``region_threshold``.
    """
    if type(m).__module__.startswith("torch"):
        import torch

        w = ((m - threshold) * (1.0 / (1.0 - threshold))).clamp_(0.0, 1.0)
        if regions is None:
            return w
        tr = float(region_threshold)
        w_region = ((m - tr) * (1.0 / (1.0 - tr))).clamp_(0.0, 1.0)
        mask = torch.as_tensor(np.asarray(regions, bool)).to(m.device)
        return torch.where(mask, torch.maximum(w, w_region), w)
    w = np.clip((m - np.float32(threshold)) * np.float32(1.0 / (1.0 - threshold)), 0.0, 1.0)
    if regions is None:
        return w
    tr = float(region_threshold)
    w_region = np.clip((m - np.float32(tr)) * np.float32(1.0 / (1.0 - tr)), 0.0, 1.0)
    return np.where(regions, np.maximum(w, w_region), w)


def boost_highlights(linear, factor: float, threshold: float = HIGHLIGHT_THRESHOLD, *,
                     regions=None, region_threshold: float = HIGHLIGHT_REGION_THRESHOLD):
    """Multiply near-clipped pixels of linear light by up to ``factor``.

    A pixel's gain ramps from 1 where its brightest channel is at ``threshold`` to
    ``factor`` where it is 1 (clipped in the photo); darker pixels are untouched. All
    three channels of a pixel get the same gain, so a light's colour is kept.

    Parameters
    ----------
    linear : ndarray or torch.Tensor, float, (..., 3, H, W), values in [0, 1]
    factor : float
        In [1, 64].
    threshold : float
        In [0.5, 0.999].
    regions : bool array (H, W) or None
        Pixels of small bright regions (:func:`small_bright_regions`), boosted from
        ``region_threshold`` on (the larger of the two ramps).
    region_threshold : float

    Returns
    -------
    boosted : same type, shape and dtype

    Examples
    --------
    >>> grey = np.array([0.5, 0.95, 1.0], np.float32)  # three grey pixels
    >>> x = np.stack([grey[None]] * 3)  # (3, 1, 3)
    >>> np.round(boost_highlights(x, 4.0, 0.9)[0, 0], 4).tolist()
    [0.5, 2.375, 4.0]
    """
    lo, hi = HIGHLIGHT_BOUNDS
    if not (math.isfinite(factor) and lo <= factor <= hi):
        raise BadInputError(f"highlight gain must be in [{lo:g}, {hi:g}]; got {factor!r}.")
    t = check_highlight_threshold(threshold)
    if regions is not None:
        regions = np.asarray(regions, bool)
        region_threshold = check_highlight_region_threshold(region_threshold, t)
    if type(linear).__module__.startswith("torch"):
        w = _ramp(linear.amax(dim=-3, keepdim=True), t, regions, region_threshold)
        return linear * (w * (factor - 1.0) + 1.0)
    gains = highlight_gains(linear.max(axis=-3, keepdims=True), factor, t, regions=regions,
                            region_threshold=region_threshold)
    return (linear * gains).astype(linear.dtype, copy=False)


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

    buf = np.frombuffer(jpeg_bytes(image, quality), np.uint8)
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])


def jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    """The JPEG encoding :func:`jpeg_roundtrip` decodes again, as bytes (``dataset export
    --format jpeg`` writes it).

    Parameters
    ----------
    image : (H, W, 3) uint8 ndarray, RGB
    quality : int in [1, 100]

    Returns
    -------
    jpeg : bytes (baseline, 4:2:0 chroma)

    Examples
    --------
    >>> jpeg_bytes(np.zeros((8, 8, 3), np.uint8), 90)[:2] == b"\\xff\\xd8"
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
    return buf.tobytes()


def _is_off(value) -> bool:
    return value is None or str(value).strip().lower() in ("", "off", "none", "0")


def _split_range(raw: str) -> list[str]:
    # "LO-HI", allowing exponents such as 1e-3-5e-3 (a '-' after 'e' is a sign).
    for i in range(1, len(raw)):
        if raw[i] == "-" and raw[i - 1] not in "eE":
            return [raw[:i], raw[i + 1 :]]
    return [raw]
