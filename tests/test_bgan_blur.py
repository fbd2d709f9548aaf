"""Learned-blur pairs (pairs/bgan.py): tiled inference equals whole-image inference, uint8 in and out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blursynth.bgan.model import CONFIGS, build_bgan
from blursynth.pairs.bgan import blur_image, blur_tensor, pair_noise


@pytest.fixture(scope="module")
def tiny():
    return build_bgan(CONFIGS["tiny"], seed=0)


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


def test_bgan_blur_reads_photos_upright_and_says_so_in_converted(tiny, tmp_path, monkeypatch):
    from PIL import Image

    from blursynth.bgan import train as bgan_train
    from blursynth.bgan.train import CHECKPOINT
    from blursynth.dataset import PairDataset
    from blursynth.pairs.bgan import BGANBlurSettings, bgan_blur

    g, _ = tiny
    info = {"config": {"name": "tiny"}, "step": 0, "fingerprint": "f" * 16}
    monkeypatch.setattr(bgan_train, "load_bgan_generator", lambda path, device="cpu": (g.eval(), info))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / CHECKPOINT).write_bytes(b"stub")  # its size and time key the cache
    stored = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "photos").mkdir()
    Image.fromarray(stored).save(tmp_path / "photos" / "phone.png", exif=exif)
    bgan_blur(BGANBlurSettings(photos=str(tmp_path / "photos"), model=str(tmp_path / "model"),
                               device="cpu"), tmp_path / "photos" / "pairs", progress=False)
    row = PairDataset(tmp_path / "photos" / "pairs")[0]
    assert np.array_equal(row["sharp"], np.rot90(stored, -1)) and row["blurred"].shape == (30, 20, 3)
    assert row["params"]["converted"] == "EXIF orientation 6 applied"
