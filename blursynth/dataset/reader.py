"""Reading datasets: the manifest, lazy row access over shards, and pairs decoded to arrays.

Every reader of a dataset or kernel bank opens its shards here (:class:`ShardedTable`), so the
checks live in one place: a shard must be listed by the manifest under ``data/``, hash to the
manifest's sha256 and hold the rows it lists before a row of it is used (``verify=False``, the
commands' ``--no-verify``, skips the hash and the unlisted-shard check), and a row that cannot be
decoded is one :class:`DatasetError` line naming the shard and the row.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ..errors import BadInputError, BlursynthError, DatasetError
from .schema import (
    DATA_DIR, FORMAT_VERSION, MANIFEST, PROGRESS, read_json_object, sha256_file, struct_array,
)

# A shard's file name as the writer makes it; anything else (a path leaving the dataset, a
# nested or hidden name) is refused before it is opened.
_SHARD_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.parquet")
_SHA256 = re.compile(r"[0-9a-f]{64}")

# Shards this process has hashed, keyed by what identifies the file on disk; reopening a dataset
# (train's validation set, loader workers forked after the plan) does not hash it again. A shard
# replaced since (the writer renames new files into place) or rewritten changes the key.
_VERIFIED: dict = {}


def load_manifest(path, *, kind: str | None = None) -> dict:
    """Read ``manifest.json`` of a dataset directory, checking what it is.

    Raises
    ------
    DatasetError
        If ``path`` is not a finished blursynth dataset, or of another kind.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset; expected a folder written by blursynth (the --out "
                           "of the command that made it): check the path.")
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
    _check_shard_list(path, manifest)
    return manifest


def _check_shard_list(path: Path, manifest: dict) -> None:
    """Each listed shard is ``data/NAME.parquet`` with a row count and a sha256: a name that
    would leave the dataset folder (``../x``, an absolute path) is never opened."""
    shards = manifest["shards"]
    if not isinstance(shards, list):
        raise DatasetError(f"{path}/manifest.json: 'shards' is not a list; the manifest is "
                           "corrupt.")
    for n, shard in enumerate(shards):
        entry = f"{path}/manifest.json: shard {n}"
        if not isinstance(shard, dict):
            raise DatasetError(f"{entry} is {shard!r}, not an object; the manifest is corrupt.")
        file = shard.get("file")
        parts = file.split("/") if isinstance(file, str) else []
        if len(parts) != 2 or parts[0] != DATA_DIR or not _SHARD_NAME.fullmatch(parts[1]):
            raise DatasetError(
                f"{entry}: file {file!r} is not a shard name inside the dataset (expected "
                f"'{DATA_DIR}/NAME.parquet'); the manifest is corrupt or was edited. Rebuild the "
                "dataset.")
        rows = shard.get("rows")
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise DatasetError(f"{entry}: rows {rows!r} is not a count; the manifest is corrupt.")
        if not isinstance(shard.get("sha256"), str) or not _SHA256.fullmatch(shard["sha256"]):
            raise DatasetError(f"{entry}: sha256 {shard.get('sha256')!r} is not a hex SHA-256; "
                               "the manifest is corrupt.")


def check_shard_sha256(file: Path, listed: str, *, cached: bool = True, fix: str = "") -> None:
    """Hash ``file`` (one read of it) and compare with the manifest's ``listed`` sha256.

    With ``cached``, a file this process has already found good (same path, size, mtime and
    inode) is not read again.
    """
    st = os.stat(file)
    key = (str(Path(file).resolve()), st.st_size, st.st_mtime_ns, st.st_ino, listed)
    if cached and key in _VERIFIED:
        return
    digest = sha256_file(file)
    if digest != listed:
        raise DatasetError(
            f"{file}: sha256 {digest[:12]}... does not match manifest {listed[:12]}...; the "
            "shard is corrupt or was changed. Rebuild it (delete it and rerun the command that "
            f"made it){', ' + fix if fix else ''}.")
    _VERIFIED[key] = True


def unreadable(where: str, exc: BaseException) -> DatasetError:
    """The one-line error for bytes of a shard that do not decode (``where``: shard and row)."""
    detail = " ".join(str(exc).split())
    if len(detail) > 160:
        detail = detail[:157] + "..."
    kind = type(exc).__name__
    return DatasetError(
        f"{where}: unreadable ({kind}{': ' + detail if detail else ''}); the shard is corrupt. "
        "'blursynth dataset verify' checks every shard; rebuild the dataset (delete the shard and "
        "rerun the command that made it).")


class ShardedTable:
    """Lazy row access over the shards of a dataset (one row group cached per process).

    Parameters
    ----------
    path : str or Path
        Dataset directory (with ``manifest.json``).
    kind : str, optional
        The kind of dataset expected (``"pairs"``, ``"kernels"``).
    verify : bool
        Check each shard as it is first opened: its sha256 against the manifest (one read of
        the file), and that ``data/`` holds no shard the manifest does not list. The listed row
        count and the shard names are checked either way.
    """

    def __init__(self, path, *, kind: str | None = None, verify: bool = True):
        self.path = Path(path)
        self.manifest = load_manifest(self.path, kind=kind)
        self.verify = bool(verify)
        self.shards = [self.path / s["file"] for s in self.manifest["shards"]]
        counts = [int(s["rows"]) for s in self.manifest["shards"]]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if int(self.offsets[-1]) != self.manifest["num_rows"]:
            raise DatasetError(
                f"{self.path}/manifest.json: its shards list {int(self.offsets[-1])} rows but "
                f"num_rows says {self.manifest['num_rows']!r}; the manifest is corrupt. Rebuild "
                "the dataset.")
        if self.verify:
            listed = {p.name for p in self.shards}
            on_disk = (self.path / DATA_DIR).glob("*.parquet")
            extra = sorted(p.name for p in on_disk if p.name not in listed)
            if extra:
                raise DatasetError(
                    f"{self.path / DATA_DIR / extra[0]}: shard not listed in manifest.json; the "
                    "manifest does not match its shards. Rebuild the dataset, or pass --no-verify "
                    "to read the listed shards anyway.")
        self._files = {}
        self._group_starts = {}  # shard -> first row of each row group (group_starts)
        self._cache_key = None
        self._cache = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_files"], state["_cache_key"], state["_cache"] = {}, None, None
        return state

    def locate(self, i: int) -> tuple[int, int]:
        """(shard, row within the shard) of row ``i``."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for a dataset of {n} rows")
        i %= n
        s = bisect.bisect_right(self.offsets, i) - 1
        return s, i - int(self.offsets[s])

    def where(self, s: int, row: int | None = None, last: int | None = None) -> str:
        """Shard ``s`` and a row (or rows ``row``..``last``) of it, for messages."""
        if row is None:
            return str(self.shards[s])
        if last is not None and last != row:
            return f"{self.shards[s]} rows {row}-{last}"
        return f"{self.shards[s]} row {row}"

    @contextlib.contextmanager
    def decoding(self, s: int, row: int, last: int | None = None):
        """Turn a failure to decode rows ``row``..``last`` of shard ``s`` into one line naming
        them."""
        where = self.where(s, row, last)
        try:
            yield
        except DatasetError:
            raise
        except BlursynthError as exc:  # decode_image's line, which names the row when told to
            message = str(exc)
            named = message if message.startswith(where) else f"{where}: {message}"
            raise DatasetError(named) from None
        except Exception as exc:
            raise unreadable(where, exc) from None

    def _verify_shard(self, s: int) -> None:
        check_shard_sha256(self.shards[s], self.manifest["shards"][s]["sha256"],
                           fix="or pass --no-verify to read it anyway")

    def shard_file(self, s: int) -> pq.ParquetFile:
        """Shard ``s``, opened once and checked against the manifest (see ``verify``)."""
        f = self._files.get(s)
        if f is None:
            try:
                if self.verify:
                    self._verify_shard(s)
                f = pq.ParquetFile(self.shards[s])
            except FileNotFoundError:
                raise DatasetError(f"{self.shards[s]}: shard listed in manifest.json is missing.") from None
            except DatasetError:
                raise
            except Exception as exc:
                raise unreadable(self.where(s), exc) from None
            listed = int(self.offsets[s + 1] - self.offsets[s])
            if f.metadata.num_rows != listed:
                raise DatasetError(
                    f"{self.shards[s]}: holds {f.metadata.num_rows} rows; manifest.json says {listed}. "
                    "Run 'blursynth dataset verify' and rebuild the dataset."
                )
            self._files[s] = f
        return f

    def group_starts(self, s: int) -> np.ndarray:
        """The first row of each row group of shard ``s``, and its row count last (computed once:
        a pair shard has a group per row, and every read at random looks its row up)."""
        starts = self._group_starts.get(s)
        if starts is None:
            md = self.shard_file(s).metadata
            starts = np.zeros(md.num_row_groups + 1, np.int64)
            np.cumsum([md.row_group(g).num_rows for g in range(md.num_row_groups)], out=starts[1:])
            self._group_starts[s] = starts
        return starts

    def group_of(self, s: int, local: int) -> tuple[int, int]:
        """(row group, its first row) of row ``local`` of shard ``s``."""
        starts = self.group_starts(s)
        g = min(max(int(np.searchsorted(starts, local, side="right")) - 1, 0), len(starts) - 2)
        return g, int(starts[g])

    def read_group(self, s: int, g: int, columns=None):
        """Row group ``g`` of shard ``s`` as a pyarrow Table; a decode failure names its rows."""
        f = self.shard_file(s)
        starts = self.group_starts(s)
        with self.decoding(s, int(starts[g]), int(starts[g + 1]) - 1):
            return f.read_row_group(g, columns=columns)

    def iter_batches(self, s: int, columns=None, batch_size: int = 64):
        """Yield (first row, RecordBatch) of shard ``s``; a decode failure names its rows."""
        f = self.shard_file(s)
        batches = f.iter_batches(batch_size=batch_size, columns=columns)
        first = 0
        while True:
            with self.decoding(s, first, min(first + batch_size, f.metadata.num_rows) - 1):
                batch = next(batches, None)
            if batch is None:
                return
            yield first, batch
            first += batch.num_rows

    def to_pylist(self, s: int, first: int, batch) -> list:
        """Python rows of a batch whose first row is ``first``; a row that does not convert
        (text that is not UTF-8, say) is named exactly."""
        try:
            return batch.to_pylist()
        except Exception as exc:
            failure = exc
        for j in range(batch.num_rows):
            with self.decoding(s, first + j):
                batch.slice(j, 1).to_pylist()
        raise unreadable(self.where(s, first, first + batch.num_rows - 1), failure)

    def row(self, i: int, columns=None) -> dict:
        """Raw row ``i`` (Python values, images still encoded)."""
        s, local = self.locate(i)
        g, start = self.group_of(s, local)
        key = (s, g, tuple(columns) if columns else None)
        if key != self._cache_key:
            self._cache = self.to_pylist(s, start, self.read_group(s, g, columns=columns))
            self._cache_key = key
        return self._cache[local - start]

    def iter_rows(self, columns=None, batch_size: int = 64):
        """Yield every raw row in order, streaming shard by shard."""
        for s, _, row in self.iter_located(columns, batch_size):
            yield row

    def iter_located(self, columns=None, batch_size: int = 64):
        """Yield (shard, row within the shard, raw row) of every row in order."""
        for s in range(len(self.shards)):
            for first, batch in self.iter_batches(s, columns=columns, batch_size=batch_size):
                for j, row in enumerate(self.to_pylist(s, first, batch)):
                    yield s, first + j, row


class PairDataset:
    """Lazy, random-access view of a pair dataset.

    Parameters
    ----------
    path : str or Path
        Dataset directory (with ``manifest.json``).
    verify : bool
        Check each shard against the manifest as it is opened (:class:`ShardedTable`).

    Examples
    --------
    >>> ds = PairDataset("pairs/")            # doctest: +SKIP
    >>> item = ds[0]                          # doctest: +SKIP
    >>> item["blurred"].shape, item["params"]["crf"]  # doctest: +SKIP
    ((256, 256, 3), 'gamma:2.2')
    """

    def __init__(self, path, *, verify: bool = True):
        self.table = ShardedTable(path, kind="pairs", verify=verify)
        self.path = self.table.path
        self.manifest = self.table.manifest

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> dict:
        return self.read(i)

    def read(self, i: int, columns=None) -> dict:
        """Row ``i`` decoded, reading only ``columns`` (every column when None).

        A loader that needs the two images names ``("id", "blurred", "sharp")`` and skips the
        rest: a scene row's PSF field, poses and motion mask cost several times its images.
        """
        s, local = self.table.locate(i)
        row = self.table.row(i, columns)
        with self.table.decoding(s, local):
            return decode_pair_row(row, what=self.table.where(s, local))

    def raw(self, i: int, columns=None) -> dict:
        return self.table.row(i, columns)

    def __iter__(self):
        for s, local, row in self.table.iter_located():
            with self.table.decoding(s, local):
                yield decode_pair_row(row, what=self.table.where(s, local))


class LazyFrames(Sequence):
    """A recorded sequence's ground-truth frames, each decoded only when it is read.

    Köhler's rows hold every frame at full size; decoding them all with the row would cost
    their time and memory under every protocol, when only ``kohler`` reads them (one at a time).

    Examples
    --------
    >>> len(LazyFrames([], "row 0"))
    0
    """

    def __init__(self, encoded, what: str):
        self._encoded = list(encoded)
        self._what = what

    def __len__(self) -> int:
        return len(self._encoded)

    def __getitem__(self, k):
        from ..sources.photos import decode_image

        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        k = range(len(self))[k]  # IndexError past the end, as a list; negative k counted back
        return decode_image(self._encoded[k]["bytes"], what=f"{self._what} gt_frames[{k}]")


def decode_pair_row(row: dict, *, what: str = "row") -> dict:
    """Decode a raw pair row: images to uint8 (H, W, 3), psf to (k, k), params to dict."""
    from ..sources.photos import decode_image

    out = dict(row)
    out["blurred"] = decode_image(row["blurred"]["bytes"], what=f"{what} blurred")
    # None for a test image without ground truth (params "ground_truth": false).
    out["sharp"] = None if row.get("sharp") is None else decode_image(row["sharp"]["bytes"], what=f"{what} sharp")
    if "psf" in row:  # a row read for some columns only has none
        out["psf"] = struct_array(row["psf"])
    if row.get("motion_mask") is not None:  # scene blur: (H, W) uint8, 255 where objects moved
        out["motion_mask"] = decode_image(row["motion_mask"]["bytes"], what=f"{what} motion_mask")[:, :, 0]
    if row.get("psf_field") is not None:
        out["psf_field"] = struct_array(row["psf_field"])
    if row.get("gt_frames") is not None:  # recorded test sets: every ground-truth frame, in order
        out["gt_frames"] = LazyFrames(row["gt_frames"], what)
    if "params" in row:
        out["params"] = json.loads(row["params"]) if row["params"] else {}
    return out


def open_pairs(path, *, verify: bool = True):
    """Open a pair dataset, with a one-line error for a path that is not one; ``verify`` checks
    each shard against the manifest as it is opened (``--no-verify`` turns it off)."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"--data {path}: no such folder; expected a pair dataset written by "
                           f"blursynth (with manifest.json).")
    try:
        return PairDataset(p, verify=verify)
    except DatasetError:
        raise
    except Exception as exc:  # a manifest for something else, unreadable JSON, ...
        raise DatasetError(f"--data {path}: not a pair dataset ({' '.join(str(exc).split())}).") \
            from None


def check_ground_truth(ds, path, option: str = "--data") -> None:
    """Refuse, in one line, a dataset with rows that have no sharp image (an import's test rows,
    ``"ground_truth": false``): training needs one for every pair, and such a row would
    otherwise stop the run when it is first drawn, possibly hours in. Reads the params column
    alone."""
    import json

    n = 0
    for row in ds.table.iter_rows(columns=["params"], batch_size=4096):
        text = row.get("params") or ""
        # the substring test skips the JSON parse for the rows (nearly all) that cannot match
        if '"ground_truth"' in text and json.loads(text).get("ground_truth") is False:
            n += 1
    if n:
        raise BadInputError(f"{option} {path}: {n} of {len(ds)} pairs have no ground truth (test "
                            "images without a sharp image); training needs one for every pair. "
                            "Import only the splits that have it (dataset import --split).")
