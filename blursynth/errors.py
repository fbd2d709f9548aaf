"""Error classes: what went wrong, in words a user can act on."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager


class BlursynthError(Exception):
    """Base class of every error blursynth raises on purpose.

    The CLI prints ``error: <message>`` on one line and exits with
    :attr:`exit_code`. Messages name the input, what was expected, what was
    found and, where there is one, how to fix it.
    """

    exit_code = 1


class BadInputError(BlursynthError, ValueError):
    """The user gave something unusable: a path, a value, a file.

    Exit status 2. Nothing is written when this is raised.
    """

    exit_code = 2


class SettingError(BadInputError):
    """A settings object refused the value of one field, named by :attr:`field`.

    The message is the one the command prints; ``blursynth build`` uses ``field`` to point at
    the recipe line (or ``--set``) that gave the value.
    """

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field

    def __reduce__(self):  # the default would call SettingError(message) and lose the field
        return type(self), (str(self), self.field)


@contextmanager
def checking(field: str):
    """Name ``field`` on a :class:`BadInputError` raised by a check a helper does for it.

    >>> with checking("seed"):
    ...     check_seed(self.seed)  # doctest: +SKIP
    """
    try:
        yield
    except SettingError:
        raise
    except BadInputError as exc:
        raise SettingError(str(exc), field) from None


class RecipeError(BadInputError):
    """A recipe file has an unknown key or an out-of-range value."""


class DatasetError(BadInputError):
    """A dataset on disk is missing, corrupt, or made by another command."""


class RuntimeFailure(BlursynthError):
    """Work failed for a reason that is not the user's input (exit 1)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is (by the CLI's handler), so that it stops as on Ctrl-C:
    its pool shut down, its lock released, what it finished kept."""


class Interrupted(BlursynthError):
    """Ctrl-C stopped the work; the message says what was kept and how to continue (exit 130;
    143 after SIGTERM: :meth:`of`)."""

    exit_code = 130

    @classmethod
    def of(cls, rest: str) -> "Interrupted":
        """The error for the interrupt being handled: ``"interrupted" + rest``, or after SIGTERM
        (:class:`Terminated`) ``"terminated (SIGTERM)" + rest`` with exit status 143."""
        if isinstance(sys.exc_info()[1], Terminated):
            error = cls(f"terminated (SIGTERM){rest}")
            error.exit_code = 143
            return error
        return cls(f"interrupted{rest}")


# Lines C libraries print straight to stderr about a file we then refuse in one line of our own.
_NATIVE_NOISE = re.compile(rb"(libpng (error|warning)|Corrupt JPEG data|Premature end of JPEG file)\b")
_quiet_lock = threading.Lock()
_quiet = {"depth": 0, "saved": None, "capture": None}


@contextmanager
def native_noise_quiet():
    """Keep libpng's and libjpeg's own stderr lines (``libpng error: IDAT: CRC error``) out of the
    output while OpenCV decodes or encodes; the caller reports a failure in one line of its own.

    The C libraries write to file descriptor 2, so it is pointed at a file for the duration and
    what else was written there meanwhile (by other threads too) is copied back afterwards. Nests,
    and is shared between threads: stderr is restored when the last one leaves.
    """
    with _quiet_lock:
        if _quiet["depth"] == 0:
            try:
                sys.stderr.flush()
                if _quiet["capture"] is None:
                    _quiet["capture"] = tempfile.TemporaryFile()
                _quiet["saved"] = os.dup(2)
                os.dup2(_quiet["capture"].fileno(), 2)
            except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to keep clean
                _quiet["saved"] = None
        _quiet["depth"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet["depth"] -= 1
            if _quiet["depth"] == 0 and _quiet["saved"] is not None:
                try:
                    sys.stderr.flush()
                except (OSError, ValueError, AttributeError):
                    pass
                os.dup2(_quiet["saved"], 2)
                os.close(_quiet["saved"])
                _quiet["saved"] = None
                capture = _quiet["capture"]
                capture.seek(0)
                kept = b"".join(line for line in capture.read().splitlines(True) if not _NATIVE_NOISE.match(line))
                capture.seek(0)
                capture.truncate()
                if kept:
                    os.write(2, kept)
