"""The keyed streams of a blur pair and the draws every motion shares (camera response,
degradations, RAW camera), apart from :mod:`blursynth.pairs.shake` so that scene blur
(:mod:`blursynth.pairs.scene`) draws them the same way without importing it."""

from __future__ import annotations

from .._rng import sample_rng
from ..errors import BadInputError
from ..ops.color import draw_response, parse_crf_option
from .raw_settings import noise_levels, raw_choices

# Independent generator streams per pair: adding a stage never changes the
# numbers another stage draws.
STREAM_KERNEL = 1
STREAM_CROP = 2
STREAM_DEGRADE = 3
STREAM_NOISE = 4
STREAM_RAW = 5  # the RAW path's camera (ops.raw.draw_raw_params)
STREAM_RAW_NOISE = 6  # the RAW path's noise field, one normal per mosaic site
STREAM_CRF = 7  # --crf random: the pair's camera response, one integer


def draw_crop_window(seed: int, index: int, photo_hw, window_hw, photo) -> tuple[int, int]:
    """Pair ``index``'s crop window (stream 2): the top-left ``(y0, x0)`` of a ``window_hw``
    window drawn uniformly in a photo of ``photo_hw``; every motion draws it this way.

    Raises :class:`BadInputError` naming ``photo`` when the window does not fit: the plan
    checked header sizes, and a file whose pixels disagree lands here.
    """
    h, w = photo_hw
    ch, cw = window_hw
    if ch > h or cw > w:
        raise BadInputError(
            f"photo {photo} decodes to {h}x{w}, smaller than the {ch}x{cw} window "
            "this pair needs; use a smaller --crop or remove the photo."
        )
    crng = sample_rng(seed, index, STREAM_CROP)
    y0 = int(crng.integers(h - ch + 1))
    x0 = int(crng.integers(w - cw + 1))
    return y0, x0


def draw_degradations(s, index: int, params: dict) -> None:
    """Draw pair ``index``'s camera response, degradations and RAW camera into ``params``
    (streams 3, 5, 7; the noise field's stream is named): after the blur, every motion alike.

    ``s`` is the run's :class:`~blursynth.pairs.shake.BlurSettings`.
    """
    params.update(crf=draw_response(parse_crf_option(s.crf), sample_rng(s.seed, index, STREAM_CRF)).spec,
                  border=s.border)
    params.update(s.degradations().draw(sample_rng(s.seed, index, STREAM_DEGRADE)))
    if s.pipeline == "raw":
        params["raw"] = _draw_raw(s, index, params)
        if params["raw"]["shot_noise"] or params["raw"]["read_noise"]:
            params["noise_stream"] = [s.seed, index, STREAM_RAW_NOISE]
    elif "shot_noise" in params or "read_noise" in params:
        params["noise_stream"] = [s.seed, index, STREAM_NOISE]


def _draw_raw(s, index: int, params: dict) -> dict:
    """The RAW path's camera for pair ``index``; moves --noise's drawn levels into it."""
    from ..ops.raw import draw_raw_params

    levels = noise_levels(s.noise, params.pop("shot_noise", None), params.pop("read_noise", None))
    return draw_raw_params(sample_rng(s.seed, index, STREAM_RAW), noise=levels,
                           **raw_choices(s.camera, s.demosaic, s.raw_bits))


def resize_param(resize):
    """``resize`` as a row records it: None, a scale, or ``[width, height]``."""
    if resize is None or isinstance(resize, (int, float)):
        return resize
    return [int(v) for v in resize]
