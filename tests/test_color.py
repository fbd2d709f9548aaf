"""Camera response curves: round trips, tables against formulas, parsing."""

import numpy as np
import pytest
import torch

from blursynth.ops.color import CameraResponse
from blursynth.ops.encode8 import encode_uint8
from blursynth.errors import BadInputError

CURVES = ["gamma:2.2", "gamma:1.8", "srgb", "none"]


@pytest.mark.parametrize("spec", CURVES)
def test_decode_encode_round_trip_float(spec):
    crf = CameraResponse.parse(spec)
    x = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(crf.encode(crf.decode(x)), x, atol=1e-12)


@pytest.mark.parametrize("spec", CURVES)
def test_uint8_round_trip_is_exact(spec):
    crf = CameraResponse.parse(spec)
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(encode_uint8(crf, crf.decode_uint8(codes)), codes)
    t = torch.arange(256).to(torch.uint8)
    assert torch.equal(encode_uint8(crf, crf.decode_uint8(t)), t)


def test_gamma_table_matches_formula():
    table = CameraResponse.parse("gamma:2.2").decode_table()
    assert table.dtype == np.float32 and table.shape == (256,)
    np.testing.assert_allclose(table, (np.arange(256) / 255.0) ** 2.2, rtol=1e-6, atol=1e-9)


def test_srgb_matches_reference_points():
    crf = CameraResponse.parse("srgb")
    # Known values of the IEC 61966-2-1 curve.
    np.testing.assert_allclose(crf.decode(np.array([0.0, 0.04045, 0.5, 1.0])),
                               [0.0, 0.04045 / 12.92, 0.21404114, 1.0], rtol=1e-6)
    assert crf.decode(np.array([0.03]))[0] == pytest.approx(0.03 / 12.92)


def test_decode_is_monotone_and_linear_light_is_darker():
    for spec in ("gamma:2.2", "srgb"):
        table = CameraResponse.parse(spec).decode_table()
        assert np.all(np.diff(table) > 0)
        assert table[128] < 128 / 255


def test_torch_follows_dtype_and_matches_numpy():
    crf = CameraResponse.parse("srgb")
    x = np.linspace(0, 1, 50)
    t = torch.tensor(x, dtype=torch.float64)
    out = crf.decode(t)
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), crf.decode(x), rtol=1e-12)
    assert crf.decode_uint8(torch.zeros(2, 3, dtype=torch.uint8)).dtype == torch.float32


def test_encode_clips_out_of_range():
    crf = CameraResponse.parse("gamma:2.2")
    assert list(encode_uint8(crf, np.array([-0.5, 1.7]))) == [0, 255]


@pytest.mark.parametrize("text,expected", [
    ("gamma:2.2", "gamma:2.2"), ("gamma", "gamma:2.2"), ("GAMMA:2.4", "gamma:2.4"),
    ("srgb", "srgb"), ("none", "none"),
])
def test_parse_canonical(text, expected):
    assert CameraResponse.parse(text).spec == expected


@pytest.mark.parametrize("text", ["log", "gamma:abc", "gamma:0.5", "gamma:9", "srgb:2", ""])
def test_parse_rejects(text):
    with pytest.raises(BadInputError, match="camera response|gamma"):
        CameraResponse.parse(text)


def test_decode_uint8_rejects_float():
    with pytest.raises(ValueError, match="uint8"):
        CameraResponse().decode_uint8(np.zeros(3, np.float32))
