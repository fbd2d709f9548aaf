"""BGAN: networks, noise, receptive field and tiling, relativistic loss, weights, lr drops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from blursynth.bgan.losses import LossWeights, PooledL1, relativistic_critic_loss, \
    relativistic_generator_loss
from blursynth.bgan.model import CONFIGS, BGANConfig, BlurGenerator, ResidualBlock, build_bgan, \
    model_fingerprint, noise_map
from blursynth.bgan.train import BGANTrainer, BGANTrainSettings, PlateauDrop
from blursynth.train.losses import ContentLoss

TINY = CONFIGS["tiny"]


# --- networks ----------------------------------------------------------------------------------

def test_paper_generator_structure():
    g = BlurGenerator(CONFIGS["paper"])
    assert g.head.in_channels == 3 + 4 and g.head.out_channels == 64
    blocks = [m for m in g.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 9
    for b in blocks:
        convs = [m for m in b.body if isinstance(m, nn.Conv2d)]
        relus = [m for m in b.body if isinstance(m, nn.ReLU)]
        assert len(convs) == 5 and len(relus) == 4
        assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) for c in convs)
    tail = list(g.tail)
    assert [type(m) for m in tail] == [nn.Conv2d, nn.ReLU, nn.Conv2d]
    assert tail[-1].out_channels == 3
    assert g.receptive_radius() == 1 + 45 + 2
    assert not CONFIGS["paper"].image_skip


def test_generator_init_is_normal_001_and_leaves_global_rng():
    before = torch.get_rng_state()
    g, _ = build_bgan(CONFIGS["paper"], seed=1)
    assert torch.equal(before, torch.get_rng_state())
    w = torch.cat([m.weight.detach().flatten() for m in g.modules() if isinstance(m, nn.Conv2d)])
    assert abs(float(w.std()) - 0.01) < 0.0005 and abs(float(w.mean())) < 0.0005
    assert all(float(m.bias.detach().abs().max()) == 0 for m in g.modules() if isinstance(m, nn.Conv2d))


def test_shapes_any_size(tiny):
    g, d = tiny
    for h, w in ((17, 23), (32, 32), (5, 40)):
        out = g(torch.rand(3, 3, h, w) * 2 - 1, torch.randn(3, 4))
        assert out.shape == (3, 3, h, w)
        assert d(out).shape == (3,)
    assert CONFIGS["paper"].critic_stages == (2, 2, 4, 4, 4)


def test_noise_map_is_tiled_vector():
    z = torch.randn(2, 4)
    m = noise_map(z, 5, 7)
    assert m.shape == (2, 4, 5, 7)
    assert torch.equal(m[:, :, 3, 6], z) and torch.equal(m[:, :, 0, 0], z)
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        noise_map(torch.randn(2, 3), 5, 7)


def test_noise_changes_output_and_same_noise_reproduces(tiny):
    g, _ = tiny
    x = torch.rand(1, 3, 24, 24) * 2 - 1
    z1, z2 = torch.randn(1, 4), torch.randn(1, 4)
    with torch.no_grad():
        a, b, c = g(x, z1), g(x, z1.clone()), g(x, z2)
    assert torch.equal(a, b)
    assert float((a - c).abs().max()) > 1e-6


def test_receptive_radius_is_exact(tiny):
    """The output pixel at the centre depends on inputs up to the radius and on none beyond."""
    g, _ = tiny
    g64 = BlurGenerator(TINY).double()
    g64.load_state_dict(g.state_dict())
    r = g64.receptive_radius()
    n = 2 * r + 11
    c = n // 2
    x = (torch.rand(1, 3, n, n, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    out = g64(x, torch.randn(1, 4, dtype=torch.float64))
    out[0, :, c, c].sum().backward()
    ys, xs = torch.nonzero(x.grad.abs().amax(dim=(0, 1)) > 0, as_tuple=True)
    assert int(torch.maximum((ys - c).abs(), (xs - c).abs()).max()) == r


def test_fingerprint_tracks_weights(tiny):
    g, _ = tiny
    fp = model_fingerprint(g)
    g2, _ = build_bgan(TINY, seed=0)
    assert model_fingerprint(g2) == fp
    with torch.no_grad():
        g2.tail[0].bias[0] += 1e-3
    assert model_fingerprint(g2) != fp


def test_config_sizes_override_and_round_trip():
    c = CONFIGS["small"].with_sizes(width=12, n_blocks=2)
    assert (c.width, c.n_blocks, c.name) == (12, 2, "small+custom")
    assert BGANConfig.from_dict(c.to_dict()) == c
    assert CONFIGS["small"].with_sizes() is CONFIGS["small"]
    with pytest.raises(ValueError, match="width"):
        BGANConfig("x", width=0)


# --- losses ------------------------------------------------------------------------------------

def _hand(real, fake):
    """The issue's formulas, term by term, in plain Python."""
    sig = lambda v: 1 / (1 + math.exp(-v))
    er, ef = sum(real) / len(real), sum(fake) / len(fake)
    d = (-sum(math.log(sig(c - ef)) for c in real) / len(real)
         - sum(math.log(1 - sig(c - er)) for c in fake) / len(fake))
    g = (-sum(math.log(sig(c - er)) for c in fake) / len(fake)
         - sum(math.log(1 - sig(c - ef)) for c in real) / len(real))
    return d, g


@pytest.mark.parametrize("real,fake", [([1.5, -0.25, 0.75], [0.1, -2.0, 0.4]),
                                       ([3.0, 2.0], [-1.0, -4.0]),
                                       ([0.0], [0.0])])
def test_relativistic_loss_matches_hand_computation(real, fake):
    d, g = _hand(real, fake)
    r = torch.tensor(real, dtype=torch.float64)
    f = torch.tensor(fake, dtype=torch.float64)
    assert float(relativistic_critic_loss(r, f)) == pytest.approx(d, rel=1e-12)
    assert float(relativistic_generator_loss(r, f)) == pytest.approx(g, rel=1e-12)


def test_relativistic_loss_finite_for_large_scores_and_gradient():
    r = torch.tensor([200.0, 150.0])
    f = torch.tensor([-300.0, -100.0], requires_grad=True)
    lg = relativistic_generator_loss(r, f)
    assert math.isfinite(float(lg.detach())) and float(lg.detach()) > 100
    lg.backward()
    assert torch.isfinite(f.grad).all() and float(f.grad.abs().sum()) > 0
    # Gradient of the generator's loss against a hand derivative, on small numbers.
    r = torch.tensor([0.3, -0.2], dtype=torch.float64)
    f = torch.tensor([0.1, 0.5], dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda ff: relativistic_generator_loss(r, ff), (f,))


def test_loss_weights_both_readings_and_overrides():
    assert LossWeights.paper("perceptual") == LossWeights(perceptual=0.005, blur=0.01)
    assert LossWeights.paper("blur") == LossWeights(perceptual=0.01, blur=0.005)
    s = dict(sharp="a", real_blur="b", out="c", steps=1)
    assert BGANTrainSettings(**s).loss_weights() == LossWeights(0.005, 0.01)
    assert BGANTrainSettings(**s, alpha_weighs="blur").loss_weights() == LossWeights(0.01, 0.005)
    assert BGANTrainSettings(**s, blur_weight=1.0).loss_weights() == LossWeights(0.005, 1.0)
    with pytest.raises(ValueError, match="alpha-weighs"):
        BGANTrainSettings(**s, alpha_weighs="both").loss_weights()


def test_pooled_l1_keeps_content_not_detail():
    gen = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, 16, 16, generator=gen)
    local_mean = torch.nn.functional.avg_pool2d(sharp, 4)
    flat = torch.nn.functional.interpolate(local_mean, scale_factor=4, mode="nearest")
    assert float(PooledL1(4)(flat, sharp)) < 1e-6          # detail removed: no penalty
    assert float(PooledL1(4)(sharp + 0.25, sharp)) == pytest.approx(0.25)  # colour shift: penalty
    assert float(PooledL1(4)(sharp[..., :15, :15], sharp[..., :15, :15])) == 0.0  # any size


def test_plateau_drop():
    p = PlateauDrop(1e-4, window=3, patience=2, factor=0.1, min_lr=2e-6)
    lrs = [p.update(x) for x in [9, 9, 9] + [5, 5, 5] + [5, 5, 5] + [6, 6, 6]]
    assert lrs[:11] == [1e-4] * 11 and lrs[11] == pytest.approx(1e-5)
    for _ in range(12):
        p.update(7.0)
    assert p.lr == pytest.approx(2e-6) and p.drops == 2
    q = PlateauDrop(1.0, window=3, patience=2)
    q.load_state_dict(p.state_dict())
    assert q.state_dict() == p.state_dict()


# --- training ----------------------------------------------------------------------------------

def test_generator_step_lowers_its_adversarial_loss_against_fixed_critic():
    """The generator's gradient path works: against a fixed critic, its blur loss falls."""
    g, d = build_bgan(TINY, seed=4)
    d.requires_grad_(False)
    tr = BGANTrainer(g, d, ContentLoss(None), LossWeights(perceptual=0.0, blur=1.0), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    sharp = torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1
    real = torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1
    noise = torch.randn(4, 4, generator=gen)
    losses = []
    for _ in range(15):
        _, out = tr.losses(sharp, real, noise)
        losses.append(float(out["loss_blur"].detach()))
        tr.opt_g.zero_grad()
        out["loss_g"].backward()
        tr.opt_g.step()
    assert losses[-1] < losses[0] - 0.05, losses


def test_joint_step_updates_both_networks_separately():
    g, d = build_bgan(TINY, seed=5)
    tr = BGANTrainer(g, d, ContentLoss(None), LossWeights(0.005, 0.01))
    g0 = model_fingerprint(g)
    d0 = [p.clone() for p in d.parameters()]
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    _, losses = tr.step(x, torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 4))
    assert model_fingerprint(g) != g0
    assert any(not torch.equal(a, b) for a, b in zip(d0, d.parameters()))
    assert set(losses) >= {"loss_d", "loss_g", "loss_blur", "loss_perceptual"}
    assert all(math.isfinite(v) for v in losses.values())


# --- data --------------------------------------------------------------------------------------

def test_image_set_reads_a_pair_dataset_column(tiny_pairs_dataset):
    from blursynth.bgan.data import ImageSet, check_unpaired
    from blursynth.errors import BadInputError
    from blursynth.dataset import PairDataset

    path = tiny_pairs_dataset(n=4, size=(40, 44))
    real = ImageSet(path, column="blurred", option="--real-blur")
    sharp = ImageSet(path, column="sharp", option="--sharp")
    assert len(real) == 4 and real.sizes() == [(40, 44)] * 4
    pair = PairDataset(path)[2]
    assert np.array_equal(real.load(2), pair["blurred"])
    assert np.array_equal(sharp.load(2), pair["sharp"])
    with pytest.raises(BadInputError, match="same dataset"):
        check_unpaired(sharp, real)


def test_unpaired_patches_are_a_function_of_position(tmp_path):
    from blursynth.bgan.data import ImageSet, UnpairedPatches
    from blursynth.sources.photos import save_rgb8

    rng = np.random.default_rng(0)
    for i in range(3):
        save_rgb8(tmp_path / "s" / f"{i}.png", rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
        save_rgb8(tmp_path / "r" / f"{i}.png", rng.integers(0, 256, (36, 33, 3), dtype=np.uint8))
    make = lambda: UnpairedPatches(ImageSet(tmp_path / "s", column="sharp", option="--sharp"),
                                   ImageSet(tmp_path / "r", column="blurred", option="--real-blur"),
                                   seed=3, patch=16)
    a, b = make(), make()
    later = [b[k] for k in (9, 2, 5)]
    for k, item in zip((9, 2, 5), later):
        for x, y in zip(a[k], item):
            assert torch.equal(x, y)
    s, r, z = a[4]
    assert s.shape == r.shape == (3, 16, 16) and z.shape == (4,)
    assert not torch.equal(a[4][0], a[5][0]) and not torch.equal(a[4][2], a[5][2])
