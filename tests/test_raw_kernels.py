"""The RAW path's Numba kernels (ops._raw_kernels, through ops.raw) against the step-by-step
NumPy formulation (tests/naive.py), bit for bit; and their bytes whatever the number of threads."""

import numba
import numpy as np
import pytest

from blursynth._rng import sample_rng
from blursynth.ops import raw
from blursynth.ops.color import CameraResponse

from . import naive

TABLE = CameraResponse.parse("srgb").decode_table()
KNEE = raw.HIGHLIGHT_KNEE


# -- inputs -----------------------------------------------------------------------------------
def _params(i, **kw):
    return raw.RawParams.from_dict(raw.draw_raw_params(sample_rng(11, i, 7), **kw))


def _photo(h=19, w=23, seed=0):
    """Random codes, the top rows pushed near white: many pixels above the highlight knee."""
    rng = np.random.default_rng(seed)
    photo = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    photo[:h // 2] = np.clip(photo[:h // 2].astype(int) + 190, 0, 255)
    photo[2:6, 3:9] = 255  # clipped white: above white in camera space too
    return photo


def _same(a, b):
    """Bit for bit, up to the sign of a zero (no later step can tell -0.0 from 0.0)."""
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    zero = np.float32(0)
    assert np.array_equal((a + zero).view(np.uint32), (b + zero).view(np.uint32))


CASES = [(i, hl) for i in range(4) for hl in raw.HIGHLIGHT_MODES]


@pytest.mark.parametrize("i,highlights", CASES)
def test_unprocess_equals_the_numpy_steps(i, highlights):
    p = _params(i, highlights=highlights)
    photo = _photo(seed=i)
    ref = naive.raw_unprocess(TABLE[photo], p)
    if highlights == "preserve":
        grey = naive.raw_matrix(TABLE[photo], p.rgb_to_cam).mean(-1)
        assert (grey > KNEE).sum() >= 20  # the highlight branch is exercised
    _same(raw.unprocess(TABLE[photo], p), ref)
    planes = raw.unprocess_uint8(photo, TABLE, p)
    _same(np.ascontiguousarray(planes.transpose(1, 2, 0)), ref)
    # a strided input (a crop of a transposed array) reads the same
    big = np.ascontiguousarray(TABLE[photo].transpose(1, 0, 2)).transpose(1, 0, 2)[2:-2, 3:]
    _same(raw.unprocess(big, p), naive.raw_unprocess(np.ascontiguousarray(big), p))


@pytest.mark.parametrize("pattern", raw.BAYER_PATTERNS)
@pytest.mark.parametrize("bits", [None, 10, 14])
def test_sensor_readout_equals_the_numpy_steps(pattern, bits):
    p = _params(1, bayer=pattern, raw_bits=bits, noise=(0.01, 0.02))
    rng = np.random.default_rng(4)
    cam = (rng.random((13, 17, 3)) * 1.3 - 0.1).astype(np.float32)  # below 0 and above white
    planes = np.ascontiguousarray(cam.transpose(2, 0, 1))
    field = sample_rng(3, 0, 8).standard_normal(cam.shape[:2], dtype=np.float32)
    noisy = raw.sensor_readout(cam, p, rng=sample_rng(3, 0, 8))
    _same(noisy, naive.raw_readout(cam, p, field))
    _same(raw.sensor_readout(planes.transpose(1, 2, 0), p, noise=field), noisy)
    _same(raw.sensor_readout(cam, p, noisy=False), naive.raw_readout(cam, p))
    assert not np.array_equal(noisy, naive.raw_readout(cam, p))


@pytest.mark.parametrize("pattern", raw.BAYER_PATTERNS)
@pytest.mark.parametrize("method", raw.DEMOSAIC_METHODS)
@pytest.mark.parametrize("shape", [(3, 3), (6, 9), (11, 8)])
def test_demosaic_equals_the_numpy_steps(pattern, method, shape):
    mos = np.random.default_rng(shape[0]).random(shape).astype(np.float32)
    _same(raw.demosaic(mos, pattern, method), naive.raw_demosaic(mos, pattern, method))


@pytest.mark.parametrize("i,highlights", CASES)
@pytest.mark.parametrize("method", raw.DEMOSAIC_METHODS)
def test_develop_equals_the_numpy_steps(i, highlights, method):
    p = _params(i, highlights=highlights, demosaic=method, raw_bits=12 if i % 2 else None)
    cam = naive.raw_unprocess(TABLE[_photo(seed=i)], p)
    noisy = i % 2 == 1
    mos = naive.raw_readout(cam, p, sample_rng(5, i, 8).standard_normal(cam.shape[:2], np.float32)
                            if noisy else None)
    ref = naive.raw_develop(mos, p)
    if highlights == "preserve":
        gained = naive.raw_demosaic(mos * p.wb_gains.astype(np.float32)[raw.cfa_channels(p.bayer,
                                    mos.shape)], p.bayer, method)
        hot = gained[gained.mean(-1) > KNEE].astype(np.float64) / p.wb_gains
        top = (hot / np.maximum(1.0, 1.0 / p.wb_gains)).mean(-1)
        assert (top < 1).sum() >= 10  # the bisection runs
        assert noisy or (top >= 1).sum() >= 6  # and the pixels at white skip it
    _same(raw.develop(mos, p), ref)
    _same(np.ascontiguousarray(raw.develop_planes(mos, p).transpose(1, 2, 0)), ref)


@pytest.mark.parametrize("i,highlights", CASES)
def test_white_balance_equals_the_numpy_steps(i, highlights):
    """process / white_balance (a demosaicked image) take develop's highlight inverse."""
    p = _params(i, highlights=highlights)
    cam = naive.raw_unprocess(TABLE[_photo(seed=i)], p)
    ref = naive.raw_restore(cam * p.wb_gains.astype(np.float32), p)
    if highlights == "preserve":
        assert (ref != cam * p.wb_gains.astype(np.float32)).any()  # the inverse ran
    _same(raw.white_balance(cam, p), ref)
    _same(raw.process(cam, p), naive.raw_matrix(ref, p.cam_to_rgb))


def test_bytes_do_not_depend_on_the_number_of_threads():
    p = _params(2, demosaic="malvar", raw_bits=12)
    photo = _photo(61, 47, seed=3)
    before = numba.get_num_threads()

    def run():
        cam = raw.unprocess_uint8(photo, TABLE, p)
        mos = raw.sensor_readout(cam.transpose(1, 2, 0), p, rng=sample_rng(1, 2, 8))
        return cam.tobytes() + mos.tobytes() + raw.develop_planes(mos, p).tobytes()

    try:
        numba.set_num_threads(1)
        one = run()
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = run()
    finally:
        numba.set_num_threads(before)
    assert one == two
