"""Photos decoded on a spare core while a writer's process starts.

A writer's start-up (importing Numba and setting up its target, reading the photos' headers)
runs on one core: with ``--workers N`` the other cores would wait for it. :func:`decode_ahead`
forks one process at the very start, before those imports, that lists PHOTOS as the job will
and decodes them in order into memory shared with this process, until this process starts its
pool (the writer stops it then: ``dataset.executors.before_pool``), the budget is full or every
photo is decoded. :func:`load_photo` then hands out those
arrays instead of decoding again: the same pixels, or the same error, as
:func:`~blursynth.sources.photos.load_rgb8`, so the bytes written do not change.

A process rather than a thread: start-up is Python holding the GIL (imports), so a thread
would wait for it between every C call, and slow it down too.

Shared memory is an anonymous shared mapping made before the fork (not ``/dev/shm``, whose size
containers limit): its pages are taken only as photos are written into it, and every process
forked from this one later (the pool's) sees the same pages.
"""

from __future__ import annotations

import mmap
import os
import pickle
import select
import signal
import sys
import threading
import time

import numpy as np

from ..errors import BadInputError
from .photos import list_images, load_rgb8, read_header

#: Bytes of decoded photos held at most (about 45 photos of 720x1280: more than a start-up's half
#: second decodes). They are held until the command ends (pages a process has handed out may
#: still be another's, whose chunk holds pairs of the same photo).
BUDGET = 128 << 20

#: Seconds :meth:`DecodeAhead.halt` waits for a word from the decoder before ending it (a photo
#: takes milliseconds).
HALT_WAIT = 5.0

_HEADER = 64  # arena[0] is the stop flag; photos start here, each 64-byte aligned


class DecodeAhead:
    """One decoder process and the photos it has reported (see the module's text).

    Parameters
    ----------
    photos : str or Path
        PHOTOS as the command got it: a folder, listed as :func:`list_images` lists it (the
        order the job reads photos in), or one image file.
    exclude : str, Path or sequence of them
        As :func:`list_images`'s (the job's output folder).
    budget : int
        Bytes of decoded photos held at most.

    Examples
    --------
    >>> import tempfile
    >>> from skimage import data
    >>> from blursynth.sources.photos import save_rgb8
    >>> folder = tempfile.mkdtemp()
    >>> save_rgb8(f"{folder}/a.png", data.astronaut()[::8, ::8])
    >>> ahead = DecodeAhead(folder)
    >>> ahead.wait()  # for this example: a writer takes what is there when it needs a photo
    >>> image, note = ahead.take(f"{folder}/a.png")
    >>> image.shape, bool((image == load_rgb8(f"{folder}/a.png")[0]).all())
    ((64, 64, 3), True)
    >>> ahead.take(f"{folder}/a.png") is None  # handed out once
    True
    >>> ahead.close()
    """

    def __init__(self, photos, *, exclude=(), budget: int = BUDGET):
        self.done = {}  # path -> (offset, shape, note) or the refusal's text
        self.buffer = b""
        self.pid = self.read_fd = None
        try:
            self.arena = mmap.mmap(-1, _HEADER + int(budget))
            read_fd, write_fd = os.pipe()
        except OSError:  # no memory or descriptors to spare: every photo is decoded when needed
            return
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            return
        if pid == 0:  # the decoder
            status = 1
            try:
                os.close(read_fd)
                # It says nothing, and must not hold the command's output open: a caller reading
                # the command's stdout to its end would wait for this process too.
                quiet = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(quiet, fd)
                _decode(photos, exclude, self.arena, write_fd)
                status = 0
            except BaseException:  # noqa: BLE001 - the command goes on without it, decoding itself
                pass
            finally:
                os._exit(status)  # not the parent's exit handlers, nor its buffered output
        os.close(write_fd)
        self.pid, self.read_fd = pid, read_fd

    # -- this process --
    def _read(self, wait: float = 0.0) -> bool:
        """Take the decoder's reports that have arrived, waiting up to ``wait`` seconds for more;
        False once it has ended (or, silent for ``wait`` seconds, was ended)."""
        while self.read_fd is not None:
            if not select.select([self.read_fd], [], [], wait)[0]:
                if wait:  # a decoder that hangs (a lock some thread held when it was forked)
                    try:
                        os.kill(self.pid, signal.SIGKILL)
                    except ProcessLookupError:  # pragma: no cover - reaped elsewhere
                        pass
                    self._reap()
                    return False
                return True
            data = os.read(self.read_fd, 1 << 16)
            if not data:
                self._reap()
                return False
            self.buffer += data
            while len(self.buffer) >= 4:
                n = int.from_bytes(self.buffer[:4], "little")
                if len(self.buffer) < 4 + n:
                    break
                path, entry = pickle.loads(self.buffer[4 : 4 + n])
                self.buffer = self.buffer[4 + n :]
                self.done[path] = entry
        return False

    def _reap(self):
        os.close(self.read_fd)
        self.read_fd = None
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:  # pragma: no cover - reaped elsewhere
            pass

    def halt(self) -> None:
        """Stop the decoder and take every report it made (it ends after the photo in hand)."""
        if self.read_fd is not None:
            self.arena[0] = 1
            while self._read(wait=HALT_WAIT):
                pass

    def wait(self, timeout: float = 60.0) -> None:
        """Let the decoder finish on its own (every photo, or the budget full) and take its reports."""
        deadline = time.monotonic() + timeout
        while self.read_fd is not None and self._read(wait=max(0.01, deadline - time.monotonic())):
            pass

    def take(self, path):
        """:func:`load_rgb8`'s ``(image, note)`` for ``path`` if it was decoded ahead, else None;
        raises its BadInputError for a photo the decoder was refused."""
        if self.read_fd is not None:
            self._read()
        entry = self.done.pop(os.fspath(path), None)
        if entry is None:
            return None
        if isinstance(entry, str):
            raise BadInputError(entry)
        offset, shape, note = entry
        image = np.frombuffer(self.arena, np.uint8, int(np.prod(shape)), offset).reshape(shape)
        return image.copy(), note  # the caller's own array, as load_rgb8's

    def close(self) -> None:
        """Stop the decoder and let its photos go."""
        self.halt()
        self.done.clear()


def _decode(photos, exclude, arena, write_fd):
    """The decoder process: decode PHOTOS in order into ``arena``, one report per photo.

    A photo that would not fit in what is left of the arena (its size read from its header
    first) is left to the job, as is one whose reading fails other than with a BadInputError
    (the job meets that error itself, in its own words)."""
    offset = _HEADER
    for path in list_images(photos, exclude=exclude):
        if arena[0]:
            return
        path = os.fspath(path)
        try:
            h, w, _ = read_header(path)
        except Exception:  # noqa: BLE001 - load_rgb8 below gives the refusal the job would
            h = w = 0
        if offset + 3 * h * w > len(arena):
            continue
        try:
            image, note = load_rgb8(path)
        except BadInputError as exc:
            entry = str(exc.args[0]) if exc.args else str(exc)
        except Exception:  # noqa: BLE001
            continue
        else:
            end = offset + image.nbytes
            if end > len(arena):
                continue
            arena[offset:end] = image.tobytes() if not image.flags.c_contiguous else memoryview(image).cast("B")
            entry = (offset, image.shape, note)
            offset = -(-end // 64) * 64
        record = pickle.dumps((path, entry))
        os.write(write_fd, len(record).to_bytes(4, "little") + record)


_ahead: DecodeAhead | None = None


def decode_ahead(photos, *, exclude=(), budget: int = BUDGET) -> None:
    """Start decoding PHOTOS in a process of its own for :func:`load_photo` (replacing the
    decoder of an earlier call). Only on Linux, from a process that runs no other thread (a
    command as it starts); elsewhere nothing happens and every photo is decoded when needed."""
    global _ahead
    end_decode_ahead()
    # Forking a process that runs other threads could leave the decoder a lock held forever.
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        from ..dataset.executors import before_pool

        before_pool(_halt_before_fork)
        _ahead = DecodeAhead(photos, exclude=exclude, budget=budget)


def end_decode_ahead() -> None:
    """Stop the decoder of :func:`decode_ahead` and let the photos nobody took go."""
    global _ahead
    if _ahead is not None:
        _ahead.close()
        _ahead = None


def load_photo(path) -> tuple[np.ndarray, str | None]:
    """:func:`load_rgb8` of a job's photo: decoded ahead (:func:`decode_ahead`) if it was, else
    now. The same array, or the same error, either way.

    Examples
    --------
    >>> import tempfile
    >>> from blursynth.sources.photos import save_rgb8
    >>> path = f"{tempfile.mkdtemp()}/grey.png"
    >>> save_rgb8(path, np.full((4, 6, 3), 128, np.uint8))
    >>> load_photo(path)[0].shape  # no decoder running: decoded now
    (4, 6, 3)
    """
    if _ahead is not None:
        result = _ahead.take(path)
        if result is not None:
            return result
    return load_rgb8(path)


def _halt_before_fork():
    # The pool's processes inherit the photos reported so far and take them as this one would;
    # a report still in the pipe at the fork would be read by one process only. The writer
    # calls this before it starts its pool (dataset.executors.before_pool), also from a fork
    # server, whose processes inherit nothing but need the core; a fork anywhere else finds
    # it here too.
    if _ahead is not None:
        _ahead.halt()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_halt_before_fork)
