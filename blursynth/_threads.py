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

    Examples
    --------
    In a process of its own, as a pool's worker is:

    >>> import subprocess, sys
    >>> code = ("from blursynth._threads import one_thread_process, single; "
    ...         "one_thread_process(); print(single())")
    >>> subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split()
    ['True']
    """
    global _depth
    _depth += 1


#: Where a container's CPU quota is read: cgroup v2's ``cpu.max`` ("QUOTA PERIOD" or "max
#: PERIOD"), else cgroup v1's ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us`` (quota -1: none).
CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"
CGROUP_V1_CPU = "/sys/fs/cgroup/cpu"


def cpu_quota() -> int | None:
    """The cores a container's CPU quota allows (``docker --cpus``, a Kubernetes CPU limit),
    rounded up and at least 1, or None where no quota is set or none can be read.

    Examples
    --------
    >>> q = cpu_quota()
    >>> q is None or q >= 1
    True
    """
    try:
        with open(CGROUP_CPU_MAX) as f:
            quota, period = f.read().split()[:2]
        if quota == "max":
            return None
    except (OSError, ValueError):
        try:
            with open(os.path.join(CGROUP_V1_CPU, "cpu.cfs_quota_us")) as f:
                quota = f.read().strip()
            with open(os.path.join(CGROUP_V1_CPU, "cpu.cfs_period_us")) as f:
                period = f.read().strip()
        except OSError:
            return None
    try:
        quota, period = int(quota), int(period)
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, -(-quota // period))


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a job scheduler or ``taskset``
    may narrow, capped by a container's CPU quota, :func:`cpu_quota`), else the machine's count:
    the default ``--workers`` of the pair writers.

    Examples
    --------
    >>> available_cores() >= 1
    True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        cores = os.cpu_count() or 1
    quota = cpu_quota()
    return cores if quota is None else min(cores, quota)
