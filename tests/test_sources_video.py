"""Frame sources (sources/video.py): video and folder readers, seeking, damaged input, probe errors."""

from __future__ import annotations

import numpy as np
import pytest

from blursynth.errors import BadInputError
from blursynth.sources.video import TruncatedVideoWarning, iter_frames, probe_source

from .conftest import random_frames, write_clip


def test_video_and_folder_readers_agree_and_seek(tmp_path):
    from blursynth.sources.photos import save_rgb8

    frames = random_frames(30, shape=(32, 48, 3), seed=7)
    write_clip(tmp_path / "c.mkv", frames)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        save_rgb8(folder / f"{i + 1:06d}.png", f)
    video = probe_source(tmp_path / "c.mkv")
    assert (video.n_frames, video.height, video.width, video.fps) == (30, 32, 48, 240.0)
    seq = probe_source(folder, fps=240)
    assert seq.n_frames == 30
    for info in (video, seq):
        got = list(iter_frames(info))
        assert [i for i, _ in got] == list(range(30))
        assert all(np.array_equal(f, frames[i]) for i, f in got)
        part = list(iter_frames(info, 17, 21))
        assert [i for i, _ in part] == [17, 18, 19, 20]
        assert all(np.array_equal(f, frames[i]) for i, f in part)


def test_folder_reader_reads_ahead_in_order_and_stops_at_a_broken_frame(tmp_path):
    from blursynth.sources.photos import save_rgb8

    frames = random_frames(12, shape=(16, 24, 3), seed=9)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        save_rgb8(folder / f"{i:06d}.png", f)
    info = probe_source(folder, fps=240)
    path = folder / "000007.png"
    path.write_bytes(path.read_bytes()[:60])  # header intact (probe passes), data cut short
    with pytest.warns(TruncatedVideoWarning, match="000007.png' could not be decoded"):
        got = list(iter_frames(info))
    assert [i for i, _ in got] == list(range(7))
    assert all(np.array_equal(f, frames[i]) for i, f in got)
    save_rgb8(path, np.zeros((16, 20, 3), np.uint8))  # replaced by another size after probing
    with pytest.raises(BadInputError, match="changed size"):
        list(iter_frames(info))


def test_truncated_video_warns_and_keeps_good_frames(tmp_path):
    frames = random_frames(40, shape=(64, 96, 3), seed=8)
    path = tmp_path / "t.mp4"
    write_clip(path, frames, codec="libx264", pix_fmt="yuv420p", options={"crf": "18"},
                container_options={"movflags": "faststart"})
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    info = probe_source(cut)
    assert info.n_frames == 40
    with pytest.warns(TruncatedVideoWarning, match="ended at frame"):
        got = [i for i, _ in iter_frames(info)]
    assert 5 < len(got) < 40 and got == list(range(len(got)))


def test_probe_errors(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        probe_source(tmp_path / "nope.mp4")
    (tmp_path / "x.mp4").write_text("not a video")
    with pytest.raises(BadInputError, match="not a video"):
        probe_source(tmp_path / "x.mp4")


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_folder_of_exif_rotated_frames_reads_them_upright(tmp_path, suffix):
    from PIL import Image, ImageOps

    frames = random_frames(4, shape=(16, 24, 3), seed=4)
    folder = tmp_path / "phone"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 16x24, shown turned a quarter clockwise: 24x16
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:06d}{suffix}", exif=exif, quality=100)
    info = probe_source(folder, fps=240)
    assert (info.height, info.width) == (24, 16)
    got = list(iter_frames(info))
    assert [i for i, _ in got] == [0, 1, 2, 3]
    for i, f in got:
        with Image.open(folder / f"{i:06d}{suffix}") as im:
            upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB")).astype(int)
        assert f.shape == (24, 16, 3)
        assert np.abs(f.astype(int) - upright).max() <= (4 if suffix == ".jpg" else 0)


def test_folder_with_a_truncated_or_gray_frame_is_refused_at_probe(tmp_path):
    from blursynth.sources.photos import save_rgb8

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(random_frames(3, shape=(16, 24, 3), seed=2)):
        save_rgb8(folder / f"{i:06d}.png", f)
    whole = (folder / "000001.png").read_bytes()
    (folder / "000001.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BadInputError, match=r"^\S+000001.png: the file is truncated"):
        probe_source(folder, fps=240)
    (folder / "000001.png").write_bytes(whole)
    from PIL import Image

    Image.fromarray(np.zeros((16, 24), np.uint16)).save(folder / "000002.png")
    with pytest.raises(BadInputError, match="000002.png' is grayscale"):
        probe_source(folder, fps=240)
