"""``blursynth blur`` through ``blursynth.cli.main``: a run, and every bad input of the issue
(one-line error, exit 2, nothing written)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import error_line


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import cv2
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(folder / "rocket.png"), data.rocket()[::8, ::8, ::-1])  # 54x80
    cv2.imwrite(str(folder / "chelsea.png"), data.chelsea()[::6, ::6, ::-1])  # 50x76
    return folder


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    from blursynth.kernelbank import KernelBankConfig, write_kernel_bank
    from blursynth.ops.trajectory import TrajectoryConfig

    path = tmp_path_factory.mktemp("bank") / "bank"
    write_kernel_bank(path, KernelBankConfig(n=8, canvas=12, exposures=(0.1, 1.0),
                                             trajectory=TrajectoryConfig(n_samples=200, length_px=8.0)),
                      progress=False)
    return path


def test_blur_command_writes_pairs(run_cli, photos, bank, tmp_path):
    out = tmp_path / "pairs"
    r = run_cli("blur", photos, "--kernels", bank, "--out", out, "--per-image", "2",
                "--crop", "32x40", "--exposure", "1", "--noise", "0.001", "--jpeg", "90")
    assert r.code == 0, r.err
    assert "wrote 4 rows" in r.out
    from blursynth.dataset import PairDataset, verify_dataset

    assert verify_dataset(out)["rows"] == 4
    row = PairDataset(out)[3]
    assert row["blurred"].shape == (32, 40, 3) and row["params"]["exposure"] == 1.0
    assert row["params"]["jpeg_quality"] == 90 and row["params"]["shot_noise"] == 0.001
    # A rerun of the same command resumes (nothing to do), keeps the bytes and says so.
    before = (out / "manifest.json").read_text()
    r = run_cli("blur", photos, "--kernels", bank, "--out", out, "--per-image", "2",
                "--crop", "32x40", "--exposure", "1", "--noise", "0.001", "--jpeg", "90")
    assert r.code == 0 and (out / "manifest.json").read_text() == before
    assert r.out.startswith(f"nothing to do: {out} already holds its 4 rows in 1 shard(s), written by an earlier run")


def test_a_resumed_run_says_which_rows_it_wrote(run_cli, photos, bank, tmp_path):
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(photos, folder)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    out = tmp_path / "pairs"
    args = ("blur", folder, "--kernels", bank, "--out", out, "--per-image", "2", "--shard-size", "2")
    assert "wrote 4 rows in 2 shard(s)" in run_cli(*args).out
    (out / "data" / "train-00001-of-00002.parquet").unlink()  # as if the run had stopped there
    r = run_cli(*args)
    assert r.code == 0, r.err
    assert f"wrote 2 of 4 rows (1 of 2 shards) to {out}; an earlier run of this command wrote the rest" in r.out
    assert "skipped 1 unreadable photo(s); see the warnings above, or an earlier run's" in r.err


def test_a_resume_whose_kept_shards_hold_no_rows_says_it_resumed(run_cli, bank, tmp_path):
    # Whether a run resumed is a matter of shards: a kept shard may hold no row (its photo's
    # pixels do not decode), and then the row counts alone read as a fresh run.
    from blursynth.sources.photos import save_rgb8

    folder = tmp_path / "photos"
    folder.mkdir()
    save_rgb8(folder / "b.png", np.full((24, 32, 3), 90, np.uint8))
    save_rgb8(tmp_path / "a.png", np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    data = bytearray((tmp_path / "a.png").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "a_bad.png").write_bytes(bytes(data))  # its header reads, its pixels do not
    out = tmp_path / "pairs"
    args = ("blur", folder, "--kernels", bank, "--out", out, "--per-image", "2", "--shard-size", "2")
    assert "wrote 2 rows in 2 shard(s)" in run_cli(*args).out
    (out / "data" / "train-00001-of-00002.parquet").unlink()
    r = run_cli(*args)
    assert r.code == 0, r.err
    assert f"wrote 2 of 2 rows (1 of 2 shards) to {out}; an earlier run of this command wrote the rest" in r.out
    assert "see the warnings above, or an earlier run's" in r.err
    r = run_cli(*args)  # and a dataset of no rows at all, run again
    assert r.out.startswith(f"nothing to do: {out} already holds its 2 rows")



def assert_bad(run_cli, out, *args, match):
    r = run_cli("blur", *args, "--out", out)
    assert r.code == 2, r
    line = error_line(r)
    assert match in line, line
    assert not out.exists(), "a failed run must leave nothing behind"
    return line


def test_empty_photo_folder(run_cli, bank, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    assert_bad(run_cli, tmp_path / "out", tmp_path / "empty", "--kernels", bank, match="no photos found")


def test_missing_photo_folder(run_cli, bank, tmp_path):
    assert_bad(run_cli, tmp_path / "out", tmp_path / "nope", "--kernels", bank, match="no such file")


def test_corrupt_photo_is_skipped_with_a_warning(run_cli, photos, bank, tmp_path):
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(photos, folder)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    good = (folder / "rocket.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 3])
    r = run_cli("blur", folder, "--kernels", bank, "--out", tmp_path / "out")
    assert r.code == 0, r.err
    assert "broken.png" in r.err and "truncated.png" in r.err
    assert "skipped 2 unreadable photo(s)" in r.err
    assert "wrote 2 rows" in r.out


@pytest.mark.parametrize("workers", [1, 2])
def test_a_photo_that_fails_to_decode_is_skipped_and_the_bar_ends_at_its_total(run_cli, photos, bank, tmp_path,
                                                                               workers):
    # Its header and end read when the run is planned; its pixels do not (a byte of its image
    # data flipped): its pairs are skipped when rendered, and count as done for the bar.
    import re
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(photos, folder)
    data = bytearray((folder / "rocket.png").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "damaged.png").write_bytes(bytes(data))
    r = run_cli("blur", folder, "--kernels", bank, "--out", tmp_path / "out", "--per-image", "2",
                "--workers", workers)
    assert r.code == 0, r.err
    assert "skipped 1 unreadable photo(s)" in r.err
    if workers == 1:  # a pool process's warning goes to the terminal, past capsys
        assert "damaged.png" in r.err
    assert "wrote 4 rows" in r.out
    counts = re.findall(r"(\d+)/(\d+) \[", r.err)
    assert counts and counts[-1] == ("6", "6"), r.err


@pytest.mark.parametrize("bad_name,content", [
    ("broken.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 20),
    ("truncated.png", None),
])
def test_corrupt_photo_with_strict_stops(run_cli, photos, bank, tmp_path, bad_name, content):
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(photos, folder)
    if content is None:
        good = (folder / "rocket.png").read_bytes()
        content = good[: len(good) // 3]
    (folder / bad_name).write_bytes(content)
    line = assert_bad(run_cli, tmp_path / "out", folder, "--kernels", bank, "--strict", match=bad_name)
    assert "--strict" in line


def test_psf_larger_than_image(run_cli, bank, tmp_path):
    import cv2

    (tmp_path / "small").mkdir()
    cv2.imwrite(str(tmp_path / "small" / "tiny.png"), np.zeros((8, 9, 3), np.uint8))
    line = assert_bad(run_cli, tmp_path / "out", tmp_path / "small", "--kernels", bank,
                      match="PSF is larger than the image")
    assert "tiny.png is 8x9" in line


def test_crop_larger_than_photo(run_cli, photos, bank, tmp_path):
    assert_bad(run_cli, tmp_path / "out", photos, "--kernels", bank, "--crop", "64x64",
               match="smaller than 64x64")


@pytest.mark.parametrize("crf", ["log", "gamma:x", "gamma:0.2"])
def test_unknown_crf(run_cli, photos, bank, tmp_path, crf):
    assert_bad(run_cli, tmp_path / "out", photos, "--kernels", bank, "--crf", crf, match="gamma")


@pytest.mark.parametrize("opt,value,match", [
    ("--noise", "0.5", "shot noise"), ("--noise", "0.001,1", "read noise"),
    ("--noise", "-1", "shot noise"), ("--jpeg", "0-90", "jpeg quality"),
    ("--jpeg", "90-120", "jpeg quality"), ("--jpeg", "high", "jpeg quality"),
    ("--saturation", "0.5", "saturation"),
])
def test_degradation_ranges_out_of_bounds(run_cli, photos, bank, tmp_path, opt, value, match):
    assert_bad(run_cli, tmp_path / "out", photos, "--kernels", bank, opt, value, match=match)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_device_cuda_without_gpu(run_cli, photos, bank, tmp_path):
    assert_bad(run_cli, tmp_path / "out", photos, "--kernels", bank, "--device", "cuda",
               match="no CUDA GPU")


def test_bank_failing_verification(run_cli, photos, bank, tmp_path):
    import shutil

    broken = tmp_path / "bank"
    shutil.copytree(bank, broken)
    shard = next((broken / "data").glob("*.parquet"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert_bad(run_cli, tmp_path / "out", photos, "--kernels", broken, match="fails verification")


def test_bank_of_the_wrong_kind_or_missing(run_cli, photos, bank, tmp_path):
    assert_bad(run_cli, tmp_path / "out", photos, "--kernels", tmp_path / "nobank", match="no such dataset")
    assert_bad(run_cli, tmp_path / "out", photos, match="--kernels BANK is required")


def test_kernels_with_fresh_trajectories_is_refused_not_ignored(run_cli, photos, bank, tmp_path):
    assert_bad(run_cli, tmp_path / "out", photos, "--psf-source", "fresh", "--kernels", bank,
               match="is read only with --psf-source bank")


def test_exposure_not_in_bank(run_cli, photos, bank, tmp_path):
    assert_bad(run_cli, tmp_path / "out", photos, "--kernels", bank, "--exposure", "0.5",
               match="not in kernel bank")


@pytest.mark.parametrize("opt,value", [("--crop", "0x5"), ("--resize", "big"), ("--exposure", "2"),
                                       ("--border", "zero")])
def test_bad_option_values(run_cli, photos, bank, tmp_path, opt, value):
    assert_bad(run_cli, tmp_path / "out", photos, "--kernels", bank, opt, value, match=opt)


def test_reads_tiff_webp_16bit_and_alpha(run_cli, bank, tmp_path):
    import cv2
    from skimage import data

    folder = tmp_path / "formats"
    (folder / "deep" / "er").mkdir(parents=True)
    rgb = data.astronaut()[::8, ::8]
    cv2.imwrite(str(folder / "a16.png"), (rgb[:, :, ::-1].astype(np.uint16) * 257))
    rgba = np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 200, np.uint8)])
    cv2.imwrite(str(folder / "deep" / "b.webp"), rgba, [cv2.IMWRITE_WEBP_QUALITY, 101])
    cv2.imwrite(str(folder / "deep" / "er" / "c.tif"), rgb[:, :, ::-1])
    out = tmp_path / "pairs"
    r = run_cli("blur", folder, "--kernels", bank, "--out", out, "--crop", "32x32")
    assert r.code == 0, r.err
    from blursynth.dataset import PairDataset

    rows = {row["params"]["photo"]: row for row in PairDataset(out)}
    assert set(rows) == {"a16.png", "deep/b.webp", "deep/er/c.tif"}
    assert rows["a16.png"]["params"]["converted"] == "16-bit scaled to 8-bit"
    assert "alpha dropped" in rows["deep/b.webp"]["params"]["converted"]
    assert "converted" not in rows["deep/er/c.tif"]["params"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_device_cuda_n_without_gpu(run_cli, photos, bank, tmp_path):
    # cuda:N is taken (as by the trainer); without a GPU it is the same one-line error as cuda.
    assert_bad(run_cli, tmp_path / "out", photos, "--kernels", bank, "--device", "cuda:0",
               match="--device cuda:0: no CUDA GPU")


def test_device_name_malformed(run_cli, photos, bank, tmp_path):
    assert_bad(run_cli, tmp_path / "out", photos, "--kernels", bank, "--device", "gpu0",
               match="auto, cpu, cuda or cuda:N")


# --- photos as a new user has them (issue 15 items 4 and 5; battery D5, D8, D10, D11) ----------

def _mixed(photos, tmp_path):
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(photos, folder)
    return folder


def test_photos_smaller_than_the_crop_are_skipped_with_one_line(run_cli, photos, bank, tmp_path):
    from blursynth.dataset import PairDataset

    folder = _mixed(photos, tmp_path)
    for name in ("small1.png", "small2.png"):
        save_photo(folder / name, np.zeros((30, 40, 3), np.uint8))
    r = run_cli("blur", folder, "--kernels", bank, "--out", tmp_path / "out", "--crop", "48x48")
    assert r.code == 0, r.err
    warnings = [l for l in r.err.splitlines() if "smaller than" in l]
    assert warnings == ["warning: 2 of 4 photos are smaller than 48x48 (--crop 48x48) and are skipped: "
                        "small1.png (30x40), small2.png (30x40) (--strict refuses them instead)"], r.err
    assert "wrote 2 rows" in r.out
    assert {row["params"]["photo"] for row in PairDataset(tmp_path / "out")} == {"rocket.png", "chelsea.png"}
    line = assert_bad(run_cli, tmp_path / "strict", folder, "--kernels", bank, "--crop", "48x48", "--strict",
                      match="photo small1.png is 30x40, smaller than 48x48 for --crop 48x48")
    assert "--strict" in line


def save_photo(path, image, orientation=None):
    from PIL import Image

    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(image).save(path, exif=exif)


def test_exif_orientation_reaches_both_images_and_converted(run_cli, bank, tmp_path):
    from skimage import data

    from blursynth.dataset import PairDataset

    stored = np.ascontiguousarray(data.astronaut()[::8, ::6])  # 64x86 as stored, 86x64 displayed
    (tmp_path / "phone").mkdir()
    save_photo(tmp_path / "phone" / "portrait.png", stored, orientation=6)
    r = run_cli("blur", tmp_path / "phone", "--kernels", bank, "--out", tmp_path / "out", "--crf", "none")
    assert r.code == 0, r.err
    row = PairDataset(tmp_path / "out")[0]
    assert np.array_equal(row["sharp"], np.rot90(stored, -1))  # no crop: the whole photo, upright
    assert row["blurred"].shape == (86, 64, 3)
    assert row["params"]["converted"] == "EXIF orientation 6 applied"


def test_truncated_photo_alone_is_refused_like_a_garbage_file(run_cli, photos, bank, tmp_path):
    good = (photos / "rocket.png").read_bytes()
    lines = []
    for name, content in (("garbage", b"\x89PNG\r\n\x1a\n" + b"garbage" * 20),
                          ("truncated", good[: len(good) // 2])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "only.png").write_bytes(content)
        lines.append(assert_bad(run_cli, tmp_path / f"out-{name}", tmp_path / name, "--kernels", bank,
                                match="none of the 1 image files could be read"))
    assert "only.png: the file is truncated" in lines[1]


def test_decompression_bomb_is_refused_in_one_line_before_decoding(run_cli, bank, tmp_path, monkeypatch):
    from blursynth.sources import photos as photos_module

    from .test_photos import _bomb_png

    monkeypatch.setattr(photos_module, "_decode_samples", lambda *a: pytest.fail("decoded the bomb"))
    (tmp_path / "bomb").mkdir()
    (tmp_path / "bomb" / "zeros.png").write_bytes(_bomb_png(20000, 20000))
    for crop in ((), ("--crop", "256x256")):
        assert_bad(run_cli, tmp_path / "out", tmp_path / "bomb", "--kernels", bank, *crop,
                   match="zeros.png: 400,000,000 pixels is more than the 178,956,970 pixels blursynth decodes")


def test_out_inside_the_photo_folder_is_not_read_as_photos(run_cli, photos, bank, tmp_path):
    folder = _mixed(photos, tmp_path)
    args = ("blur", folder, "--kernels", bank, "--out", folder / "pairs", "--crop", "32x32")
    assert run_cli(*args).code == 0
    # Something in --out that looks like a photo (an export, a preview) changes nothing.
    save_photo(folder / "pairs" / "preview.png", np.zeros((60, 60, 3), np.uint8))
    before = (folder / "pairs" / "manifest.json").read_text()
    r = run_cli(*args)
    assert r.code == 0, r.err
    assert (folder / "pairs" / "manifest.json").read_text() == before


def test_a_photo_name_that_is_not_utf8_is_skipped_with_a_line(run_cli, photos, tmp_path):
    import os
    import shutil

    from blursynth.dataset import PairDataset

    folder = tmp_path / "p"
    shutil.copytree(photos, folder)
    latin1 = os.fsdecode(b"caf\xe9.png")  # a name written by a Latin-1 system
    shutil.copy(next(folder.glob("*.png")), folder / latin1)
    r = run_cli("blur", folder, "--out", tmp_path / "out", "--psf-source", "fresh", "--crop", "32x32",
                "--canvas", "15", "--length", "8")
    assert r.code == 0, r.err
    assert "caf\\udce9.png: its name is not valid UTF-8" in r.err
    assert len(PairDataset(tmp_path / "out")) == 2  # the two photos named in UTF-8
    assert_bad(run_cli, tmp_path / "strict", folder, "--psf-source", "fresh", "--crop", "32x32", "--canvas",
               "15", "--length", "8", "--strict", match="its name is not valid UTF-8")


def test_a_refused_output_is_refused_before_the_plans_warnings(run_cli, photos, bank, tmp_path):
    # The photos' warnings (a file skipped) belong to a run that goes ahead; an output another
    # command made is refused in its one line alone.
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(photos, folder)
    (folder / "notes.png").write_bytes(b"not an image")
    out = tmp_path / "pairs"
    first = run_cli("blur", folder, "--kernels", bank, "--out", out)
    assert first.code == 0 and "notes.png" in first.err
    r = run_cli("blur", folder, "--kernels", bank, "--out", out, "--seed", "7")
    assert r.code == 2 and "made by this command with other settings (seed 0 (recorded) vs 7;" in error_line(r)
    assert r.err.strip().splitlines() == [error_line(r)]
