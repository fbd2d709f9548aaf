"""Scene blur's settings (``blursynth blur --motion camera6d|scene``): its fields and their
checks, the numbers that bound them, and the part of a run's recipe they make.

The renderer is :mod:`blursynth.pairs.scene`; these checks also guard ``render-clip``'s scene
options (:func:`blursynth.sources.render_scene.check_clip_scene_settings`).
"""

from __future__ import annotations

import math

from ..errors import BadInputError, SettingError

STREAM_DEPTH = 11  # defocus: the random depth and the lens
STREAM_ROLLING = 12  # the rolling shutter's read-out fraction

MOTIONS = ("uniform", "camera6d", "scene")
REFERENCES = ("middle", "start")
OBJECT_KINDS = ("cutout", "leaves")
#: BlurSettings fields only scene blur reads (a uniform recipe records none of them).
SCENE_FIELDS = ("motion", "focal_px", "reference", "rolling_shutter", "objects", "object_kind",
                "object_masks", "defocus", "depth", "defocus_px", "aperture_blades", "psf_grid")
DEFAULT_OBJECTS = "1-3"
DEFAULT_DEFOCUS_PX = "2-8"
# Depths seen by the camera are in units of the window's median depth; nearer than this they are
# treated as this near: the translations' parallax at most 4x the median plane's. A choice that
# bounds the margin and the sub-frame count (a plane 1/100 as far moves 100x as much), not a
# measurement.
NEAREST_PARALLAX_DEPTH = 0.25
MAX_DEFOCUS_PX = 64
MAX_OBJECTS = 32


def render_device(motion, device: str) -> str:
    """Where pairs of ``--motion`` render: ``device``, except for scene blur (camera6d, scene),
    whose Numba loops run on the CPU whatever ``device`` says.

    Examples
    --------
    >>> render_device("scene", "cuda"), render_device("uniform", "cuda")
    ('cpu', 'cuda')
    """
    return "cpu" if motion in ("camera6d", "scene") else device


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")


def check_scene_settings(s) -> None:
    """One-line :class:`SettingError` (naming the field) for scene options that do not hold.

    ``s`` is a :class:`~blursynth.pairs.shake.BlurSettings`.
    """
    if s.motion not in MOTIONS:
        raise SettingError(f"--motion must be one of {', '.join(MOTIONS)}; got {s.motion!r}.",
                           "motion")
    if s.motion == "uniform":
        defaults = {"focal_px": None, "reference": "middle", "rolling_shutter": None, "objects": None,
                    "object_kind": "cutout", "object_masks": None, "defocus": False, "depth": None,
                    "defocus_px": None, "aperture_blades": 0, "psf_grid": 5}
        for field, default in defaults.items():
            if getattr(s, field) != default:
                raise SettingError(f"{_option(field)} is a scene-blur option; add --motion camera6d "
                                   "(or scene, for moving objects).", field)
        return
    if s.focal_px is not None:
        f = s.focal_px
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not (math.isfinite(f) and f > 0):
            raise SettingError(f"--focal-px must be a positive number of pixels; got {f!r}.", "focal_px")
    if s.reference not in REFERENCES:
        raise SettingError(f"--reference must be middle or start; got {s.reference!r}.", "reference")
    if s.rolling_shutter is not None:
        setting_range(s.rolling_shutter, "rolling_shutter", (0.0, 1.0))
    if s.motion != "scene":
        for field in ("objects", "object_masks"):
            if getattr(s, field) is not None:
                raise SettingError(f"{_option(field)} moves objects: it needs --motion scene.", field)
        if s.object_kind != "cutout":
            raise SettingError("--object-kind moves objects: it needs --motion scene.", "object_kind")
    else:
        lo, hi = object_count_range(s.objects)
        if s.object_kind not in OBJECT_KINDS:
            raise SettingError(f"--object-kind must be cutout or leaves; got {s.object_kind!r}.",
                               "object_kind")
        if s.object_masks is not None and s.object_kind == "leaves":
            raise SettingError("--object-masks moves masked parts of the other photos, --object-kind leaves "
                               "draws disks instead; give one of them.", "object_masks")
        if s.object_masks is not None:
            from pathlib import Path

            if not Path(s.object_masks).is_dir():
                raise SettingError(f"--object-masks {s.object_masks}: no such folder; expected a folder of "
                                   "alpha PNGs named as the photos (<stem>.png).", "object_masks")
    for field in ("depth", "defocus_px"):
        if getattr(s, field) is not None and not s.defocus:
            raise SettingError(f"{_option(field)} is a defocus option: add --defocus.", field)
    if s.aperture_blades != 0 and not s.defocus:
        raise SettingError("--aperture-blades is a defocus option: add --defocus.", "aperture_blades")
    if s.defocus:
        setting_range(s.defocus_px or DEFAULT_DEFOCUS_PX, "defocus_px", (0.0, MAX_DEFOCUS_PX))
        b = s.aperture_blades
        if isinstance(b, bool) or not isinstance(b, int) or not (b == 0 or 3 <= b <= 16):
            raise SettingError(f"--aperture-blades must be 0 (round) or 3-16; got {b!r}.",
                               "aperture_blades")
    if s.depth not in (None, "random"):
        from pathlib import Path

        if not Path(s.depth).is_dir():
            raise SettingError(f"--depth must be 'random' or a folder of depth maps (<photo stem>.png); "
                               f"{s.depth} is not a folder.", "depth")
    if isinstance(s.psf_grid, bool) or not isinstance(s.psf_grid, int) or not 1 <= s.psf_grid <= 15:
        raise SettingError(f"--psf-grid must be a whole number in [1, 15]; got {s.psf_grid!r}.",
                           "psf_grid")
    if s.border != "reflect":
        raise SettingError(f"--border {s.border} is uniform blur's; scene blur reads the photo around the "
                           "window and reflects beyond its edges (leave --border out).", "border")
    if s.saturation is not None:
        raise SettingError("--saturation is the old name of --exposure-gain; with --motion camera6d|scene "
                           "write --exposure-gain.", "saturation")
    for field, given in (("kernels", s.kernels is not None), ("psf_source", s.psf_source != "bank"),
                         ("exposure", s.exposure is not None)):
        if given:
            raise SettingError(f"{_option(field)} chooses uniform blur's PSF; with --motion {s.motion} a "
                               "camera path drawn per pair makes the blur (leave it out).", field)
    # render-clip checks its options through here too, and has neither these nor --device.
    defaults = getattr(type(s), "__dataclass_fields__", {})
    for field, option in (("fresh_length_px", "--length"), ("fresh_canvas", "--canvas")):
        if field in defaults and getattr(s, field) != defaults[field].default:
            raise SettingError(f"{option} sizes uniform blur's fresh trajectories; with --motion {s.motion} the "
                               "camera path drawn per pair sets the blur's extent (leave it out).", field)
    if str(getattr(s, "device", "cpu")) not in ("auto", "cpu"):
        raise SettingError(f"--device {s.device}: scene blur renders on the CPU (a Numba loop: the same bytes on "
                           "every machine); leave --device out or give cpu.", "device")


def setting_range(text, field, bounds):
    """``N`` or ``LO-HI`` for the BlurSettings field ``field`` as a Range within ``bounds``; a bad
    one is a :class:`SettingError` naming the field."""
    from ..ops.degrade import Range

    try:
        return Range.parse(text, name=_option(field), bounds=bounds)
    except BadInputError as exc:
        raise SettingError(str(exc), field) from None


def object_count_range(text) -> tuple[int, int]:
    """``--objects`` (``N`` or ``LO-HI``; None: the default 1-3) as whole (lo, hi)."""
    r = setting_range(DEFAULT_OBJECTS if text is None else text, "objects", (0, MAX_OBJECTS))
    if r.lo != int(r.lo) or r.hi != int(r.hi):
        raise SettingError(f"--objects must be whole numbers N or LO-HI; got {text!r}.", "objects")
    return int(r.lo), int(r.hi)


def scene_recipe(s) -> dict:
    """The scene settings that determine the bytes (folders are inputs: their contents are
    recorded per row)."""
    from ..ops import camera6d, warp

    d = {"motion": s.motion, "focal_px": s.focal_px, "reference": s.reference,
         "rolling_shutter": s.rolling_shutter, "defocus": bool(s.defocus),
         "depth": None if not s.defocus else ("folder" if s.depth not in (None, "random") else "random"),
         "psf_grid": s.psf_grid, "camera_version": getattr(camera6d, "VERSION", 1),
         "warp_version": getattr(warp, "VERSION", 1)}
    if s.defocus:
        d.update(defocus_px=s.defocus_px or DEFAULT_DEFOCUS_PX, aperture_blades=s.aperture_blades)
    if s.motion == "scene":
        d.update(objects=list(object_count_range(s.objects)), object_kind=s.object_kind,
                 object_masks=s.object_masks is not None)
    return d
