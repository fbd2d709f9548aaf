"""export-model: any architecture's generator as ONNX, equal to torch through onnxruntime."""

import numpy as np
import pytest
import torch

from blursynth.train.archs import ARCHS, get_arch
from blursynth.train.checkpoints import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_generator

from .conftest import error_line

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def _fake_run(folder, arch_name, config="small", **overrides):
    """A run folder whose checkpoint holds a freshly built generator of ``arch_name`` (what
    export-model reads of a run: its arch, config and generator weights)."""
    arch = get_arch(arch_name)
    cfg = arch.config(config, **overrides)
    gen, _ = arch.build(dict(cfg), 0)
    with torch.no_grad():  # move every weight off its initial value (NAFNet starts blocks at 0)
        g = torch.Generator().manual_seed(3)
        for p in gen.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    folder.mkdir()
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "arch": arch_name,
                "model_config": cfg, "generator": gen.state_dict(), "step": 0},
               folder / "checkpoint.pt")
    return folder


def _ort_run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["deblurred"], {"blurred": x})[0]


@pytest.mark.parametrize("arch_name", list(ARCHS))
def test_every_arch_exports_and_onnxruntime_matches_torch(run_cli, tmp_path, arch_name):
    run = _fake_run(tmp_path / "run", arch_name)
    out = tmp_path / "model.onnx"
    r = run_cli("export-model", run, "--onnx", out)
    assert r.code == 0, r
    assert "onnxruntime matches torch" in r.out
    model = onnx.load(str(out))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["blursynth.arch"] == arch_name and meta["blursynth.range"] == "[0, 1]"
    # An image of another size than the traced and the checked ones: the axes are dynamic.
    gen, _ = load_generator(run)
    m = int(meta["blursynth.multiple"])
    h, w = 7 * m, 3 * m
    x = np.random.default_rng(5).random((1, 3, h, w), dtype=np.float32)
    with torch.no_grad():
        want = ((gen(torch.from_numpy(x) * 2 - 1) + 1) / 2).clamp(0, 1).numpy()
    got = _ort_run(out, x)
    assert got.shape == (1, 3, h, w)
    assert np.abs(got - want).max() < 1e-4
    assert np.abs(want - x).max() > 1e-3  # the network did something


def test_a_trained_run_exports(run_cli, tmp_path, tiny_pairs_dataset):
    run = tmp_path / "run"
    assert run_cli("train", "--data", tiny_pairs_dataset(), "--out", run, "--steps", 1,
                   "--crop", 32, "--batch-size", 2, "--perceptual", "none", "--critic-steps", 1,
                   "--val-count", 0, "--workers", 0, "--quiet").code == 0
    r = run_cli("export-model", run, "--onnx", tmp_path / "m.onnx", "--no-check")
    assert r.code == 0, r
    assert (tmp_path / "m.onnx").stat().st_size > 1000 and "onnxruntime" not in r.out


@pytest.mark.parametrize("target, match", [
    ("model.pt", "expected a file name ending in .onnx"),
    ("missing/model.onnx", "does not exist; make it first"),
])
def test_bad_output_names(run_cli, tmp_path, target, match):
    run = _fake_run(tmp_path / "run", "deblurgan")
    r = run_cli("export-model", run, "--onnx", tmp_path / target)
    assert r.code == 2
    assert match in error_line(r)
    assert not (tmp_path / target).exists()


def test_not_a_run(run_cli, tmp_path):
    (tmp_path / "photos").mkdir()
    r = run_cli("export-model", tmp_path / "photos", "--onnx", tmp_path / "m.onnx")
    assert r.code == 2
    assert "no checkpoint" in error_line(r)
    assert not (tmp_path / "m.onnx").exists()


def test_unknown_arch_in_checkpoint(run_cli, tmp_path):
    run = _fake_run(tmp_path / "run", "deblurgan")
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    ck["arch"] = "future-net"
    torch.save(ck, run / "checkpoint.pt")
    r = run_cli("export-model", run, "--onnx", tmp_path / "m.onnx")
    assert r.code == 2
    assert "checkpoint of architecture 'future-net'" in error_line(r)
