"""dataset info, and dataset and kernels preview."""

from pathlib import Path

import numpy as np
import pytest

from blursynth.dataset import dataset_info

from .conftest import write_tiny


def test_info_and_preview(tmp_path, run_cli):
    write_tiny(tmp_path / "d")
    info = dataset_info(tmp_path / "d")
    assert info["rows"] == 20 and info["sources"] == {"trajectory": 20} and info["with_psf"] == 10
    # Sizes are HxW (height first) in every printout, as --crop and render-clip's --size take them.
    n_sampled = sum(info["image_sizes_sampled"].values())
    assert info["image_sizes_sampled"] == {"12x16": n_sampled}
    # The first 4 rows of every shard, whatever its row groups (a pair dataset has one row each).
    import json

    shards = json.loads((tmp_path / "d" / "manifest.json").read_text())["shards"]
    assert n_sampled == sum(min(4, s["rows"]) for s in shards) and len(shards) > 1
    r = run_cli("dataset", "info", tmp_path / "d")
    assert r.code == 0 and "20 rows" in r.out
    assert f"image sizes (sampled, HxW): 12x16 ({n_sampled})" in r.out.splitlines()
    r = run_cli("dataset", "preview", tmp_path / "d", "--out", tmp_path / "p.png", "--count", "3")
    assert r.code == 0
    from blursynth.sources.photos import load_rgb8

    sheet, _ = load_rgb8(tmp_path / "p.png")
    assert sheet.shape[0] > 3 * 160 and sheet.std() > 10
    assert r.out.strip() == f"wrote {tmp_path / 'p.png'} ({sheet.shape[0]}x{sheet.shape[1]} HxW)"



@pytest.mark.parametrize("command", ["dataset", "kernels"])
def test_preview_removes_the_temporary_a_killed_preview_of_the_same_out_left(tmp_path, run_cli, command):
    data = Path(__file__).resolve().parents[1] / "kernels" / "eval48"
    if command == "dataset":
        data = tmp_path / "d"
        write_tiny(data)
    sheets = tmp_path / "sheets"
    sheets.mkdir()
    # A kill mid-write of p.png; q.png's, and a name that only looks like one, are not this run's.
    for name in (".p.png.tmp99999", ".q.png.tmp99999", ".p.png.old.tmp99999", "notes.txt"):
        (sheets / name).write_bytes(b"x")
    r = run_cli(command, "preview", data, "--out", sheets / "p.png", "--count", "1")
    assert r.code == 0, r.err
    assert sorted(p.name for p in sheets.iterdir()) == [
        ".p.png.old.tmp99999", ".q.png.tmp99999", "notes.txt", "p.png"]


def _line_psf(length):
    psf = np.zeros((length, length), np.float32)
    psf[length // 2, :] = 1.0 / length
    return psf


def _psf_extents(sheet):
    """Widths of the bright PSF pixels (inferno's yellow; captions are grey) in the top and bottom
    halves of a two-line sheet."""
    ys, xs = np.nonzero((sheet[..., 0] > 200) & (sheet[..., 2] < 180))
    mid = sheet.shape[0] // 2
    return [int(np.ptp(xs[sel])) + 1 for sel in (ys < mid, ys >= mid)]


def test_preview_draws_every_psf_at_one_scale():
    from blursynth.dataset.preview import pair_sheet

    dark = np.zeros((40, 40, 3), np.uint8)
    rows = [{"id": str(i), "source": "trajectory", "blurred": dark, "sharp": dark, "psf": _line_psf(k)}
            for i, k in enumerate((3, 37))]
    short, long = _psf_extents(pair_sheet(rows, height=80))
    # 2 sheet pixels per PSF pixel for both (80 // 37): a 3 px blur stays 12 times shorter.
    assert (short, long) == (6, 74)


def test_preview_captions():
    from blursynth.dataset.preview import caption_lines

    image = np.zeros((96, 128, 3), np.uint8)
    blur = {"id": "000003", "source": "trajectory", "blurred": image,
            "params": {"photo": "sub/cat.png", "exposure": 0.01, "shot_noise": 0.00213, "read_noise": 0.002,
                       "jpeg_quality": 71, "saturation": 1.5}}
    assert caption_lines(blur) == ["000003  trajectory  96x128  cat.png",
                                   "exposure: 1/100 of the path  noise shot 0.0021, read 0.002  JPEG q71  "
                                   "saturation x1.5"]
    video = {"id": "000004", "source": "video", "blurred": image,
             "params": {"video": "/x/clip.mkv", "frame_start": 10, "frame_stop": 17, "window_frames": 7,
                        "averaged_frames": 7, "exposure_s": 7 / 240}}
    assert caption_lines(video) == ["000004  video  96x128  clip.mkv frames 10-16",
                                    "exposure: 29.2 ms (7 frames)  no noise added  no JPEG"]
    real = {"id": "000005", "source": "real", "blurred": image, "params": {"blurred_path": "seq/blur/0001.png"}}
    assert caption_lines(real) == ["000005  real  96x128  0001.png", "exposure n/a  the camera's own noise  no JPEG"]


def test_preview_crop_full_res_shows_pixels_one_to_one(tmp_path, run_cli, tiny_pairs_dataset):
    from blursynth.dataset import PairDataset
    from blursynth.sources.photos import load_rgb8

    path = tiny_pairs_dataset(n=2, size=(48, 64))
    r = run_cli("dataset", "preview", path, "--out", tmp_path / "c.png", "--count", 1, "--height", 32,
                "--crop-full-res")
    assert r.code == 0, r.err
    sheet, _ = load_rgb8(tmp_path / "c.png")
    for name in ("blurred", "sharp"):
        crop = PairDataset(path)[0][name][8:40, 16:48]  # the 32x32 centre of a 48x64 image
        hits = [(y, x) for y, x in zip(*np.nonzero((sheet == crop[0, 0]).all(axis=2)))
                if np.array_equal(sheet[y : y + 32, x : x + 32], crop)]
        assert len(hits) == 1, name


def test_preview_crop_full_res_is_cut_to_images_smaller_than_the_crop(tmp_path, run_cli, tiny_pairs_dataset):
    from blursynth.dataset import PairDataset
    from blursynth.dataset.preview import _crops_text
    from blursynth.sources.photos import load_rgb8

    path = tiny_pairs_dataset(n=2, size=(64, 64))
    r = run_cli("dataset", "preview", path, "--out", tmp_path / "c.png", "--count", 1, "--height", 300,
                "--crop-full-res")
    assert r.code == 0, r.err
    sheet, _ = load_rgb8(tmp_path / "c.png")
    # The whole 64x64 image at 1:1 on a line its own height, not 64 px in 300 of padding.
    assert sheet.shape[0] < 300, sheet.shape
    whole = PairDataset(path)[0]["blurred"]
    hits = [(y, x) for y, x in zip(*np.nonzero((sheet == whole[0, 0]).all(axis=2)))
            if np.array_equal(sheet[y : y + 64, x : x + 64], whole)]
    assert len(hits) == 1
    # The header says the size drawn.
    assert _crops_text([(64, 64)], 300) == (
        "images: 64x64 centre crops at 1:1 (HxW; 300x300 asked, cut to the images)")
    assert _crops_text([(300, 300)], 300) == "images: 300x300 centre crops at 1:1"
    assert _crops_text([(48, 64), (300, 300)], 300).startswith("images: 48x64, 300x300 centre crops")


def test_preview_text_wraps_to_the_line_instead_of_being_cut():
    import cv2

    from blursynth.dataset.preview import _FONT, _wrap

    text = "/tmp/some/dataset: 2 pairs (blurred | sharp | PSF)  PSFs at one scale, 48/65 px per PSF pixel"
    lines = _wrap(text, 150)
    assert len(lines) > 2 and all(cv2.getTextSize(l, *_FONT, 1)[0][0] <= 150 for l in lines)
    assert " ".join(" ".join(lines).split()) == " ".join(text.split())  # every word kept
