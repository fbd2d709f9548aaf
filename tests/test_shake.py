"""The pair pipeline: linear-light blur against the reference formula, degradations,
determinism across workers and batch sizes, and rebuilding a pair from its row."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.signal

from blursynth.pairs.shake import BlurSettings, blur_photos, rebuild_pair, render_pair
from blursynth.dataset import PairDataset


def line_psf(k=7):
    psf = np.zeros((k, k), np.float32)
    psf[k // 2, :] = 1.0 / k
    return psf


def edge_scene(h=24, w=32):
    img = np.full((h, w, 3), 20, np.uint8)
    img[:, w // 2 :] = 235
    img[h // 3 : h // 3 + 3, :, 1] = 128
    return img


def reference_gamma_blur(img, psf, gamma=2.2, scale=1.0):
    """The formula written out in float64: decode, scale, reflect-pad, convolve, clip, encode."""
    lin = (img / 255.0) ** gamma * scale
    r = psf.shape[0] // 2
    padded = np.pad(lin, ((r, r), (r, r), (0, 0)), mode="reflect")
    out = np.stack([scipy.signal.fftconvolve(padded[..., c], psf.astype(np.float64), mode="valid")
                    for c in range(3)], axis=-1)
    return np.floor(np.clip(out, 0, 1) ** (1 / gamma) * 255 + 0.5)


def test_linear_light_blur_matches_reference_formula():
    img = edge_scene()
    blurred, sharp = render_pair(img, line_psf(), crf="gamma:2.2")
    ref = reference_gamma_blur(img, line_psf())
    assert np.abs(blurred.astype(int) - ref).max() <= 1
    assert np.array_equal(sharp, img)
    # Blurring encoded pixels (crf none) is not the same: the edge is darker there.
    naive, _ = render_pair(img, line_psf(), crf="none")
    assert naive[5, 16, 0] < blurred[5, 16, 0] - 10


def test_constant_photo_stays_constant_with_every_curve():
    img = np.full((20, 20, 3), 173, np.uint8)
    psf = np.random.default_rng(0).random((9, 9)).astype(np.float32)
    psf /= psf.sum()
    for crf in ("gamma:2.2", "srgb", "none"):
        for border in ("reflect", "wrap", "valid"):
            b, s = render_pair(img, psf, crf=crf, border=border)
            assert (b == 173).all() and (s == 173).all() and b.shape == s.shape


def test_valid_border_crops_both_images_alike():
    img = edge_scene()
    b, s = render_pair(img, line_psf(7), border="valid")
    assert b.shape == s.shape == (18, 26, 3)
    assert np.array_equal(s, img[3:-3, 3:-3])


def test_saturation_blooms_highlights_and_scales_sharp_alike():
    img = np.full((24, 24, 3), 40, np.uint8)
    img[10:13, 10:13] = 250  # a small highlight
    b1, _ = render_pair(img, line_psf(9))
    b3, s3 = render_pair(img, line_psf(9), saturation=3.0)
    ref = reference_gamma_blur(img, line_psf(9), scale=3.0)
    assert np.abs(b3.astype(int) - ref).max() <= 1
    # The clipped highlight spreads into a brighter, longer streak.
    assert b3[11].astype(int).sum() > b1[11].astype(int).sum()
    assert (s3[11, 11] == 255).all() and s3[0, 0, 0] > 40


def test_noise_statistics_in_linear_light():
    img = np.full((64, 64, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    b, s = render_pair(img, line_psf(3), crf="none", shot_noise=0.01, read_noise=0.0, noise_rng=rng)
    assert np.array_equal(s, img)
    lin = b.astype(np.float64) / 255
    assert lin.std() == pytest.approx(np.sqrt(0.01 * 128 / 255), rel=0.05)
    same, _ = render_pair(img, line_psf(3), crf="none", shot_noise=0.01, read_noise=0.0,
                          noise_rng=np.random.default_rng(0))
    assert np.array_equal(same, b)


def test_jpeg_applies_to_blurred_only():
    img = edge_scene(32, 32)
    b, s = render_pair(img, line_psf(), jpeg_quality=30)
    clean, _ = render_pair(img, line_psf())
    assert not np.array_equal(b, clean) and np.array_equal(s, img)


def test_alignment_of_a_bright_dot_with_a_centred_psf():
    from blursynth.ops.psf import rasterize_psf
    from blursynth.ops.trajectory import sample_trajectory

    traj, _ = sample_trajectory(rng=3, length_px=12.0, n_samples=400)
    psf = rasterize_psf(traj, max_size=15)  # centred on its centre of mass
    img = np.zeros((41, 41, 3), np.uint8)
    img[20, 20] = 255
    b, _ = render_pair(img, psf, crf="none")
    w = b[..., 0].astype(np.float64)
    gy, gx = np.mgrid[:41, :41]
    assert (w * gy).sum() / w.sum() == pytest.approx(20, abs=0.05)
    assert (w * gx).sum() / w.sum() == pytest.approx(20, abs=0.05)


# --- the command's library function -------------------------------------------------------------

@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import cv2
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    (folder / "sub").mkdir()
    cv2.imwrite(str(folder / "a.png"), data.astronaut()[::6, ::6, ::-1])     # 86x86
    cv2.imwrite(str(folder / "sub" / "b.jpg"), data.coffee()[::5, ::5, ::-1])  # 80x120
    cv2.imwrite(str(folder / "c.png"), data.camera()[::6, ::6])               # gray 86x86
    return folder


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    from blursynth.kernelbank import KernelBankConfig, write_kernel_bank
    from blursynth.ops.trajectory import TrajectoryConfig

    path = tmp_path_factory.mktemp("bank") / "bank"
    write_kernel_bank(path, KernelBankConfig(n=16, seed=1, canvas=16,
                                             trajectory=TrajectoryConfig(n_samples=300, length_px=12.0)),
                      progress=False)
    return path


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


def test_torch_path_for_gpus_agrees_with_cpu_path():
    # The path a CUDA device takes (torch decode, pad, convolve, bucketize encode), run on the CPU.
    import torch

    from blursynth.pairs.shake import _blur_linear_cpu, _blur_linear_torch, _encode_hwc
    from blursynth.ops.color import CameraResponse

    img = edge_scene(30, 40)
    psf = np.random.default_rng(2).random((9, 9)).astype(np.float32)
    psf /= psf.sum()
    for crf in ("gamma:2.2", "srgb"):
        for border in ("reflect", "wrap", "valid"):
            c = CameraResponse.parse(crf)
            a = _blur_linear_cpu(img, psf, c, border, "auto")
            b = _blur_linear_torch(img, psf, c, border, torch.device("cpu"), "fft")
            torch.testing.assert_close(a, b, atol=2e-6, rtol=0)
            ea = _encode_hwc(a, c)
            eb = np.ascontiguousarray(c.encode_uint8(b).permute(1, 2, 0).numpy())
            assert np.abs(ea.astype(int) - eb).max() <= 1


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
    monkeypatch.setattr(blur, "resolve_device", lambda name: torch.device("cuda"))
    with pytest.raises(BlursynthError, match="different command"):
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
