"""Highlight saturation (``--highlights``) and the exposure gain (``--exposure-gain``, the old
``--saturation``): the target keeps the photo's exposure, light sources streak, every draw is
recorded and rebuilds, and bad input is one line."""

from __future__ import annotations

import numpy as np
import pytest

from blursynth.dataset import PairDataset
from blursynth.errors import BadInputError
from blursynth.ops.blur import render_pair
from blursynth.ops.degrade import Degradations, boost_highlights
from blursynth.pairs.shake import BlurSettings, blur_photos, rebuild_pair
from tests.conftest import error_line


def line_psf(k):
    psf = np.zeros((k, k), np.float32)
    psf[k // 2] = 1.0 / k
    return psf


def night_scene():
    """A dark 32x32 scene with one small light the sensor clipped, and a bright (not clipped) wall."""
    img = np.full((32, 32, 3), 30, np.uint8)
    img[14:17, 14:17] = 255           # the light
    img[2:6, 2:30] = 200               # bright, but far from clipping: never boosted
    return img


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import cv2
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(folder / "a.png"), data.astronaut()[::6, ::6, ::-1])   # 86x86, white highlights
    night = np.tile(night_scene(), (2, 2, 1))                               # 64x64, four lights
    cv2.imwrite(str(folder / "night.png"), night[:, :, ::-1])
    return folder


def settings(photos, **kw):
    base = dict(photos=str(photos), psf_source="fresh", fresh_canvas=15, fresh_length_px=10.0,
                per_image=2, crop=(40, 40), shard_size=2, highlights="2-8", seed=3)
    base.update(kw)
    return BlurSettings(**base)


# --- the operation --------------------------------------------------------------------------------

def test_target_keeps_the_photos_exposure():
    img = night_scene()
    for crf in ("gamma:2.2", "srgb", "none"):
        blurred, sharp = render_pair(img, line_psf(9), crf=crf, highlight_gain=16.0)
        assert np.array_equal(sharp, img)  # no extra clipped pixel: the photo itself
        assert (sharp == 255).all(axis=2).sum() == (img == 255).all(axis=2).sum()
    # The old global gain clips the target too (what the user complained of).
    _, sharp_gain = render_pair(img, line_psf(9), saturation=2.0)
    assert (sharp_gain == 255).all(axis=2).sum() > (img == 255).all(axis=2).sum()


def test_boosted_highlights_streak():
    img = night_scene()
    plain, _ = render_pair(img, line_psf(11))
    boosted, _ = render_pair(img, line_psf(11), highlight_gain=8.0)
    around = (slice(12, 19), slice(6, 26))  # the light's row band and its streak
    assert boosted[around].astype(int).sum() > plain[around].astype(int).sum()
    # Clipped after the blur: the streak is saturated white where the boost outweighs the blur.
    assert (boosted[15, 12:19] == 255).all() and not (plain[15, 12:19] == 255).all()
    # Pixels far from clipping (the 200 wall, the dark background) are blurred as before.
    assert np.array_equal(boosted[:8], plain[:8]) and np.array_equal(boosted[24:], plain[24:])


def test_boost_is_a_ramp_from_the_threshold_on_the_brightest_channel():
    x = np.zeros((3, 1, 4), np.float32)
    x[:, 0, :] = [[0.5, 0.9, 0.95, 1.0]] * 3
    x[2, 0, 0] = 1.0  # a saturated blue light in a dim pixel: boosted on all channels alike
    y = boost_highlights(x, 5.0, 0.9)
    assert np.allclose(y[:, 0, 1:], x[:, 0, 1:] * np.array([1.0, 3.0, 5.0], np.float32))
    assert np.allclose(y[:, 0, 0], x[:, 0, 0] * 5.0)
    import torch

    assert np.allclose(boost_highlights(torch.from_numpy(x), 5.0, 0.9).numpy(), y)


def test_draws_are_recorded_and_leave_the_other_draws_alone():
    rng = lambda: np.random.default_rng(7)  # noqa: E731
    base = Degradations.parse(noise="0.001-0.01", jpeg="70-95").draw(rng())
    both = Degradations.parse(noise="0.001-0.01", jpeg="70-95", highlights="2-8",
                              highlight_threshold=0.95).draw(rng())
    assert {k: both[k] for k in base} == base
    assert 2 <= both["highlight_gain"] <= 8 and both["highlight_threshold"] == 0.95
    old = Degradations.parse(saturation="1-2").draw(rng())
    new = Degradations.parse(exposure_gain="1-2").draw(rng())
    assert old == {"saturation": new["exposure_gain"]}  # the same draw under its new name
    # Off by default: a run without highlights describes (and fingerprints) only the others.
    assert Degradations.parse(jpeg="70-95").describe() == {
        "saturation": None, "shot_noise": None, "read_noise": None, "jpeg_quality": "70-95"}


@pytest.mark.parametrize("kw,match", [
    ({"highlights": "0.5-2"}, "highlights"), ({"highlights": "2-100"}, "highlights"),
    ({"highlights": "lots"}, "highlights"), ({"highlight_threshold": 1.0}, "highlight threshold"),
    ({"highlight_threshold": "x"}, "highlight threshold"), ({"exposure_gain": "0.5"}, "exposure gain"),
    ({"saturation": "1-2", "exposure_gain": "1-2"}, "not both"),
])
def test_bad_ranges(kw, match):
    with pytest.raises(BadInputError, match=match):
        Degradations.parse(**kw)


# --- the command ----------------------------------------------------------------------------------

def test_rows_record_the_boost_and_rebuild(photos, tmp_path):
    blur_photos(settings(photos, noise="0.0005,0.001", jpeg="90", exposure_gain="1-1.5"),
                tmp_path / "p", progress=False)
    rows = list(PairDataset(tmp_path / "p"))
    assert len(rows) == 4
    for row in rows:
        p = row["params"]
        assert 2 <= p["highlight_gain"] <= 8 and p["highlight_threshold"] == 0.9
        assert 1 <= p["exposure_gain"] <= 1.5 and "saturation" not in p
        b, s = rebuild_pair(row, photos)
        assert np.array_equal(b, row["blurred"]) and np.array_equal(s, row["sharp"])


def test_highlights_leave_the_target_alone(photos, tmp_path):
    blur_photos(settings(photos), tmp_path / "h", progress=False)
    blur_photos(settings(photos, highlights=None), tmp_path / "o", progress=False)
    for with_hl, without in zip(PairDataset(tmp_path / "h"), PairDataset(tmp_path / "o")):
        assert with_hl["params"]["crop"] == without["params"]["crop"]
        assert np.array_equal(with_hl["sharp"], without["sharp"])
        assert with_hl["blurred"].astype(int).sum() >= without["blurred"].astype(int).sum()


@pytest.mark.slow  # two worker processes start
@pytest.mark.parametrize("extra", [{}, {"pipeline": "raw", "noise": "model", "highlight_regions": 30,
                                        "exposure_gain": "1-1.3"}], ids=["rgb", "raw-regions"])
def test_bytes_do_not_depend_on_workers(photos, tmp_path, extra):
    a = blur_photos(settings(photos, batch=1, **extra), tmp_path / "a", workers=1, progress=False)
    b = blur_photos(settings(photos, batch=3, **extra), tmp_path / "b", workers=2, progress=False)
    assert [s["sha256"] for s in a["shards"]] == [s["sha256"] for s in b["shards"]]
    assert a["fingerprint"] == b["fingerprint"]


def test_saturation_keeps_its_meaning_with_a_warning(photos, tmp_path, capsys):
    capsys.readouterr()
    blur_photos(settings(photos, highlights=None, saturation="1.5"), tmp_path / "s", progress=False)
    err = capsys.readouterr().err
    assert "old name of exposure gain" in err and "--highlights" in err
    blur_photos(settings(photos, highlights=None, exposure_gain="1.5"), tmp_path / "g", progress=False)
    assert "old name" not in capsys.readouterr().err
    for old, new in zip(PairDataset(tmp_path / "s"), PairDataset(tmp_path / "g")):
        assert old["params"]["saturation"] == new["params"]["exposure_gain"] == 1.5
        assert np.array_equal(old["blurred"], new["blurred"])
        assert np.array_equal(old["sharp"], new["sharp"])


@pytest.mark.parametrize("args,match", [
    (["--highlights", "0.5"], "highlights"), (["--highlights", "3-2"], "LO > HI"),
    (["--highlight-threshold", "2"], "highlight threshold"),
    (["--exposure-gain", "20"], "exposure gain"),
    (["--exposure-gain", "1-2", "--saturation", "1-2"], "not both"),
    (["--highlight-threshold", "0.8"], "needs --highlights"),
])
def test_cli_bad_input_is_one_line(run_cli, photos, tmp_path, args, match):
    out = tmp_path / "out"
    r = run_cli("blur", photos, "--psf-source", "fresh", "--canvas", "15", "--length", "10",
                "--out", out, *args)
    assert r.code == 2, r
    assert match in error_line(r)
    assert not out.exists()


def test_cli_records_highlights(run_cli, photos, tmp_path):
    out = tmp_path / "out"
    r = run_cli("blur", photos, "--psf-source", "fresh", "--canvas", "15", "--length", "10",
                "--crop", "32x32", "--out", out, "--highlights", "4", "--highlight-threshold", "0.8")
    assert r.code == 0, r
    p = PairDataset(out)[0]["params"]
    assert p["highlight_gain"] == 4.0 and p["highlight_threshold"] == 0.8


def test_preview_caption_names_the_boost_and_the_gain():
    from blursynth.dataset.preview import caption_lines

    row = {"id": "000001", "source": "trajectory", "blurred": np.zeros((8, 8, 3), np.uint8),
           "params": {"photo": "a.png", "exposure": 1.0, "highlight_gain": 4.25,
                      "highlight_threshold": 0.9, "exposure_gain": 1.5}}
    second = caption_lines(row)[1]
    assert "highlights x4.25" in second and "exposure gain x1.5" in second
    assert "regions" not in second
    row["params"].update(highlight_regions=64, highlight_region_threshold=0.5)
    assert "highlights x4.25 (+ regions <= 64 px)" in caption_lines(row)[1]


def test_torch_path_boosts_as_the_cpu_path_does():
    import torch

    from blursynth.ops.blur import _blur_linear_cpu, _blur_linear_torch
    from blursynth.ops.color import CameraResponse

    img, psf, crf = night_scene(), line_psf(7), CameraResponse.parse("gamma:2.2")
    for border in ("reflect", "wrap"):
        cpu = torch.as_tensor(_blur_linear_cpu(img, psf, crf, border, "direct", boost=(6.0, 0.9)))
        tch = _blur_linear_torch(img, psf, crf, border, "cpu", "direct", boost=(6.0, 0.9))
        assert float((cpu - tch).abs().max()) < 1e-5 and float(cpu.max()) > 2.0


# --- the RAW path ---------------------------------------------------------------------------------

def _raw(**kw):
    from blursynth.ops.raw import draw_raw_params

    base = dict(camera="Sony ILCE-7R", bayer="RGGB", noise="off", demosaic="bilinear")
    base.update(kw)
    return draw_raw_params(np.random.default_rng(5), **base)


def test_raw_highlights_streak_and_the_target_keeps_its_exposure():
    from blursynth.ops.blur import render_raw_pair

    img, psf, raw = night_scene(), line_psf(11), _raw()
    plain_b, plain_s = render_raw_pair(img, psf, raw)
    boosted_b, boosted_s = render_raw_pair(img, psf, raw, highlight_gain=8.0)
    assert np.array_equal(boosted_s, plain_s)  # the sharp image is not boosted
    around = (slice(12, 19), slice(6, 26))
    assert boosted_b[around].astype(int).sum() > plain_b[around].astype(int).sum() + 1000
    # Clipped at the sensor's white level after the blur: the streak is white, not a dim smear.
    assert (boosted_b[15, 12:19] >= 250).all() and not (plain_b[15, 12:19] >= 250).all()
    # Far from the light (the 200 wall, the dark ground) nothing changes.
    assert np.array_equal(boosted_b[:8], plain_b[:8]) and np.array_equal(boosted_b[24:], plain_b[24:])
    # A one-pixel PSF: the boosted light clips back to the photo's white, so the pair is equal.
    delta = np.ones((1, 1), np.float32)
    b, s = render_raw_pair(img, delta, raw, highlight_gain=8.0)
    assert np.array_equal(b, s) and np.array_equal(s, plain_s)


def test_raw_boost_multiplies_camera_colours_by_the_photos_gains():
    """The boost is decided on the photo's linear values and applied in camera space."""
    from blursynth.ops import raw as rawops
    from blursynth.ops.blur import _raw_highlight_gains
    from blursynth.ops.color import CameraResponse
    from blursynth.ops.degrade import highlight_gains

    img = night_scene()
    img[20, 20] = (255, 120, 40)   # a saturated orange light: boosted on its brightest channel
    table = CameraResponse.parse("gamma:2.2").decode_table()
    gains = _raw_highlight_gains(img, img, table, 0, "reflect", (6.0, 0.9), None, None)
    expected = highlight_gains(table[img].max(axis=2), 6.0, 0.9)
    assert np.array_equal(gains, expected)
    assert gains[20, 20] == 6.0 and gains[15, 15] == 6.0 and gains[3, 3] == 1.0
    # The orange light keeps its camera-space colour ratios (one gain for three channels).
    cam = rawops.unprocess(table[img], _raw())
    boosted = cam * gains[..., None]
    assert np.allclose(boosted[20, 20] / boosted[20, 20, 1], cam[20, 20] / cam[20, 20, 1])


def test_raw_exposure_gain_scales_both_images():
    from blursynth.ops.blur import render_raw_pair

    img, raw = night_scene(), _raw()
    delta = np.ones((1, 1), np.float32)
    _, plain = render_raw_pair(img, delta, raw)
    b, s = render_raw_pair(img, delta, raw, exposure_gain=2.0)
    assert np.array_equal(b, s)  # the sharp target is scaled and clipped like the blurred image
    assert s[3, 3].astype(int).sum() > plain[3, 3].astype(int).sum()  # the 200 wall got brighter
    assert (s[3, 3] == 255).any() and not (plain[3, 3] == 255).any()


def test_raw_rows_record_the_boost_and_rebuild(photos, tmp_path):
    blur_photos(settings(photos, pipeline="raw", camera="Nikon D700", noise="model", jpeg="90",
                         exposure_gain="1-1.2", highlight_regions=40, highlight_region_threshold=0.4),
                tmp_path / "r", progress=False)
    rows = list(PairDataset(tmp_path / "r"))
    assert len(rows) == 4
    for row in rows:
        p = row["params"]
        assert 2 <= p["highlight_gain"] <= 8 and p["highlight_threshold"] == 0.9
        assert p["highlight_regions"] == 40 and p["highlight_region_threshold"] == 0.4
        assert 1 <= p["exposure_gain"] <= 1.2 and p["raw"]["camera"] == "Nikon D700"
        b, s = rebuild_pair(row, photos)
        assert np.array_equal(b, row["blurred"]) and np.array_equal(s, row["sharp"])


def test_raw_highlights_leave_the_target_and_the_other_draws_alone(photos, tmp_path):
    blur_photos(settings(photos, pipeline="raw", noise="model"), tmp_path / "h", progress=False)
    blur_photos(settings(photos, pipeline="raw", noise="model", highlights=None), tmp_path / "o",
                progress=False)
    for with_hl, without in zip(PairDataset(tmp_path / "h"), PairDataset(tmp_path / "o")):
        assert with_hl["params"]["raw"] == without["params"]["raw"]
        assert np.array_equal(with_hl["sharp"], without["sharp"])


# --- small bright regions -------------------------------------------------------------------------

def lamp_scene():
    """A dark 32x32 scene with a small lamp and a large wall at the same code 235 (linear 0.83
    under gamma 2.2: bright, not near clipping)."""
    img = np.full((32, 32, 3), 30, np.uint8)
    img[20:23, 6:9] = 235      # the lamp: 9 px
    img[2:10, 2:30] = 235      # the wall: 224 px
    return img


def test_small_bright_regions_finds_lamps_not_walls():
    from blursynth.ops.degrade import small_bright_regions

    peak = np.zeros((12, 12), np.float32)
    peak[1:3, 1:3] = 0.6        # 4 px
    peak[3, 3] = 0.6            # touches the first diagonally: one 5-px region (8-connected)
    peak[6:12, 6:12] = 0.9      # 36 px
    peak[0, 11] = 0.45          # below the threshold
    mask = small_bright_regions(peak, 5, 0.5)
    assert mask.sum() == 5 and mask[3, 3] and not mask[8, 8] and not mask[0, 11]
    assert small_bright_regions(peak, 4, 0.5).sum() == 0
    assert small_bright_regions(peak, 36, 0.5).sum() == 41
    assert not small_bright_regions(np.zeros((4, 4), np.float32), 9, 0.5).any()


@pytest.mark.parametrize("path", ["rgb", "raw"])
def test_regions_boost_the_lamp_not_the_wall(path):
    from blursynth.ops.blur import render_pair, render_raw_pair

    img, psf = lamp_scene(), line_psf(9)
    if path == "rgb":
        render = lambda **kw: render_pair(img, psf, **kw)  # noqa: E731
    else:
        raw = _raw()
        render = lambda **kw: render_raw_pair(img, psf, raw, **kw)  # noqa: E731
    hl = dict(highlight_gain=8.0, highlight_threshold=0.9)
    base_b, base_s = render(**hl)
    reg_b, reg_s = render(**hl, highlight_regions=16, highlight_region_threshold=0.4)
    assert np.array_equal(reg_s, base_s)            # the target is the photo's exposure
    lamp = (slice(19, 24), slice(0, 16))
    assert reg_b[lamp].astype(int).sum() > base_b[lamp].astype(int).sum() + 500
    streak = reg_b[21, 6:9].max(axis=-1)  # clipped in camera space: at white in some channel
    assert (streak >= 250).all() and not (base_b[21, 6:9].max(axis=-1) >= 250).any()
    assert np.array_equal(reg_b[:12], base_b[:12])   # the wall (224 px > 16) is not boosted
    # Without the near-clipped rule there is nothing else to boost here: the plain pair.
    plain_b, _ = render()
    assert np.array_equal(base_b, plain_b)


def test_regions_torch_path_equals_cpu_path():
    import torch

    from blursynth.ops.blur import _blur_linear_cpu, _blur_linear_torch, _regions
    from blursynth.ops.color import CameraResponse

    img, psf, crf = lamp_scene(), line_psf(7), CameraResponse.parse("gamma:2.2")
    regions = _regions(img, crf.decode_table(), (6.0, 0.9), 16, 0.4)
    assert regions[0].sum() == 9
    for border in ("reflect", "wrap"):
        cpu = torch.as_tensor(_blur_linear_cpu(img, psf, crf, border, "direct", boost=(6.0, 0.9),
                                               regions=regions))
        tch = _blur_linear_torch(img, psf, crf, border, "cpu", "direct", boost=(6.0, 0.9),
                                 regions=regions)
        assert float((cpu - tch).abs().max()) < 1e-5 and float(cpu.max()) > 1.5  # 0.83 -> > 1


def test_region_draws_and_description():
    d = Degradations.parse(highlights="2-8", highlight_regions="64", highlight_region_threshold=0.6)
    assert d.describe()["highlight_regions"] == 64 and d.describe()["highlight_region_threshold"] == 0.6
    a = d.draw(np.random.default_rng(1))
    b = Degradations.parse(highlights="2-8").draw(np.random.default_rng(1))
    assert a["highlight_gain"] == b["highlight_gain"]      # fixed values: no extra draw
    assert a["highlight_regions"] == 64 and "highlight_regions" not in b
    assert "highlight_regions" not in Degradations.parse(highlights="2").describe()


@pytest.mark.parametrize("kw,match", [
    ({"highlight_regions": -4}, "highlight regions must be"),
    ({"highlight_regions": "many"}, "highlight regions must be"),
    ({"highlight_regions": 2.5}, "highlight regions must be"),
    ({"highlight_regions": 9, "highlight_region_threshold": 0.95}, "must be below the highlight"),
    ({"highlight_regions": 9, "highlight_region_threshold": 0.01}, "highlight region threshold"),
])
def test_bad_region_values(kw, match):
    with pytest.raises(BadInputError, match=match):
        Degradations.parse(highlights="2-8", **kw)


@pytest.mark.parametrize("args,match", [
    (["--highlights", "2-8", "--highlight-regions", "-4"], "highlight regions must be"),
    (["--highlights", "2-8", "--highlight-regions", "lots"], "--highlight-regions"),
    (["--highlight-regions", "16"], "--highlight-regions needs --highlights"),
    (["--highlights", "4", "--highlight-region-threshold", "0.3"],
     "--highlight-region-threshold needs --highlight-regions"),
    (["--highlights", "4", "--highlight-regions", "16", "--highlight-region-threshold", "0.95"],
     "must be below the highlight threshold"),
    (["--pipeline", "raw", "--highlights", "4", "--highlight-threshold", "1.5"],
     "highlight threshold"),
])
def test_cli_bad_region_input_is_one_line(run_cli, photos, tmp_path, args, match):
    out = tmp_path / "out"
    r = run_cli("blur", photos, "--psf-source", "fresh", "--canvas", "15", "--length", "10",
                "--out", out, *args)
    assert r.code == 2, r
    assert match in error_line(r), error_line(r)
    assert not out.exists()


def test_cli_records_regions_on_the_raw_path(run_cli, photos, tmp_path):
    out = tmp_path / "out"
    r = run_cli("blur", photos, "--psf-source", "fresh", "--canvas", "15", "--length", "10",
                "--crop", "32x32", "--out", out, "--pipeline", "raw", "--highlights", "4",
                "--highlight-regions", "25", "--highlight-region-threshold", "0.45",
                "--exposure-gain", "1.25")
    assert r.code == 0, r
    p = PairDataset(out)[0]["params"]
    assert (p["highlight_gain"], p["highlight_regions"], p["highlight_region_threshold"],
            p["exposure_gain"]) == (4.0, 25, 0.45, 1.25)
    assert "raw" in p
