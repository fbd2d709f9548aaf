import json

import cv2
import numpy as np
import pytest

from blursynth.dataset import PairDataset, verify_dataset
from blursynth.pairs.real import rebuild_pair

from .conftest import error_line, write_image as _write

# ``gopro``: tests/conftest.py


def test_import_gopro(gopro, tmp_path, run_cli, photo):
    r = run_cli("dataset", "import", gopro, "--out", tmp_path / "real")
    assert r.code == 0, r.err
    ds = PairDataset(tmp_path / "real")
    assert len(ds) == 4
    first = ds[0]
    assert first["id"] == "train/GOPR0372_07_00/000000" and first["source"] == "real" and first["psf"] is None
    np.testing.assert_array_equal(first["sharp"], photo)
    np.testing.assert_array_equal(first["blurred"], cv2.blur(photo, (7, 1)))
    assert first["params"]["blurred_path"] == "train/GOPR0372_07_00/blur/000000.png"
    assert verify_dataset(tmp_path / "real")["rows"] == 4
    for row in ds:
        blurred, sharp = rebuild_pair(row, gopro)
        np.testing.assert_array_equal(blurred, row["blurred"])
        np.testing.assert_array_equal(sharp, row["sharp"])
    r = run_cli("dataset", "import", gopro, "--out", tmp_path / "g", "--blur-dir", "blur_gamma")
    assert r.code == 0
    np.testing.assert_array_equal(PairDataset(tmp_path / "g")[0]["blurred"], cv2.blur(photo, (5, 1)))


def test_import_flat_and_export_round_trip(tmp_path, run_cli, photo):
    root = tmp_path / "flat"
    for k in range(3):
        _write(root / "sharp" / f"img{k}.png", photo)
        _write(root / "blur" / f"img{k}.png", photo // 2)
    assert run_cli("dataset", "import", root, "--layout", "flat", "--out", tmp_path / "d").code == 0
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x")
    assert r.code == 0
    assert sorted(p.name for p in (tmp_path / "x/blur").iterdir()) == ["img0.png", "img1.png", "img2.png"]
    back = cv2.imread(str(tmp_path / "x/sharp/img1.png"))[:, :, ::-1]
    np.testing.assert_array_equal(back, photo)
    meta = [json.loads(l) for l in (tmp_path / "x/params.jsonl").read_text().splitlines()]
    assert [m["id"] for m in meta] == ["img0", "img1", "img2"]
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x")
    assert r.code == 2 and "exists" in error_line(r)


def test_flat_import_records_no_camera_response(tmp_path, run_cli, photo):
    # A flat folder's blurred images come from anywhere: its folder name says nothing of its curve,
    # even when it is named like one of GoPro's.
    root = tmp_path / "flat"
    for folder in ("sharp", "blur", "blur_gamma"):
        _write(root / folder / "img0.png", photo)
    for n, args in enumerate(((), ("--blur-dir", "blur_gamma"))):
        r = run_cli("dataset", "import", root, "--layout", "flat", "--out", tmp_path / f"d{n}", *args)
        assert r.code == 0, r.err
        manifest = json.loads((tmp_path / f"d{n}" / "manifest.json").read_text())
        assert manifest["camera_response"] is None
        assert manifest["blurred_folder"] == (args[1] if args else "blur")
        assert "crf" not in PairDataset(tmp_path / f"d{n}")[0]["params"]
    r = run_cli("dataset", "import", root, "--layout", "flat", "--out", tmp_path / "x", "--blurred", "blur_gamma")
    assert r.code == 2 and "--blurred blur_gamma names a GoPro blurred folder (--layout gopro)" in error_line(r)
    assert not (tmp_path / "x").exists()


def test_import_config_resolves_the_blurred_folder():
    from blursynth.errors import SettingError
    from blursynth.pairs.real import ImportConfig

    assert ImportConfig().blur_dir == "blur" and ImportConfig(blurred="blur_gamma").blur_dir == "blur_gamma"
    assert ImportConfig(blur_dir="mine").blur_dir == "mine"
    assert ImportConfig(blur_dir="blur_gamma", blurred="blur_gamma").camera_response()["crf"] == "gamma:2.2"
    assert ImportConfig(layout="flat", blur_dir="blur_gamma").camera_response() is None
    for kwargs, words in (({"blurred": "blur", "blur_dir": "blur_gamma"}, "name two folders"),
                          ({"blurred": "blur", "layout": "flat"}, "--layout gopro"),
                          ({"blurred": "gamma"}, "must be one of blur, blur_gamma")):
        with pytest.raises(SettingError, match=words) as caught:
            ImportConfig(**kwargs)
        assert caught.value.field == "blurred"


def test_converted_images_are_noted(tmp_path, run_cli, photo):
    root = tmp_path / "flat"
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    _write(root / "sharp" / "a.png", gray)
    _write(root / "blur" / "a.png", gray)
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    _write(root / "sharp" / "b.png", rgba)
    _write(root / "blur" / "b.png", rgba)
    deep = photo.astype(np.uint16) * 257
    _write(root / "sharp" / "c.png", deep)
    _write(root / "blur" / "c.png", deep)
    assert run_cli("dataset", "import", root, "--layout", "flat", "--out", tmp_path / "d").code == 0
    ds = PairDataset(tmp_path / "d")
    notes = {ds[i]["id"]: ds[i]["params"].get("converted") for i in range(3)}
    assert notes == {"a": "grayscale replicated to RGB", "b": "alpha dropped", "c": "16-bit scaled to 8-bit"}
    np.testing.assert_array_equal(ds[2]["sharp"], photo)  # 16-bit scaling is exact for v*257
    assert np.all(ds[0]["sharp"][:, :, 0] == ds[0]["sharp"][:, :, 2])


def test_no_images(tmp_path, run_cli):
    (tmp_path / "empty/x/blur").mkdir(parents=True)
    (tmp_path / "empty/x/sharp").mkdir(parents=True)
    r = run_cli("dataset", "import", tmp_path / "empty", "--out", tmp_path / "d")
    assert r.code == 2 and "no images" in error_line(r)
    r = run_cli("dataset", "import", tmp_path / "nothing", "--out", tmp_path / "d")
    assert r.code == 2 and "no such folder" in error_line(r)
    (tmp_path / "plain").mkdir()
    r = run_cli("dataset", "import", tmp_path / "plain", "--out", tmp_path / "d")
    assert r.code == 2 and "no paired images" in error_line(r)
    assert not (tmp_path / "d").exists()


def test_mismatched_names_and_sizes(tmp_path, run_cli, photo):
    root = tmp_path / "flat"
    _write(root / "sharp" / "a.png", photo)
    _write(root / "blur" / "a.png", photo)
    _write(root / "blur" / "b.png", photo)
    r = run_cli("dataset", "import", root, "--layout", "flat", "--out", tmp_path / "d")
    assert r.code == 2 and "b.png" in error_line(r) and "no partner" in error_line(r)
    _write(root / "sharp" / "b.png", photo[:50])
    r = run_cli("dataset", "import", root, "--layout", "flat", "--out", tmp_path / "d")
    assert r.code == 2 and "same size" in error_line(r)
    assert "is 96x128 but its sharp partner" in error_line(r) and "is 50x128;" in error_line(r)  # HxW
    assert not (tmp_path / "d").exists()


def test_corrupt_image(tmp_path, run_cli, photo):
    root = tmp_path / "flat"
    _write(root / "sharp" / "a.png", photo)
    (root / "blur").mkdir()
    (root / "blur" / "a.png").write_bytes(b"not a png at all")
    r = run_cli("dataset", "import", root, "--layout", "flat", "--out", tmp_path / "d")
    assert r.code == 2 and "a.png" in error_line(r)
    assert not (tmp_path / "d").exists()


def test_same_folder_from_two_places_gives_same_shards(tmp_path, run_cli, photo):
    import shutil

    root = tmp_path / "a" / "flat"
    _write(root / "sharp" / "x.png", photo)
    _write(root / "blur" / "x.png", photo // 2)
    _write(root / "sharp" / "x.jpg", photo)  # same stem, other file: ids must differ
    _write(root / "blur" / "x.jpg", photo // 3)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert run_cli("dataset", "import", root, "--layout", "flat", "--out", tmp_path / "da").code == 0
    assert run_cli("dataset", "import", tmp_path / "b/flat", "--layout", "flat", "--out", tmp_path / "db").code == 0
    shard = "data/train-00000-of-00001.parquet"
    assert (tmp_path / "da" / shard).read_bytes() == (tmp_path / "db" / shard).read_bytes()
    ids = sorted(PairDataset(tmp_path / "da")[i]["id"] for i in range(2))
    assert ids == ["x.jpg", "x.png"]


def test_import_folder_names_and_unreadable_sharp_partner(tmp_path, run_cli, photo):
    root = tmp_path / "flat"
    _write(root / "sharp" / "a.png", photo)
    _write(root / "blur" / "a.png", photo // 2)
    for opt, value in (("--blur-dir", ""), ("--sharp-dir", ".."), ("--blur-dir", "x/blur")):
        r = run_cli("dataset", "import", root, "--layout", "flat", "--out", tmp_path / "d", opt, value)
        assert r.code == 2 and "expected the name of one folder" in error_line(r)
    (root / "sharp" / "a.png").write_bytes(b"")
    r = run_cli("dataset", "import", root, "--layout", "flat", "--out", tmp_path / "d")
    assert r.code == 2 and error_line(r).startswith(f"error: {root / 'sharp' / 'a.png'}: unreadable image")
    assert not (tmp_path / "d").exists()


def test_exif_orientation_is_applied_before_sizes_are_compared(tmp_path, run_cli, photo):
    from PIL import Image

    root = tmp_path / "flat"
    _write(root / "sharp" / "a.png", np.rot90(photo, -1))  # stored upright
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, as a phone does, with the turn in its EXIF block
    (root / "blur").mkdir()
    Image.fromarray(photo // 2).save(root / "blur" / "a.png", exif=exif)
    r = run_cli("dataset", "import", root, "--layout", "flat", "--out", tmp_path / "d")
    assert r.code == 0, r.err
    row = PairDataset(tmp_path / "d")[0]
    assert np.array_equal(row["blurred"], np.rot90(photo // 2, -1))
    assert np.array_equal(row["sharp"], np.rot90(photo, -1))
    assert row["params"]["converted"] == "EXIF orientation 6 applied"
    # The help says so, in the words the params use.
    r = run_cli("dataset", "import", "--help")
    assert r.code == 0 and "EXIF orientation is applied" in " ".join(r.out.split()), r.out
    assert '"EXIF orientation 6 applied"' in " ".join(r.out.split())


def test_truncated_and_too_large_images_are_refused_in_their_own_words(tmp_path, run_cli, photo):
    from .test_photos import _bomb_png

    root = tmp_path / "flat"
    _write(root / "sharp" / "a.png", photo)
    _write(root / "blur" / "a.png", photo // 2)
    whole = (root / "blur" / "a.png").read_bytes()
    (root / "blur" / "a.png").write_bytes(whole[: len(whole) // 2])
    r = run_cli("dataset", "import", root, "--layout", "flat", "--out", tmp_path / "d")
    assert r.code == 2
    assert error_line(r) == (f"error: {root / 'blur' / 'a.png'}: the file is truncated (it ends before its "
                             "image does); copy it again or remove it.")
    (root / "blur" / "a.png").write_bytes(_bomb_png(20000, 20000))
    r = run_cli("dataset", "import", root, "--layout", "flat", "--out", tmp_path / "d")
    assert r.code == 2 and error_line(r).startswith(
        f"error: {root / 'blur' / 'a.png'}: 400,000,000 pixels is more than the 178,956,970 pixels")
    assert not (tmp_path / "d").exists()


def test_preview_of_captured_pairs_names_no_psf_and_no_added_noise(tmp_path, run_cli, photo):
    from blursynth.dataset.preview import caption_lines
    from blursynth.dataset.reader import PairDataset

    root = tmp_path / "flat"
    _write(root / "sharp" / "a.png", photo)
    _write(root / "blur" / "a.png", photo // 2)
    assert run_cli("dataset", "import", root, "--layout", "flat", "--out", tmp_path / "d").code == 0
    row = PairDataset(tmp_path / "d")[0]
    assert row["psf"] is None
    assert "the camera's own noise" in caption_lines(row)[1]
    r = run_cli("dataset", "export", tmp_path / "d", "--out", str(tmp_path / "x") + "/")
    assert r.code == 0 and "//" not in r.out, r.out
