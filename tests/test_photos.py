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


# --- EXIF orientation, the pixel limit, truncated files, excluded folders ----------------------

def _with_orientation(path, image, orientation, **save):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(image).save(path, exif=exif, **save)


@pytest.mark.parametrize("suffix,save", [(".png", {}), (".jpg", {"quality": 100}),
                                         (".webp", {"lossless": True}), (".tif", {})])
def test_exif_orientation_is_applied_to_pixels_headers_and_noted(tmp_path, suffix, save):
    from PIL import Image, ImageOps

    from blursynth.sources.photos import decode_image, load_rgb8

    image = np.random.default_rng(3).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    for orientation in range(1, 9):
        path = tmp_path / f"o{orientation}{suffix}"
        _with_orientation(path, image, orientation, **save)
        with Image.open(path) as im:  # PIL's own reading of the tag is the reference
            expect = np.asarray(ImageOps.exif_transpose(im).convert("RGB")).astype(int)
        got, note = load_rgb8(path)
        assert got.shape == expect.shape, (orientation, got.shape)
        assert np.abs(got.astype(int) - expect).max() <= (3 if suffix == ".jpg" else 0), orientation
        assert np.array_equal(decode_image(path.read_bytes()), got)
        assert read_header(path)[:2] == header_size(path) == expect.shape[:2]
        assert note == (None if orientation == 1 else f"EXIF orientation {orientation} applied")


def test_orientation_note_follows_the_other_conversions(tmp_path):
    from blursynth.sources.photos import load_rgb8

    gray = np.arange(24, dtype=np.uint8).reshape(4, 6)
    _with_orientation(tmp_path / "g.png", gray, 8)
    image, note = load_rgb8(tmp_path / "g.png")
    assert note == "grayscale replicated to RGB; EXIF orientation 8 applied"
    assert np.array_equal(image[:, :, 0], np.rot90(gray))


def _bomb_png(width, height):
    """A small PNG file whose header claims ``width`` x ``height`` (its data would not decode)."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def test_images_over_the_pixel_limit_are_refused_from_the_header(tmp_path, monkeypatch, recwarn):
    from PIL import Image

    from blursynth.sources import photos

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # the limit is twice PIL's: 200 pixels
    assert photos.max_image_pixels() == 200
    monkeypatch.setattr(photos, "_decode_samples", lambda *a: pytest.fail("decoded a refused image"))
    save_rgb8(tmp_path / "big.png", np.zeros((15, 14, 3), np.uint8))   # 210 pixels
    (tmp_path / "bomb.png").write_bytes(_bomb_png(20000, 20000))
    for name, size in (("big.png", "210"), ("bomb.png", "400,000,000")):
        path = tmp_path / name
        message = f"{path}: {size} pixels is more than the 200 pixels blursynth decodes"
        for read in (photos.read_header, photos.load_rgb8):
            with pytest.raises(BadInputError, match=message):
                read(path)
        with pytest.raises(BadInputError, match=message.replace(str(path), "bytes")):
            photos.decode_image(path.read_bytes(), what="bytes")
    monkeypatch.undo()
    save_rgb8(tmp_path / "ok.png", np.zeros((12, 12, 3), np.uint8))  # under the limit, over PIL's warning
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert photos.read_header(tmp_path / "ok.png") == (12, 12, "RGB")
    assert photos.load_rgb8(tmp_path / "ok.png")[0].shape == (12, 12, 3)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    plan = scan_photos(tmp_path)
    assert plan.files == ("ok.png",)
    assert plan.skipped == (str(tmp_path / "big.png"), str(tmp_path / "bomb.png"))
    assert "more than the 200 pixels" in plan.reasons[1]
    with pytest.raises(BadInputError, match="bomb.png: 400,000,000 pixels is more than"):
        scan_photos(tmp_path / "bomb.png")
    with pytest.raises(BadInputError, match="big.png: 210 pixels is more than .*drop --strict"):
        scan_photos(tmp_path, strict=True)


def test_truncated_png_and_jpeg_are_refused_like_garbage(tmp_path):
    from PIL import Image

    from blursynth.sources.photos import load_rgb8

    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    save_rgb8(tmp_path / "whole.png", image)
    Image.fromarray(image).save(tmp_path / "whole.jpg", quality=90)
    for suffix in (".png", ".jpg"):
        data = (tmp_path / f"whole{suffix}").read_bytes()
        (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) * 2 // 3])
        # Data after the end of the image (a phone's motion-photo trailer) is not truncation.
        (tmp_path / f"trailer{suffix}").write_bytes(data + b"\x00\x01trailer" * 50)
    for suffix in (".png", ".jpg"):
        cut = tmp_path / f"cut{suffix}"
        for read in (read_header, load_rgb8):
            with pytest.raises(BadInputError, match=f"{cut}: the file is truncated"):
                read(cut)
        assert header_size(cut) is None and header_size(cut, decode=True) is None
        assert load_rgb8(tmp_path / f"trailer{suffix}")[0].shape == (40, 50, 3)
        assert read_header(tmp_path / f"trailer{suffix}")[:2] == (40, 50)
    plan = scan_photos(tmp_path)
    assert plan.files == ("trailer.jpg", "trailer.png", "whole.jpg", "whole.png")
    assert plan.skipped == (str(tmp_path / "cut.jpg"), str(tmp_path / "cut.png"))
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes())
    with pytest.raises(BadInputError, match="cut.png: the file is truncated"):
        scan_photos(tmp_path / "only")


def test_list_images_and_scan_leave_out_the_output_folder(tmp_path):
    from blursynth.sources.photos import list_images

    save_rgb8(tmp_path / "a.png", np.zeros((5, 7, 3), np.uint8))
    save_rgb8(tmp_path / "out" / "a.png", np.zeros((5, 7, 3), np.uint8))
    save_rgb8(tmp_path / "outer" / "b.png", np.zeros((5, 7, 3), np.uint8))
    assert list_images(tmp_path, exclude=[tmp_path / "out"]) == [tmp_path / "a.png", tmp_path / "outer" / "b.png"]
    assert len(list_images(tmp_path)) == 3
    # Named any way (relative, through ..), the same folder is left out.
    rel = tmp_path / "outer" / ".." / "out"
    assert scan_photos(tmp_path, exclude=rel).files == ("a.png", "outer/b.png")
    assert scan_photos(tmp_path, exclude=tmp_path / "missing").files == ("a.png", "out/a.png", "outer/b.png")


def _png(pixels, *, filters=(0,), interlace=False, chunks=()):
    """PNG bytes of uint8 (H, W, 3) ``pixels`` written here: each row filtered by ``filters[row % n]``
    (0 none, 1 sub, 2 up, 3 average, 4 Paeth), Adam7 interlaced or not, ``chunks`` (kind, body)
    before the image data."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    def filtered(rows):
        out, prev = [], np.zeros_like(rows[0], dtype=np.int32)
        for r, row in enumerate(rows):
            x = row.astype(np.int32)
            a = np.concatenate([np.zeros(3, np.int32), x[:-3]])  # the byte one pixel left
            c = np.concatenate([np.zeros(3, np.int32), prev[:-3]])
            kind = filters[r % len(filters)]
            if kind == 4:
                p = a + prev - c
                pa, pb, pc = abs(p - a), abs(p - prev), abs(p - c)
                pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, prev, c))
            else:
                pred = [0 * x, a, prev, (a + prev) // 2][kind]
            out.append(bytes([kind]) + ((x - pred) % 256).astype(np.uint8).tobytes())
            prev = x
        return b"".join(out)

    h, w = pixels.shape[:2]
    passes = ([(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
              if interlace else [(0, 0, 1, 1)])
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = pixels[y0::dy, x0::dx]
        if sub.size:
            raw += filtered(sub.reshape(sub.shape[0], -1))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, int(interlace)))
            + b"".join(chunk(k, body) for k, body in chunks)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_the_fast_png_decoder_returns_opencvs_samples(monkeypatch):
    """8-bit RGB PNGs go to libspng, anything else to OpenCV; both give the same samples (PNG's
    decoding is exact), so a photo's pairs do not depend on which decoder is installed."""
    pytest.importorskip("pyspng")
    import cv2
    from PIL import Image

    from blursynth.sources import photos

    def opencv(data):
        return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)

    rng = np.random.default_rng(3)
    # Noise and a smooth ramp (filters predict it well), odd sizes (partial Adam7 blocks).
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    image[:18] = (np.arange(53)[None, :, None] * 4 + np.arange(18)[:, None, None] * 3 + [0, 40, 90]) % 256
    gamma = (b"gAMA", (100000).to_bytes(4, "big"))  # gamma 1: values would change if applied
    sbit = (b"sBIT", bytes([5, 6, 5]))  # 5/6/5 significant bits: would change values if applied
    files = {
        "no filter": _png(image),
        "every filter": _png(image, filters=(0, 1, 2, 3, 4)),
        "interlaced": _png(image, filters=(4, 3, 1), interlace=True),
        "gamma, sBIT and text": _png(image, filters=(2,), chunks=[gamma, sbit, (b"tEXt", b"k\x00v")]),
        "OpenCV": cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))[1].tobytes(),
        "fpng (blursynth's own)": photos.encode_png(image),
        "zlib level 9": photos.encode_png(image, level=9),
    }
    import io

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG", optimize=True)
    files["PIL"] = buf.getvalue()
    for name, data in files.items():
        fast = photos._decode_spng(data)
        assert fast is not None, name
        assert np.array_equal(fast, image), name
        assert np.array_equal(fast, opencv(data)), name
        assert np.array_equal(photos.decode_image(data), image), name
    # Layouts OpenCV converts (or reads with an alpha channel) are left to it.
    tr = _png(image, chunks=[(b"tRNS", bytes(6))])
    assert photos._decode_spng(tr) is None and photos._decode_samples(tr, "t").shape == (37, 53, 4)
    gray = cv2.imencode(".png", image[:, :, 0])[1].tobytes()
    assert photos._decode_spng(gray) is None
    assert photos._decode_spng(cv2.imencode(".jpg", image)[1].tobytes()) is None
    # A damaged file (a chunk's CRC fails: libspng would decode it to wrong pixels) is OpenCV's
    # to refuse, in its words; so is a chunk name libpng refuses (the third letter lower-case).
    plain = files["no filter"]
    for offset in (60, -20, -14):  # in the image data, in its zlib checksum, in the chunk's CRC
        broken = bytearray(plain)
        broken[offset] ^= 0xFF
        assert photos._decode_spng(bytes(broken)) is None
        with pytest.raises(BadInputError, match="cannot decode"):
            photos.decode_image(bytes(broken))
    # Not checked (it would mean inflating twice): the zlib stream's Adler-32 alone wrong, its
    # chunk's CRC right, as only a faulty encoder writes it; libspng decodes the rows as written.
    import struct
    import zlib

    at = plain.index(b"IDAT") + 4
    n = int.from_bytes(plain[at - 8:at - 4], "big")
    body = bytearray(plain[at:at + n])
    body[-1] ^= 0xFF
    adler = plain[:at] + bytes(body) + struct.pack(">I", zlib.crc32(b"IDAT" + bytes(body))) + plain[at + n + 4:]
    assert np.array_equal(photos.decode_image(adler), image)
    reserved = _png(image, chunks=[(b"abcd", b"x")])
    assert photos._decode_spng(reserved) is None
    with pytest.raises(BadInputError, match="cannot decode"):
        photos.decode_image(reserved)
    # An image over the pixel limit is not libspng's (the header check may not have read it).
    import PIL.Image

    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 37 * 53 // 2 - 1)
    assert photos._decode_spng(plain) is None
    monkeypatch.undo()
    assert photos._decode_spng(plain) is not None
    # Off the main thread OpenCV decodes (pyspng holds the GIL; OpenCV lets decoding threads
    # run side by side): the same samples.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(photos._decode_spng, plain).result() is None
        assert np.array_equal(pool.submit(photos.decode_image, plain).result(), image)


def test_import_codecs_loads_every_codec_a_pool_process_would_import_on_its_first_pair():
    # A writer calls it before forking its pool, whose processes then start with them loaded.
    import subprocess
    import sys

    script = """
import sys
from blursynth.pairs.photos import import_codecs
mods = ("cv2", "fpng", "PIL.JpegImagePlugin")
print(*[m in sys.modules for m in mods])
import_codecs()
print(*[m in sys.modules for m in mods])
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["False False False", "True True True"]


@pytest.mark.parametrize("workers", [1, 2])
def test_write_photo_pairs_imports_codecs_before_a_pool_and_ends_on_whole_photos(photos, tmp_path, monkeypatch,
                                                                                workers):
    from blursynth.dataset import writer
    from blursynth.pairs import photos as pairs_photos
    from blursynth.sources.photos import scan_photos

    calls, asked = [], {}
    monkeypatch.setattr(pairs_photos, "import_codecs", lambda: calls.append("codecs"))

    def record(out, **kw):
        asked.update(kw)
        return {"planned_items": kw["n_items"], "num_rows": kw["n_items"]}

    monkeypatch.setattr(writer, "write_dataset", record)
    plan = scan_photos(photos)
    pairs_photos.write_photo_pairs(tmp_path / "out", plan, per_image=3, recipe={}, inputs={}, make_job=str,
                                   rows=print, shard_size=64, workers=workers, overwrite=False, progress=False,
                                   desc="t", chunk_pairs=4)
    assert calls == (["codecs"] if workers > 1 else [])
    # Chunks of whole photos, the last ones a photo each (photo_unit), so no process waits on a
    # long last chunk of the other's.
    assert (asked["chunk_size"], asked["tail_chunk_size"]) == (6, 3)
