"""Trajectory blur (``blursynth blur``): pairs from sharp photos by PSF blur in linear light.

The pipeline of one pair, every step a pure function of the photo, the PSF
and numbers drawn from the pair's own generators: photo (uint8) -> resize -> crop ->
:func:`blursynth.ops.blur.render_pair` (linear-light blur, noise, JPEG) -> (blurred, sharp).

Every random draw of pair ``i`` comes from ``sample_rng(seed, i, stream)``
(one stream each for the kernel, the crop window, the degradation values and
the noise field), so a dataset is byte-identical whatever the number of
workers or the batch size, and a row's params rebuild its pixels
(:func:`rebuild_pair`).
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import asdict, dataclass

import numpy as np

from .._rng import check_seed, sample_rng
from ..errors import BadInputError, SettingError, checking
from ..nn.device import check_device_name, resolve_device_name
from ..ops.blur import render_pair
from ..ops.color import crf_option_spec, describe_crf, parse_crf_option
from ..ops.convolve import BORDERS
from ..ops.degrade import HIGHLIGHT_REGION_THRESHOLD, HIGHLIGHT_THRESHOLD, Degradations
from ..sources.photos import PhotoPlan, load_rgb8, photo_path
from .photos import CHUNK_PAIRS, check_workers, photos_for, write_photo_pairs
from .raw_settings import check_boost_settings, noise_ranges, raw_recipe
from .scene_settings import render_device
# The pair's keyed streams (adding a stage never changes the numbers another stage draws) and
# the draws after the blur live in shake_draws, which scene blur shares.
from .shake_draws import (  # noqa: F401 - the streams are re-exported: callers name them from here
    STREAM_CRF, STREAM_CROP, STREAM_DEGRADE, STREAM_KERNEL, STREAM_NOISE, STREAM_RAW, STREAM_RAW_NOISE,
    draw_crop_window, draw_degradations,
)
from .shake_draws import resize_param as _resize_param
from .shake_inputs import KernelSource, open_kernels, plan_photos, resize_photo, resized_shape

PSF_SOURCES = ("bank", "fresh")


@dataclass(frozen=True)
class BlurSettings:
    """Everything ``blursynth blur`` needs, validated.

    Attributes
    ----------
    photos : str
        Folder of sharp photos (searched recursively) or one image file.
    kernels : str or None
        Kernel bank directory (``psf_source="bank"``).
    psf_source : {"bank", "fresh"}
        Read PSFs from the bank, or draw a new trajectory per pair.
    exposure : float or None
        Exposure fraction; None draws one per pair (from the bank's list, or
        from 1/100, 1/10, 1/2, 1 for fresh trajectories).
    per_image : int
        Pairs per photo, each with its own kernel (and crop window).
    crop : (int, int) or None
        Output (height, width); the window is drawn per pair.
    resize : float, (int, int) or None
        Scale factor, or (width, height), applied to each photo first.
    crf : str
        Camera response (:meth:`CameraResponse.parse`: ``gamma:G``, ``srgb``, ``none``, a
        named curve, ``filmic:...``, ``poly:...``), or ``random`` / ``random:CURVE,...``: one
        curve per pair from the set (stream ``STREAM_CRF``), recorded in its params.
    saturation, noise, jpeg : str or None
        Degradation ranges (see :class:`blursynth.ops.degrade.Degradations`);
        ``saturation`` is the old name of ``exposure_gain`` (kept, with a warning).
    exposure_gain : str or None
        Range of a linear gain of the whole image, the sharp target too (off by default).
    highlights : str or None
        Range of the boost of the photo's near-clipped pixels before blurring; the
        sharp target keeps the photo's exposure (off by default).
    highlight_threshold : float
        Linear value of a pixel's brightest channel where the highlight boost starts.
    highlight_regions : int or None
        With ``highlights``: also boost small bright regions (lamps, bulbs) of at most this
        many pixels of the window, from ``highlight_region_threshold`` on (off by default).
    highlight_region_threshold : float
        Linear value from which a pixel belongs to a bright region (below ``highlight_threshold``).
    border : {"reflect", "valid", "wrap"}
    device : {"auto", "cpu", "cuda", "cuda:N"}
        Where uniform blur convolves; scene blur renders on the CPU (``auto`` or ``cpu`` only).
    batch : int
        Pairs whose kernels and windows are drawn together before rendering; on a GPU
        they are also rendered in one call (:func:`render_rows`). The output does not
        depend on it: each pair is computed alone, so its pixels never depend on its
        neighbours.
    seed : int
    strict : bool
        Stop at the first unreadable photo instead of skipping it.
    fresh_length_px : float
        Trajectory length for ``psf_source="fresh"`` (``--length``; a recipe's ``length``).
    fresh_canvas : int
        Largest PSF side for fresh trajectories (``--canvas``; a recipe's ``canvas``).
    png_level : int or None
    shard_size : int
    pipeline : {"rgb", "raw"}
        ``raw``: blur, clip and add noise in the camera's RAW space (:mod:`blursynth.ops.raw`).
    camera : str or None
        RAW path: a bundled camera's name or ``random`` (a mix; the default).
    demosaic : {"bilinear", "malvar"} or None
        RAW path: the demosaicing method (default ``malvar``).
    raw_bits : int, (int, int) or None
        RAW path: quantise the RAW values to this many bits (10-14), or to a number drawn
        per pair from (lo, hi); None keeps float values.
    motion : {"uniform", "camera6d", "scene"}
        ``uniform``: one PSF for the whole image (the kernels above; the default).
        ``camera6d``: a 6-DoF camera path rendered by per-sub-frame homographies
        (:mod:`blursynth.pairs.scene`); ``scene``: that and moving objects.
    focal_px : float or None
        Scene blur: focal length in pixels (None: the window's longer side).
    reference : {"middle", "start"}
        Scene blur: the pose the sharp image is seen from.
    rolling_shutter : str or None
        Scene blur: range of the read-out time as a fraction of the exposure (off by default).
    objects : str or None
        ``motion="scene"``: range of the number of moving objects per pair (default 1-3).
    object_kind : {"cutout", "leaves"}
        Objects cut from other photos of the set, or dead-leaves disks.
    object_masks : str or None
        ``motion="scene"``: folder of alpha PNGs (``<photo stem>.png``): every object is the
        masked part of another photo of the set (not with ``object_kind="leaves"``).
    defocus : bool
        Scene blur: thin-lens defocus from a depth map.
    depth : str or None
        Folder of depth maps (``<photo stem>.png``, the photo's size) or ``random``
        (a piecewise-planar depth drawn per pair; the default with ``defocus``).
    defocus_px : str or None
        With ``defocus``: range of the largest blur diameter in pixels (default 2-8).
    aperture_blades : int
        With ``defocus``: 0 for a round aperture, or 3 or more blades (a polygon).
    psf_grid : int
        Scene blur: the PSF field's grid is ``psf_grid`` x ``psf_grid`` points.
    """

    photos: str
    kernels: str | None = None
    psf_source: str = "bank"
    exposure: float | None = None
    per_image: int = 1
    crop: tuple | None = None
    resize: object = None
    crf: str = "gamma:2.2"
    saturation: str | None = None
    noise: str | None = None
    jpeg: str | None = None
    exposure_gain: str | None = None
    highlights: str | None = None
    highlight_threshold: float = HIGHLIGHT_THRESHOLD
    highlight_regions: int | None = None
    highlight_region_threshold: float = HIGHLIGHT_REGION_THRESHOLD
    border: str = "reflect"
    device: str = "auto"
    batch: int = 8
    seed: int = 0
    strict: bool = False
    fresh_length_px: float = 60.0
    fresh_canvas: int = 64
    png_level: int | None = None
    shard_size: int = 500
    pipeline: str = "rgb"
    camera: str | None = None
    demosaic: str | None = None
    raw_bits: int | tuple | None = None
    motion: str = "uniform"
    focal_px: float | None = None
    reference: str = "middle"
    rolling_shutter: str | None = None
    objects: str | None = None
    object_kind: str = "cutout"
    object_masks: str | None = None
    defocus: bool = False
    depth: str | None = None
    defocus_px: str | None = None
    aperture_blades: int = 0
    psf_grid: int = 5

    def __post_init__(self):
        # Each error names its field (SettingError.field): a recipe points at that key's line.
        with checking("seed"):
            check_seed(self.seed)
        if self.psf_source not in PSF_SOURCES:
            raise SettingError(
                f"--psf-source must be bank or fresh; got {self.psf_source!r}.", "psf_source"
            )
        from .scene_settings import check_scene_settings

        check_scene_settings(self)
        if self.psf_source == "fresh" and self.kernels and self.motion == "uniform":
            raise SettingError(
                f"--kernels {self.kernels} is read only with --psf-source bank; --psf-source fresh "
                "draws a new trajectory for every pair: drop --kernels, or use --psf-source bank.",
                "kernels")
        if self.psf_source == "bank" and not self.kernels and self.motion == "uniform":
            raise SettingError(
                "--kernels BANK is required with --psf-source bank (make one with "
                "'blursynth trajectories --out BANK'), or use --psf-source fresh.", "kernels"
            )
        if self.exposure is not None and not (0 < float(self.exposure) <= 1):
            raise SettingError(
                f"--exposure must be a fraction in (0, 1] or 'random'; got {self.exposure!r}.", "exposure"
            )
        if int(self.per_image) != self.per_image or self.per_image < 1:
            raise SettingError(f"--per-image must be a positive integer; got {self.per_image!r}.", "per_image")
        if self.crop is not None:
            if not (isinstance(self.crop, (tuple, list)) and len(self.crop) == 2
                    and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in self.crop)):
                raise SettingError(f"--crop must be two whole numbers HxW (a recipe's crop = "
                                   f"[H, W]); got {self.crop!r}.", "crop")
            h, w = self.crop
            if h < 1 or w < 1:
                raise SettingError(f"--crop must be positive HxW; got {h}x{w}.", "crop")
        with checking("resize"):
            resized_shape(self.resize, 100, 100)  # validates the form
        with checking("crf"):
            parse_crf_option(self.crf)
        self._check_pipeline()
        for name in ("saturation", "noise", "jpeg"):
            with checking(name):
                value = noise_ranges(self.noise) if name == "noise" else getattr(self, name)
                Degradations.parse(**{name: value})
        check_boost_settings(self)
        with checking("exposure_gain"):
            Degradations.parse(saturation=self.saturation, exposure_gain=self.exposure_gain)
        if self.border not in BORDERS:
            raise SettingError(
                f"--border must be one of {', '.join(BORDERS)}; got {self.border!r}.", "border"
            )
        with checking("device"):
            check_device_name(self.device)
        if self.batch < 1:
            raise SettingError(f"--batch must be a positive integer; got {self.batch!r}.", "batch")
        from ..kernelbank import MAX_CANVAS

        if not (3 <= self.fresh_canvas <= MAX_CANVAS):
            raise SettingError(f"--canvas must be in [3, {MAX_CANVAS}]; got {self.fresh_canvas!r}.",
                               "fresh_canvas")
        if not (self.fresh_length_px > 0 and math.isfinite(self.fresh_length_px)):
            raise SettingError(f"trajectory length must be > 0 px; got {self.fresh_length_px!r}.",
                               "fresh_length_px")
        if self.psf_source == "fresh" and self.motion == "uniform":
            from ..ops.trajectory import TrajectoryConfig, check_path_fits

            side = self.fresh_canvas if self.fresh_canvas % 2 else self.fresh_canvas - 1
            try:
                check_path_fits(TrajectoryConfig(length_px=float(self.fresh_length_px)), side,
                                side_option="--canvas")
            except SettingError as exc:
                raise SettingError(str(exc), "fresh_length_px") from None

    def _check_pipeline(self):
        from .raw_settings import check_raw_options

        check_raw_options(self.pipeline, self.camera, self.demosaic, self.raw_bits, self.noise)
        if self.pipeline != "raw":
            return
        if Degradations.parse(saturation=self.saturation).saturation is not None:
            raise SettingError("--saturation is an RGB-path option; with --pipeline raw use "
                               "--exposure-gain (the same linear gain, in camera space).",
                               "saturation")

    @property
    def render_device(self) -> str:
        """Where the pairs render (:func:`~blursynth.pairs.scene_settings.render_device`)."""
        return render_device(self.motion, self.device)

    def degradations(self) -> Degradations:
        return Degradations.parse(saturation=self.saturation, noise=noise_ranges(self.noise),
                                  jpeg=self.jpeg,
                                  exposure_gain=self.exposure_gain, highlights=self.highlights,
                                  highlight_threshold=self.highlight_threshold,
                                  highlight_regions=self.highlight_regions,
                                  highlight_region_threshold=self.highlight_region_threshold)

    def recipe(self) -> dict:
        """The settings that determine the bytes (not workers, batch or device: the resolved
        device type is added by :func:`blur_photos`)."""
        d = asdict(self)
        for key in ("batch", "device", "photos", "kernels", "strict"):
            d.pop(key)
        d["crf"] = crf_option_spec(self.crf)  # a curve, or random: and the set drawn from
        d["degradations"] = self.degradations().describe()
        for key in ("saturation", "noise", "jpeg", "exposure_gain", "highlights",
                    "highlight_threshold", "highlight_regions", "highlight_region_threshold"):
            d.pop(key)  # the degradations keep them (the newer ones only when on)
        for key in ("pipeline", "camera", "demosaic", "raw_bits"):
            d.pop(key)
        from .scene_settings import SCENE_FIELDS, scene_recipe

        for key in SCENE_FIELDS:
            d.pop(key)  # a uniform recipe has none of them: its fingerprint is as before
        if self.motion != "uniform":
            for key in ("psf_source", "exposure", "fresh_length_px", "fresh_canvas"):
                d.pop(key)  # the camera path, not a PSF, makes the blur
            d["scene"] = scene_recipe(self)
        if self.pipeline == "raw":  # an RGB-path recipe has neither key
            d["pipeline"] = "raw"
            d["raw"] = raw_recipe(self.camera, self.demosaic, self.raw_bits, self.noise,
                                  degradations=False)
        return d


# ---------------------------------------------------------------------------------------------
# one pair from (settings, plan, index)


@dataclass(frozen=True)
class BlurJob:
    """What a worker needs to make rows: settings, the photo plan and the kernel source."""

    settings: BlurSettings
    plan: PhotoPlan
    source: KernelSource
    fingerprint: str
    device: str = "cpu"  # where to render: "cpu", "cuda" or "cuda:N"


def draw_pair(job: BlurJob, index: int, photo_hw) -> tuple[dict, np.ndarray]:
    """The random choices of pair ``index``: (params without photo notes, PSF)."""
    s, src = job.settings, job.source
    photo_i, copy = divmod(index, s.per_image)
    params = {
        "photo": job.plan.files[photo_i], "photo_index": photo_i, "copy": copy,
        "resize": _resize_param(s.resize), "psf_source": src.kind,
    }
    rng = sample_rng(s.seed, index, STREAM_KERNEL)
    exposure = src.exposures[int(rng.integers(len(src.exposures)))] if len(src.exposures) > 1 \
        else src.exposures[0]
    if src.kind == "bank":
        kernel_index = int(rng.integers(src.n_kernels))
        psf = _bank(src.path, src.fingerprint).psf(kernel_index, exposure)
        params.update(kernel_bank=src.fingerprint, kernel_index=kernel_index)
    else:
        from ..ops.psf import rasterize_psf
        from ..ops.trajectory import sample_trajectory

        traj, tparams = sample_trajectory(rng=rng, length_px=src.length_px)
        psf = rasterize_psf(traj, exposure_fraction=exposure, max_size=src.max_side)
        params.update(trajectory=tparams, trajectory_length_px=src.length_px)
    params["exposure"] = float(exposure)
    psf = np.ascontiguousarray(psf, np.float32)
    k = psf.shape[0]
    h, w = photo_hw
    if s.crop is not None:
        ch, cw = s.crop
        if s.border == "valid":
            ch, cw = ch + k - 1, cw + k - 1
        y0, x0 = draw_crop_window(s.seed, index, photo_hw, (ch, cw), params["photo"])
        params["crop"] = [y0, x0, ch, cw]
    else:
        params["crop"] = None
    draw_degradations(s, index, params)
    return params, psf


def pair_from_params(photo, psf, params, *, seed, index, device=None, mosaic_only=False):
    """Render a pair from a loaded photo, its PSF and the params recorded for it.

    This is the code path both the writer and :func:`rebuild_pair` take.

    Parameters
    ----------
    photo : (H, W, 3) uint8 ndarray
        The whole source photo, as loaded (before resize and crop).
    psf : (k, k) float32 ndarray
    params : dict
        The row's params.
    seed, index : int
        The row's seed and index (they key the noise field).
    device : torch.device, str or None

    Returns
    -------
    blurred, sharp : (H', W', 3) uint8 ndarray
    """
    return _render_resized(resize_photo(photo, params.get("resize")), psf, params,
                           seed=seed, index=index, device=device, mosaic_only=mosaic_only)


def _render_resized(photo, psf, params, *, seed, index, device, mosaic_only=False):
    if mosaic_only and params.get("raw") is None:
        raise BadInputError("this pair was made on the RGB path; it has no RAW mosaic.")
    photo = _window(photo, params)
    if params.get("raw") is not None:
        from ..ops.blur import render_raw_pair

        noisy = "noise_stream" in params
        return render_raw_pair(
            photo, psf, params["raw"], crf=params["crf"], border=params["border"],
            noise_rng=sample_rng(seed, index, STREAM_RAW_NOISE) if noisy else None,
            jpeg_quality=params.get("jpeg_quality"), device=device,
            exposure_gain=params.get("exposure_gain"), mosaic_only=mosaic_only,
            **highlight_kwargs(params),
        )
    return render_pair(photo, psf, device=device, **_pair_options(params, seed=seed, index=index))


def _window(photo, params):
    """The resized photo's window the pair is made of (its params' crop)."""
    if params.get("crop"):
        y0, x0, ch, cw = params["crop"]
        return photo[y0 : y0 + ch, x0 : x0 + cw]
    return photo


def _pair_options(params, *, seed, index) -> dict:
    """An RGB-path row's params as :func:`render_pair`'s keywords (but the device)."""
    noisy = "shot_noise" in params or "read_noise" in params
    return dict(
        crf=params["crf"], border=params["border"],
        saturation=params.get("exposure_gain", params.get("saturation")),
        shot_noise=params.get("shot_noise"), read_noise=params.get("read_noise"),
        noise_rng=sample_rng(seed, index, STREAM_NOISE) if noisy else None,
        jpeg_quality=params.get("jpeg_quality"), **highlight_kwargs(params),
    )


def highlight_kwargs(params) -> dict:
    """A row's highlight boost as render_pair / render_raw_pair keywords."""
    return {key: params.get(key) for key in ("highlight_gain", "highlight_threshold",
                                             "highlight_regions", "highlight_region_threshold")}


def rebuild_pair(row: dict, sources, *, device=None, mosaic_only=False):
    """Rebuild a pair's pixels from a dataset row (as :class:`PairDataset` returns it).

    Parameters
    ----------
    row : dict
        With ``params`` (dict), ``psf`` ((k, k) float32), ``seed`` and ``index``.
    sources : str or Path
        The PHOTOS folder (or file) the run read (params hold paths relative to it).
    device : torch.device, str or None
        Where to render (None: the CPU).
    mosaic_only : bool
        For a RAW-path row: return the blurred image's noisy RAW mosaic ((H, W) float32,
        white level 1.0) instead (``dataset export --raw``).

    Returns
    -------
    blurred, sharp : (H, W, 3) uint8 ndarray
        Equal to the row's images when rebuilt on the same kind of device.
    """
    params = row["params"]
    photo, _ = load_rgb8(photo_path(sources, params["photo"]))
    if params.get("motion", "uniform") != "uniform":
        from .scene import scene_pair_from_params

        return scene_pair_from_params(photo, params, seed=row["seed"], index=row["index"],
                                      photos=sources, mosaic_only=mosaic_only)
    return pair_from_params(photo, row["psf"], params, seed=row["seed"], index=row["index"],
                            device=device, mosaic_only=mosaic_only)


@functools.lru_cache(maxsize=4)
def _bank(path, fingerprint):
    """An open bank, cached per process; the fingerprint keys it so a rebuilt bank is reread."""
    from ..kernelbank import KernelBank

    return KernelBank(path)


# ---------------------------------------------------------------------------------------------
# rows for the dataset writer


def _blur_rows(start, stop, job: BlurJob, keep_freed: bool = False):
    """Yield the pair rows of samples ``start..stop-1`` (skipping unreadable photos).

    ``keep_freed``: have this process's malloc keep freed memory
    (:func:`blursynth._allocator.keep_freed_memory`): a 720p pair's planes are mapped fresh
    and faulted in page by page otherwise (about 3000 faults, a third of the pair's time).
    """
    from ..dataset.schema import pair_row

    if keep_freed:
        from .._allocator import keep_freed_memory

        keep_freed_memory()
    s = job.settings
    photos = photos_for(job.plan, start, stop, s.per_image, strict=s.strict,
                        prepare=functools.partial(resize_photo, resize=s.resize))
    while True:
        # Draw a batch's kernels and windows first (cheap, host only), then render.
        batch = []
        for index, photo, note in photos:
            batch.append((index, photo, *draw_row(job, index, photo.shape[:2], note)))
            if len(batch) == s.batch:
                break
        if not batch:
            return
        for fields in render_rows(job, batch):
            yield pair_row(**fields, png_level=s.png_level)


def draw_row(job: BlurJob, index: int, photo_hw, note=None) -> tuple:
    """(params, psf) of pair ``index`` as its row records them: :func:`draw_pair`'s, with the
    photo's conversion note (``load_rgb8``'s) and the device kind it is rendered on.

    ``blur``'s rows and :class:`blursynth.torch.OnlineBlur` both take them from here (and
    render them with :func:`render_row`), so the two cannot record different params."""
    params, psf = draw_pair(job, index, photo_hw)
    if note:
        params["converted"] = note
    params["device"] = job.device.split(":")[0]
    return params, psf


def render_row(job: BlurJob, index: int, photo, params, psf) -> dict:
    """The fields of pair ``index``'s row (:func:`blursynth.dataset.schema.pair_row`'s keywords
    but ``png_level``), rendered from its photo as resized (``resize_photo``) and
    :func:`draw_row`'s params and PSF."""
    blurred, sharp = _render_resized(photo, psf, params, seed=job.settings.seed, index=index,
                                     device=job.device)
    return _row_fields(job, index, blurred, sharp, params, psf)


def _row_fields(job: BlurJob, index: int, blurred, sharp, params, psf) -> dict:
    return {"index": index, "blurred": blurred, "sharp": sharp, "psf": psf,
            "source": "trajectory", "seed": job.settings.seed, "params": params,
            "fingerprint": job.fingerprint}


def render_rows(job: BlurJob, batch) -> list:
    """:func:`render_row` of every ``(index, photo, params, psf)`` of ``batch``, in order.

    On a GPU the batch's RGB-path pairs are rendered in one call
    (:func:`blursynth.ops.blur_batch.render_pairs`: one copy each way, no wait between pairs),
    with the same bytes as pair by pair on that device, so ``--batch`` never changes a dataset.
    On the CPU each pair takes the NumPy path (faster there; the batched torch path gives the
    same bytes, tests/test_blur_batched.py). RAW-path pairs are rendered one by one.

    Examples
    --------
    >>> import tempfile
    >>> from skimage import data
    >>> from blursynth.sources.photos import save_rgb8
    >>> tmp, photo = tempfile.mkdtemp(), data.coffee()[::4, ::4]
    >>> save_rgb8(f"{tmp}/photos/coffee.png", photo)
    >>> settings = BlurSettings(photos=f"{tmp}/photos", psf_source="fresh", per_image=2,
    ...                         crop=(64, 64), fresh_canvas=31, fresh_length_px=20.0)
    >>> plan, source, device, _ = plan_blur(settings)
    >>> job = BlurJob(settings, plan, source, "fingerprint", device=device)
    >>> batch = [(i, photo, *draw_row(job, i, photo.shape[:2])) for i in range(2)]
    >>> [row["index"] for row in render_rows(job, batch)]
    [0, 1]
    """
    from ..ops.blur import _on_cpu

    on_device = not _on_cpu(job.device)
    rgb = [item for item in batch if item[2].get("raw") is None] if on_device else []
    if not rgb:
        return [render_row(job, *item) for item in batch]
    from ..ops.blur_batch import render_pairs

    s = job.settings
    pairs = render_pairs([_window(photo, params) for _, photo, params, _ in rgb],
                         [psf for *_, psf in rgb],
                         [_pair_options(params, seed=s.seed, index=index)
                          for index, _, params, _ in rgb], device=job.device)
    rendered = {item[0]: pair for item, pair in zip(rgb, pairs)}
    rows = []
    for index, photo, params, psf in batch:
        if index not in rendered:
            rows.append(render_row(job, index, photo, params, psf))
            continue
        blurred, sharp = rendered[index]
        rows.append(_row_fields(job, index, blurred, sharp, params, psf))
    return rows


def plan_blur(settings: BlurSettings, *, out=None):
    """Check the inputs of a uniform blur run and plan it; nothing is written.

    What :func:`blur_photos` writes from and :class:`blursynth.torch.OnlineBlur` renders from,
    so both make the same pairs.

    Returns
    -------
    plan : PhotoPlan
    source : KernelSource
    device : str
        Where the pairs are rendered: ``cpu``, ``cuda`` or ``cuda:N``.
    recipe : dict
        What determines the bytes; its fingerprint names the dataset.
    """
    with checking("device"):
        device = resolve_device_name(settings.device)  # no torch import for a CPU run
    source = open_kernels(settings)
    plan = plan_photos(settings, source.max_side, out=out)
    # The device type is in the fingerprint: the CPU and CUDA paths round differently, so a
    # resume on the other kind must not mix their bytes under one fingerprint.
    recipe = {
        "command": "blur", **settings.recipe(), "photos_digest": plan.digest(),
        "n_photos": len(plan.files), "kernel_bank": source.fingerprint,
        "device": device.split(":")[0],
    }
    if settings.psf_source == "fresh":
        from ..ops.psf import RASTER_VERSION
        from ..ops.trajectory import STREAM_VERSION

        recipe["trajectory_stream"] = STREAM_VERSION
        recipe["rasterizer"] = RASTER_VERSION
    return plan, source, device, recipe


def blur_photos(settings: BlurSettings, out, *, workers: int = 1, overwrite: bool = False,
                progress: bool = True, options=None, keep_freed: bool = False) -> dict:
    """Make a pair dataset from a folder of sharp photos (``blursynth blur``).

    Parameters
    ----------
    settings : BlurSettings
    out : str or Path
        Output dataset directory (new, or the same command's, to resume).
    workers : int
        Worker processes; the bytes do not depend on it.
    overwrite : bool
    options : WriteOptions, optional
        From a recipe build: executor, ``--limit`` and the recipe recorded
        (:class:`blursynth.dataset.writer.WriteOptions`).
    keep_freed : bool
        Uniform blur: call :func:`blursynth._allocator.keep_freed_memory` in every process
        that makes pairs (the ``blur`` command does; the process then keeps its peak memory).
        The bytes do not depend on it.

    Returns
    -------
    manifest : dict
        The dataset manifest, plus ``skipped_photos`` (unreadable files).

    Raises
    ------
    BadInputError
        On any bad input, before anything is written.

    Examples
    --------
    >>> import tempfile
    >>> from skimage import data
    >>> from blursynth.dataset.reader import PairDataset
    >>> from blursynth.sources.photos import save_rgb8
    >>> tmp = tempfile.mkdtemp()
    >>> save_rgb8(f"{tmp}/photos/coffee.png", data.coffee()[::4, ::4])
    >>> settings = BlurSettings(photos=f"{tmp}/photos", psf_source="fresh", per_image=2,
    ...                         crop=(64, 64), fresh_canvas=31, fresh_length_px=20.0)
    >>> blur_photos(settings, f"{tmp}/pairs", progress=False)["num_rows"]
    2
    >>> row = PairDataset(f"{tmp}/pairs")[1]
    >>> blurred, sharp = rebuild_pair(row, f"{tmp}/photos")
    >>> bool((blurred == row["blurred"]).all()), row["params"]["crop"][2:]
    (True, [64, 64])
    """
    check_workers(workers)
    if settings.motion != "uniform":
        from .scene import blur_scene

        return blur_scene(settings, out, workers=workers, overwrite=overwrite, progress=progress,
                          options=options)
    if settings.degradations().saturation is not None:
        from .photos import warn

        warn(f"saturation {settings.saturation!r} is the old name of exposure gain: it scales the "
             "whole image, the sharp target too (its highlights clip white), as before; write "
             "--exposure-gain (recipe key exposure_gain) for that, or --highlights (recipe key "
             "highlights) to make light sources streak while the target keeps the photo's "
             "exposure. saturation goes in the next release.")
    plan, source, device, recipe = plan_blur(settings, out=out)
    if keep_freed:  # here too, before a pool forks: its processes start with it set
        from .._allocator import keep_freed_memory

        keep_freed_memory()
    return write_photo_pairs(
        out, plan, per_image=settings.per_image, recipe=recipe,
        inputs={"photos": str(settings.photos), "kernels": settings.kernels},
        make_job=functools.partial(BlurJob, settings, plan, source, device=str(device)),
        rows=functools.partial(_blur_rows, keep_freed=keep_freed), shard_size=settings.shard_size,
        workers=workers, overwrite=overwrite,
        progress=progress, desc="blurring", options=options,
        extra={"camera_response": describe_crf(settings.crf)},
        # On a GPU a worker's task holds whole --batches, each rendered in one call.
        **({} if device == "cpu" else {"chunk_pairs": max(CHUNK_PAIRS, settings.batch),
                                       "batch": settings.batch}),
    )


__all__ = [
    "BlurSettings", "KernelSource", "BlurJob", "draw_pair", "render_rows",
    "pair_from_params", "rebuild_pair", "plan_blur", "blur_photos", "plan_photos", "open_kernels",
]
