"""Image files and PNG bytes at the I/O edge (uint8 (H, W, 3) RGB), image headers and photo folders."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")


def list_images(folder) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted by relative path.

    Parameters
    ----------
    folder : str or Path
        A directory, or a single image file (returned alone).

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
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
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


def _decode_cv2(data: bytes, what: str) -> np.ndarray:
    import cv2

    # Corrupt files are reported as one BadInputError line; OpenCV's own log lines would
    # only repeat it on stderr.
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # pragma: no cover - OpenCV builds without the logging module
        pass
    buf = np.frombuffer(data, np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise BadInputError(f"{what}: cannot decode image; the file is corrupt or not an image.")
    if image.ndim == 3 and image.shape[2] == 3:
        image = image[:, :, ::-1]
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
    note : str or None
        What was converted (grayscale, alpha, 16-bit), or None.

    Raises
    ------
    BadInputError
        If the file is missing, empty, corrupt or of an unsupported layout.
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
    image, note = to_rgb8(_decode_cv2(data, str(path)), what=str(path))
    return image, _png_note(data, note)


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
    """Decode PNG/JPEG/... bytes to uint8 (H, W, 3) RGB (no conversion notes)."""
    return to_rgb8(_decode_cv2(data, what), what=what)[0]


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


def save_rgb8(path, image: np.ndarray) -> None:
    """Write a uint8 (H, W, 3) RGB image; the format follows the suffix (atomic)."""
    import cv2

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        data = encode_png(image, level=3)
    elif suffix in (".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"):
        ok, buf = cv2.imencode(suffix, np.ascontiguousarray(image[:, :, ::-1]))
        data = buf.tobytes()
    else:
        raise BadInputError(
            f"{path}: cannot write images with suffix {suffix or '(none)'!r}; use .png (or .jpg, .webp, .tif)."
        )
    if path.exists() and path.is_dir():
        raise BadInputError(f"{path}: is a folder; expected an image file name.")
    from ..dataset.outputs import atomic_write_bytes

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except OSError as exc:
        blocker = next((a for a in path.parents if a.exists()), None)
        why = f"{blocker} is a file, not a folder" if blocker is not None and not blocker.is_dir() else exc.strerror or exc
        raise BadInputError(f"{path}: cannot write there ({why}); choose a location you can write to.") from None



# ---------------------------------------------------------------------------------------------
# headers and photo folders


def read_header(source) -> tuple[int, int, str]:
    """(height, width, PIL mode) of an image file or encoded bytes, from its header alone.

    Raises
    ------
    Exception
        Whatever PIL raises for a file it cannot read; callers word their own message.

    Examples
    --------
    >>> read_header(encode_png(np.zeros((4, 5, 3), np.uint8)))
    (4, 5, 'RGB')
    """
    from PIL import Image

    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    with Image.open(source) as im:
        w, h = im.size
        return int(h), int(w), im.mode


def header_size(source, *, decode: bool = False) -> tuple[int, int] | None:
    """(height, width) of an image file or encoded bytes, or None where it cannot be read.

    ``decode``: where PIL cannot read the header (it lacks some formats OpenCV reads), try a
    full decode before giving up.
    """
    try:
        return read_header(source)[:2]
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
        (height, width) of each, from its header.
    skipped : tuple of str
        Files whose header could not be read (never with ``strict``, which raises instead).
    """

    root: str
    files: tuple = ()
    sizes: tuple = ()
    skipped: tuple = ()

    def path(self, i: int) -> Path:
        return photo_path(self.root, self.files[i])

    def digest(self) -> str:
        """Of the photos' names and file sizes (part of a run's fingerprint)."""
        h = hashlib.sha256()
        for i, rel in enumerate(self.files):
            h.update(f"{rel}\0{self.path(i).stat().st_size}\n".encode())
        return h.hexdigest()[:16]


def scan_photos(photos, *, strict: bool = False) -> PhotoPlan:
    """List the photos under ``photos`` and read every header up front, so a bad file stops
    nothing halfway.

    Raises
    ------
    BadInputError
        ``photos`` is missing or holds no readable image; with ``strict``, any unreadable one.
    """
    root = Path(photos)
    if not root.exists():
        raise BadInputError(f"{photos}: no such file or directory; expected a folder of sharp photos.")
    paths = list_images(root)
    if not paths:
        raise BadInputError(
            f"{photos}: no photos found (looked recursively for .png, .jpg, .jpeg, .tif, .tiff, "
            ".webp, .bmp); point PHOTOS at a folder of sharp images."
        )
    files, sizes, skipped = [], [], []
    for p in paths:
        size = header_size(p, decode=True)
        if size is None:
            if strict:
                raise BadInputError(
                    f"{p}: cannot read this image (corrupt or not an image); remove it or drop "
                    "--strict to skip unreadable files."
                )
            skipped.append(str(p))
            continue
        files.append(p.relative_to(root).as_posix() if root.is_dir() else p.name)
        sizes.append(size)
    if not files:
        raise BadInputError(f"{photos}: none of the {len(paths)} image files could be read.")
    return PhotoPlan(str(photos), tuple(files), tuple(sizes), tuple(skipped))
