"""Per-camera noise profiles on the RAW path (``--noise profile`` / ``profile:NAME``): which line
each camera draws its shot and read levels from, what is recorded, and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from blursynth.errors import BadInputError
from blursynth.ops import raw as rawops
from blursynth.ops.raw import RawParams, camera_noise_profile, draw_raw_params, raw_noise_spec
from tests.conftest import error_line


def draw(seed=3, **kw):
    return draw_raw_params(np.random.default_rng(seed), **kw)


@pytest.mark.parametrize("camera", list(rawops.CAMERAS))
def test_profile_levels_and_record(camera):
    model, prof = draw(camera=camera, noise="model"), draw(camera=camera, noise="profile")
    expected = rawops.CAMERA_NOISE[camera] or "model"
    assert prof["noise_profile"] == expected and "noise_profile" not in model
    # The one bundled profile (darmstadt) is the model's own line, and a camera without one uses
    # the model: the same two draws give the same levels, and nothing else a pair draws moves.
    rest = {k: v for k, v in prof.items() if k != "noise_profile"}
    assert rest == model
    assert RawParams.from_dict(prof).to_dict() == prof


def test_a_profile_line_sets_the_levels(monkeypatch):
    """A camera with its own line draws from it, with the same two draws as the model."""
    line = {"shot_log_range": (math.log(0.02), math.log(0.03)), "read_line": (1.0, -2.0, 0.0),
            "source": "test"}
    monkeypatch.setitem(rawops.NOISE_PROFILES, "test-line", line)
    monkeypatch.setitem(rawops.CAMERA_NOISE, "Nikon D700", "test-line")
    for seed in range(5):
        p = draw(seed, camera="Nikon D700", noise="profile")
        m = draw(seed, camera="Nikon D700", noise="model")
        assert p["noise_profile"] == "test-line" and 0.02 <= p["shot_noise"] <= 0.03
        # ln(read^2) = ln(shot) - 2 exactly (sigma 0): read = sqrt(shot * e^-2)
        assert p["read_noise"] == pytest.approx(math.sqrt(p["shot_noise"] * math.exp(-2.0)))
        # The shot level sits at the same quantile of its range as the model's: one uniform.
        q = (math.log(p["shot_noise"]) - math.log(0.02)) / (math.log(0.03) - math.log(0.02))
        lo, hi = rawops.SHOT_LOG_RANGE
        assert q == pytest.approx((math.log(m["shot_noise"]) - lo) / (hi - lo))
        assert {k: v for k, v in p.items() if k not in ("noise_profile", "shot_noise", "read_noise")} \
            == {k: v for k, v in m.items() if k not in ("shot_noise", "read_noise")}
    # profile:NAME names the line whatever the camera.
    assert draw(camera="Sony ILCE-7R", noise="profile:test-line")["noise_profile"] == "test-line"


def test_a_mix_takes_its_heaviest_cameras_profile(monkeypatch):
    monkeypatch.setitem(rawops.CAMERA_NOISE, "Sony ILCE-7R", None)
    assert camera_noise_profile("mix", {"Huawei Nexus 6P": 0.2, "Sony ILCE-7R": 0.8}) == "model"
    assert camera_noise_profile("mix", {"Huawei Nexus 6P": 0.6, "Sony ILCE-7R": 0.4}) == "darmstadt"
    # Equal weights: the first in CAMERAS order.
    assert camera_noise_profile("mix", {"Sony ILCE-7R": 0.5, "Huawei Nexus 6P": 0.5}) == "darmstadt"
    p = draw(camera="random", noise="profile")
    heaviest = max(p["camera_weights"], key=p["camera_weights"].get)
    assert p["noise_profile"] == (rawops.CAMERA_NOISE[heaviest] or "model")


def test_noise_spec_and_bad_values():
    assert raw_noise_spec(" PROFILE ") == "profile" and raw_noise_spec("off") is None
    assert raw_noise_spec(("0.1", "0.2")) is None
    with pytest.raises(BadInputError, match="unknown noise profile 'eld'"):
        raw_noise_spec("profile:eld")
    with pytest.raises(BadInputError, match="unknown noise profile 'eld'"):
        draw(noise="profile:eld")
    bad = {**draw(noise="profile"), "noise_profile": "eld"}
    with pytest.raises(BadInputError, match="unknown noise profile 'eld'"):
        RawParams.from_dict(bad)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import cv2
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(folder / "rocket.png"), data.rocket()[::8, ::8, ::-1])
    return folder


ARGS = ("--psf-source", "fresh", "--canvas", "9", "--length", "6", "--crop", "32x40")


def test_rows_record_the_profile_and_rebuild(run_cli, photos, tmp_path):
    from blursynth.dataset import PairDataset
    from blursynth.pairs.shake import rebuild_pair

    out = tmp_path / "pairs"
    r = run_cli("blur", photos, *ARGS, "--out", out, "--per-image", "2", "--pipeline", "raw",
                "--camera", "Canon EOS 5D Mark II", "--noise", "profile")
    assert r.code == 0, r.err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"]["raw"]["noise"] == "profile"
    from blursynth.dataset.preview import caption_lines

    for row in PairDataset(out):
        raw = row["params"]["raw"]
        assert raw["noise_profile"] == "model" and raw["shot_noise"] > 0
        assert caption_lines(row)[1].split("  ")[1].endswith("(model line)")
        b, s = rebuild_pair(row, photos)
        assert np.array_equal(b, row["blurred"]) and np.array_equal(s, row["sharp"])


@pytest.mark.parametrize("args, match", [
    (("--noise", "profile"), "--noise profile is an option of the RAW path; add --pipeline raw"),
    (("--noise", "profile:darmstadt"), "--noise profile:darmstadt is an option of the RAW path"),
    (("--pipeline", "raw", "--noise", "profile:eld"), "unknown noise profile 'eld'"),
    (("--pipeline", "raw", "--noise", "profiles"), "noise"),
])
def test_bad_profile_input_is_one_line(run_cli, photos, tmp_path, args, match):
    out = tmp_path / "pairs"
    r = run_cli("blur", photos, *ARGS, "--out", out, *args)
    assert r.code == 2, r
    assert match in error_line(r), error_line(r)
    assert not out.exists()


def test_recipe_key(tiny_recipe, tmp_path):
    from blursynth.build import plan_build

    plan = plan_build(tiny_recipe, out=tmp_path / "out", limit=2,
                      sets=['synth.pipeline="raw"', 'synth.noise="profile:darmstadt"'])
    s = plan.steps[1].settings
    assert raw_noise_spec(s.noise) == "profile:darmstadt" and s.recipe()["raw"]["noise"] == "profile:darmstadt"
    model = plan_build(tiny_recipe, out=tmp_path / "out", limit=2,
                       sets=['synth.pipeline="raw"', 'synth.noise="model"'])
    assert model.recipe.fingerprint != plan.recipe.fingerprint


# -- the bundled line's label, and calibration files (--noise profile:FILE) -----------------------

def test_the_bundled_line_is_labelled_the_models(run_cli):
    r = run_cli("cameras")
    assert r.code == 0, r.err
    assert "noise profile darmstadt (= --noise model)" in r.out
    assert "Sony ILCE-7R" in r.out and "darmstadt (the model's line)" in r.out
    assert "--noise profile:FILE.toml" in r.out
    from blursynth.dataset.preview import caption_lines

    row = {"blurred": np.zeros((4, 4, 3), np.uint8),
           "params": {"raw": draw(camera="Sony ILCE-7R", noise="profile")}}
    assert row["params"]["raw"]["noise_profile"] == "darmstadt"
    assert caption_lines(row)[1].split("  ")[1].endswith("(model line)")


LINE_TOML = '''name = "my-camera"
source = "flat fields at ISO 100-3200"
shot_range = [0.001, 0.004]
read_line = [2.0, -1.0, 0.0]
'''


def test_a_calibration_file_sets_the_levels_and_is_recorded(tmp_path):
    path = tmp_path / "cam.toml"
    path.write_text(LINE_TOML)
    assert raw_noise_spec(f"profile:{path}") == f"profile:{path}"  # the path kept as given (case too)
    for seed in range(4):
        p = draw(seed, camera="Nikon D700", noise=f"profile:{path}")
        m = draw(seed, camera="Nikon D700", noise="model")
        assert p["noise_profile"] == "my-camera"
        assert p["noise_line"]["read_line"] == [2.0, -1.0, 0.0]
        assert p["noise_line"]["source"] == "flat fields at ISO 100-3200"
        assert 0.001 <= p["shot_noise"] <= 0.004
        assert p["read_noise"] == pytest.approx(math.sqrt(p["shot_noise"] ** 2 * math.exp(-1.0)))
        # the same two draws as the model: nothing else moves
        assert {k: v for k, v in p.items() if k not in ("noise_profile", "noise_line", "shot_noise",
                                                        "read_noise")} \
            == {k: v for k, v in m.items() if k not in ("shot_noise", "read_noise")}
        # The row holds the numbers: it checks and round-trips without the file.
        path.rename(tmp_path / "gone.toml")
        assert RawParams.from_dict(p).to_dict() == p
        (tmp_path / "gone.toml").rename(path)


def test_a_dng_noise_profile_table_is_fitted(tmp_path):
    # DNG NoiseProfile (S, O) per ISO: O = S^2 / 100 exactly -> ln O = 2 ln S - ln 100, sigma 0.
    s_values = [1e-4, 4e-4, 1.6e-3, 6.4e-3]
    path = tmp_path / "dng.json"
    path.write_text(json.dumps({"dng_noise_profile": [[s, s * s / 100] for s in s_values]}))
    prof = rawops.load_noise_profile(path)
    assert prof["name"] == "dng"  # the file's stem
    lo, hi = prof["shot_log_range"]
    assert (lo, hi) == pytest.approx((math.log(1e-4), math.log(6.4e-3)))
    slope, intercept, sigma = prof["read_line"]
    assert (slope, intercept, sigma) == pytest.approx((2.0, -math.log(100), 0.0), abs=1e-9)
    # Per-channel entries (S_R O_R S_G O_G S_B O_B) count as the channels' mean S and mean O.
    path.write_text(json.dumps({"dng_noise_profile": [[1e-3, 1e-6, 2e-3, 2e-6, 3e-3, 3e-6]]}))
    prof = rawops.load_noise_profile(path)
    assert prof["shot_log_range"] == pytest.approx([math.log(2e-3)] * 2)
    assert prof["read_line"] == pytest.approx([0.0, math.log(2e-6), 0.0])
    p = draw(noise=f"profile:{path}")
    assert p["shot_noise"] == pytest.approx(2e-3) and p["read_noise"] == pytest.approx(math.sqrt(2e-6))


@pytest.mark.parametrize("name, text, match", [
    ("missing.toml", None, "does not exist"),
    ("bad.toml", "shot_range = [", "could not be read"),
    ("both.toml", LINE_TOML + "dng_noise_profile = [[0.001, 1e-6]]\n", "not both or neither"),
    ("neither.toml", 'name = "x"\n', "not both or neither"),
    ("typo.toml", LINE_TOML + "iso = 100\n", "unknown key 'iso'"),
    ("loud.toml", 'shot_range = [0.01, 0.5]\nread_line = [1.0, 0.0, 0.1]\n', "outside the bounds"),
    ("zero.json", '{"dng_noise_profile": [[0.001, 0]]}', "positive numbers"),
    ("taken.toml", LINE_TOML.replace("my-camera", "darmstadt"), "taken by a bundled profile"),
])
def test_bad_calibration_files_are_one_line(tmp_path, name, text, match):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(BadInputError, match=match) as e:
        raw_noise_spec(f"profile:{path}")
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_calibration_file_rows_rebuild_without_the_file(run_cli, photos, tmp_path):
    from blursynth.dataset import PairDataset
    from blursynth.pairs.shake import rebuild_pair

    path = tmp_path / "cam.toml"
    path.write_text(LINE_TOML)
    out = tmp_path / "pairs"
    r = run_cli("blur", photos, *ARGS, "--out", out, "--per-image", "2", "--pipeline", "raw",
                "--camera", "Nikon D700", "--noise", f"profile:{path}")
    assert r.code == 0, r.err
    recorded = json.loads((out / "manifest.json").read_text())["command"]["raw"]
    assert recorded["noise"] == f"profile:{path}"
    assert recorded["noise_line"]["read_line"] == [2.0, -1.0, 0.0]
    path.unlink()
    for row in PairDataset(out):
        raw = row["params"]["raw"]
        assert raw["noise_profile"] == "my-camera" and 0.001 <= raw["shot_noise"] <= 0.004
        b, s = rebuild_pair(row, photos)
        assert np.array_equal(b, row["blurred"]) and np.array_equal(s, row["sharp"])


def test_recipe_calibration_file_is_relative_to_the_recipe(tiny_recipe, tmp_path):
    from blursynth.build import plan_build

    (tiny_recipe.parent / "cam.toml").write_text(LINE_TOML)
    sets = ['synth.pipeline="raw"', 'synth.noise="profile:cam.toml"']
    plan = plan_build(tiny_recipe, out=tmp_path / "out", limit=2, sets=sets)
    s = plan.steps[1].settings
    assert s.noise == f"profile:{tiny_recipe.parent / 'cam.toml'}"
    assert s.recipe()["raw"]["noise_line"]["name"] == "my-camera"
    # The step's recorded recipe (its dataset's fingerprint) follows the file's numbers.
    (tiny_recipe.parent / "cam.toml").write_text(LINE_TOML.replace("-1.0", "-1.5"))
    again = plan_build(tiny_recipe, out=tmp_path / "out", limit=2, sets=sets).steps[1].settings
    assert again.recipe()["raw"]["noise_line"]["read_line"] == [2.0, -1.5, 0.0]
