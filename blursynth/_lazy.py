"""A package's public names loaded on first use (its module ``__getattr__`` and ``__dir__``),
so importing the package, or one light module of it, imports nothing heavy."""

from __future__ import annotations

import importlib


def lazy_names(package: str, public: dict, namespace: dict) -> tuple:
    """``(__getattr__, __dir__)`` for ``package``: name -> the submodule defining it in
    ``public``; ``namespace`` is the package's ``globals()``, listed by ``dir()`` beside them.

    Examples
    --------
    >>> get, names = lazy_names("json", {"JSONDecoder": "decoder"}, {})
    >>> get("JSONDecoder").__name__, names()
    ('JSONDecoder', ['JSONDecoder'])
    """

    def __getattr__(name):
        module = public.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{module}", package), name)

    def __dir__():
        return sorted(set(namespace) | set(public))

    return __getattr__, __dir__
