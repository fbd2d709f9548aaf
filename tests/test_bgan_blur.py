"""Learned-blur pairs (pairs/bgan.py): tiled inference equals whole-image inference, uint8 in and out."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from blursynth.pairs.bgan import blur_image, blur_tensor, pair_noise

from .conftest import two_photos

# ``tiny`` and ``stub_model``: tests/conftest.py


def test_tiled_blur_equals_whole_image(tiny):
    g, _ = tiny
    x = torch.rand(1, 3, 30, 47)
    whole = blur_tensor(g, x, pair_noise(0, 1), tile=1000)
    tiled = blur_tensor(g, x, pair_noise(0, 1), tile=20)  # 2 x 3 tiles, the last ones partial
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=0)
    assert float(whole.min()) >= 0 and float(whole.max()) <= 1


def test_blur_image_uint8_roundtrip(tiny):
    g, _ = tiny
    photo = (np.random.default_rng(0).random((13, 21, 3)) * 255).astype(np.uint8)
    out = blur_image(g, photo, pair_noise(3, 0))
    assert out.dtype == np.uint8 and out.shape == photo.shape
    # The tiny config adds its input back: an untrained generator is nearly the identity.
    assert np.abs(out.astype(int) - photo).max() <= 3


def test_bgan_blur_reads_photos_upright_and_says_so_in_converted(stub_model, tmp_path):
    from PIL import Image

    from blursynth.dataset import PairDataset
    from blursynth.pairs.bgan import BGANBlurSettings, bgan_blur

    stored = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "photos").mkdir()
    Image.fromarray(stored).save(tmp_path / "photos" / "phone.png", exif=exif)
    bgan_blur(BGANBlurSettings(photos=str(tmp_path / "photos"), model=str(stub_model),
                               device="cpu"), tmp_path / "photos" / "pairs", progress=False)
    row = PairDataset(tmp_path / "photos" / "pairs")[0]
    assert np.array_equal(row["sharp"], np.rot90(stored, -1)) and row["blurred"].shape == (30, 20, 3)
    assert row["params"]["converted"] == "EXIF orientation 6 applied"


def test_raw_pipeline_rows_record_and_rebuild(stub_model, tmp_path):
    from blursynth.dataset import PairDataset
    from blursynth.ops.raw import RawParams
    from blursynth.pairs.bgan import (STREAM_RAW, STREAM_RAW_NOISE, BGANBlurSettings, bgan_blur,
                                      rebuild_pair)

    photos = two_photos(tmp_path / "photos")
    common = dict(photos=str(photos), model=str(stub_model), device="cpu", pipeline="raw",
                  camera="Nikon D700", raw_bits=(10, 14), crf="srgb")
    bgan_blur(BGANBlurSettings(**common, noise="model", jpeg="85-95"), tmp_path / "noisy",
              progress=False)
    bgan_blur(BGANBlurSettings(**common), tmp_path / "quiet", progress=False)
    noisy, quiet = PairDataset(tmp_path / "noisy"), PairDataset(tmp_path / "quiet")
    assert json.loads((tmp_path / "noisy" / "manifest.json").read_text())["command"]["pipeline"] == "raw"
    for i in range(len(noisy)):
        row, q = noisy[i], quiet[i]
        p = row["params"]
        assert RawParams.from_dict(p["raw"]).to_dict() == p["raw"] and p["crf"] == "srgb"
        assert p["raw_stream"] == [0, i, STREAM_RAW] and p["noise_stream"] == [0, i, STREAM_RAW_NOISE]
        assert 85 <= p["jpeg_quality"] <= 95 and 10 <= p["raw"]["raw_bits"] <= 14
        blurred, sharp = rebuild_pair(row, photos, model=stub_model)
        assert np.array_equal(blurred, row["blurred"]) and np.array_equal(sharp, row["sharp"])
        mosaic = rebuild_pair(row, photos, model=stub_model, mosaic_only=True)
        assert mosaic.shape == sharp.shape[:2] and mosaic.dtype == np.float32
        # Noise changes the blurred image only: the sharp photo takes the chain without it.
        assert "noise_stream" not in q["params"] and np.array_equal(q["sharp"], row["sharp"])
        assert not np.array_equal(q["blurred"], row["blurred"])
    # The flat photo comes back through the camera chain within one level.
    flat = quiet[1]
    assert np.abs(flat["sharp"].astype(int) - (150, 90, 60)).max() <= 1


def test_raw_exposure_gain_scales_both_images(stub_model, tmp_path):
    from blursynth.dataset import PairDataset
    from blursynth.pairs.bgan import BGANBlurSettings, bgan_blur, rebuild_pair

    photos = two_photos(tmp_path / "photos")
    common = dict(photos=str(photos), model=str(stub_model), device="cpu", pipeline="raw",
                  camera="Nikon D700", noise="model")
    bgan_blur(BGANBlurSettings(**common), tmp_path / "plain", progress=False)
    bgan_blur(BGANBlurSettings(**common, exposure_gain="1.5"), tmp_path / "gain", progress=False)
    plain, gain = PairDataset(tmp_path / "plain"), PairDataset(tmp_path / "gain")
    manifest = json.loads((tmp_path / "gain" / "manifest.json").read_text())
    assert manifest["command"]["raw"]["degradations"]["exposure_gain"] == "1.5"
    for i in range(len(plain)):
        p, g = plain[i], gain[i]
        # the draw's slot on stream 8 was always taken: the camera and noise levels stay put
        assert g["params"]["exposure_gain"] == 1.5 and g["params"]["raw"] == p["params"]["raw"]
        for key in ("sharp", "blurred"):
            assert g[key].astype(int).sum() > p[key].astype(int).sum(), key
        blurred, sharp = rebuild_pair(g, photos, model=stub_model)
        assert np.array_equal(blurred, g["blurred"]) and np.array_equal(sharp, g["sharp"])


def test_rgb_pipeline_records_nothing_new(tmp_path):
    from blursynth.pairs.bgan import BGANBlurSettings

    assert BGANBlurSettings(photos="p", model="m").raw_recipe() == {}


@pytest.mark.parametrize("args, match", [
    (("--camera", "Nikon D700"), "--camera is an option of the RAW path; add --pipeline raw"),
    (("--crf", "srgb"), "--crf is an option of the RAW path; add --pipeline raw"),
    (("--noise", "0.01"), "--noise is an option of the RAW path; add --pipeline raw"),
    (("--jpeg", "90"), "--jpeg is an option of the RAW path; add --pipeline raw"),
    (("--pipeline", "raw", "--crf", "gamma:x"), "--crf: camera response 'gamma:x'"),
    (("--pipeline", "raw", "--raw-bits", "8"), "raw bits must be an integer in [10, 14]"),
    (("--pipeline", "raw", "--highlights", "2-8"), "bgan blur cannot boost highlights"),
    (("--highlight-regions", "20"), "bgan blur cannot boost highlights"),
    (("--exposure-gain", "1-2"), "--exposure-gain is an option of the RAW path; add --pipeline raw"),
    (("--pipeline", "raw", "--exposure-gain", "0.5"), "exposure"),
])
def test_bad_raw_input_is_one_line(run_cli, tmp_path, args, match):
    from .conftest import error_line

    photos = two_photos(tmp_path / "photos")
    r = run_cli("bgan", "blur", photos, "--model", tmp_path / "nomodel", "--out", tmp_path / "out", *args)
    assert r.code == 2, r
    assert match in error_line(r)
    assert not (tmp_path / "out").exists()


def test_dataset_export_raw_reruns_the_model(stub_model, tmp_path, run_cli):
    from blursynth.dataset import PairDataset
    from blursynth.pairs.bgan import BGANBlurSettings, bgan_blur, rebuild_pair

    photos = two_photos(tmp_path / "photos")
    bgan_blur(BGANBlurSettings(photos=str(photos), model=str(stub_model), device="cpu", pipeline="raw",
                               noise="model"), tmp_path / "d", progress=False)
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "x", "--raw", "npy")
    assert r.code == 0, r.err
    ds = PairDataset(tmp_path / "d")
    for i in range(len(ds)):
        mosaic = np.load(tmp_path / "x" / "raw" / f"{ds[i]['id']}.npy")
        assert np.array_equal(mosaic, rebuild_pair(ds[i], photos, model=stub_model, mosaic_only=True))
    r = run_cli("dataset", "export", tmp_path / "d", "--out", tmp_path / "y", "--raw", "npy",
                "--model", tmp_path / "gone")
    assert r.code == 2 and "model" in r.err and "--model MODEL" in r.err and not (tmp_path / "y").exists()


def test_a_run_on_the_cpu_loads_its_model_once(stub_model, tmp_path, monkeypatch):
    # The check before writing and the rows share one load (a paper-size model's checkpoint
    # holds its optimiser's state too: reading it twice doubled the start-up).
    from blursynth.bgan import train as bgan_train
    from blursynth.pairs.bgan import BGANBlurSettings, bgan_blur

    loads = []
    stub = bgan_train.load_bgan_generator
    monkeypatch.setattr(bgan_train, "load_bgan_generator",
                        lambda path, device="cpu": loads.append(device) or stub(path, device))
    bgan_blur(BGANBlurSettings(photos=str(two_photos(tmp_path / "photos")), model=str(stub_model),
                               per_image=2, device="cpu"), tmp_path / "pairs", progress=False)
    assert loads == ["cpu"]
