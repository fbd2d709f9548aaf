"""Whether another process has ended, and ending this one with it.

Both go through a pidfd (``os.pidfd_open``, Linux 5.3+): it names the process itself, not a
number a later process may reuse, it turns readable when the process exits (a zombie not yet
reaped has exited), and it resolves the pid in this process's own pid namespace, which
``/proc`` need not show (a container sharing the host's ``/proc``). Where there is no pidfd
(other systems, an old kernel, a sandbox refusing the call), ``os.kill(pid, 0)`` says whether
the pid exists, which takes a zombie for a running process.
"""

from __future__ import annotations

import os
import select
import threading
import time

#: Seconds between looks at a process without a pidfd (the fallback of :func:`end_with`).
POLL = 0.5


def _pidfd(pid: int) -> int | None:
    """A pidfd of ``pid``; None where pidfds are not available. Raises ProcessLookupError for
    a pid no process has."""
    open_ = getattr(os, "pidfd_open", None)
    if open_ is None:
        return None
    try:
        return open_(pid)
    except ProcessLookupError:
        raise
    except OSError:  # not supported here, or refused
        return None


def has_ended(pid: int) -> bool | None:
    """Whether process ``pid`` (of this pid namespace) has ended; None where that cannot be
    told (a pid of someone else's process, without a pidfd)."""
    try:
        fd = _pidfd(pid)
    except ProcessLookupError:
        return True
    if fd is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return None
        return False
    try:
        return bool(select.select([fd], [], [], 0)[0])
    finally:
        os.close(fd)


def end_with(pid: int) -> None:
    """End this process (``os._exit(1)``) as soon as process ``pid`` has ended, from a daemon
    thread: at once with a pidfd, else within :data:`POLL` seconds of ``pid`` or this process's
    parent ending. Meant for a helper process that must not outlive the process it works for."""
    try:
        fd = _pidfd(pid)
    except ProcessLookupError:
        os._exit(1)
    parent = os.getppid()

    def watch():
        if fd is not None:
            select.select([fd], [], [])
        else:
            while os.getppid() == parent and has_ended(pid) is not True:
                time.sleep(POLL)
        os._exit(1)

    threading.Thread(target=watch, name=f"blursynth-end-with-{pid}", daemon=True).start()
