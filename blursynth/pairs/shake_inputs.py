"""The inputs of a ``blursynth blur`` run: the photos (resized, and those too small for the crop
and PSFs left out) and where its PSFs come from (a verified kernel bank, or fresh trajectories).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import BadInputError, SettingError
from ..sources.photos import PhotoPlan, scan_photos

FRESH_EXPOSURES = (0.01, 0.1, 0.5, 1.0)


@dataclass(frozen=True)
class KernelSource:
    """Where PSFs come from: a bank (path, size, exposures, largest side) or fresh trajectories."""

    kind: str
    path: str | None = None
    n_kernels: int = 0
    exposures: tuple = FRESH_EXPOSURES
    max_side: int = 63
    fingerprint: str | None = None
    length_px: float = 60.0


def resized_shape(resize, height, width):
    """(height, width) after ``resize`` (None, a scale factor, or (width, height))."""
    if resize is None:
        return height, width
    if isinstance(resize, (int, float)) and not isinstance(resize, bool):
        if not (0 < resize <= 8 and math.isfinite(resize)):
            raise BadInputError(f"--resize scale must be in (0, 8]; got {resize!r}.")
        return max(1, int(round(height * resize))), max(1, int(round(width * resize)))
    try:
        w, h = (int(v) for v in resize)
    except (TypeError, ValueError):
        raise BadInputError(
            f"--resize must be a scale like 0.5 (a size is --resize-to HxW; in a recipe resize_to = [H, W]); "
            f"got {resize!r}."
        ) from None
    if w < 1 or h < 1:
        raise BadInputError(f"--resize-to size must be positive; got {h}x{w} (HxW).")
    return h, w


#: What a recipe or an OnlineBlur dict is told of ``resize = [W, H]``, the old width-first size.
OLD_RESIZE_NOTE = ("resize = [W, H] is the old width-first spelling, still read for this release; write "
                   "resize_to = [H, W] (height first, like crop)")


def resize_photo(photo, resize):
    import cv2

    h, w = photo.shape[:2]
    nh, nw = resized_shape(resize, h, w)
    if (nh, nw) == (h, w):
        return photo
    interp = cv2.INTER_AREA if nh * nw < h * w else cv2.INTER_LINEAR
    return cv2.resize(photo, (nw, nh), interpolation=interp)


def plan_photos(settings, max_side: int, *, out=None) -> PhotoPlan:
    """List the photos, read their sizes, and leave out those too small for the crop and PSFs.

    ``settings`` is the run's :class:`~blursynth.pairs.shake.BlurSettings` (not imported here:
    shake imports this module).

    Unreadable files and photos smaller than the crop (or, without one, than the largest PSF)
    are skipped with a warning, or stop the run with ``strict``; so is a folder with no photo
    large enough. ``out``, where it lies inside the photo folder, is not searched. Raises
    :class:`BadInputError` before anything is written.
    """
    plan = scan_photos(settings.photos, strict=settings.strict, exclude=out)
    k = max_side
    if settings.crop is not None:
        ch, cw = settings.crop
        if settings.border != "valid" and (ch < k or cw < k):
            raise SettingError(
                f"--crop {ch}x{cw} is smaller than the largest PSF ({k}x{k}); use a larger crop.", "crop"
            )
        valid = settings.border == "valid"
        need = (ch + k - 1, cw + k - 1) if valid else (ch, cw)
        why = (f"--crop {ch}x{cw} plus the PSF's {k - 1} px for --border valid" if valid
               else f"--crop {ch}x{cw}")
    else:
        need, why = (k, k), f"PSFs of up to {k}x{k}"
    keep, small = [], []
    for rel, size in zip(plan.files, plan.sizes):
        h, w = resized_shape(settings.resize, *size)
        if h < need[0] or w < need[1]:
            small.append((rel, h, w))
        else:
            keep.append((rel, size))
    if small and (settings.strict or not keep):
        rel, h, w = small[0]
        if settings.crop is not None:
            problem = f"photo {rel} is {h}x{w}, smaller than {need[0]}x{need[1]}"
            problem += f" ({why})" if settings.border == "valid" else f" for {why}"
            fix = "use a smaller --crop or remove the photo"
        else:
            problem = (f"photo {rel} is {h}x{w} but PSFs can be up to {k}x{k}: the PSF is larger "
                       "than the image")
            fix = "use larger photos, --resize up, or a bank of smaller kernels"
        if not keep and len(small) > 1:
            problem += f" (as are all {len(small)} photos)"
        elif keep:
            fix += " (or drop --strict to skip photos that small)"
        if settings.crop is not None:
            raise SettingError(f"{problem}; {fix}.", "crop")
        raise BadInputError(f"{problem}; {fix}.")
    if not small:
        return plan
    return replace(
        plan, files=tuple(r for r, _ in keep), sizes=tuple(s for _, s in keep),
        small=tuple(f"{rel} ({h}x{w})" for rel, h, w in small),
        small_need=f"{need[0]}x{need[1]} ({why})",
    )


def open_kernels(settings) -> KernelSource:
    """Check the kernel source of ``settings`` (a :class:`~blursynth.pairs.shake.BlurSettings`): a
    bank is verified (shard hashes) and its exposures read."""
    if settings.psf_source == "fresh":
        exposures = FRESH_EXPOSURES if settings.exposure is None else (float(settings.exposure),)
        canvas = settings.fresh_canvas
        return KernelSource("fresh", exposures=exposures,
                            max_side=canvas if canvas % 2 else canvas - 1,
                            length_px=float(settings.fresh_length_px))
    from ..errors import DatasetError
    from ..dataset.reader import load_manifest
    from ..dataset.verify import verify_dataset

    path = Path(settings.kernels)
    manifest = load_manifest(path, kind="kernels")
    try:
        verify_dataset(path, decode=False)
    except DatasetError as exc:
        raise DatasetError(f"kernel bank {path} fails verification: {exc}") from None
    exposures = tuple(float(f) for f in manifest.get("exposures", ()))
    if not exposures:
        raise DatasetError(f"{path}/manifest.json: no exposure list; the manifest is corrupt.")
    from ..kernelbank import check_bank_manifest

    check_bank_manifest(path, manifest, exposures)
    if settings.exposure is not None:
        if not any(abs(f - float(settings.exposure)) < 1e-6 for f in exposures):
            raise SettingError(
                f"--exposure {settings.exposure:g} is not in kernel bank {path}; it holds "
                f"{', '.join(f'{f:g}' for f in exposures)} (or use --exposure random).", "exposure"
            )
        exposures = (float(settings.exposure),)
    command = manifest.get("command", {})
    side = command.get("psf_size") or command.get("canvas") or 64
    side = int(side) if int(side) % 2 else int(side) - 1
    return KernelSource("bank", str(path), int(manifest["num_rows"]), exposures, side,
                        manifest["fingerprint"])
