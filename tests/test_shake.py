"""Trajectory blur pairs: determinism across workers and batch sizes, per-pair streams, and
rebuilding a pair from its row."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blursynth.dataset import PairDataset
from blursynth.ops.blur import render_pair
from blursynth.pairs.shake import BlurSettings, blur_photos, rebuild_pair

from .conftest import edge_scene


# --- the command's library function -------------------------------------------------------------

# ``photos`` and ``bank``: tests/conftest.py

def shard_hashes(manifest):
    return [s["sha256"] for s in manifest["shards"]]


def settings(photos, bank, **kw):
    base = dict(photos=str(photos), kernels=str(bank), per_image=2, crop=(40, 48), shard_size=2,
                saturation="1-2", noise="0.0005-0.002,0.001", jpeg="80-95", seed=5)
    base.update(kw)
    return BlurSettings(**base)


@pytest.mark.slow  # two worker processes start (torch and Numba imports)
def test_bytes_do_not_depend_on_workers_or_batch(photos, bank, tmp_path):
    a = blur_photos(settings(photos, bank, batch=1), tmp_path / "a", workers=1, progress=False)
    b = blur_photos(settings(photos, bank, batch=5), tmp_path / "b", workers=2, progress=False)
    assert a["num_rows"] == 6 and len(a["shards"]) == 3
    assert shard_hashes(a) == shard_hashes(b)
    assert a["fingerprint"] == b["fingerprint"]


def test_rows_rebuild_from_params_and_record_everything(photos, bank, tmp_path):
    for kw in ({}, {"psf_source": "fresh", "kernels": None, "border": "valid", "exposure": 0.5,
                    "crop": None, "resize": 0.5, "crf": "srgb", "fresh_canvas": 15,
                    "fresh_length_px": 12.0}):
        out = tmp_path / f"out{len(kw)}"
        blur_photos(settings(photos, bank, **kw), out, progress=False)
        ds = PairDataset(out)
        for i in range(len(ds)):
            row = ds[i]
            b, s = rebuild_pair(row, photos)
            assert np.array_equal(b, row["blurred"]) and np.array_equal(s, row["sharp"])
            p = row["params"]
            assert row["source"] == "trajectory" and abs(row["psf"].sum() - 1) < 1e-4
            for key in ("photo", "exposure", "crf", "border", "saturation", "shot_noise",
                        "read_noise", "jpeg_quality"):
                assert key in p
    grey = [r for r in PairDataset(out) if r["params"]["photo"] == "c.png"]
    assert grey and grey[0]["params"]["converted"] == "grayscale replicated to RGB"
    # valid border without crop: the pair loses k - 1 pixels.
    row = PairDataset(out)[0]
    k = row["psf"].shape[0]
    assert row["blurred"].shape[:2] == (43 - k + 1, 43 - k + 1)


def test_crop_with_valid_border_keeps_requested_size(photos, bank, tmp_path):
    blur_photos(settings(photos, bank, border="valid", crop=(32, 32)), tmp_path / "v", progress=False)
    for row in PairDataset(tmp_path / "v"):
        assert row["blurred"].shape == row["sharp"].shape == (32, 32, 3)


def test_draws_are_per_pair_streams(photos, bank, tmp_path):
    blur_photos(settings(photos, bank), tmp_path / "x", progress=False)
    blur_photos(settings(photos, bank, jpeg=None), tmp_path / "y", progress=False)
    px = [r["params"] for r in PairDataset(tmp_path / "x")]
    py = [r["params"] for r in PairDataset(tmp_path / "y")]
    # Turning JPEG off changes nothing else a pair draws.
    for a, b in zip(px, py):
        a.pop("jpeg_quality")
        assert a == b
    assert len({p["kernel_index"] for p in px}) > 1
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    assert manifest["command"]["degradations"]["jpeg_quality"] == "80-95"


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu_and_batch_does_not_change_pixels(photos, bank, tmp_path):
    img = edge_scene(64, 80)
    psf = np.random.default_rng(3).random((15, 15)).astype(np.float32)
    psf /= psf.sum()
    cpu, _ = render_pair(img, psf)
    gpu, _ = render_pair(img, psf, device="cuda")
    assert np.abs(cpu.astype(int) - gpu).max() <= 1
    a = blur_photos(settings(photos, bank, batch=1, device="cuda"), tmp_path / "a", progress=False)
    b = blur_photos(settings(photos, bank, batch=4, device="cuda"), tmp_path / "b", progress=False)
    assert shard_hashes(a) == shard_hashes(b)


def test_device_type_is_part_of_the_fingerprint(photos, bank, tmp_path, monkeypatch):
    """A resume on a CUDA device must not add its rows to a dataset the CPU path began."""
    import torch

    import blursynth.pairs.shake as blur
    from blursynth.errors import BlursynthError

    a = blur_photos(settings(photos, bank, device="cpu"), tmp_path / "x", progress=False)
    # Pretend a GPU: the run is refused before any pair is rendered (none could be here).
    monkeypatch.setattr(blur, "resolve_device_name", lambda name: str(torch.device("cuda")))
    with pytest.raises(BlursynthError, match="other settings \\(device \"cpu\" \\(recorded\\) vs \"cuda\""):
        blur_photos(settings(photos, bank, device="cuda"), tmp_path / "x", progress=False)
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    assert manifest["fingerprint"] == a["fingerprint"] and manifest["command"]["device"] == "cpu"


def test_resolve_device_takes_cuda_n_like_the_trainer(monkeypatch):
    import torch

    from blursynth.nn.device import resolve_device
    from blursynth.errors import BadInputError

    for bad in ("gpu", "cuda:", "cuda:x", "CPU"):
        with pytest.raises(BadInputError, match="auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
        with pytest.raises(BadInputError, match="cuda:N"):
            settings("p", "b", device=bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_device("cuda") == torch.device("cuda")
    assert settings("p", "b", device="cuda:1").device == "cuda:1"
    with pytest.raises(BadInputError, match="cuda:0 to cuda:1"):
        resolve_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BadInputError, match="no CUDA GPU"):
        resolve_device("cuda:0")


def test_photos_too_small_for_the_psfs_are_left_out_of_the_plan(photos, bank, tmp_path, capsys):
    import shutil

    from blursynth.sources.photos import save_rgb8

    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    save_rgb8(folder / "thumb.png", np.zeros((8, 9, 3), np.uint8))
    s = settings(folder, bank, crop=None, per_image=1)
    manifest = blur_photos(s, tmp_path / "out", progress=False)
    assert manifest["small_photos"] == 1 and manifest["skipped_photos"] == 0
    assert manifest["num_rows"] == 3
    assert sorted(r["params"]["photo"] for r in PairDataset(tmp_path / "out")) == ["a.png", "c.png", "sub/b.jpg"]
    err = capsys.readouterr().err
    assert "warning: 1 of 4 photos are smaller than 15x15 (PSFs of up to 15x15) and are skipped: " \
           "thumb.png (8x9)" in err
    # The plan without the thumbnail is the plan of the folder without it: same fingerprint.
    (folder / "thumb.png").unlink()
    again = blur_photos(s, tmp_path / "out2", progress=False)
    assert again["fingerprint"] == manifest["fingerprint"] and again["small_photos"] == 0
