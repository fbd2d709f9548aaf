"""Trainer building blocks: network sizes, WGAN-GP, VGG19 loading, PSNR/SSIM, tiled inference."""

import numpy as np
import pytest
import torch

from blursynth.errors import BadInputError
from blursynth.nn.vgg import VGG19Features, load_vgg19_features, resolve_vgg19_weights
from blursynth.train.losses import ContentLoss, critic_loss, gradient_penalty
from blursynth.train.metrics import psnr, ssim
from blursynth.train.models import CONFIGS, Critic, ModelConfig, build_models, count_parameters
from blursynth.train.tiling import deblur_tensor


def test_paper_config_parameter_counts_and_shapes():
    g, d = build_models(CONFIGS["paper"], seed=0)
    # DeblurGAN's paper: generator about 11.4M parameters, critic about 2.8M.
    assert count_parameters(g) == pytest.approx(11.4e6, rel=0.01)
    assert count_parameters(d) == pytest.approx(2.8e6, rel=0.02)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    g.eval()
    with torch.no_grad():
        x = torch.rand(1, 3, 64, 64) * 2 - 1
        y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert d(torch.zeros(2, 3, 64, 64)).shape == (2, 1, 11, 11)


def test_identity_init_returns_the_input_through_the_global_skip():
    g, _ = build_models(CONFIGS["small"], seed=0, init="identity")
    paper, _ = build_models(CONFIGS["small"], seed=0)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(g.eval()(x), x)
        assert not torch.equal(paper.eval()(x), x)


def test_build_models_is_deterministic_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, _ = build_models(CONFIGS["small"], seed=3)
    b, _ = build_models(CONFIGS["small"], seed=3)
    c, _ = build_models(CONFIGS["small"], seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_gradient_penalty_per_sample_against_hand_computation():
    # D(x) = 0.5 * sum(x^2) has gradient x, so the penalty is 10 * mean_i (||x_i|| - 1)^2
    # at x_i = a_i real_i + (1 - a_i) fake_i with a_i the generator's first draws.
    critic = lambda x: 0.5 * (x ** 2).sum(dim=(1, 2, 3))  # noqa: E731
    real = torch.rand(3, 2, 4, 4, dtype=torch.float64)
    fake = torch.rand(3, 2, 4, 4, dtype=torch.float64) * 3
    got = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(5))
    a = torch.rand(3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    want = 0.0
    for i in range(3):
        mixed = a[i] * real[i] + (1 - a[i]) * fake[i]
        want += 10 * (float(np.sqrt((mixed.numpy() ** 2).sum())) - 1) ** 2 / 3
    assert got.item() == pytest.approx(want, rel=1e-10)
    # A batch-wide norm would give a different number: the test can tell them apart.
    batch_norm = 10 * (float(torch.sqrt(sum(((a[i] * real[i] + (1 - a[i]) * fake[i]) ** 2).sum()
                                            for i in range(3)))) - 1) ** 2
    assert abs(batch_norm - want) > 1


def test_critic_loss_penalty_matches_gradient_penalty():
    d = Critic(CONFIGS["small"]).double()
    real = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    fake = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    loss, wdist, gp = critic_loss(d, real, fake, generator=torch.Generator().manual_seed(1))
    gp2 = gradient_penalty(d, real, fake, generator=torch.Generator().manual_seed(1))
    assert float(gp) == pytest.approx(gp2.item(), rel=1e-9)
    with torch.no_grad():
        want_w = d(real).mean() - d(fake).mean()
    assert float(wdist) == pytest.approx(float(want_w), rel=1e-9)
    assert loss.item() == pytest.approx((gp - wdist).item(), rel=1e-9)
    loss.backward()
    assert all(p.grad is not None for p in d.parameters())


def test_vgg_loads_torchvision_named_file_and_reports_missing_keys(tmp_path):
    needed = VGG19Features("conv3_3")
    state = {k: torch.randn_like(v) for k, v in needed.state_dict().items()}
    # torchvision's file also holds deeper layers and the classifier: ignored.
    state["features.16.weight"] = torch.zeros(256, 256, 3, 3)
    state["classifier.0.weight"] = torch.zeros(2, 2)
    good = tmp_path / "vgg19.pth"
    torch.save(state, good)
    net = load_vgg19_features(resolve_vgg19_weights(good), "conv3_3")
    assert len(net.features) == 15
    assert torch.equal(net.features[14].weight, state["features.14.weight"])
    del state["features.12.weight"], state["features.14.bias"]
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(BadInputError, match="features.12.weight, features.14.bias"):
        load_vgg19_features(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(BadInputError, match="not a torch state dict"):
        load_vgg19_features(junk)


def test_vgg_missing_everywhere_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(BadInputError, match="--perceptual none"):
        resolve_vgg19_weights(None, download=False)
    with pytest.raises(BadInputError, match="no such file"):
        resolve_vgg19_weights(tmp_path / "nope.pth")
    cached = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert resolve_vgg19_weights(None, download=False) == cached


def test_content_loss_perceptual_is_zero_for_equal_images_and_positive_otherwise():
    loss = ContentLoss(VGG19Features("conv1_2"))
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert float(loss(x, x)) == 0
    assert float(loss(x, -x)) > 0


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
