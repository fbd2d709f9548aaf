"""The RAW path's options where they are shared: ``blur``, ``frames-average`` and ``bgan blur``.

Each command keeps its options as flat settings fields (``pipeline``, ``camera``,
``demosaic``, ``raw_bits``, ``noise``; the recipe keys are their names); this module
checks them the same way everywhere and draws one pair's camera, noise levels and JPEG
quality from that command's own keyed streams (:class:`RawStreams`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .._rng import sample_rng
from ..errors import BadInputError, SettingError, checking
from ..ops.raw_profiles import raw_noise_spec  # not ops.raw: an RGB run needs no RAW kernels

PIPELINES = ("rgb", "raw")


def noise_is_model(noise) -> bool:
    """``--noise model`` (or ``profile``, ``profile:NAME``): noise levels drawn per pair from the
    camera noise model (or a camera's noise profile, :func:`blursynth.ops.raw.raw_noise_spec`)."""
    return raw_noise_spec(noise) is not None


def noise_ranges(noise):
    """``noise`` as ``Degradations`` takes it: the shot/read ranges, or None for the noise model
    (whose levels :func:`noise_levels` passes to the camera instead)."""
    return None if noise_is_model(noise) else noise


def check_raw_options(pipeline, camera=None, demosaic=None, raw_bits=None, noise=None, *,
                      raw_only=()) -> None:
    """Refuse RAW options without ``--pipeline raw``, and bad RAW options with it.

    Parameters
    ----------
    pipeline : str
    camera, demosaic, raw_bits, noise
        As the settings hold them (None: not given).
    raw_only : sequence of (str, str)
        ``(option, field)`` of other given options that only the RAW path takes
        (e.g. ``("--jpeg", "jpeg")`` for frames-average).

    Raises
    ------
    SettingError
        Naming the field (a recipe points at its key).
    """
    if pipeline not in PIPELINES:
        raise SettingError(f"--pipeline must be rgb or raw; got {pipeline!r}.", "pipeline")
    given = [(f"--{n.replace('_', '-')}", n) for n, v in
             (("camera", camera), ("demosaic", demosaic), ("raw_bits", raw_bits)) if v is not None]
    with checking("noise"):
        spec = raw_noise_spec(noise)
    if spec is not None and pipeline != "raw":
        given.append((f"--noise {spec}", "noise"))
    given += list(raw_only)
    if pipeline != "raw":
        if given:
            option, name = given[0]
            raise SettingError(f"{option} is an option of the RAW path; add --pipeline raw.", name)
        return
    from ..ops import raw as rawops

    if camera is not None and not isinstance(camera, str):
        raise SettingError(f"camera must be one name or random; got {camera!r}.", "camera")
    if camera is not None and camera != "random":
        with checking("camera"):
            rawops.camera_key(camera)
    if demosaic is not None and demosaic not in rawops.DEMOSAIC_METHODS:
        raise SettingError(f"--demosaic must be one of {', '.join(rawops.DEMOSAIC_METHODS)}; "
                           f"got {demosaic!r}.", "demosaic")
    if raw_bits is not None:
        with checking("raw_bits"):
            if isinstance(raw_bits, (tuple, list)):
                if len(raw_bits) != 2:
                    raise BadInputError(f"raw bits must be N or [LO, HI]; got {raw_bits!r}.")
                lo, hi = (rawops.check_raw_bits(b) for b in raw_bits)
                if lo > hi:
                    raise BadInputError(f"raw bits range {raw_bits!r} has LO > HI.")
            else:
                rawops.check_raw_bits(raw_bits)


def check_raw_settings(settings, raw_only=("noise", "jpeg")) -> None:
    """:func:`check_raw_options` on a command's settings, then its ``noise`` and ``jpeg``.

    ``settings`` holds the flat RAW fields (``pipeline``, ``camera``, ``demosaic``,
    ``raw_bits``, ``noise``, ``jpeg``); ``raw_only`` names its fields that only the RAW
    path takes (``noise`` counts only when it gives levels, not the noise model).
    """
    from ..ops.degrade import Degradations

    model = noise_is_model(settings.noise)
    given = [(f"--{n.replace('_', '-')}", n) for n in raw_only
             if getattr(settings, n) is not None and not (n == "noise" and model)]
    check_raw_options(settings.pipeline, settings.camera, settings.demosaic, settings.raw_bits,
                      settings.noise, raw_only=given)
    for name in ("noise", "jpeg"):
        with checking(name):
            value = getattr(settings, name)
            Degradations.parse(**{name: noise_ranges(value) if name == "noise" else value})


BOOST_FIELDS = ("exposure_gain", "highlights", "highlight_threshold", "highlight_regions",
                "highlight_region_threshold")


def boost_options(settings) -> dict:
    """A settings object's exposure gain and highlight boost, as ``Degradations.parse`` takes them."""
    return {name: getattr(settings, name) for name in BOOST_FIELDS}


def check_boost_settings(settings) -> None:
    """Refuse bad ``--exposure-gain`` / ``--highlights`` options, naming the field.

    ``blur`` (both paths) and ``frames-average --pipeline raw`` check them the same way:
    each value, then the options that shape the boost without ``--highlights``, and the
    region threshold without ``--highlight-regions``.

    Raises
    ------
    SettingError
    """
    from ..ops.degrade import HIGHLIGHT_REGION_THRESHOLD, HIGHLIGHT_THRESHOLD, Degradations

    for name in BOOST_FIELDS[:4]:
        with checking(name):
            Degradations.parse(**{name: getattr(settings, name)})
    with checking("highlight_region_threshold"):
        Degradations.parse(highlight_threshold=settings.highlight_threshold,
                           highlight_regions=settings.highlight_regions,
                           highlight_region_threshold=settings.highlight_region_threshold)
    extra = Degradations.parse(**boost_options(settings))
    if extra.highlights is None:
        for name, value, default in (
            ("highlight_threshold", extra.highlight_threshold, HIGHLIGHT_THRESHOLD),
            ("highlight_regions", extra.highlight_regions, None),
            ("highlight_region_threshold", extra.highlight_region_threshold,
             HIGHLIGHT_REGION_THRESHOLD),
        ):
            if value != default:
                raise SettingError(f"--{name.replace('_', '-')} needs --highlights (the boost "
                                   "it shapes).", name)
    if extra.highlight_regions is None \
            and extra.highlight_region_threshold != HIGHLIGHT_REGION_THRESHOLD:
        raise SettingError("--highlight-region-threshold needs --highlight-regions (the "
                           "regions it finds).", "highlight_region_threshold")


def raw_choices(camera=None, demosaic=None, raw_bits=None) -> dict:
    """The RAW path's choices, defaults filled in (keyword arguments of ``draw_raw_params``)."""
    bits = list(raw_bits) if isinstance(raw_bits, (tuple, list)) else raw_bits
    return {"camera": camera or "random", "demosaic": demosaic or "malvar", "raw_bits": bits}


def raw_recipe(camera=None, demosaic=None, raw_bits=None, noise=None, jpeg=None, *,
               degradations=True, boost=None) -> dict:
    """What a RAW-path run records in its recipe / fingerprint (none of it on the RGB path).

    With ``degradations=False`` the noise ranges and JPEG are left out (``blur`` records
    them with its other degradations); ``boost`` (:func:`boost_options`) adds the exposure
    gain and highlight boost to them (recorded only when on).
    """
    from ..ops.degrade import Degradations
    from ..ops.raw import RAW_VERSION, is_noise_file, load_noise_profile, raw_noise_spec

    spec = raw_noise_spec(noise)
    d = {**raw_choices(camera, demosaic, raw_bits), "noise": spec or "ranges"}
    if spec is not None and is_noise_file(spec.split(":", 1)[-1]):
        # The calibration's numbers, not only its path: they decide the bytes.
        d["noise_line"] = load_noise_profile(spec.split(":", 1)[1])
    if degradations:
        d["degradations"] = Degradations.parse(noise=noise_ranges(noise), jpeg=jpeg,
                                               **(boost or {})).describe()
    d["raw_version"] = RAW_VERSION
    return d


@dataclass(frozen=True)
class RawStreams:
    """A command's stream numbers (``sample_rng(seed, index, N)``) for the RAW path's draws."""

    camera: int  # ops.raw.draw_raw_params
    degrade: int  # noise levels from --noise ranges, the JPEG quality
    noise: int  # the noise field, one normal per mosaic site


def draw_raw_row(seed: int, index: int, streams: RawStreams, *, camera=None, demosaic=None,
                 raw_bits=None, noise=None, jpeg=None, boost=None) -> dict:
    """Pair ``index``'s RAW-path params: ``raw`` (the camera), streams, ``jpeg_quality``.

    ``boost`` (:func:`boost_options`): the exposure gain and highlight boost, drawn from
    the degradations' stream with the noise levels and the JPEG quality (that stream's draws
    come in a fixed number and order, so turning the boost on moves none of them).

    Returns
    -------
    params : dict
        ``raw`` (:func:`blursynth.ops.raw.draw_raw_params`'s dict), ``raw_stream``;
        ``noise_stream`` when the camera's noise is on; ``jpeg_quality`` when ``jpeg``;
        ``exposure_gain``, ``highlight_gain``, ``highlight_threshold`` (and the region
        options) when on.
    """
    from ..ops.degrade import Degradations
    from ..ops.raw import draw_raw_params

    drawn = Degradations.parse(noise=noise_ranges(noise), jpeg=jpeg, **(boost or {})).draw(
        sample_rng(seed, index, streams.degrade))
    levels = noise_levels(noise, drawn.pop("shot_noise", None), drawn.pop("read_noise", None))
    raw = draw_raw_params(sample_rng(seed, index, streams.camera), noise=levels,
                          **raw_choices(camera, demosaic, raw_bits))
    params = {"raw": raw, "raw_stream": [int(seed), int(index), streams.camera]}
    if raw["shot_noise"] or raw["read_noise"]:
        params["noise_stream"] = [int(seed), int(index), streams.noise]
    params.update(drawn)  # jpeg_quality, the boost
    return params


def noise_levels(noise, shot=None, read=None):
    """``draw_raw_params``'s ``noise``: the model / profile spec ``noise`` names, else the
    levels drawn from ``noise``'s ranges (``shot``, ``read``; None: not drawn), or ``"off"``."""
    spec = raw_noise_spec(noise)
    if spec is not None:
        return spec
    if shot is None and read is None:
        return "off"
    return (shot or 0.0, read or 0.0)


def noise_rng(params: dict):
    """The generator of a RAW-path row's noise field (None when its noise is off)."""
    stream = params.get("noise_stream")
    return None if stream is None else sample_rng(*stream)
