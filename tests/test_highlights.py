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


def test_draws_are_recorded_and_leave_todays_draws_alone():
    rng = lambda: np.random.default_rng(7)  # noqa: E731
    base = Degradations.parse(noise="0.001-0.01", jpeg="70-95").draw(rng())
    both = Degradations.parse(noise="0.001-0.01", jpeg="70-95", highlights="2-8",
                              highlight_threshold=0.95).draw(rng())
    assert {k: both[k] for k in base} == base
    assert 2 <= both["highlight_gain"] <= 8 and both["highlight_threshold"] == 0.95
    old = Degradations.parse(saturation="1-2").draw(rng())
    new = Degradations.parse(exposure_gain="1-2").draw(rng())
    assert old == {"saturation": new["exposure_gain"]}  # the same draw under its new name
    # Off by default: today's description, so today's fingerprints.
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
def test_bytes_do_not_depend_on_workers(photos, tmp_path):
    a = blur_photos(settings(photos, batch=1), tmp_path / "a", workers=1, progress=False)
    b = blur_photos(settings(photos, batch=3), tmp_path / "b", workers=2, progress=False)
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


def test_torch_path_boosts_as_the_cpu_path_does():
    from blursynth.ops.blur import _blur_linear_cpu, _blur_linear_torch
    from blursynth.ops.color import CameraResponse

    img, psf, crf = night_scene(), line_psf(7), CameraResponse.parse("gamma:2.2")
    for border in ("reflect", "wrap"):
        cpu = _blur_linear_cpu(img, psf, crf, border, "direct", boost=(6.0, 0.9))
        tch = _blur_linear_torch(img, psf, crf, border, "cpu", "direct", boost=(6.0, 0.9))
        assert float((cpu - tch).abs().max()) < 1e-5 and float(cpu.max()) > 2.0
