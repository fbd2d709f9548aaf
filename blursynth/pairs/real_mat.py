"""The MATLAB files of two test sets ``blursynth dataset import`` reads: Köhler et al.'s
ground-truth frames (one H x W x 3 x N array per ``GroundTruth<image>_<trajectory>.mat``, checked
from its headers before it is read) and Levin et al.'s images and kernels (``x``, ``y`` and ``f``
in each ``im<i>_flit<k>.mat``). SciPy reads them; MATLAB v7.3 (HDF5) files are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BadInputError

#: MATLAB classes a ground-truth .mat may hold: 8-bit values, as they are; floats in [0, 1].
_KOHLER_MAT_CLASSES = ("uint8", "single", "double")


def kohler_mat_info(path: Path) -> tuple[str, tuple, str]:
    """The one 4-D array of a Köhler ground-truth ``.mat`` file, from its headers only:
    ``(name, shape, MATLAB class)``; the name is not fixed, so the array is found by its shape.

    Raises
    ------
    BadInputError
        For a file that is not MATLAB's, a v7.3 (HDF5) file, none or several 4-D arrays, a
        shape other than H x W x 3 x N, or a class other than uint8, single or double.
    """
    from scipy.io import whosmat
    from scipy.io.matlab import matfile_version

    try:
        major, _ = matfile_version(path)
        # v7.3 files are HDF5, which SciPy does not read and h5py (not a dependency) would.
        if major == 2:
            raise BadInputError(f"{path}: a MATLAB v7.3 (HDF5) file, which blursynth cannot read; "
                                "re-save it in MATLAB as v7 (load it, then save(FILE, NAME, "
                                "'-v7')) and import again.")
        found = whosmat(path)
    except BadInputError:
        raise
    except Exception as exc:
        raise BadInputError(f"{path}: unreadable MATLAB file ({exc}); --layout kohler expects "
                            "GroundTruth<image>_<trajectory>.mat holding the frames as one "
                            "H x W x 3 x N array.") from None
    arrays = [(name, tuple(shape), cls) for name, shape, cls in found if len(shape) == 4]
    if len(arrays) != 1:
        what = "no 4-D array" if not arrays else \
            f"{len(arrays)} 4-D arrays ({', '.join(a[0] for a in arrays)})"
        raise BadInputError(f"{path}: holds {what}; --layout kohler expects exactly one, the "
                            "ground-truth frames as H x W x 3 x N.")
    name, shape, cls = arrays[0]
    if shape[2] != 3 or shape[3] < 1 or shape[0] < 1 or shape[1] < 1:
        raise BadInputError(f"{path}: array {name} is {' x '.join(map(str, shape))}; --layout "
                            "kohler expects the frames as H x W x 3 x N (RGB, N at least 1).")
    if cls not in _KOHLER_MAT_CLASSES:
        raise BadInputError(f"{path}: array {name} is {cls}; --layout kohler reads uint8 frames "
                            "or single/double floats in [0, 1].")
    return name, shape, cls


def kohler_mat_array(path: Path, key: str) -> np.ndarray:
    """The frames array ``key`` of a ground-truth ``.mat``, its class and values checked."""
    from scipy.io import loadmat

    kohler_mat_info(path)  # v7.3 and the shape: refused in the same words as at discovery
    try:
        data = loadmat(path, variable_names=[key])
    except Exception as exc:
        raise BadInputError(f"{path}: unreadable MATLAB file ({exc}); --layout kohler expects "
                            "the frames as one H x W x 3 x N array.") from None
    if key not in data:
        raise BadInputError(f"{path}: holds no array {key} (the one imported); the file changed "
                            "since the import: import the folder again.")
    a = data[key]
    if a.dtype != np.uint8:
        if a.dtype.kind != "f":
            raise BadInputError(f"{path}: array {key} is {a.dtype}; --layout kohler reads uint8 "
                                "frames or floats in [0, 1].")
        lo, hi = float(np.min(a)), float(np.max(a))
        # A little slack above 1 for values computed in single precision; they are clipped.
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 1 + 1e-6:
            raise BadInputError(f"{path}: array {key} holds floats from {lo:g} to {hi:g}; "
                                "--layout kohler reads floats in [0, 1] (or uint8 frames): "
                                "scale the frames to [0, 1] and save again.")
    return a


def kohler_mat_frames(path: Path, key: str) -> tuple[list[np.ndarray], str | None]:
    """Every frame of a ground-truth ``.mat`` as uint8 (H, W, 3), in the order of its 4th
    dimension, and what was converted (None for uint8, read as it is)."""
    a = kohler_mat_array(path, key)
    if a.dtype == np.uint8:
        return [np.ascontiguousarray(a[:, :, :, k]) for k in range(a.shape[3])], None
    # Frame by frame, so that a long sequence of doubles is not copied whole once more.
    frames = [np.clip(np.round(a[:, :, :, k] * 255.0), 0, 255).astype(np.uint8)
              for k in range(a.shape[3])]
    return frames, "ground-truth frames: floats in [0, 1] rounded to 8 bits"


def levin_arrays(path: Path, keys: dict) -> dict:
    """The arrays of a Levin ``.mat`` file by role (``keys``: role -> MATLAB name), as float64."""
    from scipy.io import loadmat

    try:
        data = loadmat(path)
    except Exception as exc:
        raise BadInputError(f"{path}: unreadable MATLAB file ({exc}); --layout levin expects "
                            "Levin et al.'s .mat "
                            "files.") from None
    missing = [k for k in keys.values() if k not in data]
    if missing:
        raise BadInputError(f"{path}: holds no {', '.join(missing)}; --layout levin expects x "
                            "(sharp), y (blurred) "
                            "and f (kernel) in each file.")
    return {role: np.asarray(data[k], dtype=np.float64) for role, k in keys.items()}


def levin_rgb8(gray: np.ndarray, path: Path, what: str) -> np.ndarray:
    """A Levin image (floats in [0, 1], grey or RGB) as uint8 RGB; ``what`` names it in errors."""
    if gray.ndim == 3 and gray.shape[2] == 3:
        rgb = gray
    elif gray.ndim == 2:
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
    else:
        raise BadInputError(f"{path}: {what} has shape {gray.shape}; expected an image (H, W) or "
                            "(H, W, 3).")
    # Levin's images are floats in [0, 1] (the 8-bit photos divided by 255): back to 8 bits.
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def levin_kernel(f: np.ndarray) -> np.ndarray:
    """A Levin kernel as an odd square float32 PSF summing to 1: zero rows/columns added at the
    bottom/right where a side is even, then zeros around the shorter side.

    Examples
    --------
    >>> levin_kernel(np.ones((2, 3))).shape
    (3, 3)
    """
    k = np.clip(np.asarray(f, np.float64), 0, None)
    h, w = k.shape
    side = max(h + (h % 2 == 0), w + (w % 2 == 0))
    top, left = (side - h) // 2, (side - w) // 2
    out = np.zeros((side, side))
    out[top:top + h, left:left + w] = k
    return (out / out.sum()).astype(np.float32)
