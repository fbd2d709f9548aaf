"""Where shards are written (this process, a local process pool, or Ray tasks) and how their progress reaches the bar.

:func:`run_shards` takes the writer's shard function and its tasks and yields
``(shard name, rows, skipped, sha256)`` as shards finish, whichever executor runs them; the bytes
of a shard do not depend on which.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import signal
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass

from .. import _stopping
from .._processes import end_with
from .._threads import one_thread, one_thread_process
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
    """From the shard writer: ``n`` rows written (for the bar). Where a signal's stop was lost
    (:mod:`blursynth._stopping`), raises it."""
    _stopping.stop_if_asked()
    if _progress_queue is not None and n:
        _progress_queue.put(n)


def report_progress(n: int) -> None:
    """From inside ``make_rows``: advance the bar of ``write_dataset(..., progress_total=...)`` by ``n``.

    Works in pool processes too (through the writer's progress queue); does
    nothing outside a write. Where a signal's stop was lost (:mod:`blursynth._stopping`), raises it.

    Examples
    --------
    >>> report_progress(3)  # no write running: nothing happens
    """
    _stopping.stop_if_asked()
    if _progress_queue is not None and n:
        _progress_queue.put(("units", int(n)))


# Callables run before this process starts the processes of a pool (forked or from a fork server):
# a way that uses the spare cores while the command starts hands them back (before_pool).
_before_pool = []


def before_pool(fn) -> None:
    """Have ``fn()`` run each time just before this process starts a writer pool's processes,
    whatever their start method (a fork, a fork server, Ray excepted): something that kept the
    other cores busy until then stops there.
    ``blursynth.sources.decode_ahead`` registers its decoder's halt."""
    if fn not in _before_pool:
        _before_pool.append(fn)


def _pool_starting() -> None:
    from .._startup import startup_over

    startup_over(collect=False)  # before the fork: the workers share start-up's pages, frozen
    for fn in list(_before_pool):
        fn()


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


def run_shards(write_shard, tasks: list, *, workers: int, executor: Executor, make_rows, bar,
               chunk: int | None = None, tail_chunk: int | None = None):
    """Run ``write_shard(task)`` for every task; yield its ``(shard name, rows, skipped, sha256)`` as each finishes.

    Parameters
    ----------
    write_shard : callable ``task -> (name, rows, skipped, sha256)``
        A module-level function (pickled by reference to pool processes and Ray).
    tasks : list
        The writer's shard tasks ``(path, schema, start, stop, make_rows, ...)``.
    workers : int
        Local processes (this one included); ignored on Ray.
    executor : Executor
    make_rows : callable
        The tasks' row maker; the pool's processes import its module before forking.
    bar : ProgressBar
    chunk : int or None
        With more than one local worker: None runs whole shards on the pool's processes (each
        writes its own shard file); an int renders rows in chunks of ``chunk`` items on
        long-lived processes (:class:`RowFeed`) and writes every shard here, in order, so all
        workers are busy whatever the number of shards. Only for row makers whose chunks are
        independent and cheap to start (not a video decoded from its start).
    tail_chunk : int or None
        With ``chunk``: the size the last chunks are cut to (:class:`RowFeed`); None, uncut.
    """
    if not tasks:
        return
    if executor.name == "ray":
        yield from _run_on_ray(write_shard, tasks, executor, bar)
    elif workers <= 1 or (len(tasks) <= 1 and chunk is None):
        yield from _run_here(write_shard, tasks, bar)
    elif chunk is not None:
        yield from _run_fed(write_shard, tasks, workers, make_rows, bar, int(chunk), tail_chunk)
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
            # One core, as each of N workers: --workers 1 is one core, not Numba's threads on all.
            with one_thread():
                result = write_shard(task)
            yield result
    finally:
        _progress_queue = previous


def _init_worker(queue, command_pid: int | None = None):
    """Set up a worker process: progress to ``queue``, one thread; a pool's process
    (``command_pid``: the command's process, which made the pool) also ends with the command."""
    global _progress_queue
    _progress_queue = queue
    if command_pid is not None:
        # Ctrl-C in a terminal, and SIGTERM from a job manager (systemd, Slurm, `kill -- -PGID`),
        # reach every process of the command's group. The command stops on either and shuts its
        # pool down, which waits for the tasks running; a pool process that ended on the signal
        # while sending a result would leave that wait hanging on the half-sent message. So a
        # pool process stops its task (raising what the command raises on that signal, sent back
        # as the task's result) and only its task (_pool_task), and is ended by the pool's
        # shutdown, or by end_with should the command end first. A Python-level handler, not SIG_IGN, so that a program a pool
        # process runs gets the signals' usual meaning.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _stop_the_task)
        _stopping.install_unraisable_hook()  # a raise a native callback lost: raised again, quietly
        end_with(command_pid)
    # Each worker process uses one thread: parallelism comes from processes (Numba's parallel
    # kernels size their threads by blursynth._numba.kernel_threads, which one_thread_process
    # sets to one for the process's life). The variables
    # are read when torch / OpenCV / BLAS start their thread pools, which is later, on
    # first import inside the work function. NUMBA_NUM_THREADS is not among them: Numba re-reads
    # it whenever it compiles, and a value other than the one its pool started with is an error.
    one_thread_process()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENCV_FOR_THREADS_NUM"):
        os.environ[var] = "1"
    if "torch" in sys.modules:  # preloaded by the fork server, or the parent pickled torch objects
        sys.modules["torch"].set_num_threads(1)
    if "numba" in sys.modules:  # preloaded: its thread count was read before the variable was set
        sys.modules["numba"].set_num_threads(1)
    if "cv2" in sys.modules:  # the same: OpenCV sized its pool when it was imported
        sys.modules["cv2"].setNumThreads(1)


def _ray_task(write_shard, task):
    """Ray task body: one shard, progress reported when it is done."""
    _init_worker(None)
    return write_shard(task)


def _run_on_ray(write_shard, tasks, executor: Executor, bar):
    """Each shard as a Ray task; yields (shard name, rows, skipped, sha256) as they finish."""
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
                name, n, skipped, digest = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.as_instanceof_cause()
                if isinstance(cause, BadInputError):
                    raise BadInputError(str(cause.args[0]) if cause.args else str(cause)) from None
                raise
            bar.update(n)
            yield name, n, skipped, digest


def _run_pool(write_shard, tasks, workers: int, make_rows, bar):
    """Write shards on ``workers`` processes: this one and ``workers - 1`` in a pool.

    This process has already paid for its imports and warm-ups, so it takes
    shards itself instead of waiting while the pool's processes start (on a
    2-core machine, ``--workers 2`` is this process and one more). Yields
    ``(shard name, rows, skipped, sha256)`` as shards finish; progress from every process goes
    through one queue, drained by one thread into the bar.
    """
    global _progress_queue
    n_pool = min(workers - 1, len(tasks) - 1)
    _pool_starting()
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
            max_workers=n_pool, mp_context=ctx, initializer=_init_worker, initargs=(queue, os.getpid())
        ) as pool:
            # The first submit blocks while the fork server imports the job's modules
            # (about half a second): make it on a thread while this process starts on
            # its own shards.
            first = [todo.pop(0) for _ in range(n_pool)]
            started, errors = [], []

            def start():
                try:
                    for task in first:
                        started.append(pool.submit(_pool_task, write_shard, task))
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
                        pending.add(pool.submit(_pool_task, write_shard, todo.pop(0)))
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
        _stop_drain(queue, stop_event, drain)


def chunk_spans(spans, chunk: int) -> list[tuple[int, int]]:
    """Split item ranges into chunks that end at multiples of ``chunk`` (or at a range's end).

    Chunk boundaries are absolute multiples, so a row maker whose items come in groups (a
    photo's ``per_image`` pairs) starts a group only once when ``chunk`` is a multiple of it.

    Examples
    --------
    >>> chunk_spans([(0, 5), (5, 9)], 4)
    [(0, 4), (4, 5), (5, 8), (8, 9)]
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1; got {chunk}.")
    out = []
    for start, stop in spans:
        a = start
        while a < stop:
            b = min(stop, (a // chunk + 1) * chunk)
            out.append((a, b))
            a = b
    return out


class RowFeed:
    """Rows of item chunks rendered by this process and ``workers - 1`` long-lived processes, in order.

    The chunks are claimed in order by whoever is free: a submitter thread keeps the pool's
    processes fed (at most two chunks held per process, running or queued; one near the end),
    and this process renders the next unclaimed chunk itself whenever the chunk it must hand out
    next is still being rendered elsewhere. :meth:`rows` gives the rows of a range in item
    order, so the shard files are written here, one after the other, byte-identical to a
    one-process run: every row is a pure function of its index, and the writer alone decides the
    shard and row-group boundaries. The pool's processes start once per feed (forked from this
    process where that is safe, else from a fork server that imported the row maker's modules
    once: :func:`_feed_context`) and receive the row maker once, not with every chunk.

    A chunk runs ahead of the writer by at most ``window`` chunks, which bounds the rows held
    in memory.

    With ``tail_chunk`` (items a chunk may be cut to: a row maker's group, such as a photo's
    pairs), the last chunks, one per process, are cut into chunks of that size, so that the
    processes run out of work together instead of one finishing a whole chunk while the others
    wait (with 32 pairs on two processes, one 4-pair chunk is about a tenth of the run). Chunk
    boundaries never change the rows, only who renders them.
    """

    def __init__(self, make_rows, spans, *, workers: int, chunk: int, tail_chunk: int | None = None,
                 queue=None, ctx=None):
        self.make_rows = make_rows
        self.ctx = ctx
        self.chunks = chunk_spans(spans, chunk)
        if int(workers) > 1 and tail_chunk is not None and tail_chunk < chunk:
            cut = max(0, len(self.chunks) - int(workers))
            self.chunks[cut:] = chunk_spans(self.chunks[cut:], tail_chunk)
        self.n_pool = max(0, min(int(workers) - 1, len(self.chunks) - 1))
        self.window = max(2, 3 * (self.n_pool + 1))
        self.queue = queue
        self.cond = threading.Condition()
        self.next_claim = 0  # the smallest chunk nobody has claimed
        self.next_out = 0  # the chunk rows() hands out next
        self.futures = {}  # chunk -> Future (pool chunks, once submitted)
        self.claimed_by_pool = set()
        self.done_here = {}  # chunk -> rows rendered by this process ahead of their turn
        self.pool = None
        self.stop = False
        self.error = None
        self.submitter = None
        if self.n_pool:
            _pool_starting()
        if self.n_pool and self.ctx is not None and self.ctx.get_start_method() == "fork":
            # Fork the pool now, before this process runs a parallel kernel: the workers start
            # at once with everything this process has imported and set up.
            self._start_pool()
            with self.cond:
                j = self._claim()
                self.claimed_by_pool.add(j)
            self.futures[j] = self.pool.submit(_feed_chunk, *self.chunks[j])
            self.futures[j].add_done_callback(self._notify)
        if self.n_pool:
            self.submitter = threading.Thread(target=self._submit_loop, daemon=True)
            self.submitter.start()

    def _start_pool(self):
        ctx = self.ctx if self.ctx is not None else _pool_context(_feed_chunk, self.make_rows)
        self.pool = ProcessPoolExecutor(max_workers=self.n_pool, mp_context=ctx,
                                        initializer=_init_feed_worker,
                                        initargs=(self.queue, os.getpid(), self.make_rows))

    # -- claiming, shared by the submitter thread and this process --
    def _claim(self):
        """The next unclaimed chunk within the window, or None (call under ``cond``)."""
        if self.next_claim >= len(self.chunks) or self.next_claim >= self.next_out + self.window:
            return None
        j = self.next_claim
        self.next_claim += 1
        return j

    def _submit_loop(self):
        try:
            if self.pool is None:
                self._start_pool()
            while True:
                with self.cond:
                    while not self.stop and (
                        sum(not f.done() for f in self.futures.values()) >= self._ahead() * self.n_pool
                        or self.next_claim >= min(len(self.chunks), self.next_out + self.window)
                    ):
                        if self.next_claim >= len(self.chunks):
                            return
                        self.cond.wait(0.05)
                    if self.stop:
                        return
                    j = self._claim()
                    self.claimed_by_pool.add(j)
                start, stop = self.chunks[j]
                # From a fork server, the first submit starts the pool's processes (the server
                # imports the row maker's modules first): this process renders chunks meanwhile.
                fut = self.pool.submit(_feed_chunk, start, stop)
                fut.add_done_callback(self._notify)
                with self.cond:
                    self.futures[j] = fut
                    self.cond.notify_all()
        except BaseException as exc:  # raised again by rows(), in the writer's thread
            with self.cond:
                self.error = exc
                self.cond.notify_all()

    def _ahead(self) -> int:
        """Chunks each pool process may hold (running and queued; call under ``cond``).

        Two, so a process never waits for its next chunk to be sent; one for the last few
        chunks, so the run does not end with this process idle while a pool process works
        through a chunk it queued long before (the unclaimed rest is rendered here instead).
        """
        return 2 if len(self.chunks) - self.next_claim > 2 * (self.n_pool + 1) else 1

    def _notify(self, _future):
        with self.cond:
            self.cond.notify_all()

    def _render_here(self, j):
        start, stop = self.chunks[j]
        with one_thread():  # a chunk rendered here runs as the pool's processes run it
            return list(self.make_rows(start, stop))

    def _take(self, j):
        """The rows of chunk ``j``, rendering later chunks here while it is rendered elsewhere."""
        while True:
            with self.cond:
                if self.error is not None:
                    raise self.error
                if j in self.done_here:
                    return self.done_here.pop(j)
                fut = self.futures.get(j)
                ready = fut is not None and fut.done()
                mine = None
                if not ready:
                    # j itself when nobody has claimed it (everything before it is handed
                    # out); else a later chunk, or None when the window is full.
                    mine = self._claim()
                    if mine is None and fut is None:  # the submitter claimed j: not yet submitted
                        self.cond.wait(0.05)
                        continue
            if ready:
                return fut.result()
            if mine == j:
                return self._render_here(j)
            if mine is not None:
                self.done_here[mine] = self._render_here(mine)
                continue
            fut.result()  # nothing left to claim: wait for the pool's chunk

    def rows(self, start: int, stop: int):
        """Yield the rows of items ``start..stop-1``: a range the feed was built over, in order."""
        while self.next_out < len(self.chunks) and self.chunks[self.next_out][0] < stop:
            a, b = self.chunks[self.next_out]
            if a < start or b > stop:
                raise ValueError(f"rows({start}, {stop}) does not follow the feed's chunk {a}..{b}.")
            rows = self._take(self.next_out)
            with self.cond:
                self.futures.pop(self.next_out, None)
                self.claimed_by_pool.discard(self.next_out)
                self.next_out += 1
                self.cond.notify_all()
            yield from rows

    def close(self):
        with self.cond:
            self.stop = True
            self.cond.notify_all()
        if self.submitter is not None:
            self.submitter.join()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


_feed_rows = None  # the row maker of a RowFeed pool process (set once, by its initializer)


_task_running = False  # in a pool process: whether _pool_task is running its function


def _stop_the_task(signum, frame):
    """A pool process's handler of SIGINT and SIGTERM (:func:`_init_worker`): stop the task
    running, if one is; a task that has not started yet stops as it starts."""
    _stopping.ask(signum, now=_task_running)


def _pool_task(fn, *args):
    """``fn(*args)`` in a pool process, stoppable by a signal while it runs (not while its result
    is sent back, which follows)."""
    global _task_running
    _stopping.stop_if_asked()
    _task_running = True
    try:
        return fn(*args)
    except Exception:
        # The stop, raised inside native code, can come out as another error (Numba's
        # dispatcher: SystemError, "returned a result with an exception set"), and its cause is
        # lost on the way to the command: the command is told of the stop, not of a failure.
        _stopping.stop_if_asked()
        raise
    finally:
        _task_running = False


def _init_feed_worker(queue, command_pid: int, make_rows):
    global _feed_rows
    _init_worker(queue, command_pid)
    _feed_rows = make_rows


def _feed_chunk(start, stop):
    """Pool process: the rows of items ``start..stop-1`` (dicts, tables or Skipped), sent back whole."""
    def rows():
        out = []
        for row in _feed_rows(start, stop):
            _stopping.stop_if_asked()  # a signal's raise that a native callback lost
            out.append(row)
        return out

    return _pool_task(rows)


def _run_fed(write_shard, tasks, workers: int, make_rows, bar, chunk: int, tail_chunk: int | None = None):
    """Write every shard here, in order, from rows a :class:`RowFeed` renders on all workers."""
    global _progress_queue
    ctx = _feed_context(make_rows)
    queue = ctx.Queue()
    # Before the progress thread starts: a forked pool is forked here.
    feed = RowFeed(make_rows, [(t[2], t[3]) for t in tasks], workers=workers, chunk=chunk,
                   tail_chunk=tail_chunk,
                   queue=queue, ctx=ctx)
    stop_event = threading.Event()
    drain = threading.Thread(target=_drain, args=(queue, bar, stop_event), daemon=True)
    drain.start()
    previous = _progress_queue
    _progress_queue = queue
    try:
        for task in tasks:
            yield write_shard((*task[:4], feed.rows, *task[5:]))
    finally:
        feed.close()
        _progress_queue = previous
        _stop_drain(queue, stop_event, drain)


def _feed_context(make_rows):
    """The start method of a row feed's pool: fork where it is safe, else :func:`_pool_context`'s.

    Forked workers start at once with this process's imports and Numba set up (no fork server
    to start and import first: about a second on a quiet machine, several on a loaded one).
    Forking is safe while no OpenMP thread pool has started in this process, which a forked
    child could not use: none of Numba's parallel kernels has run here yet (a command's first
    write; a long-lived process that has rendered before uses the fork server), and torch, whose
    kernels run on such a pool, is not loaded (a way that needs it uses the fork server).
    """
    if "fork" in mp.get_all_start_methods() and "torch" not in sys.modules:
        numba = sys.modules.get("numba")
        if numba is not None:
            from numba.np.ufunc import parallel

            if getattr(parallel, "_is_initialized", True):  # its thread pool has started here (or unknown)
                return _pool_context(_feed_chunk, make_rows)
            import blursynth._warm  # noqa: F401 - set Numba's target up once, for every worker
        return mp.get_context("fork")
    return _pool_context(_feed_chunk, make_rows)


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
    preload = ["blursynth._forkserver", "blursynth._warm", write_shard.__module__]
    if "torch" in sys.modules:  # the row maker uses it here: its workers will too (seconds to import)
        preload.append("torch")
    if module and module.startswith("blursynth."):
        preload.append(module)
    ctx.set_forkserver_preload(preload)
    _start_fork_server()
    return ctx


def _start_fork_server() -> None:
    """Start the fork server (where none runs) with SIGINT and SIGTERM blocked in this thread,
    which the new process inherits: a Ctrl-C during its first imports, before
    :mod:`blursynth._forkserver` has it ignore both, then waits and is dropped instead of printing
    a traceback. The command's main thread still takes both as they come."""
    from multiprocessing import forkserver, resource_tracker

    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        forkserver.ensure_running()
        return
    # The fork server starts the resource tracker first where none runs, and that start unblocks
    # both signals in the thread when it is done (it blocks them for the tracker's own start).
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


#: Seconds :func:`_drain` waits for a count before it looks at its stop event again.
_DRAIN_POLL = 0.1


def _stop_drain(queue, stop_event, drain):
    """End :func:`_drain` after the last count: a marker put after every count (this process's
    own, and the pool's, whose processes have ended and flushed theirs) ends it at once, in
    order, so none is lost and no poll is waited out. The event is the fallback: a queue that
    cannot take the marker, or a thread still running 5 s later."""
    try:
        queue.put(None)
    except (ValueError, OSError):  # pragma: no cover - queue closed
        stop_event.set()
    drain.join(timeout=5)
    if drain.is_alive():  # pragma: no cover - the marker was lost
        stop_event.set()
        drain.join(timeout=1)


def _drain(queue, bar, stop_event):
    import queue as queue_mod

    while not stop_event.is_set():
        try:
            n = queue.get(timeout=_DRAIN_POLL)
        except queue_mod.Empty:
            continue
        except (EOFError, OSError):  # pragma: no cover - queue closed
            return
        if n is None:
            return
        bar.update(n)
    while True:
        try:
            n = queue.get_nowait()
        except Exception:
            return
        if n is None:
            return
        bar.update(n)
