"""BGAN's training data: two unpaired image sets (folders or pair datasets) and random patches.

Sample ``k`` of a run is a pure function of (run seed, k): which sharp image and where its patch
sits, which real blurred image and where its patch sits, and the noise vector, each from its own
stream of :func:`blursynth._rng.sample_rng`. Worker processes and restarts change nothing, and a
resumed run reads the samples it would have read.
"""

from __future__ import annotations

import numpy as np
import torch

from .._rng import sample_rng
from ..errors import BadInputError
from ..sources.image_sets import ImageSet  # noqa: F401 - re-exported: the trainers read their sets with it
from .config import NOISE_DIM

STREAM_SHARP = 11
STREAM_REAL = 12
STREAM_NOISE = 13


def check_unpaired(sharp: ImageSet, real: ImageSet) -> None:
    """Refuse sets that share images: the same files, the same dataset, or byte-identical copies.

    BGAN learns a blur from real blurred photos that are not the blurred versions of its sharp
    inputs; a shared image teaches it nothing (or, for identical sets, the identity). Only
    images whose stored sizes match are hashed, so distinct sets cost no reading.

    Raises
    ------
    BadInputError

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from blursynth.sources.photos import save_rgb8
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> save_rgb8(d / "a.png", np.zeros((8, 8, 3), np.uint8))
    >>> s = ImageSet(d, column="sharp", option="--sharp")
    >>> check_unpaired(s, ImageSet(d, column="blurred", option="--real-blur"))
    Traceback (most recent call last):
    ...
    blursynth.errors.BadInputError: --sharp ... are the same files; expected two unpaired sets: ...
    """
    if sharp.is_dataset and real.is_dataset and sharp.path.resolve() == real.path.resolve():
        raise BadInputError(
            f"--sharp and --real-blur are the same dataset ({sharp.path}); BGAN learns from "
            f"unpaired sets: pass real blurred photos that are not the blurred halves of the "
            f"sharp inputs.")
    shared = set(sharp.keys()) & set(real.keys())
    if not shared:
        sizes_s, sizes_r = sharp.byte_sizes(), real.byte_sizes()
        common = set(sizes_s) & set(sizes_r)
        ds = sharp.content_digests([i for i, s in enumerate(sizes_s) if s in common])
        dr = real.content_digests([i for i, s in enumerate(sizes_r) if s in common])
        shared = set(ds.values()) & set(dr.values())
    if shared:
        n = len(shared)
        same = "are the same files" if n == min(len(sharp), len(real)) else f"share {n} image(s)"
        raise BadInputError(
            f"--sharp {sharp.path} and --real-blur {real.path} {same}; expected two unpaired "
            f"sets: sharp photos, and different photos that are really blurred.")


def check_patch_fits(images: ImageSet, patch: int, others=()) -> None:
    """Refuse a set with an image smaller than ``patch`` on either side; the patch it suggests
    fits ``others`` (the run's other sets) too.

    Raises
    ------
    BadInputError
        Naming the first such image and how many there are.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from blursynth.sources.photos import save_rgb8
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> save_rgb8(d / "a.png", np.zeros((20, 30, 3), np.uint8))
    >>> check_patch_fits(ImageSet(d, column="sharp", option="--sharp"), 16)   # fits: no error
    """
    sizes = images.sizes()
    small = [i for i, (h, w) in enumerate(sizes) if h < patch or w < patch]
    if small:
        h, w = sizes[small[0]]
        smallest = min(min(hw) for imgs in (images, *others) for hw in imgs.sizes())
        raise BadInputError(
            f"{images.option} {images.path}: {len(small)} of {len(sizes)} image(s) are smaller "
            f"than the {patch} px patch (first: {images.describe(small[0])}, {h}x{w}); pass "
            f"--patch {smallest} or less, or remove them.")


def random_patch(image: np.ndarray, patch: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``patch`` x ``patch`` window of ``image``, flipped left-right half the time.

    Parameters
    ----------
    image : (H, W, 3) ndarray
        H, W >= patch.
    patch : int
    rng : numpy.random.Generator

    Returns
    -------
    window : (patch, patch, 3) ndarray

    Examples
    --------
    >>> random_patch(np.zeros((10, 12, 3)), 8, np.random.default_rng(0)).shape
    (8, 8, 3)
    """
    h, w = image.shape[:2]
    y = int(rng.integers(0, h - patch + 1))
    x = int(rng.integers(0, w - patch + 1))
    out = image[y:y + patch, x:x + patch]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return out


def training_noise(seed: int, position: int) -> np.ndarray:
    """The noise vector of run sample ``position``: (4,) float32 from N(0, 1)."""
    return sample_rng(seed, position, STREAM_NOISE).standard_normal(NOISE_DIM).astype(np.float32)


class UnpairedPatches(torch.utils.data.Dataset):
    """Run sample ``k`` -> (sharp patch, real blurred patch, noise vector).

    Patches are float32 ``(3, patch, patch)`` in [0, 1]; the noise is float32 ``(4,)``. The
    sharp and real images are drawn independently: the two sets are never paired.
    """

    def __init__(self, sharp: ImageSet, real: ImageSet, *, seed: int, patch: int):
        self.sharp, self.real = sharp, real
        self.seed, self.patch = int(seed), int(patch)

    def __len__(self):
        return 2 ** 62  # indexed by run position, never iterated to the end

    def _draw(self, images, position, stream):
        rng = sample_rng(self.seed, position, stream)
        i = int(rng.integers(0, len(images)))
        return random_patch(images.load(i), self.patch, rng)

    def __getitem__(self, position):
        from ..train.data import to_tensor

        s = self._draw(self.sharp, position, STREAM_SHARP)
        r = self._draw(self.real, position, STREAM_REAL)
        return to_tensor(s), to_tensor(r), torch.from_numpy(training_noise(self.seed, position))
