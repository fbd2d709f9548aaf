"""nn/vgg.py: VGG19 features from torchvision's file, and where that file is found."""

import pytest
import torch

from blursynth.errors import BadInputError
from blursynth.nn.vgg import VGG19Features, load_vgg19_features, resolve_vgg19_weights


def test_vgg_loads_torchvision_named_file_and_reports_missing_keys(tmp_path):
    needed = VGG19Features("conv3_3")
    state = {k: torch.randn_like(v) for k, v in needed.state_dict().items()}
    # torchvision's file also holds deeper layers and the classifier: ignored.
    state["features.16.weight"] = torch.zeros(256, 256, 3, 3)
    state["classifier.0.weight"] = torch.zeros(2, 2)
    good = tmp_path / "vgg19.pth"
    torch.save(state, good)
    net = load_vgg19_features(resolve_vgg19_weights(good), "conv3_3")
    assert len(net.features) == 15
    assert torch.equal(net.features[14].weight, state["features.14.weight"])
    del state["features.12.weight"], state["features.14.bias"]
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(BadInputError, match="features.12.weight, features.14.bias"):
        load_vgg19_features(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(BadInputError, match="not a torch state dict"):
        load_vgg19_features(junk)


def test_vgg_missing_everywhere_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(BadInputError, match="--perceptual none"):
        resolve_vgg19_weights(None, download=False)
    with pytest.raises(BadInputError, match="no such file"):
        resolve_vgg19_weights(tmp_path / "nope.pth")
    cached = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert resolve_vgg19_weights(None, download=False) == cached
