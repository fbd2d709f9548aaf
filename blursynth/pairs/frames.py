"""Pairs from high-frame-rate video: settings, the plan, rows, and rebuilding one pair.

Each pair averages a window of consecutive frames in linear light, exactly
(:class:`~blursynth.ops.average.LinearAverager`), and takes the window's middle
frame as sharp. The averaging scheduler, which decodes on the caller's thread while a
background thread sums the previous window, is :mod:`blursynth.pairs.frame_average`.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._rng import sample_rng
from .._stopping import stop_if_asked
from ..errors import BadInputError, SettingError
from ..ops.color import CameraResponse, crf_option_spec, describe_crf, draw_response, parse_crf_option
from ..ops.degrade import HIGHLIGHT_REGION_THRESHOLD, HIGHLIGHT_THRESHOLD
from ..sources.render import known_motion
from ..sources.video import SourceInfo, expand_inputs_named, iter_frames, probe_source, source_bytes
from ..sources.windows import (
    CUT_THRESHOLD, Window, cut_in, exposure_frames, plan_windows, span_text, watch_cuts, window_length,
)
from .frame_average import average_windows
from .window_psf import path_psf_side, window_path, window_psf_clipped


#: Stream keys of a frames-average pair's RAW-path draws, ``sample_rng(seed, pair_index, N)``
#: (1 is the window length's, :data:`~blursynth.sources.windows.WINDOW_STREAM`).
STREAM_RAW = 5  # the camera (ops.raw.draw_raw_params)
STREAM_RAW_DEGRADE = 8  # noise levels from --noise ranges, the JPEG quality
STREAM_RAW_NOISE = 6  # the noise field, one normal per mosaic site
#: FramesAverageSettings fields of the RAW path (recorded only when it is on).
RAW_FIELDS = ("pipeline", "camera", "demosaic", "raw_bits", "noise", "jpeg", "exposure_gain", "highlights",
              "highlight_threshold", "highlight_regions", "highlight_region_threshold")


#: Stream key of a pair's camera response under ``--crf random``, ``sample_rng(seed, pair_index, 7)``.
STREAM_CRF = 7


@dataclass(frozen=True)
class FramesAverageSettings:
    """Settings of ``blursynth frames-average`` (everything that decides the bytes but the inputs).

    Attributes
    ----------
    window_min, window_max : int
        Window length range in real frames (one value: ``window_min == window_max``); by
        default 5-25, as ``--window`` (and a recipe step without ``window``).
    seed : int
    overlap, gap : int
        Frames shared by / skipped between consecutive windows.
    odd_only : bool
    crf : str
        Camera response, as text (``CameraResponse.parse``; the plan records the canonical form),
        or ``random`` / ``random:CURVE,...``: each pair's drawn by :meth:`response_of`.
    interpolate : int
        K: K - 1 flow-interpolated frames between consecutive real frames.
    fps : float or None
        Declared capture rate (overrides the container).
    max_pairs : int or None
    png_level : int or None
        None for fpng, 0-9 for zlib.
    shard_size : int
    psf_max_size : int or None
        Largest side of the ground-truth PSF of a render-clip source (>= 3; an even value
        means the odd size below it). None sizes each PSF to its window's camera path; a
        cap drops the mass outside, recorded per row as ``psf_clipped``.
    exposure_ms : (float, float) or None
        Exposure range in milliseconds, in place of ``window_min``/``window_max``: each
        source's windows are the whole frame counts of that exposure at its own frame rate
        (:func:`~blursynth.sources.windows.exposure_frames`), drawn per pair.
    cut_threshold : float
        In (0, 1]: consecutive frames whose colour-histogram distance
        (:func:`~blursynth.sources.windows.cut_distance`) exceeds it are a scene cut, and a
        window spanning one is skipped (listed in the manifest); 1 turns the check off.
    pipeline : {"rgb", "raw"}
        ``raw``: the window's linear-light mean is unprocessed to a camera's RAW space,
        clipped at white, mosaicked, given sensor noise, optionally quantised, developed
        and encoded (:func:`blursynth.ops.blur.develop_raw_pair`); the sharp frame takes
        the same chain without noise.
    camera, demosaic, raw_bits : RAW path only
        As ``blursynth blur``'s (:class:`blursynth.pairs.shake.BlurSettings`).
    noise : str or None
        RAW path only: ``model`` (levels drawn per pair from the camera noise model) or
        ``SHOT[,READ]`` ranges, as ``blur --noise``.
    jpeg : str or None
        RAW path only: JPEG quality range of the blurred image, e.g. ``70-95``.
    exposure_gain, highlights, highlight_threshold, highlight_regions, highlight_region_threshold
        RAW path only, as ``blur``'s; the boost is decided on the window's linear mean and
        multiplies its camera colours before the clip at white
        (:func:`blursynth.ops.blur.develop_raw_images`); the sharp frame is not boosted.
    """

    window_min: int = 5
    window_max: int = 25
    seed: int = 0
    overlap: int = 0
    gap: int = 0
    odd_only: bool = False
    crf: str = "gamma:2.2"
    interpolate: int = 1
    fps: float | None = None
    max_pairs: int | None = None
    png_level: int | None = None
    shard_size: int = 256
    psf_max_size: int | None = None
    cut_threshold: float = CUT_THRESHOLD
    exposure_ms: tuple | None = None
    pipeline: str = "rgb"
    camera: str | None = None
    demosaic: str | None = None
    raw_bits: int | tuple | None = None
    noise: str | None = None
    jpeg: str | None = None
    exposure_gain: str | None = None
    highlights: str | None = None
    highlight_threshold: float = HIGHLIGHT_THRESHOLD
    highlight_regions: int | None = None
    highlight_region_threshold: float = HIGHLIGHT_REGION_THRESHOLD

    def __post_init__(self):
        self._check_raw()
        try:
            parse_crf_option(self.crf)
        except BadInputError as exc:
            raise SettingError(str(exc), "crf") from None
        if self.exposure_ms is not None:
            value = self.exposure_ms
            try:
                lo, hi = (float(v) for v in value)
            except (TypeError, ValueError):
                raise SettingError(f"--exposure-ms must be milliseconds low-high, e.g. 8-30; got {value!r}.",
                                   "exposure_ms") from None
            if not 0 < lo <= hi < float("inf"):
                raise SettingError(f"--exposure-ms must be 0 < low <= high milliseconds; got {value!r}.",
                                   "exposure_ms")
            object.__setattr__(self, "exposure_ms", (lo, hi))
        if not isinstance(self.cut_threshold, (int, float)) or not 0 < self.cut_threshold <= 1:
            raise SettingError(
                f"--cut-threshold must be a number in (0, 1]; got {self.cut_threshold!r}. It is the colour "
                f"histogram distance that marks a scene cut (default {CUT_THRESHOLD}); 1 turns the check off.",
                "cut_threshold")
        if self.psf_max_size is not None and (not isinstance(self.psf_max_size, int) or self.psf_max_size < 3):
            raise SettingError(
                f"--psf-max-size must be a whole number of pixels, at least 3; got {self.psf_max_size!r}. "
                "Leave it out to size each ground-truth PSF to its camera path.", "psf_max_size")

    def _check_raw(self):
        from .raw_settings import check_boost_settings, check_raw_settings

        check_raw_settings(self, ("noise", "jpeg", "exposure_gain", "highlights", "highlight_regions"))
        check_boost_settings(self)

    @property
    def responses(self) -> tuple:
        """The curves a pair can have: ``crf``'s one, or the ``random`` set."""
        return parse_crf_option(self.crf)

    def response_of(self, index: int) -> CameraResponse:
        """Pair ``index``'s camera response (``random``: drawn from stream :data:`STREAM_CRF`)."""
        return draw_response(self.responses, sample_rng(self.seed, index, STREAM_CRF))

    def recorded(self) -> dict:
        """The settings as the fingerprint and the manifest record them.

        The RAW path's fields appear only on it (as ``pipeline`` and ``raw``): an RGB
        run's record and fingerprint hold no RAW keys.
        """
        d = dict(self.__dict__)
        for key in RAW_FIELDS:
            d.pop(key)
        if self.pipeline == "raw":
            from .raw_settings import boost_options, raw_recipe

            d["pipeline"] = "raw"
            d["raw"] = raw_recipe(self.camera, self.demosaic, self.raw_bits, self.noise, self.jpeg,
                                  boost=boost_options(self))
        return d


@dataclass(frozen=True)
class FramesPlan:
    """A checked run: sources, windows and fingerprint, before anything is written."""

    sources: tuple
    windows: tuple
    settings: FramesAverageSettings
    fingerprint: str
    positions: tuple = ()  # per source: (n_frames, 2) camera path from a render-clip sidecar, or None
    names: tuple = ()  # per source: its location-free name (see expand_inputs_named)
    ranges: tuple = ()  # per source: (window_min, window_max) in frames, with --exposure-ms
    scenes: tuple = ()  # per source: a render-clip --motion camera6d|scene sidecar, or None

    @property
    def n_frames(self) -> int:
        """Real frames decoded to make every pair: each source's span from first to last window."""
        spans = {}
        for w in self.windows:
            lo, hi = spans.get(w.source, (w.start, w.stop))
            spans[w.source] = (min(lo, w.start), max(hi, w.stop))
        return sum(hi - lo for lo, hi in spans.values())


def plan_frames_average(inputs, settings: FramesAverageSettings) -> FramesPlan:
    """Probe every input and lay out the windows; raises BadInputError before any output exists.

    Parameters
    ----------
    inputs : sequence of str or Path
        Videos, frame folders, or folders of those.
    settings : FramesAverageSettings

    Returns
    -------
    plan : FramesPlan
    """
    from ..config import fingerprint

    if settings.window_min < 2 or settings.window_max < settings.window_min:
        raise BadInputError(
            f"window lengths must satisfy 2 <= min <= max; got {span_text(settings.window_min, settings.window_max)}."
        )
    if not 1 <= settings.interpolate <= 16:
        raise BadInputError(f"--interpolate must be in 1..16; got {settings.interpolate}.")
    crf = crf_option_spec(settings.crf)  # the canonical text (random: and its set), as recorded
    named = expand_inputs_named(inputs)
    sources = tuple(probe_source(p, fps=settings.fps) for p, _ in named)
    names = tuple(name for _, name in named)
    if settings.exposure_ms is not None:
        ranges = [exposure_frames(settings.exposure_ms, s.fps) for s in sources]
        lo_ms, hi_ms = settings.exposure_ms
        asked = [f"--exposure-ms {span_text(lo_ms, hi_ms)} at {s.fps:g} fps" for s in sources]
        # What the manifest records as the window range: the lengths drawn over all inputs.
        settings = FramesAverageSettings(**{**settings.__dict__, "window_min": min(r[0] for r in ranges),
                                            "window_max": max(r[1] for r in ranges)})
    else:
        ranges = [(settings.window_min, settings.window_max)] * len(sources)
        asked = [f"--window {span_text(settings.window_min, settings.window_max)}"] * len(sources)
    for info, (lo, _), how in zip(sources, ranges, asked):
        if info.n_frames < lo:
            raise BadInputError(
                f"'{info.path}' has {info.n_frames} frames, fewer than the shortest window "
                f"({lo}, {how}); use a shorter window or a longer video."
            )
    windows = plan_windows(
        [s.n_frames for s in sources], window_min=settings.window_min, window_max=settings.window_max,
        seed=settings.seed, overlap=settings.overlap, gap=settings.gap, odd_only=settings.odd_only,
        max_pairs=settings.max_pairs, ranges=ranges,
    )
    if not windows:
        first = window_length(settings.seed, 0, *ranges[0], settings.odd_only)
        longest = max(s.n_frames for s in sources)
        raise BadInputError(
            f"no window fits in the inputs: the first pair drew {first} frames ({asked[0]}) and the "
            f"longest input has {longest}; keep the longest window at or below {longest} frames."
        )
    # The inputs by content identity (name, kind, frames, geometry, bytes), never by where they
    # are: the fingerprint goes into every row, so a path here would make the same run from
    # another directory write other bytes.
    record = {
        "command": "frames-average",
        "settings": {**settings.recorded(), "crf": crf},
        "sources": [
            {"name": name, "kind": s.kind, "n_frames": s.n_frames, "size": [s.height, s.width],
             "fps": s.fps, "bytes": source_bytes(s)}
            for s, name in zip(sources, names)
        ],
    }
    positions = tuple(known_motion(s) for s in sources)
    record["known_motion"] = [p is not None for p in positions]
    from ..sources.render_scene import known_scene

    scenes = tuple(known_scene(s) for s in sources)
    if any(scenes):  # recorded only then: other runs keep their fingerprints
        record["known_scene"] = [None if c is None else c["motion"] for c in scenes]
    if settings.psf_max_size is not None:
        _warn_clipped_psfs(windows, positions, settings)
    _warn_ghosting(sources, names, windows, positions, settings)
    return FramesPlan(sources, tuple(windows), FramesAverageSettings(**{**settings.__dict__, "crf": crf}),
                      fingerprint(record), positions, names,
                      tuple(ranges) if settings.exposure_ms is not None else (),
                      scenes if any(scenes) else ())


class FramesAverageWarning(UserWarning):
    """What a frames-average run should tell its user: clipped ground-truth PSFs, ghosting, scene cuts."""


def _warn_clipped_psfs(windows, positions, settings: FramesAverageSettings) -> None:
    """One warning for the windows whose camera path a ``psf_max_size`` cap cuts."""
    cap = settings.psf_max_size if settings.psf_max_size % 2 else settings.psf_max_size - 1
    sides = [path_psf_side(window_path(positions[w.source], w, settings.interpolate))
             for w in windows if positions[w.source] is not None]
    over = [side for side in sides if side > cap]
    if over:
        warnings.warn(FramesAverageWarning(
            f"{len(over)} of {len(sides)} ground-truth PSFs are larger than --psf-max-size "
            f"{settings.psf_max_size} (paths need up to {max(over)} px): the mass outside is dropped, "
            "the rest renormalised, and each row's params.psf_clipped records the fraction dropped. "
            "Leave --psf-max-size out to keep whole paths."))


#: Steps between averaged frames longer than this (in pixels) show as separate copies of a
#: moving edge (ghosting) rather than a smooth blur.
GHOST_STEP_PX = 2.0


def source_motion_px(info: SourceInfo, windows, positions=None):
    """Motion between consecutive frames of a source, in pixels per frame, and how it was found.

    With a render-clip camera path, the longest step of the path over the windows; otherwise
    :func:`~blursynth.sources.flow.frame_motion_px` at the sharp frame of the first, middle and
    last window (two frames decoded each), the largest of the three.

    Returns
    -------
    motion_px : float or None
        None where it cannot be measured (frames under 16 px a side).
    how : str
    """
    if positions is not None:
        steps = [np.hypot(*np.diff(positions[w.start:w.stop], axis=0).T).max() for w in windows]
        return float(max(steps)), "camera path"
    from ..sources.flow import frame_motion_px

    measured = []
    for w in dict.fromkeys([windows[0], windows[len(windows) // 2], windows[-1]]):
        t = w.sharp if w.sharp + 1 < w.stop else w.start
        frames = [f for _, f in iter_frames(info, t, t + 2)]
        if len(frames) == 2:
            motion = frame_motion_px(*frames)
            if motion is not None:
                measured.append(motion)
    return (max(measured) if measured else None), "optical flow, 95th percentile"


def _warn_ghosting(sources, names, windows, positions, settings: FramesAverageSettings) -> None:
    """One warning for the sources that move too far between averaged frames, naming the worst."""
    k = settings.interpolate
    ghosted = []
    for i, info in enumerate(sources):
        mine = [w for w in windows if w.source == i]
        if not mine:
            continue
        motion, how = source_motion_px(info, mine, positions[i] if positions else None)
        if motion is not None and motion / k > GHOST_STEP_PX:
            ghosted.append((motion / info.fps, motion, how, info, names[i] if names else info.path))
    if not ghosted:
        return
    _, motion, how, info, name = max(ghosted, key=lambda g: g[0] * g[3].fps)
    need = math.ceil(motion)  # steps of at most 1 px
    if need <= 16:
        advice = f"use --interpolate {need} (optical-flow frames in between) or a higher frame rate"
    elif motion / 16 <= GHOST_STEP_PX:
        advice = (f"use --interpolate 16 (the most; it leaves {motion / 16:.1f} px steps) or a higher "
                  "frame rate")
    else:
        advice = f"--interpolate 16 (the most) still leaves {motion / 16:.1f} px steps: use video of a higher frame rate"
    others = f" (and {len(ghosted) - 1} more input{'s' if len(ghosted) > 2 else ''})" if len(ghosted) > 1 else ""
    warnings.warn(FramesAverageWarning(
        f"'{name}'{others} at {info.fps:g} fps moves about {motion:.1f} px between frames ({how}): averaged "
        f"frames {1000 / info.fps:.3g} ms apart{f' with --interpolate {k}' if k > 1 else ''} stack copies of "
        f"moving edges {motion / k:.1f} px apart (ghosting) instead of a smooth blur; {advice}."))


def pair_params(info: SourceInfo, win: Window, settings: FramesAverageSettings, name: str | None = None,
                source_index: int | None = None) -> dict:
    """Everything needed to rebuild a pair from its row (see :func:`rebuild_pair`).

    ``video`` is the source's location-free ``name`` (its path when no name is
    given) and ``source_index`` its place in the manifest's ``command.inputs``,
    which records the paths as given.
    """
    params = {
        "video": info.path if name is None else name,
        "source_index": win.source if source_index is None else source_index,
        "source_kind": info.kind,
        "frame_start": win.start,
        "frame_stop": win.stop,
        "window_frames": win.length,
        "sharp_frame": win.sharp,
        "sharp_offset_frames": win.sharp_offset_frames,
        "crf": settings.response_of(win.index).spec,
        "interpolate": settings.interpolate,
        "averaged_frames": (win.length - 1) * settings.interpolate + 1,
        "fps": info.fps,
        "time_start_s": win.start / info.fps,
        "exposure_s": win.length / info.fps,
    }
    if info.kind == "frames":
        params["sharp_file"] = Path(info.files[win.sharp]).name
        # What reading the window's frames changed (their EXIF orientation), each note once.
        notes = sorted({n for n in info.converted[win.start:win.stop] if n})
        if notes:
            params["converted"] = "; ".join(notes)
    return params


def iter_pairs(plan: FramesPlan, start: int = 0, stop: int | None = None, progress=None):
    """Make the pairs of windows ``start .. stop - 1``, streaming each source once.

    Every real frame of a source without a render-clip camera path passes through
    :func:`~blursynth.sources.windows.watch_cuts`; a window that spans a scene cut is still
    averaged (the running sum needs its frames) but yielded without images.

    Yields
    ------
    window : Window
    blurred, sharp : (H, W, 3) uint8 ndarray, or None for a window that spans a cut
        (on the RAW path ``blurred`` is the linear-light mean, float32)
    cut : tuple or None
        ``(first frame of the new shot, distance)`` of the window's first cut.
    """
    windows = plan.windows[start:stop]
    i = 0
    while i < len(windows):
        j = i
        while j < len(windows) and windows[j].source == windows[i].source:
            j += 1
        group = windows[i:j]
        info = plan.sources[group[0].source]
        stream = iter_frames(info, group[0].start, group[-1].stop)
        if progress is not None:
            stream = _counted(stream, progress)
        cuts = {}
        known = plan.positions and plan.positions[group[0].source] is not None
        # A render-clip clip is one continuous camera path: it has no cuts, and its fast pans
        # over small frames would only be mistaken for them.
        if plan.settings.cut_threshold < 1 and not known:
            stream = watch_cuts(stream, cuts, plan.settings.cut_threshold)
        # A window comes out of the averager only after all its frames went through watch_cuts.
        settings = plan.settings
        curves = settings.responses
        crf = (lambda w: settings.response_of(w.index)) if len(curves) > 1 else curves[0]
        for win, blurred, sharp in average_windows(stream, group, crf=crf,
                                                   interpolate=plan.settings.interpolate,
                                                   linear=plan.settings.pipeline == "raw"):
            cut = cut_in(win, cuts)
            if cut is None:
                yield win, blurred, sharp, None
            else:
                yield win, None, None, (cut, cuts[cut])
        i = j


def _counted(stream, bar):
    for item in stream:
        stop_if_asked()
        bar.update(1)
        yield item


class _FrameReporter:
    """Frames decoded, to the writer's bar (it may live in another process)."""

    def update(self, n):
        from ..dataset.executors import report_progress

        report_progress(n)


def _make_rows(start, stop, *, plan: FramesPlan, bar=None, keep_freed: bool = False):
    from ..dataset.schema import pair_row
    from ..dataset.writer import Skipped

    if keep_freed:
        from .._allocator import keep_freed_memory

        keep_freed_memory()
    for win, blurred, sharp, cut in iter_pairs(plan, start, stop,
                                               progress=_FrameReporter() if bar is None else bar):
        info = plan.sources[win.source]
        params = pair_params(info, win, plan.settings, plan.names[win.source] if plan.names else None)
        if cut is not None:
            # Never average across a cut: the pair would show two scenes at once.
            yield Skipped(win.index, "scene cut", {
                "video": params["video"], "source_index": params["source_index"],
                "frame_start": win.start, "frame_stop": win.stop, "cut_before_frame": cut[0],
                "cut_distance": cut[1]})
            continue
        positions = plan.positions[win.source] if plan.positions else None
        psf = None
        if positions is not None:
            psf, clipped = window_psf_clipped(positions, win, plan.settings.interpolate,
                                              max_size=plan.settings.psf_max_size)
            seg = positions[win.start:win.stop]
            params["psf_from"] = "render-clip camera path"
            params["psf_max_size"] = plan.settings.psf_max_size
            params["psf_clipped"] = round(clipped, 9)  # fraction of the path's mass outside the cap
            # Where the sharp frame's camera sits relative to the blur's centre of mass.
            params["sharp_offset_xy"] = (positions[win.sharp] - seg.mean(axis=0)).round(6).tolist()
        scene = plan.scenes[win.source] if plan.scenes else None
        extra = {}
        if plan.scenes:  # the run's schema has the scene columns: null where a clip has none
            extra = {"motion_mask": None, "psf_field": None}
        if scene is not None:
            from .window_scene import window_field, window_mask

            extra = {"psf_field": window_field(scene, win, plan.settings.interpolate),
                     "motion_mask": window_mask(scene, win, plan.settings.interpolate)}
            params["motion"] = scene["motion"]
            params["psf_grid"] = int(scene.get("psf_grid", 5))
            params["focal_px"] = scene["camera"]["focal_px"]
            if scene.get("objects"):
                params["n_objects"] = len(scene["objects"])
        s = plan.settings
        if s.pipeline == "raw":
            from .raw_settings import RawStreams, boost_options, draw_raw_row

            params.update(draw_raw_row(
                s.seed, win.index, RawStreams(STREAM_RAW, STREAM_RAW_DEGRADE, STREAM_RAW_NOISE),
                camera=s.camera, demosaic=s.demosaic, raw_bits=s.raw_bits, noise=s.noise, jpeg=s.jpeg,
                boost=boost_options(s)))
            blurred, sharp = raw_window_pair(blurred, sharp, params)
        yield pair_row(
            index=win.index, blurred=blurred, sharp=sharp, psf=psf, source="video",
            seed=plan.settings.seed, params=params,
            fingerprint=plan.fingerprint, png_level=plan.settings.png_level, **extra,
        )


def write_frame_pairs(inputs, out, settings: FramesAverageSettings, *, workers: int = 1,
                      overwrite: bool = False, progress: bool = True, keep_freed: bool = False,
                      options=None) -> dict:
    """Make (blurred, sharp) pairs from high-frame-rate video and write them as a dataset.

    Each pair averages a window of consecutive frames in linear light (exactly;
    see :mod:`blursynth.ops.average`) and takes the window's middle frame as sharp (the
    later middle frame for even windows, recorded as ``sharp_offset_frames =
    0.5``). Window lengths come from ``sample_rng(seed, pair_index, 1)``, so the
    dataset does not depend on ``workers``.

    Parameters
    ----------
    inputs : sequence of str or Path
    out : str or Path
        Dataset directory.
    settings : FramesAverageSettings
    workers : int
    overwrite : bool
    progress : bool
        Progress bar in frames.
    keep_freed : bool
        Call :func:`blursynth._allocator.keep_freed_memory` in every process that makes pairs
        (this one too when it makes them itself): faster, but such a process
        keeps its peak memory. The command line passes True.
    options : WriteOptions, optional
        From a recipe build: executor, ``--limit`` and the recipe recorded
        (:class:`blursynth.dataset.writer.WriteOptions`).

    Returns
    -------
    manifest : dict

    Examples
    --------
    >>> import tempfile
    >>> from blursynth.dataset.reader import PairDataset
    >>> from blursynth.sources.render import write_video
    >>> d = Path(tempfile.mkdtemp())
    >>> rng = np.random.default_rng(0)
    >>> write_video([rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(20)], d / "c.mkv", fps=240)
    20
    >>> settings = FramesAverageSettings(window_min=5, window_max=9, seed=1)
    >>> manifest = write_frame_pairs([d / "c.mkv"], d / "pairs", settings, progress=False)
    >>> row = PairDataset(d / "pairs")[0]
    >>> blurred, sharp = rebuild_pair(row, d / "c.mkv")
    >>> bool((blurred == row["blurred"]).all() and (sharp == row["sharp"]).all())
    True
    """
    import functools

    plan = plan_frames_average(inputs, settings)
    # In one process the bar is our own (it appears with the first frame, so an early
    # error prints alone); with a pool, every process reports its frames to the writer's bar.
    in_process = workers <= 1 or len(plan.windows) <= settings.shard_size
    bar = _LazyBar(plan.n_frames) if progress and in_process else None
    make_rows = functools.partial(_make_rows, plan=plan, bar=bar, keep_freed=keep_freed)
    try:
        return _write(out, plan, make_rows, workers, overwrite, progress and not in_process, options)
    finally:
        if bar is not None:
            bar.close()


class _LazyBar:
    """A frames progress bar that appears with the first frame, so an early error prints alone."""

    def __init__(self, total):
        self.total = total
        self.bar = None

    def update(self, n):
        if self.bar is None:
            from .._progress import progress_bar

            self.bar = progress_bar(total=self.total, unit="frame", desc="frames-average")
        self.bar.update(n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _write(out, plan, make_rows, workers, overwrite, progress, options):
    """The dataset writer, its bar (when ``progress``) counting the plan's frames."""
    from ..dataset.schema import PAIR_SCHEMA, SCENE_PAIR_SCHEMA
    from ..dataset.writer import write_dataset

    settings = plan.settings
    return write_dataset(
        out, kind="pairs", schema=SCENE_PAIR_SCHEMA if plan.scenes else PAIR_SCHEMA,
        n_items=len(plan.windows), shard_size=settings.shard_size,
        make_rows=make_rows, fingerprint=plan.fingerprint,
        command={"command": "frames-average", "inputs": [s.path for s in plan.sources],
                 **plan.settings.recorded()},
        workers=workers, overwrite=overwrite, unit="frame", desc="frames-average", progress=progress,
        progress_total=plan.n_frames, options=options,
        extra={"camera_response": describe_crf(settings.crf),
               **({"window_frames_per_input": [list(r) for r in plan.ranges]} if plan.ranges else {})},
    )


def raw_window_pair(mean, sharp_frame, params: dict, *, mosaic_only: bool = False):
    """A window through the RAW path, as the row's params say (``raw``, streams, ``crf``).

    The linear-light mean goes through :func:`blursynth.ops.blur.develop_raw_images` with
    the row's noise field and highlight boost (decided on the mean); the sharp frame, read
    in linear light as the mean is (:func:`~blursynth.ops.average.linear_frame`), takes the
    same chain without noise or boost (the exposure gain applies to both).
    With ``mosaic_only``: the blurred RAW mosaic.
    """
    from ..ops.average import linear_frame
    from ..ops.blur import develop_raw_images
    from .raw_settings import noise_rng
    from .shake import highlight_kwargs

    sharp = None if mosaic_only else linear_frame(sharp_frame, params["crf"])
    return develop_raw_images(mean, sharp, params["raw"], crf=params["crf"], noise_rng=noise_rng(params),
                              jpeg_quality=params.get("jpeg_quality"), mosaic_only=mosaic_only,
                              exposure_gain=params.get("exposure_gain"), **highlight_kwargs(params))


def rebuild_pair(row: dict, sources, *, mosaic_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Recompute a frames-average pair from its dataset row, by decoding its window again.

    Parameters
    ----------
    row : dict
        As :class:`blursynth.dataset.reader.PairDataset` returns it; only
        ``row["params"]`` is read (``source_index``, ``frame_start``,
        ``window_frames``, ``fps``, ``crf``, ``interpolate``).
    sources : str, Path, sequence of str or Path, or None
        Where the pair's source is now. A path (str or Path): the video file or
        frame folder itself. A sequence: the run's sources in order, as the
        manifest records them (``manifest["command"]["inputs"]``), of which the
        pair's is ``sources[params["source_index"]]``. None: ``params["video"]``
        (the source's name relative to the folder that held the run's input)
        from the current directory.

    mosaic_only : bool
        For a RAW-path row: return the blurred image's noisy RAW mosaic ((H, W) float32,
        white level 1.0) instead (``dataset export --raw``).

    Returns
    -------
    blurred, sharp : (H, W, 3) uint8 ndarray
        Equal to the row's images while the source is unchanged.

    Raises
    ------
    BadInputError
        The source is missing or no longer holds the window's frames.
    """
    params = row["params"]
    if sources is None:
        path = params["video"]
    elif isinstance(sources, (str, os.PathLike)):
        path = str(sources)
    else:
        path = str(sources[int(params["source_index"])])
    info = probe_source(path, fps=params["fps"])
    win = Window(0, 0, int(params["frame_start"]), int(params["window_frames"]))
    raw = params.get("raw") is not None
    if mosaic_only and not raw:
        raise BadInputError(f"pair {row.get('id', '?')} was made on the RGB path; it has no RAW mosaic.")
    for _, blurred, sharp in average_windows(iter_frames(info, win.start, win.stop), [win],
                                             crf=params["crf"], interpolate=int(params["interpolate"]),
                                             linear=raw):
        if raw:
            return raw_window_pair(blurred, sharp, params, mosaic_only=mosaic_only)
        return blurred, sharp
    raise BadInputError(f"'{path}' no longer holds frames {win.start}..{win.stop - 1}.")
