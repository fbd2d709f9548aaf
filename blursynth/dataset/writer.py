"""Writing datasets: resumable, sharded Parquet written atomically, whatever the executor.

Shards are written by worker processes under a temporary name and renamed only
when complete, so a crash never leaves a half shard; a rerun of the same
command (same fingerprint) skips complete shards. Every row is a pure function
of (seed, index), and shard boundaries depend only on the number of items and
the shard size, so the bytes do not depend on the number of workers or the
executor (:mod:`blursynth.dataset.executors`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import shutil
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import BadInputError, DatasetError
from .arrow_rows import table_from_rows
from .executors import LOCAL, Executor, ProgressBar, report_rows, run_shards
from .outputs import OutputKind, atomic_write_text, claim, lock_output, remove_temporaries, temporary_path
from .schema import (
    DATA_DIR, FORMAT_VERSION, MANIFEST, NO_COMPRESSION_COLUMNS, PROGRESS, read_json_object, sha256_file, shard_name,
)

@dataclass(frozen=True)
class WriteOptions:
    """What a recipe build adds to a dataset write; plain commands use the defaults.

    Every way's entry function (``write_kernel_bank``, ``blur_photos``,
    ``bgan_blur``, ``write_frame_pairs``, ``import_pairs``) takes it as
    ``options=`` and hands it to :func:`write_dataset` unchanged.

    Attributes
    ----------
    executor : Executor
        Where the shards run; the bytes are the same on every executor.
    limit : int or None
        At most this many items (``blursynth build --limit``), spread evenly over
        the plan's items. A limited dataset is another dataset: its fingerprint is
        that of the full one and the limit.
    recipe : dict or None
        The build step that asked for the dataset (recipe file, fingerprint,
        step), recorded in the manifest as ``recipe``.

    Examples
    --------
    >>> WriteOptions(limit=8).executor.name
    'local'
    """

    executor: Executor = LOCAL
    limit: int | None = None
    recipe: dict | None = None


@dataclass(frozen=True)
class Skipped:
    """What ``make_rows`` yields in place of the row of a sample it refuses (e.g. a frame window
    that spans a scene cut).

    The writer writes no row for it and lists ``{"index", "reason", **detail}`` under its shard
    (``shards[i].skipped`` in the progress file and the manifest; the manifest's ``skipped`` is
    the total), so a resumed or finished dataset still says which samples are missing and why.
    """

    index: int
    reason: str
    detail: dict | None = None

    def record(self) -> dict:
        return {"index": int(self.index), "reason": self.reason, **(self.detail or {})}


#: A dataset folder: new, empty, or marked by the manifest or progress file of a dataset
#: (whether the same command's is :func:`write_dataset`'s next check).
DATASET = OutputKind(
    what="dataset",
    is_file="--out {out} is a file; expected a directory (new, or a dataset made by this same command).",
    foreign="--out {out} is a non-empty folder that is not a blursynth dataset; choose a new or empty folder.",
    markers=(PROGRESS, MANIFEST),
    own_when_marked=lambda name: True,
)


def write_dataset(
    out,
    *,
    kind: str,
    schema: pa.Schema,
    n_items: int,
    shard_size: int,
    make_rows,
    fingerprint: str,
    command: dict,
    workers: int = 1,
    overwrite: bool = False,
    unit: str = "pair",
    desc: str | None = None,
    row_group_size: int = 1,
    split: str = "train",
    extra: dict | None = None,
    progress: bool = True,
    progress_total: int | None = None,
    options: WriteOptions | None = None,
    chunk_size: int | None = None,
    tail_chunk_size: int | None = None,
    on_start=None,
) -> dict:
    """Write (or resume) a sharded Parquet dataset and its manifest.

    Parameters
    ----------
    out : str or Path
        Output directory: new, empty, or a dataset made by the same command.
    kind : {'pairs', 'kernels'}
    schema : pyarrow.Schema
        Fixed before the first write (e.g. :data:`PAIR_SCHEMA`).
    n_items : int
        Number of samples planned; shard ``s`` holds samples
        ``s*shard_size .. min((s+1)*shard_size, n_items) - 1``.
    shard_size : int
        Samples per shard.
    make_rows : callable ``(start, stop) -> iterable of dict or pyarrow.Table``
        Picklable (module-level function or ``functools.partial`` of one).
        Yields rows (dicts, or ready-made tables of several rows) for samples
        ``start..stop-1`` in order; it may yield fewer (e.g. a truncated video),
        or a :class:`Skipped` in place of a sample it refuses (listed in the manifest).
    fingerprint : str
        Fingerprint of everything that determines the bytes (not the worker count).
    command : dict
        Settings recorded in the manifest.
    workers : int
        Worker processes; 1 runs in this process. The output does not depend on it.
    overwrite : bool
        Replace a dataset made by a different command.
    unit, desc : str
        Progress bar labels.
    row_group_size : int
        Rows per Parquet row group, the unit of lazy reads: reading one row reads its whole
        group. One by default, for rows of images (a 720p pair is about 2.6 MB): a shuffled
        training loader then reads only the rows it uses (a 720p pair's row read at random:
        12.5 ms with 16 rows a group, 1.0 ms with one; ``benchmarks/bench_loader.py``). Kernel
        banks, whose rows are small, pass their own.
    split : str
        Shard name prefix.
    extra : dict, optional
        More manifest entries.
    progress : bool
        Show a progress bar.
    progress_total : int, optional
        The bar counts ``unit``s that ``make_rows`` reports with
        :func:`report_progress` (e.g. video frames), up to this total, instead
        of rows. On a resumed run it starts at the done rows' share of it.
        Ignored on Ray, whose tasks report only finished shards.
    options : WriteOptions, optional
        From a recipe build: the executor, ``--limit`` and the recipe to record.
    chunk_size : int, optional
        With ``workers > 1`` on the local executor: render rows in chunks of this many items
        on all workers and write every shard in this process, in order
        (:class:`~blursynth.dataset.executors.RowFeed`), so the workers are busy whatever the
        number of shards. For row makers whose items are cheap to start anywhere (not a video
        decoded from its start). None: each shard is one worker's task, as on Ray.
    tail_chunk_size : int, optional
        With ``chunk_size``: the last chunks are cut to this many items (a group of a row maker
        whose items come in groups: a photo's pairs), so the workers finish together.
    on_start : callable, optional
        Called with no argument once ``out`` is claimed, locked and found new or this command's,
        before any work: where a caller's warnings about its plan go, so that an output refused
        (another command's, or locked by another process) is refused in its one line alone.

    Returns
    -------
    manifest : WrittenManifest
        ``manifest.json``'s contents (a dict), with ``rows_written``: the rows this run wrote.
    """
    out = Path(out)
    if n_items < 1:
        raise BadInputError(f"number of items must be at least 1; got {n_items}.")
    options = options or WriteOptions()
    executor, limit = options.executor, options.limit
    if limit is not None and n_items > limit:
        # Its items are spread evenly over the full plan (item k is the plan's item
        # k * planned // limit), so a quick look samples every photo or clip, not the first.
        make_rows = functools.partial(_spread_rows, make_rows, n_items, int(limit))
        fingerprint = dataset_fingerprint(fingerprint, n_items, options)
        n_items = int(limit)
    if options.recipe is not None:
        extra = {**(extra or {}), "recipe": dict(options.recipe)}
    n_shards = max(1, math.ceil(n_items / shard_size))
    claimed = claim(out, DATASET)
    with lock_output(out):  # a second writer is refused before it reads or removes anything
        done = _prepare_output(out, claimed, kind=kind, fingerprint=fingerprint, n_shards=n_shards, overwrite=overwrite,
                               command=command)
        if on_start is not None:
            on_start()
        data = out / DATA_DIR
        tasks, rows_done, digests, skips, other_layout = [], {}, {}, {}, []

        def keep(name, record):
            rows_done[name] = int(record["rows"])
            digests[name] = record["sha256"]
            skips[name] = list(record.get("skipped", []))

        for s in range(n_shards):
            path = data / shard_name(split, s, n_shards)
            task = (str(path), schema, s * shard_size, min((s + 1) * shard_size, n_items), make_rows, row_group_size)
            if path.exists():
                record = done.get(path.name)
                if record is not None and sha256_file(path) == record.get("sha256"):
                    if _has_layout(path, row_group_size):
                        keep(path.name, record)
                    else:
                        other_layout.append((task, record))
                    continue
                path.unlink()  # unrecorded or changed since: rebuild it
            tasks.append(task)
        if other_layout and not tasks:  # a finished dataset of an earlier version: kept as it is
            for task, record in other_layout:
                keep(Path(task[0]).name, record)
        elif other_layout:
            # Work to do: shards written with other row groups (by an earlier version) are made
            # again, so that the dataset is the bytes of one uninterrupted run.
            warnings.warn(f"--out {out}: rebuilding {len(other_layout)} finished shard(s) written with "
                          f"other Parquet row groups than this blursynth writes ({row_group_size} row(s) "
                          "each), so that the resumed dataset is the bytes of an uninterrupted run.",
                          stacklevel=2)
            for task, _ in other_layout:
                Path(task[0]).unlink()
            tasks = sorted(tasks + [task for task, _ in other_layout], key=lambda t: t[2])
        # Shards of an earlier plan (another shard count) do not belong to this dataset.
        for stray in data.glob("*.parquet"):
            if _SHARD.fullmatch(stray.name) and stray.name not in rows_done and str(stray) not in {t[0] for t in tasks}:
                stray.unlink()
        def shard_record(name):
            return {"rows": rows_done[name], "sha256": digests[name],
                    **({"skipped": skips[name]} if skips.get(name) else {})}

        recorded = {name: shard_record(name) for name in rows_done}

        rows_kept = sum(rows_done.values())

        def finished(name, n, skipped, digest):
            rows_done[name] = n
            digests[name] = digest
            skips[name] = skipped
            recorded[name] = shard_record(name)
            _write_progress(out, kind, fingerprint, n_shards, recorded, command)

        from .._progress import progress_bar
        from .._startup import startup_over

        startup_over(collect=False)  # the work begins: start-up frozen, the collector back on
        own_units = progress_total is not None and executor.name != "ray"
        bar = ProgressBar(progress_bar(
            total=progress_total if own_units else n_items,
            initial=round(progress_total * rows_kept / max(n_items, 1)) if own_units else rows_kept,
            unit=unit,
            desc=desc or f"writing {kind}",
            enabled=progress,
        ), own_units)
        any_written = bool(rows_done)
        try:
            for name, n, skipped, digest in run_shards(_write_shard, tasks, workers=workers, executor=executor,
                                                       make_rows=make_rows, bar=bar, chunk=chunk_size,
                                                       tail_chunk=tail_chunk_size):
                finished(name, n, skipped, digest)
                any_written = True
        except BadInputError:
            if not any_written:
                claimed.undo()
            raise
        finally:
            bar.close()

        # Temporary files of workers that died mid-shard (their retries wrote the shard).
        _remove_temporaries(out)
        shards = []
        for s in range(n_shards):
            name = shard_name(split, s, n_shards)
            shards.append({"file": f"{DATA_DIR}/{name}", **shard_record(name)})
        manifest = WrittenManifest({
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "fingerprint": fingerprint,
            "command": command,
            "planned_items": n_items,
            "num_rows": sum(s["rows"] for s in shards),
            "splits": {split: sum(s["rows"] for s in shards)},
            "shards": shards,
        })
        if any(skips.values()):
            manifest["skipped"] = sum(len(v) for v in skips.values())
        if extra:
            manifest.update(extra)
        from ..config import canonical_json

        atomic_write_text(out / MANIFEST, json.dumps(json.loads(canonical_json(manifest)), indent=1, sort_keys=True) + "\n")
        (out / PROGRESS).unlink(missing_ok=True)
        manifest.rows_written = manifest["num_rows"] - rows_kept
        manifest.shards_written = len(tasks)
        return manifest


class WrittenManifest(dict):
    """What :func:`write_dataset` returns: ``manifest.json``'s contents, and what this run did
    (not stored): ``shards_written``, the shards it wrote (none on a rerun of a finished
    dataset), and ``rows_written``, their rows (the others were kept from an earlier run of the
    same command)."""

    rows_written: int = 0
    shards_written: int = 0


def _settings_differing(was, now) -> str | None:
    """``"seed 1 (recorded) vs 2, ..."``: what differs between ``was`` (the recorded command of
    an earlier run, from its manifest or progress file) and ``now`` when both are the same
    command (up to three settings, long values cut); None when they are not, or unknown."""
    if not (isinstance(was, dict) and isinstance(now, dict)) or was.get("command") is None \
            or was.get("command") != now.get("command"):
        return None
    from ..config import canonical_json

    try:
        now = json.loads(canonical_json(now))  # as the manifest and progress file record it
    except (TypeError, ValueError):
        return None
    keys = [k for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k)]
    if not keys:
        return None

    def short(v):
        text = json.dumps(v)
        return text if len(text) <= 60 else text[:57] + "..."

    shown = ", ".join(f"{k} {short(was.get(k))} (recorded) vs {short(now.get(k))}" for k in keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def _prepare_output(out: Path, claimed, *, kind: str, fingerprint: str, n_shards: int, overwrite: bool,
                    command: dict | None = None):
    """Reopen the claimed and locked ``out``: check whose it is, remove what earlier runs left.

    Returns
    -------
    done : dict
        ``{shard name: {"rows", "sha256"}}`` of shards an earlier run of the same
        command finished (from its progress file or manifest): a rerun keeps a
        shard only if its bytes still hash to what was recorded.
    """
    if (out / DATA_DIR).is_symlink():
        # Clean-up removes stale shards in data/; through a link it would remove another folder's files.
        raise BadInputError(
            f"--out {out}: {out / DATA_DIR} is a symbolic link; blursynth will not remove or replace shards "
            "through a link. Replace it with a folder, or give the linked disk's folder as --out."
        )
    owner, owner_file = None, None
    for name in (PROGRESS, MANIFEST):
        if (out / name).exists():
            owner, owner_file = read_json_object(out / name, name), name
            break
    done = {}
    if owner is not None:
        same = owner.get("fingerprint") == fingerprint and owner.get("kind") == kind
        if not same:
            if not overwrite:
                differ = _settings_differing(owner.get("command"), command)
                if differ is not None:
                    raise DatasetError(
                        f"{out} holds a {owner.get('kind', '?')} dataset made by this command with other "
                        f"settings ({differ}; fingerprint {owner.get('fingerprint')} != {fingerprint}); "
                        "rerun with the recorded settings to resume it, choose another output folder or "
                        "pass --overwrite to replace it."
                    )
                raise DatasetError(
                    f"{out} holds a {owner.get('kind', '?')} dataset made by a different command "
                    f"(fingerprint {owner.get('fingerprint')} != {fingerprint}); choose another output "
                    "folder or pass --overwrite to replace it."
                )
            shutil.rmtree(out / DATA_DIR, ignore_errors=True)
            for name in (MANIFEST, PROGRESS):
                (out / name).unlink(missing_ok=True)
        elif owner_file == PROGRESS:
            done = dict(owner.get("done", {}))
        else:
            done = {Path(s["file"]).name: {k: s[k] for k in ("rows", "sha256", "skipped") if k in s}
                    for s in owner.get("shards", [])}
    try:
        (out / DATA_DIR).mkdir(parents=True, exist_ok=True)
        _remove_temporaries(out)  # of a run that was killed: nobody else writes here while we hold the lock
        _write_progress(out, kind, fingerprint, n_shards, done, command)
    except OSError as exc:
        claimed.undo()
        raise BadInputError(DATASET.cannot_write.format(out=out, error=exc.strerror or exc)) from None
    return done


#: The names the writer gives its shards (a stale one of another plan is removed; no other file is).
_SHARD = re.compile(r"[A-Za-z0-9_]+-\d{5,}-of-\d{5,}\.parquet")


def _remove_temporaries(out: Path) -> None:
    """Remove the temporary files a killed writer left: of shards in ``data/``, of the manifest and
    progress file in ``out``. Only those names; links are removed, never followed."""
    remove_temporaries(out / DATA_DIR, _SHARD.fullmatch)
    remove_temporaries(out, lambda name: name in (MANIFEST, PROGRESS))


def dataset_fingerprint(fingerprint: str, n_items: int, options=None) -> str:
    """The fingerprint a dataset of ``n_items`` planned items and a command's ``fingerprint``
    is written under: the command's own, or for a ``--limit`` build of fewer items its own
    (another dataset, so that a full build into the same folder is never taken for a resume of it).

    Examples
    --------
    >>> dataset_fingerprint("ab12", 10) == "ab12" != dataset_fingerprint("ab12", 10, WriteOptions(limit=3))
    True
    """
    limit = (options or WriteOptions()).limit
    if limit is None or n_items <= limit:
        return fingerprint
    from ..config import fingerprint as _fp

    return _fp({"fingerprint": fingerprint, "limit": int(limit), "picks": "spread"})


def _spread_rows(make_rows, planned: int, limit: int, start: int, stop: int):
    """Rows of items ``start..stop-1`` of a ``--limit`` build: item k is the full plan's item
    ``k * planned // limit``, made (and keyed) exactly as the full build makes it."""
    for k in range(start, stop):
        item = k * planned // limit
        yield from make_rows(item, item + 1)


def _write_progress(out: Path, kind: str, fingerprint: str, n_shards: int, done: dict, command=None) -> None:
    # The command's settings too: a rerun with others is told which differ.
    from ..config import canonical_json

    atomic_write_text(
        out / PROGRESS,
        canonical_json({"kind": kind, "fingerprint": fingerprint, "n_shards": n_shards, "done": done,
                        "command": command}),
    )


def _has_layout(path: Path, row_group_size: int) -> bool:
    """Whether a shard's row groups are this writer's: ``row_group_size`` recorded, and no group
    larger (ready-made tables may end a group early). A shard of another layout (an earlier
    version's) is rebuilt when a resume has work to do (:func:`write_dataset`)."""
    try:
        meta = pq.read_metadata(path)
        recorded = json.loads((meta.metadata or {}).get(b"blursynth", b"{}"))["writer"]["row_group_size"]
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    except Exception:  # noqa: BLE001 - unreadable or unrecorded: another layout
        return False
    return recorded == row_group_size and max(sizes, default=0) <= row_group_size


def _writer_metadata(schema: pa.Schema, row_group_size: int) -> pa.Schema:
    meta = dict(schema.metadata or {})
    info = json.loads(meta.get(b"blursynth", b"{}"))
    info["writer"] = {
        "row_group_size": row_group_size,
        "compression": "zstd",
        "uncompressed_columns": [c for c in NO_COMPRESSION_COLUMNS if _has_column(schema, c)],
        "dictionary": False,
    }
    meta[b"blursynth"] = json.dumps(info, sort_keys=True).encode()
    return schema.with_metadata(meta)


def _has_column(schema: pa.Schema, dotted: str) -> bool:
    top = dotted.split(".")[0]
    return top in schema.names


def _write_shard(task):
    """Worker: build rows ``start..stop-1`` and write one shard atomically."""
    path, schema, start, stop, make_rows, row_group_size = task
    path = Path(path)
    tmp = temporary_path(path)
    schema = _writer_metadata(schema, row_group_size)
    compression = {c: "zstd" for c in _leaf_columns(schema)}
    for c in NO_COMPRESSION_COLUMNS:
        if c in compression:
            compression[c] = "none"
    rows_written = 0
    skipped = []
    try:
        sink = _HashingFile(tmp)
        with sink, pq.ParquetWriter(
            pa.PythonFile(sink, mode="w"),
            schema,
            compression=compression,
            use_dictionary=False,
            write_statistics=False,
        ) as writer:
            batch = []
            for row in make_rows(start, stop):
                if isinstance(row, Skipped):
                    skipped.append(row.record())
                    report_rows(1)  # done, if not written: the bar ends at its total
                    continue
                if isinstance(row, (pa.Table, pa.RecordBatch)):
                    # A ready-made chunk (fast path for numeric columns).
                    if batch:
                        writer.write_table(table_from_rows(batch, schema))
                        rows_written += len(batch)
                        report_rows(len(batch))
                        batch = []
                    table = pa.Table.from_batches([row]) if isinstance(row, pa.RecordBatch) else row
                    table = table.cast(schema)
                    writer.write_table(table, row_group_size=row_group_size)
                    rows_written += table.num_rows
                    report_rows(table.num_rows)
                    continue
                batch.append(row)
                if len(batch) >= row_group_size:
                    writer.write_table(table_from_rows(batch, schema))
                    rows_written += len(batch)
                    report_rows(len(batch))
                    batch = []
            if batch or rows_written == 0:
                writer.write_table(table_from_rows(batch, schema))
                rows_written += len(batch)
                report_rows(len(batch))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path.name, rows_written, skipped, sink.hexdigest()


class _HashingFile:
    """A file opened for writing that hashes what is written to it, in order, and has the disk
    take it as it comes.

    Parquet is written front to back (the footer last, no seeks), so the SHA-256 of the bytes
    written equals the file's: the manifest's digest comes with the write instead of from
    reading the whole shard back after it, which would hold up the end of a run (a 300 MB shard
    reads at about 1.5 GB/s). ``tests/test_dataset_writer.py`` checks it against ``sha256_file``.

    Every ``SYNC_EVERY`` bytes a thread asks the disk to store what has been written so far
    (``fdatasync``, which waits on the disk, not on a core), so the ``fsync`` before the shard's
    rename, at the end of a run when no other work is left to overlap it, has only the last
    part to store (a 300 MB shard took about 0.12 s to store at once).
    """

    SYNC_EVERY = 32 << 20

    def __init__(self, path):
        self._file = open(path, "wb")
        self._hash = hashlib.sha256()
        self._unsynced = 0
        self._sync = None

    def write(self, data) -> int:
        self._hash.update(data)
        n = self._file.write(data)
        self._unsynced += n
        if self._unsynced >= self.SYNC_EVERY and (self._sync is None or not self._sync.is_alive()):
            self._file.flush()
            self._unsynced = 0
            self._sync = threading.Thread(target=_sync_quietly, args=(self._file.fileno(),), daemon=True)
            self._sync.start()
        return n

    def tell(self) -> int:
        return self._file.tell()

    def flush(self) -> None:
        self._file.flush()

    def writable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        if self._sync is not None:
            self._sync.join()
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _sync_quietly(fd: int) -> None:
    # Only an early start of the storing: the fsync before the rename reports any failure.
    try:
        getattr(os, "fdatasync", os.fsync)(fd)  # macOS has fsync alone
    except OSError:
        pass


def _leaf_columns(schema: pa.Schema) -> list[str]:
    names = []

    def walk(prefix, typ):
        if pa.types.is_struct(typ):
            for i in range(typ.num_fields):
                f = typ.field(i)
                walk(f"{prefix}.{f.name}", f.type)
        elif pa.types.is_list(typ):
            walk(f"{prefix}.list.element", typ.value_type)
        else:
            names.append(prefix)

    for field in schema:
        walk(field.name, field.type)
    return names
