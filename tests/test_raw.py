"""The RAW path's groundwork (ops.raw): camera profiles, keyed draws, unprocess/process, mosaic,
noise, quantisation, demosaic. Tiny images, quick."""

import json

import numpy as np
import pytest

from blursynth._rng import sample_rng
from blursynth.errors import BadInputError
from blursynth.ops import raw
from blursynth.ops.color import CameraResponse
from blursynth.ops.encode8 import encode_uint8

from . import naive

CRF = CameraResponse.parse("srgb")


def _params(camera="random", bayer="random", seed=3, **kw):
    return raw.draw_raw_params(sample_rng(seed, 0, 7), camera=camera, bayer=bayer, **kw)


def _photo(h=24, w=24, seed=0):
    photo = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    photo[0, :6] = 255                           # clipped white
    photo[1, :6] = [255, 252, 240]                # near-white highlights, in the mask
    photo[2, :6] = 0
    return photo


CASES = [(cam, pat) for cam in raw.camera_names() + ["random"] for pat in raw.BAYER_PATTERNS]


def _all_codes():
    """65536 pixels: every (R, G) pair of 8-bit codes, B cycling through all 256 codes too."""
    r, g = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    return np.stack([r, g, (r + 7 * g) % 256], -1).astype(np.uint8)


@pytest.mark.parametrize("camera", raw.camera_names() + ["random"])
@pytest.mark.parametrize("highlights", raw.HIGHLIGHT_MODES)
def test_unprocess_then_process_returns_every_pixel(camera, highlights):
    photo = _all_codes()
    for seed in range(2):
        p = _params(camera, seed=seed, highlights=highlights)
        cam = raw.unprocess(CRF.decode_uint8(photo), p)
        back = encode_uint8(CRF, raw.process(cam, p))
        assert np.abs(back.astype(int) - photo).max() <= 1


def _patches(seed=0, cells=3, size=12):
    """A photo of flat colour patches (the mosaic and demosaic only meet at patch edges)."""
    colours = np.random.default_rng(seed).integers(0, 256, (cells, cells, 3), dtype=np.uint8)
    colours[0, 0] = 255
    colours[0, 1] = [255, 250, 235]
    return np.repeat(np.repeat(colours, size, 0), size, 1), size


@pytest.mark.parametrize("camera,pattern", CASES)
def test_full_chain_without_blur_noise_or_clipping_returns_the_photo(camera, pattern):
    photo, size = _patches()
    interior = np.zeros(photo.shape[:2], bool)
    for y0 in range(0, photo.shape[0], size):
        for x0 in range(0, photo.shape[1], size):
            interior[y0 + 2:y0 + size - 2, x0 + 2:x0 + size - 2] = True
    for method in raw.DEMOSAIC_METHODS:
        p = _params(camera, pattern, demosaic=method)
        cam = raw.unprocess(CRF.decode_uint8(photo), p)
        mos = naive.raw_mosaic(cam, pattern)        # no clip, no noise, no quantisation
        back = encode_uint8(CRF, raw.develop(mos, p))
        err = np.abs(back.astype(int) - photo)[interior]
        assert err.max() <= 1, (camera, pattern, method, err.max())


@pytest.mark.parametrize("pattern", raw.BAYER_PATTERNS)
def test_mosaic_samples_the_right_channel_at_every_site(pattern):
    h, w = 5, 7
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        img[..., c] = (c + 10 * np.arange(h)[:, None] + 100 * np.arange(w)[None, :]) / 1000
    mos = raw.sensor_readout(img, _params(bayer=pattern, noise="off"), noisy=False)
    letters = {"R": 0, "G": 1, "B": 2}
    for y in range(h):
        for x in range(w):
            c = letters[pattern[2 * (y % 2) + (x % 2)]]
            assert mos[y, x] == img[y, x, c]


@pytest.mark.parametrize("pattern", raw.BAYER_PATTERNS)
@pytest.mark.parametrize("method", raw.DEMOSAIC_METHODS)
@pytest.mark.parametrize("shape", [(6, 8), (7, 9), (3, 3)])
def test_demosaicing_a_constant_image_is_exact(pattern, method, shape):
    for colour in ([0.2, 0.5, 0.8], [1 / 3, 0.7071, 0.0123], [1.0, 0.0, 1.0]):
        col = np.array(colour, np.float32)
        img = np.broadcast_to(col, (*shape, 3)).copy()
        out = raw.demosaic(naive.raw_mosaic(img, pattern), pattern, method)
        assert np.array_equal(out, img)


def _malvar_reference(mos, pattern):
    """Malvar-He-Cutler by direct 5x5 correlation with the paper's filters (times 8)."""
    g_at_rb = [[0, 0, -1, 0, 0],
               [0, 0, 2, 0, 0],
               [-1, 2, 4, 2, -1],
               [0, 0, 2, 0, 0],
               [0, 0, -1, 0, 0]]
    along_row = [[0, 0, .5, 0, 0],
                 [0, -1, 0, -1, 0],
                 [-1, 4, 5, 4, -1],
                 [0, -1, 0, -1, 0],
                 [0, 0, .5, 0, 0]]
    along_col = np.array(along_row).T
    opposite = [[0, 0, -1.5, 0, 0],
                [0, 2, 0, 2, 0],
                [-1.5, 0, 6, 0, -1.5],
                [0, 2, 0, 2, 0],
                [0, 0, -1.5, 0, 0]]
    h, w = mos.shape
    pad = np.pad(mos.astype(np.float64), 2, mode="reflect")

    def corr(k):
        k = np.asarray(k, float)
        return sum(k[i, j] * pad[i:i + h, j:j + w] for i in range(5) for j in range(5)) / 8

    f = {n: corr(k) for n, k in
         (("g", g_at_rb), ("row", along_row), ("col", along_col), ("opp", opposite))}
    ch = raw.cfa_channels(pattern, (h, w))
    out = np.zeros((h, w, 3))
    for y in range(h):
        for x in range(w):
            c = ch[y, x]
            out[y, x, c] = mos[y, x]
            if c != 1:
                out[y, x, 1] = f["g"][y, x]
                out[y, x, 2 - c] = f["opp"][y, x]
            else:
                row_c = ch[y, (x + 1) % w] if w > 1 else ch[y, x - 1]
                out[y, x, row_c] = f["row"][y, x]
                out[y, x, 2 - row_c] = f["col"][y, x]
    return out


@pytest.mark.parametrize("pattern", raw.BAYER_PATTERNS)
def test_malvar_matches_the_papers_5x5_filters(pattern):
    mos = np.random.default_rng(1).random((9, 10)).astype(np.float32)
    ours = raw.demosaic(mos, pattern, "malvar")
    assert np.abs(ours - _malvar_reference(mos, pattern)).max() < 2e-6


def test_malvar_beats_bilinear_where_the_channels_share_their_detail():
    # Malvar-He-Cutler's correction assumes the channels' edges coincide (as in photos).
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float64)
    detail = 0.5 + 0.3 * np.sin(0.9 * xx + 0.4 * yy) * np.cos(0.5 * yy)
    img = (detail[..., None] * np.array([0.9, 0.7, 0.5]) + 0.05).astype(np.float32)
    mos = naive.raw_mosaic(img, "RGGB")
    err = {m: np.abs(raw.demosaic(mos, "RGGB", m) - img)[3:-3, 3:-3].mean()
           for m in raw.DEMOSAIC_METHODS}
    assert err["malvar"] < err["bilinear"]


def test_noise_variance_follows_the_model_per_channel():
    p = _params("Sony ILCE-7R", "GRBG", noise=(0.01, 0.02))
    levels = np.array([0.02, 0.1, 0.3, 0.6], np.float32)  # 5 sigma below the clip at white
    n = 64
    img = np.zeros((len(levels) * n, n, 3), np.float32)
    for i, v in enumerate(levels):  # each channel a different signal at each level
        img[i * n:(i + 1) * n] = [v, v * 0.5, v * 0.8]
    mos = raw.sensor_readout(img, p, noisy=False)
    noisy = raw.sensor_readout(img, p, rng=sample_rng(3, 0, 8))
    ch = raw.cfa_channels(p["bayer"], mos.shape)
    worst = 0.0
    for i in range(len(levels)):
        rows = slice(i * n, (i + 1) * n)
        for c in range(3):
            sel = ch[rows] == c
            x = mos[rows][sel]
            d = (noisy[rows][sel] - x).astype(np.float64)
            model = p["shot_noise"] * float(x[0]) + p["read_noise"] ** 2
            se = model * np.sqrt(2.0 / (d.size - 1))   # standard error of a sample variance
            z = abs(d.var(ddof=1) - model) / se
            worst = max(worst, z)
            assert z < 4.5, (levels[i], c, d.var(ddof=1), model)
            assert abs(d.mean()) < 4.5 * np.sqrt(model / d.size)
    assert worst > 0  # the check saw noise


def test_noise_levels_drawn_from_the_log_linear_model():
    shots, reads = [], []
    for i in range(400):
        p = raw.draw_raw_params(sample_rng(0, i, 7))
        shots.append(p["shot_noise"])
        reads.append(p["read_noise"])
    ls, lr = np.log(shots), np.log(np.square(reads))
    assert 0.0001 <= min(shots) and max(shots) <= 0.012
    slope, intercept = np.polyfit(ls, lr, 1)
    assert abs(slope - 2.18) < 0.1 and abs(intercept - 1.20) < 0.6
    assert abs(np.std(lr - (2.18 * ls + 1.20)) - 0.26) < 0.04


def test_quantise_and_white_level():
    x = np.array([-0.01, 0.0, 0.3, 0.99999, 1.2], np.float32)
    cam = np.repeat(x[None, :, None], 3, axis=2)
    q = raw.sensor_readout(cam, _params(noise="off", raw_bits=10), noisy=False)[0]
    assert q[-1] == 1.0 and q[-2] == 1.0 and q[1] == 0.0 and q[0] == 0.0  # clipped to [0, white]
    assert np.allclose(q * 1023, np.rint(q * 1023), atol=1e-3) and q[2] != x[2]
    # Noise can take a dark site below 0: a black-level offset keeps it, quantised the same way.
    dark = raw.sensor_readout(cam, _params(noise=(0.001, 0.01), raw_bits=10),
                              noise=np.full((1, 5), -3.0, np.float32))[0]
    assert dark[1] < 0 and dark[1] * 1023 == np.rint(dark[1] * 1023)
    with pytest.raises(BadInputError):
        _params(raw_bits=9)
    with pytest.raises(BadInputError):
        _params(raw_bits=16)


def test_same_key_same_bytes():
    photo = _photo(16, 20, seed=4)

    def make(seed, index):
        p = raw.draw_raw_params(sample_rng(seed, index, 7), raw_bits=(10, 14))
        cam = raw.unprocess(CRF.decode_uint8(photo), p)
        mos = raw.sensor_readout(cam, p, rng=sample_rng(seed, index, 8))
        return json.dumps(p), mos.tobytes(), encode_uint8(CRF, raw.develop(mos, p)).tobytes()

    assert make(5, 2) == make(5, 2)
    assert make(5, 2) != make(5, 3)


def test_params_round_trip_through_json_rebuild_identical_arrays():
    photo = _photo(12, 14, seed=2)
    for i in range(6):
        p = raw.draw_raw_params(sample_rng(9, i, 7), raw_bits=12,
                                demosaic=raw.DEMOSAIC_METHODS[i % 2])
        q = json.loads(json.dumps(p))
        assert q == p
        assert raw.RawParams.from_dict(q).to_dict() == p
        outs = []
        for params in (p, q):
            cam = raw.unprocess(CRF.decode_uint8(photo), params)
            mos = raw.sensor_readout(cam, params, rng=sample_rng(9, i, 8))
            outs.append((cam.tobytes(), mos.tobytes(), raw.develop(mos, params).tobytes()))
        assert outs[0] == outs[1]


def test_fixing_one_choice_leaves_the_other_draws_alone():
    a = raw.draw_raw_params(sample_rng(1, 1, 7))
    b = raw.draw_raw_params(sample_rng(1, 1, 7), camera="Nikon D700", bayer="BGGR", noise="off",
                            digital_gain=False)
    for key in ("red_gain", "blue_gain"):
        assert a[key] == b[key]
    c = raw.draw_raw_params(sample_rng(1, 1, 7), bayer="BGGR")
    for key in ("shot_noise", "read_noise", "xyz_to_cam", "red_gain", "digital_gain"):
        assert c[key] == a[key]


def test_draws_cover_the_ranges_and_patterns():
    ps = [raw.draw_raw_params(sample_rng(2, i, 7)) for i in range(200)]
    assert {p["bayer"] for p in ps} == set(raw.BAYER_PATTERNS)
    assert all(1.9 <= p["red_gain"] <= 2.4 and 1.5 <= p["blue_gain"] <= 1.9 for p in ps)
    assert all(set(p["camera_weights"]) == set(raw.DEFAULT_MIX) for p in ps)
    assert all(abs(sum(p["camera_weights"].values()) - 1) < 1e-12 for p in ps)


def test_bad_input_is_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(BadInputError, match="unknown camera"):
        raw.draw_raw_params(rng, camera="Leica M9")
    with pytest.raises(BadInputError, match="shot noise"):
        raw.draw_raw_params(rng, noise=(0.5, 0.01))
    with pytest.raises(BadInputError, match="noise must be"):
        raw.draw_raw_params(rng, noise=(0.01,))
    with pytest.raises(BadInputError, match="camera must be"):
        raw.draw_raw_params(rng, camera=3)
    with pytest.raises(BadInputError, match="unknown camera"):
        raw.draw_raw_params(rng, camera=["Sony ILCE-7R", "Leica M9"])
    with pytest.raises(BadInputError, match="raw bits"):
        raw.draw_raw_params(rng, raw_bits=8)
    with pytest.raises(BadInputError, match="bayer"):
        raw.draw_raw_params(rng, bayer="RGBG")
    with pytest.raises(BadInputError, match="demosaic"):
        raw.draw_raw_params(rng, demosaic="vng")
    p = raw.draw_raw_params(rng)
    del p["red_gain"]
    with pytest.raises(BadInputError, match="incomplete"):
        raw.RawParams.from_dict(p)


def test_unprocess_keeps_white_at_the_white_level():
    p = _params("Olympus E-M10", "RGGB")
    cam = raw.unprocess(np.ones((2, 2, 3), np.float32), p)
    assert np.allclose(cam, 1.0, atol=1e-6)      # highlight-preserving: white stays white
    off = dict(p, highlights="off")
    assert raw.unprocess(np.ones((2, 2, 3), np.float32), off).max() < 0.9


def _psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


@pytest.mark.parametrize("seed", range(3))
def test_gains_are_applied_to_the_mosaic_before_demosaicing(seed):
    # Demosaicing the ungained mosaic (red and blue at 1/2-1/3 of green) made Malvar's
    # cross-channel correction overshoot at edges: coloured speckles in the sharp target.
    skimage_data = pytest.importorskip("skimage.data")
    photo = skimage_data.astronaut()[100:228, 140:268]
    p = _params(seed=seed, demosaic="malvar")
    cam = raw.unprocess(CRF.decode_uint8(photo), p)
    mos = raw.sensor_readout(cam, p, noisy=False)
    new = encode_uint8(CRF, raw.develop(mos, p))
    old = encode_uint8(CRF, raw.process(raw.demosaic(mos, p["bayer"], "malvar"), p))
    assert _psnr(new, photo) >= _psnr(old, photo) + 0.5

