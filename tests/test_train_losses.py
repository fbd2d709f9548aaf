"""train/losses.py: WGAN-GP (per-sample penalty) and the content loss."""

import numpy as np
import pytest
import torch

from blursynth.nn.vgg import VGG19Features
from blursynth.train.losses import ContentLoss, critic_loss, gradient_penalty
from blursynth.train.models import CONFIGS, Critic


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


def test_content_loss_perceptual_is_zero_for_equal_images_and_positive_otherwise():
    loss = ContentLoss(VGG19Features("conv1_2"))
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert float(loss(x, x)) == 0
    assert float(loss(x, -x)) > 0
