"""The stop a signal asked for, kept until it has been raised where it cannot be lost.

A Python signal handler raises in whatever Python code runs when the signal arrives. When that
code is a callback that native code called through ctypes or cffi (llvmlite's object cache,
notified while Numba compiles or loads a function), the exception is printed as "ignored" and
the work goes on as if no signal had come: a Ctrl-C or a job manager's SIGTERM would be lost.
So the handlers record the signal before they raise, and the loops that run long (the writer's
rows, the progress of a chunk) call :func:`stop_if_asked`, which raises it again there.
"""

from __future__ import annotations

import signal
import sys

_asked = None  # the signal number this process was asked to stop on, or None


def stopping_exception(signum: int) -> KeyboardInterrupt:
    """What a stop on ``signum`` raises: :class:`~blursynth.errors.Terminated` for SIGTERM, a
    plain ``KeyboardInterrupt`` for SIGINT, so that either stops the work as Ctrl-C does."""
    from .errors import Terminated

    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def ask(signum: int, *, now: bool = True) -> None:
    """Record a stop on ``signum``; raise it at once too unless ``now`` is False."""
    global _asked
    _asked = signum
    if now:
        raise stopping_exception(signum)


def stop_if_asked() -> None:
    """Raise the stop a signal asked for, if one has come (its first raise may have been lost).

    Examples
    --------
    >>> forget()
    >>> stop_if_asked()  # no signal came: nothing happens
    """
    if _asked is not None:
        raise stopping_exception(_asked)


def asked() -> KeyboardInterrupt | None:
    """The exception of the stop a signal asked for, or None when none has come."""
    return None if _asked is None else stopping_exception(_asked)


def forget() -> None:
    """Forget a recorded stop: a new command starts (the CLI's ``main`` run twice in a process)."""
    global _asked
    _asked = None


def unraisable_hook(previous):
    """A ``sys.unraisablehook`` that is quiet once a stop has been asked for, and passes what comes
    before to ``previous``.

    After a stop, what cannot be raised is the stop's own doing: its raise inside a native
    callback (:func:`stop_if_asked` raises it again), a torch DataLoader's finaliser reporting its
    workers ended by the same signal, the finaliser of an llvmlite object whose construction the
    stop cut short. The command says it stopped, in one line."""

    def hook(unraisable):
        if _asked is not None:
            return
        previous(unraisable)

    return hook


def install_unraisable_hook() -> object:
    """Put :func:`unraisable_hook` in front of the current hook; return the current one."""
    previous = sys.unraisablehook
    sys.unraisablehook = unraisable_hook(previous)
    return previous
