"""Read the tensors of a ``torch.save`` file without importing torch.

A checkpoint of torch 1.6 and later is a zip archive: ``<name>/data.pkl`` pickles the object
with each tensor's storage named by a key, and ``<name>/data/<key>`` holds that storage's raw
bytes, stored without compression. :func:`read_torch_file` unpickles it with a reader that
knows only the few globals a checkpoint of plain containers and tensors refers to (the rest is
refused, so no code in the file can run), and gives every tensor as a read-only NumPy array
mapped from the file. Importing torch takes most of a second; a learned blur that runs its
network elsewhere (:mod:`blursynth.nn.onnxgraph`) needs only the weights.

Anything this reader does not know raises :class:`UnreadableCheckpoint`; the callers then read
the file with torch, which reads what this does not and words the refusal of what it cannot.
"""

from __future__ import annotations

import collections
import mmap
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np

#: torch's storage classes (as a checkpoint names them) and their element types.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class UnreadableCheckpoint(ValueError):
    """The file is not a ``torch.save`` archive of containers and tensors this reader knows."""


class _StorageType:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if hooks or metadata:
        raise UnreadableCheckpoint("a tensor with hooks or metadata")
    itemsize = storage.dtype.itemsize
    if not size:
        return np.array(storage[offset], copy=True) if storage.size else np.zeros((), storage.dtype)
    span = 1 + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else 0
    if offset < 0 or offset + span > storage.size or min(stride, default=0) < 0:
        raise UnreadableCheckpoint("a tensor outside its storage")
    # A view whose base is the storage (the caller finds a tensor's storage through it).
    return np.ndarray(tuple(size), storage.dtype, buffer=storage, offset=offset * itemsize,
                      strides=tuple(s * itemsize for s in stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, storages):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise UnreadableCheckpoint(f"refers to {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnreadableCheckpoint(f"a storage reference {pid!r:.80}")
        _, kind, key, _location, numel = pid
        return self._storages(str(key), kind.dtype, int(numel))


def read_torch_file(path, *, storages: dict | None = None):
    """The object ``torch.save`` wrote to ``path``, its tensors as read-only NumPy arrays.

    Parameters
    ----------
    path : str or Path
    storages : dict, optional
        Filled with ``id(storage array) -> (storage array, check)``: ``check()`` compares the
        storage's bytes with the archive's CRC-32 (False: damaged), for the caller to run on the
        storages it uses (:func:`read_model_weights` does).

    Returns
    -------
    obj : object
        Dicts (``OrderedDict`` where torch kept one), lists, numbers, strings and arrays mapped
        from the file (the file stays mapped while any of them lives).

    Raises
    ------
    OSError
        The file cannot be opened.
    UnreadableCheckpoint
        Not a zip ``torch.save`` archive, or one that refers to anything but containers and
        plain tensors (parameters, quantised or sparse tensors, other classes), a compressed or
        short storage, or a byte order other than little-endian.

    Examples
    --------
    >>> import io, torch, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "w.pt")
    >>> torch.save({"w": torch.arange(6.0).reshape(2, 3)[:, 1:], "step": 3}, f)
    >>> obj = read_torch_file(f)
    >>> obj["w"].tolist(), obj["step"]
    ([[1.0, 2.0], [4.0, 5.0]], 3)
    """
    path = Path(path)
    with open(path, "rb") as fh:
        try:
            archive = zipfile.ZipFile(fh)
            names = archive.namelist()
        except (zipfile.BadZipFile, ValueError, EOFError) as exc:
            raise UnreadableCheckpoint(f"not a zip archive ({exc})") from None
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise UnreadableCheckpoint("no data.pkl")
        root = pickles[0][:-len("data.pkl")]
        order = f"{root}byteorder"
        try:  # (an archive saved without CRC-32s fails zipfile's reads: torch reads it)
            if order in names and archive.read(order).strip() != b"little":
                raise UnreadableCheckpoint("big-endian storages")
            pickled = archive.read(pickles[0])
        except zipfile.BadZipFile as exc:
            raise UnreadableCheckpoint(str(exc)) from None
        whole = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if path.stat().st_size else None
        infos = {i.filename: i for i in archive.infolist()}

        def storage(key, dtype, numel):
            info = infos.get(f"{root}data/{key}")
            if info is None or info.file_size < numel * dtype.itemsize:
                raise UnreadableCheckpoint(f"storage {key} missing or short")
            start, end = _member_span(whole, info)
            array = np.frombuffer(whole, dtype=dtype.newbyteorder("<"), count=numel, offset=start)
            if storages is not None:
                storages[id(array)] = (array, lambda: _crc_matches(whole, start, end, info))
            return array

        try:
            import io

            return _Unpickler(io.BytesIO(pickled), storage).load()
        except UnreadableCheckpoint:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged pickle raises many types
            raise UnreadableCheckpoint(f"{type(exc).__name__} while unpickling") from None


def _member_span(whole, info: zipfile.ZipInfo) -> tuple:
    """``(start, end)`` of a stored member's bytes in the mapped archive ``whole``."""
    if whole is None or info.compress_type != zipfile.ZIP_STORED:
        raise UnreadableCheckpoint(f"{info.filename} is compressed")
    # The member's data start after its local header (signature PK\3\4, its name and extra
    # field lengths at bytes 26-29, then the name): the one the directory names.
    head = info.header_offset
    name_len = int.from_bytes(whole[head + 26:head + 28], "little")
    start = head + 30 + name_len + int.from_bytes(whole[head + 28:head + 30], "little")
    if whole[head:head + 4] != b"PK\x03\x04" \
            or whole[head + 30:head + 30 + name_len] != info.orig_filename.encode():
        raise UnreadableCheckpoint(f"{info.filename}'s local header is not the directory's")
    if start + info.file_size > len(whole):
        raise UnreadableCheckpoint(f"{info.filename} runs past the file's end")
    return start, start + info.file_size


def _crc_matches(whole, start: int, end: int, info: zipfile.ZipInfo) -> bool:
    # A CRC of 0 is torch's for an archive saved without them (set_crc32_options(False)).
    return info.CRC == 0 or zlib.crc32(memoryview(whole)[start:end]) == info.CRC


def damaged_storages(path) -> list:
    """The storages of the ``torch.save`` archive at ``path`` whose bytes fail their CRC-32 (a
    file damaged on disk, which torch reads without a word); [] for one this reader does not
    open (torch's own loader then says what it makes of it).

    Examples
    --------
    >>> import torch, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "w.pt")
    >>> torch.save({"w": torch.ones(4)}, f)
    >>> damaged_storages(f)
    []
    """
    try:
        with open(path, "rb") as fh, zipfile.ZipFile(fh) as archive:
            whole = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            members = [i for i in archive.infolist() if "/data/" in i.filename and i.filename.count("/") == 2]
            return [i.filename for i in members if not _crc_matches(whole, *_member_span(whole, i), i)]
    except (OSError, ValueError, zipfile.BadZipFile, UnreadableCheckpoint):
        return []


def _storage_of(array: np.ndarray) -> np.ndarray:
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def read_model_weights(path, *, format: str, version: int, key: str, config_from, shapes,
                       skip: str | None = None):
    """A model folder's checkpoint read without torch: its config, the networks' weights, the
    checkpoint and the fingerprint :func:`blursynth.nn.runs.weights_fingerprint` gives them.

    Parameters
    ----------
    path : str or Path
        The model folder (holding ``checkpoint.pt``) or the file.
    format, version : str, int
        What the checkpoint must say it is.
    key : str
        The checkpoint's entry holding the state dict.
    config_from : callable
        ``config_from(ckpt["config"])`` -> the config (raising ValueError or TypeError for one
        that is not).
    shapes : callable
        ``shapes(config)`` -> name -> shape of every tensor the state dict must hold (float32).
    skip : str, optional
        Names starting with it are left out of the fingerprint (as the model's own leaves them).

    Raises
    ------
    OSError
        No such file.
    UnreadableCheckpoint
        Anything else that is not such a checkpoint: the caller reads it with torch, whose loader
        reads what this does not or refuses the file in one line.
    BadInputError
        The weights' bytes fail the archive's CRC-32 (a damaged file, which torch would read).
    """
    from .runs import CHECKPOINT, weights_fingerprint

    file = Path(path)
    if file.is_dir():
        file = file / CHECKPOINT
    storages = {}
    ckpt = read_torch_file(file, storages=storages)
    if not isinstance(ckpt, dict) or ckpt.get("format") != format or ckpt.get("version") != version:
        raise UnreadableCheckpoint("another kind or version of checkpoint")
    try:
        config = config_from(ckpt["config"])
        want = shapes(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise UnreadableCheckpoint(f"its config ({exc})") from None
    state = ckpt.get(key)
    if not isinstance(state, dict) or set(state) != set(want) or not all(
            isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == tuple(want[name])
            for name, a in state.items()):
        raise UnreadableCheckpoint(f"{key!r} is not the state dict of {config}")
    used = {id(_storage_of(a)) for a in state.values()}
    if not all(storages[i][1]() for i in used if i in storages):
        raise damaged(path, file)
    return config, state, ckpt, weights_fingerprint(config.to_dict(), state, skip=skip)


def damaged(path, file):
    """The refusal of a checkpoint whose weights fail the file's CRC-32."""
    from ..errors import BadInputError

    return BadInputError(f"--model {path}: {Path(file).name} is damaged (its weights fail the file's "
                         "CRC-32 check); restore it or train again.")


def check_not_damaged(path, file_name: str) -> None:
    """Refuse a model whose checkpoint (``path``, or ``path/file_name``) fails its CRC-32s: torch's
    engine reads it through torch, which would use damaged weights."""
    file = Path(path)
    if file.is_dir():
        file = file / file_name
    if damaged_storages(file):
        raise damaged(path, file)
