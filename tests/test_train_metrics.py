"""train/metrics.py: PSNR and SSIM as scikit-image defines them."""

import numpy as np
import pytest
import torch

from blursynth.train.metrics import psnr, ssim


@pytest.mark.parametrize("shape", [(40, 52, 3), (23, 31, 3)])
def test_psnr_ssim_match_scikit_image(shape):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(0)
    a = rng.random(shape)
    b = np.clip(a + 0.05 * rng.standard_normal(shape), 0, 1)
    ta = torch.from_numpy(a).permute(2, 0, 1)[None]
    tb = torch.from_numpy(b).permute(2, 0, 1)[None]
    want_ssim = structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=1.0, channel_axis=-1)
    assert float(ssim(ta, tb)[0]) == pytest.approx(want_ssim, abs=1e-10)
    assert float(psnr(ta, tb)[0]) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0),
                                                   abs=1e-10)
    assert float(ssim(ta, ta)[0]) == pytest.approx(1.0)
