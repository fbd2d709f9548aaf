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
