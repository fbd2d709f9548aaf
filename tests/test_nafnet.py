"""NAFNet (nn/nafnet.py, train/arch_nafnet.py): sizes, loss, schedule, training, resume, tiling."""

import json
import math

import numpy as np
import pytest
import torch

from blursynth.errors import BadInputError
from blursynth.nn.nafnet import NAFNET_CONFIGS, NAFNet, NAFNetConfig, PSNRLoss, build_nafnet
from blursynth.train.arch_nafnet import (CONFIGS, NAFNetUpdate, content, cosine_lr,
                                         network_config)
from blursynth.train.archs import get_arch
from blursynth.train.models import count_parameters
from blursynth.train.tiling import deblur_tensor

from .conftest import error_line

FAST = ["--arch", "nafnet", "--crop", "32", "--batch-size", "2", "--val-count", "1",
        "--val-crop", "48", "--workers", "0", "--quiet"]


def test_parameter_counts():
    # The paper's GoPro model (width 64; 1, 1, 1, 28 encoder blocks, 1 middle, 1, 1, 1, 1
    # decoder): 67.89M parameters.
    assert count_parameters(NAFNet(NAFNET_CONFIGS["paper"])) == 67_888_835
    assert count_parameters(NAFNet(NAFNET_CONFIGS["small"])) == 438_387
    # Width scales every conv: width 32 (the paper's smaller GoPro model), about a quarter.
    assert count_parameters(NAFNet(NAFNetConfig("w32", width=32))) == 17_111_907
    # The registry's configs are the module's sizes (plus their loss).
    for name, cfg in CONFIGS.items():
        assert network_config(cfg) == NAFNET_CONFIGS[name]


def test_shapes_and_identity_start():
    net = build_nafnet(NAFNET_CONFIGS["small"], seed=0).eval()
    assert net.multiple == 8
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        assert net(x).shape == x.shape
    get_arch("nafnet").zero_init(net)
    with torch.no_grad():
        assert torch.equal(net(x), x)  # global residual + zeroed ending conv


def test_build_is_seeded_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a = build_nafnet(NAFNET_CONFIGS["small"], seed=1)
    b = build_nafnet(NAFNET_CONFIGS["small"], seed=1)
    c = build_nafnet(NAFNET_CONFIGS["small"], seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_psnr_loss_is_minus_psnr_of_01_images():
    a = torch.zeros(1, 3, 4, 4)
    b = torch.full((1, 3, 4, 4), 0.2)  # [-1, 1]: a difference of 0.1 in [0, 1]
    assert PSNRLoss()(a, b).item() == pytest.approx(-20.0, abs=1e-4)  # 10 log10(0.01)


def test_content_loss_is_the_configs():
    # The paper's PSNR loss at paper size and for configs recorded before the loss key; the
    # small config's L1 (DeblurGAN's pixel loss).
    a = torch.zeros(1, 3, 4, 4)
    b = torch.full((1, 3, 4, 4), 0.2)
    for cfg in (CONFIGS["paper"], {k: v for k, v in CONFIGS["small"].items() if k != "loss"}):
        loss, info = content("none", None, cfg)
        assert info == {"kind": "psnr"} and loss(a, b).item() == pytest.approx(-20.0, abs=1e-4)
    loss, info = content("none", None, CONFIGS["small"])
    assert info == {"kind": "pixel-l1"} and loss(a, b).item() == pytest.approx(0.2)
    with pytest.raises(BadInputError, match="nafnet config loss 'l2': expected one of psnr, l1"):
        content("none", None, dict(CONFIGS["small"], loss="l2"))


def test_cosine_schedule_ends_at_a_thousandth():
    assert cosine_lr(0, 100, 1e-3) == pytest.approx(1e-3)
    assert cosine_lr(50, 100, 1e-3) == pytest.approx((1e-3 + 1e-6) / 2)
    assert cosine_lr(100, 100, 1e-3) == pytest.approx(1e-6)


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch():
    cfg = NAFNetConfig("t", width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))
    g = build_nafnet(cfg, seed=0)
    update = NAFNetUpdate(g, None, PSNRLoss(), lr=1e-3, critic_steps=0, content_weight=1.0)
    gen = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(sharp, 3, 1, 1)
    first = update.step(blurred, sharp)["loss_content"]
    for _ in range(20):
        last = update.step(blurred, sharp)["loss_content"]
    assert last < first - 0.3  # dB


def test_no_critic_means_critic_steps_zero():
    g = build_nafnet(NAFNET_CONFIGS["small"], seed=0)
    with pytest.raises(ValueError, match="critic_steps must be 0"):
        NAFNetUpdate(g, None, PSNRLoss(), critic_steps=1)


def _perturbed(width=8):
    """A NAFNet whose blocks matter (beta, gamma start at zero)."""
    cfg = NAFNetConfig("t", width=width, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))
    g = build_nafnet(cfg, seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in g.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    return g


def test_tiled_equals_whole_with_global_pooled_means():
    g = _perturbed()
    x = torch.rand(1, 3, 70, 180, generator=torch.Generator().manual_seed(2))
    whole = deblur_tensor(g, x, tile=2048)
    tiled = deblur_tensor(g, x, tile=120, blend=8, norm_stats="global")  # several tiles
    assert (whole - tiled).abs().max() < 1e-4
    # Each tile pooling only itself differs: the whole image's pooled vector is what makes it exact.
    per_tile = deblur_tensor(g, x, tile=120, blend=8, norm_stats="tile")
    assert (whole - per_tile).abs().max() > 1e-4


def _weights(run):
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    return ck, torch.cat([v.flatten().float() for v in ck["generator"].values()])


def test_train_records_arch_resumes_exactly_and_refuses_another_arch(run_cli, tmp_path,
                                                                      tiny_pairs_dataset,
                                                                      monkeypatch):
    data = tiny_pairs_dataset()
    straight, split = tmp_path / "straight", tmp_path / "split"
    r = run_cli("train", "--data", data, "--out", straight, "--steps", 4, *FAST)
    assert r.code == 0, r
    # The same run stopped (as by Ctrl-C) during step 3, after the checkpoint of step 2.
    calls, real_step = {"n": 0}, NAFNetUpdate.step

    def dying_step(self, blurred, sharp):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_step(self, blurred, sharp)

    monkeypatch.setattr(NAFNetUpdate, "step", dying_step)
    r = run_cli("train", "--data", data, "--out", split, "--steps", 4, "--checkpoint-every", 2,
                *FAST)
    assert r.code == 130, r
    monkeypatch.setattr(NAFNetUpdate, "step", real_step)
    r = run_cli("train", "--data", data, "--out", split, "--steps", 4, "--resume", *FAST)
    assert r.code == 0, r
    ck, w_straight = _weights(straight)
    _, w_split = _weights(split)
    assert torch.equal(w_straight, w_split)
    assert ck["arch"] == "nafnet" and ck["critic"] is None and ck["model_config"]["width"] == 16
    meta = json.loads((straight / "run.json").read_text())
    # The small config's own learning rate; the paper's at paper size.
    assert meta["arch"] == "nafnet" and meta["settings"]["lr"] == 2e-3
    assert get_arch("nafnet").default("lr", "paper") == 1e-3
    assert meta["settings"]["critic_steps"] == 0
    # The small config's frequency term (MIMO-UNet's); none at paper size.
    assert meta["content_loss"] == {"kind": "pixel-l1", "fft_weight": 1.0}
    assert get_arch("nafnet").default("fft_weight", "paper", 0.0) == 0.0
    header = (straight / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["step", "lr", "loss_g", "loss_content"]
    # --resume without --arch continues the run's own; the cosine rate at step 4 changes.
    r = run_cli("train", "--data", data, "--out", split, "--steps", 6, "--resume", *FAST[2:])
    assert r.code == 0, r
    assert "so it goes on after step 4 at 0.000502, where the " in r.err and "schedule would be at 2e-06" in r.err, r.err
    # Another arch's checkpoint: one line, exit 2, the run untouched.
    before = (split / "checkpoint.pt").read_bytes()
    r = run_cli("train", "--data", data, "--out", split, "--steps", 8, "--resume",
                *[a if a != "nafnet" else "deblurgan" for a in FAST], "--perceptual", "none")
    assert r.code == 2
    assert "checkpoint is of --arch nafnet; this run asks for --arch deblurgan" in error_line(r)
    assert (split / "checkpoint.pt").read_bytes() == before


def test_evaluate_and_deblur_read_the_arch_from_the_run(run_cli, tmp_path, tiny_pairs_dataset):
    import imageio.v3 as iio

    # 44 x 60 pairs: validation crops are trimmed to NAFNet's multiple (8), not DeblurGAN's 4.
    data = tiny_pairs_dataset(size=(44, 60))
    run = tmp_path / "run"
    r = run_cli("train", "--data", data, "--out", run, "--steps", 1, "--width", 8, *FAST)
    assert r.code == 0, r
    assert "validation PSNR" in r.out
    r = run_cli("evaluate", "--model", run, "--data", data, "--limit", 2, "--quiet")
    assert r.code == 0, r
    photo = (np.random.default_rng(0).random((100, 150, 3)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "in.png", photo)
    r = run_cli("deblur", tmp_path / "in.png", "--model", run, "--out", tmp_path / "out",
                "--tile", 128, "--blend", 0, "--quiet")
    assert r.code == 0, r
    out = iio.imread(tmp_path / "out" / "in.png")
    assert out.shape == photo.shape  # padded to a multiple of 8 inside, cropped back


@pytest.mark.parametrize("args, match", [
    (["--perceptual", "vgg"], "--arch nafnet trains on its config's L1 loss"),
    (["--critic-steps", "1"], "--arch nafnet has no critic"),
    (["--dropout", "0.1"], "--dropout does not apply to --arch nafnet"),
    (["--crop", "36"], "--crop must be a multiple of 8"),
    (["--config", "huge"], "--config must be one of paper, small for --arch nafnet"),
])
def test_refusals(run_cli, tmp_path, tiny_pairs_dataset, args, match):
    out = tmp_path / "run"
    r = run_cli("train", "--data", tiny_pairs_dataset(), "--out", out, "--steps", 1, *FAST, *args)
    assert r.code == 2, r
    assert match in error_line(r)
    assert not out.exists()


def test_receptive_radius_bounds_the_reach_of_a_pixel():
    g = _perturbed().eval()
    # With the pooled means fixed (frozen to zero input), a change at one pixel stays within
    # the radius.
    for m in g.modules():
        if isinstance(m, torch.nn.AdaptiveAvgPool2d):
            m.register_forward_hook(lambda mod, i, o: torch.zeros_like(o))
    x = torch.zeros(1, 3, 128, 128)
    y = x.clone()
    y[..., 64, 64] = 1
    with torch.no_grad():
        d = (g(x) - g(y)).abs().sum(1)[0]
    ys, xs = torch.nonzero(d > 0, as_tuple=True)
    reach = max((ys - 64).abs().max().item(), (xs - 64).abs().max().item())
    assert 0 < reach <= g.receptive_radius()
    assert math.isfinite(reach)


@pytest.mark.slow
def test_two_process_ddp_run_without_a_critic(tiny_pairs_dataset, tmp_path, torchrun_lock):
    """torchrun, two CPU processes (gloo): DistributedDataParallel wraps the generator alone."""
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "blursynth", "train", "--data", str(tiny_pairs_dataset()), "--out", str(out),
           "--steps", "2", "--width", "8", *FAST]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["arch"] == "nafnet" and ck["critic"] is None and ck["opt_d"] is None
    assert len(ck["rng_ranks"]) == 2


def test_bf16_step_runs_and_updates():
    g = build_nafnet(NAFNetConfig("t", width=8, enc_blocks=(1,), middle_blocks=1,
                                  dec_blocks=(1,)), seed=0)
    before = torch.cat([p.detach().flatten().clone() for p in g.parameters()])
    update = NAFNetUpdate(g, None, PSNRLoss(), lr=1e-3, critic_steps=0, content_weight=1.0,
                          amp=True)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    losses = update.step(x, x.flip(-1))
    assert math.isfinite(losses["loss_content"])
    after = torch.cat([p.detach().flatten() for p in g.parameters()])
    assert not torch.equal(before, after)


def test_train_help_says_other_archs_refuse_perceptual(run_cli):
    # They refuse --perceptual in one line; the help once said they ignore it.
    r = run_cli("train", "--help")
    text = " ".join(r.out.split())
    assert r.code == 0 and "content loss refuse it" in text and "ignore it" not in text
