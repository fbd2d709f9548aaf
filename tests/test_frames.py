"""``blursynth frames-average`` and ``render-clip`` through the CLI: pairs, determinism, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blursynth.cli import main
from blursynth.dataset import PairDataset
from blursynth.ops.average import average_frames
from blursynth.pairs.frames import rebuild_pair
from blursynth.pairs.window_psf import window_psf
from blursynth.sources.video import iter_frames, probe_source
from blursynth.errors import BadInputError
from blursynth.sources.windows import Window, parse_window

from .conftest import random_frames, two_shots, write_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 40-frame 64x96 clip rendered through the CLI from a sample photo."""
    from skimage import data

    from blursynth.sources.photos import save_rgb8

    d = tmp_path_factory.mktemp("clip")
    save_rgb8(d / "photo.png", np.ascontiguousarray(data.astronaut()[150:250, 150:280]))
    rc = main(["render-clip", str(d / "photo.png"), "--out", str(d / "clip.mkv"), "--frames", "40",
               "--length-px", "12", "--size", "64x96", "--seed", "2"])
    assert rc == 0
    return d / "clip.mkv"


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_render_clip_cli(clip):
    side = json.loads(clip.with_name(clip.name + ".json").read_text())
    assert side["n_frames"] == 40 and side["geometry"]["height"] == 64 and side["fps"] == 240
    info = probe_source(clip)
    assert (info.n_frames, info.height, info.width, info.fps) == (40, 64, 96, 240.0)


def test_frames_average_end_to_end(clip, tmp_path, capsys):
    out = tmp_path / "pairs"
    rc = main(["frames-average", str(clip), "--window", "5-9", "--out", str(out), "--seed", "3"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "frame" in captured.err  # the progress bar counts frames
    assert "wrote" in captured.out
    frames = [f for _, f in iter_frames(probe_source(clip))]
    positions = np.array(json.loads(clip.with_name(clip.name + ".json").read_text())["positions_xy"])
    ds = PairDataset(out)
    assert len(ds) >= 40 // 9
    stops = []
    for i in range(len(ds)):
        row = ds[i]
        p = row["params"]
        assert row["source"] == "video" and row["seed"] == 3
        # render-clip's sidecar gives the camera path, so each row carries its window's PSF.
        win = Window(0, 0, p["frame_start"], p["window_frames"])
        assert p["psf_from"] == "render-clip camera path"
        assert np.allclose(row["psf"], window_psf(positions, win), atol=1e-7)
        assert np.isclose(row["psf"].sum(), 1, atol=1e-5) and row["psf"].shape[0] % 2 == 1
        assert 5 <= p["window_frames"] <= 9 and p["frame_stop"] - p["frame_start"] == p["window_frames"]
        assert p["sharp_frame"] == p["frame_start"] + p["window_frames"] // 2
        assert p["sharp_offset_frames"] == (0.5 if p["window_frames"] % 2 == 0 else 0.0)
        assert p["crf"] == "gamma:2.2" and p["interpolate"] == 1 and p["fps"] == 240.0
        assert np.array_equal(row["blurred"], average_frames(frames[p["frame_start"]:p["frame_stop"]]))
        assert np.array_equal(row["sharp"], frames[p["sharp_frame"]])
        blurred, sharp = rebuild_pair(row, clip)
        assert np.array_equal(blurred, row["blurred"]) and np.array_equal(sharp, row["sharp"])
        stops.append((p["frame_start"], p["frame_stop"]))
    assert all(a[1] == b[0] for a, b in zip(stops, stops[1:]))  # no overlap, no gap by default


def test_deterministic_across_runs_and_workers(clip, tmp_path):
    shas = []
    for name, workers in (("a", 1), ("b", 1), ("c", 2)):
        out = tmp_path / name
        assert main(["frames-average", str(clip), "--window", "4-8", "--overlap", "2", "--shard-size", "4",
                     "--seed", "9", "--workers", str(workers), "--out", str(out)]) == 0
        manifest = json.loads((out / "manifest.json").read_text())
        shas.append([s["sha256"] for s in manifest["shards"]])
    assert shas[0] == shas[1] == shas[2] and len(shas[0]) > 1



def test_same_run_from_another_place_writes_the_same_bytes(clip, tmp_path, monkeypatch):
    """Rows hold no path: the same inputs from other folders or working directories give the same shards."""
    import shutil

    here, there = tmp_path / "a", tmp_path / "b" / "deeper"
    for d in (here, there):
        d.mkdir(parents=True)
        shutil.copy(clip, d / "clip.mkv")
        shutil.copy(clip.with_name(clip.name + ".json"), d / "clip.mkv.json")
    args = ["--window", "5-9", "--shard-size", "3", "--seed", "1"]
    assert main(["frames-average", str(here / "clip.mkv"), "--out", str(tmp_path / "p1"), *args]) == 0
    assert main(["frames-average", str(there / "clip.mkv"), "--out", str(tmp_path / "p2"), *args]) == 0
    monkeypatch.chdir(there)
    assert main(["frames-average", "clip.mkv", "--out", str(tmp_path / "p3"), *args]) == 0
    shards = [{p.name: p.read_bytes() for p in sorted((tmp_path / d / "data").glob("*.parquet"))}
              for d in ("p1", "p2", "p3")]
    assert shards[0] and shards[0] == shards[1] == shards[2]
    # The manifest keeps the path as given; a row rebuilds from it.
    manifest = json.loads((tmp_path / "p1" / "manifest.json").read_text())
    row = PairDataset(tmp_path / "p1")[1]
    assert row["params"]["video"] == "clip.mkv" and str(tmp_path) not in json.dumps(row["params"])
    blurred, _ = rebuild_pair(row, manifest["command"]["inputs"])  # the sources in order
    assert np.array_equal(blurred, row["blurred"])

def test_frame_folder_input_and_interpolation(clip, tmp_path):
    from blursynth.sources.photos import save_rgb8

    folder = tmp_path / "GOPR0001"
    folder.mkdir()
    frames = [f for _, f in iter_frames(probe_source(clip))][:12]
    for i, f in enumerate(frames):
        save_rgb8(folder / f"{i + 1:06d}.png", f)
    out = tmp_path / "pairs"
    assert main(["frames-average", str(tmp_path), "--fps", "240", "--window", "5", "--interpolate", "2",
                 "--out", str(out)]) == 0
    ds = PairDataset(out)
    assert len(ds) == 2
    p = ds[1]["params"]
    assert p["source_kind"] == "frames" and p["interpolate"] == 2 and p["averaged_frames"] == 9
    assert p["sharp_file"] == "000008.png"
    assert np.array_equal(ds[1]["sharp"], frames[7])
    assert p["video"] == f"{tmp_path.name}/GOPR0001"
    blurred, _ = rebuild_pair(ds[1], folder)
    assert np.array_equal(blurred, ds[1]["blurred"])


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_rows_of_exif_rotated_frames_note_the_orientation(tmp_path, suffix):
    """Rows of frames turned upright by their EXIF orientation say so in ``converted``."""
    from PIL import Image

    frames = random_frames(12, shape=(16, 24, 3), seed=4)
    for name, orientation in (("phone", 6), ("upright", 1), ("mixed", None)):
        folder = tmp_path / "in" / name
        folder.mkdir(parents=True)
        for i, f in enumerate(frames):
            exif = Image.Exif()
            exif[0x0112] = orientation or (6 if i < 6 else 8)  # mixed: 6 for frames 0-5, then 8
            Image.fromarray(f).save(folder / f"{i:06d}{suffix}", exif=exif, quality=100)
    out = tmp_path / "pairs"
    assert main(["frames-average", str(tmp_path / "in"), "--fps", "240", "--window", "4",
                 "--out", str(out)]) == 0
    ds = PairDataset(out)
    notes = {}
    for i in range(len(ds)):
        row = ds[i]
        p = row["params"]
        name = p["video"].split("/")[-1]
        notes.setdefault(name, []).append(p.get("converted"))
        # As displayed: a quarter turn (6, 8) shows the stored 16x24 frames as 24x16.
        assert row["sharp"].shape == ((16, 24, 3) if name == "upright" else (24, 16, 3))
    assert notes == {
        "phone": ["EXIF orientation 6 applied"] * 3,
        "upright": [None] * 3,  # orientation 1: nothing turned, nothing noted
        # frames 0-3, 4-7 (both orientations: each once), 8-11
        "mixed": ["EXIF orientation 6 applied",
                  "EXIF orientation 6 applied; EXIF orientation 8 applied",
                  "EXIF orientation 8 applied"],
    }


def test_known_motion_psf_is_the_flipped_camera_path(tmp_path):
    from blursynth.ops.psf import psf_centroid

    # Camera moving 1 px per frame to the right: content moves left, the PSF is a horizontal line.
    positions = np.stack([np.arange(20.0), np.zeros(20)], axis=1)
    psf = window_psf(positions, Window(0, 0, 3, 7))
    assert psf.shape == (7, 7)
    assert np.allclose(psf[3], 1 / 7, atol=1e-6) and np.isclose(psf.sum(), 1, atol=1e-6)
    assert np.allclose(psf_centroid(psf), (3, 3), atol=1e-6)
    # With interpolation the line is sampled K times more densely, same extent.
    assert np.allclose(window_psf(positions, Window(0, 0, 3, 7), interpolate=3)[3].sum(), 1, atol=1e-6)


def test_stale_sidecar_is_an_error(clip, tmp_path, capsys):
    import shutil

    shutil.copy(clip, tmp_path / "c.mkv")
    (tmp_path / "c.mkv.json").write_text(json.dumps({"positions_xy": [[0, 0]] * 5}))
    _bad([tmp_path / "c.mkv"], tmp_path, capsys, "stale sidecar")


@pytest.mark.slow  # starts the command in a fresh process
def test_a_video_then_a_frame_folder_in_one_run(clip, tmp_path):
    # In a fresh process (OpenCV not yet imported), as a user runs it: the folder's reader
    # threads once imported OpenCV at the same time and saw a half-made module.
    import subprocess
    import sys

    from blursynth.sources.photos import save_rgb8

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(f for _, f in iter_frames(probe_source(clip), 0, 12)):
        save_rgb8(folder / f"{i:04d}.png", f)
    out = tmp_path / "pairs"
    done = subprocess.run([sys.executable, "-m", "blursynth", "frames-average", str(clip), str(folder), "--fps",
                           "240", "--window", "5", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ds = PairDataset(out)
    assert len(ds) == 8 + 2  # 40 // 5 windows from the clip, 12 // 5 from the folder
    assert {ds[i]["params"]["source_kind"] for i in range(len(ds))} == {"video", "frames"}


def test_truncated_video_keeps_pairs_with_a_warning(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(40)]
    path = tmp_path / "t.mp4"
    write_clip(path, frames, codec="libx264", pix_fmt="yuv420p", options={"crf": "18"},
           container_options={"movflags": "faststart"})
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    out = tmp_path / "pairs"
    assert main(["frames-average", str(path), "--window", "5", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: video" in err and "ended at frame" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["planned_items"] == 8 and 1 <= manifest["num_rows"] < 8
    assert len(PairDataset(out)) == manifest["num_rows"]


def test_render_clip_mp4_is_readable_when_cut_short(tmp_path, capsys):
    photo = _small_photo(tmp_path)
    out = tmp_path / "c.mp4"
    assert _render(photo, out, "--frames", "40") == 0
    data = out.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # the index first
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    assert main(["frames-average", str(cut), "--window", "5", "--out", str(tmp_path / "pairs")]) == 0
    err = capsys.readouterr().err
    assert "warning: video" in err and "ended at frame" in err
    assert 1 <= len(PairDataset(tmp_path / "pairs")) < 8


def test_mp4_cut_before_its_index_is_named(tmp_path, capsys):
    rng = np.random.default_rng(1)
    path = tmp_path / "late_index.mp4"
    write_clip(path, [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(20)], codec="libx264",
           pix_fmt="yuv420p", options={"crf": "18"})  # no faststart: the index comes last
    data = path.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat") > 0
    path.write_bytes(data[: len(data) // 2])
    _bad([str(path), "--window", "5"], tmp_path, capsys, "cut short before its index")


def test_mp4_stopped_before_its_index_is_named(tmp_path, capsys):
    # A recorder killed mid-write: the frames are there, the index never came, and the
    # 'mdat' box still has the size 0 ("to the end of the file") it was started with.
    rng = np.random.default_rng(3)
    path = tmp_path / "killed.mp4"
    write_clip(path, [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(20)], codec="libx264",
           pix_fmt="yuv420p", options={"crf": "18"})
    data = bytearray(path.read_bytes())
    mdat = data.find(b"mdat") - 4
    data = data[:data.find(b"moov") - 4]
    data[mdat:mdat + 4] = bytes(4)
    path.write_bytes(bytes(data))
    _bad([str(path), "--window", "5"], tmp_path, capsys, "cut short before its index")


def test_complete_matroska_does_not_warn_with_fps_or_irregular_timestamps(clip, tmp_path, capsys):
    import fractions

    import av

    # --fps overriding the container's rate is no sign of a cut file.
    assert main(["frames-average", str(clip), "--fps", "960", "--window", "5", "--out", str(tmp_path / "a")]) == 0
    assert "warning" not in capsys.readouterr().err
    # Nor is a variable frame rate: 30 frames at irregular times.
    rng = np.random.default_rng(4)
    path = tmp_path / "vfr.mkv"
    ms = fractions.Fraction(1, 1000)
    with av.open(str(path), "w") as c:
        stream = c.add_stream("ffv1", rate=30)
        stream.height, stream.width, stream.pix_fmt = 32, 48, "bgr0"
        stream.time_base = stream.codec_context.time_base = ms
        pts = 0
        for _ in range(30):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, ms
            pts += int(rng.integers(10, 100))  # 10 to 100 frames a second, at random
            for pkt in stream.encode(frame):
                c.mux(pkt)
        for pkt in stream.encode():
            c.mux(pkt)
    assert main(["frames-average", str(path), "--window", "5", "--out", str(tmp_path / "b")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_cut_matroska_warns_from_its_declared_duration(tmp_path, capsys):
    rng = np.random.default_rng(2)
    path = tmp_path / "c.mkv"
    write_clip(path, [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(40)])
    whole = tmp_path / "whole"
    assert main(["frames-average", str(path), "--window", "5", "--out", str(whole)]) == 0
    assert "warning" not in capsys.readouterr().err
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.55)])
    out = tmp_path / "pairs"
    assert main(["frames-average", str(path), "--window", "5", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: video" in err and "may have been cut short" in err
    kept = PairDataset(out)
    assert 1 <= len(kept) < 8
    assert np.array_equal(kept[0]["blurred"], PairDataset(whole)[0]["blurred"])


# --- bad input: one line, exit 2, nothing written ----------------------------------------------

@pytest.mark.parametrize("window", ["25-5", "0-3", "abc", "4-", "1", "1-1"])
def test_malformed_window(clip, tmp_path, capsys, window):
    out = tmp_path / "pairs"
    assert main(["frames-average", str(clip), "--window", window, "--out", str(out)]) == 2
    assert "--window" in _one_error_line(capsys)
    assert not out.exists()


def _bad(args, tmp_path, capsys, match):
    out = tmp_path / "pairs"
    assert main(["frames-average", *map(str, args), "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert match in line, line
    assert not out.exists()
    return line


def test_missing_file(tmp_path, capsys):
    _bad([tmp_path / "nope.mp4"], tmp_path, capsys, "does not exist")


def test_not_a_video(tmp_path, capsys):
    (tmp_path / "notes.mp4").write_text("hello")
    _bad([tmp_path / "notes.mp4"], tmp_path, capsys, "not a video")


def test_single_image_is_not_a_video(tmp_path, capsys):
    from blursynth.sources.photos import save_rgb8

    save_rgb8(tmp_path / "one.png", np.zeros((8, 8, 3), np.uint8))
    _bad([tmp_path / "one.png"], tmp_path, capsys, "single image")


def test_video_shorter_than_window(clip, tmp_path, capsys):
    _bad([clip, "--window", "41-50"], tmp_path, capsys, "fewer than the shortest window")


def test_overlap_not_below_window(clip, tmp_path, capsys):
    _bad([clip, "--window", "5", "--overlap", "5"], tmp_path, capsys, "--overlap")


def test_same_video_twice(clip, tmp_path, capsys):
    # The same file under two spellings: the pairs would repeat.
    _bad([clip, f"{clip.parent}/./{clip.name}", "--window", "5"], tmp_path, capsys, "is given twice")


def test_folder_with_gap(tmp_path, capsys):
    from blursynth.sources.photos import save_rgb8

    d = tmp_path / "seq"
    d.mkdir()
    for i in (1, 2, 3, 5, 6):
        save_rgb8(d / f"{i:06d}.png", np.zeros((8, 8, 3), np.uint8))
    _bad([d, "--fps", "240", "--window", "2"], tmp_path, capsys, "jumps from 3 to 5")


def test_folder_with_mixed_sizes(tmp_path, capsys):
    from blursynth.sources.photos import save_rgb8

    d = tmp_path / "seq"
    d.mkdir()
    for i in range(1, 5):
        save_rgb8(d / f"{i:06d}.png", np.zeros((8, 8 if i != 3 else 10, 3), np.uint8))
    line = _bad([d, "--fps", "240", "--window", "2"], tmp_path, capsys, "one size")
    assert "'000003.png' is 8x10 but earlier frames are 8x8" in line  # HxW


def test_grayscale_video(tmp_path, capsys):
    frames = [np.full((16, 16, 3), 10 * i, np.uint8) for i in range(10)]
    write_clip(tmp_path / "g.mkv", frames, codec="ffv1", pix_fmt="gray", options={})
    _bad([tmp_path / "g.mkv", "--window", "3"], tmp_path, capsys, "grayscale")


def test_missing_fps_for_frame_folder(tmp_path, capsys):
    from blursynth.sources.photos import save_rgb8

    d = tmp_path / "seq"
    d.mkdir()
    for i in range(1, 6):
        save_rgb8(d / f"{i:06d}.png", np.zeros((8, 8, 3), np.uint8))
    _bad([d, "--window", "2"], tmp_path, capsys, "--fps")


@pytest.mark.parametrize("fps", ["0", "-240"])
def test_zero_fps(clip, tmp_path, capsys, fps):
    _bad([clip, "--fps", fps], tmp_path, capsys, "--fps")


def test_render_clip_bad_inputs(tmp_path, capsys):
    assert main(["render-clip", str(tmp_path / "none.png"), "--out", str(tmp_path / "c.mkv")]) == 2
    _one_error_line(capsys)
    from skimage import data

    from blursynth.sources.photos import save_rgb8

    save_rgb8(tmp_path / "p.png", np.ascontiguousarray(data.astronaut()[:40, :40]))
    assert main(["render-clip", str(tmp_path / "p.png"), "--out", str(tmp_path / "c.mkv"),
                 "--length-px", "500"]) == 2
    assert "leaves room" in _one_error_line(capsys)
    assert main(["render-clip", str(tmp_path / "p.png"), "--out", str(tmp_path / "c.mkv"), "--size", "big"]) == 2
    _one_error_line(capsys)
    for size in ("0x16", "1x1"):
        assert main(["render-clip", str(tmp_path / "p.png"), "--out", str(tmp_path / "c.mkv"), "--size", size]) == 2
        assert "at least 2 px" in _one_error_line(capsys)
    assert not (tmp_path / "c.mkv").exists() and not (tmp_path / "c.mkv.json").exists()


def test_rerun_resumes_and_other_settings_are_refused(clip, tmp_path, capsys):
    out = tmp_path / "pairs"

    def command(window):
        return ["frames-average", str(clip), "--window", window, "--shard-size", "3", "--out", str(out)]

    args = command("5-9")
    assert main(args) == 0
    shards = sorted((out / "data").glob("*.parquet"))
    before = {p.name: p.read_bytes() for p in shards}
    shards[1].unlink()  # as if interrupted
    assert main(args) == 0
    assert {p.name: p.read_bytes() for p in sorted((out / "data").glob("*.parquet"))} == before
    capsys.readouterr()
    assert main(command("5-11")) == 2
    assert "made by this command with other settings (" in _one_error_line(capsys)  # and no progress bar before it
    assert {p.name: p.read_bytes() for p in sorted((out / "data").glob("*.parquet"))} == before


# --- render-clip never deletes what it did not write ---------------------------------------------

def _small_photo(tmp_path):
    from skimage import data

    from blursynth.sources.photos import save_rgb8

    save_rgb8(tmp_path / "p.png", np.ascontiguousarray(data.astronaut()[100:148, 150:206]))
    return tmp_path / "p.png"


def _render(photo, out, *extra):
    return main(["render-clip", str(photo), "--out", str(out), "--frames", "4", "--length-px", "3",
                 *map(str, extra)])


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_render_clip_keeps_a_user_folder(tmp_path, capsys, overwrite):
    photo = _small_photo(tmp_path)
    keep = tmp_path / "keepme"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    (keep / "000000.png").write_bytes(photo.read_bytes())
    before = _tree(tmp_path)
    capsys.readouterr()
    assert _render(photo, keep, *overwrite) == 2
    line = _one_error_line(capsys)
    assert "keepme" in line and ("--overwrite" in line if not overwrite else "not look like" in line)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_render_clip_keeps_a_user_video_and_sidecar(tmp_path, capsys, overwrite):
    photo = _small_photo(tmp_path)
    (tmp_path / "holiday.mp4").write_bytes(b"my own video")
    (tmp_path / "other.mkv").write_bytes(b"another video")
    (tmp_path / "other.mkv.json").write_text('{"note": "not a render-clip sidecar"}')
    before = _tree(tmp_path)
    capsys.readouterr()
    for name in ("holiday.mp4", "other.mkv"):
        assert _render(photo, tmp_path / name, *overwrite) == 2
        assert name in _one_error_line(capsys)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("name", ["frames", "c.mkv"])
def test_render_clip_overwrite_replaces_only_its_own_output(tmp_path, capsys, name):
    photo = _small_photo(tmp_path)
    out = tmp_path / name
    assert main(["render-clip", str(photo), "--out", str(out), "--frames", "6", "--length-px", "3"]) == 0
    first = _tree(tmp_path)
    capsys.readouterr()
    assert _render(photo, out) == 2  # exists: refused without --overwrite
    assert "--overwrite" in _one_error_line(capsys)
    assert _tree(tmp_path) == first
    assert _render(photo, out, "--overwrite") == 0
    side = json.loads((tmp_path / f"{name}.json").read_text())
    assert side["n_frames"] == 4
    assert probe_source(out, fps=240 if out.is_dir() else None).n_frames == 4
    if out.is_dir():
        assert sorted(p.name for p in out.iterdir()) == [f"{i:06d}.png" for i in range(4)]
        # Something the user put inside makes it no longer render-clip's alone.
        (out / "mine.txt").write_text("keep")
        capsys.readouterr()
        assert _render(photo, out, "--overwrite") == 2
        assert "not look like" in _one_error_line(capsys)
        assert (out / "mine.txt").read_text() == "keep"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --- render-clip output names: bad ones are one line, exit 2, nothing written ---------------------

@pytest.mark.parametrize("name", ["clip.xyz", "clip.webm", "clip.PNG"])
def test_render_clip_unknown_suffix(tmp_path, capsys, name):
    photo = _small_photo(tmp_path)
    capsys.readouterr()
    assert _render(photo, tmp_path / name) == 2
    assert "unknown video suffix" in _one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


def test_render_clip_creates_a_missing_parent_folder(tmp_path, capsys):
    photo = _small_photo(tmp_path)
    assert _render(photo, tmp_path / "new" / "sub" / "clip.mkv") == 0
    assert probe_source(tmp_path / "new" / "sub" / "clip.mkv").n_frames == 4
    assert (tmp_path / "new" / "sub" / "clip.mkv.json").is_file()
    # A run that fails leaves no folder behind.
    capsys.readouterr()
    assert _render(photo, tmp_path / "other" / "clip.mkv", "--length-px", "500") == 2
    assert "leaves room" in _one_error_line(capsys)
    assert not (tmp_path / "other").exists()


def test_render_clip_parent_is_a_file(tmp_path, capsys):
    photo = _small_photo(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    capsys.readouterr()
    assert _render(photo, tmp_path / "notes.txt" / "clip.mkv") == 2
    assert "is a file, not a folder" in _one_error_line(capsys)
    assert (tmp_path / "notes.txt").read_text() == "x"


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_bar_counts_frames_with_any_worker_count(clip, tmp_path, progress_bars, workers):
    from blursynth.pairs.frames import FramesAverageSettings, plan_frames_average, write_frame_pairs

    bars = progress_bars
    settings = FramesAverageSettings(window_min=4, window_max=8, seed=9, shard_size=4)
    write_frame_pairs([clip], tmp_path / "pairs", settings, workers=workers)
    shown = [b for b in bars if not b.disable]
    n_frames = plan_frames_average([clip], settings).n_frames
    assert n_frames > 3 * 8  # more frames than pairs: a bar in pairs would stop short
    assert [(b.unit, b.total, b.n) for b in shown] == [("frame", n_frames, n_frames)]


def test_no_window_fits_says_why(clip, tmp_path, capsys):
    line = _bad([clip, "--window", "5-1000"], tmp_path, capsys, "no window fits")
    assert "the longest input has 40" in line and "at or below 40" in line


@pytest.mark.parametrize("window, says", [("5-", "a length or a range"), ("9-5", "Did you mean 5-9?"),
                                          ("1", "at least 2 frames")])
def test_cli_window_is_read_by_the_recipe_parser(tmp_path, capsys, window, says):
    # One parser for --window on the command line and window = "..." in a recipe: the same line.
    out = tmp_path / "pairs"
    assert main(["frames-average", str(tmp_path / "clip.mp4"), "--window", window, "--out", str(out)]) == 2
    assert not out.exists()
    with pytest.raises(BadInputError) as exc:
        parse_window(window)
    assert says in str(exc.value)
    assert capsys.readouterr().err.strip() == f"error: {exc.value}"


# --- ground-truth PSFs of render-clip sources (issue 15, item 1) ------------------------------


def _fast_clip(d, n=12, step_px=24.0, size=(24, 32)):
    """A clip with a sidecar whose camera moves ``step_px`` per frame to the right (a long path)."""
    frames = [np.random.default_rng(i).integers(0, 256, (*size, 3), dtype=np.uint8) for i in range(n)]
    write_clip(d / "fast.mkv", frames)
    positions = [[step_px * i, 0.5 * i] for i in range(n)]
    (d / "fast.mkv.json").write_text(json.dumps({"positions_xy": positions}))
    return d / "fast.mkv", np.array(positions)


def test_window_psf_holds_the_whole_path():
    from blursynth.ops.psf import rasterize_psf

    # 24 px per frame over 5 frames: a 96 px path, longer than the rasteriser's default 63 px canvas.
    positions = np.stack([24.0 * np.arange(12), 0.5 * np.arange(12)], axis=1)
    psf = window_psf(positions, Window(0, 0, 2, 5))
    assert psf.shape[0] >= 97 and np.isclose(psf.sum(), 1, atol=1e-6)
    # Every sample of the path is in it: the PSF equals the rasterised path with room to spare.
    wide = rasterize_psf(-positions[2:7], centre="mass", max_size=301)
    pad = (wide.shape[0] - psf.shape[0]) // 2
    assert np.allclose(wide[pad:wide.shape[0] - pad, pad:wide.shape[0] - pad], psf, atol=1e-7)


def test_window_psf_cap_reports_the_clipped_mass():
    from blursynth.pairs.window_psf import window_psf_clipped

    positions = np.stack([24.0 * np.arange(12), np.zeros(12)], axis=1)
    psf, clipped = window_psf_clipped(positions, Window(0, 0, 2, 5), max_size=31)
    assert psf.shape == (31, 31) and np.isclose(psf.sum(), 1, atol=1e-6)
    assert 0.5 < clipped < 1  # 3 of 5 samples fall outside a 31 px square centred on the mass
    assert window_psf_clipped(positions, Window(0, 0, 2, 5))[1] == 0.0


def test_render_clip_rows_hold_the_whole_path_and_record_no_clipping(tmp_path, capsys):
    clip, positions = _fast_clip(tmp_path)
    out = tmp_path / "pairs"
    assert main(["frames-average", str(clip), "--window", "5", "--out", str(out)]) == 0
    assert "clipped" not in capsys.readouterr().err
    from blursynth.ops.psf import rasterize_psf

    ds = PairDataset(out)
    for i in range(len(ds)):
        row = ds[i]
        p = row["params"]
        seg = positions[p["frame_start"]:p["frame_stop"]]
        assert row["psf"].shape[0] > 96  # the 96 px path fits
        wide = rasterize_psf(-seg, centre="mass", max_size=301)
        pad = (wide.shape[0] - row["psf"].shape[0]) // 2
        assert np.allclose(wide[pad:wide.shape[0] - pad, pad:wide.shape[0] - pad], row["psf"], atol=1e-7)
        assert p["psf_clipped"] == 0.0


def test_psf_max_size_records_clipped_mass_per_row_and_warns(tmp_path, capsys):
    clip, _ = _fast_clip(tmp_path)
    out = tmp_path / "pairs"
    assert main(["frames-average", str(clip), "--window", "5", "--psf-max-size", "31", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("warning:") and "ground-truth" in line]
    assert len(warning) == 1 and "2 of 2" in warning[0] and "--psf-max-size 31" in warning[0], err
    ds = PairDataset(out)
    for i in range(len(ds)):
        assert ds[i]["psf"].shape == (31, 31)
        assert 0.5 < ds[i]["params"]["psf_clipped"] < 1
        assert ds[i]["params"]["psf_max_size"] == 31


@pytest.mark.parametrize("value", ["2", "0", "-5"])
def test_psf_max_size_too_small(clip, tmp_path, capsys, value):
    assert main(["frames-average", str(clip), "--psf-max-size", value, "--out", str(tmp_path / "o")]) == 2
    line = _one_error_line(capsys)
    assert "--psf-max-size" in line and "at least 3" in line, line
    assert not (tmp_path / "o").exists()


# --- scene cuts (issue 15, item 3) -------------------------------------------------------------


def _cut_clip(d):
    write_clip(d / "cut.mkv", two_shots(), fps=240)
    return d / "cut.mkv"


def test_a_window_across_a_scene_cut_is_skipped_and_recorded(tmp_path, capsys):
    clip = _cut_clip(tmp_path)
    out = tmp_path / "pairs"
    assert main(["frames-average", str(clip), "--window", "5", "--shard-size", "2", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 window that spans a scene cut" in err, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["planned_items"] == 4 and manifest["num_rows"] == 3 and manifest["skipped"] == 1
    skip, = manifest["shards"][1]["skipped"]
    assert (skip["index"], skip["reason"], skip["frame_start"], skip["frame_stop"], skip["cut_before_frame"]) == (
        2, "scene cut", 10, 15, 12)
    ds = PairDataset(out)
    assert sorted(ds[i]["params"]["frame_start"] for i in range(len(ds))) == [0, 5, 15]
    assert main(["dataset", "info", str(out)]) == 0
    assert "skipped (no row; listed in manifest.json): 1 scene cut" in capsys.readouterr().out
    # A rerun that remakes another shard keeps the record of the skip in the shard it keeps.
    (out / manifest["shards"][0]["file"]).unlink()
    assert main(["frames-average", str(clip), "--window", "5", "--shard-size", "2", "--out", str(out)]) == 0
    again = json.loads((out / "manifest.json").read_text())
    assert again == manifest


def test_cut_threshold_one_turns_the_check_off(tmp_path, capsys):
    clip = _cut_clip(tmp_path)
    out = tmp_path / "pairs"
    assert main(["frames-average", str(clip), "--window", "5", "--cut-threshold", "1", "--out", str(out)]) == 0
    assert "scene cut" not in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_rows"] == 4 and "skipped" not in manifest


@pytest.mark.parametrize("value", ["0", "1.5", "-0.1"])
def test_cut_threshold_out_of_range(clip, tmp_path, capsys, value):
    assert main(["frames-average", str(clip), "--cut-threshold", value, "--out", str(tmp_path / "o")]) == 2
    line = _one_error_line(capsys)
    assert "--cut-threshold" in line and "(0, 1]" in line, line
    assert not (tmp_path / "o").exists()


# --- ghosting at a low frame rate (issue 15, item 3) -------------------------------------------


def _pan_clip(d, step_px, fps=25, n=14, shape=(96, 128)):
    """A pan over the astronaut, ``step_px`` per frame, with no sidecar: motion is measured."""
    from skimage import data

    h, w = shape
    a = data.astronaut()
    frames = [np.ascontiguousarray(a[100:100 + h, 50 + step_px * i:50 + step_px * i + w]) for i in range(n)]
    write_clip(d / f"pan{step_px}.mkv", frames, fps=fps)
    return d / f"pan{step_px}.mkv"


def _warnings(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]


def test_fast_motion_between_frames_warns_of_ghosting(tmp_path, capsys):
    clip = _pan_clip(tmp_path, 8)
    assert main(["frames-average", str(clip), "--window", "5", "--out", str(tmp_path / "pairs")]) == 0
    ghost = [line for line in _warnings(capsys) if "ghost" in line]
    assert len(ghost) == 1 and "25 fps" in ghost[0] and "--interpolate 9" in ghost[0], ghost


def test_interpolation_enough_for_the_motion_does_not_warn(tmp_path, capsys):
    clip = _pan_clip(tmp_path, 8)
    assert main(["frames-average", str(clip), "--window", "3", "--interpolate", "8",
                 "--out", str(tmp_path / "pairs")]) == 0
    assert not [line for line in _warnings(capsys) if "ghost" in line]


def test_slow_motion_does_not_warn(clip, tmp_path, capsys):
    assert main(["frames-average", str(clip), "--window", "5-9", "--out", str(tmp_path / "pairs")]) == 0
    assert _warnings(capsys) == []


def test_known_motion_ghosting_is_measured_on_the_camera_path(tmp_path, capsys):
    clip, _ = _fast_clip(tmp_path)  # 24 px per frame, frames of noise: flow could not tell
    assert main(["frames-average", str(clip), "--window", "5", "--out", str(tmp_path / "pairs")]) == 0
    ghost = [line for line in _warnings(capsys) if "ghost" in line]
    assert len(ghost) == 1 and "camera path" in ghost[0] and "--interpolate 16" in ghost[0], ghost


# --- --exposure-ms (issue 15, item 3) ----------------------------------------------------------


def test_exposure_ms_draws_windows_from_the_frame_rate(tmp_path, capsys):
    write_clip(tmp_path / "fast.mkv", random_frames(30, seed=1), fps=240)
    write_clip(tmp_path / "slow.mkv", random_frames(30, seed=2), fps=60)
    out = tmp_path / "pairs"
    assert main(["frames-average", str(tmp_path / "fast.mkv"), str(tmp_path / "slow.mkv"),
                 "--exposure-ms", "50", "--out", str(out)]) == 0
    ds = PairDataset(out)
    got = {(ds[i]["params"]["fps"], ds[i]["params"]["window_frames"], ds[i]["params"]["exposure_s"])
           for i in range(len(ds))}
    assert got == {(240.0, 12, 0.05), (60.0, 3, 0.05)}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"]["exposure_ms"] == [50.0, 50.0]
    assert manifest["window_frames_per_input"] == [[12, 12], [3, 3]]


def test_exposure_ms_range_at_240_fps(clip, tmp_path):
    out = tmp_path / "pairs"
    assert main(["frames-average", str(clip), "--exposure-ms", "20-30", "--seed", "1", "--out", str(out)]) == 0
    ds = PairDataset(out)
    lengths = {ds[i]["params"]["window_frames"] for i in range(len(ds))}
    assert lengths <= {5, 6, 7} and len(lengths) > 1


@pytest.mark.parametrize("args,says", [
    (["--exposure-ms", "10", "--window", "5"], "--window or --exposure-ms"),
    (["--exposure-ms", "1-4"], "at least 2 frames"),
    (["--exposure-ms", "30-8"], "Did you mean 8-30?"),
])
def test_exposure_ms_bad_input(clip, tmp_path, capsys, args, says):
    assert main(["frames-average", str(clip), *args, "--out", str(tmp_path / "o")]) == 2
    assert says in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", ['"20-30"', "[20, 30]"])
def test_recipe_exposure_ms_builds_the_same_pairs_as_the_command(clip, tmp_path, value):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[build]\nseed = 1\n\n[[steps]]\nname = "pairs"\nrun = "frames-average"\n'
                      f'inputs = ["{clip}"]\nexposure_ms = {value}\n')
    assert main(["build", str(recipe), "--out", str(tmp_path / "b")]) == 0
    assert main(["frames-average", str(clip), "--exposure-ms", "20-30", "--seed", "1",
                 "--out", str(tmp_path / "c")]) == 0
    built, direct = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("b/pairs", "c"))
    assert built["fingerprint"] == direct["fingerprint"]
    assert built["window_frames_per_input"] == [[5, 7]]


def test_recipe_refuses_window_and_exposure_ms_together(clip, tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[[steps]]\nname = "pairs"\nrun = "frames-average"\ninputs = ["{clip}"]\n'
                      'window = "5-9"\nexposure_ms = "20-30"\n')
    assert main(["build", str(recipe), "--dry-run"]) == 2
    line = _one_error_line(capsys)
    assert "exposure_ms" in line and "not both" in line, line


def test_a_recipe_step_without_window_draws_the_commands_default_windows(clip, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[build]\nseed = 1\n\n[[steps]]\nname = "pairs"\nrun = "frames-average"\n'
                      f'inputs = ["{clip}"]\n')
    assert main(["build", str(recipe), "--out", str(tmp_path / "b")]) == 0
    assert main(["frames-average", str(clip), "--seed", "1", "--out", str(tmp_path / "c")]) == 0
    built, direct = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("b/pairs", "c"))
    assert built["fingerprint"] == direct["fingerprint"]
    assert (built["command"]["window_min"], built["command"]["window_max"]) == (5, 25)


@pytest.mark.parametrize("table, shown", [
    ('exposure_ms = "20-30"', {"exposure_ms": "20-30"}),
    ("exposure_ms = 20", {"exposure_ms": "20"}),
    ('window = "7-13"', {"window": "7-13"}),
    ('window = "9"', {"window": "9"}),
    ("gap = 1", {"window": "5-25"}),
])
def test_dry_run_shows_the_exposure_range_or_the_window_as_asked(clip, tmp_path, capsys, table, shown):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[[steps]]\nname = "pairs"\nrun = "frames-average"\ninputs = ["{clip}"]\n{table}\n')
    assert main(["build", str(recipe), "--out", str(tmp_path / "b"), "--dry-run"]) == 0
    described = json.loads(capsys.readouterr().out.splitlines()[2])
    # Only what the run uses: an exposure range's windows come from it, not window_min/max.
    assert {k: described.get(k) for k in ("exposure_ms", "window")} == {"exposure_ms": None, "window": None, **shown}
    assert not {"window_min", "window_max"} & set(described), described


@pytest.mark.parametrize("args, says", [
    (["--exposure-ms", "5"], "--exposure-ms 5 at 240 fps is 1.2 frames;"),
    (["--exposure-ms", "4-5"], "--exposure-ms 4-5 at 240 fps is 0.96-1.2 frames;"),
    (["--window", "50"], "fewer than the shortest window (50, --window 50);"),
])
def test_one_value_is_echoed_as_one_value(clip, tmp_path, capsys, args, says):
    assert main(["frames-average", str(clip), *args, "--out", str(tmp_path / "o")]) == 2
    line = _one_error_line(capsys)
    assert says in line, line


def test_ghosting_advice_past_the_largest_interpolation(tmp_path, capsys):
    clip, _ = _fast_clip(tmp_path, step_px=40.0)  # 40 px a frame: even 16 in-between frames leave 2.5 px
    assert main(["frames-average", str(clip), "--window", "3", "--out", str(tmp_path / "pairs")]) == 0
    ghost = [line for line in _warnings(capsys) if "ghost" in line]
    assert len(ghost) == 1 and "still leaves 2.5 px steps" in ghost[0] and "higher frame rate" in ghost[0], ghost


def test_a_run_resumed_from_its_progress_file_keeps_the_skip(tmp_path, capsys):
    from blursynth.dataset.schema import MANIFEST, PROGRESS

    clip = _cut_clip(tmp_path)
    out = tmp_path / "pairs"
    args = ["frames-average", str(clip), "--window", "5", "--shard-size", "2", "--out", str(out)]
    assert main(args) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    # As a run stopped after its second shard leaves it: that shard's record in the progress file.
    second, first = manifest["shards"][1], manifest["shards"][0]
    name = second["file"].split("/")[-1]
    (out / PROGRESS).write_text(json.dumps({
        "kind": "pairs", "fingerprint": manifest["fingerprint"], "n_shards": 2,
        "done": {name: {k: second[k] for k in ("rows", "sha256", "skipped")}}}))
    (out / MANIFEST).unlink()
    (out / first["file"]).unlink()
    assert main(args) == 0
    assert json.loads((out / MANIFEST).read_text()) == manifest


@pytest.mark.parametrize("key,value", [("cut_threshold", "2.0"), ("psf_max_size", "1"), ("exposure_ms", '"30-8"')])
def test_recipe_frames_keys_are_checked_at_their_line(clip, tmp_path, capsys, key, value):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[[steps]]\nname = "pairs"\nrun = "frames-average"\ninputs = ["{clip}"]\n{key} = {value}\n')
    assert main(["build", str(recipe), "--dry-run"]) == 2
    line = _one_error_line(capsys)
    assert f"{recipe}:5:" in line and key in line, line


def test_issue_repro_render_clip_psfs_hold_the_path(tmp_path, capsys):
    # The issue's repro, small: a 30 fps render-clip whose camera covers ~150 px per 5-frame window.
    from skimage import data

    from blursynth.ops.psf import rasterize_psf
    from blursynth.sources.photos import save_rgb8

    save_rgb8(tmp_path / "photo.png", np.ascontiguousarray(np.tile(data.astronaut()[::2, ::2], (2, 2, 1))))
    clip = tmp_path / "c.mkv"
    assert main(["render-clip", str(tmp_path / "photo.png"), "--out", str(clip), "--fps", "30", "--frames", "12",
                 "--length-px", "400", "--size", "24x24", "--seed", "1"]) == 0
    out = tmp_path / "pairs"
    assert main(["frames-average", str(clip), "--window", "5", "--out", str(out)]) == 0
    # Each 24 px frame shows another part of the photo, yet a render-clip clip has no scene cuts.
    assert "scene cut" not in capsys.readouterr().err
    positions = np.array(json.loads((tmp_path / "c.mkv.json").read_text())["positions_xy"])
    ds = PairDataset(out)
    sides = []
    for i in range(len(ds)):
        row = ds[i]
        seg = positions[row["params"]["frame_start"]:row["params"]["frame_stop"]]
        whole = rasterize_psf(-seg, centre="mass", max_size=1001)
        assert row["psf"].shape == whole.shape and np.allclose(row["psf"], whole, atol=1e-7)
        assert row["params"]["psf_clipped"] == 0.0
        sides.append(whole.shape[0])
    assert max(sides) > 63  # the rasteriser's default canvas would have cut these
