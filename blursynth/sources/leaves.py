"""Dead-leaves images: synthetic sharp images to add content to a small set of photos.

The dead-leaves model drops opaque disks one over another. With radii drawn with density
proportional to ``r**-3`` its edges have the scale-invariant statistics of natural images, at
every orientation, and every image is new. Blurred by ``blursynth blur`` or filmed by
``render-clip``, these images give training pairs with edges that a few photos cannot supply: on
this project's validation photos, adding them to the training pairs raised the trainer's gain
(benchmarks/RESULTS.md, "validation runs of 2026-12-01").

Image ``i`` depends only on ``(seed, i)`` and the settings, so a run can be split, resumed or
extended without changing the images already written.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .._rng import check_seed, sample_rng
from .._stopping import stop_if_asked
from ..dataset.outputs import OutputKind, claim, lock_output, remove_temporaries
from ..errors import BadInputError

#: Settings file written beside the images; a resumed run must match it.
LEAVES_JSON = "leaves.json"
FORMAT = "blursynth-leaves"
#: Bumped whenever the images of the same settings change (2: the palette samples a 2-D grid of
#: each photo; version 1 sampled a few columns of it).
VERSION = 2
#: Side of the grid of pixels taken from each photo of ``colours_from`` (64 x 64 = 4096 colours).
PALETTE_GRID = 64
#: Most disks one image may need (a few seconds of drawing); settings that ask for more are refused.
MAX_DISKS = 2_000_000
STREAM_LEAVES = 1


@dataclass(frozen=True)
class LeavesSettings:
    """Settings of ``blursynth render-leaves``.

    Attributes
    ----------
    n : int
        Number of images.
    size : int
        Side of the square images, in pixels.
    r_min, r_max : float
        Disk radii range in pixels; ``r_max`` None is ``size / 4``.
    coverage : float
        Expected fraction of the image the disks cover before the background shows through
        (the disk count follows from it); the rest shows a background colour.
    noise : float
        Standard deviation, in 8-bit levels, of a smooth texture (Gaussian noise blurred by
        sigma 1 px) added so no disk is perfectly flat; 0 for flat disks.
    seed : int
    """

    n: int
    size: int = 512
    r_min: float = 2.0
    r_max: float | None = None
    coverage: float = 0.999
    noise: float = 2.0
    seed: int = 0

    def __post_init__(self):
        if not (isinstance(self.n, int) and self.n >= 1):
            raise BadInputError(f"--n must be a whole number >= 1; got {self.n!r}.")
        if not (isinstance(self.size, int) and 16 <= self.size <= 8192):
            raise BadInputError(f"--size must be a whole number in [16, 8192]; got {self.size!r}.")
        r_max = self.size / 4 if self.r_max is None else self.r_max
        if not (math.isfinite(self.r_min) and 0.5 <= self.r_min):
            raise BadInputError(f"--r-min must be at least 0.5 px; got {self.r_min}.")
        if not (math.isfinite(r_max) and self.r_min < r_max <= 4 * self.size):
            given = "" if self.r_max is not None else \
                f" (the default, --size / 4; pass --r-max above {self.r_min:g} or a smaller --r-min)"
            raise BadInputError(f"--r-max must be above --r-min ({self.r_min:g}) and at most 4x "
                                f"--size ({4 * self.size}); got {r_max:g}{given}.")
        if not (math.isfinite(self.coverage) and 0 < self.coverage < 1):
            raise BadInputError(f"--coverage must be in (0, 1), e.g. 0.999; got {self.coverage}.")
        if not (math.isfinite(self.noise) and 0 <= self.noise <= 64):
            raise BadInputError(f"--noise must be in [0, 64] levels; got {self.noise}.")
        check_seed(self.seed)
        if self.n_disks() > MAX_DISKS:
            raise BadInputError(
                f"these settings need {self.n_disks():,} disks per image (most {MAX_DISKS:,}): "
                f"raise --r-min ({self.r_min}), lower --r-max ({self.radius_max:g}) or "
                f"--coverage ({self.coverage}).")

    @property
    def radius_max(self) -> float:
        return self.size / 4 if self.r_max is None else float(self.r_max)

    def n_disks(self) -> int:
        """Disks per image: enough that they cover ``coverage`` of it on average.

        Centres fall uniformly on the image widened by ``r_max`` on every side (area ``S``),
        which holds the centre of every disk that can touch it, so a pixel is missed by one
        disk of mean area ``A`` with probability ``1 - A / S`` and by ``k`` disks with
        about ``exp(-k A / S)``.
        """
        a, b = self.r_min, self.radius_max
        mean_r2 = math.log(b / a) / (0.5 * (a ** -2 - b ** -2))  # E[r^2] under r^-3 on [a, b]
        mean_area = math.pi * mean_r2
        area = (self.size + 2 * b) ** 2
        return int(math.ceil(-math.log(1 - self.coverage) * area / mean_area))


def palette_from_photos(paths) -> np.ndarray:
    """Colours of photos: the pixels of an evenly spaced grid over each photo.

    Parameters
    ----------
    paths : sequence of str or Path
        Image files; one that does not decode is skipped with a warning, as ``blur`` skips it
        (none that decodes: a BadInputError).

    Returns
    -------
    (N, 3) uint8 ndarray
        At most ``PALETTE_GRID ** 2`` colours per photo, in photo order.

    Examples
    --------
    >>> import tempfile, imageio.v3 as iio
    >>> path = tempfile.mkdtemp() + "/red.png"
    >>> iio.imwrite(path, np.full((10, 20, 3), (200, 0, 0), np.uint8))
    >>> palette_from_photos([path]).shape
    (200, 3)
    """
    import warnings

    from .photos import load_rgb8

    parts = []
    for p in paths:
        try:
            image, _ = load_rgb8(p)
        except OSError as exc:
            raise BadInputError(f"--colours-from: cannot read {p} ({exc.strerror or exc}); "
                                f"make it readable or leave it out.") from None
        except BadInputError as exc:  # corrupt, truncated, too large: skipped, as blur does
            warnings.warn(f"--colours-from: {str(exc).rstrip('.')}; skipped", stacklevel=2)
            continue
        h, w = image.shape[:2]
        rows = np.linspace(0, h - 1, min(h, PALETTE_GRID)).round().astype(int)
        cols = np.linspace(0, w - 1, min(w, PALETTE_GRID)).round().astype(int)
        parts.append(image[np.ix_(rows, cols)].reshape(-1, 3))
    if not parts:
        raise BadInputError(f"--colours-from: none of its {len(paths)} image(s) could be read (see the "
                            "warnings above); give photos that decode.")
    return np.ascontiguousarray(np.concatenate(parts))


def _disks(rng, settings: LeavesSettings, palette):
    """Draw one image's disks: centres (n, 2) and radii (n,) in output pixels, colours (n + 1, 3)
    (the last is the background's). Disks that cannot touch the frame are dropped."""
    n = settings.n_disks()
    a, b = settings.r_min, settings.radius_max
    radii = (a ** -2 - rng.random(n) * (a ** -2 - b ** -2)) ** -0.5  # inverse CDF of r^-3
    # Centres fall up to r_max outside the frame, so the border is covered like the middle.
    centres = rng.random((n, 2)) * (settings.size + 2 * b) - b
    if palette is not None and len(palette):
        colours = palette[rng.integers(len(palette), size=n + 1)]
    else:
        colours = rng.integers(0, 256, size=(n + 1, 3))
    reach = radii + 1.0  # a pixel of margin for rounding
    touch = ((centres > -reach[:, None]) & (centres < settings.size + reach[:, None])).all(1)
    return centres[touch], radii[touch], np.concatenate([colours[:n][touch], colours[n:]])


def dead_leaves(index: int, settings: LeavesSettings, palette: np.ndarray | None = None):
    """Image ``index`` of a run: (size, size, 3) uint8 RGB.

    Disks are drawn back to front at twice the size with sub-pixel centres and radii, then
    area-averaged, which anti-aliases their edges.

    Parameters
    ----------
    index : int
        Image number; with ``settings.seed`` it keys every draw.
    settings : LeavesSettings
    palette : (N, 3) uint8 ndarray, optional
        Colours to draw from (:func:`palette_from_photos`); without one, uniformly from the
        RGB cube.

    Examples
    --------
    >>> img = dead_leaves(0, LeavesSettings(n=1, size=64))
    >>> img.shape, img.dtype.name
    ((64, 64, 3), 'uint8')
    """
    import cv2

    if palette is not None:
        palette = np.asarray(palette)
        if palette.ndim != 2 or palette.shape[1] != 3 or palette.dtype != np.uint8:
            raise ValueError(f"palette must be (N, 3) uint8; got {palette.shape} {palette.dtype}.")
    rng = sample_rng(settings.seed, int(index), STREAM_LEAVES)
    centres, radii, colours = _disks(rng, settings, palette)
    big = 2 * settings.size
    canvas = np.empty((big, big, 3), np.uint8)
    canvas[:] = colours[-1]  # background, seen where no disk fell
    shift = 4  # fractional bits of cv2's coordinates
    scale = 2 * (1 << shift)
    for (x, y), r, c in zip(centres, radii, colours[:-1]):
        cv2.circle(canvas, (int(round(x * scale)), int(round(y * scale))),
                   max(1, int(round(r * scale))), (int(c[0]), int(c[1]), int(c[2])), -1,
                   cv2.LINE_8, shift)
    image = cv2.resize(canvas, (settings.size, settings.size), interpolation=cv2.INTER_AREA)
    if settings.noise > 0:
        texture = rng.standard_normal((settings.size, settings.size)).astype(np.float32)
        texture = cv2.GaussianBlur(texture, (0, 0), 1.0)
        texture *= np.float32(settings.noise / max(float(texture.std()), 1e-6))
        image = np.clip(image.astype(np.float32) + texture[..., None] + 0.5, 0, 255)
        image = image.astype(np.uint8)
    return image


def image_name(index: int) -> str:
    """File name of image ``index`` (``leaves00000.png``, ...)."""
    return f"leaves{index:05d}.png"


def _settings_record(settings: LeavesSettings, palette_sources, palette) -> dict:
    import hashlib

    digest = hashlib.sha256(palette.tobytes()).hexdigest()[:16] if palette is not None else None
    return {"format": FORMAT, "version": VERSION, "settings": asdict(settings),
            "colours_from": [str(p) for p in palette_sources], "palette_sha256": digest}


#: A render-leaves folder: leaves.json (written first), then leaves00000.png ...; hidden files
#: are temporary files of atomic writes.
LEAVES_OUTPUT = OutputKind(
    what="render-leaves folder",
    is_file="--out {out}: is a file; expected a folder for the images.",
    foreign="--out {out}: holds other files ({name}); choose a new or empty folder.",
    own=lambda name: name.startswith("."),
    markers=(LEAVES_JSON,),
    own_when_marked=lambda name: name.startswith("leaves") and name.endswith(".png"),
    cannot_write="--out {out}: cannot write there ({error}); choose a location you can write to.",
)


def _check_output(out: Path, record: dict) -> None:
    """Claim ``out`` (making it); a folder an earlier run wrote must hold images of the same settings."""
    if not claim(out, LEAVES_OUTPUT).marked:
        return
    own = out / LEAVES_JSON
    names = [p.name for p in out.iterdir() if not p.name.startswith(".")]
    try:
        old = json.loads(own.read_text())
    except OSError as exc:
        raise BadInputError(f"{own}: cannot read it ({exc.strerror or exc}); make it readable "
                            f"or choose another --out.") from None
    except ValueError:
        old = None
    if not isinstance(old, dict) or old.get("format") != FORMAT:
        raise BadInputError(f"{own}: is not a render-leaves settings file; remove the folder "
                            f"or choose another --out.")
    images = [n for n in names if n != LEAVES_JSON]
    if not images:
        return  # stopped before its first image: nothing to match
    def without_n(settings):
        return {k: v for k, v in (settings or {}).items() if k != "n"}
    same = all(old.get(k) == record[k] for k in ("version", "palette_sha256")) and \
        without_n(old.get("settings")) == without_n(record["settings"])
    if not same:
        raise BadInputError(f"--out {out}: holds images of other render-leaves settings (or of "
                            f"an earlier version); use the same settings to resume, or another "
                            f"--out.")
    n_new = record["settings"]["n"]
    numbers = [int(n[6:-4]) for n in images if n[6:-4].isdigit()]
    if numbers and max(numbers) >= n_new:
        raise BadInputError(f"--out {out}: already holds {image_name(max(numbers))}, beyond "
                            f"--n {n_new}; pass --n {max(numbers) + 1} or more (images are "
                            f"never removed) or another --out.")


def render_leaves(out, settings: LeavesSettings, *, colours_from=(), progress: bool = True):
    """Write ``settings.n`` dead-leaves PNGs (leaves00000.png, ...) and leaves.json to ``out``.

    Images already in ``out`` from the same settings are kept, so an interrupted run resumes
    and a larger ``n`` adds images; each file is written atomically.

    Parameters
    ----------
    out : str or Path
        Output folder: new, empty, or one this function wrote with the same settings.
    settings : LeavesSettings
    colours_from : sequence of str or Path
        Photos or folders of photos whose colours the disks take (:func:`palette_from_photos`).
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``written`` and ``kept`` counts and the ``out`` folder.
    """
    from ..dataset.outputs import atomic_write_text
    from .photos import list_images, save_rgb8

    out = Path(out)
    sources = []
    for c in colours_from:
        found = list_images(c, exclude=out)  # --out inside it: the leaves are not colours
        if not found:
            raise BadInputError(f"--colours-from {c}: holds no images; expected photos "
                                f"(.png, .jpg, ...) to draw colours from.")
        sources.extend(found)
    palette = palette_from_photos(sources) if sources else None
    record = _settings_record(settings, [*map(str, colours_from)], palette)
    _check_output(out, record)  # refusals before the lock makes anything
    with lock_output(out):
        _check_output(out, record)  # again: another run may have written here meanwhile
        remove_temporaries(out, lambda name: name == LEAVES_JSON or re.fullmatch(r"leaves\d{5,}\.png", name))
        try:
            atomic_write_text(out / LEAVES_JSON, json.dumps(record, indent=1) + "\n")
        except OSError as exc:
            raise BadInputError(LEAVES_OUTPUT.cannot_write.format(out=out, error=exc.strerror or exc)) from None
        from .._startup import startup_over

        startup_over()  # the work begins: start-up's objects frozen, the collector back on
        bar = None
        if progress:
            from .._progress import progress_bar

            bar = progress_bar(total=settings.n, desc="render-leaves", unit="image")
        written = kept = 0
        try:
            for i in range(settings.n):
                path = out / image_name(i)
                if path.exists():
                    kept += 1
                else:
                    save_rgb8(path, dead_leaves(i, settings, palette))
                    written += 1
                stop_if_asked()
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    return {"written": written, "kept": kept, "out": str(out)}
