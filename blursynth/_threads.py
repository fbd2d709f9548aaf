"""One thread per library while a result must not depend on the thread count.

The dataset writer renders in this process this way, as its pool processes run (one core each,
so ``--workers N`` is N cores), and the learned-blur pairs run CPU inference this way (also when
a pair is rebuilt outside the writer), so both dataset/ and pairs/ use it; neither imports the
other's internals for it.
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def one_thread(device_type: str = "cpu"):
    """Run the body at one intra-op thread in torch and OpenCV (those already imported), and the
    Numba kernels that ask :func:`single`.

    Parameters
    ----------
    device_type : str
        ``"cpu"``; any other device type (a GPU) leaves the thread counts alone.

    Examples
    --------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with one_thread():
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if device_type != "cpu":
        yield
        return
    global _depth
    torch = sys.modules.get("torch")
    cv2 = sys.modules.get("cv2")
    before = (torch.get_num_threads() if torch else None, cv2.getNumThreads() if cv2 else None)
    try:
        if torch:
            torch.set_num_threads(1)
        if cv2:
            cv2.setNumThreads(1)
        _depth += 1
        yield
    finally:
        _depth -= 1
        if torch:
            torch.set_num_threads(before[0])
        if cv2:
            cv2.setNumThreads(before[1])


# Numba's count is not set here: setting it starts Numba's OpenMP pool, which a process that
# forks later (a loader's workers, the writer's pool) must not have started. Every parallel
# kernel asks single() instead, through blursynth._numba.kernel_threads, when it runs.
_depth = 0


def single() -> bool:
    """Whether a :func:`one_thread` block is running (for Numba kernels that size their threads).

    Examples
    --------
    >>> with one_thread():
    ...     single()
    True
    >>> single()
    False
    """
    return _depth > 0


def one_thread_process() -> None:
    """Make :func:`single` true for the rest of this process: a writer's pool process, which only
    renders, one core each (``--workers N`` is N processes). Never call it in a process that
    goes on to do anything else: nothing undoes it.
    """
    global _depth
    _depth += 1


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a job scheduler or ``taskset``
    may narrow), else the machine's count: the default ``--workers`` of the pair writers.

    Examples
    --------
    >>> available_cores() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1
