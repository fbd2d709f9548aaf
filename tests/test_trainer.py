"""train/trainer.py: one DeblurGAN update (critic steps, then the generator), its generators."""

import numpy as np
import pytest
import torch

from blursynth.train.losses import ContentLoss
from blursynth.train.models import CONFIGS, build_models
from blursynth.train.trainer import Trainer


def test_small_config_reduces_loss_on_a_fixed_batch():
    g, d = build_models(CONFIGS["small"], seed=0)
    trainer = Trainer(g, d, ContentLoss(None), lr=1e-3, critic_steps=1, seed=0)
    torch_rng = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, 32, 32, generator=torch_rng) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(sharp, 5, stride=1, padding=2,
                                             count_include_pad=False)
    losses = [trainer.step(blurred, sharp)["loss_content"] for _ in range(16)]
    start, end = np.mean(losses[:3]), np.mean(losses[-3:])
    assert end < 0.8 * start, losses  # about 0.53 -> 0.38 here


def test_each_rank_restores_its_own_generators():
    g, d = build_models(CONFIGS["small"], seed=0)
    ranks = [Trainer(g, d, ContentLoss(None), seed=3, rank=r) for r in range(2)]
    saved = ranks[0].state_dict()
    saved["rng_ranks"] = [t.rng_state() for t in ranks]
    fresh = Trainer(g, d, ContentLoss(None), seed=3, rank=1)
    fresh.rng_gp.manual_seed(99)  # a state that loading must replace
    fresh.load_state_dict(saved, rank=1)
    assert torch.equal(fresh.rng_gp.get_state(), ranks[1].rng_gp.get_state())
    assert not torch.equal(fresh.rng_gp.get_state(), ranks[0].rng_gp.get_state())
    # A single-process checkpoint holds rank 0's streams only: rank 1 keeps its own keyed ones.
    single = ranks[0].state_dict()
    other = Trainer(g, d, ContentLoss(None), seed=3, rank=1)
    other.load_state_dict(single, rank=1)
    assert torch.equal(other.rng_dropout.get_state(), ranks[1].rng_dropout.get_state())


def test_content_only_training_leaves_the_critic_alone():
    # --critic-steps 0: the generator learns from the content loss; the critic is not updated.
    g, d = build_models(CONFIGS["small"], seed=0)
    before = {k: v.clone() for k, v in d.state_dict().items()}
    trainer = Trainer(g, d, ContentLoss(None), lr=1e-3, critic_steps=0, seed=0)
    torch_rng = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, 32, 32, generator=torch_rng) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(sharp, 5, stride=1, padding=2,
                                             count_include_pad=False)
    steps = [trainer.step(blurred, sharp) for _ in range(16)]
    losses = [s["loss_content"] for s in steps]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
    assert all(np.isnan(s["loss_d"]) and np.isnan(s["loss_adv"]) for s in steps)
    assert steps[-1]["loss_g"] == pytest.approx(100.0 * losses[-1], rel=1e-6)
    for k, v in d.state_dict().items():
        assert torch.equal(v, before[k]), k
