"""The architecture registry: names, the DeblurGAN entry, refusals of settings an arch lacks."""

import pytest
import torch

from blursynth.errors import SettingError
from blursynth.train.archs import ARCHS, Arch, get_arch
from blursynth.train.trainer import Trainer, UpdateBase

from .conftest import error_line

FAST = ["--crop", "32", "--batch-size", "2", "--perceptual", "none", "--val-count", "0",
        "--workers", "0", "--quiet"]


def test_registry_holds_deblurgan_first_and_every_arch_module():
    names = list(ARCHS)
    assert names[0] == "deblurgan"
    arch = get_arch("deblurgan")
    assert isinstance(arch, Arch) and arch.update is Trainer and issubclass(Trainer, UpdateBase)
    assert arch.loss_columns[-1] == "loss_content" and arch.has_critic
    assert set(arch.configs) == {"paper", "small"}
    for name in names:
        a = get_arch(name)
        assert a.name == name
        for cname, cfg in a.configs.items():
            assert cfg["name"] == cname


def test_unknown_arch_is_one_line_listing_names():
    with pytest.raises(SettingError) as info:
        get_arch("resnet-9000")
    assert "deblurgan" in str(info.value) and "'resnet-9000'" in str(info.value)
    assert info.value.field == "arch"


def test_deblurgan_build_matches_build_models():
    from blursynth.train.models import CONFIGS, build_models

    g1, d1 = get_arch("deblurgan").build(CONFIGS["small"].to_dict(), 3)
    g2, d2 = build_models(CONFIGS["small"], seed=3)
    for a, b in zip(list(g1.parameters()) + list(d1.parameters()),
                    list(g2.parameters()) + list(d2.parameters())):
        assert torch.equal(a, b)


def test_train_unknown_arch_exits_2_and_writes_nothing(run_cli, tmp_path, tiny_pairs_dataset):
    out = tmp_path / "run"
    r = run_cli("train", "--arch", "nope", "--data", tiny_pairs_dataset(), "--out", out,
                "--steps", 1, *FAST)
    assert r.code == 2
    assert "--arch must be one of deblurgan" in error_line(r)
    assert not out.exists()


def test_width_is_refused_for_deblurgan(run_cli, tmp_path, tiny_pairs_dataset):
    out = tmp_path / "run"
    r = run_cli("train", "--width", 8, "--data", tiny_pairs_dataset(), "--out", out,
                "--steps", 1, *FAST)
    assert r.code == 2
    assert "--width does not apply to --arch deblurgan" in error_line(r)
    assert not out.exists()


def _shallow_fpn_backbone(gen):
    """DeblurGAN-v2's small generator with one MobileNet-V2 block per stage instead of the
    paper's 1-4: the same five maps (channels, scales), the pyramid and its five InstanceNorms
    unchanged, and a reach of 242 px instead of 406, so the tiled image is a third the size."""
    from blursynth.nn.mobilenetv2 import BLOCKS, MobileNetV2, init_mobilenet

    with torch.random.fork_rng(devices=[]):
        shallow = MobileNetV2(gen.config.width, classifier=False,
                              blocks=tuple((t, c, 1, s) for t, c, _, s in BLOCKS))
    assert shallow.stage_channels == gen.backbone.stage_channels
    init_mobilenet(shallow, generator=torch.Generator().manual_seed(7))
    gen.backbone = shallow
    return gen


def _perturbed_generator(arch, seed=0):
    """The arch's small generator with every weight moved off its start (blocks that start at
    zero, like NAFNet's, then matter)."""
    gen, _ = arch.build(dict(arch.configs["small"]), seed)
    if arch.name == "deblurgan-v2":
        gen = _shallow_fpn_backbone(gen)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    gen.tiling = getattr(gen, "tiling", arch.tiling)
    return gen.eval()


@pytest.mark.parametrize("name", list(ARCHS))
def test_tiled_inference_equals_whole_image_for_every_arch(name):
    from blursynth.train.tiling import _round_up, deblur_tensor, multiple_of

    arch = get_arch(name)
    gen = _perturbed_generator(arch)
    m = multiple_of(gen)
    assert m == arch.multiple_of(arch.configs["small"])
    blend = 8
    halo = _round_up(gen.receptive_radius() + blend, m)
    core = max(halo, 2 * m)  # few tiles: the cost is their number times the stat layers'
    tile = 2 * halo + core
    # Two cores down, four across (2 x 4 tiles; wider than one tile), sides not multiples of
    # m (padded and cropped back).
    x = torch.rand(1, 3, 2 * core - 3, 4 * core - 5, generator=torch.Generator().manual_seed(4))
    assert x.shape[-1] > tile
    whole = deblur_tensor(gen, x, tile=1 << 14)
    tiled = deblur_tensor(gen, x, tile=tile, blend=blend, norm_stats="global")
    assert tiled.shape == x.shape
    assert (whole - tiled).abs().max() < 1e-4, name


def test_deblurgan_parameter_counts_as_the_readme_gives():
    from blursynth.train.models import count_parameters

    arch = get_arch("deblurgan")
    g, d = arch.build(dict(arch.configs["paper"]), 0)
    assert (count_parameters(g), count_parameters(d)) == (11_378_179, 2_764_737)
    g, _ = arch.build(dict(arch.configs["small"]), 0)
    assert count_parameters(g) == 272_515
