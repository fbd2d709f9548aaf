"""The exact 8-bit encoder (ops/encode8.py): float and integer read-outs against the plain-Python reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blursynth.ops.color import CameraResponse
from blursynth.ops.encode8 import LINEAR_SCALE, encode_planes, encode_uint8, float_thresholds, linear_lut, sum_readout

from . import naive

CRFS = ["gamma:2.2", "srgb", "none"]


@pytest.mark.parametrize("crf", CRFS)
def test_lut_is_the_rounded_closed_form(crf):
    lut, scale = linear_lut(crf)
    expect = CameraResponse.parse(crf).decode(np.arange(256) / 255.0) * scale
    assert lut[0] == 0 and lut[255] == scale
    assert np.abs(lut - expect).max() <= 0.5
    assert (np.diff(lut.astype(np.int64)) > 0).all()


def test_linear_scale_constant():
    assert LINEAR_SCALE * 255 < 2**32


@pytest.mark.parametrize("spec", ["gamma:2.2", "srgb", "none", "gamma:4"])
def test_float_encoder_equals_the_reference(spec):
    crf = CameraResponse.parse(spec)
    t = float_thresholds(crf)
    rng = np.random.default_rng(2)
    # Every level, one float32 step below it, values all over, and values outside [0, 1].
    x = np.concatenate([t, np.nextafter(t, np.float32(0)), rng.random(1500, dtype=np.float32),
                        rng.random(500, dtype=np.float32) ** 6, [-1.0, 0.0, 1.0, 2.5]]).astype(np.float32)
    expect = naive.encode8(x, crf.kind, crf.gamma)
    assert encode_planes(crf, x.reshape(1, 1, -1))[0, :, 0].tolist() == expect
    assert encode_uint8(crf, x).tolist() == expect


@pytest.mark.parametrize("spec", CRFS)
@pytest.mark.parametrize("n_items,dtype", [(1, np.uint32), (3, np.uint32), (16, np.uint32), (255, np.uint32),
                                           (300, np.uint64)])
def test_sum_encoder_equals_the_reference(spec, n_items, dtype):
    crf = CameraResponse.parse(spec)
    lut, scale = linear_lut(crf)
    readout = sum_readout(crf, n_items, dtype)
    t = readout.thresholds[1:256].astype(np.int64)
    rng = np.random.default_rng(n_items)
    # Every threshold, one below it, and sums all over (more than one read-out block).
    sums = np.concatenate([t, t - 1, rng.integers(0, n_items * scale + 1, 5000)]).clip(0).astype(dtype)
    got = readout.encode(sums)
    assert got.tolist() == naive.encode8_sums(sums.tolist(), n_items, crf.kind, crf.gamma, scale)


@pytest.mark.parametrize("spec", ["gamma:2.2", "srgb", "none", "gamma:4"])
def test_encoders_agree_and_round_to_nearest(spec):
    crf = CameraResponse.parse(spec)
    rng = np.random.default_rng(0)
    t = float_thresholds(crf)
    x = np.concatenate([rng.random(5000), rng.random(5000) ** 6, t, np.nextafter(t, 0),
                        [-0.5, 0.0, 1.0, 3.0]]).astype(np.float32)
    a = encode_uint8(crf, x)
    # Exactly round-half-up of the formula in float64, at and just below every level.
    ref = np.floor(crf.encode(x.astype(np.float64)) * 255 + 0.5)
    assert np.array_equal(a, ref)
    planes = x.reshape(2, 1, -1)
    fast = encode_planes(crf, planes)
    assert fast.shape == (1, x.size // 2, 2)
    assert np.array_equal(np.moveaxis(fast, -1, 0), a.reshape(2, 1, -1))
    assert np.array_equal(encode_uint8(crf, torch.from_numpy(x)).numpy(), a)


def test_encode_planes_accepts_strided_crop():
    crf = CameraResponse.parse("gamma:2.2")
    big = np.random.default_rng(1).random((3, 10, 12)).astype(np.float32)
    view = big[:, 2:8, 3:9]
    assert np.array_equal(encode_planes(crf, view),
                          np.moveaxis(encode_uint8(crf, view), 0, -1))
