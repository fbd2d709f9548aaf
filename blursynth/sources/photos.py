"""Image files and PNG bytes at the I/O edge (uint8 (H, W, 3) RGB), image headers and photo folders."""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInputError, native_noise_quiet

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")


def list_images(folder, *, exclude=()) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted by relative path.

    Parameters
    ----------
    folder : str or Path
        A directory, or a single image file (returned alone).
    exclude : str, Path or sequence of them
        Folders left out with everything under them: a command's ``--out`` inside its input
        folder, so that a rerun does not read its own outputs as inputs.

    Returns
    -------
    paths : list of Path

    Raises
    ------
    BadInputError
        If ``folder`` does not exist.
    """
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise BadInputError(f"{folder}: no such file or directory; expected a folder of images.")
    if exclude is None or isinstance(exclude, (str, os.PathLike)):
        exclude = (exclude,)
    left_out = {os.path.realpath(e) for e in exclude if e is not None}
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not (left_out and os.path.realpath(os.path.join(root, d)) in left_out))
        for name in files:
            if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith("."):
                found.append(Path(root) / name)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def to_rgb8(image: np.ndarray, *, what: str = "image") -> tuple[np.ndarray, str | None]:
    """Convert a decoded array to uint8 (H, W, 3) RGB, saying what was changed.

    Parameters
    ----------
    image : (H, W[, C]) uint8 or uint16 ndarray
        Grayscale, gray+alpha, RGB or RGBA.
    what : str
        Name used in messages (usually the file path).

    Returns
    -------
    rgb : (H, W, 3) uint8 ndarray
    note : str or None
        What was converted (``"grayscale replicated to RGB"``, ...), or None.

    Examples
    --------
    >>> rgb, note = to_rgb8(np.zeros((4, 5), np.uint8))
    >>> rgb.shape, note
    ((4, 5, 3), 'grayscale replicated to RGB')
    """
    notes = []
    if image.dtype == np.uint16:
        # Exact inverse of the 8->16 bit scaling v*257.
        image = ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        notes.append("16-bit scaled to 8-bit")
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
        notes.append("float scaled to 8-bit")
    elif image.dtype != np.uint8:
        raise BadInputError(
            f"{what}: unsupported pixel type {image.dtype}; expected 8- or 16-bit images."
        )
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
        notes.append("grayscale replicated to RGB")
    elif image.ndim == 3 and image.shape[2] == 2:
        image = np.repeat(image[:, :, :1], 3, axis=2)
        notes.append("grayscale replicated to RGB, alpha dropped")
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
        notes.append("alpha dropped")
    elif image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
        notes.append("grayscale replicated to RGB")
    elif not (image.ndim == 3 and image.shape[2] == 3):
        raise BadInputError(
            f"{what}: unsupported image shape {image.shape}; expected (H, W), (H, W, 3) or (H, W, 4)."
        )
    return np.ascontiguousarray(image), ("; ".join(notes) or None)


def _plain_rgb8_png(data: bytes) -> bool:
    """Whether ``data`` is an intact PNG of 8-bit RGB samples with no transparency chunk
    (``tRNS``): the one layout every PNG decoder returns as stored, with no palette to expand,
    no alpha or 16-bit samples to convert (gamma and colour chunks are applied by neither).

    Intact: every chunk's CRC holds, up to ``IEND``, and every chunk's name is one libpng reads
    (four letters, the third upper-case). libpng (OpenCV) refuses a file that fails either;
    libspng as ``pyspng`` calls it does not, and would return a damaged photo's wrong pixels.
    Checking them costs about 0.3 ms for a 1 MB file. Not checked: the zlib stream's own
    checksum (Adler-32; checking it means inflating the image twice). A file whose CRCs hold
    and whose Adler-32 alone is wrong or missing was written so by a faulty encoder, not
    damaged since (the CRCs cover those bytes too): libspng decodes its rows as written,
    libpng refuses it. Also not a plain PNG: one larger than :func:`max_image_pixels` (OpenCV
    has a limit of its own where the header check could not read the file; libspng none)."""
    import zlib

    if data[:8] != _PNG_SIGNATURE or len(data) < 33 or data[12:16] != b"IHDR":
        return False
    if data[24] != 8 or data[25] != 2:  # bit depth, colour type
        return False
    limit = max_image_pixels()
    if limit is not None and int.from_bytes(data[16:20], "big") * int.from_bytes(data[20:24], "big") > limit:
        return False
    view = memoryview(data)
    pos, has_image = 8, False
    while pos + 12 <= len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        end = pos + 8 + n
        if kind == b"tRNS" or end + 4 > len(data):  # tRNS: OpenCV reads it as an alpha channel
            return False
        if not (kind.isalpha() and kind.isascii() and kind[2:3].isupper()):  # libpng refuses it
            return False
        if zlib.crc32(view[pos + 4:end]) != int.from_bytes(data[end:end + 4], "big"):
            return False
        has_image |= kind == b"IDAT"
        if kind == b"IEND":
            return has_image
        pos = end + 4
    return False


def _decode_spng(data: bytes) -> np.ndarray | None:
    """libspng's (``pyspng``) decode of a plain 8-bit RGB PNG, or None where it does not apply
    (another layout, no pyspng installed, or bytes it refuses: OpenCV then decodes them, and
    words any error).

    The most common photo file, decoded about 1.5x faster than OpenCV's libpng (a 720p photo:
    10.5 against 15.6 ms), to the same samples: PNG's decoding is exact, and
    ``tests/test_photos.py`` checks the two decoders agree on interlaced files, every row
    filter and ancillary chunks. On the main thread only: pyspng holds the GIL while it
    decodes, OpenCV lets it go, so threads that decode side by side keep OpenCV."""
    if threading.current_thread() is not threading.main_thread() or not _plain_rgb8_png(data):
        return None
    try:
        import pyspng
    except ImportError:  # an optional speed-up: not built for every platform
        return None
    try:
        image = pyspng.load(data, "RGB")
    except Exception:  # noqa: BLE001 - OpenCV reads the file again and says what is wrong
        return None
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:  # pragma: no cover - defensive
        return None
    return image


def _decode_samples(data: bytes, what: str) -> np.ndarray:
    """An image file's samples as stored: (H, W[, C]) uint8 or uint16, channels in RGB(A) order."""
    image = _decode_spng(data)
    if image is not None:
        return image
    import cv2

    # Corrupt files are reported as one BadInputError line; OpenCV's own log lines would
    # only repeat it on stderr.
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # pragma: no cover - OpenCV builds without the logging module
        pass
    buf = np.frombuffer(data, np.uint8)
    with native_noise_quiet():  # libpng prints its own "libpng error:" line on fd 2
        image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise BadInputError(f"{what}: cannot decode image; the file is corrupt or not an image.")
    if image.ndim == 3 and image.shape[2] == 3:
        # cvtColor swaps the channels exactly, several times faster than numpy's strided copy
        # (a 720p photo: 0.5 against 3 ms), and without the GIL.
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.dtype == np.uint8 else image[:, :, ::-1]
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, [2, 1, 0, 3]]
    return image


def load_rgb8(path) -> tuple[np.ndarray, str | None]:
    """Read an image file as uint8 (H, W, 3) RGB.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    image : (H, W, 3) uint8 ndarray
        As displayed: the EXIF orientation is applied.
    note : str or None
        What was converted (grayscale, alpha, 16-bit, EXIF orientation), or None.

    Raises
    ------
    BadInputError
        If the file is missing, empty, truncated, corrupt, of an unsupported layout, or larger
        than :func:`max_image_pixels` (refused from its header, before decoding).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such file; expected an image file.") from None
    except IsADirectoryError:
        raise BadInputError(f"{path}: is a directory; expected an image file.") from None
    if not data:
        raise BadInputError(f"{path}: empty file; expected an image.")
    header = _header_or_none(data, str(path))
    if _truncated(data):
        raise _truncated_error(path)
    image, note = to_rgb8(_decode_samples(data, str(path)), what=str(path))
    return _oriented(image, _png_note(data, note), header)


def _png_note(data: bytes, note: str | None) -> str | None:
    """The conversion note, completed for PNG layouts OpenCV expands before we see them.

    OpenCV reads gray+alpha PNGs as four channels and palette PNGs as three,
    so ``to_rgb8`` alone would call the first only "alpha dropped" and the
    second not converted at all.
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 26 or data[12:16] != b"IHDR":
        return note
    colour_type = data[25]
    if colour_type == 4 and note is not None and note.endswith("alpha dropped"):
        return note[: -len("alpha dropped")] + "grayscale replicated to RGB, alpha dropped"
    if colour_type == 3:
        return "; ".join(["palette expanded to RGB"] + ([note] if note else []))
    return note


def decode_image(data: bytes, *, what: str = "image bytes") -> np.ndarray:
    """Decode PNG/JPEG/... bytes to uint8 (H, W, 3) RGB (no conversion notes), EXIF orientation
    applied; images larger than :func:`max_image_pixels` are refused before decoding."""
    header = _header_or_none(data, what)
    return _oriented(to_rgb8(_decode_samples(data, what), what=what)[0], None, header)[0]


def encode_png(image: np.ndarray, level: int | None = None) -> bytes:
    """Encode a uint8 (H, W, 3) RGB image as PNG bytes.

    Parameters
    ----------
    image : (H, W, 3) uint8 ndarray
    level : int or None
        None (default) uses the fast fpng encoder (a standard PNG, about ten
        times faster than zlib level 1); 0-9 uses OpenCV's zlib at that level
        (smaller files, slower).

    Returns
    -------
    png : bytes

    Examples
    --------
    >>> png = encode_png(np.zeros((2, 3, 3), np.uint8))
    >>> png[:4] == b"\\x89PNG"
    True
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be uint8 (H, W, 3); got {image.dtype} {image.shape}. Convert with to_rgb8."
        )
    image = np.ascontiguousarray(image)
    if level is None:
        import fpng

        return bytes(fpng.from_ndarray(image))
    import cv2

    ok, buf = cv2.imencode(".png", image[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, int(level)])
    if not ok:  # pragma: no cover - OpenCV failure
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def save_rgb8(path, image: np.ndarray, *, option: str | None = None) -> None:
    """Write a uint8 (H, W, 3) RGB or (H, W) gray image; the format follows the suffix (atomic).

    ``option``, for a command's one output image (``preview --out``), names ``path`` in
    messages; the image is then written by :func:`blursynth.dataset.outputs.write_output_file`,
    which also removes what a killed write of it left. Without it, the caller locks the folder.
    """
    import cv2

    path = Path(path)
    suffix = path.suffix.lower()
    gray = image.ndim == 2
    if suffix == ".png" and not gray:
        data = encode_png(image, level=3)
    elif suffix in (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"):
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3] if suffix == ".png" else []
        ok, buf = cv2.imencode(suffix, np.ascontiguousarray(image if gray else image[:, :, ::-1]), params)
        data = buf.tobytes()
    else:
        raise BadInputError(
            f"{path}: cannot write images with suffix {suffix or '(none)'!r}; use .png (or .jpg, .webp, .tif)."
        )
    if path.exists() and path.is_dir():
        raise BadInputError(f"{path}: is a folder; expected an image file name.")
    from ..dataset.outputs import atomic_write_bytes, write_output_file

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if option is None:
            atomic_write_bytes(path, data)
        else:
            write_output_file(path, data, option=option)
    except OSError as exc:
        blocker = next((a for a in path.parents if a.exists()), None)
        why = f"{blocker} is a file, not a folder" if blocker is not None and not blocker.is_dir() else exc.strerror or exc
        raise BadInputError(f"{path}: cannot write there ({why}); choose a location you can write to.") from None



# ---------------------------------------------------------------------------------------------
# headers and photo folders


#: EXIF's orientation tag (1: as stored; 2-8: mirrored and/or rotated for display).
_ORIENTATION_TAG = 0x0112


def max_image_pixels() -> int | None:
    """The most pixels an image may have for blursynth to decode it (None: no limit).

    One limit for every command and every decoder (OpenCV's included), checked from the header
    before anything is decoded, so a small file that claims a huge size (a decompression bomb)
    is refused in one line instead of exhausting memory. It is PIL's own error threshold, twice
    ``PIL.Image.MAX_IMAGE_PIXELS`` (178,956,970 pixels, about 13377x13377, by default); a
    library user raises it there.
    """
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * int(limit)


def _too_large(what, size: str, limit: int) -> BadInputError:
    return BadInputError(
        f"{what}: {size} pixels is more than the {limit:,} pixels blursynth decodes (a guard "
        "against decompression bombs); scale the image down first."
    )


@dataclass(frozen=True)
class _Header:
    height: int  # as displayed, the orientation applied
    width: int
    mode: str
    orientation: int
    decoder_orients: bool  # OpenCV turns a TIFF itself, whatever the flags


def _exif_orientation(im) -> int:
    """The EXIF orientation (1-8) of an open PIL image; 1 where there is none or it is unreadable.

    Only the EXIF tag, as OpenCV reads it (PIL's ``getexif`` would also take XMP's, and for a PNG
    decode the whole image to look for a late eXIf chunk).
    """
    from PIL import Image

    try:
        if im.format == "TIFF":
            value = im.tag_v2.get(_ORIENTATION_TAG, 1)
        else:
            raw = im.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
            value = exif.get(_ORIENTATION_TAG, 1)
        value = int(value)
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


def _header(source, what) -> _Header:
    """Read ``source``'s header with PIL and check its size against :func:`max_image_pixels`.

    Raises BadInputError for an image over the limit, and whatever PIL raises for a file it
    cannot read.
    """
    from PIL import Image

    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    limit = max_image_pixels()
    try:
        with warnings.catch_warnings():
            # PIL warns from half its error threshold; the limit here is that threshold.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(source)
    except Image.DecompressionBombError as exc:
        # PIL's check is the limit (max_image_pixels); its message holds the count, not the size.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_large(what, f"{int(found[1]):,}" if found else "more", limit) from None
    with im:
        w, h = im.size
        orientation = _exif_orientation(im)
        tiff = im.format == "TIFF"
        if orientation >= 5 and not tiff:  # a quarter turn; PIL gives a TIFF's size turned already
            w, h = h, w
        return _Header(int(h), int(w), im.mode, orientation, tiff)


def _header_or_none(data: bytes, what) -> _Header | None:
    """:func:`_header` of bytes about to be decoded; None where PIL cannot read the format
    (OpenCV may; its own limit of 2**30 pixels then applies)."""
    try:
        return _header(data, what)
    except BadInputError:
        raise
    except Exception:
        return None


def _orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 2-8 to an (H, W[, C]) array, as stored -> as displayed."""
    t = image.swapaxes(0, 1) if orientation >= 5 else image
    rows, cols = {2: (1, -1), 3: (-1, -1), 4: (-1, 1), 5: (1, 1), 6: (1, -1), 7: (-1, -1),
                  8: (-1, 1)}.get(orientation, (1, 1))
    return t[::rows, ::cols]


def _oriented(image, note, header):
    """``image`` and ``note`` with the header's EXIF orientation applied and noted."""
    if header is None or header.orientation == 1:
        return image, note
    if not header.decoder_orients:
        image = np.ascontiguousarray(_orient(image, header.orientation))
    applied = f"EXIF orientation {header.orientation} applied"
    return image, (f"{note}; {applied}" if note else applied)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _jpeg_scan_start(data: bytes) -> int | None:
    """Offset of a JPEG's first start-of-scan marker (past the EXIF block and its thumbnail)."""
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0xDA:
            return pos
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return None


def _truncated(data: bytes) -> bool:
    """Whether PNG or JPEG bytes stop before their image does (other formats: the decoder says).

    A PNG must reach its IEND chunk, a JPEG an end-of-image marker after its first scan; data
    after that (a phone's motion-photo trailer) is allowed. PIL reads such a file's header and
    OpenCV may fail on it only when the pixels are decoded, which would skip the photo in the
    middle of a run instead of when it is planned.
    """
    if data[:8] == _PNG_SIGNATURE:
        if data[-12:] == _PNG_END:
            return False
        pos = 8
        while pos + 8 <= len(data):
            if data[pos + 4:pos + 8] == b"IEND":
                return False
            pos += 12 + int.from_bytes(data[pos:pos + 4], "big")
        return True
    if data[:2] == b"\xff\xd8":
        if data[-2:] == b"\xff\xd9":
            return False
        sos = _jpeg_scan_start(data)
        return sos is None or data.find(b"\xff\xd9", sos) < 0
    return False


def _file_truncated(path) -> bool:
    """:func:`_truncated` of a file, reading only its ends where they show it is complete."""
    with open(path, "rb") as f:
        head = f.read(8)
        if head != _PNG_SIGNATURE and head[:2] != b"\xff\xd8":
            return False
        f.seek(0, os.SEEK_END)
        size = f.tell()
        tail = 12 if head == _PNG_SIGNATURE else 2
        f.seek(max(0, size - tail))
        if f.read(tail) == (_PNG_END if head == _PNG_SIGNATURE else b"\xff\xd9"):
            return False
        f.seek(0)
        return _truncated(f.read())


def _truncated_error(what) -> BadInputError:
    return BadInputError(f"{what}: the file is truncated (it ends before its image does); copy it "
                         "again or remove it.")


#: PIL modes of single-channel images (with or without alpha).
GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def read_header(source) -> tuple[int, int, str]:
    """(height, width, PIL mode) of an image file or encoded bytes, from its header alone.

    The size is as displayed (EXIF orientation applied), as :func:`load_rgb8` decodes it.

    Raises
    ------
    BadInputError
        The image is larger than :func:`max_image_pixels`, or the file is a truncated PNG or
        JPEG.
    Exception
        Whatever PIL raises for a file it cannot read; callers word their own message.

    Examples
    --------
    >>> read_header(encode_png(np.zeros((4, 5, 3), np.uint8)))
    (4, 5, 'RGB')
    """
    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    what = "image bytes" if is_bytes else str(source)
    header = _header(source, what)
    if _truncated(bytes(source)) if is_bytes else _file_truncated(source):
        raise _truncated_error(what)
    return header.height, header.width, header.mode


def header_size(source, *, decode: bool = False) -> tuple[int, int] | None:
    """(height, width) of an image file or encoded bytes, as displayed, or None where it cannot
    be read (or is too large, or truncated: :func:`read_header`).

    ``decode``: where PIL cannot read the header (it lacks some formats OpenCV reads), try a
    full decode before giving up.
    """
    try:
        return read_header(source)[:2]
    except BadInputError:
        return None
    except Exception:
        if not decode:
            return None
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            return decode_image(bytes(source)).shape[:2]
        return load_rgb8(source)[0].shape[:2]
    except Exception:
        return None


def photo_path(root, rel) -> Path:
    """The file of photo ``rel`` under PHOTOS ``root`` (a folder, or one image file)."""
    root = Path(root)
    return root / rel if root.is_dir() else root


@dataclass(frozen=True)
class PhotoPlan:
    """The readable photos of a PHOTOS folder (or file), in index order.

    Attributes
    ----------
    root : str
        The folder (or single image file) as given.
    files : tuple of str
        Photos relative to ``root`` (the file's name when ``root`` is a file).
    sizes : tuple of (int, int)
        (height, width) of each as displayed, from its header.
    skipped : tuple of str
        Files whose header could not be read, or that are truncated or too large (never with
        ``strict``, which raises instead).
    reasons : tuple of str
        Why each of ``skipped`` was skipped: one line naming the file.
    small : tuple of str
        Photos left out as smaller than the run needs, as ``"name (HxW)"`` (a way of making
        pairs fills this in; never with ``strict``).
    small_need : str
        What they are smaller than, e.g. ``"64x64 (--crop 64x64)"``.
    """

    root: str
    files: tuple = ()
    sizes: tuple = ()
    skipped: tuple = ()
    reasons: tuple = ()
    small: tuple = ()
    small_need: str = ""

    def path(self, i: int) -> Path:
        return photo_path(self.root, self.files[i])

    def left_out(self, strict: str = "--strict") -> list:
        """One warning line for each unreadable file and one for the photos too small for the run
        (``strict``: how the caller's user asks to refuse them instead).

        Examples
        --------
        >>> PhotoPlan("p", files=("a.png",), small=("b.png (8x8)",), small_need="16x16 (--crop 16x16)").left_out()
        ['1 of 2 photos are smaller than 16x16 (--crop 16x16) and are skipped: b.png (8x8) (--strict refuses them instead)']
        """
        lines = [f"{why}; skipped" for why in self.reasons]
        if self.small:
            n = len(self.small)
            shown = ", ".join(self.small[:3]) + (f" and {n - 3} more" if n > 3 else "")
            lines.append(f"{n} of {n + len(self.files)} photos are smaller than {self.small_need} and "
                         f"are skipped: {shown} ({strict} refuses them instead)")
        return lines

    def digest(self) -> str:
        """Of the photos' names and file sizes (part of a run's fingerprint)."""
        h = hashlib.sha256()
        for i, rel in enumerate(self.files):
            h.update(f"{rel}\0{self.path(i).stat().st_size}\n".encode())
        return h.hexdigest()[:16]


def _photo_size(path) -> tuple[tuple[int, int] | None, str | None]:
    """((height, width), None) of a photo as displayed, or (None, why it cannot be used)."""
    try:
        return read_header(path)[:2], None
    except BadInputError as exc:
        return None, str(exc).rstrip(".")
    except Exception:
        pass
    size = header_size(path, decode=True)  # formats PIL lacks
    if size is None:
        return None, f"{path}: cannot read this image (corrupt or not an image)"
    return size, None


def scan_photos(photos, *, strict: bool = False, exclude=()) -> PhotoPlan:
    """List the photos under ``photos`` and read every header up front, so a bad file stops
    nothing halfway.

    Parameters
    ----------
    photos : str or Path
        A folder of photos (searched recursively) or one image file.
    strict : bool
        Refuse the first unreadable, truncated or too large file instead of skipping it.
    exclude : str, Path or sequence of them
        Folders not searched (the command's ``--out``: :func:`list_images`).

    Raises
    ------
    BadInputError
        ``photos`` is missing or holds no readable image; with ``strict``, any unreadable one.
    """
    root = Path(photos)
    if not root.exists():
        raise BadInputError(f"{photos}: no such file or directory; expected a folder of sharp photos.")
    paths = list_images(root, exclude=exclude)
    if not paths:
        raise BadInputError(
            f"{photos}: no photos found (looked recursively for .png, .jpg, .jpeg, .tif, .tiff, "
            ".webp, .bmp); point PHOTOS at a folder of sharp images."
        )
    files, sizes, skipped, reasons = [], [], [], []
    for p in paths:
        rel = p.relative_to(root).as_posix() if root.is_dir() else p.name
        try:
            rel.encode("utf-8")
            size, why = _photo_size(p)
        except UnicodeEncodeError:  # a name from another encoding: rows record names as UTF-8 text
            size, why = None, (f"{ascii(str(p))[1:-1]}: its name is not valid UTF-8, which a dataset "
                               "records photo names in; rename it")
        if size is None:
            if strict:
                fix = "remove it or " if why.endswith("(corrupt or not an image)") else ""
                raise BadInputError(f"{why}; {fix}drop --strict to skip unreadable photos.")
            skipped.append(str(p))
            reasons.append(why)
            continue
        files.append(rel)
        sizes.append(size)
    if not files:
        raise BadInputError(f"{photos}: none of the {len(paths)} image files could be read; "
                            f"{reasons[0]}.")
    return PhotoPlan(str(photos), tuple(files), tuple(sizes), tuple(skipped), tuple(reasons))
