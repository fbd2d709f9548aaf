"""The RAW camera path: unprocess, Bayer mosaic, sensor noise, demosaic, process.

Arrays in, arrays out; nothing here reads files. Every RAW-path command (``blur``,
``frames-average`` and ``bgan blur`` with ``--pipeline raw``) uses it through
:mod:`blursynth.ops.blur` (``render_raw_pair``, ``develop_raw_pair``).
The model follows Brooks et al., "Unprocessing Images for Learned Raw Denoising"
(CVPR 2019); docs/algorithms.md ("RAW path") cites the source of every number below.

One pair's camera is a plain dict of params (:func:`draw_raw_params`), JSON-safe,
drawn from the cameras and noise lines of :mod:`blursynth.ops.raw_profiles`, and from
which :class:`RawParams` rebuilds every array exactly:

- ``linear sRGB -> camera``: ``cam = rgb_to_cam @ rgb`` where ``rgb_to_cam`` is
  the camera's XYZ->camera matrix times sRGB->XYZ (D65), each row scaled to sum
  to 1 (so white stays white);
- inverse white balance: divide by the gains ``(red_gain, 1, blue_gain) *
  digital_gain``, with Unprocessing's highlight-preserving mask: near white the
  applied factor moves smoothly to 1, so a clipped highlight stays at the
  sensor's white level instead of being dimmed;
- Bayer mosaic (RGGB, BGGR, GRBG, GBRG), Poisson-Gaussian noise of variance
  ``shot * x + read**2``, optional quantisation to 10-14 bits, clip at the white
  level (1.0);
- plain white-balance and digital gains on the mosaic, demosaic (bilinear or
  Malvar-He-Cutler 2004), then above the highlight knee the exact inverse of the
  masked inverse above, colour correction back to linear sRGB.

Every product is written out channel by channel in float32 (no BLAS), so the
bytes do not depend on the machine's matrix library. The per-pixel steps run as the
Numba kernels of :mod:`blursynth.ops._raw_kernels`, each fusing several of the steps
above into one pass; they give the bytes of the step-by-step formulation the
docstrings describe (tests/test_raw_kernels.py compares them with it in NumPy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._numba import kernel_threads
from ..errors import BadInputError
from . import _raw_kernels as _k
from .degrade import READ_BOUNDS, SHOT_BOUNDS, noise_field
# The profiles' names stay importable from here, the RAW path's public module.
from .raw_profiles import (  # noqa: F401
    CAMERA_NOISE, CAMERAS, DEFAULT_MIX, NOISE_FILE_SUFFIXES, NOISE_PROFILES, NOISE_Z_CUT,
    READ_LINE, SHOT_LOG_RANGE, camera_key, camera_names, camera_noise_profile, check_noise_line,
    fit_noise_line, is_noise_file, load_noise_profile, raw_noise_spec)

RAW_VERSION = 1

# Linear sRGB (D65) -> XYZ, IEC 61966-2-1 primaries (the matrix Unprocessing uses).
SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]], dtype=np.float64)

# -- drawn ranges (Brooks et al. 2019) ------------------------------------------------------
RED_GAIN_RANGE = (1.9, 2.4)
BLUE_GAIN_RANGE = (1.5, 1.9)
# digital_gain = 1 / N(0.8, 0.1); the normal is clipped to [0.4, 1.2] (4 sigma): it stays positive.
DIGITAL_GAIN_INV = (0.8, 0.1, 0.4, 1.2)
HIGHLIGHT_KNEE = 0.9  # the mask starts where the camera-space grey exceeds this

BAYER_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
DEMOSAIC_METHODS = ("bilinear", "malvar")
RAW_BITS_BOUNDS = (10, 14)
HIGHLIGHT_MODES = ("preserve", "off")
_CHANNEL = {"R": 0, "G": 1, "B": 2}


def rgb_to_cam_matrix(xyz_to_cam) -> np.ndarray:
    """(3, 3) float64: linear sRGB -> camera, rows normalised to sum to 1.

    Examples
    --------
    >>> m = rgb_to_cam_matrix(CAMERAS["Sony ILCE-7R"])
    >>> bool(np.allclose(m.sum(axis=1), 1.0))
    True
    """
    a = [[float(v) for v in row] for row in np.asarray(xyz_to_cam, dtype=np.float64).reshape(3, 3)]
    b = SRGB_TO_XYZ.tolist()
    # Python floats, summed in a fixed order: no BLAS, so the same bits on every machine.
    m = [[(a[i][0] * b[0][j] + a[i][1] * b[1][j]) + a[i][2] * b[2][j] for j in range(3)]
         for i in range(3)]
    return np.array([[v / ((row[0] + row[1]) + row[2]) for v in row] for row in m],
                    dtype=np.float64)


def _inverse3(m) -> np.ndarray:
    """The inverse of a 3x3 matrix by cofactors, in Python floats (no LAPACK)."""
    (a, b, c), (d, e, f), (g, h, i) = np.asarray(m, dtype=np.float64).tolist()
    cof = [[e * i - f * h, c * h - b * i, b * f - c * e],
           [f * g - d * i, a * i - c * g, c * d - a * f],
           [d * h - e * g, b * g - a * h, a * e - b * d]]
    det = (a * cof[0][0] + b * cof[1][0]) + c * cof[2][0]
    return np.array([[v / det for v in row] for row in cof], dtype=np.float64)


# -- params ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RawParams:
    """One pair's camera, checked, with the matrices and gains it implies.

    Build it with :meth:`from_dict` from what :func:`draw_raw_params` returned
    (or a row's recorded copy); :meth:`to_dict` gives that dict back.
    """

    camera: str
    camera_weights: dict | None
    xyz_to_cam: tuple
    red_gain: float
    blue_gain: float
    digital_gain: float
    highlights: str
    bayer: str
    shot_noise: float
    read_noise: float
    raw_bits: int | None
    demosaic: str
    white_level: float = 1.0
    noise_profile: str | None = None  # "--noise profile": the profile its levels came from
    noise_line: dict | None = None  # a calibration file's line (shot_log_range, read_line, source)

    @classmethod
    def from_dict(cls, params: dict) -> "RawParams":
        """Check a params dict and build from it.

        Raises
        ------
        BadInputError
            On a missing key, an unknown pattern, method or mode, values out of range.
        """
        if isinstance(params, RawParams):
            return params
        try:
            version = params.get("raw_version", RAW_VERSION)
            if version != RAW_VERSION:
                raise BadInputError(f"RAW params version {version!r} is not {RAW_VERSION}.")
            m = tuple(float(v) for v in params["xyz_to_cam"])
            weights = params.get("camera_weights")
            p = cls(
                camera=str(params["camera"]),
                camera_weights=(None if weights is None
                                else {str(k): float(v) for k, v in weights.items()}),
                xyz_to_cam=m,
                red_gain=float(params["red_gain"]), blue_gain=float(params["blue_gain"]),
                digital_gain=float(params["digital_gain"]), highlights=str(params["highlights"]),
                bayer=str(params["bayer"]), shot_noise=float(params["shot_noise"]),
                read_noise=float(params["read_noise"]),
                raw_bits=None if params.get("raw_bits") is None else int(params["raw_bits"]),
                demosaic=str(params["demosaic"]), white_level=float(params.get("white_level", 1.0)),
                noise_profile=(None if params.get("noise_profile") is None
                               else str(params["noise_profile"])),
                noise_line=(None if params.get("noise_line") is None
                            else check_noise_line(params["noise_line"])),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BadInputError(f"RAW params are incomplete or malformed: {e!r}.") from None
        p._check()
        return p

    def _check(self):
        if len(self.xyz_to_cam) != 9 or not all(math.isfinite(v) for v in self.xyz_to_cam):
            raise BadInputError("xyz_to_cam must hold 9 finite numbers (a 3x3 matrix, row by row).")
        m = rgb_to_cam_matrix(self.xyz_to_cam)
        det = float(np.linalg.det(m)) if np.isfinite(m).all() else 0.0
        if not abs(det) >= 1e-6:
            raise BadInputError("xyz_to_cam gives a singular sRGB->camera matrix.")
        for name in ("red_gain", "blue_gain", "digital_gain", "white_level"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0.1 <= v <= 10.0):
                raise BadInputError(f"{name} must be in [0.1, 10]; got {v!r}.")
        _check_choice("bayer pattern", self.bayer, BAYER_PATTERNS)
        _check_choice("demosaic method", self.demosaic, DEMOSAIC_METHODS)
        _check_choice("highlights", self.highlights, HIGHLIGHT_MODES)
        check_noise_levels(self.shot_noise, self.read_noise)
        if self.noise_line is not None:
            check_noise_line(self.noise_line)
        elif self.noise_profile is not None:
            _check_choice("noise profile", self.noise_profile, (*NOISE_PROFILES, "model"))
        if self.raw_bits is not None:
            check_raw_bits(self.raw_bits)

    def to_dict(self) -> dict:
        """The JSON-safe params (floats kept exactly: JSON writes Python floats round-trip)."""
        return {
            "raw_version": RAW_VERSION, "camera": self.camera,
            "camera_weights": None if self.camera_weights is None else dict(self.camera_weights),
            "xyz_to_cam": list(self.xyz_to_cam), "red_gain": self.red_gain,
            "blue_gain": self.blue_gain, "digital_gain": self.digital_gain,
            "highlights": self.highlights, "bayer": self.bayer, "shot_noise": self.shot_noise,
            "read_noise": self.read_noise, "raw_bits": self.raw_bits, "demosaic": self.demosaic,
            "white_level": self.white_level,
            **({} if self.noise_profile is None else {"noise_profile": self.noise_profile}),
            **({} if self.noise_line is None else {"noise_line": dict(self.noise_line)}),
        }

    @property
    def rgb_to_cam(self) -> np.ndarray:
        return rgb_to_cam_matrix(self.xyz_to_cam)

    @property
    def cam_to_rgb(self) -> np.ndarray:
        return _inverse3(self.rgb_to_cam)

    @property
    def wb_gains(self) -> np.ndarray:
        """(3,) float64: ``process``'s factors for camera R, G, B (white balance x digital gain)."""
        return np.array([self.red_gain, 1.0, self.blue_gain]) * self.digital_gain


def check_noise_levels(shot: float, read: float) -> None:
    """Refuse shot/read levels outside the bounds the RGB path accepts (ops.degrade)."""
    if not (math.isfinite(shot) and SHOT_BOUNDS[0] <= shot <= SHOT_BOUNDS[1]):
        raise BadInputError(f"shot noise must be in {list(SHOT_BOUNDS)}; got {shot!r}.")
    if not (math.isfinite(read) and READ_BOUNDS[0] <= read <= READ_BOUNDS[1]):
        raise BadInputError(f"read noise must be in {list(READ_BOUNDS)}; got {read!r}.")


def check_raw_bits(bits) -> int:
    """``bits`` as an int in [10, 14], or :class:`BadInputError`."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) \
            or not RAW_BITS_BOUNDS[0] <= int(bits) <= RAW_BITS_BOUNDS[1]:
        raise BadInputError(f"raw bits must be an integer in [10, 14]; got {bits!r}.")
    return int(bits)


def _check_choice(what, value, choices):
    if value not in choices:
        raise BadInputError(f"unknown {what} {value!r}; expected one of {', '.join(choices)}.")


def draw_raw_params(rng: np.random.Generator, *, camera="random", bayer="random", noise="model",
                    raw_bits=None, demosaic="malvar", digital_gain=True,
                    highlights="preserve") -> dict:
    """Draw one pair's camera from ``rng`` (the pair's keyed generator).

    The draws always come in the same order and number, whatever the options:
    ``len(CAMERAS)`` uniforms (mix weights), two (red and blue gains), one normal
    (digital gain), one uniform (Bayer pattern), one uniform and one normal (noise
    levels), one uniform (bits). So fixing one choice never moves another's values.

    Parameters
    ----------
    rng : numpy.random.Generator
    camera : str or sequence of str
        ``"random"``: a convex mix of :data:`DEFAULT_MIX` (weights uniform, then
        normalised, as in Unprocessing); a camera name; or a list of names to mix.
    bayer : str
        ``"random"`` or one of :data:`BAYER_PATTERNS`.
    noise : "model", "profile", "profile:NAME", "profile:FILE", "off" or (shot, read)
        ``model``: Brooks et al.'s log-linear model; ``profile``: the camera's noise
        profile (:func:`camera_noise_profile`), ``profile:NAME`` a named one (both
        recorded as ``noise_profile``; the same two draws); ``profile:FILE.toml`` (or
        ``.json``) a calibration file's line (:func:`load_noise_profile`; its name recorded
        as ``noise_profile``, its numbers as ``noise_line``); ``(shot, read)``: fixed
        levels (``read`` a standard deviation); ``off``: zero.
    raw_bits : None, int or (lo, hi)
        Quantisation bits (10-14); a pair of ints draws one uniformly per pair.
    demosaic : {"bilinear", "malvar"}
    digital_gain : bool
        Draw Unprocessing's brightness gain (``1 / N(0.8, 0.1)``), else 1.
    highlights : {"preserve", "off"}

    Returns
    -------
    params : dict
        JSON-safe; :meth:`RawParams.from_dict` rebuilds from it.

    Examples
    --------
    >>> p = draw_raw_params(np.random.default_rng(0), camera="Nikon D700", bayer="RGGB")
    >>> p["camera"], p["bayer"], p["camera_weights"] is None
    ('Nikon D700', 'RGGB', True)
    """
    _check_choice("highlights", highlights, HIGHLIGHT_MODES)
    _check_choice("demosaic method", demosaic, DEMOSAIC_METHODS)
    names = list(CAMERAS)
    u_weights = rng.random(len(names))
    u_red, u_blue = rng.random(2)
    z_gain = float(rng.standard_normal())
    u_bayer = float(rng.random())
    u_shot = float(rng.random())
    z_read = float(rng.standard_normal())
    u_bits = float(rng.random())

    # camera
    if isinstance(camera, str) and camera != "random":
        cam_name = camera_key(camera)
        weights, m = None, CAMERAS[cam_name]
    else:
        try:
            mix = DEFAULT_MIX if camera == "random" else tuple(camera_key(str(c)) for c in camera)
        except TypeError:
            raise BadInputError(
                f"camera must be 'random', a name or a list of names; got {camera!r}.") from None
        if not mix:
            raise BadInputError(f"no camera to mix; the bundled ones are: {', '.join(names)}.")
        w = np.array([u_weights[names.index(c)] for c in mix], dtype=np.float64) + 1e-12
        w = w / w.sum()
        weights = {c: float(x) for c, x in zip(mix, w)}
        stack = np.array([CAMERAS[c] for c in mix], dtype=np.float64)
        m = tuple(float(v) for v in (w[:, None] * stack).sum(axis=0))
        cam_name = "mix"

    red = RED_GAIN_RANGE[0] + (RED_GAIN_RANGE[1] - RED_GAIN_RANGE[0]) * float(u_red)
    blue = BLUE_GAIN_RANGE[0] + (BLUE_GAIN_RANGE[1] - BLUE_GAIN_RANGE[0]) * float(u_blue)
    mu, sd, lo, hi = DIGITAL_GAIN_INV
    gain = 1.0 / min(max(mu + sd * z_gain, lo), hi) if digital_gain else 1.0

    if bayer == "random":
        pattern = BAYER_PATTERNS[min(int(u_bayer * 4), 3)]
    else:
        _check_choice("bayer pattern", bayer, BAYER_PATTERNS)
        pattern = bayer

    spec = raw_noise_spec(noise) if isinstance(noise, str) else None
    profile = line = None
    if spec is not None:
        if spec != "model":
            profile = (camera_noise_profile(cam_name, weights) if spec == "profile"
                       else spec.split(":", 1)[1])
        if profile is not None and is_noise_file(profile):
            loaded = load_noise_profile(profile)
            profile = loaded.pop("name")
            line = loaded
            (lo, hi), (slope, intercept, sigma) = line["shot_log_range"], line["read_line"]
            # Cut at 4 sigma: the file's line was checked in bounds there.
            z_read = min(max(z_read, -NOISE_Z_CUT), NOISE_Z_CUT)
        else:
            (lo, hi), (slope, intercept, sigma) = (
                (SHOT_LOG_RANGE, READ_LINE) if profile in (None, "model")
                else (NOISE_PROFILES[profile]["shot_log_range"], NOISE_PROFILES[profile]["read_line"]))
        shot = math.exp(lo + (hi - lo) * u_shot)
        read = math.sqrt(math.exp(slope * math.log(shot) + intercept + sigma * z_read))
    elif noise is None or (isinstance(noise, str) and noise == "off"):
        shot = read = 0.0
    elif isinstance(noise, str):
        raise BadInputError(f"noise must be 'model', 'profile[:NAME]', 'off' or (shot, read); "
                            f"got {noise!r}.")
    else:
        try:
            shot, read = (float(v) for v in noise)
        except (TypeError, ValueError):
            raise BadInputError(f"noise must be 'model', 'profile[:NAME]', 'off' or (shot, read); "
                                f"got {noise!r}.") from None
    check_noise_levels(shot, read)

    if raw_bits is None:
        bits = None
    elif isinstance(raw_bits, (tuple, list)):
        b_lo, b_hi = (check_raw_bits(b) for b in raw_bits)
        if b_lo > b_hi:
            raise BadInputError(f"raw bits range {raw_bits!r} has LO > HI.")
        bits = b_lo + min(int(u_bits * (b_hi - b_lo + 1)), b_hi - b_lo)
    else:
        bits = check_raw_bits(raw_bits)

    params = RawParams(
        camera=cam_name, camera_weights=weights, xyz_to_cam=tuple(m), red_gain=red, blue_gain=blue,
        digital_gain=float(gain), highlights=highlights, bayer=pattern, shot_noise=float(shot),
        read_noise=float(read), raw_bits=bits, demosaic=demosaic, noise_profile=profile,
        noise_line=line,
    )
    params._check()
    return params.to_dict()


# -- colour ----------------------------------------------------------------------------------
def _apply_matrix(image, m) -> np.ndarray:
    """(H, W, 3) float32 times a 3x3 matrix, per pixel, written out in float32 (no BLAS)."""
    m = np.asarray(m, dtype=np.float32)
    x = np.asarray(image, dtype=np.float32)
    out = np.empty(x.shape, np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    for c in range(3):
        out[..., c] = (m[c, 0] * r + m[c, 1] * g) + m[c, 2] * b
    return out


def _check_image(image, what="image"):
    x = np.asarray(image)
    if x.ndim != 3 or x.shape[2] != 3 or not np.issubdtype(x.dtype, np.floating):
        raise BadInputError(f"{what} must be a float (H, W, 3) array; got {x.dtype} {x.shape}.")
    return x.astype(np.float32, copy=False)


def unprocess(linear_rgb, params) -> np.ndarray:
    """Linear sRGB to the camera's linear RAW colours (before the mosaic).

    Inverse colour correction, then inverse white balance and digital gain
    (highlight-preserving when ``params["highlights"] == "preserve"``). Nothing is
    clipped: the sensor clips at its white level (:func:`sensor_readout`).

    Parameters
    ----------
    linear_rgb : (H, W, 3) float array, linear sRGB in [0, 1]
    params : dict or RawParams

    Returns
    -------
    cam : (H, W, 3) float32
    """
    p = RawParams.from_dict(params)
    x = _check_image(linear_rgb)
    out = np.empty(x.shape, np.float32)
    with kernel_threads():
        _k.unprocess_float(x, *_unprocess_args(p), out)
    return out


def unprocess_uint8(photo, table, params) -> np.ndarray:
    """8-bit photo -> camera colours as planes: :func:`unprocess` of ``table[photo]``, in one pass.

    Parameters
    ----------
    photo : (H, W, 3) uint8 ndarray, RGB
    table : (256,) float32 ndarray
        The camera response's decode table (``CameraResponse.decode_table()``).
    params : dict or RawParams

    Returns
    -------
    cam : (3, H, W) float32, the same values as ``unprocess(table[photo], params)``

    Examples
    --------
    >>> from blursynth.ops.color import CameraResponse
    >>> p = draw_raw_params(np.random.default_rng(0), noise="off")
    >>> table = CameraResponse.parse("srgb").decode_table()
    >>> photo = np.full((2, 3, 3), 90, np.uint8)
    >>> bool((unprocess_uint8(photo, table, p) == unprocess(table[photo], p).transpose(2, 0, 1)).all())
    True
    """
    p = RawParams.from_dict(params)
    photo = np.asarray(photo)
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise BadInputError(f"photo must be uint8 (H, W, 3); got {photo.dtype} {photo.shape}.")
    table = np.ascontiguousarray(table, dtype=np.float32)
    if table.shape != (256,):
        raise BadInputError(f"decode table must have 256 entries; got shape {table.shape}.")
    out = np.empty((3, *photo.shape[:2]), np.float32)
    with kernel_threads():
        _k.unprocess_table(photo, table, *_unprocess_args(p), out)
    return out


def _unprocess_args(p):
    """The kernel's (matrix, inverse gains, preserve, knee, knee span), all float32."""
    return (p.rgb_to_cam.astype(np.float32), (1.0 / p.wb_gains).astype(np.float32),
            p.highlights == "preserve", np.float32(HIGHLIGHT_KNEE),
            np.float32(1.0 - HIGHLIGHT_KNEE))


def white_balance(cam, params) -> np.ndarray:
    """Camera RAW colours -> white-balanced, the inverse of :func:`unprocess`'s gains.

    The plain gains, then (``highlights="preserve"``) the same highlight inverse as
    :func:`develop`'s, on the pixels whose gained grey is above the knee: the root of
    ``mean(y / s(t)) = t`` on [knee, 1] (bisection in float64), or plain
    ``y / max(g, 1)`` above white.

    Returns
    -------
    balanced : (H, W, 3) float32
    """
    p = RawParams.from_dict(params)
    y = _check_image(cam, "camera image")
    planes = np.ascontiguousarray((y * p.wb_gains.astype(np.float32)).transpose(2, 0, 1))
    if p.highlights == "preserve":
        inv = 1.0 / p.wb_gains
        _k.restore_highlights(planes[0], planes[1], planes[2], inv[0], inv[1], inv[2],
                              HIGHLIGHT_KNEE, np.float32(HIGHLIGHT_KNEE), 1.0 - HIGHLIGHT_KNEE)
    return planes.transpose(1, 2, 0)


def process(cam, params) -> np.ndarray:
    """Demosaicked camera RAW colours -> linear sRGB: white balance, then colour correction.

    The camera response and 8-bit encoder of ``ops.color``/``ops.encode8`` do the rest
    (they clip to [0, 1]).

    Returns
    -------
    linear_rgb : (H, W, 3) float32, unclipped
    """
    p = RawParams.from_dict(params)
    return _apply_matrix(white_balance(cam, p), p.cam_to_rgb)


# -- mosaic ----------------------------------------------------------------------------------
def _cfa_tile(pattern: str) -> np.ndarray:
    """(2, 2) int64: the channel of each site of the pattern's 2x2 tile."""
    _check_choice("bayer pattern", pattern, BAYER_PATTERNS)
    return np.array([[_CHANNEL[pattern[0]], _CHANNEL[pattern[1]]],
                     [_CHANNEL[pattern[2]], _CHANNEL[pattern[3]]]], dtype=np.int64)


def cfa_channels(pattern: str, shape) -> np.ndarray:
    """(H, W) uint8: the channel (0 R, 1 G, 2 B) a ``pattern`` sensor samples at each site.

    Examples
    --------
    >>> cfa_channels("GRBG", (2, 3))
    array([[1, 0, 1],
           [2, 1, 2]], dtype=uint8)
    """
    _check_choice("bayer pattern", pattern, BAYER_PATTERNS)
    h, w = shape
    tile = np.array([[_CHANNEL[pattern[0]], _CHANNEL[pattern[1]]],
                     [_CHANNEL[pattern[2]], _CHANNEL[pattern[3]]]], dtype=np.uint8)
    return np.tile(tile, ((h + 1) // 2, (w + 1) // 2))[:h, :w]


def sensor_readout(cam, params, *, rng=None, noise=None, noisy=True) -> np.ndarray:
    """Camera colours -> the RAW file: clip, mosaic, noise (if ``noisy``), quantise, clip.

    In one pass: each site's channel of ``cam`` (the Bayer mosaic) clipped to [0, white
    level], plus Poisson-Gaussian noise of variance ``shot * x + read**2`` (the RGB path's
    model, :func:`blursynth.ops.degrade.add_sensor_noise`), clipped at white, then rounded
    to the ADC's ``2**bits - 1`` steps of the white level when the params give
    ``raw_bits`` (values below 0 are kept, as a black-level offset keeps them).

    Parameters
    ----------
    cam : (H, W, 3) float ndarray
        Camera colours (:func:`unprocess`'s output, blurred or not); any strides.
    params : dict or RawParams
    rng : numpy.random.Generator, optional
        Draws the (H, W) float32 standard-normal field when ``noise`` is not given.
    noise : (H, W) float32 ndarray, optional
        A pre-drawn field.
    noisy : bool
        False: no noise, nothing drawn (the sharp image). Zero noise levels draw nothing either.

    Returns
    -------
    mosaic : (H, W) float32

    Examples
    --------
    >>> p = draw_raw_params(np.random.default_rng(0), noise="off", bayer="RGGB", raw_bits=10)
    >>> sensor_readout(np.full((2, 2, 3), [0.5, 1.5, -0.1], np.float32), p).tolist()
    [[0.5004887580871582, 1.0], [1.0, 0.0]]
    """
    p = RawParams.from_dict(params)
    x = _check_image(cam, "camera image")
    h, w = x.shape[:2]
    noisy = noisy and not (p.shot_noise == 0.0 and p.read_noise == 0.0)
    if not noisy:
        field = np.zeros((1, 1), np.float32)  # not read
    elif noise is not None:
        field = np.broadcast_to(np.asarray(noise, dtype=np.float32), (h, w))
    elif rng is None:
        raise ValueError("pass rng= (a numpy Generator) or a pre-drawn noise= field.")
    else:
        field = noise_field((h, w), np.random.default_rng(rng))
    white = np.float32(p.white_level)
    bits = p.raw_bits
    scale = np.float32(1) if bits is None else np.float32(2 ** bits - 1) / white
    out = np.empty((h, w), np.float32)
    with kernel_threads():
        _k.readout(x, _cfa_tile(p.bayer), white, field, np.float32(p.shot_noise),
                   np.float32(p.read_noise * p.read_noise), noisy, bits is not None, scale, out)
    return out


# -- demosaic --------------------------------------------------------------------------------
def demosaic(raw, pattern: str, method: str = "malvar") -> np.ndarray:
    """(H, W) Bayer mosaic -> (H, W, 3) float32 camera colours.

    ``bilinear``: each missing value the mean of its nearest same-colour sites.
    ``malvar``: Malvar, He & Cutler (ICASSP 2004): the bilinear value plus a gain
    times a Laplacian of the channel sampled at the site (gains 1/2 for green at
    red/blue sites, 5/8 for red/blue at green sites, 3/4 for red at blue and blue at
    red), i.e. their 5x5 filters. Edges are mirrored about the border sites, which
    keeps the pattern's parity, so a constant image is returned exactly.
    """
    _check_choice("demosaic method", method, DEMOSAIC_METHODS)
    x = _check_mosaic(raw)
    out = np.empty((*x.shape, 3), np.float32)
    _develop_into(x, pattern, method, np.ones(3, np.float32), None, None,
                  out.transpose(2, 0, 1))
    return out


def _check_mosaic(raw):
    x = np.asarray(raw, dtype=np.float32)
    if x.ndim != 2 or min(x.shape) < 3:
        raise BadInputError(f"mosaic must be a 2-D array of at least 3x3; got {x.shape}.")
    return x


def _develop_into(x, pattern, method, gains, p, matrix, out):
    """Gains on the mosaic, demosaic, the highlight inverse (when ``p`` preserves highlights),
    ``matrix`` (when given) -> ``out`` (3, H, W), any strides: the kernels' one entry."""
    h, w = x.shape
    tile = _cfa_tile(pattern)
    pad = np.empty((h + 4, w + 4), np.float32)
    restore = p is not None and p.highlights == "preserve"
    inv = 1.0 / p.wb_gains if p is not None else np.ones(3)
    with kernel_threads():
        _k.gain_pad(x, tile, gains, pad)
        _k.develop_rows(pad, tile, method == "malvar", restore, inv, HIGHLIGHT_KNEE,
                        np.float32(HIGHLIGHT_KNEE), 1.0 - HIGHLIGHT_KNEE,
                        np.eye(3, dtype=np.float32) if matrix is None else matrix.astype(np.float32),
                        matrix is not None, out)


def develop(raw, params) -> np.ndarray:
    """The RAW file -> linear sRGB: gains on the mosaic, demosaic, highlights, colour correction.

    As a camera (and Unprocessing's ``process``) does, the plain white-balance and
    digital gains multiply each mosaic site by its channel's gain before demosaicing.
    Demosaicing the ungained mosaic instead (red and blue at 1/2-1/3 of green) makes
    Malvar-He-Cutler's cross-channel correction overshoot at edges, leaving coloured
    speckles (0.6-1.9 dB lower PSNR of the sharp target against the photo). The
    highlight-preserving mask's exact inverse needs all three colours, so it is applied
    after demosaicing, to the pixels whose grey is above the knee only: their camera
    colours are taken back as ``demosaicked / gains`` and :func:`white_balance`'s
    per-pixel inverse is solved there. Below the knee the result is the plain gains'
    and a flat colour patch comes back exactly (demosaicing a constant is exact).
    """
    p = RawParams.from_dict(params)
    x = _check_mosaic(raw)
    out = np.empty((*x.shape, 3), np.float32)
    _develop_into(x, p.bayer, p.demosaic, p.wb_gains.astype(np.float32), p, p.cam_to_rgb,
                  out.transpose(2, 0, 1))
    return out


def develop_planes(raw, params) -> np.ndarray:
    """:func:`develop` written as (3, H, W) planes, the layout ``encode8.encode_planes`` reads.

    Examples
    --------
    >>> p = draw_raw_params(np.random.default_rng(0), noise="off", bayer="RGGB")
    >>> mos = np.full((4, 6), 0.3, np.float32)
    >>> bool((develop_planes(mos, p) == develop(mos, p).transpose(2, 0, 1)).all())
    True
    """
    p = RawParams.from_dict(params)
    x = _check_mosaic(raw)
    out = np.empty((3, *x.shape), np.float32)
    _develop_into(x, p.bayer, p.demosaic, p.wb_gains.astype(np.float32), p, p.cam_to_rgb, out)
    return out
