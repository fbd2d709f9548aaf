"""Output folders and files: the one "may I write here, is this folder ours" check (:func:`claim`),
and files written whole or not at all (a temporary name in the same folder, fsync, rename).

Every command that writes a folder claims it first with :func:`claim` and the
:class:`OutputKind` of what it writes: datasets and kernel banks
(``dataset.writer.DATASET``), exports (``dataset.export.EXPORT``), dead-leaves
folders (``sources.leaves``), training runs and BGAN models (``nn.runs.RunKind``
in ``train.loop`` and ``bgan.train``), deblurred photos (``train.evaluate``),
builds (``build.run``) and the folder a render-clip clip goes in (the clip and
its sidecar, replaced whole, are checked by ``sources.render.check_clip_output``).
An ``OutputKind`` says which names the kind's folders hold and the messages for
a folder it must not touch; the kind is defined by the module that writes it
(this package imports no generator). ``claim`` refuses a file, a folder holding
names the kind does not own, and (``create=True``) a place it cannot write, each
in one line, before anything is written.

While it writes, a command holds :func:`lock_output` on its folder, so a second
command given the same ``--out`` is refused instead of deleting or mixing in the
first one's files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import BadInputError


def _nothing(name: str) -> bool:
    return False


def hidden_or_log(name: str) -> bool:
    """Hidden files (temporary files of atomic writes, .DS_Store) and logs (``train ... > run/train.log``)."""
    return name.startswith(".") or name.endswith((".log", ".out"))


@dataclass(frozen=True)
class OutputKind:
    """What one kind of output folder may hold, and what to say when a folder is not one.

    Attributes
    ----------
    what : str
        For messages ("dataset", "training run").
    is_file : str
        Message when ``out`` is a file; ``{out}`` is filled in.
    foreign : str
        Message when the folder holds a name that is not the kind's own;
        ``{out}`` and ``{name}`` (repr of the first such name, sorted) are filled in.
    own : callable ``name -> bool``
        Names a folder of this kind may always hold.
    markers : tuple of str
        Files whose presence marks a folder as this kind's (``manifest.json``).
        A kind with markers treats an unmarked, non-empty folder as foreign.
    own_when_marked : callable ``name -> bool``
        Further names a marked folder may hold.
    unmarked : str or None
        Message for a folder that holds names of the kind but none of its markers
        (default: ``foreign``, naming the first such name).
    exists : str or None
        When set, any existing ``out`` is refused without ``overwrite``, with this message.
    cannot_write : str
        Message when ``out`` cannot be made or written; ``{out}`` and ``{error}``.
    """

    what: str
    is_file: str
    foreign: str
    own: Callable[[str], bool] = _nothing
    markers: tuple = ()
    own_when_marked: Callable[[str], bool] = _nothing
    unmarked: str | None = None
    exists: str | None = None
    cannot_write: str = "--out {out}: cannot write there ({error}); choose a folder you can write to."


@dataclass(frozen=True)
class Claim:
    """A folder :func:`claim` allowed.

    Attributes
    ----------
    path : Path
    marked : bool
        The folder already held one of the kind's markers (an earlier run's output).
    created : tuple of Path
        Folders this claim made, innermost first (``out`` and missing parents).
    """

    path: Path
    marked: bool = False
    created: tuple = field(default=())

    def undo(self) -> None:
        """Remove the folders this claim made, with what was written in them since
        (for a run that failed before writing anything worth keeping)."""
        if self.created:
            shutil.rmtree(self.created[-1], ignore_errors=True)


def claim(out, kind: OutputKind, *, overwrite: bool = False, create: bool = True) -> Claim:
    """Check that ``out`` may be written as a folder of ``kind``; make it when ``create``.

    ``out`` may be missing, an empty folder, or a folder holding only what
    ``kind`` owns (an earlier or unfinished output of the same kind: whether
    it is the *same* output, e.g. the same command's dataset, is the writer's
    own next check). Nothing is removed here.

    Parameters
    ----------
    out : str or Path
    kind : OutputKind
    overwrite : bool
        Allows an existing ``out`` for kinds that refuse one (``kind.exists``).
    create : bool
        Make ``out`` (and missing parents) and check a file can be written in it.
        Training runs pass False: every rank checks, and none writes before all have joined.

    Returns
    -------
    Claim

    Raises
    ------
    BadInputError
        One line, from ``kind``'s messages.

    Examples
    --------
    >>> import tempfile
    >>> NOTES = OutputKind("notes", is_file="--out {out}: is a file.", foreign="--out {out}: holds {name}.",
    ...                    own=lambda name: name.endswith(".txt"))
    >>> c = claim(Path(tempfile.mkdtemp()) / "notes", NOTES)
    >>> c.path.is_dir(), c.marked
    (True, False)
    >>> (c.path / "photo.png").write_bytes(b"")
    0
    >>> claim(c.path, NOTES)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    blursynth.errors.BadInputError: --out ...notes: holds 'photo.png'.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInputError(kind.is_file.format(out=out))
    marked = False
    if out.is_dir():
        names = sorted(p.name for p in out.iterdir())
        # A folder holding only a lock is one a run was killed in before it wrote anything.
        if kind.exists is not None and not overwrite and names != [LOCK_NAME]:
            raise BadInputError(kind.exists.format(out=out))
        names = [n for n in names if n != LOCK_NAME]  # every kind's, see lock_output
        marked = any(m in names for m in kind.markers)
        alien = [n for n in names if not (n in kind.markers or kind.own(n) or kind.own_when_marked(n))]
        if alien:
            raise BadInputError(kind.foreign.format(out=out, name=repr(alien[0])))
        stray = [n for n in names if not kind.own(n)]
        if kind.markers and not marked and stray:
            # Names the kind writes, but no marker vouches for them (a marker is written first).
            raise BadInputError((kind.unmarked or kind.foreign).format(out=out, name=repr(stray[0])))
    created = ()
    if create:
        created = tuple(p for p in (out, *out.parents) if not p.exists())
        probe = out / f".blursynth-probe-{os.getpid()}"
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            Claim(out, created=created).undo()
            raise BadInputError(kind.cannot_write.format(out=out, error=exc.strerror or exc)) from None
    return Claim(out, marked=marked, created=created)


LOCK_NAME = ".blursynth.lock"

# Folders this process holds, by resolved path: (thread id, depth). A command and the writer it
# calls may both lock one folder; flock alone would refuse the second (it locks per open file).
_held: dict = {}
_held_guard = threading.Lock()


def _holder_record(fd: int) -> str:
    """The lock file's record of its holder (:func:`_lock_record`; an older blursynth wrote the
    pid alone), or "" where it cannot be read."""
    try:
        return os.pread(fd, 256, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""


def _holder_ended(record: str) -> bool:
    """Whether the lock file's ``record`` (:func:`_lock_record`) names a process of this host
    and pid namespace that has ended. False where it cannot be told: a holder on another host
    (a network file system's lock) or in another container has a pid that means nothing here."""
    fields = record.split()
    if len(fields) != 3 or fields[1:] != _lock_record().split()[1:] or not fields[0].isdigit():
        return False
    from .._processes import has_ended

    return has_ended(int(fields[0])) is True


def _lock_record() -> str:
    """What a lock file holds while held: this process's pid, host and pid namespace."""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = "-"
    return f"{os.getpid()} {os.uname().nodename or '-'} {namespace}\n"


@contextmanager
def lock_output(path, *, shown=None, option: str = "--out", keep: bool = True):
    """Hold an exclusive lock on the output folder ``path`` while writing it.

    The lock is a non-blocking ``fcntl.flock`` on ``path/.blursynth.lock`` (made if missing,
    with ``path`` itself; hidden, so every :class:`OutputKind` owns it), holding the owner's pid,
    host and pid namespace while held (:func:`_lock_record`) and emptied on release (finished
    outputs are the same bytes whoever wrote them). The kernel releases it when the process ends
    however it ends, so a killed run never leaves a folder locked; the file is left behind
    (harmless) unless ``keep`` is false. Locking again in the same thread, as a command does
    around the writer it calls, nests.

    Parameters
    ----------
    path : str or Path
        The output folder; call :func:`claim` on it first.
    shown : str or Path, optional
        The ``--out`` to name in the message, when it is not ``path`` (render-clip's clip locks
        the folder it goes in).
    option : str
        The option ``shown`` was given with, for the messages (``evaluate --json``'s report locks
        the folder it goes in).
    keep : bool
        Leave the lock file when released; false removes it (a folder of the user's own files,
        such as the one a render-clip clip goes in, is left as it was found).

    Yields
    ------
    Path
        ``path``.

    Raises
    ------
    BadInputError
        Another process holds the folder (one line naming its pid), or another thread of this one.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> with lock_output(out):
    ...     (out / "data.txt").write_text("x")
    1
    >>> sorted(p.name for p in out.iterdir())
    ['.blursynth.lock', 'data.txt']
    """
    path = Path(path)
    key = os.path.realpath(path)
    me = threading.get_ident()
    with _held_guard:
        held = _held.get(key)
        if held is not None and held[0] == me:
            _held[key] = (me, held[1] + 1)
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield path
        finally:
            with _held_guard:
                _held[key] = (me, _held[key][1] - 1)
        return
    busy = (f"{option} {shown or path}: {{who}} is writing there; "
            f"wait for it to finish or choose another {option}.")
    with _held_guard:
        if key in _held:
            raise BadInputError(busy.format(who="another thread of this process"))
        _held[key] = (me, 1)
    fd = None
    lock = path / LOCK_NAME
    try:
        while fd is None:
            try:
                path.mkdir(parents=True, exist_ok=True)
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise BadInputError(f"{option} {path}: cannot write there ({exc.strerror or exc}); "
                                    "choose a folder you can write to.") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                record = _holder_record(fd)
                pid = record.split()[0] if record.split() else "unknown"
                os.close(fd)
                fd = None
                if _holder_ended(record):  # a process it forked holds the lock it shared with them
                    raise BadInputError(
                        f"{option} {shown or path}: blursynth process {pid} has ended, but a process it "
                        f"started still holds the folder (a pool process ends within a second of its "
                        f"command; if it does not, 'fuser -v {lock}' names it); rerun then.") from None
                raise BadInputError(busy.format(who=f"another blursynth process (pid {pid})")) from None
            except OSError as exc:
                if exc.errno not in _NO_LOCKS:
                    raise
                # Some network file systems have no flock: writing unlocked beats refusing to write.
                warnings.warn(f"{option} {path}: this file system does not support locks ({exc.strerror}); "
                              "make sure no other blursynth command writes there at the same time.", stacklevel=3)
                break
            if not _same_file(fd, lock):  # its holder removed it (keep=False) as we opened it
                os.close(fd)
                fd = None
        os.ftruncate(fd, 0)
        os.pwrite(fd, _lock_record().encode(), 0)
        yield path
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                if not keep:
                    lock.unlink()  # while still held: see _same_file
            os.close(fd)  # closing releases the flock
        with _held_guard:
            _held.pop(key, None)


_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def temporary_path(path) -> Path:
    """The hidden name beside ``path`` that a file or folder is built under before it is renamed
    to ``path`` (``.name.tmpPID``: hidden, so claims and globs of real outputs skip it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


#: The names :func:`temporary_path` gives, for ``fullmatch``; group ``name`` is the name the
#: temporary file or folder will be renamed to. Clean-ups of what killed writers left match this.
TEMPORARY = re.compile(r"\.(?P<name>.+)\.tmp\d+")


def remove_temporaries(folder, own) -> None:
    """Remove the files :func:`temporary_path` named for the names ``own(name)`` accepts: what a
    killed writer left in ``folder``. Call it holding :func:`lock_output`, so that none is another
    run's file in progress. Other names and folders are left; a link is removed, never followed.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> for name in (".manifest.json.tmp41", ".notes.txt.tmp41", "manifest.json"):
    ...     _ = (out / name).write_text("")
    >>> remove_temporaries(out, lambda name: name == "manifest.json")
    >>> sorted(p.name for p in out.iterdir())
    ['.notes.txt.tmp41', 'manifest.json']
    """
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return
    for path in folder.iterdir():
        m = TEMPORARY.fullmatch(path.name)
        if m and own(m["name"]) and (path.is_symlink() or path.is_file()):
            path.unlink(missing_ok=True)


def _atomic_write(path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, and rename it to ``path``."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never part."""
    _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode())


def write_output_file(path, data: bytes, *, option: str = "--out") -> None:
    """Write ``path``, the one file a command makes (a preview sheet, ``evaluate --json``'s
    report), as :func:`atomic_write_bytes` does, first removing the temporary file a killed write
    of that name left (that name only: the folder may be the user's).

    The folder is locked meanwhile, as every writer's is, so that the file removed is never
    another run's in progress; its lock file is removed after (``keep=False``), as for a
    render-clip clip. ``option`` names ``path`` in the messages.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> _ = (out / ".sheet.png.tmp41").write_bytes(b"killed")
    >>> write_output_file(out / "sheet.png", b"png")
    >>> sorted(p.name for p in out.iterdir())
    ['sheet.png']
    """
    path = Path(path)
    with lock_output(path.parent, shown=path, option=option, keep=False):
        remove_temporaries(path.parent, path.name.__eq__)
        atomic_write_bytes(path, data)


def atomic_torch_save(obj, path) -> None:
    """``torch.save`` to ``path`` atomically (checkpoints survive a kill mid-write)."""
    import torch

    _atomic_write(path, lambda f: torch.save(obj, f))
