"""Error classes: what went wrong, in words a user can act on."""

from __future__ import annotations

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


class Interrupted(BlursynthError):
    """Ctrl-C stopped the work; the message says what was kept and how to continue (exit 130)."""

    exit_code = 130
