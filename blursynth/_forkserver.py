"""Imported by the fork server of a command's pool, first and only there
(``dataset.executors._pool_context``): the server ignores SIGTERM.

A job manager's SIGTERM reaches every process of the command's group. A fork server that died of
it would make its command's pool look broken (each pool process's exit is reported through the
server), and the pool would then terminate its processes before they had shut down: their
resources, Numba's process lock among them, left to the resource tracker, which warns of leaked
semaphores. The server needs no signal to end: it exits as soon as the command's process has
ended, however that ended. Its children set their own handlers as they start
(``executors._init_worker``).
"""

import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)
