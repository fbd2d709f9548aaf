"""train/models.py: DeblurGAN's networks (sizes, identity init, determinism)."""

import pytest
import torch

from blursynth.train.models import CONFIGS, build_models, count_parameters


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
