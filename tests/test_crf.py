"""Camera response curves beyond gamma: the named curves, the filmic S-curve and the polynomial
response; exact 8-bit edges (decode tables, decision levels, integer sums); --crf random per
pair in blur and frames-average; the manifests' camera_response tag; the bad-input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blursynth.errors import BadInputError, SettingError
from blursynth.ops.color import (
    RANDOM_DEFAULT, CameraResponse, crf_option_spec, describe_crf, parse_crf_option,
)
from blursynth.ops.encode8 import (
    _float_tables, encode_planes, encode_uint8, float_thresholds, linear_lut, sum_readout, sum_thresholds,
)

from .conftest import two_photos

NEW = ["rec709", "smpte240m", "romm", "lstar", "hlg", "filmic", "filmic:2.5,4,0.7", "filmic:0.5,-3,1.5",
       "poly:0,1.6,-0.6", "poly:0.02,1.9,-1.3,0.45"]
ALL = ["gamma:2.2", "srgb", "none", *NEW]


@pytest.mark.parametrize("spec", ALL)
def test_every_curve_is_monotonic_with_exact_ends_and_an_inverse(spec):
    crf = CameraResponse.parse(spec)
    table = crf.decode_table()
    assert table.dtype == np.float32 and table.shape == (256,)
    assert table[0] == 0.0 and table[255] == 1.0
    assert (np.diff(table) > 0).all()
    x = np.linspace(0, 1, 20001)
    d = crf.decode(x)
    assert (np.diff(d) >= 0).all() and d[0] == 0 and d[-1] == 1
    # encode inverts decode (exactly on the 8-bit codes, which no knee gap holds).
    codes = np.arange(256) / 255.0
    assert np.abs(crf.encode(crf.decode(codes)) - codes).max() < 1e-9
    y = np.linspace(0, 1, 20001)
    assert np.abs(crf.decode(crf.encode(y)) - y).max() < 1e-9
    # The table is the curve at the codes, cast once.
    assert np.array_equal(table, crf.decode(codes).astype(np.float32))
    # The canonical text reads back to the same (hashable) curve.
    again = CameraResponse.parse(crf.spec)
    assert again == crf and hash(again) == hash(crf)


def test_named_curves_match_their_standards():
    rec709 = CameraResponse.parse("rec709")
    assert rec709.encode(np.float64(0.01)) == pytest.approx(0.045)  # 4.5 L below 0.018
    assert rec709.encode(np.float64(0.5)) == pytest.approx(1.099 * 0.5**0.45 - 0.099)
    assert CameraResponse.parse("smpte240m").encode(np.float64(0.5)) == pytest.approx(1.1115 * 0.5**0.45 - 0.1115)
    assert CameraResponse.parse("romm").encode(np.float64(0.5)) == pytest.approx(0.5 ** (1 / 1.8))
    assert CameraResponse.parse("romm").encode(np.float64(0.001)) == pytest.approx(0.016)
    assert CameraResponse.parse("lstar").encode(np.float64(0.18)) == pytest.approx(0.4950, abs=1e-4)  # L* of 18% grey
    hlg = CameraResponse.parse("hlg")
    assert hlg.encode(np.float64(1 / 12)) == pytest.approx(0.5)
    assert hlg.encode(np.float64(1.0)) == 1.0 and float(hlg.decode(np.float64(0.75))) == pytest.approx(0.26496, abs=1e-4)
    # The filmic default is an S-curve: convex toe, concave shoulder, 18% grey near sRGB's.
    filmic = CameraResponse.parse("filmic")
    q = np.linspace(0, 1, 1001)
    d2 = np.diff(filmic.encode(q), 2)
    assert d2[:30].min() > 0 and d2[-300:].max() < 0
    assert abs(float(filmic.encode(np.float64(0.18))) - float(CameraResponse.parse("srgb").encode(np.float64(0.18)))) < 0.01


def test_poly_is_normalised_to_the_unit_square():
    crf = CameraResponse.parse("poly:0.02,1.9,-1.3,0.45")
    p = np.polynomial.Polynomial([0.02, 1.9, -1.3, 0.45])
    y = np.array([0.1, 0.5, 0.9])
    assert np.allclose(crf.encode(y), (p(y) - p(0)) / (p(1) - p(0)))


@pytest.mark.parametrize("text", ["gamma:2.2", "gamma:2.19921875", "filmic:1.4,2.5", "poly:0,1.6,-0.6",
                                  "rec709", "BT709", "prophoto"])
def test_spec_reads_back_exactly(text):
    crf = CameraResponse.parse(text)
    assert CameraResponse.parse(crf.spec) == crf
    assert crf_option_spec(text) == crf.spec


def test_gamma_spec_keeps_its_old_text():
    # Recorded params and fingerprints hold these texts: they must not change.
    assert [CameraResponse.parse(t).spec for t in ("gamma", "gamma:2.4", "gamma:2.0", "srgb", "none")] == \
        ["gamma:2.2", "gamma:2.4", "gamma:2", "srgb", "none"]


def test_torch_follows_numpy_for_the_new_curves():
    torch = pytest.importorskip("torch")
    for spec in ("rec709", "filmic", "poly:0,1.6,-0.6"):
        crf = CameraResponse.parse(spec)
        x = torch.linspace(0, 1, 101)
        assert torch.allclose(crf.decode(x), torch.from_numpy(crf.decode(x.numpy())))
        assert crf.decode(x).dtype == torch.float32
        assert torch.equal(crf.decode_uint8(torch.arange(256, dtype=torch.uint8)),
                           torch.from_numpy(crf.decode_table().copy()))


@pytest.mark.parametrize("text", [
    "filmic:1.4", "filmic:0,2,1", "filmic:1.4,2,0", "filmic:1.4,20,1", "filmic:a,b", "poly:1",
    "poly:0,1,-1", "poly:0,-1", "poly:1,0", "poly:0,1,2,3,4,5,6,7,8,9,10", "poly:0,nan", "rec709:2",
    "aces", "random",
])
def test_bad_curves_are_refused(text):
    with pytest.raises(BadInputError):
        CameraResponse.parse(text)


def test_non_monotonic_poly_names_the_problem():
    with pytest.raises(BadInputError, match="not increasing"):
        CameraResponse.parse("poly:0,2,-1.5")  # slope 2 - 3x < 0 above 2/3


# --- the 8-bit encoder and integer sums ----------------------------------------------------------

@pytest.mark.parametrize("spec", NEW)
def test_encoders_agree_and_round_to_nearest(spec):
    crf = CameraResponse.parse(spec)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.random(20000), crf.decode_table(), [0, 1]]).astype(np.float32)
    planes = x.reshape(1, 1, -1)
    via_planes = encode_planes(crf, planes)[0, :, 0]
    via_search = encode_uint8(crf, x)
    assert np.array_equal(via_planes, via_search)
    exact = np.floor(255 * crf.encode(x.astype(np.float64)) + 0.5)
    # Away from a rounding tie the code is the exact one.
    tie = np.abs(255 * crf.encode(x.astype(np.float64)) % 1 - 0.5) < 1e-4
    assert np.array_equal(via_search[~tie], exact[~tie].astype(np.uint8))
    # Each code's own linear value encodes back to it.
    assert np.array_equal(encode_uint8(crf, crf.decode_table()), np.arange(256, dtype=np.uint8))


def test_caches_key_on_the_whole_curve():
    a, b = CameraResponse.parse("filmic:1.4,2,1"), CameraResponse.parse("filmic:2.5,4,0.7")
    assert not np.array_equal(float_thresholds(a), float_thresholds(b))
    assert _float_tables(a) is _float_tables(CameraResponse.parse("filmic"))


@pytest.mark.parametrize("spec", NEW + ["gamma:5"])
@pytest.mark.parametrize("n", [1, 3, 16])
def test_sum_readout_matches_thresholds_for_every_curve(spec, n):
    lut, scale = linear_lut(spec)
    assert lut[0] == 0 and lut[255] == scale
    T = sum_thresholds(spec, n)
    readout = sum_readout(spec, n)
    rng = np.random.default_rng(n)
    sums = np.concatenate([rng.integers(0, n * scale + 1, 50000), T[1:256].astype(np.int64),
                           T[1:256].astype(np.int64) - 1, [0, n * scale]]).clip(0, n * scale)
    sums = sums.astype(np.uint32 if n * scale < 2**32 else np.uint64)
    expected = np.searchsorted(T, sums.astype(np.uint64), side="right") - 1
    assert np.array_equal(readout.encode(sums), expected.astype(np.uint8))


@pytest.mark.parametrize("spec", ["rec709", "smpte240m", "romm", "lstar", "hlg", "filmic", "poly:0,1.6,-0.6"])
def test_averaging_identical_frames_gives_them_back(spec):
    from blursynth.ops.average import average_frames

    frame = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    assert np.array_equal(average_frames([frame] * 5, crf=spec), frame)


def average_codes(crf):
    from blursynth.ops.average import average_frames

    frame = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    return average_frames([frame] * 4, crf=crf)[..., 0].ravel()


def test_a_steep_curve_falls_back_to_the_exact_walk():
    # A curve whose decision levels crowd some buckets: the encoders still agree.
    crf = CameraResponse.parse("filmic:0.2,0,1")  # encodes like linear ** 0.2 near black
    assert not _float_tables(crf)[3] and not sum_readout(crf, 4).one_step
    x = np.random.default_rng(1).random(5000).astype(np.float32) ** 6
    assert np.array_equal(encode_planes(crf, x.reshape(1, 1, -1))[0, :, 0], encode_uint8(crf, x))
    T = sum_thresholds(crf, 4)
    r = sum_readout(crf, 4)
    # Identical frames average back to themselves, except the darkest codes, whose linear values
    # are below the integer table's resolution (2**-24), as with gamma:5.
    codes = average_codes(crf)
    lut, _ = linear_lut(crf)
    assert np.array_equal(codes[lut > 16], np.arange(256)[lut > 16]) and (lut > 16).sum() > 200
    sums = np.random.default_rng(2).integers(0, 4 << 24, 20000).astype(np.uint32)
    assert np.array_equal(r.encode(sums), (np.searchsorted(T, sums.astype(np.uint64), side="right") - 1).astype(np.uint8))


# --- --crf random ----------------------------------------------------------------------------------

def test_random_sets():
    assert [c.spec for c in parse_crf_option("random")] == [CameraResponse.parse(s).spec for s in RANDOM_DEFAULT]
    assert [c.spec for c in parse_crf_option("random:srgb, filmic:2,3 ,poly:0,1.6,-0.6,hlg")] == \
        ["srgb", "filmic:2,3,1", "poly:0,1.6,-0.6", "hlg"]
    tag = describe_crf("random:srgb,rec709")
    assert tag == {"crf": "random:srgb,rec709", "curves": ["srgb", "rec709"], "per_pair": True}
    assert describe_crf("gamma") == {"crf": "gamma:2.2", "curves": ["gamma:2.2"], "per_pair": False}


@pytest.mark.parametrize("text", ["random:", "random:srgb,srgb", "random:srgb,gamma,gamma:2.2", "random:1.2,srgb",
                                  "random:srgb,aces", "random:filmic:0,1"])
def test_bad_random_sets_are_refused(text):
    with pytest.raises(BadInputError, match="--crf"):
        parse_crf_option(text)


# --- blur: a curve per pair --------------------------------------------------------------------

def _blur(photos, bank, out, **kw):
    from blursynth.pairs.shake import BlurSettings, blur_photos

    base = dict(photos=str(photos), kernels=str(bank), per_image=3, crop=(32, 32), seed=3)
    base.update(kw)
    return blur_photos(BlurSettings(**base), out, progress=False)


def test_blur_random_draws_a_recorded_curve_per_pair_and_rebuilds(photos, bank, tmp_path):
    from blursynth.dataset import PairDataset
    from blursynth.pairs.shake import rebuild_pair

    manifest = _blur(photos, bank, tmp_path / "r", crf="random:srgb,rec709,filmic,hlg")
    rows = list(PairDataset(tmp_path / "r"))
    drawn = [r["params"]["crf"] for r in rows]
    assert set(drawn) <= {"srgb", "rec709", "filmic:1.4,2,1", "hlg"} and len(set(drawn)) >= 3
    for row in rows:
        b, s = rebuild_pair(row, photos)
        assert np.array_equal(b, row["blurred"]) and np.array_equal(s, row["sharp"])
    on_disk = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert on_disk["camera_response"] == {"crf": "random:srgb,rec709,filmic:1.4,2,1,hlg",
                                          "curves": ["srgb", "rec709", "filmic:1.4,2,1", "hlg"],
                                          "per_pair": True}
    assert on_disk["command"]["crf"] == "random:srgb,rec709,filmic:1.4,2,1,hlg"
    # The curve has its own stream: every other draw (kernel, crop) is that of a fixed curve.
    _blur(photos, bank, tmp_path / "f", crf="srgb")
    fixed = list(PairDataset(tmp_path / "f"))
    for a, b in zip(rows, fixed):
        pa, pb = dict(a["params"]), dict(b["params"])
        pa.pop("crf"), pb.pop("crf")
        assert pa == pb
        if a["params"]["crf"] == "srgb":
            assert np.array_equal(a["blurred"], b["blurred"])
    assert manifest["fingerprint"] != json.loads((tmp_path / "f" / "manifest.json").read_text())["fingerprint"]


def test_blur_fixed_curve_is_tagged_and_new_curves_render(photos, bank, tmp_path):
    from blursynth.dataset import PairDataset

    _blur(photos, bank, tmp_path / "g", per_image=1)
    tag = json.loads((tmp_path / "g" / "manifest.json").read_text())["camera_response"]
    assert tag == {"crf": "gamma:2.2", "curves": ["gamma:2.2"], "per_pair": False}
    _blur(photos, bank, tmp_path / "p", per_image=1, crf="poly:0,1.6,-0.6")
    assert {r["params"]["crf"] for r in PairDataset(tmp_path / "p")} == {"poly:0,1.6,-0.6"}


def test_raw_path_takes_a_random_curve(photos, bank, tmp_path):
    from blursynth.dataset import PairDataset
    from blursynth.pairs.shake import rebuild_pair

    _blur(photos, bank, tmp_path / "raw", per_image=2, pipeline="raw", crf="random:rec709,filmic,lstar")
    rows = list(PairDataset(tmp_path / "raw"))
    assert {r["params"]["crf"] for r in rows} <= {"rec709", "filmic:1.4,2,1", "lstar"}
    for row in rows[:2]:
        b, s = rebuild_pair(row, photos)
        assert np.array_equal(b, row["blurred"]) and np.array_equal(s, row["sharp"])


# --- frames-average: a curve per window ----------------------------------------------------------

@pytest.mark.parametrize("overlap,interpolate", [(0, 1), (3, 1), (2, 2)])
def test_average_windows_takes_a_curve_per_window(overlap, interpolate):
    from blursynth.ops.average import average_frames
    from blursynth.pairs.frame_average import average_windows
    from blursynth.sources.windows import plan_windows

    from .conftest import random_frames

    frames = random_frames(50, shape=(8, 8, 3), seed=3)
    wins = plan_windows([50], window_min=4, window_max=7, seed=2, overlap=overlap)
    curves = [CameraResponse.parse(s) for s in ("srgb", "filmic", "rec709")]
    of = {w.index: curves[(w.index * 7) % 3] for w in wins}
    got = list(average_windows(enumerate(frames), wins, crf=lambda w: of[w.index], interpolate=interpolate))
    assert [w for w, _, _ in got] == wins
    switched_in_overlap = 0
    for n, (w, blurred, sharp) in enumerate(got):
        alone = next(average_windows(enumerate(frames), [w], crf=of[w.index], interpolate=interpolate))
        assert np.array_equal(blurred, alone[1]) and np.array_equal(sharp, alone[2])
        assert np.array_equal(sharp, frames[w.sharp])
        if n and of[w.index] != of[wins[n - 1].index] and w.sharp < wins[n - 1].stop:
            switched_in_overlap += 1
        if interpolate == 1:
            assert np.array_equal(blurred, average_frames(frames[w.start:w.stop], of[w.index]))
    # The case that needs the held frames (the curve changes where the sharp frame is shared)
    # occurs in the overlap-3 run.
    assert switched_in_overlap or overlap != 3


def test_frames_average_random_records_and_rebuilds(tmp_path):
    from blursynth.dataset import PairDataset
    from blursynth.pairs.frames import FramesAverageSettings, rebuild_pair, write_frame_pairs

    from .conftest import random_frames, write_clip

    write_clip(tmp_path / "c.mkv", random_frames(60, shape=(16, 16, 3), seed=5))
    settings = FramesAverageSettings(window_min=3, window_max=5, seed=2, crf="random:srgb,hlg,lstar")
    write_frame_pairs([tmp_path / "c.mkv"], tmp_path / "out", settings, progress=False)
    rows = list(PairDataset(tmp_path / "out"))
    assert len({r["params"]["crf"] for r in rows}) == 3
    for row in rows[:6]:
        b, s = rebuild_pair(row, tmp_path / "c.mkv")
        assert np.array_equal(b, row["blurred"]) and np.array_equal(s, row["sharp"])
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["camera_response"] == {"crf": "random:srgb,hlg,lstar", "curves": ["srgb", "hlg", "lstar"],
                                           "per_pair": True}
    # The windows do not depend on the curves (their own stream).
    write_frame_pairs([tmp_path / "c.mkv"], tmp_path / "fixed",
                      FramesAverageSettings(window_min=3, window_max=5, seed=2, crf="hlg"), progress=False)
    fixed = list(PairDataset(tmp_path / "fixed"))
    assert [r["params"]["frame_start"] for r in fixed] == [r["params"]["frame_start"] for r in rows]
    same = [(a, b) for a, b in zip(rows, fixed) if a["params"]["crf"] == "hlg"]
    assert same and all(np.array_equal(a["blurred"], b["blurred"]) for a, b in same)
    assert json.loads((tmp_path / "fixed" / "manifest.json").read_text())["camera_response"]["per_pair"] is False
    # A set of one curve is that curve, drawn per pair: the same pixels.
    write_frame_pairs([tmp_path / "c.mkv"], tmp_path / "one",
                      FramesAverageSettings(window_min=3, window_max=5, seed=2, crf="random:hlg"), progress=False)
    one = list(PairDataset(tmp_path / "one"))
    assert all(np.array_equal(a["blurred"], b["blurred"]) and a["params"] == b["params"] for a, b in zip(one, fixed))


# --- the command line ------------------------------------------------------------------------------

BAD_CRF = [("aces", "unknown camera response"), ("poly:0,2,-1.5", "not increasing"),
           ("filmic:1.4,2,0", "filmic c"), ("random:srgb,srgb", "twice"), ("random:", "names no curves"),
           ("random:srgb,log", "unknown camera response")]


@pytest.mark.parametrize("crf,match", BAD_CRF)
def test_blur_refuses_bad_curves_in_one_line(run_cli, photos, bank, tmp_path, crf, match):
    from .conftest import error_line

    out = tmp_path / "out"
    r = run_cli("blur", photos, "--kernels", bank, "--out", out, "--crf", crf)
    assert r.code == 2, r
    assert match in error_line(r)
    assert not out.exists()


@pytest.mark.parametrize("crf,match", BAD_CRF[:1] + BAD_CRF[3:5])
def test_frames_average_refuses_bad_curves_in_one_line(run_cli, tmp_path, crf, match):
    from .conftest import random_frames, write_clip

    write_clip(tmp_path / "c.mkv", random_frames(12, shape=(8, 8, 3), seed=1))
    out = tmp_path / "out"
    r = run_cli("frames-average", tmp_path / "c.mkv", "--out", out, "--crf", crf)
    assert r.code == 2, r
    assert match in r.err and len([l for l in r.err.splitlines() if match in l]) == 1
    assert not out.exists()


def test_cli_random_curves(run_cli, photos, bank, tmp_path):
    from blursynth.dataset import PairDataset

    from .conftest import random_frames, write_clip

    r = run_cli("blur", photos, "--kernels", bank, "--out", tmp_path / "b", "--per-image", "2",
                "--crop", "24x24", "--crf", "random")
    assert r.code == 0, r.err
    assert {row["params"]["crf"] for row in PairDataset(tmp_path / "b")} <= {
        CameraResponse.parse(s).spec for s in RANDOM_DEFAULT}
    write_clip(tmp_path / "c.mkv", random_frames(24, shape=(8, 8, 3), seed=1))
    r = run_cli("frames-average", tmp_path / "c.mkv", "--out", tmp_path / "f", "--window", "3",
                "--crf", "random:rec709,romm")
    assert r.code == 0, r.err
    assert {row["params"]["crf"] for row in PairDataset(tmp_path / "f")} == {"rec709", "romm"}
    # render-clip takes one curve only.
    r = run_cli("render-clip", tmp_path / "nope.png", "--out", tmp_path / "clip.mkv", "--crf", "random")
    assert r.code == 2 and "random" in r.err and not (tmp_path / "clip.mkv").exists()


@pytest.mark.parametrize("recipe,step,key", [("gopro-like", "gopro", "crf"), ("deblurgan-comb", "synth", "crf")])
def test_recipes_take_random_and_refuse_bad_sets_at_their_line(tmp_path, run_cli, recipe, step, key):
    from .conftest import RECIPES, error_line

    extra = ["--set", "train.perceptual=none"] if recipe == "deblurgan-comb" else []
    r = run_cli("build", RECIPES / f"{recipe}.toml", "--dry-run", "--out", tmp_path / "a",
                "--set", f"{step}.{key}=random:srgb,filmic:2,3", *extra)
    assert r.code == 0, r.err
    r = run_cli("build", RECIPES / f"{recipe}.toml", "--dry-run", "--out", tmp_path / "b", *extra,
                "--set", f"{step}.{key}=random:srgb,srgb")
    assert r.code == 2 and "twice" in error_line(r) and f"--set {step}.{key}=" in error_line(r)
    assert not (tmp_path / "b").exists()


# --- dataset import: GoPro's blur and blur_gamma --------------------------------------------------

@pytest.mark.parametrize("args,folder,crf", [((), "blur", "none"), (("--blurred", "blur_gamma"), "blur_gamma", "gamma:2.2"),
                                             (("--blur-dir", "blur_gamma"), "blur_gamma", "gamma:2.2"),
                                             (("--blurred", "blur"), "blur", "none")])
def test_gopro_import_records_the_folder_and_its_response(gopro, tmp_path, run_cli, args, folder, crf):
    from blursynth.dataset import PairDataset

    r = run_cli("dataset", "import", gopro, "--out", tmp_path / "g", *args)
    assert r.code == 0, r.err
    rows = list(PairDataset(tmp_path / "g"))
    assert all(row["params"]["blur_dir"] == folder and row["params"]["crf"] == crf for row in rows)
    assert all(f"/{folder}/" in row["params"]["blurred_path"] for row in rows)
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["blurred_folder"] == folder
    assert manifest["camera_response"]["crf"] == crf and manifest["camera_response"]["blurred_folder"] == folder


def test_gopro_import_of_another_folder_says_its_response_is_unknown(gopro, tmp_path, run_cli):
    import shutil

    for seq in gopro.glob("train/*"):
        shutil.copytree(seq / "blur", seq / "mine")
    r = run_cli("dataset", "import", gopro, "--out", tmp_path / "m", "--blur-dir", "mine")
    assert r.code == 0, r.err
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["blurred_folder"] == "mine" and manifest["camera_response"] is None
    from blursynth.dataset import PairDataset

    assert "crf" not in PairDataset(tmp_path / "m")[0]["params"]


def test_gopro_import_refuses_two_folders(gopro, tmp_path, run_cli):
    from .conftest import error_line

    r = run_cli("dataset", "import", gopro, "--out", tmp_path / "x", "--blurred", "blur_gamma", "--blur-dir", "blur")
    assert r.code == 2 and "name two folders" in error_line(r) and not (tmp_path / "x").exists()
    r = run_cli("dataset", "import", gopro, "--out", tmp_path / "x", "--blurred", "gamma")
    assert r.code == 2 and not (tmp_path / "x").exists()


def test_info_and_preview_show_the_curve(photos, bank, gopro, tmp_path, run_cli):
    from blursynth.dataset import PairDataset
    from blursynth.dataset.preview import caption_lines

    _blur(photos, bank, tmp_path / "r", per_image=1, crf="random:srgb,hlg")
    r = run_cli("dataset", "info", tmp_path / "r")
    assert r.code == 0 and "camera response: one per pair from srgb, hlg (each row's params.crf)" in r.out
    row = PairDataset(tmp_path / "r")[0]
    assert caption_lines(row)[1].endswith(f"  crf {row['params']['crf']}")
    assert run_cli("dataset", "import", gopro, "--out", tmp_path / "g", "--blurred", "blur_gamma").code == 0
    r = run_cli("dataset", "info", tmp_path / "g")
    assert "camera response: gamma:2.2 (blur_gamma: frames decoded with gamma 2.2" in r.out


def test_frames_average_raw_path_takes_a_random_curve(tmp_path):
    from blursynth.dataset import PairDataset
    from blursynth.pairs.frames import FramesAverageSettings, rebuild_pair, write_frame_pairs

    from .conftest import random_frames, write_clip

    write_clip(tmp_path / "c.mkv", random_frames(30, shape=(16, 16, 3), seed=6))
    settings = FramesAverageSettings(window_min=3, window_max=4, seed=1, crf="random:srgb,filmic",
                                     pipeline="raw", noise="model")
    write_frame_pairs([tmp_path / "c.mkv"], tmp_path / "out", settings, progress=False)
    rows = list(PairDataset(tmp_path / "out"))
    assert {r["params"]["crf"] for r in rows} == {"srgb", "filmic:1.4,2,1"}
    for row in rows[:4]:
        b, s = rebuild_pair(row, tmp_path / "c.mkv")
        assert np.array_equal(b, row["blurred"]) and np.array_equal(s, row["sharp"])


# --- bgan blur --pipeline raw ----------------------------------------------------------------------

def test_bgan_raw_path_takes_a_random_curve(stub_model, tmp_path):
    from blursynth.dataset import PairDataset
    from blursynth.pairs.bgan import BGANBlurSettings, bgan_blur, rebuild_pair

    photos = two_photos(tmp_path / "photos")
    settings = BGANBlurSettings(photos=str(photos), model=str(stub_model), device="cpu", pipeline="raw",
                                per_image=3, crf="random:srgb,rec709,lstar")
    bgan_blur(settings, tmp_path / "out", progress=False)
    rows = list(PairDataset(tmp_path / "out"))
    assert len({r["params"]["crf"] for r in rows}) >= 2
    for row in rows[:3]:
        b, s = rebuild_pair(row, photos, model=stub_model)
        assert np.array_equal(b, row["blurred"]) and np.array_equal(s, row["sharp"])
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["camera_response"]["curves"] == ["srgb", "rec709", "lstar"]
    assert manifest["command"]["crf"] == "random:srgb,rec709,lstar"
    with pytest.raises(SettingError, match="names srgb twice"):
        BGANBlurSettings(photos=str(photos), model=str(stub_model), pipeline="raw", crf="random:srgb,srgb")
