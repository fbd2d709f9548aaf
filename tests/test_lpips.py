"""nn/lpips.py: torchvision-format backbones load, and LPIPS equals its formula by hand."""

import importlib.metadata as md

import pytest
import torch
import torch.nn.functional as F

from blursynth.errors import BadInputError
from blursynth.nn.lpips import LPIPS, find_lpips_heads, load_lpips

# torchvision's AlexNet `features` convolutions: index -> (out, in, k); plus its classifier,
# which a full torchvision file holds and LPIPS must ignore.
ALEX = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
VGG16 = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256),
         14: (256, 256), 17: (512, 256), 19: (512, 512), 21: (512, 512), 24: (512, 512),
         26: (512, 512), 28: (512, 512)}


def _alex_file(path, seed=0, drop=None, bad=None):
    g = torch.Generator().manual_seed(seed)
    state = {}
    for i, (o, c, k) in ALEX.items():
        state[f"features.{i}.weight"] = torch.randn(o, c, k, k, generator=g) / (c * k * k) ** 0.5
        state[f"features.{i}.bias"] = 0.1 * torch.randn(o, generator=g)
    state["classifier.1.weight"] = torch.zeros(4, 9216)  # ignored
    if drop:
        del state[drop]
    if bad:
        state[bad] = torch.zeros(1)
    torch.save(state, path)
    return state


def _heads_file(path, channels, seed=1):
    g = torch.Generator().manual_seed(seed)
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
             for i, c in enumerate(channels)}
    torch.save(heads, path)
    return heads


def _alex_by_hand(state, x):
    """torchvision's AlexNet trunk written out: the five ReLU outputs LPIPS compares."""
    def conv(h, i, stride=1, pad=0):
        return F.relu(F.conv2d(h, state[f"features.{i}.weight"], state[f"features.{i}.bias"],
                               stride=stride, padding=pad))
    r1 = conv(x, 0, 4, 2)
    r2 = conv(F.max_pool2d(r1, 3, 2), 3, 1, 2)
    r3 = conv(F.max_pool2d(r2, 3, 2), 6, 1, 1)
    r4 = conv(r3, 8, 1, 1)
    r5 = conv(r4, 10, 1, 1)
    return [r1, r2, r3, r4, r5]


def _lpips_by_hand(state, heads, x, y):
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    fx = _alex_by_hand(state, ((2 * x - 1) - shift) / scale)
    fy = _alex_by_hand(state, ((2 * y - 1) - shift) / scale)
    total = torch.zeros(x.shape[0])
    for i, (a, b) in enumerate(zip(fx, fy)):
        na = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        w = heads[f"lin{i}.model.1.weight"].view(1, -1, 1, 1)
        total += ((na - nb) ** 2 * w).sum(1).mean(dim=(1, 2))
    return total


def test_alexnet_lpips_loads_torchvision_names_and_matches_the_formula(tmp_path):
    state = _alex_file(tmp_path / "alexnet-owt-7be5be79.pth")
    heads = _heads_file(tmp_path / "alex.pth", (64, 192, 384, 256, 256))
    net = load_lpips("alex", tmp_path / "alexnet-owt-7be5be79.pth", tmp_path / "alex.pth")
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(2, 3, 67, 71, generator=g), torch.rand(2, 3, 67, 71, generator=g)
    got = net(x, y)
    want = _lpips_by_hand(state, heads, x, y)
    assert got.shape == (2,)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert float(got.min()) > 0
    assert net(x, x).abs().max() < 1e-6


def test_vgg16_lpips_loads_torchvision_names(tmp_path):
    g = torch.Generator().manual_seed(3)
    state = {}
    for i, (o, c) in VGG16.items():
        state[f"features.{i}.weight"] = torch.randn(o, c, 3, 3, generator=g) / (9 * c) ** 0.5
        state[f"features.{i}.bias"] = torch.zeros(o)
    torch.save(state, tmp_path / "vgg16.pth")
    _heads_file(tmp_path / "vgg.pth", (64, 128, 256, 512, 512))
    net = load_lpips("vgg", tmp_path / "vgg16.pth", tmp_path / "vgg.pth")
    # every torchvision key up to relu5_3 is used, and the first conv is the file's
    assert sorted(net.features.state_dict()) == sorted(k[len("features."):] for k in state)
    torch.testing.assert_close(net.features[28].weight, state["features.28.weight"])
    x = torch.rand(1, 3, 32, 32, generator=g)
    taps = net.taps(x)
    assert [t.shape[1:] for t in taps] == [(64, 32, 32), (128, 16, 16), (256, 8, 8),
                                           (512, 4, 4), (512, 2, 2)]


def test_wrong_backbone_files_are_refused_in_one_line(tmp_path):
    _heads_file(tmp_path / "alex.pth", (64, 192, 384, 256, 256))
    _alex_file(tmp_path / "a.pth", drop="features.6.weight")
    with pytest.raises(BadInputError) as e:
        load_lpips("alex", tmp_path / "a.pth", tmp_path / "alex.pth")
    assert "missing keys features.6.weight" in str(e.value) and "\n" not in str(e.value)
    _alex_file(tmp_path / "b.pth", bad="features.3.bias")
    with pytest.raises(BadInputError, match=r"features.3.bias has shape \(1,\), expected \(192,\)"):
        load_lpips("alex", tmp_path / "b.pth", tmp_path / "alex.pth")
    with pytest.raises(BadInputError, match="--lpips-backbone .*no such file.*alexnet-owt"):
        load_lpips("alex", tmp_path / "none.pth", tmp_path / "alex.pth")
    _alex_file(tmp_path / "c.pth")
    torch.save({"lin0.model.1.weight": torch.zeros(1, 64, 1, 1)}, tmp_path / "short.pth")
    with pytest.raises(BadInputError, match="missing keys lin1.model.1.weight"):
        load_lpips("alex", tmp_path / "c.pth", tmp_path / "short.pth")


def _lpips_installed():
    try:
        md.distribution("lpips")
        return True
    except md.PackageNotFoundError:
        return False


@pytest.mark.skipif(not _lpips_installed(),
                    reason="the lpips package's weights (`pip install --no-deps lpips==0.1.4`)")
@pytest.mark.parametrize("net, channels", [("alex", (64, 192, 384, 256, 256)),
                                           ("vgg", (64, 128, 256, 512, 512))])
def test_published_heads_load_from_the_installed_package(tmp_path, net, channels):
    path = find_lpips_heads(net)
    assert path.as_posix().endswith(f"lpips/weights/v0.1/{net}.pth")
    model = LPIPS(net)
    if net == "alex":
        _alex_file(tmp_path / "bb.pth")
    else:
        torch.save({f"features.{k}": v for k, v in model.features.state_dict().items()},
                   tmp_path / "bb.pth")
    model = load_lpips(net, tmp_path / "bb.pth")
    assert [h.weight.shape[1] for h in model.heads] == list(channels)
    # the published heads are non-negative (trained under a clamp), and not all zero
    assert all(float(h.weight.min()) >= 0 and float(h.weight.sum()) > 0 for h in model.heads)


def test_missing_heads_file_is_refused(tmp_path):
    with pytest.raises(BadInputError, match="--lpips-weights .*no such file"):
        find_lpips_heads("alex", tmp_path / "nope.pth")


def test_evaluate_scores_lpips_from_the_given_files(run_cli, tmp_path):
    import csv
    import functools

    import numpy as np

    from blursynth.dataset import PAIR_SCHEMA, pair_row, write_dataset
    from blursynth.dataset.reader import PairDataset
    from blursynth.sources.photos import load_rgb8

    from .conftest import error_line

    def rows(start, stop, *, fp):
        rng = np.random.default_rng(5)
        for i in range(start, stop):  # 40 px: AlexNet's taps need at least 31
            sharp = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            blurred = ((sharp.astype(np.uint16) + np.roll(sharp, 2, axis=1)) // 2).astype(np.uint8)
            yield pair_row(index=i, blurred=blurred, sharp=sharp, psf=None, source="real", seed=0,
                           params={"layout": "flat"}, fingerprint=fp)

    data = tmp_path / "data"
    write_dataset(data, kind="pairs", schema=PAIR_SCHEMA, n_items=2, shard_size=8,
                  make_rows=functools.partial(rows, fp="fp-l"), fingerprint="fp-l",
                  command={"test": "lpips"}, progress=False)
    run = tmp_path / "run"
    assert run_cli("train", "--data", data, "--out", run, "--steps", "1", "--perceptual", "none",
                   "--crop", "16", "--batch-size", "1", "--workers", "0", "--quiet",
                   "--val-count", "1", "--val-crop", "16", "--val-every", "1000",
                   "--checkpoint-every", "1000").code == 0
    _alex_file(tmp_path / "alexnet.pth")
    _heads_file(tmp_path / "alex.pth", (64, 192, 384, 256, 256))
    r = run_cli("evaluate", "--model", run, "--data", data, "--lpips-backbone",
                tmp_path / "alexnet.pth", "--lpips-weights", tmp_path / "alex.pth",
                "--csv", tmp_path / "s.csv", "--save-outputs", tmp_path / "outs", "--quiet")
    assert r.code == 0, r
    net = load_lpips("alex", tmp_path / "alexnet.pth", tmp_path / "alex.pth")
    ds = PairDataset(data)

    def t(a):
        return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255

    lines = list(csv.DictReader(open(tmp_path / "s.csv")))
    for i, line in enumerate(lines):
        out, _ = load_rgb8(line["output"])
        assert float(line["deblurred_lpips"]) == pytest.approx(
            float(net(t(out), t(ds[i]["sharp"]))[0]), rel=1e-5)
        assert float(line["blurred_lpips"]) == pytest.approx(
            float(net(t(ds[i]["blurred"]), t(ds[i]["sharp"]))[0]), rel=1e-5)
    r = run_cli("evaluate", "--model", run, "--data", data,
                "--lpips-weights", tmp_path / "alex.pth")
    assert r.code == 2 and "--lpips-backbone" in error_line(r)
