"""``blursynth blur --pipeline raw``: blur and noise in a camera's RAW space,
and ``blursynth cameras``. The RGB path's bytes are pinned by tests/test_shake.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import error_line

RAW_ARGS = ("--psf-source", "fresh", "--canvas", "9", "--length", "6", "--per-image", "2",
            "--crop", "32x40", "--pipeline", "raw")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import cv2
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(folder / "rocket.png"), data.rocket()[::8, ::8, ::-1])  # 54x80
    cv2.imwrite(str(folder / "chelsea.png"), data.chelsea()[::6, ::6, ::-1])  # 50x76
    return folder


@pytest.fixture(scope="module")
def raw_pairs(photos, tmp_path_factory):
    """The same RAW-path run with 1 and 2 workers (one pair per shard)."""
    from blursynth.cli import main

    outs = []
    for workers in (1, 2):
        out = tmp_path_factory.mktemp(f"w{workers}") / "pairs"
        code = main(["blur", str(photos), *RAW_ARGS, "--out", str(out), "--noise", "model",
                     "--jpeg", "90", "--raw-bits", "12", "--shard-size", "1",
                     "--workers", str(workers)])
        assert code == 0
        outs.append(out)
    return outs


def test_bytes_do_not_depend_on_workers(raw_pairs):
    one, two = raw_pairs
    files = sorted(p.relative_to(one) for p in one.rglob("*")
                   if p.is_file() and p.name != ".blursynth.lock")
    assert [p.name for p in files if p.suffix == ".parquet"]
    for rel in files:
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel


def test_params_record_the_camera_and_rebuild_the_pair(raw_pairs, photos):
    from blursynth.dataset import PairDataset, verify_dataset
    from blursynth.ops.raw import RawParams
    from blursynth.pairs.shake import STREAM_RAW_NOISE, rebuild_pair

    out = raw_pairs[0]
    assert verify_dataset(out)["rows"] == 4
    manifest = json.loads((out / "manifest.json").read_text())
    assert "raw" in json.dumps(manifest)
    ds = PairDataset(out)
    for i in range(len(ds)):
        row = ds[i]
        p = row["params"]
        raw = p["raw"]
        assert RawParams.from_dict(raw).to_dict() == raw
        assert raw["camera"] == "mix" and raw["raw_bits"] == 12 and raw["demosaic"] == "malvar"
        assert raw["shot_noise"] > 0 and p["noise_stream"] == [0, i, STREAM_RAW_NOISE]
        assert "shot_noise" not in p and "read_noise" not in p and p["jpeg_quality"] == 90
        blurred, sharp = rebuild_pair(row, photos)
        assert np.array_equal(blurred, row["blurred"]) and np.array_equal(sharp, row["sharp"])


def _one_pair(photos, **kw):
    """The first pair's (photo, psf, params), drawn as the writer draws them."""
    from blursynth.pairs.shake import (BlurJob, BlurSettings, draw_pair, open_kernels,
                                       plan_photos)
    from blursynth.sources.photos import load_rgb8, photo_path

    s = BlurSettings(photos=str(photos), psf_source="fresh", fresh_canvas=9, fresh_length_px=6.0,
                     crop=(32, 40), pipeline="raw", **kw)
    source = open_kernels(s)
    plan = plan_photos(s, source.max_side)
    job = BlurJob(s, plan, source, "test")
    photo, _ = load_rgb8(photo_path(photos, plan.files[0]))
    params, psf = draw_pair(job, 0, photo.shape[:2])
    return photo, psf, params


@pytest.mark.parametrize("camera", ["random", "Nikon D700"])
@pytest.mark.parametrize("demosaic", ["bilinear", "malvar"])
def test_pair_differs_only_by_blur_and_noise(photos, camera, demosaic):
    from blursynth.pairs.shake import pair_from_params

    delta = np.ones((1, 1), np.float32)
    photo, psf, params = _one_pair(photos, camera=camera, demosaic=demosaic, raw_bits=10)
    assert "noise_stream" not in params and params["raw"]["shot_noise"] == 0.0
    assert params["raw"]["camera"] == ("mix" if camera == "random" else camera)
    # No blur and no noise: the blurred image is the sharp one, quantisation and all.
    blurred, sharp = pair_from_params(photo, delta, params, seed=0, index=0)
    assert np.array_equal(blurred, sharp)
    # The sharp image is the same whatever the blur; the blurred one is not.
    blurred_psf, sharp_psf = pair_from_params(photo, psf, params, seed=0, index=0)
    assert np.array_equal(sharp_psf, sharp) and not np.array_equal(blurred_psf, sharp)
    # The RAW chain keeps a flat photo's colour (demosaicing is not the identity at edges).
    flat = np.empty_like(photo)
    flat[...] = (150, 90, 60)
    _, sharp_flat = pair_from_params(flat, delta, params, seed=0, index=0)
    assert np.abs(sharp_flat.astype(int) - flat[:32, :40]).max() <= 1
    # Noise alone: the sharp image does not change, the blurred one does.
    photo, _, noisy = _one_pair(photos, camera=camera, demosaic=demosaic, raw_bits=10,
                                noise="0.002,0.004")
    assert noisy["raw"]["shot_noise"] == 0.002 and noisy["raw"]["read_noise"] == 0.004
    assert noisy["raw"]["xyz_to_cam"] == params["raw"]["xyz_to_cam"]  # noise moves no other draw
    b2, s2 = pair_from_params(photo, delta, noisy, seed=0, index=0)
    assert np.array_equal(s2, sharp) and not np.array_equal(b2, sharp)
    assert np.abs(b2.astype(int) - sharp).mean() < 12


def test_rgb_recipe_and_params_unchanged(photos):
    from blursynth.pairs.shake import BlurSettings

    rgb = BlurSettings(photos=str(photos), psf_source="fresh", noise="0.001")
    assert not {"pipeline", "raw", "camera", "demosaic", "raw_bits"} & set(rgb.recipe())
    raw = BlurSettings(photos=str(photos), psf_source="fresh", pipeline="raw", raw_bits=(10, 14))
    assert raw.recipe()["pipeline"] == "raw"
    assert raw.recipe()["raw"]["camera"] == "random" and raw.recipe()["raw"]["raw_bits"] == [10, 14]


@pytest.mark.parametrize("args, match", [
    (("--pipeline", "raw", "--camera", "Leica M9"),
     "unknown camera 'Leica M9'; the bundled ones are: Huawei"),
    (("--pipeline", "raw", "--raw-bits", "9"), "raw bits must be an integer in [10, 14]"),
    (("--pipeline", "raw", "--raw-bits", "16"), "raw bits must be an integer in [10, 14]"),
    (("--pipeline", "raw", "--raw-bits", "12-10"), "LO > HI"),
    (("--pipeline", "raw", "--raw-bits", "twelve"), "--raw-bits"),
    (("--camera", "Nikon D700"), "--camera is an option of the RAW path; add --pipeline raw"),
    (("--demosaic", "bilinear"), "--demosaic is an option of the RAW path"),
    (("--raw-bits", "12"), "--raw-bits is an option of the RAW path"),
    (("--noise", "model"), "--noise model is an option of the RAW path"),
    (("--pipeline", "raw", "--saturation", "2"),
     "--saturation is an RGB-path option; with --pipeline raw use --exposure-gain"),
    (("--pipeline", "raw", "--exposure-gain", "20"), "exposure gain '20' is out of bounds"),
    (("--pipeline", "cmyk"), "--pipeline"),
    (("--pipeline", "raw", "--camera", "nikon d70"), "Did you mean 'Nikon D700'?"),
    (("--pipeline", "raw", "--noise", "modle"),
     "noise 'modle' is neither numbers (SHOT or SHOT,READ"),
    (("--pipeline", "raw", "--noise", "profile:Nikon D700"),
     "'Nikon D700' in --noise 'profile:Nikon D700' is a camera, not a noise profile"),
])
def test_bad_raw_input_is_one_line(run_cli, photos, tmp_path, args, match):
    out = tmp_path / "pairs"
    r = run_cli("blur", photos, "--psf-source", "fresh", "--canvas", "9", "--length", "6",
                "--out", out, *args)
    assert r.code == 2, r
    line = error_line(r)
    assert match in line, line
    assert not out.exists()


def test_camera_names_match_ignoring_case_and_spaces():
    from blursynth.ops.raw import camera_key, draw_raw_params

    assert camera_key("nikon  d700") == "Nikon D700"
    p = draw_raw_params(np.random.default_rng(0), camera="sony ilce-7r")
    q = draw_raw_params(np.random.default_rng(0), camera="Sony ILCE-7R")
    assert p == q and p["camera"] == "Sony ILCE-7R"


def test_cameras_lists_the_profiles(run_cli):
    from blursynth.ops.raw import CAMERA_NOISE, CAMERAS, DEFAULT_MIX, NOISE_PROFILES

    r = run_cli("cameras")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert [line[:len(name)] for line, name in zip(lines, CAMERAS)] == list(CAMERAS)
    for line, name in zip(lines, CAMERAS):
        assert (" mix " in line) == (name in DEFAULT_MIX), line
        noise = CAMERA_NOISE[name] or "model (no published calibration)"
        # the bundled darmstadt line is the model's own, and says so
        assert line.endswith(f"noise {noise}" + (" (the model's line)" if noise == "darmstadt" else "")), line
    assert lines[len(CAMERAS)].startswith("random")
    profiles = lines[len(CAMERAS) + 1:-1]
    assert [line.split(":")[0] for line in profiles] == [
        f"noise profile {name} (= --noise model)" for name in NOISE_PROFILES]
    assert "Brooks et al. 2019" in profiles[-1] and "shot 1.00e-04-1.20e-02" in profiles[-1]
    assert "--noise profile:FILE.toml" in lines[-1]


def test_recipe_keys(tiny_recipe, tmp_path):
    from blursynth.build import plan_build
    from blursynth.errors import BlursynthError

    plan = plan_build(tiny_recipe, out=tmp_path / "out", limit=4,
                      sets=['synth.pipeline="raw"', 'synth.camera="Nikon D700"',
                            "synth.raw_bits=[10, 14]", 'synth.demosaic="bilinear"',
                            'synth.noise="model"'])
    s = plan.steps[1].settings
    assert (s.pipeline, s.camera, s.raw_bits, s.demosaic, s.noise) == (
        "raw", "Nikon D700", (10, 14), "bilinear", "model")
    rgb = plan_build(tiny_recipe, out=tmp_path / "out", limit=4)
    assert rgb.recipe.fingerprint != plan.recipe.fingerprint
    with pytest.raises(BlursynthError, match="camera is an option of the RAW path"):
        plan_build(tiny_recipe, out=tmp_path / "out", sets=['synth.camera="Nikon D700"'])
    with pytest.raises(BlursynthError, match="unknown camera 'Leica'"):
        plan_build(tiny_recipe, out=tmp_path / "out",
                   sets=['synth.pipeline="raw"', 'synth.camera="Leica"'])


def test_preview_caption_names_the_camera_and_raw_noise(raw_pairs):
    from blursynth.dataset import PairDataset
    from blursynth.dataset.preview import caption_lines

    row = PairDataset(raw_pairs[0])[0]
    raw = row["params"]["raw"]
    first, second = caption_lines(row)[:2]
    assert f"RAW mix {raw['bayer']} 12-bit malvar" in first
    assert second.split("  ")[1] == (f"RAW noise shot {raw['shot_noise']:.2g}, "
                                     f"read {raw['read_noise']:.2g}")


def test_read_only_psf_gives_no_torch_warning():
    """A kernel bank's PSFs are read-only arrays; the RAW path must not hand them to torch as they
    are (torch warns once per process that it cannot write to them, on every RAW run's stderr)."""
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from blursynth.ops.blur import render_raw_pair\n"
        "from blursynth.ops.raw import draw_raw_params\n"
        "psf = np.full((3, 3), 1 / 9, np.float32)\n"
        "psf.flags.writeable = False\n"
        "raw = draw_raw_params(np.random.default_rng(0), noise='off')\n"
        "render_raw_pair(np.full((16, 16, 3), 120, np.uint8), psf, raw)\n"
    )
    r = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-500:]


def test_recipe_camera_list_is_refused_by_name(tiny_recipe, tmp_path):
    """A list is not a camera (draw_raw_params would mix it, but the option takes one name)."""
    from blursynth.build import plan_build
    from blursynth.errors import BlursynthError

    with pytest.raises(BlursynthError, match="camera must be one name or random"):
        plan_build(tiny_recipe, out=tmp_path / "out",
                   sets=['synth.pipeline="raw"', 'synth.camera=["Nikon D700"]'])


def test_raw_noise_levels_give_a_noisier_image_than_the_rgb_paths():
    """blur --noise help and the README: on the RAW path SHOT,READ are on the mosaic, before the
    gains and colour correction, so the same numbers leave more noise in the developed image."""
    from skimage import data

    from blursynth.ops.blur import render_pair, render_raw_pair
    from blursynth.ops.raw import draw_raw_params

    def noise_mse(blurred, sharp):
        return float(np.mean((blurred.astype(float) - sharp.astype(float)) ** 2))

    photo = np.ascontiguousarray(data.astronaut()[100:164, 180:244])
    delta = np.ones((1, 1), np.float32)
    for k in range(3):
        rgb = render_pair(photo, delta, crf="srgb", shot_noise=0.004, read_noise=0.01,
                          noise_rng=np.random.default_rng(k))
        raw = render_raw_pair(photo, delta, draw_raw_params(np.random.default_rng(50 + k), noise=(0.004, 0.01)),
                              crf="srgb", noise_rng=np.random.default_rng(k))
        assert noise_mse(*raw) > 1.5 * noise_mse(*rgb)  # > 1.8 dB; measured 4-6 dB
