"""Numba settings in one place, and a fallback when Numba is disabled for coverage runs."""

from __future__ import annotations

import contextlib
import os
import sys

NJIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}


def njit(*args, **kwargs):
    """``numba.njit`` with the project's options (imported lazily: numba is heavy)."""
    import numba

    options = {**NJIT_OPTIONS, **kwargs}
    if os.environ.get("NUMBA_DISABLE_JIT") == "1":
        options.pop("cache", None)
    if args and callable(args[0]):
        return numba.njit(**options)(args[0])
    return numba.njit(*args, **options)


def fork_safe_threads() -> None:
    """Have Numba's parallel kernels run on its ``workqueue`` layer in this process, unless a
    layer is already running or ``NUMBA_THREADING_LAYER`` names one.

    A process that ran a parallel kernel on the GNU OpenMP layer aborts any child it forks that
    runs one too ("fork() called from a process already using GNU OpenMP"). A training script
    that reads one rendered pair before it starts a ``DataLoader`` with (forked) workers is such
    a process. ``workqueue`` survives the fork, and the kernels' bytes do not depend on how
    their rows are shared among threads, so the layer changes no output.
    """
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return
    import numba
    from numba.np.ufunc import parallel

    if not parallel._is_initialized:
        numba.config.THREADING_LAYER = "workqueue"


@contextlib.contextmanager
def kernel_threads():
    """Run the body's parallel (``prange``) kernels on this thread's budget, then restore Numba's
    count.

    The budget is one thread inside :func:`blursynth._threads.one_thread` (a dataset writer's
    rendering process: ``--workers N`` is N such processes, so N cores), else torch's thread
    count where torch is loaded (the two libraries never oversubscribe the cores), else Numba's
    own. Every call of a parallel kernel goes through it: one kernel left on Numba's default
    would run on every core inside a one-core worker. Numba's count is per thread and sticky,
    hence the restore: a call under ``one_thread`` must not leave the process's later kernels at
    one thread. The kernels' bytes do not depend on the count (each row is summed by one thread).

    Examples
    --------
    >>> import numba
    >>> from blursynth._threads import one_thread
    >>> with one_thread(), kernel_threads():
    ...     numba.get_num_threads()
    1
    """
    import numba

    from ._threads import single

    previous = numba.get_num_threads()
    torch = sys.modules.get("torch")
    budget = 1 if single() else torch.get_num_threads() if torch is not None else previous
    numba.set_num_threads(max(1, min(budget, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)
