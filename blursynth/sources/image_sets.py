"""A set of images to read from: a folder, one image file, or one column of a pair dataset.

The learned ways read their image sets through it: the sharp and real blurred sets of ``bgan
train`` and ``uid train``, ``uid blur --blur-from``, an evaluation's sets without pairs. No torch
here: ``uid blur`` on the CPU runs without it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from .photos import header_size

_CACHE_IMAGES = 64  # decoded images kept per process; patches are drawn from many images


class ImageSet:
    """The images of a folder, a single image file, or one column of a pair dataset.

    Parameters
    ----------
    path : str or Path
        A folder of images (searched recursively), an image file, or a pair dataset folder
        (with ``manifest.json``).
    column : {"sharp", "blurred"}
        Which image of each pair a dataset contributes.
    option : str
        The command-line option that named the set, for messages (``"--real-blur"``).
    verify : bool
        Check a pair dataset's shards against its manifest as they are opened (``--no-verify``
        turns it off; rows that do not decode are refused either way).

    Raises
    ------
    BadInputError
        The path does not exist or holds no image.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from blursynth.sources.photos import save_rgb8
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> save_rgb8(d / "a.png", np.zeros((40, 50, 3), np.uint8))
    >>> s = ImageSet(d, column="sharp", option="--sharp")
    >>> len(s), s.sizes(), s.load(0).shape
    (1, [(40, 50)], (40, 50, 3))
    """

    def __init__(self, path, *, column: str, option: str, verify: bool = True):
        from ..sources.photos import list_images

        self.path = Path(path)
        self.column = column
        self.option = option
        self.verify = verify
        if not self.path.exists():
            raise BadInputError(f"{option} {path}: no such file or directory; expected a folder "
                                f"of images or a pair dataset.")
        self.is_dataset = self.path.is_dir() and (self.path / "manifest.json").exists()
        if self.is_dataset:
            from ..dataset.reader import check_ground_truth, open_pairs

            ds = open_pairs(self.path, verify=verify)
            if column == "sharp":
                check_ground_truth(ds, path, option)
            self.ids = [r["id"] for r in ds.table.iter_rows(columns=["id"], batch_size=4096)]
            self.files = None
        else:
            self.files = list_images(self.path)
            self.ids = None
        if len(self) == 0:
            raise BadInputError(
                f"{option} {path}: no images found (looked for .png .jpg .jpeg .tif .tiff .webp "
                f".bmp, recursively); expected at least one image.")
        self._ds = None
        self._cache = OrderedDict()

    def __len__(self):
        return len(self.ids) if self.is_dataset else len(self.files)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_ds"], state["_cache"] = None, OrderedDict()
        return state

    def _dataset(self):
        if self._ds is None:
            from ..dataset.reader import PairDataset

            self._ds = PairDataset(self.path, verify=self.verify)
        return self._ds

    def describe(self, i: int) -> str:
        """Where image ``i`` comes from, for messages."""
        if self.is_dataset:
            return f"{self.path} pair {self.ids[i]} ({self.column})"
        return str(self.files[i])

    def keys(self) -> list:
        """An identity per image: the resolved file, or the dataset folder, pair and column."""
        if self.is_dataset:
            root = str(self.path.resolve())
            return [f"{root}::{i}::{self.column}" for i in self.ids]
        return [str(p.resolve()) for p in self.files]

    def load(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 (H, W, 3) RGB (cached per process)."""
        img = self._cache.get(i)
        if img is not None:
            self._cache.move_to_end(i)
            return img
        if self.is_dataset:
            from ..sources.photos import decode_image

            table = self._dataset().table
            raw = table.row(i, columns=[self.column])
            with table.decoding(*table.locate(i)):
                img = decode_image(raw[self.column]["bytes"], what=self.describe(i))
        else:
            from ..sources.photos import load_rgb8

            img = load_rgb8(self.files[i])[0]
        self._cache[i] = img
        if len(self._cache) > _CACHE_IMAGES:
            self._cache.popitem(last=False)
        return img

    def sizes(self) -> list:
        """(H, W) of every image, from file headers where possible (no full decode)."""
        out = []
        if self.is_dataset:
            for n, row in enumerate(self._dataset().table.iter_rows(columns=[self.column])):
                hw = header_size(row[self.column]["bytes"])
                out.append(hw if hw is not None else self.load(n).shape[:2])
        else:
            for n, p in enumerate(self.files):
                hw = header_size(p)
                out.append(hw if hw is not None else self.load(n).shape[:2])
        return out

    def content_digests(self, indices) -> dict:
        """sha256 of the stored bytes of the given images (files, or encoded dataset images)."""
        out = {}
        for i in indices:
            if self.is_dataset:
                data = self._dataset().raw(i, columns=[self.column])[self.column]["bytes"]
            else:
                data = self.files[i].read_bytes()
            out[i] = hashlib.sha256(data).hexdigest()
        return out

    def byte_sizes(self) -> list:
        """Stored size in bytes of every image (cheap: file sizes, or encoded lengths)."""
        if self.is_dataset:
            return [len(r[self.column]["bytes"]) for r in
                    self._dataset().table.iter_rows(columns=[self.column])]
        return [p.stat().st_size for p in self.files]
