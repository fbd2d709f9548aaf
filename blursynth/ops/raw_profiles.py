"""The RAW path's profiles: the bundled cameras' colour matrices, the noise model's line,
published noise profiles, calibration files (``--noise profile:FILE``) and the ``--noise``
spec that names them.

Data and its checks only; :mod:`blursynth.ops.raw` draws a pair's camera from them (and
re-exports these names, so importers of them from ``ops.raw`` need not change).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import BadInputError
from .degrade import READ_BOUNDS, SHOT_BOUNDS

# -- camera profiles -------------------------------------------------------------------------
# XYZ -> camera matrices (rows: camera R, G, B; columns: X, Y, Z), as Adobe's DNG
# ColorMatrix (D65) values that dcraw's adobe_coeff table lists (divided by 10000), or as
# Brooks et al. 2019 used them. Sources: docs/algorithms.md, "RAW path".
CAMERAS: dict[str, tuple[float, ...]] = {
    # The four cameras of the Darmstadt Noise Dataset, whose matrices Unprocessing mixes.
    "Huawei Nexus 6P":
        (1.0234, -0.2969, -0.2266, -0.5625, 1.6328, -0.0469, -0.0703, 0.2188, 0.6406),
    "Sony ILCE-7R":
        (0.4913, -0.0541, -0.0202, -0.6130, 1.3513, 0.2906, -0.1564, 0.2151, 0.7183),
    "Olympus E-M10":
        (0.8380, -0.2630, -0.0639, -0.2887, 1.0725, 0.2496, -0.0627, 0.1427, 0.5438),
    "Sony DSC-RX100M4":
        (0.6596, -0.2079, -0.0562, -0.4782, 1.3016, 0.1933, -0.0970, 0.1581, 0.5181),
    # Two more from dcraw's adobe_coeff, outside the default mix (e.g. for held-out tests).
    "Canon EOS 5D Mark II":
        (0.4716, 0.0603, -0.0830, -0.7798, 1.5474, 0.2480, -0.1496, 0.1937, 0.6651),
    "Nikon D700":
        (0.8139, -0.2171, -0.0663, -0.8747, 1.6541, 0.2295, -0.1925, 0.2008, 0.8093),
}
# camera="random" mixes these (the Unprocessing set).
DEFAULT_MIX = ("Huawei Nexus 6P", "Sony ILCE-7R", "Olympus E-M10", "Sony DSC-RX100M4")

# -- the noise model's line (Brooks et al. 2019) ---------------------------------------------
# log-linear noise: ln(shot) ~ U(ln 1e-4, ln 0.012);
# ln(read variance) = 2.18 ln(shot) + 1.20 + N(0, 0.26**2).
SHOT_LOG_RANGE = (math.log(0.0001), math.log(0.012))
READ_LINE = (2.18, 1.20, 0.26)

# -- noise profiles --------------------------------------------------------------------------
# A profile is a camera noise line in the form above: ln(shot) ~ U(lo, hi) and
# ln(read**2) = slope * ln(shot) + intercept + N(0, sigma**2), with its source. Only published
# calibrations go here (docs/algorithms.md, "Noise profiles"); a user's own calibration comes
# from a file (--noise profile:FILE.toml, load_noise_profile).
NOISE_PROFILES: dict[str, dict] = {
    # The model's own line: one fit over the four Darmstadt cameras together, so
    # --noise profile draws for them exactly what --noise model draws.
    "darmstadt": {
        "shot_log_range": SHOT_LOG_RANGE, "read_line": READ_LINE,
        "source": "the model's line: Brooks et al. 2019 (Unprocessing), fitted to the shot and read "
                  "levels of the Darmstadt Noise Dataset's raw images (Ploetz & Roth 2017; its four "
                  "cameras together, not per camera)",
    },
}
# Each bundled camera's noise profile; None where no published calibration of that camera was
# found: --noise profile then uses the log-linear model (recorded as noise_profile "model").
CAMERA_NOISE: dict[str, str | None] = {
    "Huawei Nexus 6P": "darmstadt", "Sony ILCE-7R": "darmstadt", "Olympus E-M10": "darmstadt",
    "Sony DSC-RX100M4": "darmstadt", "Canon EOS 5D Mark II": None, "Nikon D700": None,
}


def camera_key(name) -> str:
    """A bundled camera's name as :data:`CAMERAS` spells it, matched ignoring case and spaces.

    Raises
    ------
    BadInputError
        For a name that matches none, with the closest names and the whole list.

    Examples
    --------
    >>> camera_key("nikon  d700")
    'Nikon D700'
    """
    if name in CAMERAS:
        return name

    def fold(text):
        return "".join(str(text).lower().split())

    folded = {fold(c): c for c in CAMERAS}
    if fold(name) in folded:
        return folded[fold(name)]
    import difflib

    close = difflib.get_close_matches(fold(name), list(folded), n=2, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(folded[c]) for c in close)}?" if close else ""
    raise BadInputError(f"unknown camera {name!r}; the bundled ones are: {', '.join(CAMERAS)} "
                        f"(or random; 'blursynth cameras' lists them).{hint}")


def camera_names() -> list[str]:
    """The bundled camera profiles' names."""
    return list(CAMERAS)


def raw_noise_spec(noise) -> str | None:
    """``noise`` as the RAW path's drawn-levels spec, or None when it is something else.

    ``"model"`` (the log-linear model), ``"profile"`` (each pair's camera's noise
    profile), ``"profile:NAME"`` (a named profile, :data:`NOISE_PROFILES`), in any
    case, or ``"profile:FILE.toml"`` / ``.json`` (a calibration file,
    :func:`load_noise_profile`; the path kept as given); None for ranges, "off" and None.

    Raises
    ------
    BadInputError
        On ``profile:NAME`` with an unknown NAME, or a calibration file that is missing or
        malformed.

    Examples
    --------
    >>> raw_noise_spec("Profile:Darmstadt"), raw_noise_spec("0.001"), raw_noise_spec("model")
    ('profile:darmstadt', None, 'model')
    """
    if not isinstance(noise, str):
        return None
    text = noise.strip().lower()
    if text in ("model", "profile"):
        return text
    if text.startswith("profile:"):
        given = noise.strip().split(":", 1)[1].strip()
        if is_noise_file(given):
            load_noise_profile(given)
            return f"profile:{given}"
        name = given.lower()
        if name not in NOISE_PROFILES and "".join(name.split()) in {
                "".join(c.lower().split()) for c in CAMERAS}:
            raise BadInputError(f"{given!r} in --noise {noise!r} is a camera, not a noise profile; "
                                "--noise profile takes each pair's camera's own ('blursynth cameras' "
                                "lists them), --noise profile:NAME a named one: "
                                f"{', '.join(NOISE_PROFILES)}.")
        if name not in NOISE_PROFILES:
            raise BadInputError(f"unknown noise profile {name!r} in --noise {noise!r}; the bundled "
                                f"ones are: {', '.join(NOISE_PROFILES)} (or write --noise profile "
                                "for each pair's camera's own, or --noise profile:FILE.toml for a "
                                "calibration of your own).")
        return f"profile:{name}"
    return None


# -- calibration files (--noise profile:FILE.toml|.json) -------------------------------------
NOISE_FILE_SUFFIXES = (".toml", ".json")
NOISE_Z_CUT = 4.0  # a file's line draws its read normal cut at 4 sigma (checked in bounds at load)


def is_noise_file(name: str) -> bool:
    """Whether a ``profile:`` argument names a calibration file (ends in .toml or .json)."""
    return str(name).strip().lower().endswith(NOISE_FILE_SUFFIXES)


def check_noise_line(line) -> dict:
    """A noise line (``shot_log_range``, ``read_line``, ``source``) checked, as plain floats.

    The line's levels at both ends of its shot range, 4 sigma either side, must stay in the
    bounds ``--noise`` accepts, so no pair's draw can fail mid-run.

    Raises
    ------
    BadInputError
    """
    try:
        lo, hi = (float(v) for v in line["shot_log_range"])
        slope, intercept, sigma = (float(v) for v in line["read_line"])
        source = str(line.get("source", ""))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise BadInputError(f"a noise line needs shot_log_range [lo, hi] and read_line [slope, "
                            f"intercept, sigma]; got {line!r}.") from None
    if not all(math.isfinite(v) for v in (lo, hi, slope, intercept, sigma)) or lo > hi or sigma < 0:
        raise BadInputError(f"noise line {line!r}: needs finite numbers, lo <= hi and sigma >= 0.")
    for ln_shot in (lo, hi):
        shot = math.exp(ln_shot)
        for z in (-NOISE_Z_CUT, NOISE_Z_CUT):
            read = math.sqrt(math.exp(slope * ln_shot + intercept + sigma * z))
            if not (SHOT_BOUNDS[0] <= shot <= SHOT_BOUNDS[1] and read <= READ_BOUNDS[1]):
                raise BadInputError(
                    f"noise line reaches shot {shot:.3g}, read {read:.3g} (4 sigma), outside the "
                    f"bounds shot <= {SHOT_BOUNDS[1]:g}, read <= {READ_BOUNDS[1]:g}; check its units "
                    "(signal scaled to white = 1, read a standard deviation or O a variance).")
    return {"shot_log_range": [lo, hi], "read_line": [slope, intercept, sigma], "source": source}


def fit_noise_line(points) -> tuple:
    """(shot_log_range, read_line) from DNG NoiseProfile pairs (S, O): variance ``S x + O``.

    ``S`` is the shot level, ``O`` the read variance. ``ln O`` is fitted by least squares
    as a line in ``ln S`` (slope 0 and the mean when the points share one S), sigma the
    residuals' root mean square; the shot range spans the points' S. An entry of six
    numbers (``S_R O_R S_G O_G S_B O_B``, one pair per channel) counts as the channels'
    mean S and mean O (the RAW path draws one level for all channels).

    Examples
    --------
    >>> rng, line = fit_noise_line([[1e-3, 1e-6], [4e-3, 1.6e-5]])
    >>> [round(v, 6) + 0.0 for v in line]
    [2.0, 0.0, 0.0]
    """
    xs, ys = [], []
    for entry in points:
        v = [float(x) for x in entry]
        if len(v) == 6:
            v = [(v[0] + v[2] + v[4]) / 3, (v[1] + v[3] + v[5]) / 3]
        if len(v) != 2 or not all(math.isfinite(x) and x > 0 for x in v):
            raise BadInputError(f"a NoiseProfile entry is [S, O] or [S_R, O_R, S_G, O_G, S_B, O_B] "
                                f"of positive numbers; got {list(entry)!r}.")
        xs.append(math.log(v[0]))
        ys.append(math.log(v[1]))
    if not xs:
        raise BadInputError("dng_noise_profile is empty; give one [S, O] per DNG (per ISO).")
    x, y = np.array(xs), np.array(ys)
    if np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
    else:
        slope, intercept = 0.0, float(y.mean())
    resid = y - (slope * x + intercept)
    sigma = float(np.sqrt(np.mean(resid ** 2)))
    return (float(x.min()), float(x.max())), (float(slope), float(intercept), sigma)


_NOISE_FILES: dict = {}


def load_noise_profile(path) -> dict:
    """A camera's calibrated noise line from a TOML or JSON file (``--noise profile:FILE``).

    The file holds ``name`` (optional: the file's stem), ``source`` (optional: where the
    numbers come from) and either the line itself, ``shot_range = [lo, hi]`` (shot levels,
    log-uniform between) with ``read_line = [slope, intercept, sigma]`` (``ln(read**2) =
    slope ln(shot) + intercept + N(0, sigma**2)``), or ``dng_noise_profile``: a list of
    the DNG NoiseProfile tag's (S, O) pairs, one per DNG (:func:`fit_noise_line`). Levels
    are on the scale of the RAW signal with the white level at 1, as DNG's are.

    Returns
    -------
    profile : dict
        ``name``, ``shot_log_range``, ``read_line``, ``source`` (the file is read at
        every call, parsed once per contents and process).

    Raises
    ------
    BadInputError
        Missing, unreadable or malformed file, or a line outside ``--noise``'s bounds.
    """
    import os

    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise BadInputError(f"noise profile file {path!r} does not exist; give a .toml or .json "
                            "file with a calibrated noise line (docs/algorithms.md, Noise profiles).") from None
    except OSError as e:
        raise BadInputError(f"noise profile file {path!r} could not be read: {e}.") from None
    key = (path, data)  # the contents: an edited file is read again
    if key not in _NOISE_FILES:
        _NOISE_FILES[key] = _read_noise_file(path, data)
    return dict(_NOISE_FILES[key])


def _read_noise_file(path: str, raw: bytes) -> dict:
    import json
    import os

    try:
        if path.lower().endswith(".json"):
            data = json.loads(raw.decode("utf-8"))
        else:
            import tomllib

            data = tomllib.loads(raw.decode("utf-8"))
    except ValueError as e:  # TOMLDecodeError, JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadInputError(f"noise profile file {path!r} could not be read: {e}.") from None
    if not isinstance(data, dict):
        raise BadInputError(f"noise profile file {path!r} must hold a table (a JSON object).")
    allowed = {"name", "source", "shot_range", "read_line", "dng_noise_profile"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadInputError(f"noise profile file {path!r}: unknown key {unknown[0]!r}; expected "
                            f"{', '.join(sorted(allowed))}.")
    line_given, dng_given = "shot_range" in data or "read_line" in data, "dng_noise_profile" in data
    if line_given == dng_given:
        raise BadInputError(f"noise profile file {path!r} needs either shot_range and read_line, "
                            "or dng_noise_profile (a list of [S, O] pairs), not both or neither.")
    try:
        if dng_given:
            if not isinstance(data["dng_noise_profile"], list):
                raise TypeError
            shot_log_range, read_line = fit_noise_line(data["dng_noise_profile"])
        else:
            lo, hi = (float(v) for v in data["shot_range"])
            if not (lo > 0 and hi > 0):
                raise BadInputError(f"noise profile file {path!r}: shot_range must be two positive "
                                    f"levels; got {data['shot_range']!r}.")
            shot_log_range, read_line = (math.log(lo), math.log(hi)), data["read_line"]
        line = check_noise_line({"shot_log_range": shot_log_range, "read_line": read_line,
                                 "source": data.get("source", f"calibration file {os.path.basename(path)}")})
    except BadInputError as e:
        msg = str(e)
        raise BadInputError(msg if path in msg else f"noise profile file {path!r}: {msg}") from None
    except (KeyError, TypeError, ValueError):
        raise BadInputError(f"noise profile file {path!r}: shot_range must be [lo, hi], read_line "
                            "[slope, intercept, sigma] and dng_noise_profile a list of [S, O].") from None
    name = str(data.get("name") or os.path.splitext(os.path.basename(path))[0]).strip()
    if not name or name in (*NOISE_PROFILES, "model"):
        raise BadInputError(f"noise profile file {path!r}: name {name!r} is taken by a bundled "
                            "profile or empty; give the camera's name.")
    return {"name": name, **line}


def camera_noise_profile(camera: str, weights=None) -> str:
    """The noise profile ``--noise profile`` uses for a pair's camera: a :data:`NOISE_PROFILES`
    name, or ``"model"`` where the camera has no published calibration.

    A mix (``camera == "mix"``) takes the profile of its heaviest camera (the first of equal
    weights, in :data:`CAMERAS` order).
    """
    if camera == "mix" and weights:
        order = list(CAMERAS)
        camera = max(weights, key=lambda c: (weights[c], -order.index(c)))
    return CAMERA_NOISE.get(camera) or "model"
