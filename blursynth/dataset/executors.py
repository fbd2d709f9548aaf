"""Where shards are written (this process, a local process pool, or Ray tasks) and how their progress reaches the bar.

:func:`run_shards` takes the writer's shard function and its tasks and yields
``(shard name, rows, skipped)`` as shards finish, whichever executor runs them; the bytes
of a shard do not depend on which.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass

from .._threads import one_thread
from ..errors import BadInputError

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Executor:
    """Where :func:`~blursynth.dataset.writer.write_dataset` runs its shards.

    Attributes
    ----------
    name : {'local', 'ray'}
        'local': this process and a local process pool (``workers``). 'ray': each
        shard is one Ray task (retried by Ray if its worker dies; a shard is only
        ever renamed into place complete, so a retry is safe).
    address : str or None
        Ray cluster address; None starts a local Ray instance.
    gpus_per_task : float
        GPUs Ray reserves for each shard task.

    Examples
    --------
    >>> Executor("ray", "auto").name
    'ray'
    """

    name: str = "local"
    address: str | None = None
    gpus_per_task: float = 0.0

    def __post_init__(self):
        if self.name not in EXECUTORS:
            raise BadInputError(f"--executor must be one of {', '.join(EXECUTORS)}; got {self.name!r}.")


LOCAL = Executor()

# The queue of the write running in this process (a pool worker's is set by its initializer):
# rows written go in as ints, report_progress units as ("units", n).
_progress_queue = None


def report_rows(n: int) -> None:
    """From the shard writer: ``n`` rows written (for the bar)."""
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


class ProgressBar:
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


def run_shards(write_shard, tasks: list, *, workers: int, executor: Executor, make_rows, bar):
    """Run ``write_shard(task)`` for every task; yield its ``(shard name, rows, skipped)`` as each finishes.

    Parameters
    ----------
    write_shard : callable ``task -> (name, rows, skipped)``
        A module-level function (pickled by reference to pool processes and Ray).
    tasks : list
    workers : int
        Local processes (this one included); ignored on Ray.
    executor : Executor
    make_rows : callable
        The tasks' row maker; the pool's processes import its module before forking.
    bar : ProgressBar
    """
    if not tasks:
        return
    if executor.name == "ray":
        yield from _run_on_ray(write_shard, tasks, executor, bar)
    elif workers <= 1 or len(tasks) <= 1:
        yield from _run_here(write_shard, tasks, bar)
    else:
        yield from _run_pool(write_shard, tasks, workers, make_rows, bar)


class _LocalQueue:
    def __init__(self, bar):
        self.bar = bar

    def put(self, n):
        self.bar.update(n)


def _run_here(write_shard, tasks, bar):
    global _progress_queue
    previous = _progress_queue
    _progress_queue = _LocalQueue(bar)
    try:
        for task in tasks:
            yield write_shard(task)
    finally:
        _progress_queue = previous


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


def _ray_task(write_shard, task):
    """Ray task body: one shard, progress reported when it is done."""
    _init_worker(None)
    return write_shard(task)


def _run_on_ray(write_shard, tasks, executor: Executor, bar):
    """Each shard as a Ray task; yields (shard name, rows, skipped) as they finish."""
    try:
        import ray
    except ImportError:
        raise BadInputError(
            "--executor ray needs Ray, which is not installed; install it with "
            "'pip install blursynth[ray]' (or 'pip install \"ray[default]\"')."
        ) from None
    address = executor.address
    if not ray.is_initialized():
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        except Exception as exc:
            raise BadInputError(f"--address {address}: cannot connect to a Ray cluster ({exc}).") from None
    remote = ray.remote(max_retries=3, retry_exceptions=False, num_cpus=1,
                        num_gpus=executor.gpus_per_task)(_ray_task)
    pending = [remote.remote(write_shard, t) for t in tasks]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            try:
                name, n, skipped = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.as_instanceof_cause()
                if isinstance(cause, BadInputError):
                    raise BadInputError(str(cause.args[0]) if cause.args else str(cause)) from None
                raise
            bar.update(n)
            yield name, n, skipped


def _run_pool(write_shard, tasks, workers: int, make_rows, bar):
    """Write shards on ``workers`` processes: this one and ``workers - 1`` in a pool.

    This process has already paid for its imports and warm-ups, so it takes
    shards itself instead of waiting while the pool's processes start (on a
    2-core machine, ``--workers 2`` is this process and one more). Yields
    ``(shard name, rows, skipped)`` as shards finish; progress from every process goes
    through one queue, drained by one thread into the bar.
    """
    global _progress_queue
    n_pool = min(workers - 1, len(tasks) - 1)
    ctx = _pool_context(write_shard, make_rows)
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
                        started.append(pool.submit(write_shard, task))
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
                        pending.add(pool.submit(write_shard, todo.pop(0)))
                if todo:
                    with one_thread():  # a shard run here runs as the pool's processes run it
                        result = write_shard(todo.pop(0))
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


def _pool_context(write_shard, make_rows):
    """A process start method that pays for heavy imports (torch, numba) once.

    Workers are forked from a fork server that has already imported the modules
    of ``write_shard`` and ``make_rows`` (so every worker starts with torch and the
    jitted kernels loaded); the server itself is a fresh process with no threads,
    which keeps forking safe. Where fork servers do not exist, plain spawn.
    """
    if "forkserver" not in mp.get_all_start_methods():  # pragma: no cover - Windows
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    func = make_rows
    while isinstance(func, functools.partial):
        func = func.func
    module = getattr(func, "__module__", None)
    preload = [write_shard.__module__]
    if module and module.startswith("blursynth."):
        preload.append(module)
    ctx.set_forkserver_preload(preload)
    return ctx


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
