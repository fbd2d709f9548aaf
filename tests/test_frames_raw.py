"""``blursynth frames-average --pipeline raw``: windows averaged in linear light, then the RAW
camera chain (unprocess, mosaic, noise, develop) on the mean and on the sharp frame."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blursynth.cli import main

from .conftest import error_line, write_clip

RAW = ("--window", "4-6", "--shard-size", "2", "--cut-threshold", "1", "--pipeline", "raw")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 20-frame 24x32 clip of a photo panning one pixel a frame (lossless)."""
    from skimage import data

    d = tmp_path_factory.mktemp("rawclip")
    base = data.astronaut()[100:124, 100:132]
    write_clip(d / "clip.mkv", [np.ascontiguousarray(np.roll(base, i, axis=1)) for i in range(20)])
    return d / "clip.mkv"


@pytest.fixture(scope="module")
def raw_runs(clip, tmp_path_factory):
    """The same RAW run with 1 and 2 workers."""
    outs = []
    for workers in (1, 2):
        out = tmp_path_factory.mktemp(f"fw{workers}") / "pairs"
        code = main(["frames-average", str(clip), *RAW, "--noise", "model", "--raw-bits", "12",
                     "--jpeg", "90", "--workers", str(workers), "--out", str(out)])
        assert code == 0
        outs.append(out)
    return outs


def test_raw_bytes_do_not_depend_on_workers(raw_runs):
    one, two = raw_runs
    shards = sorted(p.name for p in (one / "data").glob("*.parquet"))
    assert len(shards) > 1
    for name in shards:
        assert (one / "data" / name).read_bytes() == (two / "data" / name).read_bytes(), name


def test_raw_rows_record_their_draws_and_rebuild_exactly(raw_runs, clip):
    from blursynth.dataset import PairDataset
    from blursynth.ops.raw import RawParams
    from blursynth.pairs.frames import STREAM_RAW, STREAM_RAW_NOISE, rebuild_pair

    ds = PairDataset(raw_runs[0])
    manifest = json.loads((raw_runs[0] / "manifest.json").read_text())
    assert manifest["command"]["pipeline"] == "raw" and manifest["command"]["raw"]["noise"] == "model"
    for i in range(len(ds)):
        row = ds[i]
        p = row["params"]
        assert RawParams.from_dict(p["raw"]).to_dict() == p["raw"]
        assert p["raw"]["raw_bits"] == 12 and p["raw"]["shot_noise"] > 0 and p["jpeg_quality"] == 90
        assert p["raw_stream"] == [0, row["index"], STREAM_RAW]
        assert p["noise_stream"] == [0, row["index"], STREAM_RAW_NOISE]
        blurred, sharp = rebuild_pair(row, clip)
        assert np.array_equal(blurred, row["blurred"]) and np.array_equal(sharp, row["sharp"])
        mosaic = rebuild_pair(row, clip, mosaic_only=True)
        assert mosaic.shape == row["blurred"].shape[:2] and mosaic.dtype == np.float32
        levels = mosaic * 4095
        assert np.allclose(levels, np.rint(levels), atol=1e-3)  # 12-bit quantised


def test_static_clip_pair_differs_only_by_noise(tmp_path):
    """Frames that do not change: without noise the blurred image is the sharp one, byte for byte
    (the mean of equal frames is that frame in linear light, exactly); noise changes the blurred only."""
    from blursynth.dataset import PairDataset

    frame = np.empty((16, 24, 3), np.uint8)
    frame[...] = (150, 90, 60)
    frame[:, 12:] = (40, 120, 200)  # one edge
    write_clip(tmp_path / "still.mkv", [frame] * 16)
    for name, extra in (("quiet", ()), ("noisy", ("--noise", "0.004,0.01"))):
        assert main(["frames-average", str(tmp_path / "still.mkv"), *RAW, "--camera", "Nikon D700",
                     "--out", str(tmp_path / name), *extra]) == 0
    quiet, noisy = PairDataset(tmp_path / "quiet"), PairDataset(tmp_path / "noisy")
    assert len(quiet) > 1
    for i in range(len(quiet)):
        q, n = quiet[i], noisy[i]
        assert "noise_stream" not in q["params"] and q["params"]["raw"]["camera"] == "Nikon D700"
        assert np.array_equal(q["blurred"], q["sharp"])
        # The chain keeps the frame's colours (demosaicing changes only the pixels at the edge).
        assert np.abs(q["sharp"][:, :10].astype(int) - frame[:, :10]).max() <= 1
        assert np.abs(q["sharp"][:, 14:].astype(int) - frame[:, 14:]).max() <= 1
        assert n["params"]["raw"]["shot_noise"] == 0.004 and n["params"]["raw"]["read_noise"] == 0.01
        assert np.array_equal(n["sharp"], q["sharp"]) and not np.array_equal(n["blurred"], q["blurred"])


@pytest.mark.usefixtures("kernel")
def test_window_linear_is_the_exact_mean():
    from blursynth.ops.average import LinearAverager, linear_frame
    from blursynth.ops.color import CameraResponse
    from blursynth.ops.encode8 import linear_lut

    frames = [np.random.default_rng(k).integers(0, 256, (9, 13, 3), dtype=np.uint8) for k in range(6)]
    avg = LinearAverager(frames[0].shape, "srgb", max_items=4)
    first = avg.window_linear(frames[:4])
    slid = avg.window_linear(frames[4:], frames[:2], hold=False)  # frames 2..5, by subtracting
    fresh = LinearAverager(frames[0].shape, "srgb", max_items=4).window_linear(frames[2:], hold=False)
    assert first.dtype == np.float32 and np.array_equal(slid, fresh)
    lut, scale = linear_lut(CameraResponse.parse("srgb"))
    sums = sum(lut[f].astype(np.int64) for f in frames[:4])
    assert np.array_equal(first, (sums / (4.0 * scale)).astype(np.float32))
    same = LinearAverager(frames[0].shape, "srgb", max_items=3).window_linear([frames[1]] * 3)
    assert np.array_equal(same, linear_frame(frames[1], "srgb"))


def test_rgb_settings_record_nothing_new():
    from blursynth.pairs.frames import RAW_FIELDS, FramesAverageSettings

    assert not set(RAW_FIELDS) & set(FramesAverageSettings().recorded()) and "raw" not in \
        FramesAverageSettings().recorded()
    raw = FramesAverageSettings(pipeline="raw", raw_bits=(10, 14), jpeg="80-90").recorded()
    assert raw["pipeline"] == "raw" and raw["raw"]["raw_bits"] == [10, 14]
    assert raw["raw"]["degradations"]["jpeg_quality"] == "80-90"


@pytest.mark.parametrize("args, match", [
    (("--camera", "Nikon D700"), "--camera is an option of the RAW path; add --pipeline raw"),
    (("--noise", "0.01"), "--noise is an option of the RAW path; add --pipeline raw"),
    (("--noise", "model"), "--noise model is an option of the RAW path"),
    (("--jpeg", "90"), "--jpeg is an option of the RAW path; add --pipeline raw"),
    (("--raw-bits", "12"), "--raw-bits is an option of the RAW path"),
    (("--pipeline", "raw", "--raw-bits", "16"), "raw bits must be an integer in [10, 14]"),
    (("--pipeline", "raw", "--camera", "Leica M9"), "unknown camera 'Leica M9'"),
    (("--pipeline", "raw", "--jpeg", "101"), "jpeg"),
    (("--pipeline", "raw", "--noise", "lots"), "noise"),
    (("--highlights", "2-8"), "--highlights is an option of the RAW path; add --pipeline raw"),
    (("--exposure-gain", "1-2"), "--exposure-gain is an option of the RAW path; add --pipeline raw"),
    (("--pipeline", "raw", "--highlight-regions", "20"), "--highlight-regions needs --highlights"),
    (("--pipeline", "raw", "--highlight-threshold", "0.8"), "--highlight-threshold needs --highlights"),
    (("--pipeline", "raw", "--highlights", "0.5-2"), "highlight"),
])
def test_bad_raw_input_is_one_line(run_cli, clip, tmp_path, args, match):
    r = run_cli("frames-average", clip, "--window", "4", "--out", tmp_path / "out", *args)
    assert r.code == 2, r
    assert match in error_line(r)
    assert not (tmp_path / "out").exists()


def test_recipe_keys(clip, tmp_path):
    from blursynth.build import plan_build
    from blursynth.errors import BlursynthError

    def recipe(extra):
        path = tmp_path / "r.toml"
        path.write_text(f'[inputs.clips]\npath = "{clip}"\n\n[[steps]]\nname = "avg"\n'
                        f'run = "frames-average"\ninputs = ["@clips"]\nwindow = "4"\n{extra}\n')
        return path

    plan = plan_build(recipe('pipeline = "raw"\ncamera = "Nikon D700"\nraw_bits = [10, 14]\n'
                             'demosaic = "bilinear"\nnoise = "model"\njpeg = "80-90"'),
                      out=tmp_path / "out")
    s = plan.steps[0].settings[1]
    assert (s.pipeline, s.camera, s.raw_bits, s.demosaic, s.noise, s.jpeg) == (
        "raw", "Nikon D700", (10, 14), "bilinear", "model", "80-90")
    with pytest.raises(BlursynthError, match="camera is an option of the RAW path"):
        plan_build(recipe('camera = "Nikon D700"'), out=tmp_path / "out2")


@pytest.fixture(scope="module")
def lamp_clip(tmp_path_factory):
    """A dark 24x40 clip with a bright orange 8x10 block moving one pixel a frame (a lamp)."""
    d = tmp_path_factory.mktemp("lamp")
    frames = []
    for i in range(16):
        f = np.full((24, 40, 3), 30, np.uint8)
        f[8:16, 6 + i:16 + i] = (255, 180, 40)
        frames.append(f)
    write_clip(d / "lamp.mkv", frames)
    return d / "lamp.mkv"


@pytest.fixture(scope="module")
def lamp_runs(lamp_clip, tmp_path_factory):
    """The lamp clip without a boost, and with --highlights 4 (1 and 2 workers) and --exposure-gain."""
    runs = {}
    for name, extra in (("plain", ()), ("boost1", ("--highlights", "4", "--workers", "1")),
                        ("boost2", ("--highlights", "4", "--workers", "2")),
                        ("regions", ("--highlights", "4", "--highlight-regions", "200")),
                        ("gain", ("--exposure-gain", "1.5"))):
        out = tmp_path_factory.mktemp(name) / "pairs"
        assert main(["frames-average", str(lamp_clip), "--window", "5", "--shard-size", "2",
                     "--cut-threshold", "1", "--pipeline", "raw", "--camera", "Nikon D700",
                     "--noise", "model", "--out", str(out), *extra]) == 0
        runs[name] = out
    return runs


def test_highlights_boost_the_window_mean_only_where_it_is_near_white(lamp_runs, lamp_clip):
    from blursynth.dataset import PairDataset
    from blursynth.pairs.frames import rebuild_pair

    plain, boost = PairDataset(lamp_runs["plain"]), PairDataset(lamp_runs["boost1"])
    manifest = json.loads((lamp_runs["boost1"] / "manifest.json").read_text())
    assert manifest["command"]["raw"]["degradations"]["highlight_gain"] == "4"
    assert len(plain) > 1
    for i in range(len(plain)):
        p, b = plain[i], boost[i]
        assert b["params"]["highlight_gain"] == 4.0 and b["params"]["highlight_threshold"] == 0.9
        # The boost draws from the degradations' stream in its fixed slot: nothing else moves.
        assert b["params"]["raw"] == p["params"]["raw"]
        assert np.array_equal(b["sharp"], p["sharp"])  # the sharp frame keeps its exposure
        diff = np.abs(b["blurred"].astype(int) - p["blurred"].astype(int)).max(axis=2) > 0
        # Only the lamp's rows change (the mean's near-white pixels, spread by demosaicing and
        # the noise field's shared draws staying put elsewhere); brighter on average there.
        assert diff.any() and not diff[:5].any() and not diff[19:].any()
        assert b["blurred"][8:16].astype(int).sum() > p["blurred"][8:16].astype(int).sum()
        blurred, sharp = rebuild_pair(b, lamp_clip)
        assert np.array_equal(blurred, b["blurred"]) and np.array_equal(sharp, b["sharp"])


def test_highlight_bytes_do_not_depend_on_workers(lamp_runs):
    one, two = lamp_runs["boost1"], lamp_runs["boost2"]
    shards = sorted(p.name for p in (one / "data").glob("*.parquet"))
    assert len(shards) > 1
    for name in shards:
        assert (one / "data" / name).read_bytes() == (two / "data" / name).read_bytes(), name


def test_highlight_regions_and_exposure_gain(lamp_runs, lamp_clip):
    from blursynth.dataset import PairDataset
    from blursynth.pairs.frames import rebuild_pair

    plain, boost = PairDataset(lamp_runs["plain"]), PairDataset(lamp_runs["boost1"])
    regions, gain = PairDataset(lamp_runs["regions"]), PairDataset(lamp_runs["gain"])
    for i in range(len(plain)):
        r, g = regions[i], gain[i]
        assert r["params"]["highlight_regions"] == 200 and r["params"]["highlight_region_threshold"] == 0.5
        # The streak's dimmer edge (mean between 0.5 and 0.9) is boosted too, as a small region.
        assert r["blurred"].astype(int).sum() > boost[i]["blurred"].astype(int).sum()
        assert g["params"]["exposure_gain"] == 1.5
        # The exposure gain brightens both images.
        assert g["sharp"].astype(int).sum() > plain[i]["sharp"].astype(int).sum()
        assert g["blurred"].astype(int).sum() > plain[i]["blurred"].astype(int).sum()
        for row in (r, g):
            blurred, sharp = rebuild_pair(row, lamp_clip)
            assert np.array_equal(blurred, row["blurred"]) and np.array_equal(sharp, row["sharp"])


def test_highlight_recipe_keys_and_rgb_record(clip, tmp_path):
    from blursynth.build import plan_build
    from blursynth.pairs.frames import FramesAverageSettings

    assert FramesAverageSettings().recorded() == FramesAverageSettings(
        highlight_threshold=0.9).recorded()
    path = tmp_path / "r.toml"
    path.write_text(f'[inputs.clips]\npath = "{clip}"\n\n[[steps]]\nname = "avg"\n'
                    'run = "frames-average"\ninputs = ["@clips"]\nwindow = "4"\npipeline = "raw"\n'
                    'highlights = "2-8"\nhighlight_regions = 50\nexposure_gain = "1-2"\n')
    s = plan_build(path, out=tmp_path / "out").steps[0].settings[1]
    assert (s.highlights, s.highlight_regions, s.exposure_gain) == ("2-8", 50, "1-2")
    d = s.recorded()["raw"]["degradations"]
    assert d["highlight_gain"] == "2-8" and d["highlight_regions"] == 50 and d["exposure_gain"] == "1-2"
