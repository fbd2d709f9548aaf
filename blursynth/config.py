"""Settings helpers: canonical JSON and the fingerprint that names what made a dataset."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import numpy as np


def _plain(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if hasattr(obj, "__fspath__"):
        return str(obj)
    return obj


def canonical_json(obj) -> str:
    """JSON with sorted keys and no spaces: the same settings give the same text."""
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"))


def fingerprint(obj) -> str:
    """First 16 hex digits of the sha256 of ``canonical_json(obj)``.

    Examples
    --------
    >>> fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    True
    """
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:16]
