"""Training data helpers: ``--data PATH[:WEIGHT]``, the held-out split, weighted draws,
aligned random crops.

The loader built from them is :class:`blursynth.torch.PairDataset`. Sample ``k`` of a run (k
counts samples over the whole run, across ranks) is a pure function of (run seed, k): which
dataset, which pair, where the crop sits and whether it is flipped all come from
:func:`blursynth._rng.sample_rng`. Worker processes, their number and restarts therefore change
nothing, and a resumed run reads exactly the samples it would have read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._rng import sample_rng
# The held-out split lives in blursynth.dataset.split (torch-free, shared with exports); its
# names stay importable from here for training code.
from ..dataset.split import (SPLIT_BY, heldout_fraction_of, pair_ids,  # noqa: F401
                             split_indices, split_keys)
from ..dataset.reader import check_ground_truth, open_pairs  # noqa: F401 - re-exported
from ..errors import BadInputError, DatasetError

# Independent random streams per sample (see sample_rng's *stream).
STREAM_PICK = 1
STREAM_CROP = 2
STREAM_REDRAW = 3
# blursynth.torch.PairDataset's ``ds[i]`` (keyed by (seed, i, stream, epoch)). NumPy's
# SeedSequence ignores trailing zero words, so epoch 0's key (seed, i, 4, 0) is the same
# stream as (seed, i, 4): streams 4 and 5 are taken with or without an epoch word.
STREAM_INDEX_CROP = 4
STREAM_INDEX_REDRAW = 5
#: Pairs drawn in a row for one sample before pairs smaller than the crop count as an error.
MAX_REDRAWS = 64


@dataclass(frozen=True)
class DataSource:
    """One ``--data PATH[:WEIGHT]``."""

    path: str
    weight: float = 1.0


def parse_data_spec(spec: str, option: str = "--data") -> DataSource:
    """Parse ``PATH[:WEIGHT]``; a suffix that is not a number is part of the path. ``option``
    names the option in messages (``--online`` takes the same form).

    Examples
    --------
    >>> parse_data_spec("synth/:2")
    DataSource(path='synth/', weight=2.0)
    >>> parse_data_spec("real")
    DataSource(path='real', weight=1.0)
    """
    path, sep, tail = str(spec).rpartition(":")
    if sep:
        try:
            weight = float(tail)
        except ValueError:
            if path and Path(path).exists() and not Path(spec).exists():
                raise BadInputError(f"{option} {spec}: weight {tail!r} is not a number; expected "
                                    f"PATH[:WEIGHT], e.g. {option} {path}:2.") from None
            path, weight = str(spec), 1.0
    else:
        path, weight = str(spec), 1.0
    if not path:
        raise BadInputError(f"{option} {spec!r}: empty path; expected PATH[:WEIGHT].")
    if not (math.isfinite(weight) and weight > 0):
        example = "--data synth/:2 --data real/:1" if option == "--data" else f"{option} {path}:2"
        raise BadInputError(f"{option} {spec!r}: weight must be a positive number; got {tail}. "
                            f"Use e.g. {example}.")
    return DataSource(path, weight)


def choose_source(seed: int, position: int, cum_weights) -> tuple:
    """(dataset number, uniform draw for the row) of run sample ``position``.

    Examples
    --------
    >>> cum = np.cumsum([2.0, 1.0])
    >>> picks = [choose_source(0, k, cum)[0] for k in range(3000)]
    >>> round(picks.count(0) / 3000, 1)
    0.7
    """
    rng = sample_rng(seed, position, STREAM_PICK)
    u = rng.random()
    src = int(np.searchsorted(cum_weights, u * cum_weights[-1], side="right"))
    return min(src, len(cum_weights) - 1), rng.random()


def draw_index(seed: int, position: int, cum_weights, lengths, starts) -> int:
    """Run sample ``position``'s item of sources laid one after another: a source ``d`` by the
    weights (:func:`choose_source`), then one of its ``lengths[d]`` items uniformly, numbered
    from ``starts[d]``. The draw every mixed loader of ``train`` makes (stored and online).

    Examples
    --------
    >>> draw_index(0, 5, np.cumsum([2.0, 1.0]), [10, 4], [0, 10]) in range(14)
    True
    """
    d, u = choose_source(seed, position, cum_weights)
    n = int(lengths[d])
    return int(starts[d]) + min(int(u * n), n - 1)


def aligned_crop(blurred, sharp, crop, rng, *, flip=True):
    """The same random ``crop`` x ``crop`` window of both images, both flipped or neither.

    Parameters
    ----------
    blurred, sharp : (H, W, 3) ndarray
    crop : int
    rng : numpy.random.Generator

    Returns
    -------
    blurred, sharp : (crop, crop, 3) ndarray views or copies

    Examples
    --------
    >>> a = np.arange(5 * 6 * 3).reshape(5, 6, 3); b = a + 1
    >>> ca, cb = aligned_crop(a, b, 4, np.random.default_rng(0))
    >>> bool((cb == ca + 1).all()), ca.shape
    (True, (4, 4, 3))
    """
    h, w = blurred.shape[:2]
    if crop > h or crop > w:
        raise DatasetError(f"crop {crop} is larger than an image of {h}x{w}; pass a smaller "
                           f"--crop (at most {min(h, w)}).")
    y = int(rng.integers(0, h - crop + 1))
    x = int(rng.integers(0, w - crop + 1))
    b = blurred[y:y + crop, x:x + crop]
    s = sharp[y:y + crop, x:x + crop]
    if flip and rng.random() < 0.5:
        b, s = b[:, ::-1], s[:, ::-1]
    return b, s


def aligned_turn(blurred, sharp, rng):
    """Both images flipped top-bottom or neither, then both transposed or neither, each with
    probability 1/2 from ``rng`` (two draws whatever the shape; a pair that is not square is never
    transposed, so a batch keeps one shape). After :func:`aligned_crop`'s left-right flip this makes
    each of a square crop's eight rotations and mirrorings equally likely, as BasicSR's
    ``use_hflip`` and ``use_rot`` do (``use_flip`` in NAFNet's GoPro options). Camera shake and
    frame-averaged motion have no preferred direction, so the turned pair is as likely a pair.

    Examples
    --------
    >>> a = np.arange(4 * 4 * 3).reshape(4, 4, 3); b = a + 1
    >>> seen = set()
    >>> for k in range(40):
    ...     ta, tb = aligned_turn(a, b, np.random.default_rng(k))
    ...     assert (tb == ta + 1).all()
    ...     seen.add(ta.tobytes())
    >>> len(seen)
    4
    """
    turn_v, transpose = rng.random() < 0.5, rng.random() < 0.5
    if turn_v:
        blurred, sharp = blurred[::-1], sharp[::-1]
    if transpose and blurred.shape[0] == blurred.shape[1]:
        blurred, sharp = blurred.transpose(1, 0, 2), sharp.transpose(1, 0, 2)
    return blurred, sharp


def to_tensor(image_u8) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image_u8)).permute(2, 0, 1).float() / 255.0


#: The columns training reads of a row; the others (a scene row's PSF field and mask, the
#: parameters) are never decoded.
TRAIN_COLUMNS = ("id", "blurred", "sharp")


class PositionSampler(torch.utils.data.Sampler):
    """Yields run positions for steps ``start_step..stop_step-1`` of one rank.

    Step ``t`` of rank ``r`` reads positions ``t*B*R + r*B .. t*B*R + r*B + B - 1`` where B is the
    per-rank batch and R the world size, so every rank reads different samples.
    """

    def __init__(self, start_step, stop_step, batch_size, rank=0, world_size=1):
        self.start, self.stop = int(start_step), int(stop_step)
        self.batch, self.rank, self.world = int(batch_size), int(rank), int(world_size)

    def __len__(self):
        return max(self.stop - self.start, 0) * self.batch

    def __iter__(self):
        b = self.batch
        yield from rank_positions(self.start * b, self.stop * b, b, self.rank, self.world).tolist()


def rank_positions(start, stop, batch_size, rank=0, world_size=1):
    """The run samples that rank ``rank``'s own samples ``start..stop-1`` are, when each rank
    reads whole blocks of ``batch_size`` in turn (its own sample n is block n // batch_size of it).

    Returns
    -------
    (stop - start,) int64 ndarray

    Examples
    --------
    >>> rank_positions(2, 6, 2, rank=1, world_size=2).tolist()
    [6, 7, 10, 11]
    """
    n = np.arange(start, stop, dtype=np.int64)
    return (n // batch_size) * batch_size * world_size + rank * batch_size + n % batch_size


def center_crop(image, size, multiple=4):
    """Centre ``size`` x ``size`` window (or the whole side where the image is smaller),
    trimmed to a multiple of ``multiple`` (the generator's: 4 for DeblurGAN)."""
    h, w = image.shape[:2]
    ch, cw = min(size, h) // multiple * multiple, min(size, w) // multiple * multiple
    y, x = (h - ch) // 2, (w - cw) // 2
    return image[y:y + ch, x:x + cw]
