"""The frequency term of the content loss (train --fft-weight): its value, what a run records,
and the refusals."""

import json

import pytest
import torch

from blursynth.train.losses import ContentLoss, FrequencyLoss, spectrum_l1, with_frequency_term

from .conftest import error_line

FAST = ["--crop", "32", "--batch-size", "2", "--val-count", "0", "--workers", "0", "--quiet"]


def test_the_term_of_a_pure_cosine_is_its_one_coefficient():
    # A cosine along x: one coefficient of the half spectrum carries it (n / 2 with the
    # orthonormal FFT, real); the term is that over the count of real and imaginary parts.
    for n in (8, 32):
        x = torch.arange(n, dtype=torch.float64)
        img = torch.cos(2 * torch.pi * 2 * x / n).expand(1, 1, n, n).float()
        spec = torch.fft.rfft2(img, norm="ortho")
        assert torch.count_nonzero(spec.abs() > 1e-4) == 1
        coeffs = 2 * (n // 2 + 1) * n  # real and imaginary parts of the half spectrum
        assert spectrum_l1(img, torch.zeros_like(img)).item() == pytest.approx(
            (n / 2) / coeffs, rel=1e-4)


def test_a_multiscale_output_takes_the_mean_over_its_scales():
    torch.manual_seed(0)
    fakes = [torch.randn(2, 3, s, s) for s in (8, 16, 32)]
    sharps = [torch.randn(2, 3, s, s) for s in (8, 16, 32)]

    class Zero(torch.nn.Module):
        def forward(self, fake, sharp):
            return torch.zeros(())

    loss = FrequencyLoss(Zero(), 2.0)
    want = 2.0 * sum(spectrum_l1(f, s) for f, s in zip(fakes, sharps)) / 3
    assert loss(fakes, sharps).item() == pytest.approx(want.item(), rel=1e-6)


def test_weight_zero_leaves_the_loss_and_its_record_alone():
    base = ContentLoss(None)
    assert with_frequency_term(base, {"kind": "pixel-l1"}, 0.0) == (base, {"kind": "pixel-l1"})
    loss, info = with_frequency_term(base, {"kind": "pixel-l1"}, 0.3)
    assert isinstance(loss, FrequencyLoss) and info == {"kind": "pixel-l1", "fft_weight": 0.3}


def test_a_run_records_the_weight_and_a_resume_must_give_it_again(run_cli, tmp_path, tiny_pairs_dataset):
    data = tiny_pairs_dataset()
    run = tmp_path / "run"
    r = run_cli("train", "--data", data, "--out", run, "--steps", 2, "--perceptual", "none",
                "--critic-steps", 0, "--fft-weight", 0.25, *FAST)
    assert r.code == 0, r
    meta = json.loads((run / "run.json").read_text())
    assert meta["settings"]["fft_weight"] == 0.25
    assert meta["content_loss"] == {"kind": "pixel-l1", "fft_weight": 0.25}
    before = (run / "checkpoint.pt").read_bytes()
    for now in ("0", "1"):
        r = run_cli("train", "--data", data, "--out", run, "--steps", 4, "--resume", "--perceptual",
                    "none", "--critic-steps", 0, "--fft-weight", now, *FAST)
        assert r.code == 2, r
        assert f"--fft-weight {now} vs 0.25 (recorded)" in error_line(r)
    assert (run / "checkpoint.pt").read_bytes() == before
    # Without the option a resumed run continues with its own weight.
    r = run_cli("train", "--data", data, "--out", run, "--steps", 4, "--resume", "--perceptual", "none",
                "--critic-steps", 0, *FAST)
    assert r.code == 0, r
    assert json.loads((run / "run.json").read_text())["settings"]["fft_weight"] == 0.25


def test_a_nafnet_small_run_without_the_term_resumes_without_it(run_cli, tmp_path, tiny_pairs_dataset):
    # Runs of the small config made before it took the term record none (as --fft-weight 0 does):
    # a resume without the option continues them as they were, not with the config's new default.
    data = tiny_pairs_dataset()
    run = tmp_path / "run"
    args = ["train", "--data", data, "--out", run, "--arch", "nafnet", *FAST]
    assert run_cli(*args, "--steps", 2, "--fft-weight", 0).code == 0
    assert "fft_weight" not in torch.load(run / "checkpoint.pt", weights_only=True)["recipe"]
    r = run_cli(*args, "--steps", 4, "--resume")
    assert r.code == 0, r
    meta = json.loads((run / "run.json").read_text())
    assert meta["settings"]["fft_weight"] == 0.0 and meta["content_loss"] == {"kind": "pixel-l1"}
    # A new run of the config takes its default.
    assert run_cli(*args[:4], tmp_path / "new", *args[5:], "--steps", 1).code == 0
    assert json.loads((tmp_path / "new" / "run.json").read_text())["settings"]["fft_weight"] == 1.0


def test_without_the_option_deblurgan_records_none(run_cli, tmp_path, tiny_pairs_dataset):
    # A DeblurGAN run's recipe has no fft_weight key: runs made before the option resume.
    run = tmp_path / "run"
    r = run_cli("train", "--data", tiny_pairs_dataset(), "--out", run, "--steps", 1, "--perceptual", "none",
                "--critic-steps", 0, *FAST)
    assert r.code == 0, r
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert "fft_weight" not in ck["recipe"]
    assert json.loads((run / "run.json").read_text())["content_loss"] == {"kind": "pixel-l1"}


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_a_bad_weight_is_one_line_and_writes_nothing(run_cli, tmp_path, tiny_pairs_dataset, value):
    out = tmp_path / "run"
    r = run_cli("train", "--data", tiny_pairs_dataset(), "--out", out, "--steps", 1, "--fft-weight", value,
                *FAST)
    assert r.code == 2, r
    assert "--fft-weight" in error_line(r) and not out.exists()
