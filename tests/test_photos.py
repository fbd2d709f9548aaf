"""Photos at the I/O edge: conversion notes, the one header reader and the one folder scanner."""

from __future__ import annotations

import numpy as np
import pytest

from blursynth.errors import BadInputError
from blursynth.sources.photos import header_size, read_header, save_rgb8, scan_photos


def test_conversion_notes_for_png_layouts_opencv_expands(tmp_path):
    from PIL import Image

    from blursynth.sources.photos import load_rgb8

    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (8, 9), dtype=np.uint8)
    Image.fromarray(np.stack([gray, gray], -1), "LA").save(tmp_path / "la.png")
    Image.fromarray(rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)).convert("P").save(tmp_path / "p.png")
    Image.fromarray(rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)).convert("P").save(
        tmp_path / "pt.png", transparency=0)
    notes = {name: load_rgb8(tmp_path / f"{name}.png")[1] for name in ("la", "p", "pt")}
    assert notes == {"la": "grayscale replicated to RGB, alpha dropped", "p": "palette expanded to RGB",
                     "pt": "palette expanded to RGB; alpha dropped"}
    la, _ = load_rgb8(tmp_path / "la.png")
    assert np.array_equal(la, np.repeat(gray[:, :, None], 3, axis=2))
    # 16-bit gray+alpha (colour type 4, depth 16), written by hand: PIL and OpenCV cannot.
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    pixels = np.stack([gray.astype(">u2") * 257, np.full_like(gray, 9, dtype=">u2")], -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 9, 8, 16, 4, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    (tmp_path / "la16.png").write_bytes(png)
    image, note = load_rgb8(tmp_path / "la16.png")
    assert note == "16-bit scaled to 8-bit; grayscale replicated to RGB, alpha dropped"
    assert np.array_equal(image, np.repeat(gray[:, :, None], 3, axis=2))


def test_headers_of_files_and_bytes_without_decoding(tmp_path):
    from blursynth.sources.photos import encode_png

    image = np.zeros((6, 10, 3), np.uint8)
    save_rgb8(tmp_path / "a.png", image)
    assert read_header(tmp_path / "a.png") == (6, 10, "RGB")
    assert read_header(encode_png(image)) == (6, 10, "RGB")
    assert header_size(tmp_path / "a.png") == header_size(encode_png(image)) == (6, 10)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(Exception):
        read_header(tmp_path / "junk.png")
    assert header_size(tmp_path / "junk.png") is None
    assert header_size(tmp_path / "junk.png", decode=True) is None
    assert header_size(b"not an image", decode=True) is None


def test_scan_photos_lists_reads_headers_and_skips_or_refuses_unreadable_files(tmp_path):
    root = tmp_path / "photos"
    save_rgb8(root / "b.png", np.zeros((5, 7, 3), np.uint8))
    save_rgb8(root / "sub" / "a.jpg", np.zeros((9, 4, 3), np.uint8))
    (root / "bad.png").write_bytes(b"corrupt")
    (root / ".hidden.png").write_bytes(b"not listed")
    (root / "notes.txt").write_text("not an image")
    plan = scan_photos(root)
    assert plan.files == ("b.png", "sub/a.jpg") and plan.sizes == ((5, 7), (9, 4))
    assert plan.skipped == (str(root / "bad.png"),)
    assert plan.path(1) == root / "sub" / "a.jpg"
    # The digest names the files and their sizes: another photo changes it, a rescan does not.
    assert scan_photos(root).digest() == plan.digest()
    save_rgb8(root / "c.png", np.zeros((5, 7, 3), np.uint8))
    assert scan_photos(root).digest() != plan.digest()
    with pytest.raises(BadInputError, match="bad.png: cannot read this image .*drop --strict"):
        scan_photos(root, strict=True)
    one = scan_photos(root / "b.png")
    assert one.files == ("b.png",) and one.path(0) == root / "b.png"


def test_scan_photos_refuses_missing_empty_and_all_unreadable_folders(tmp_path):
    with pytest.raises(BadInputError, match="no such file or directory; expected a folder of sharp photos"):
        scan_photos(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no photos found"):
        scan_photos(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"corrupt")
    with pytest.raises(BadInputError, match="none of the 1 image files could be read"):
        scan_photos(tmp_path / "bad")
