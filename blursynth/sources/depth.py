"""Depth maps from files (PNG 8/16-bit, TIFF, or .npy) for defocus, checked against their photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BadInputError

DEPTH_SUFFIXES = (".png", ".tif", ".tiff", ".npy")


def load_depth(path, *, shape=None, inverse: bool = False):
    """Read a depth map: one channel of positive values, larger meaning farther.

    Parameters
    ----------
    path : str or Path
        ``.png`` / ``.tif`` (8- or 16-bit, one channel; integer values are taken as they are:
        only ratios of depths matter to :func:`blursynth.ops.defocus.draw_defocus`), or
        ``.npy`` (a 2-D float or integer array, e.g. metres for
        :func:`blursynth.ops.defocus.coc_scale_from_lens`).
    shape : (int, int) or None
        The photo's (H, W); a map of another size is refused.
    inverse : bool
        The file holds inverse depth (disparity: larger is nearer, as monocular depth
        estimators write it); it is inverted.

    Returns
    -------
    depth : (H, W) float32 ndarray
        Finite and > 0.

    Raises
    ------
    BadInputError
        One line: unreadable, not one channel, zero / negative / non-finite values, or a size
        that is not the photo's.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "d.npy"); np.save(p, np.full((4, 6), 2.5))
    >>> float(load_depth(p, shape=(4, 6)).max())
    2.5
    >>> load_depth(p, shape=(8, 6))
    Traceback (most recent call last):
    ...
    blursynth.errors.BadInputError: depth map d.npy is 4x6 (HxW) but its photo is 8x6; ...
    """
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in DEPTH_SUFFIXES:
        raise BadInputError(
            f"depth map {name}: unsupported file type {suffix or '(none)'}; "
            f"use one of {', '.join(DEPTH_SUFFIXES)}."
        )
    try:
        if suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        else:
            from .photos import _decode_samples

            values = _decode_samples(path.read_bytes(), f"depth map {name}")
    except OSError as e:
        raise BadInputError(f"depth map {name}: cannot read ({e.strerror or e}).") from None
    except ValueError as e:  # np.load of a corrupt or pickled file
        raise BadInputError(f"depth map {name}: not a plain .npy array ({e}).") from None
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if values.ndim != 2:
        raise BadInputError(
            f"depth map {name} must have one channel (H, W); got shape {values.shape}. "
            "Save depth as a grey 8/16-bit PNG or a 2-D .npy."
        )
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        raise BadInputError(f"depth map {name}: values must be numbers; got dtype {values.dtype}.")
    h, w = values.shape
    if shape is not None and (h, w) != tuple(int(v) for v in shape):
        ph, pw = (int(v) for v in shape)
        raise BadInputError(
            f"depth map {name} is {h}x{w} (HxW) but its photo is {ph}x{pw}; "
            "give a depth map of the photo's size."
        )
    values = values.astype(np.float64)
    bad = int(np.count_nonzero(~np.isfinite(values) | (values <= 0)))
    if bad:
        raise BadInputError(
            f"depth map {name} has {bad} pixel(s) that are 0, negative or not finite; "
            "depth must be > 0 everywhere (fill holes first)."
        )
    depth = (1.0 / values if inverse else values).astype(np.float32)
    if not (np.all(np.isfinite(depth)) and depth.min() > 0):
        raise BadInputError(
            f"depth map {name}: values outside float32's range; rescale them (units are free)."
        )
    return depth
