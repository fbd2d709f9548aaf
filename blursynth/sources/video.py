"""Frame sources: video files and numbered-frame folders, found, probed (with an MP4 box check) and decoded.

Frames are decoded one at a time (PyAV for videos; OpenCV on reader threads
for frame folders), so memory does not grow with a source's length. A damaged
video yields the frames before the damage, with a
:class:`TruncatedVideoWarning`.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import warnings
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import BadInputError, native_noise_quiet

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mts", ".mpg", ".mpeg", ".wmv")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")


class TruncatedVideoWarning(UserWarning):
    """A video ended early or stopped decoding; the frames before the damage were used."""


@dataclass(frozen=True)
class SourceInfo:
    """What a frame source holds.

    Attributes
    ----------
    path : str
    kind : {'video', 'frames'}
    n_frames : int
        Frames declared (a damaged video may hold fewer).
    fps : float
        Capture rate (``--fps`` when given, else the container's).
    height, width : int
    files : tuple of str
        Frame files in order (folders only).
    converted : tuple of (str or None)
        Per frame file, what reading it changes, worded as a photo's ``converted`` note
        (``"EXIF orientation 6 applied"``), or None; empty where no frame needs a note (every
        video, and folders of frames stored upright).
    """

    path: str
    kind: str
    n_frames: int
    fps: float
    height: int
    width: int
    files: tuple = ()
    converted: tuple = ()


_GRAY_PIX = ("gray", "ya", "mono", "y400")


def probe_source(path, *, fps: float | None = None) -> SourceInfo:
    """Check a video file or numbered-frame folder and describe it, without decoding it all.

    Parameters
    ----------
    path : str or Path
        A video file ffmpeg can read, or a folder of numbered frames
        (``000001.png``, ``frame_0002.png``, ...; numbering must not skip).
    fps : float, optional
        Capture rate to use instead of the container's (required for folders).

    Returns
    -------
    info : SourceInfo

    Raises
    ------
    BadInputError
        Missing path, not a video, grayscale, no frame rate, gaps in the
        numbering or mixed frame sizes.

    Examples
    --------
    >>> probe_source("missing.mp4")
    Traceback (most recent call last):
    ...
    blursynth.errors.BadInputError: video 'missing.mp4' does not exist; give a video file or a folder of numbered frames.
    """
    p = Path(path)
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise BadInputError(f"--fps must be a positive number of frames per second; got {fps!r}.")
    if not p.exists():
        raise BadInputError(f"video '{path}' does not exist; give a video file or a folder of numbered frames.")
    if p.is_dir():
        return _probe_folder(p, fps)
    return _probe_video(p, fps)


def _probe_video(p: Path, fps):
    import av

    try:
        container = av.open(str(p))
    except Exception as exc:  # av raises many error types for the same problem
        if _mp4_cut_before_index(p):
            raise BadInputError(
                f"'{p}' was cut short before its index (an MP4/MOV whose 'moov' box comes after the "
                "frames, and is missing), so no frame can be located; copy the file again, or write "
                "videos with the index first (ffmpeg -movflags +faststart) so a cut copy still reads."
            ) from None
        raise BadInputError(
            f"'{p}' is not a video ffmpeg can read ({type(exc).__name__}: {_short(exc)}); "
            "expected e.g. an .mp4 or .mkv file."
        ) from None
    try:
        if not container.streams.video:
            raise BadInputError(f"'{p}' has no video stream; expected a video file.")
        if container.format.name.endswith("_pipe") or container.format.name == "image2":
            raise BadInputError(
                f"'{p}' is a single image, not a video; put numbered frames in a folder and pass the folder."
            )
        stream = container.streams.video[0]
        pix = stream.codec_context.pix_fmt or ""
        if pix.startswith(_GRAY_PIX):
            raise BadInputError(
                f"video '{p}' is grayscale (pixel format {pix}); frames-average needs colour video. "
                "Convert it, e.g. ffmpeg -i in -pix_fmt yuv420p out.mp4."
            )
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        if fps is None:
            if not rate or float(rate) <= 0:
                raise BadInputError(f"video '{p}' declares no frame rate; pass --fps (e.g. --fps 240).")
            fps = float(rate)
        n = stream.frames
        if not n:
            # Containers such as Matroska do not store a count: count packets (no decoding),
            # noting where the last one ends, to tell a cut copy by its declared duration.
            n, end = 0, None
            for pkt in container.demux(stream):
                if pkt.size:
                    n += 1
                    if pkt.pts is not None:
                        stop = pkt.pts + (pkt.duration or 0)
                        end = stop if end is None else max(end, stop)
            _warn_if_cut_short(p, container, stream, n, end)
        width, height = stream.codec_context.width, stream.codec_context.height
    finally:
        container.close()
    if n < 1 or not width or not height:
        raise BadInputError(f"video '{p}' holds no frames; expected a video with at least one frame.")
    return SourceInfo(str(p), "video", int(n), float(fps), int(height), int(width))


def _warn_if_cut_short(p: Path, container, stream, n: int, end) -> None:
    """Warn when a video's frames end well before its declared duration (a cut copy).

    ``end`` is where the last packet ends, in the stream's time base; time is
    compared rather than frame counts, so neither ``--fps`` nor a variable
    frame rate can raise a false alarm.
    """
    if end is None or not stream.time_base or len(container.streams) != 1:
        return  # no timestamps, or an audio track that may well outlast the picture
    if stream.duration:
        declared = float(stream.duration * stream.time_base)
    elif container.duration:
        declared = container.duration / 1e6  # microseconds
    else:
        return
    start = float((stream.start_time or 0) * stream.time_base)
    held = float(end * stream.time_base) - start
    per_frame = held / n if n else 0.0
    if declared - held > max(0.02 * declared, 2 * per_frame):
        warnings.warn(
            f"video '{p}' declares {declared:.3g} s but its {n} frames end at {held:.3g} s; it may have "
            "been cut short. Pairs come from the frames present.",
            TruncatedVideoWarning, stacklevel=3,
        )


def _mp4_cut_before_index(p: Path) -> bool:
    """Whether ``p`` is an ISO media file with its frames ('mdat') and no index ('moov') before its end.

    Either the 'mdat' box runs past the end of the file (a copy cut short) or
    the file ends after it (a recording stopped before the index was written).
    """
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            pos, seen = 0, set()
            for _ in range(10_000):  # a real file has a handful of top-level boxes
                if pos + 8 > size:
                    # The end, and no index: as a recorder stopped mid-write leaves it (mdat size 0).
                    return b"ftyp" in seen and b"mdat" in seen
                f.seek(pos)
                head = f.read(16)
                box_size, kind = int.from_bytes(head[:4], "big"), head[4:8]
                if box_size == 1 and len(head) == 16:
                    box_size = int.from_bytes(head[8:16], "big")
                seen.add(kind)
                if kind == b"moov":
                    return False
                if box_size < 8:  # 0 means "to the end of the file"
                    box_size = size - pos if box_size == 0 else -1
                    if box_size < 0:
                        return False
                if pos + box_size > size:
                    return kind == b"mdat" and b"ftyp" in seen
                pos += box_size
    except OSError:
        return False
    return False


def _short(exc) -> str:
    return " ".join(str(exc).split())[:160]


_NUMBER = re.compile(r"(\d+)$")


def _probe_folder(p: Path, fps):
    from .photos import GRAY_MODES, read_header

    files = [f for f in p.iterdir() if f.is_file() and f.suffix.lower() in FRAME_SUFFIXES]
    if not files:
        raise BadInputError(f"folder '{p}' holds no frames; expected numbered images (000001.png, ...).")
    numbered = []
    for f in files:
        m = _NUMBER.search(f.stem)
        if not m:
            raise BadInputError(
                f"frame '{f}' has no number at the end of its name; expected numbered frames (000001.png, ...)."
            )
        numbered.append((int(m.group(1)), f))
    numbered.sort()
    numbers = [n for n, _ in numbered]
    if len(set(numbers)) != len(numbers):
        dup = next(a for a, b in zip(numbers, numbers[1:]) if a == b)
        raise BadInputError(f"folder '{p}' has two frames numbered {dup}; keep one file per number.")
    for a, b in zip(numbers, numbers[1:]):
        if b != a + 1:
            raise BadInputError(
                f"folder '{p}': frame numbering jumps from {a} to {b} ({b - a - 1} missing); "
                "frames must be consecutive."
            )
    size, notes = None, []
    for _, f in numbered:
        try:
            # As displayed (EXIF orientation applied), as _read_frame_file's decoder reads it.
            height, width, mode = read_header(f)
            this = (height, width)
            notes.append(_frame_note(f))
        except BadInputError:
            raise  # truncated, or over the pixel limit: one line naming the file
        except Exception as exc:
            raise BadInputError(f"frame '{f}' is not a readable image ({_short(exc)}).") from None
        if mode in GRAY_MODES:
            raise BadInputError(f"frame '{f}' is grayscale (mode {mode}); frames-average needs colour frames.")
        if size is None:
            size = this
        elif this != size:
            raise BadInputError(
                f"folder '{p}': frame '{f.name}' is {this[0]}x{this[1]} but earlier frames are "
                f"{size[0]}x{size[1]}; all frames must have one size."
            )
    if fps is None:
        raise BadInputError(f"folder '{p}' does not record a frame rate; pass --fps (e.g. --fps 240).")
    return SourceInfo(str(p), "frames", len(numbered), float(fps), size[0], size[1],
                      tuple(str(f) for _, f in numbered),
                      tuple(notes) if any(notes) else ())


def _frame_note(path) -> str | None:
    """What reading the frame file ``path`` changes (its EXIF orientation), or None, in the words
    sources.photos gives a photo's ``converted`` note."""
    from .photos import _header, _oriented

    header = _header(path, str(path))
    # _read_frame_file's decoder (OpenCV, IMREAD_COLOR) turns the pixels itself: only the note.
    return _oriented(None, None, replace(header, decoder_orients=True))[1]


def iter_frames(info: SourceInfo, start: int = 0, stop: int | None = None):
    """Yield ``(index, frame)`` for frames ``start .. stop - 1``, decoding one at a time.

    Parameters
    ----------
    info : SourceInfo
    start, stop : int
        Frame range; ``stop`` defaults to the end.

    Yields
    ------
    index : int
    frame : (H, W, 3) uint8 ndarray, RGB

    Warns
    -----
    TruncatedVideoWarning
        The video stopped decoding (or ended) before ``stop``; frames up to the
        last good one were yielded.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from blursynth.sources.render import write_video
    >>> path = Path(tempfile.mkdtemp()) / "c.mkv"
    >>> write_video([np.full((8, 8, 3), 20 * i, np.uint8) for i in range(5)], path, fps=240)
    5
    >>> info = probe_source(path)
    >>> info.n_frames, info.fps
    (5, 240.0)
    >>> [(i, int(f[0, 0, 0])) for i, f in iter_frames(info, 2, 4)]
    [(2, 40), (3, 60)]
    """
    stop = info.n_frames if stop is None else min(stop, info.n_frames)
    if start >= stop:
        return
    if info.kind == "frames":
        yield from _iter_folder(info, start, stop)
    else:
        yield from _iter_video(info, start, stop)


#: Frame files read ahead of the one being handed out, by this many reader threads.
_FOLDER_READ_AHEAD = 4
_FOLDER_READERS = 2


def _read_frame_file(path, height, width):
    import cv2

    # IMREAD_COLOR applies the EXIF orientation, as sources.photos does for every photo.
    with native_noise_quiet():  # libpng prints its own "libpng error:" line on fd 2
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    if bgr.shape[:2] != (height, width):
        raise BadInputError(f"frame '{path}' changed size while reading.")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _iter_folder(info, start, stop):
    # Image decoders run one thread per image and release the GIL, so a few
    # files are decoded ahead on reader threads (in order; at most
    # _FOLDER_READ_AHEAD frames beyond the current one are held).
    from concurrent.futures import ThreadPoolExecutor

    # Imported here, whole, before the reader threads need it: two threads importing OpenCV for
    # the first time at once can see a half-initialised module (no cv2.imread), which happened
    # when a video came before a frame folder in one run.
    importlib.import_module("cv2")

    pool = ThreadPoolExecutor(max_workers=_FOLDER_READERS, thread_name_prefix="blursynth-read")
    pending = deque()
    try:
        nxt = start
        while nxt < stop or pending:
            while nxt < stop and len(pending) <= _FOLDER_READ_AHEAD:
                pending.append((nxt, pool.submit(_read_frame_file, info.files[nxt], info.height,
                                                 info.width)))
                nxt += 1
            i, job = pending.popleft()
            frame = job.result()
            if frame is None:
                warnings.warn(
                    f"frame '{info.files[i]}' could not be decoded; stopping at frame {i}.",
                    TruncatedVideoWarning, stacklevel=2,
                )
                return
            yield i, frame
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _iter_video(info, start, stop):
    # PyAV with frame threading decoded 720p H.264 at 426 frames/s here against
    # OpenCV's 254 (RGB output); see benchmarks/RESULTS.md, "Frame averaging".
    import av

    container = av.open(info.path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames, index = _positioned(container, stream, start)
        if frames is None:  # the seek could not be trusted: decode from the beginning
            container.close()
            container = av.open(info.path)
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames, index = container.decode(stream), 0
        while index < stop:
            try:
                frame = next(frames)
            except StopIteration:
                warnings.warn(
                    f"video '{info.path}' ended at frame {index} of {info.n_frames} declared; "
                    "pairs up to there were kept.", TruncatedVideoWarning, stacklevel=2,
                )
                return
            except (av.error.FFmpegError, ValueError) as exc:
                warnings.warn(
                    f"video '{info.path}' stopped decoding at frame {index} of {info.n_frames} "
                    f"({_short(exc)}); pairs up to there were kept.", TruncatedVideoWarning, stacklevel=2,
                )
                return
            if index >= start:
                # One scaler thread: libswscale's own threads (its default) fight the decoder's
                # frame threads and the averaging thread for two cores; converting on this
                # thread alone decoded a 720p clip 1.2x faster here, with the same bytes.
                yield index, frame.reformat(format="rgb24", threads=1).to_ndarray()
            index += 1
    finally:
        container.close()


def _frame_index(frame, stream):
    start_pts = stream.start_time or 0
    rate = stream.average_rate or stream.guessed_rate
    return int(round(float((frame.pts - start_pts) * stream.time_base * rate)))


def _positioned(container, stream, start):
    """A frame iterator placed at or before frame ``start``, and the index of its next frame.

    Seeks to the key frame before ``start`` and reads the index off the first
    decoded frame's timestamp. Returns ``(None, None)`` when that cannot be
    trusted (no timestamps, or the seek landed after ``start``).
    """
    import itertools

    frames = container.decode(stream)
    if start == 0:
        return frames, 0
    rate = stream.average_rate or stream.guessed_rate
    if not rate or stream.time_base is None:
        return None, None
    # Aim one frame early so rounding of timestamps cannot land the seek after ``start``.
    target = int((stream.start_time or 0) + math.floor((start - 1) / rate / stream.time_base))
    try:
        container.seek(max(target, stream.start_time or 0), stream=stream, backward=True, any_frame=False)
        frames = container.decode(stream)
        first = next(frames)
    except Exception:
        return None, None
    if first.pts is None:
        return None, None
    index = _frame_index(first, stream)
    if index > start or index < 0:
        return None, None
    return itertools.chain([first], frames), index


def source_bytes(info: SourceInfo) -> int:
    """Size of a source on disk: the video file, or the sum of a folder's frame files."""
    if info.kind == "video":
        return Path(info.path).stat().st_size
    return sum(Path(f).stat().st_size for f in info.files)


# ---------------------------------------------------------------------------------------------
# finding the sources named by the inputs


def expand_inputs_named(paths) -> list[tuple[str, str]]:
    """Frame sources named by ``paths`` (video files, frame folders, or folders of either), each
    with a name that does not depend on where it is.

    A folder holding images is one numbered-frame source; otherwise its videos
    and its sub-folders holding images (the GoPro_Large_all layout) are taken,
    sorted by name.

    The name is the source's path relative to the folder holding the input it
    came from: ``clip.mp4`` for an input ``/data/clip.mp4``, ``GoPro/GOPR0372``
    for the sub-folder ``GOPR0372`` of an input ``/data/GoPro``.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / "clip.mkv").write_bytes(b"")
    0
    >>> [name for _, name in expand_inputs_named([d / "clip.mkv"])]
    ['clip.mkv']
    """
    sources = []
    for path in paths:
        p = Path(path)
        if not p.is_dir() or _has_frames(p):
            sources.append((str(p), _base_name(p)))
            continue
        found = sorted(
            [f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES]
            + [d for d in p.iterdir() if d.is_dir() and _has_frames(d)]
        )
        if not found:
            raise BadInputError(
                f"folder '{p}' holds no videos, frames or frame folders; expected e.g. clip.mp4 or 000001.png."
            )
        sources.extend((str(f), f"{_base_name(p)}/{f.name}") for f in found)
    if not sources:
        raise BadInputError("no input given; pass a video file or a folder of frames.")
    seen = {}
    for path, _ in sources:
        key = os.path.realpath(path)
        if key in seen:
            raise BadInputError(
                f"'{path}' is given twice (also as '{seen[key]}'), which would repeat its pairs; "
                "pass each video or frame folder once.")
        seen[key] = path
    return sources


def _base_name(p: Path) -> str:
    # "." or "..": the folder's own name, which (unlike the path) is the same from any directory.
    return p.name if p.name not in ("", "..") else Path(os.path.abspath(p)).name


def _has_frames(folder: Path) -> bool:
    return any(f.suffix.lower() in FRAME_SUFFIXES for f in folder.iterdir() if f.is_file())
