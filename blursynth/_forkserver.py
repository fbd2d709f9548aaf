"""Preloaded first by the fork server of a command's pool (``dataset.executors._pool_context``):
there, the server ignores SIGINT and SIGTERM. Imported anywhere else (a doctest run collecting
every module), it does nothing.

Ctrl-C and a job manager's SIGTERM reach every process of the command's group. The server ignores
SIGINT of itself, but only once it has imported its other modules (torch: seconds), so a Ctrl-C
then printed its traceback; the command starts it with both signals blocked
(``executors._start_fork_server``), and here they are ignored, then unblocked (one that came
meanwhile is dropped). A server that died of SIGTERM would make its command's pool look broken
(each pool process's exit is reported through the server), and the pool would then terminate its
processes before they had shut down: their resources, Numba's process lock among them, left to
the resource tracker, which warns of leaked semaphores. The server needs no signal to end: it
exits as soon as the command's process has ended, however that ended. The processes it forks
start with both signals ignored, and a pool's set their own handlers at once
(``executors._init_worker``).
"""

import signal
import sys


def _in_fork_server() -> bool:
    """Whether this import runs in multiprocessing's fork server, preloading its modules."""
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == "main" and frame.f_globals.get("__name__") == "multiprocessing.forkserver":
            return True
        frame = frame.f_back
    return False


if _in_fork_server():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
