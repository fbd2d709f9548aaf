"""Inception-ResNet-v2 (nn/inceptionresnetv2.py) and DeblurGAN-v2's ``--config paper-inception``:
the released model's size and Cadene's names, the maps the pyramid taps, the reach, loading
ImageNet weights by name and refusing a wrong file in one line."""

import pytest
import torch

from blursynth.errors import BadInputError
from blursynth.nn.inceptionresnetv2 import InceptionResNetV2, load_inception_weights

from .conftest import error_line


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def _cheap_file(path, state, *, skip=(), reshape=None):
    """A state-dict file with ``state``'s names and shapes, each tensor its key's index
    broadcast to the shape (an expanded one-element tensor: a few bytes on disk however large
    the network). ``skip``: keys left out; ``reshape``: ``{key: shape}`` stored instead."""
    out = {}
    for i, (k, v) in enumerate(state.items()):
        if k in skip:
            continue
        shape = (reshape or {}).get(k, v.shape)
        out[k] = torch.full((), float(i % 1000), dtype=v.dtype).expand(shape)
    torch.save(out, path)
    return path


def test_the_released_models_size_and_cadenes_names():
    net = InceptionResNetV2(classifier=True)
    # The ImageNet model released with TF-slim, as ported (Cadene, timm): 55.8M parameters.
    assert n_params(net) == 55_843_464
    assert n_params(InceptionResNetV2()) == 54_306_464 == 55_843_464 - (1536 * 1000 + 1000)
    state = net.state_dict()
    for key, shape in [("conv2d_1a.conv.weight", (32, 3, 3, 3)),
                       ("conv2d_4a.bn.running_var", (192,)),
                       ("mixed_5b.branch1.1.conv.weight", (64, 48, 5, 5)),
                       ("mixed_5b.branch3.1.conv.weight", (64, 192, 1, 1)),
                       ("repeat.9.conv2d.weight", (320, 128, 1, 1)),
                       ("mixed_6a.branch1.2.conv.weight", (384, 256, 3, 3)),
                       ("repeat_1.19.branch1.1.conv.weight", (160, 128, 1, 7)),
                       ("mixed_7a.branch2.2.conv.weight", (320, 288, 3, 3)),
                       ("repeat_2.8.branch1.2.conv.weight", (256, 224, 3, 1)),
                       ("block8.conv2d.bias", (2080,)),
                       ("conv2d_7b.bn.weight", (1536,)),
                       ("last_linear.weight", (1000, 1536))]:
        assert tuple(state[key].shape) == shape, key
    assert len(net.repeat) == 10 and len(net.repeat_1) == 20 and len(net.repeat_2) == 9
    assert net.block8.relu is None and net.block8.scale == 1.0
    assert (net.repeat[0].scale, net.repeat_1[0].scale, net.repeat_2[0].scale) == (0.17, 0.1, 0.2)
    assert all(m.eps == 0.001 for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_the_five_maps_are_at_the_pyramids_scales():
    net = InceptionResNetV2().eval()
    with torch.no_grad():
        maps = net.forward_stages(torch.zeros(1, 3, 64, 96))
    assert [tuple(m.shape[1:]) for m in maps] == [
        (64, 32, 48), (192, 16, 24), (320, 8, 12), (1088, 4, 6), (1536, 2, 3)]
    assert tuple(m.shape[1] for m in maps) == net.stage_channels


def test_receptive_radius_by_hand():
    # Per axis, (k // 2) x the stride a layer meets. Stem: 1a 1, 2a 2, 2b 2, pool 2, 4a 4,
    # pool 4 (15, stride 8); mixed_5b's 5x5 or two 3x3: 16; 10 A blocks of two 3x3 at 8: 160;
    # Reduction-A's 1x1-3x3-3x3/2 at 8: 16; 20 B blocks of 1x7 then 7x1 at 16 (3 x 16 down,
    # 3 x 16 across): 960; Reduction-B's 3x3-3x3/2 at 16: 32; 10 C blocks of 1x3 then 3x1 at
    # 32: 320.
    assert InceptionResNetV2().receptive_radius() == 15 + 16 + 160 + 16 + 960 + 32 + 320


def test_weights_load_by_name_without_num_batches_tracked(tmp_path):
    ref = InceptionResNetV2(classifier=True).state_dict()
    # Cadene's file was saved before torch 0.4: no num_batches_tracked.
    f = _cheap_file(tmp_path / "inceptionresnetv2-520b38e4.pth", ref,
                    skip=[k for k in ref if k.endswith("num_batches_tracked")])
    net = InceptionResNetV2()
    info = load_inception_weights(net, f)
    assert info == {"weights": str(f), "keys": len(net.state_dict())}
    keys = list(ref)
    for k, v in net.state_dict().items():
        if k.endswith("num_batches_tracked"):
            assert int(v) == 0
        else:
            assert torch.all(v == keys.index(k) % 1000), k


def test_wrong_files_are_refused_in_one_line_naming_the_key(tmp_path):
    net = InceptionResNetV2()  # each refusal comes before anything is loaded
    bad = _cheap_file(tmp_path / "bad.pth", net.state_dict(),
                      reshape={"mixed_6a.branch0.conv.weight": (384, 320, 1, 1)})
    with pytest.raises(BadInputError) as err:
        load_inception_weights(net, bad)
    msg = str(err.value)
    assert "\n" not in msg and err.value.exit_code == 2
    assert "mixed_6a.branch0.conv.weight has shape (384, 320, 1, 1), expected (384, 320, 3, 3)" \
        in msg and "Cadene's pretrainedmodels" in msg
    mobilenet = tmp_path / "mobilenet_v2.pth"
    from blursynth.nn.mobilenetv2 import MobileNetV2

    torch.save(MobileNetV2().state_dict(), mobilenet)
    with pytest.raises(BadInputError, match="missing keys conv2d_1a.conv.weight, "):
        load_inception_weights(net, mobilenet)
    with pytest.raises(BadInputError, match="no such file"):
        load_inception_weights(net, tmp_path / "nope.pth")


@pytest.fixture(scope="module")
def paper_inception(tmp_path_factory):
    """DeblurGAN-v2's paper-inception generator and critic, loaded from a cheap weights file."""
    from blursynth.train.archs import get_arch

    f = _cheap_file(tmp_path_factory.mktemp("w") / "irv2.pth",
                    InceptionResNetV2(classifier=True).state_dict())
    arch = get_arch("deblurgan-v2")
    gen, disc = arch.build(arch.config("paper-inception"), 0, backbone_weights=str(f))
    return arch, gen, disc


def test_paper_inception_config_sizes_and_range(paper_inception):
    arch, gen, disc = paper_inception
    assert arch.config("paper-inception")["backbone"] == "inceptionresnetv2"
    assert "backbone" not in arch.config("paper")  # recorded as before the option existed
    assert arch.crop_batch["paper-inception"] == (256, 1)
    assert n_params(gen.backbone) == 54_306_464
    # Pyramid 256 and heads 128 on the maps of 64, 192, 320, 1088 and 1536 channels.
    assert n_params(gen) == 59_324_835
    assert n_params(disc) == 13_919_106  # the paper config's critic
    assert float(gen.mean[0, 0]) == 0.5 and float(gen.std[0, 0]) == 0.5  # [-1, 1] as trained
    assert gen.receptive_radius() == 1519 + 32 + 16 + 16 + 8 + 8 + 4 + 64 + 13
    assert float(gen.backbone.state_dict()["conv2d_1a.conv.weight"][0, 0, 0, 0]) == 0
    assert float(gen.backbone.state_dict()["conv2d_7b.bn.bias"][0]) == \
        list(InceptionResNetV2().state_dict()).index("conv2d_7b.bn.bias") % 1000
    # The file's constants overflow a forward pass: run one on the backbone's own start.
    from blursynth.nn.mobilenetv2 import init_mobilenet

    init_mobilenet(gen.backbone, generator=torch.Generator().manual_seed(0))
    x = torch.rand(1, 3, 40, 72) * 2 - 1
    with torch.no_grad():
        y = gen.eval()(x)
    assert y.shape == x.shape and float(y.abs().max()) <= 1


def test_train_refuses_inception_weights_of_the_wrong_shape(tiny_pairs_dataset, tmp_path,
                                                            run_cli):
    f = tmp_path / "imagenet.pth"
    from blursynth.nn.mobilenetv2 import MobileNetV2

    torch.save(MobileNetV2().state_dict(), f)
    out = tmp_path / "run"
    r = run_cli("train", "--arch", "deblurgan-v2", "--config", "paper-inception", "--data",
                tiny_pairs_dataset(), "--out", out, "--steps", 1, "--crop", 32, "--batch-size",
                1, "--perceptual", "none", "--val-count", 0, "--workers", 0, "--quiet",
                "--backbone-weights", f)
    assert r.code == 2
    assert "--backbone-weights" in error_line(r) and "missing keys conv2d_1a.conv.weight" in \
        error_line(r)
    assert not out.exists()
