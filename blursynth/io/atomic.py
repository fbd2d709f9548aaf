"""Files written whole or not at all (a temporary name in the same folder, fsync, rename), and read back."""

from __future__ import annotations

import os
from pathlib import Path


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never part."""
    path = Path(path)
    tmp = _tmp(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode())


def atomic_torch_save(obj, path) -> None:
    """``torch.save`` to ``path`` atomically (checkpoints survive a kill mid-write)."""
    import torch

    path = Path(path)
    tmp = _tmp(path)
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_torch_file(path, *, file_name: str, missing: str, unreadable: str):
    """``torch.load`` (weights only, on the CPU) of ``path`` or of ``path/file_name``.

    Parameters
    ----------
    path : str or Path
        A run folder holding ``file_name``, or the file itself.
    file_name : str
    missing, unreadable : str
        One-line messages for a missing file and for one torch cannot read;
        ``{path}`` and ``{file}`` are filled in (``{error}``: the exception's
        type, for ``unreadable``).

    Returns
    -------
    file : Path
    obj : object

    Raises
    ------
    BadInputError
    """
    import torch

    from ..errors import BadInputError

    file = Path(path)
    if file.is_dir():
        file = file / file_name
    if not file.is_file():
        raise BadInputError(missing.format(path=path, file=file))
    try:
        return file, torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not its own
        raise BadInputError(unreadable.format(path=path, file=file, error=type(exc).__name__)) from None
