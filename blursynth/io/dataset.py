"""The sharded Parquet dataset format: schema, resumable writer, lazy reader, verifier.

One directory per dataset::

    out/
      manifest.json                  format version, kind, command, fingerprint, shards
      data/train-00000-of-00016.parquet ...

Shards are written by worker processes under a temporary name and renamed only
when complete, so a crash never leaves a half shard; a rerun of the same
command (same fingerprint) skips complete shards. Every row is a pure function
of (seed, index), and shard boundaries depend only on the number of items and
the shard size, so the bytes do not depend on the number of workers.
"""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import functools
import hashlib
import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import BadInputError, DatasetError
from .atomic import atomic_write_text as _atomic_write_text

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PROGRESS = ".blursynth-progress.json"
DATA_DIR = "data"
SOURCES = ("trajectory", "video", "bgan", "real")

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
ARRAY_TYPE = pa.struct([("shape", pa.list_(pa.int32())), ("values", pa.list_(pa.float32()))])


def _hf_value(dtype):
    return {"dtype": dtype, "_type": "Value"}


_PAIR_HF_FEATURES = {
    "id": _hf_value("string"),
    "index": _hf_value("int64"),
    "blurred": {"_type": "Image"},
    "sharp": {"_type": "Image"},
    "psf": {
        "shape": {"feature": _hf_value("int32"), "_type": "List"},
        "values": {"feature": _hf_value("float32"), "_type": "List"},
    },
    "source": _hf_value("string"),
    "seed": _hf_value("int64"),
    "params": _hf_value("string"),
    "fingerprint": _hf_value("string"),
}


def _with_metadata(schema: pa.Schema, kind: str, hf_features=None) -> pa.Schema:
    meta = {b"blursynth": json.dumps({"format_version": FORMAT_VERSION, "kind": kind}).encode()}
    if hf_features is not None:
        meta[b"huggingface"] = json.dumps({"info": {"features": hf_features}}).encode()
    return schema.with_metadata(meta)


PAIR_SCHEMA = _with_metadata(
    pa.schema(
        [
            pa.field("id", pa.string()),
            pa.field("index", pa.int64()),
            pa.field("blurred", IMAGE_TYPE),
            pa.field("sharp", IMAGE_TYPE),
            pa.field("psf", ARRAY_TYPE),
            pa.field("source", pa.string()),
            pa.field("seed", pa.int64()),
            pa.field("params", pa.string()),
            pa.field("fingerprint", pa.string()),
        ]
    ),
    "pairs",
    _PAIR_HF_FEATURES,
)

# Encoded images are already compressed: zstd on them costs time and saves nothing.
_NO_COMPRESSION_COLUMNS = ("blurred.bytes", "sharp.bytes")


def array_struct(array) -> dict | None:
    """A float array as the ``{shape, values}`` struct stored in Parquet (None stays None)."""
    if array is None:
        return None
    array = np.asarray(array, dtype=np.float32)
    return {"shape": list(array.shape), "values": array.ravel().tolist()}


def struct_array(value) -> np.ndarray | None:
    """Inverse of :func:`array_struct`."""
    if value is None:
        return None
    return np.asarray(value["values"], dtype=np.float32).reshape(value["shape"])


def pair_row(
    *,
    index: int,
    blurred: np.ndarray,
    sharp: np.ndarray,
    psf,
    source: str,
    seed: int,
    params: dict,
    fingerprint: str,
    png_level: int | None = None,
    id: str | None = None,
    blurred_path: str | None = None,
    sharp_path: str | None = None,
) -> dict:
    """One pair as a row of :data:`PAIR_SCHEMA`, with both images encoded as PNG.

    Parameters
    ----------
    index : int
        Sample index; with ``seed`` it determines every random choice of the pair.
    blurred, sharp : (H, W, 3) uint8 ndarray
        The pair, RGB, same shape.
    psf : (k, k) float ndarray or None
        The blur kernel, if the pair has one.
    source : {'trajectory', 'video', 'bgan', 'real'}
    seed : int
    params : dict
        JSON-serialisable record of everything that made the pair.
    fingerprint : str
        Fingerprint of the command or recipe.
    png_level : int or None
        None for the fast fpng encoder, 0-9 for zlib.
    id : str, optional
        Defaults to ``f"{index:09d}"``.

    Returns
    -------
    row : dict
    """
    from ..config import canonical_json
    from .images import encode_png

    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}; got {source!r}.")
    if blurred.shape != sharp.shape:
        raise ValueError(
            f"blurred and sharp must have the same shape; got {blurred.shape} and {sharp.shape}."
        )
    name = id if id is not None else f"{index:09d}"
    return {
        "id": name,
        "index": int(index),
        "blurred": {"bytes": encode_png(blurred, png_level), "path": blurred_path or f"{name}_blur.png"},
        "sharp": {"bytes": encode_png(sharp, png_level), "path": sharp_path or f"{name}_sharp.png"},
        "psf": array_struct(psf),
        "source": source,
        "seed": int(seed),
        "params": canonical_json(params),
        "fingerprint": fingerprint,
    }


# ---------------------------------------------------------------------------------------------
# writing


def shard_name(split: str, shard: int, n_shards: int) -> str:
    return f"{split}-{shard:05d}-of-{n_shards:05d}.parquet"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable {what} ({exc}); delete the folder or pass --overwrite.")
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: unreadable {what} (a JSON {type(data).__name__}, not an object); "
                           "delete the folder or pass --overwrite.")
    return data


def _prepare_output(out: Path, *, kind: str, fingerprint: str, n_shards: int, overwrite: bool):
    """Create or reopen ``out``.

    Returns
    -------
    created : bool
        True when this call created the folder.
    done : dict
        ``{shard name: {"rows", "sha256"}}`` of shards an earlier run of the same
        command finished (from its progress file or manifest): a rerun keeps a
        shard only if its bytes still hash to what was recorded.
    """
    if out.exists() and not out.is_dir():
        raise BadInputError(
            f"--out {out} is a file; expected a directory (new, or a dataset made by this same command)."
        )
    created = not out.exists()
    owner, owner_file = None, None
    for name in (PROGRESS, MANIFEST):
        if (out / name).exists():
            owner, owner_file = _read_json(out / name, name), name
            break
    done = {}
    if owner is not None:
        same = owner.get("fingerprint") == fingerprint and owner.get("kind") == kind
        if not same:
            if not overwrite:
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
            done = {Path(s["file"]).name: {"rows": s["rows"], "sha256": s["sha256"]} for s in owner.get("shards", [])}
    elif not created and any(out.iterdir()):
        raise BadInputError(
            f"--out {out} is a non-empty folder that is not a blursynth dataset; "
            "choose a new or empty folder."
        )
    try:
        (out / DATA_DIR).mkdir(parents=True, exist_ok=True)
        for stale in (out / DATA_DIR).glob(".*.tmp*"):
            stale.unlink(missing_ok=True)
        _write_progress(out, kind, fingerprint, n_shards, done)
    except OSError as exc:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise BadInputError(
            f"--out {out}: cannot write there ({exc.strerror or exc}); choose a folder you can write to."
        ) from None
    return created, done


def _write_progress(out: Path, kind: str, fingerprint: str, n_shards: int, done: dict) -> None:
    _atomic_write_text(
        out / PROGRESS,
        json.dumps({"kind": kind, "fingerprint": fingerprint, "n_shards": n_shards, "done": done}, sort_keys=True),
    )


_progress_queue = None

EXECUTORS = ("local", "ray")
_executor = contextvars.ContextVar("blursynth_executor", default=("local", None))


@contextlib.contextmanager
def use_executor(name: str, address: str | None = None, *, gpus_per_task: float = 0.0):
    """Run every :func:`write_dataset` inside the block on ``name`` ('local' or 'ray').

    With 'ray', each shard is one Ray task (retried by Ray if its worker dies; a
    shard is only ever renamed into place complete, so a retry is safe), on the
    cluster at ``address`` or a local instance when None. The bytes written are
    the same as with the local process pool.
    """
    if name not in EXECUTORS:
        raise BadInputError(f"--executor must be one of {', '.join(EXECUTORS)}; got {name!r}.")
    token = _executor.set((name, address, gpus_per_task) if name == "ray" else ("local", None))
    try:
        yield
    finally:
        _executor.reset(token)


_build = contextvars.ContextVar("blursynth_build", default=None)


@contextlib.contextmanager
def build_context(info: dict):
    """Inside the block, manifests record ``info`` (recipe file, fingerprint, step) and
    ``info["limit"]``, when set, caps the number of items of every dataset written."""
    token = _build.set(dict(info))
    try:
        yield
    finally:
        _build.reset(token)


def _init_worker(queue):
    global _progress_queue
    _progress_queue = queue
    # Each worker process uses one thread: parallelism comes from processes. The variables
    # are read when torch / OpenCV / BLAS start their thread pools, which is later, on
    # first import inside the work function.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    if "torch" in sys.modules:  # pragma: no cover - only when the parent pickled torch objects
        sys.modules["torch"].set_num_threads(1)


def _writer_metadata(schema: pa.Schema, row_group_size: int) -> pa.Schema:
    meta = dict(schema.metadata or {})
    info = json.loads(meta.get(b"blursynth", b"{}"))
    info["writer"] = {
        "row_group_size": row_group_size,
        "compression": "zstd",
        "uncompressed_columns": [c for c in _NO_COMPRESSION_COLUMNS if _has_column(schema, c)],
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
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    schema = _writer_metadata(schema, row_group_size)
    compression = {c: "zstd" for c in _leaf_columns(schema)}
    for c in _NO_COMPRESSION_COLUMNS:
        if c in compression:
            compression[c] = "none"
    rows_written = 0
    try:
        with pq.ParquetWriter(
            tmp,
            schema,
            compression=compression,
            use_dictionary=False,
            write_statistics=False,
        ) as writer:
            batch = []
            for row in make_rows(start, stop):
                if isinstance(row, (pa.Table, pa.RecordBatch)):
                    # A ready-made chunk (fast path for numeric columns).
                    if batch:
                        writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                        rows_written += len(batch)
                        _report(len(batch))
                        batch = []
                    table = pa.Table.from_batches([row]) if isinstance(row, pa.RecordBatch) else row
                    table = table.cast(schema)
                    writer.write_table(table, row_group_size=row_group_size)
                    rows_written += table.num_rows
                    _report(table.num_rows)
                    continue
                batch.append(row)
                if len(batch) >= row_group_size:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    rows_written += len(batch)
                    _report(len(batch))
                    batch = []
            if batch or rows_written == 0:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                rows_written += len(batch)
                _report(len(batch))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path.name, rows_written


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


def _report(n):
    if _progress_queue is not None and n:
        _progress_queue.put(n)


def report_progress(n: int) -> None:
    """From inside ``make_rows``: advance the bar of ``write_dataset(..., progress_total=...)`` by ``n``.

    Works in pool processes too (through the writer's progress queue); does
    nothing outside a write.

    Examples
    --------
    >>> report_progress(3)  # no write running: nothing happens
    """
    if _progress_queue is not None and n:
        _progress_queue.put(("units", int(n)))


def _complete_rows(path: Path) -> int | None:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception:
        return None


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
    row_group_size: int = 16,
    split: str = "train",
    extra: dict | None = None,
    progress: bool = True,
    progress_total: int | None = None,
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
        ``start..stop-1`` in order; it may yield fewer (e.g. a truncated video).
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
        Rows per Parquet row group (the unit of lazy reads).
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

    Notes
    -----
    Inside ``with use_executor("ray", address):`` the shards run as Ray tasks
    instead of local processes; the bytes are the same.

    Returns
    -------
    manifest : dict
    """
    out = Path(out)
    if n_items < 1:
        raise BadInputError(f"number of items must be at least 1; got {n_items}.")
    build = _build.get()
    if build is not None:
        limit = build.get("limit")
        if limit is not None and n_items > limit:
            # A limited build is another dataset: its own fingerprint, so that a full
            # build into the same folder is never mistaken for a resume of it.
            from ..config import fingerprint as _fp

            n_items = int(limit)
            fingerprint = _fp({"fingerprint": fingerprint, "limit": n_items})
        extra = {**(extra or {}), "recipe": {k: v for k, v in build.items() if k != "limit"}}
    n_shards = max(1, math.ceil(n_items / shard_size))
    created, done = _prepare_output(out, kind=kind, fingerprint=fingerprint, n_shards=n_shards, overwrite=overwrite)
    data = out / DATA_DIR
    tasks, rows_done, digests = [], {}, {}
    for s in range(n_shards):
        path = data / shard_name(split, s, n_shards)
        start, stop = s * shard_size, min((s + 1) * shard_size, n_items)
        if path.exists():
            record = done.get(path.name)
            if record is not None and _sha256(path) == record.get("sha256"):
                rows_done[path.name] = int(record["rows"])
                digests[path.name] = record["sha256"]
                continue
            path.unlink()  # unrecorded or changed since: rebuild it
        tasks.append((str(path), schema, start, stop, make_rows, row_group_size))
    # Shards of an earlier plan (another shard count) do not belong to this dataset.
    for stray in data.glob("*.parquet"):
        if stray.name not in rows_done and str(stray) not in {t[0] for t in tasks}:
            stray.unlink()
    recorded = {name: {"rows": rows_done[name], "sha256": digests[name]} for name in rows_done}

    def finished(name, n):
        rows_done[name] = n
        digests[name] = _sha256(data / name)
        recorded[name] = {"rows": n, "sha256": digests[name]}
        _write_progress(out, kind, fingerprint, n_shards, recorded)

    from tqdm.auto import tqdm

    own_units = progress_total is not None and _executor.get()[0] != "ray"
    done_rows = sum(rows_done.values())
    bar = _ProgressBar(tqdm(
        total=progress_total if own_units else n_items,
        initial=round(progress_total * done_rows / max(n_items, 1)) if own_units else done_rows,
        unit=unit,
        desc=desc or f"writing {kind}",
        disable=not progress,
        dynamic_ncols=True,
    ), own_units)
    any_written = bool(rows_done)
    try:
        executor = _executor.get()
        if executor[0] == "ray" and tasks:
            for name, n in _run_on_ray(tasks, executor, bar):
                finished(name, n)
                any_written = True
        elif workers <= 1 or len(tasks) <= 1:
            global _progress_queue
            previous = _progress_queue
            local = _LocalQueue(bar)
            _progress_queue = local
            try:
                for task in tasks:
                    name, n = _write_shard(task)
                    finished(name, n)
                    any_written = True
            finally:
                _progress_queue = previous
        else:
            for name, n in _run_pool(tasks, workers, make_rows, bar):
                finished(name, n)
                any_written = True
    except BadInputError:
        if created and not any_written:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        bar.close()

    # Temporary files of workers that died mid-shard (their retries wrote the shard).
    for stale in data.glob(".*.tmp*"):
        stale.unlink(missing_ok=True)
    shards = []
    for s in range(n_shards):
        name = shard_name(split, s, n_shards)
        shards.append({"file": f"{DATA_DIR}/{name}", "rows": rows_done[name], "sha256": digests[name]})
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "fingerprint": fingerprint,
        "command": command,
        "planned_items": n_items,
        "num_rows": sum(s["rows"] for s in shards),
        "splits": {split: sum(s["rows"] for s in shards)},
        "shards": shards,
    }
    if extra:
        manifest.update(extra)
    from ..config import canonical_json

    _atomic_write_text(out / MANIFEST, json.dumps(json.loads(canonical_json(manifest)), indent=1, sort_keys=True) + "\n")
    (out / PROGRESS).unlink(missing_ok=True)
    return manifest


def _ray_write_shard(task):
    """Ray task body: one shard, progress reported when it is done."""
    _init_worker(None)
    return _write_shard(task)


def _run_on_ray(tasks, executor, bar):
    """Each shard as a Ray task; yields (shard name, rows) as they finish."""
    try:
        import ray
    except ImportError:
        raise BadInputError(
            "--executor ray needs Ray, which is not installed; install it with "
            "'pip install blursynth[ray]' (or 'pip install \"ray[default]\"')."
        ) from None
    _, address, gpus = executor
    if not ray.is_initialized():
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        except Exception as exc:
            raise BadInputError(f"--address {address}: cannot connect to a Ray cluster ({exc}).") from None
    remote = ray.remote(max_retries=3, retry_exceptions=False, num_cpus=1, num_gpus=gpus)(_ray_write_shard)
    pending = [remote.remote(t) for t in tasks]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            try:
                name, n = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.as_instanceof_cause()
                if isinstance(cause, BadInputError):
                    raise BadInputError(str(cause.args[0]) if cause.args else str(cause)) from None
                raise
            bar.update(n)
            yield name, n


def _run_pool(tasks, workers: int, make_rows, bar):
    """Write shards on ``workers`` processes: this one and ``workers - 1`` in a pool.

    This process has already paid for its imports and warm-ups, so it takes
    shards itself instead of waiting while the pool's processes start (on a
    2-core machine, ``--workers 2`` is this process and one more). Yields
    ``(shard name, rows)`` as shards finish; progress from every process goes
    through one queue, drained by one thread into the bar.
    """
    global _progress_queue
    n_pool = min(workers - 1, len(tasks) - 1)
    ctx = _pool_context(make_rows)
    queue = ctx.Queue()
    stop_event = threading.Event()
    drain = threading.Thread(target=_drain, args=(queue, bar, stop_event), daemon=True)
    drain.start()
    previous = _progress_queue
    _progress_queue = queue
    todo = list(tasks)
    try:
        with ProcessPoolExecutor(
            max_workers=n_pool, mp_context=ctx, initializer=_init_worker, initargs=(queue,)
        ) as pool:
            # The first submit blocks while the fork server imports the job's modules
            # (about half a second): make it on a thread while this process starts on
            # its own shards.
            first = [todo.pop(0) for _ in range(n_pool)]
            started, errors = [], []

            def start():
                try:
                    for task in first:
                        started.append(pool.submit(_write_shard, task))
                except BaseException as exc:  # re-raised below, in this thread
                    errors.append(exc)

            starter = threading.Thread(target=start, daemon=True)
            starter.start()
            pending = set()
            while todo or pending or starter.is_alive() or started:
                if not starter.is_alive():
                    if errors:
                        raise errors[0]
                    pending.update(started)
                    started.clear()
                    while todo and len(pending) < n_pool:
                        pending.add(pool.submit(_write_shard, todo.pop(0)))
                if todo:
                    with _one_thread():
                        result = _write_shard(todo.pop(0))
                    yield result
                    done = {f for f in pending if f.done()}
                elif pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                else:
                    starter.join()
                    continue
                for fut in done:
                    pending.discard(fut)
                    yield fut.result()
    finally:
        _progress_queue = previous
        stop_event.set()
        drain.join(timeout=5)


@contextlib.contextmanager
def _one_thread():
    """Run a shard here at one thread per library, as the pool's processes do."""
    torch = sys.modules.get("torch")
    cv2 = sys.modules.get("cv2")
    before = (torch.get_num_threads() if torch else None, cv2.getNumThreads() if cv2 else None)
    try:
        if torch:
            torch.set_num_threads(1)
        if cv2:
            cv2.setNumThreads(1)
        yield
    finally:
        if torch:
            torch.set_num_threads(before[0])
        if cv2:
            cv2.setNumThreads(before[1])


def _pool_context(make_rows):
    """A process start method that pays for heavy imports (torch, numba) once.

    Workers are forked from a fork server that has already imported the module of
    ``make_rows`` (so every worker starts with torch and the jitted kernels
    loaded); the server itself is a fresh process with no threads, which keeps
    forking safe. Where fork servers do not exist, plain spawn.
    """
    if "forkserver" not in mp.get_all_start_methods():  # pragma: no cover - Windows
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    func = make_rows
    while isinstance(func, functools.partial):
        func = func.func
    module = getattr(func, "__module__", None)
    preload = ["blursynth.io.dataset"]
    if module and module.startswith("blursynth."):
        preload.append(module)
    ctx.set_forkserver_preload(preload)
    return ctx


class _ProgressBar:
    """The writer's bar: counts rows (plain ints), or only report_progress units when the caller has its own."""

    def __init__(self, bar, own_units: bool):
        self.bar = bar
        self.own_units = own_units

    def update(self, item):
        if isinstance(item, tuple):  # ("units", n) from report_progress
            if self.own_units:
                self.bar.update(item[1])
        elif not self.own_units:
            self.bar.update(item)

    def close(self):
        self.bar.close()


class _LocalQueue:
    def __init__(self, bar):
        self.bar = bar

    def put(self, n):
        self.bar.update(n)


def _drain(queue, bar, stop_event):
    import queue as queue_mod

    while not stop_event.is_set():
        try:
            n = queue.get(timeout=0.1)
        except queue_mod.Empty:
            continue
        except (EOFError, OSError):  # pragma: no cover - queue closed
            return
        bar.update(n)
    while True:
        try:
            bar.update(queue.get_nowait())
        except Exception:
            return


# ---------------------------------------------------------------------------------------------
# reading


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
    manifest = _read_json(path / MANIFEST, MANIFEST)
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

    def _file(self, s: int) -> pq.ParquetFile:
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
        f = self._file(s)
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
            for batch in self._file(s).iter_batches(batch_size=batch_size, columns=columns):
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
    from .images import decode_image

    out = dict(row)
    out["blurred"] = decode_image(row["blurred"]["bytes"], what=f"{what} blurred")
    out["sharp"] = decode_image(row["sharp"]["bytes"], what=f"{what} sharp")
    out["psf"] = struct_array(row.get("psf"))
    out["params"] = json.loads(row["params"]) if row.get("params") else {}
    return out


# ---------------------------------------------------------------------------------------------
# verification


def verify_dataset(path, *, decode: bool = True, progress: bool = False) -> dict:
    """Prove a dataset on disk is what its manifest says.

    Re-hashes every shard, checks row counts, and (``decode=True``) decodes
    every image of a pair dataset / checks every PSF of a kernel bank. A
    kernel bank's settings must also still hash to its fingerprint and list
    the exposures it was made with.

    Returns
    -------
    report : dict
        ``{"shards": n, "rows": n, "kind": ...}``.

    Raises
    ------
    DatasetError
        Naming the first bad shard (and row, when a row is at fault).
    """
    path = Path(path)
    manifest = load_manifest(path)
    if manifest["kind"] == "kernels":
        # A bank's fingerprint is a hash of its settings: an edited manifest is caught here, as
        # when the bank is opened for blurring.
        from ..kernelbank import check_bank_manifest

        exposures = manifest.get("exposures")
        if not isinstance(exposures, list) or not all(
                isinstance(f, (int, float)) and not isinstance(f, bool) for f in exposures):
            raise DatasetError(f"{path}/manifest.json: 'exposures' is {exposures!r}, not a list of numbers; "
                               "restore the file or rebuild the bank.")
        check_bank_manifest(path, manifest, [float(f) for f in exposures])
    listed = {s["file"] for s in manifest["shards"]}
    on_disk = {f"{DATA_DIR}/{p.name}" for p in (path / DATA_DIR).glob("*.parquet")}
    extra = sorted(on_disk - listed)
    if extra:
        raise DatasetError(f"{path / extra[0]}: shard not listed in manifest.json; the manifest does not match its shards.")
    from tqdm.auto import tqdm

    total = 0
    bar = tqdm(total=manifest["num_rows"], unit="row", desc="verifying", disable=not progress)
    try:
        for shard in manifest["shards"]:
            file = path / shard["file"]
            if not file.exists():
                raise DatasetError(f"{file}: shard listed in manifest.json is missing.")
            digest = _sha256(file)
            if digest != shard["sha256"]:
                raise DatasetError(
                    f"{file}: sha256 {digest[:12]}... does not match manifest {shard['sha256'][:12]}...; "
                    "the shard is corrupt or was changed. Rebuild it (delete it and rerun the command)."
                )
            try:
                pf = pq.ParquetFile(file)
                rows = pf.metadata.num_rows
            except Exception as exc:
                raise DatasetError(f"{file}: unreadable Parquet ({exc}).") from None
            if rows != shard["rows"]:
                raise DatasetError(f"{file}: holds {rows} rows; manifest.json says {shard['rows']}.")
            if decode:
                row_no = 0
                try:
                    for batch in pf.iter_batches(batch_size=32):
                        for row in batch.to_pylist():
                            _check_row(manifest["kind"], row)
                            row_no += 1
                            bar.update(1)
                except DatasetError as exc:
                    raise DatasetError(f"{file} row {row_no}: {exc}") from None
                except Exception as exc:
                    raise DatasetError(f"{file} row {row_no}: unreadable ({exc}).") from None
            total += rows
    finally:
        bar.close()
    if total != manifest["num_rows"]:
        raise DatasetError(f"{path}: shards hold {total} rows; manifest.json says {manifest['num_rows']}.")
    return {"kind": manifest["kind"], "shards": len(manifest["shards"]), "rows": total}


def _check_row(kind: str, row: dict) -> None:
    if kind == "pairs":
        from .images import decode_image

        try:
            b = decode_image(row["blurred"]["bytes"], what="blurred")
            s = decode_image(row["sharp"]["bytes"], what="sharp")
        except BadInputError as exc:
            raise DatasetError(str(exc)) from None
        if b.shape != s.shape:
            raise DatasetError(f"blurred {b.shape} and sharp {s.shape} differ in shape.")
        psf = struct_array(row.get("psf"))
        if psf is not None:
            _check_psf(psf)
        json.loads(row["params"])
    elif kind == "kernels":
        for value in row["psfs"]:
            _check_psf(struct_array(value))


def _check_psf(psf: np.ndarray) -> None:
    if psf.ndim != 2 or psf.shape[0] != psf.shape[1] or psf.shape[0] % 2 == 0:
        raise DatasetError(f"PSF has shape {psf.shape}; expected an odd square.")
    if not np.all(np.isfinite(psf)) or psf.min() < 0 or abs(float(psf.sum(dtype=np.float64)) - 1.0) > 1e-4:
        raise DatasetError("PSF is negative, not finite or does not sum to 1.")


def dataset_info(path) -> dict:
    """Summary of a dataset: manifest facts, bytes on disk, rows per source, image sizes seen."""
    import collections
    import struct

    path = Path(path)
    manifest = load_manifest(path)
    table = ShardedTable(path)
    info = {
        "path": str(path),
        "kind": manifest["kind"],
        "rows": manifest["num_rows"],
        "shards": len(manifest["shards"]),
        "bytes": sum((path / s["file"]).stat().st_size for s in manifest["shards"] if (path / s["file"]).exists()),
        "fingerprint": manifest["fingerprint"],
        "command": manifest.get("command", {}),
    }
    if manifest["kind"] == "pairs":
        sources = collections.Counter()
        sizes = collections.Counter()
        with_psf = 0
        for s in range(len(table.shards)):
            f = table._file(s)
            for batch in f.iter_batches(columns=["source", "psf"], batch_size=4096):
                sources.update(batch.column(0).to_pylist())
                with_psf += len(batch.column(1)) - batch.column(1).null_count
            # Image sizes from the first rows of each shard only: reading every PNG would
            # read the whole dataset.
            if f.metadata.num_row_groups:
                first = f.read_row_group(0, columns=["blurred"]).column(0).combine_chunks()
                for data in first.field("bytes").to_pylist()[:4]:
                    if data[:8] == b"\x89PNG\r\n\x1a\n":
                        w, h = struct.unpack(">II", data[16:24])
                        sizes[f"{w}x{h}"] += 1
        info["sources"] = dict(sources)
        info["with_psf"] = with_psf
        info["image_sizes_sampled"] = dict(sizes.most_common(5))
    else:
        info["exposures"] = manifest.get("exposures")
    return info
