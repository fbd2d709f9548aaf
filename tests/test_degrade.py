"""Degradations: ranges, drawing, saturation, sensor noise statistics, JPEG."""

import numpy as np
import pytest
import torch

from blursynth.ops.degrade import (
    Degradations, Range, add_sensor_noise, jpeg_roundtrip, noise_field, saturate,
)
from blursynth.errors import BadInputError


def test_range_parse_forms():
    assert Range.parse("2", name="x", bounds=(0, 5)) == Range(2.0, 2.0)
    assert Range.parse("1e-3-5e-3", name="x", bounds=(0, 1)) == Range(1e-3, 5e-3)
    assert Range.parse(" 0.5-1 ", name="x", bounds=(0, 1)).spec == "0.5-1"


@pytest.mark.parametrize("text,match", [
    ("abc", "number or a range"), ("3-1", "LO > HI"), ("0-200", "out of bounds"),
    ("1-2-3", "number or a range"), ("nan", "number or a range"),
])
def test_range_parse_rejects(text, match):
    with pytest.raises(BadInputError, match=match):
        Range.parse(text, name="x", bounds=(0, 100))


def test_reversed_range_hint_is_itself_accepted():
    # "5-1" in [0, 0.1] once suggested 1-5, which is refused in turn.
    with pytest.raises(BadInputError, match=r"write it as 1-5\.$"):
        Range.parse("5-1", name="x", bounds=(0, 10))
    with pytest.raises(BadInputError, match=r"write it as LO-HI with values in \[0, 0.1\]\.$"):
        Range.parse("5-1", name="x", bounds=(0, 0.1))


@pytest.mark.parametrize("kw,match", [
    ({"noise": "0.5"}, "shot noise"), ({"noise": "0.01,0.9"}, "read noise"),
    ({"noise": "0.01,0.01,0.01"}, "SHOT,READ"), ({"jpeg": "0-90"}, "jpeg quality"),
    ({"jpeg": "50-101"}, "jpeg quality"), ({"saturation": "0.5-2"}, "saturation"),
])
def test_degradations_out_of_bounds(kw, match):
    with pytest.raises(BadInputError, match=match):
        Degradations.parse(**kw)


def test_off_by_default_and_draw_streams_independent():
    assert not Degradations.parse().any
    assert Degradations.parse(noise="off", jpeg="none").draw(np.random.default_rng(0)) == {}
    full = Degradations.parse(saturation="1-4", noise="0.001-0.01,0.01", jpeg="60-95")
    only_jpeg = Degradations.parse(jpeg="60-95")
    a = full.draw(np.random.default_rng(7))
    b = only_jpeg.draw(np.random.default_rng(7))
    # Turning the others on does not change the quality this sample draws.
    assert a["jpeg_quality"] == b["jpeg_quality"]
    assert 1 <= a["saturation"] <= 4 and 0.001 <= a["shot_noise"] <= 0.01
    assert a["read_noise"] == 0.01 and isinstance(a["jpeg_quality"], int)


def test_draw_is_deterministic_and_in_range():
    d = Degradations.parse(jpeg="70-80")
    qs = [d.draw(np.random.default_rng([3, i]))["jpeg_quality"] for i in range(200)]
    assert min(qs) >= 70 and max(qs) <= 80 and len(set(qs)) > 5
    assert qs == [d.draw(np.random.default_rng([3, i]))["jpeg_quality"] for i in range(200)]


def test_saturate_scales_only():
    x = torch.tensor([0.1, 0.6])
    torch.testing.assert_close(saturate(x, 2.0), torch.tensor([0.2, 1.2]))
    with pytest.raises(BadInputError):
        saturate(x, float("nan"))


def test_noise_mean_and_variance_follow_poisson_gaussian():
    rng = np.random.default_rng(0)
    for level in (0.05, 0.5, 0.9):
        x = np.full((200, 200), level, np.float32)
        y = add_sensor_noise(x, shot=0.004, read=0.01, rng=rng)
        assert y.dtype == np.float32
        assert y.mean() == pytest.approx(level, abs=2e-3)
        assert y.var() == pytest.approx(0.004 * level + 0.01**2, rel=0.05)


def test_noise_same_on_numpy_and_torch_from_same_field():
    x = np.random.default_rng(1).random((3, 8, 9)).astype(np.float32)
    n = noise_field(x.shape, np.random.default_rng(2))
    a = add_sensor_noise(x, shot=0.01, read=0.02, noise=n)
    b = add_sensor_noise(torch.from_numpy(x), shot=0.01, read=0.02, noise=n)
    np.testing.assert_allclose(b.numpy(), a, rtol=1e-6, atol=1e-7)


def test_zero_noise_is_identity_and_bounds_checked():
    x = np.random.default_rng(1).random((4, 4)).astype(np.float32)
    assert np.array_equal(add_sensor_noise(x, shot=0.0, read=0.0, rng=np.random.default_rng(0)), x)
    with pytest.raises(BadInputError, match="shot"):
        add_sensor_noise(x, shot=1.0, read=0.0, rng=np.random.default_rng(0))


def test_jpeg_roundtrip_quality_matters():
    rng = np.random.default_rng(0)
    smooth = np.clip(np.cumsum(rng.normal(0, 3, (64, 64, 3)), axis=1) + 128, 0, 255).astype(np.uint8)
    hi = jpeg_roundtrip(smooth, 98)
    lo = jpeg_roundtrip(smooth, 10)
    assert hi.shape == smooth.shape and hi.dtype == np.uint8
    err = lambda a: np.abs(a.astype(int) - smooth).mean()  # noqa: E731
    assert err(hi) < err(lo)
    with pytest.raises(BadInputError, match="quality"):
        jpeg_roundtrip(smooth, 0)
