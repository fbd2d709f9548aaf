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
