"""train/tiling.py: tiled inference equals whole-image inference (global statistics)."""

import torch

from blursynth.train.models import ModelConfig, build_models
from blursynth.train.tiling import deblur_tensor


def test_tiled_inference_equals_whole_image_inference():
    g, _ = build_models(ModelConfig("tiny", ngf=8, n_blocks=1, ndf=8), seed=0)
    x = torch.rand(1, 3, 62, 150)  # not a multiple of 4: padded and cropped back
    whole = deblur_tensor(g, x, tile=1024)
    tiled = deblur_tensor(g, x, tile=112, blend=8, norm_stats="global")  # 2 x 4 tiles
    assert whole.shape == x.shape
    assert (whole - tiled).abs().max() < 1e-4
    # Per-tile statistics are an approximation: close, blended, but not exact.
    approx = deblur_tensor(g, x, tile=112, blend=8, norm_stats="tile")
    diff = (whole - approx).abs()
    assert diff.mean() < 0.05 and diff.max() > 1e-4
