"""The seed papers' networks: DeblurGAN-v2 (FPN-MobileNet), DeepDeblur, DBGAN (issue 19).

Shapes, parameter counts at the paper configs, torchvision's MobileNet-V2 names and the
--backbone-weights checks, the losses on hand-made cases.
"""

import json

import numpy as np
import pytest
import torch
from torch import nn

from blursynth.errors import BadInputError
from blursynth.nn import dbgan, deepdeblur, fpn
from blursynth.nn.mobilenetv2 import MobileNetV2, load_backbone_weights

from .conftest import error_line


def n_params(module):
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# MobileNet-V2 and --backbone-weights


def test_mobilenetv2_has_torchvisions_size_and_names():
    net = MobileNetV2()
    # torchvision's mobilenet_v2 (width 1, 1000 classes) has 3,504,872 parameters.
    assert n_params(net) == 3_504_872
    keys = list(net.state_dict())
    assert keys[:3] == ["features.0.0.weight", "features.0.1.weight", "features.0.1.bias"]
    assert "features.1.conv.0.0.weight" in keys      # t = 1 block: depthwise first
    assert "features.2.conv.0.0.weight" in keys      # t = 6 block: expansion first
    assert "features.2.conv.3.running_var" in keys   # the projection's BatchNorm
    assert "features.18.0.weight" in keys and keys[-1] == "classifier.1.bias"
    assert tuple(net.state_dict()["features.17.conv.2.weight"].shape) == (320, 960, 1, 1)


def test_backbone_stages_are_at_five_scales():
    maps = MobileNetV2(classifier=False).forward_stages(torch.zeros(1, 3, 64, 96))
    assert [tuple(m.shape[1:]) for m in maps] == [
        (16, 32, 48), (24, 16, 24), (32, 8, 12), (96, 4, 6), (320, 2, 3)]


def test_backbone_weights_load_into_the_fpn_generator(tmp_path):
    ref = MobileNetV2()
    with torch.no_grad():
        for p in ref.parameters():
            p.uniform_(-1, 1)
    f = tmp_path / "mobilenet_v2.pth"
    torch.save(ref.state_dict(), f)
    gen, _ = fpn.build_fpn(fpn.CONFIGS["paper"], seed=0)
    info = load_backbone_weights(gen.backbone, f)
    assert info == {"weights": str(f), "keys": len(gen.backbone.state_dict())}
    got = gen.backbone.state_dict()
    assert all(torch.equal(got[k], ref.state_dict()[k]) for k in got)


def test_backbone_weights_of_the_wrong_shape_name_the_keys(tmp_path):
    f = tmp_path / "narrow.pth"
    torch.save(MobileNetV2(width=0.5).state_dict(), f)
    with pytest.raises(BadInputError) as err:
        load_backbone_weights(MobileNetV2(classifier=False), f)
    msg = str(err.value)
    assert "\n" not in msg and err.value.exit_code == 2
    assert "features.0.0.weight has shape (16, 3, 3, 3), expected (32, 3, 3, 3)" in msg
    assert "--config paper only" in msg


def test_backbone_weights_missing_keys_or_not_a_state_dict(tmp_path):
    f = tmp_path / "vgg.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, f)
    with pytest.raises(BadInputError, match="missing keys features.0.0.weight"):
        load_backbone_weights(MobileNetV2(classifier=False), f)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(BadInputError, match="not a torch state dict"):
        load_backbone_weights(MobileNetV2(classifier=False), junk)
    with pytest.raises(BadInputError, match="no such file"):
        load_backbone_weights(MobileNetV2(classifier=False), tmp_path / "nope.pth")


# ---------------------------------------------------------------------------------------------
# DeblurGAN-v2


def test_fpn_paper_config_sizes():
    gen, disc = fpn.build_fpn(fpn.CONFIGS["paper"], seed=0)
    # MobileNet-V2 features 0..17 (no last 1x1 conv, no classifier): 1,811,712.
    assert n_params(gen.backbone) == 1_811_712
    assert n_params(gen) == 2_926_211
    # Local: DeblurGAN's 70 px PatchGAN (2.76M); global: the same with 5 strided layers.
    assert n_params(disc.local) == 2_764_737
    assert n_params(disc) == 13_919_106


@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (1, 3, 40, 72)])
def test_fpn_generator_keeps_shape_and_range(shape):
    gen, disc = fpn.build_fpn(fpn.CONFIGS["small"], seed=0)
    x = torch.rand(shape) * 2 - 1
    y = gen(x)
    assert y.shape == x.shape and float(y.detach().abs().max()) <= 1
    local, whole = disc(torch.zeros(2, 3, 64, 64))
    assert local.shape == (2, 1, 11, 11) and whole.shape[:2] == (2, 1)


def test_fpn_builds_the_same_from_the_same_seed_and_leaves_global_rng():
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    a, _ = fpn.build_fpn(fpn.CONFIGS["small"], seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)
    b, _ = fpn.build_fpn(fpn.CONFIGS["small"], seed=3)
    c, _ = fpn.build_fpn(fpn.CONFIGS["small"], seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["final.weight"], sc["final.weight"])


def test_ralsgan_losses_by_hand():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([1.0, -1.0])
    # E_r = 1, E_f = 0: critic ((2-0-1)^2 + (0-0-1)^2)/2 + ((1-1+1)^2 + (-1-1+1)^2)/2 = 1 + 1
    assert float(fpn.ralsgan_critic_loss(real, fake)) == pytest.approx(2.0)
    # generator: ((1-1-1)^2 + (-1-1-1)^2)/2 + ((2-0+1)^2 + (0-0+1)^2)/2 = 5 + 5
    assert float(fpn.ralsgan_generator_loss(real, fake)) == pytest.approx(10.0)


def test_fpn_receptive_radius_bounds_the_reach():
    """The full MobileNet-V2 backbone's reach (test_archs tiles a shallower one): with
    BatchNorm in place of InstanceNorm (eval: a local affine map) a pixel's change stays
    within the radius."""
    from dataclasses import replace

    gen, _ = fpn.build_fpn(replace(fpn.CONFIGS["small"], norm="batch"), seed=0)
    gen.eval()
    r = gen.receptive_radius()
    assert r == 245 + 84 + 64 + 13  # backbone, top-down path, coarsest head, the rest
    x = torch.zeros(1, 3, 448, 448)
    y = x.clone()
    y[..., 8, 8] = 1.0
    with torch.no_grad():
        diff = (gen(x) - gen(y)).abs().amax(dim=1)[0]
    ys, xs = torch.nonzero(diff > 0, as_tuple=True)
    reach = max(int((ys - 8).abs().max()), int((xs - 8).abs().max()))
    assert 200 < reach <= r


# ---------------------------------------------------------------------------------------------
# DeepDeblur


def test_deepdeblur_paper_config_sizes():
    gen, disc = deepdeblur.build_deepdeblur(deepdeblur.CONFIGS["paper"], seed=0)
    # 40 convs a scale (head, 19 ResBlocks of two, tail), 120 in all, and two up-convolutions.
    for scale in gen.scales:
        assert sum(isinstance(m, nn.Conv2d) for m in scale.modules()) == 40
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in gen.modules()) == 2
    # 3 x ~3.9M: the coarsest scale takes 3 channels in, the two finer ones 6.
    assert [n_params(s) for s in gen.scales] == [3_903_299, 3_908_099, 3_908_099]
    assert n_params(gen) == 11_719_953
    # The authors' release: 5x5 convs of 32, 32, 64, 64, 128, 128, 256, 256, 512 (no bias), a
    # 4x4 conv of 512 (no bias) and a 1x1 conv to the logit (512 weights and a bias).
    widths = (32, 32, 64, 64, 128, 128, 256, 256, 512)
    fives = sum(c_in * c * 25 for c_in, c in zip((3,) + widths, widths))
    assert n_params(disc) == fives + 512 * 512 * 16 + 512 + 1 == 10_725_217
    convs = [m for m in disc.modules() if isinstance(m, nn.Conv2d)]
    assert [m.stride[0] for m in convs] == [1, 2, 1, 2, 1, 4, 1, 4, 1, 4, 1]
    assert [m.bias is None for m in convs] == [True] * 10 + [False]
    # A 256 crop reaches the 4x4 conv at 4x4 and gives one logit, as in the release.
    assert disc.convs(torch.zeros(1, 3, 256, 256)).shape[-2:] == (4, 4)
    assert disc(torch.zeros(1, 3, 256, 256)).shape == (1, 1)


@pytest.mark.parametrize("side,logits", [(32, 1), (64, 1), (128, 1), (192, 1), (193, 1),
                                         (256, 1), (512, 4), (520, 4)])
def test_deepdeblur_critic_takes_every_crop(side, logits):
    """Crops under 193 px reach the 4x4 conv with a smaller map, repeated to 4x4; larger ones
    give one logit per 256 px window, as the release does."""
    disc = deepdeblur.build_deepdeblur(deepdeblur.CONFIGS["small"], seed=0)[1]
    x = torch.rand(2, 3, side, side)
    out = disc(x)
    assert out.shape == (2, logits) and torch.isfinite(out).all()
    f = disc.convs(x)
    if f.shape[-1] < 4:  # the repeated map: one value per cell of the crop's own map
        cells = torch.nn.functional.interpolate(f, size=(4, 4), mode="nearest")
        assert torch.equal(out, disc.dense(disc.last(cells)).flatten(1))


def test_deepdeblur_scales_and_pyramid():
    gen, _ = deepdeblur.build_deepdeblur(deepdeblur.CONFIGS["small"], seed=0)
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    outs = gen(x)
    assert [tuple(o.shape[-2:]) for o in outs] == [(8, 12), (16, 24), (32, 48)]
    # The pyramid given by the loader is the one built inside.
    again = gen(deepdeblur.image_pyramid(x, 3))
    assert all(torch.equal(a, b) for a, b in zip(outs, again))
    assert torch.equal(gen.eval()(x), outs[-1])
    # Odd sides: padded inside, cropped back at every scale.
    gen.train()
    assert [tuple(o.shape[-2:]) for o in gen(x[..., :30, :45])] == [(8, 12), (15, 23), (30, 45)]
    # A constant image stays constant down the pyramid (the binomial kernel sums to 1).
    pyr = deepdeblur.image_pyramid(torch.full((1, 3, 16, 16), 0.25), 3)
    assert all(torch.allclose(p, torch.full_like(p, 0.25)) for p in pyr)


def test_deepdeblur_receptive_radius_bounds_the_reach():
    gen, _ = deepdeblur.build_deepdeblur(deepdeblur.CONFIGS["small"], seed=0)
    gen.eval()
    r = gen.receptive_radius()
    size = (2 * r + 64) // 4 * 4
    x = torch.zeros(1, 3, size, size)
    y = x.clone()
    y[..., 0, 0] = 1.0
    with torch.no_grad():
        diff = (gen(x) - gen(y)).abs().amax(dim=1)[0]
    assert float(diff[0, 0]) > 0
    assert float(diff[r + 1:, :].max()) == 0 and float(diff[:, r + 1:].max()) == 0


def test_multiscale_content_loss_is_eq2():
    outs = [torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 8, 8)]
    targets = [torch.full_like(o, v) for o, v in zip(outs, (1.0, 2.0, 0.0))]
    assert float(deepdeblur.multiscale_content_loss(outs, targets)) == pytest.approx(5 / 6)


# ---------------------------------------------------------------------------------------------
# DBGAN


def test_dbgan_paper_config_sizes():
    gen, critic = dbgan.build_dbgan(dbgan.CONFIGS["paper"], seed=0)
    # head 1,792 + 16 blocks x 5 convs x 36,928 + tail 36,928 + 1,731
    assert n_params(gen) == 1_792 + 16 * 5 * 36_928 + 36_928 + 1_731 == 2_994_691
    assert n_params(critic) == 20_090_177
    assert critic(torch.zeros(2, 3, 64, 64)).shape == (2,)


def test_dbgan_generator_reach_is_exact():
    gen, _ = dbgan.build_dbgan(dbgan.CONFIGS["small"], seed=0)
    r = gen.receptive_radius()
    x = torch.zeros(1, 3, 2 * r + 8, 2 * r + 8)
    y = x.clone()
    y[..., r + 4, r + 4] = 1.0
    with torch.no_grad():
        diff = (gen(x) - gen(y)).abs().amax(dim=1)[0]
    assert float(diff[4, r + 4]) > 0           # exactly r away: reached
    assert float(diff[:3, :].max()) == 0       # more than r away: not


@pytest.mark.parametrize("name", ["deblurgan", "deblurgan-v2", "deepdeblur", "dbgan", "nafnet"])
def test_the_smallest_tile_runs_and_one_multiple_less_is_refused(name):
    """``smallest_tile`` is the tiler's own rule for every down-sampling factor (4 to 32), the
    tile rounded down to the network's multiple included."""
    from blursynth.train.archs import get_arch
    from blursynth.train.tiling import deblur_tensor, multiple_of, smallest_tile

    arch = get_arch(name)
    gen = arch.build_generator(arch.config("small")).eval()
    tile, m = smallest_tile(gen, 16), multiple_of(gen)
    x = torch.rand(1, 3, 8, tile + 8, generator=torch.Generator().manual_seed(0))
    assert deblur_tensor(gen, x, tile=tile, blend=16).shape == x.shape
    # A tile just short of it, even one that rounds down to the same multiple, is refused.
    for short in {tile - 4, tile - m}:
        with pytest.raises(ValueError, match=f"use a tile of at least {tile}"):
            deblur_tensor(gen, x, tile=short, blend=16)


#: Generator and critic parameters of every architecture's small config, as the README gives them.
SMALL_PARAMS = {"deblurgan": (272_515, 175_089), "deblurgan-v2": (321_987, 612_450),
                "deepdeblur": (45_441, 670_873), "dbgan": (38_003, 295_361), "nafnet": (438_387, 0)}


@pytest.mark.parametrize("name", sorted(SMALL_PARAMS))
def test_small_config_parameter_counts_are_the_readmes(name):
    from pathlib import Path

    from blursynth.train.archs import get_arch

    arch = get_arch(name)
    gen, critic = arch.build(arch.config("small"), 0)
    counts = (n_params(gen), n_params(critic) if critic is not None else 0)
    assert counts == SMALL_PARAMS[name]
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}` |"))
    g, d = counts
    # The README's small column: "generator / critic", the generator alone without a critic.
    assert (f"| {g:,} / {d:,} |" if d else f"| {g:,} |") in row, row


@pytest.mark.parametrize("build,configs", [
    (fpn.build_fpn, fpn.CONFIGS), (deepdeblur.build_deepdeblur, deepdeblur.CONFIGS),
    (dbgan.build_dbgan, dbgan.CONFIGS)])
def test_small_configs_run_a_step_at_64px(build, configs):
    gen, critic = build(configs["small"], seed=0)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    out = gen(x)
    fine = out[-1] if isinstance(out, list) else out
    critic_out = critic(fine)
    if isinstance(critic_out, tuple):
        score = sum(s.mean() for s in critic_out)
    else:
        score = critic_out.mean()
    (fine.mean() + score).backward()
    assert all(p.grad is not None for p in gen.parameters())


# ---------------------------------------------------------------------------------------------
# Through the trainer: --arch deblurgan-v2 | deepdeblur | dbgan

NEW_ARCHS = ("deblurgan-v2", "deepdeblur", "dbgan")


def _fixed_batch():
    """Two 32 px crops of a photo (one mirrored) and their 7x7 box blur, in [-1, 1]."""
    from skimage import data

    img = torch.tensor(data.astronaut()[100:132, 180:212]).permute(2, 0, 1).float()[None]
    sharp = torch.cat([img, img.flip(-1)]) / 127.5 - 1
    padded = torch.nn.functional.pad(sharp, (3, 3, 3, 3), mode="reflect")
    return torch.nn.functional.avg_pool2d(padded, 7, 1), sharp


@pytest.mark.parametrize("critic_steps", [0, 1])
@pytest.mark.parametrize("name", NEW_ARCHS)
def test_a_few_steps_of_the_small_config_reduce_the_loss_on_a_fixed_batch(name, critic_steps):
    from blursynth.train.archs import get_arch

    arch = get_arch(name)
    gen, critic = arch.build(arch.config("small"), 0)
    content, _ = arch.content("none", None)
    update = arch.update(gen, critic, content, lr=1e-3, critic_steps=critic_steps,
                         content_weight=1.0, seed=0, rank=0, amp=False)
    blurred, sharp = _fixed_batch()
    losses = [update.step(blurred, sharp) for _ in range(5)]
    assert set(losses[0]) == set(arch.loss_columns)
    # Content alone: the whole generator loss falls; with the critic, the content part does
    # (the adversarial part moves with the critic).
    key = "loss_g" if critic_steps == 0 else "loss_content"
    assert losses[-1][key] < losses[0][key], [l[key] for l in losses]
    assert all(np.isnan(l["loss_d"]) == (critic_steps == 0) for l in losses)


def _rows(out):
    """metrics.csv without its seconds column (wall-clock time)."""
    return [line.rsplit(",", 1)[0] for line in (out / "metrics.csv").read_text().splitlines()]


def _train_args(name, ds, out, *extra):
    perceptual = [] if name == "deepdeblur" else ["--perceptual", "none"]
    return ["train", "--arch", name, "--data", f"{ds}:1", "--out", out, "--steps", "4",
            "--checkpoint-every", "2", "--val-every", "2", "--log-every", "1", "--crop", "32",
            "--batch-size", "2", "--critic-steps", "1", "--val-count", "2", "--val-crop", "48",
            "--workers", "0", "--quiet", *perceptual, *extra]


@pytest.mark.parametrize("name", NEW_ARCHS)
def test_train_arch_resumes_to_the_bytes_of_an_uninterrupted_run(name, tiny_pairs_dataset,
                                                                 tmp_path, run_cli, monkeypatch):
    from blursynth.train.archs import get_arch
    from blursynth.train.checkpoints import load_checkpoint

    ds = tiny_pairs_dataset()
    a = run_cli(*_train_args(name, ds, tmp_path / "a"))
    assert a.code == 0, a.err
    update = get_arch(name).update
    calls, real_step = {"n": 0}, update.step

    def dying_step(self, blurred, sharp):
        calls["n"] += 1
        if calls["n"] == 3:  # killed during step 3, after the step-2 checkpoint
            raise KeyboardInterrupt
        return real_step(self, blurred, sharp)

    monkeypatch.setattr(update, "step", dying_step)
    b = run_cli(*_train_args(name, ds, tmp_path / "b"))
    assert b.code == 130 and "--resume" in b.err
    assert load_checkpoint(tmp_path / "b")["step"] == 2
    monkeypatch.setattr(update, "step", real_step)
    b = run_cli(*_train_args(name, ds, tmp_path / "b", "--resume"))
    assert b.code == 0, b.err
    ca = load_checkpoint(tmp_path / "a")
    assert ca["arch"] == name and ca["step"] == 4
    assert (tmp_path / "a" / "checkpoint.pt").read_bytes() == \
        (tmp_path / "b" / "checkpoint.pt").read_bytes()
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b") and len(_rows(tmp_path / "a")) == 5
    if name == "deepdeblur":
        # --resume without --arch takes the run's (once: deblurgan's VGG download error first),
        # and its rate at step 4 is 5e-06 for 4 or 6 steps: no schedule warning.
        args = _train_args(name, ds, tmp_path / "a", "--resume")
        args[1:3] = []
        args[args.index("--steps") + 1] = "6"
        r = run_cli(*args)
        assert r.code == 0, r.err
        assert load_checkpoint(tmp_path / "a")["step"] == 6 and "warning" not in r.err, r.err


def test_train_backbone_weights_are_loaded_and_recorded(tiny_pairs_dataset, tmp_path, run_cli):
    from blursynth.train.archs import get_arch

    ds = tiny_pairs_dataset()
    # A file in torchvision's format that fits the small config's narrow backbone.
    ref = MobileNetV2(width=fpn.CONFIGS["small"].width)
    with torch.no_grad():
        for p in ref.parameters():
            p.uniform_(-0.1, 0.1)
    f = tmp_path / "backbone.pth"
    torch.save(ref.state_dict(), f)
    arch = get_arch("deblurgan-v2")
    gen, _ = arch.build(arch.config("small"), 0, backbone_weights=str(f))
    assert torch.equal(gen.backbone.state_dict()["features.5.conv.1.0.weight"],
                       ref.state_dict()["features.5.conv.1.0.weight"])
    r = run_cli(*_train_args("deblurgan-v2", ds, tmp_path / "run", "--backbone-weights", f))
    assert r.code == 0, r.err
    settings = json.loads((tmp_path / "run" / "run.json").read_text())["settings"]
    assert settings["backbone_weights"] == str(f) and settings["arch"] == "deblurgan-v2"
    r = run_cli(*_train_args("deblurgan-v2", ds, tmp_path / "scratch"))
    settings = json.loads((tmp_path / "scratch" / "run.json").read_text())["settings"]
    assert r.code == 0 and settings["backbone_weights"] is None  # from scratch


def test_train_refuses_backbone_weights_of_the_wrong_shape_in_one_line(tiny_pairs_dataset,
                                                                       tmp_path, run_cli):
    f = tmp_path / "imagenet.pth"
    torch.save(MobileNetV2().state_dict(), f)  # width 1: the paper config's, not small's
    r = run_cli(*_train_args("deblurgan-v2", tiny_pairs_dataset(), tmp_path / "run",
                             "--backbone-weights", f))
    assert r.code == 2
    line = error_line(r)
    assert "features.0.0.weight has shape (32, 3, 3, 3), expected (16, 3, 3, 3)" in line
    assert not (tmp_path / "run").exists()


def _earlier_deepdeblur_critic(width):
    """The state dict of DeepDeblur's critic as blursynth built it before following the
    authors' release: 5x5 convs with biases at (multiple, stride) below, a 4x4 conv and a
    linear layer."""
    layers, c_in = [], 3
    for mult, stride in ((1, 2), (2, 1), (2, 2), (4, 1), (4, 4), (8, 1), (8, 4), (16, 1), (16, 1)):
        layers += [nn.Conv2d(c_in, width * mult, 5, stride=stride, padding=2), nn.LeakyReLU(0.2)]
        c_in = width * mult
    old = nn.Module()
    old.features = nn.Sequential(*layers)
    old.last = nn.Sequential(nn.Conv2d(c_in, c_in, 4), nn.LeakyReLU(0.2))
    old.fc = nn.Linear(c_in, 1)
    return old.state_dict()


def test_deepdeblur_checkpoint_of_the_earlier_critic_deblurs_but_is_not_resumed(
        tiny_pairs_dataset, tmp_path, run_cli):
    from blursynth.train.checkpoints import load_generator

    ds = tiny_pairs_dataset()
    r = run_cli(*_train_args("deepdeblur", ds, tmp_path / "run"))
    assert r.code == 0, r.err
    path = tmp_path / "run" / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["critic"] = _earlier_deepdeblur_critic(deepdeblur.CONFIGS["small"].disc_width)
    torch.save(ckpt, path)
    before = path.read_bytes()
    r = run_cli(*_train_args("deepdeblur", ds, tmp_path / "run", "--resume", "--steps", "6"))
    assert r.code == 2
    line = error_line(r)
    assert "earlier discriminator" in line and "another --out" in line and str(path) in line
    assert path.read_bytes() == before
    # The generator is unchanged: evaluate and deblur still load it.
    gen, _ = load_generator(tmp_path / "run")
    assert gen(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_deepdeblur_refuses_a_perceptual_loss_in_one_line(tiny_pairs_dataset, tmp_path, run_cli):
    r = run_cli(*_train_args("deepdeblur", tiny_pairs_dataset(), tmp_path / "run",
                             "--perceptual", "vgg"))
    assert r.code == 2 and "multi-scale MSE" in error_line(r)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name,size,tile", [("dbgan", (40, 100), 64),
                                            ("deepdeblur", (120, 248), 232)])
def test_tiled_inference_equals_whole_image_inference(name, size, tile):
    from blursynth.train.archs import get_arch
    from blursynth.train.tiling import deblur_tensor

    arch = get_arch(name)
    gen = arch.build_generator(arch.config("small")).eval()
    x = torch.rand((1, 3, *size), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = deblur_tensor(gen, x, tile=1024)
        tiled = deblur_tensor(gen, x, tile=tile, blend=4)
    # Several tiles (the image is wider than a tile), each with a halo of the reach: the same
    # result to float rounding.
    assert size[1] > tile
    assert float((whole - tiled).abs().max()) < 1e-5


@pytest.mark.parametrize("name", ["deblurgan-v2", "dbgan"])
def test_init_identity_starts_from_the_input(name):
    from blursynth.train.archs import get_arch

    arch = get_arch(name)
    gen, _ = arch.build(arch.config("small"), 0)
    arch.zero_init(gen)
    x = torch.rand(1, 3, 32, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(gen.eval()(x), x)


def test_init_identity_is_refused_where_there_is_no_skip():
    from blursynth.errors import SettingError
    from blursynth.train.archs import get_arch

    arch = get_arch("dbgan")
    gen, _ = arch.build(arch.config("paper"), 0)
    with pytest.raises(SettingError, match="no image skip"):
        arch.zero_init(gen)
    assert get_arch("deepdeblur").zero_init is None  # the trainer refuses --init identity


@pytest.mark.parametrize("name", NEW_ARCHS)
def test_train_arch_in_bf16_runs_and_records_its_precision(name, tiny_pairs_dataset, tmp_path,
                                                           run_cli):
    """bf16 autocast on the CPU: every update runs its models under it and stays finite."""
    import csv
    import math

    from blursynth.train.checkpoints import load_checkpoint

    ds = tiny_pairs_dataset()
    r = run_cli(*_train_args(name, ds, tmp_path / "a", "--precision", "bf16"))
    assert r.code == 0, r.err
    ck = load_checkpoint(tmp_path / "a")
    assert ck["precision"] == "bf16" and ck["step"] == 4
    with open(tmp_path / "a" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(math.isfinite(float(row["loss_content"])) for row in rows)
