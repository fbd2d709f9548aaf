"""UID (Lu et al. 2019): networks, losses, the training run, deblurring."""

from __future__ import annotations

import pytest
import torch

from blursynth.uid.model import CONFIGS, UIDConfig, build_uid, count_parameters, deblur, \
    model_fingerprint, transfer_blur

#: Parameter counts of the built-in configs (README, "Disentangled blur (UID)").
PARAMS = {"paper": 27_670_616, "small": 893_096}


def test_paper_config_shapes_and_parameter_counts():
    nets = build_uid(CONFIGS["paper"], seed=0)
    assert count_parameters(nets) == PARAMS["paper"]
    assert count_parameters(build_uid(CONFIGS["small"], seed=0)) == PARAMS["small"]
    x = torch.zeros(1, 3, 64, 48)
    with torch.no_grad():
        c_b, c_s = nets.content(x, "blurred"), nets.content(x, "sharp")
        mu, logvar = nets.blur_code(x)
        assert c_b.shape == c_s.shape == (1, 256, 16, 12)
        assert mu.shape == logvar.shape == (1, nets.z_dim) == (1, 8)
        assert nets.make_blurred(c_s, mu).shape == x.shape
        assert nets.make_sharp(c_b).shape == x.shape
        assert nets.critic_blurred(x).shape == nets.critic_sharp(x).shape == (1, 1, 4, 3)
    # The last content layer is one module: both domains map through the same weights.
    assert nets.content_shared is not None
    assert not set(map(id, nets.content_blurred.parameters())) & set(map(id, nets.content_shared.parameters()))


def test_any_size_and_determinism():
    a, b = build_uid(CONFIGS["tiny"], seed=1), build_uid(CONFIGS["tiny"], seed=1)
    assert model_fingerprint(a) == model_fingerprint(b)
    assert model_fingerprint(a) != model_fingerprint(build_uid(CONFIGS["tiny"], seed=2))
    x = torch.rand(2, 3, 21, 30) * 2 - 1
    with torch.no_grad():
        assert deblur(a, x).shape == x.shape
        assert transfer_blur(a, x, torch.zeros(2, a.z_dim)).shape == x.shape
        assert torch.equal(deblur(a, x), deblur(b, x))


def test_bad_shapes_refused():
    nets = build_uid(CONFIGS["tiny"], seed=0)
    with pytest.raises(ValueError, match="multiples of 4"):
        nets.content(torch.zeros(1, 3, 18, 16), "sharp")
    with pytest.raises(ValueError, match="domain"):
        nets.content(torch.zeros(1, 3, 16, 16), "foggy")
    with pytest.raises(ValueError, match="z must be"):
        nets.make_blurred(torch.zeros(1, 32, 4, 4), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="at least 1"):
        UIDConfig("x", z_dim=0)
