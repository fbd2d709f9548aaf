"""The RAW path's Numba kernels (ops._raw_kernels, through ops.raw) against the step-by-step
NumPy formulation below, bit for bit; and their bytes whatever the number of threads."""

import numba
import numpy as np
import pytest

from blursynth._rng import sample_rng
from blursynth.ops import raw
from blursynth.ops.color import CameraResponse

TABLE = CameraResponse.parse("srgb").decode_table()
KNEE = raw.HIGHLIGHT_KNEE


# -- the reference: one NumPy step at a time, in float32 (float64 for the highlight solve) ------
def _matrix(x, m):
    m = np.asarray(m, np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    return np.stack([(m[c, 0] * r + m[c, 1] * g) + m[c, 2] * b for c in range(3)], -1)


def _mask(grey):
    t = np.clip((grey - KNEE) / (1.0 - KNEE), 0.0, 1.0)
    return t * t


def ref_unprocess(rgb, p):
    cam = _matrix(rgb, p.rgb_to_cam)
    inv = (1.0 / p.wb_gains).astype(np.float32)
    out = cam * inv
    if p.highlights == "preserve":
        grey = (cam[..., 0] + cam[..., 1] + cam[..., 2]) / np.float32(3)
        hot = grey > np.float32(KNEE)
        m = _mask(grey[hot])[:, None]
        out[hot] = cam[hot] * np.maximum(m + (1 - m) * inv, inv)
    return out


def ref_readout(cam, p, field=None):
    white = np.float32(p.white_level)
    clipped = np.clip(cam, np.float32(0), white)
    ch = raw.cfa_channels(p.bayer, cam.shape[:2]).astype(np.intp)
    m = np.take_along_axis(clipped, ch[..., None], axis=2)[..., 0]
    if field is not None:
        sigma = np.sqrt(np.maximum(m, 0) * np.float32(p.shot_noise)
                        + np.float32(p.read_noise ** 2))
        m = m + sigma * field
    m = np.minimum(m, white)
    if p.raw_bits is not None:
        scale = np.float32(2 ** p.raw_bits - 1) / white
        m = np.rint(m * scale) / scale
    return m


def ref_demosaic(x, pattern, method):
    h, w = x.shape
    ch = raw.cfa_channels(pattern, (h, w))
    pad = np.pad(x, 2, mode="reflect")

    def at(dy, dx):
        return pad[2 + dy:2 + dy + h, 2 + dx:2 + dx + w]

    f32 = np.float32
    c = x
    n, s, e, wst = at(-1, 0), at(1, 0), at(0, 1), at(0, -1)
    axis4 = ((n + s) + (e + wst)) * f32(0.25)
    horiz, vert = (e + wst) * f32(0.5), (n + s) * f32(0.5)
    diag = ((at(-1, -1) + at(-1, 1)) + (at(1, -1) + at(1, 1))) * f32(0.25)
    if method == "malvar":
        n2, s2, e2, w2 = at(-2, 0), at(2, 0), at(0, 2), at(0, -2)
        lap_axis = c - ((n2 + s2) + (e2 + w2)) * f32(0.25)
        hor2, ver2 = (e2 + w2) * f32(0.5), (n2 + s2) * f32(0.5)
        d_c = c - diag
        lap_row = (f32(2) * (c - hor2) + f32(4) * d_c - (c - ver2)) * f32(0.125)
        lap_col = (f32(2) * (c - ver2) + f32(4) * d_c - (c - hor2)) * f32(0.125)
        g_at_rb = axis4 + f32(0.5) * lap_axis
        along_row, along_col = horiz + lap_row, vert + lap_col
        opposite = diag + f32(0.75) * lap_axis
    else:
        g_at_rb, along_row, along_col, opposite = axis4, horiz, vert, diag
    row_other = np.broadcast_to(np.where(ch[:, :1] == 1, ch[:, 1:2], ch[:, :1]), (h, w))
    out = np.empty((h, w, 3), np.float32)
    for k in (0, 2):
        out[..., k] = np.where(ch == k, c, np.where(ch == 2 - k, opposite,
                                                    np.where(row_other == k, along_row, along_col)))
    out[..., 1] = np.where(ch == 1, c, g_at_rb)
    return out


def ref_restore(out, p):
    if p.highlights == "off":
        return out
    inv = 1.0 / p.wb_gains
    hot = (out[..., 0] + out[..., 1] + out[..., 2]) / np.float32(3) > KNEE
    yh = out[hot].astype(np.float64) * inv

    def grey_at(t):
        m = _mask(t)[:, None]
        s = np.maximum(m + (1 - m) * inv, inv)
        return (yh / s).mean(axis=1), s

    top, _ = grey_at(np.ones(len(yh)))
    lo, hi = np.full(len(yh), KNEE), np.ones(len(yh))
    for _ in range(52):
        mid = 0.5 * (lo + hi)
        above = grey_at(mid)[0] > mid
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    _, s = grey_at(np.where(top >= 1.0, 1.0, 0.5 * (lo + hi)))
    out[hot] = (yh / s).astype(np.float32)
    return out


def ref_develop(x, p):
    gained = x * p.wb_gains.astype(np.float32)[raw.cfa_channels(p.bayer, x.shape)]
    return _matrix(ref_restore(ref_demosaic(gained, p.bayer, p.demosaic), p), p.cam_to_rgb)


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
    ref = ref_unprocess(TABLE[photo], p)
    if highlights == "preserve":
        grey = _matrix(TABLE[photo], p.rgb_to_cam).mean(-1)
        assert (grey > KNEE).sum() >= 20  # the highlight branch is exercised
    _same(raw.unprocess(TABLE[photo], p), ref)
    planes = raw.unprocess_uint8(photo, TABLE, p)
    _same(np.ascontiguousarray(planes.transpose(1, 2, 0)), ref)
    # a strided input (a crop of a transposed array) reads the same
    big = np.ascontiguousarray(TABLE[photo].transpose(1, 0, 2)).transpose(1, 0, 2)[2:-2, 3:]
    _same(raw.unprocess(big, p), ref_unprocess(np.ascontiguousarray(big), p))


@pytest.mark.parametrize("pattern", raw.BAYER_PATTERNS)
@pytest.mark.parametrize("bits", [None, 10, 14])
def test_sensor_readout_equals_the_numpy_steps(pattern, bits):
    p = _params(1, bayer=pattern, raw_bits=bits, noise=(0.01, 0.02))
    rng = np.random.default_rng(4)
    cam = (rng.random((13, 17, 3)) * 1.3 - 0.1).astype(np.float32)  # below 0 and above white
    planes = np.ascontiguousarray(cam.transpose(2, 0, 1))
    field = sample_rng(3, 0, 8).standard_normal(cam.shape[:2], dtype=np.float32)
    noisy = raw.sensor_readout(cam, p, rng=sample_rng(3, 0, 8))
    _same(noisy, ref_readout(cam, p, field))
    _same(raw.sensor_readout(planes.transpose(1, 2, 0), p, noise=field), noisy)
    _same(raw.sensor_readout(cam, p, noisy=False), ref_readout(cam, p))
    assert not np.array_equal(noisy, ref_readout(cam, p))


@pytest.mark.parametrize("pattern", raw.BAYER_PATTERNS)
@pytest.mark.parametrize("method", raw.DEMOSAIC_METHODS)
@pytest.mark.parametrize("shape", [(3, 3), (6, 9), (11, 8)])
def test_demosaic_equals_the_numpy_steps(pattern, method, shape):
    mos = np.random.default_rng(shape[0]).random(shape).astype(np.float32)
    _same(raw.demosaic(mos, pattern, method), ref_demosaic(mos, pattern, method))


@pytest.mark.parametrize("i,highlights", CASES)
@pytest.mark.parametrize("method", raw.DEMOSAIC_METHODS)
def test_develop_equals_the_numpy_steps(i, highlights, method):
    p = _params(i, highlights=highlights, demosaic=method, raw_bits=12 if i % 2 else None)
    cam = ref_unprocess(TABLE[_photo(seed=i)], p)
    noisy = i % 2 == 1
    mos = ref_readout(cam, p, sample_rng(5, i, 8).standard_normal(cam.shape[:2], np.float32)
                      if noisy else None)
    ref = ref_develop(mos, p)
    if highlights == "preserve":
        gained = ref_demosaic(mos * p.wb_gains.astype(np.float32)[raw.cfa_channels(p.bayer,
                              mos.shape)], p.bayer, method)
        hot = gained[gained.mean(-1) > KNEE].astype(np.float64) / p.wb_gains
        top = (hot / np.maximum(1.0, 1.0 / p.wb_gains)).mean(-1)
        assert (top < 1).sum() >= 10  # the bisection runs
        assert noisy or (top >= 1).sum() >= 6  # and the pixels at white skip it
    _same(raw.develop(mos, p), ref)
    _same(np.ascontiguousarray(raw.develop_planes(mos, p).transpose(1, 2, 0)), ref)


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
