"""Reading datasets: the manifest, lazy row access over shards, and pairs decoded to arrays."""

from __future__ import annotations

import bisect
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ..errors import DatasetError
from .schema import FORMAT_VERSION, MANIFEST, PROGRESS, read_json_object, struct_array


def load_manifest(path, *, kind: str | None = None) -> dict:
    """Read ``manifest.json`` of a dataset directory, checking what it is.

    Raises
    ------
    DatasetError
        If ``path`` is not a finished blursynth dataset, or of another kind.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset; expected a folder written by blursynth.")
    if not path.is_dir():
        raise DatasetError(f"{path}: is a file; expected a dataset folder (with manifest.json).")
    if not (path / MANIFEST).exists():
        hint = (
            "it is unfinished: rerun the command that made it to resume"
            if (path / PROGRESS).exists()
            else "expected the output folder of a blursynth command"
        )
        raise DatasetError(f"{path}: no manifest.json; {hint}.")
    manifest = read_json_object(path / MANIFEST, MANIFEST)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DatasetError(
            f"{path}: dataset format version {manifest.get('format_version')!r}; this blursynth "
            f"reads version {FORMAT_VERSION}. Rebuild it with this version."
        )
    if kind is not None and manifest.get("kind") != kind:
        raise DatasetError(
            f"{path}: is a {manifest.get('kind')!r} dataset; expected a {kind!r} dataset."
        )
    for key in ("shards", "num_rows", "fingerprint"):
        if key not in manifest:
            raise DatasetError(f"{path}/manifest.json: missing key {key!r}; the manifest is corrupt.")
    return manifest


class ShardedTable:
    """Lazy row access over the shards of a dataset (one row group cached per process)."""

    def __init__(self, path, *, kind: str | None = None):
        self.path = Path(path)
        self.manifest = load_manifest(self.path, kind=kind)
        self.shards = [self.path / s["file"] for s in self.manifest["shards"]]
        counts = [int(s["rows"]) for s in self.manifest["shards"]]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._files = {}
        self._cache_key = None
        self._cache = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_files"], state["_cache_key"], state["_cache"] = {}, None, None
        return state

    def shard_file(self, s: int) -> pq.ParquetFile:
        """Shard ``s``, opened once and checked against the row count the manifest lists."""
        f = self._files.get(s)
        if f is None:
            try:
                f = pq.ParquetFile(self.shards[s])
            except FileNotFoundError:
                raise DatasetError(f"{self.shards[s]}: shard listed in manifest.json is missing.") from None
            except Exception as exc:
                raise DatasetError(
                    f"{self.shards[s]}: unreadable shard ({exc}); run 'blursynth dataset verify'."
                ) from None
            listed = int(self.offsets[s + 1] - self.offsets[s])
            if f.metadata.num_rows != listed:
                raise DatasetError(
                    f"{self.shards[s]}: holds {f.metadata.num_rows} rows; manifest.json says {listed}. "
                    "Run 'blursynth dataset verify' and rebuild the dataset."
                )
            self._files[s] = f
        return f

    def row(self, i: int, columns=None) -> dict:
        """Raw row ``i`` (Python values, images still encoded)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for a dataset of {n} rows")
        i %= n
        s = bisect.bisect_right(self.offsets, i) - 1
        local = i - int(self.offsets[s])
        f = self.shard_file(s)
        md = f.metadata
        start = 0
        for g in range(md.num_row_groups):
            rows = md.row_group(g).num_rows
            if local < start + rows:
                break
            start += rows
        key = (s, g, tuple(columns) if columns else None)
        if key != self._cache_key:
            self._cache = f.read_row_group(g, columns=columns).to_pylist()
            self._cache_key = key
        return self._cache[local - start]

    def iter_rows(self, columns=None, batch_size: int = 64):
        """Yield every raw row in order, streaming shard by shard."""
        for s in range(len(self.shards)):
            for batch in self.shard_file(s).iter_batches(batch_size=batch_size, columns=columns):
                yield from batch.to_pylist()


class PairDataset:
    """Lazy, random-access view of a pair dataset.

    Parameters
    ----------
    path : str or Path
        Dataset directory (with ``manifest.json``).

    Examples
    --------
    >>> ds = PairDataset("pairs/")            # doctest: +SKIP
    >>> item = ds[0]                          # doctest: +SKIP
    >>> item["blurred"].shape, item["params"]["crf"]  # doctest: +SKIP
    ((256, 256, 3), 'gamma:2.2')
    """

    def __init__(self, path):
        self.table = ShardedTable(path, kind="pairs")
        self.path = self.table.path
        self.manifest = self.table.manifest

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> dict:
        return decode_pair_row(self.table.row(i), what=f"{self.path} row {i}")

    def raw(self, i: int, columns=None) -> dict:
        return self.table.row(i, columns)

    def __iter__(self):
        for n, row in enumerate(self.table.iter_rows()):
            yield decode_pair_row(row, what=f"{self.path} row {n}")


def decode_pair_row(row: dict, *, what: str = "row") -> dict:
    """Decode a raw pair row: images to uint8 (H, W, 3), psf to (k, k), params to dict."""
    from ..sources.photos import decode_image

    out = dict(row)
    out["blurred"] = decode_image(row["blurred"]["bytes"], what=f"{what} blurred")
    out["sharp"] = decode_image(row["sharp"]["bytes"], what=f"{what} sharp")
    out["psf"] = struct_array(row.get("psf"))
    out["params"] = json.loads(row["params"]) if row.get("params") else {}
    return out
