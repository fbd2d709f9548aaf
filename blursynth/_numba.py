"""Numba settings in one place, and a fallback when Numba is disabled for coverage runs."""

from __future__ import annotations

import os

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
