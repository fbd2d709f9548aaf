import json
import math

import numpy as np
import pytest

from blursynth._rng import sample_rng
from blursynth.errors import BadInputError
from blursynth.ops.convolve import convolve
from blursynth.ops.defocus import (
    DRAW_DEPTH_FAR,
    DRAW_DEPTH_NEAR,
    aperture_kernel,
    coc_layers,
    coc_scale_for_max,
    coc_scale_from_lens,
    defocus,
    defocus_from_params,
    depth_from_params,
    draw_defocus,
    draw_depth,
    kernel_radius,
    layer_weights,
    resize_depth,
    signed_coc_px,
)
from blursynth.sources.depth import load_depth

H, W = 48, 64
STREAM_DEPTH = 11


def _image(seed=0, shape=(H, W)):
    return np.random.default_rng(seed).random((*shape, 3), dtype=np.float32)


def _rotate(kernel, degrees):
    import cv2

    c = (kernel.shape[1] - 1) / 2
    m = cv2.getRotationMatrix2D((c, c), degrees, 1.0)
    return cv2.warpAffine(kernel, m, kernel.shape[::-1], flags=cv2.INTER_LINEAR)


# ---------------------------------------------------------------- kernels


@pytest.mark.parametrize("blades", [0, 3, 5, 6, 8])
@pytest.mark.parametrize("diameter", [0.0, 0.7, 1.0, 1.3, 2.5, 7.0, 12.4, -9.0])
def test_kernel_invariants(blades, diameter):
    k = aperture_kernel(diameter, blades=blades, rotation_rad=0.4)
    r = kernel_radius(diameter)
    assert k.dtype == np.float32 and k.shape == (2 * r + 1, 2 * r + 1)
    assert k.min() >= 0
    assert abs(float(k.sum(dtype=np.float64)) - 1) < 1e-6
    # A regular polygon's and a disk's centroid is the centre (to the sub-sampling's error).
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    assert abs(float((k * xx).sum())) < 0.05 and abs(float((k * yy).sum())) < 0.05
    if r and blades == 0:  # the disk reaches the outermost ring: kernel_radius is tight
        assert k[r, 0] > 0 and k[0, r] > 0


def test_small_diameters_are_a_delta():
    for d in (0.0, 0.5, 1.0, -1.0):
        assert aperture_kernel(d).tolist() == [[1.0]]
        assert aperture_kernel(d, blades=5).tolist() == [[1.0]]


def test_disk_is_round_and_grows_with_diameter():
    k = aperture_kernel(11.0)
    np.testing.assert_array_equal(k, k[::-1, :])
    np.testing.assert_array_equal(k, k[:, ::-1])
    np.testing.assert_array_equal(k, k.T)
    # Fully covered inner pixels share one weight; the covered area is pi d^2 / 4 pixels.
    inner = k[5, 5]
    assert np.count_nonzero(np.isclose(k, inner, rtol=0, atol=1e-9)) >= 69
    assert abs(1 / inner - math.pi * 11.0**2 / 4) < 0.5
    assert kernel_radius(11.0) == 5 and kernel_radius(11.01) == 6


@pytest.mark.parametrize("blades", [3, 5, 6, 7, 8])
def test_polygon_has_the_blade_count_symmetry(blades):
    k = aperture_kernel(41.0, blades=blades, rotation_rad=0.3)
    total = float(k.sum())

    def change(deg):
        return float(np.abs(_rotate(k, deg) - k).sum()) / total

    # Turning by one blade's angle maps the polygon onto itself (up to the resampling's blur);
    # by half of it, it does not.
    assert change(360 / blades) < 0.04
    assert change(180 / blades) > 0.07
    # Rotation is periodic in one blade's angle.
    same = aperture_kernel(41.0, blades=blades, rotation_rad=0.3 + 2 * math.pi / blades)
    np.testing.assert_allclose(same, k, rtol=0, atol=1e-6)


@pytest.mark.parametrize("blades", [3, 4, 5, 6])
def test_polygon_mirror_and_point_symmetry(blades):
    k = aperture_kernel(15.0, blades=blades)  # one vertex straight up
    np.testing.assert_allclose(k, k[:, ::-1], rtol=0, atol=1e-7)
    point = float(np.abs(k - k[::-1, ::-1]).sum())
    if blades % 2 == 0:
        assert point < 1e-5
    else:
        assert point > 0.05
    if blades == 4:
        np.testing.assert_allclose(k, np.rot90(k), rtol=0, atol=1e-7)


def test_in_front_of_focus_the_aperture_is_inverted():
    k = aperture_kernel(13.0, blades=5, rotation_rad=0.2)
    np.testing.assert_allclose(aperture_kernel(-13.0, blades=5, rotation_rad=0.2),
                               k[::-1, ::-1], rtol=0, atol=1e-7)
    np.testing.assert_array_equal(aperture_kernel(-13.0), aperture_kernel(13.0))


@pytest.mark.parametrize("bad", [dict(blades=2), dict(blades=-1), dict(blades=3.5),
                                 dict(rotation_rad=float("nan"))])
def test_kernel_bad_options(bad):
    with pytest.raises(BadInputError):
        aperture_kernel(5.0, **bad)


# ---------------------------------------------------------------- lens


def test_signed_coc_is_the_thin_lens_formula():
    """Against the image-distance form: a point at z focuses at v = f z / (z - f); the sensor
    sits at v_s = f S / (S - f); the cone of the aperture A = f / N meets it in a disk of
    diameter A |v - v_s| / v (positive behind the focus plane in our sign)."""
    f_mm, n, s_m, pitch_um = 35.0, 1.8, 3.0, 3.9
    depth_m = np.array([[0.5, 1.0, 3.0], [5.0, 20.0, 1000.0]])
    coc = signed_coc_px(depth_m, s_m, coc_scale_from_lens(f_mm, n, s_m, pitch_um))
    z, s = depth_m * 1000, s_m * 1000
    v, v_s = f_mm * z / (z - f_mm), f_mm * s / (s - f_mm)
    expected = (f_mm / n) * (v_s - v) / v / (pitch_um / 1000)
    np.testing.assert_allclose(coc, expected, rtol=1e-5, atol=1e-4)
    assert coc[0, 2] == 0 and coc[0, 0] < 0 < coc[1, 0]


def test_coc_scale_for_max_hits_the_extremes():
    depth = np.array([[1.5, 3.0, 10.0]])
    for focus in (1.5, 2.0, 3.0, 10.0):
        scale = coc_scale_for_max(1.5, 10.0, focus, 7.0)
        assert abs(np.abs(signed_coc_px(depth, focus, scale)).max() - 7.0) < 1e-5
    assert coc_scale_for_max(2.0, 2.0, 2.0, 7.0) == 0.0


@pytest.mark.parametrize("call", [
    lambda: coc_scale_from_lens(50, 2, 0.04, 4),  # focus inside the focal length
    lambda: coc_scale_from_lens(0, 2, 2, 4),
    lambda: signed_coc_px(np.array([[1.0, 0.0]]), 1.0, 5.0),
    lambda: signed_coc_px(np.ones((2, 2)), 1.0, -5.0),
    lambda: coc_scale_for_max(1.0, 2.0, 0.0, 5.0),
])
def test_lens_bad_values(call):
    with pytest.raises(BadInputError):
        call()


# ---------------------------------------------------------------- rendering


def test_layers_cover_the_range_with_zero_and_weights_sum_to_one():
    layers = coc_layers(-3.2, 5.0, bin_step_px=1.0)
    assert layers[0] == 5.0 and layers[-1] == -3.2 and 0.0 in layers
    assert np.all(np.diff(layers) < 0) and np.all(-np.diff(layers) <= 1.0 + 1e-12)
    coc = np.linspace(-3.2, 5.0, H * W, dtype=np.float32).reshape(H, W)
    weights = np.stack([layer_weights(coc, layers, j) for j in range(len(layers))])
    assert weights.min() >= 0
    np.testing.assert_allclose(weights.sum(0), 1, rtol=0, atol=1e-6)
    # Each pixel sits in at most the two layers around its CoC, and its mean CoC is its own.
    assert (np.count_nonzero(weights, axis=0) <= 2).all()
    np.testing.assert_allclose((weights * layers[:, None, None]).sum(0), coc, atol=1e-5)


@pytest.mark.parametrize("blades", [0, 5])
def test_constant_depth_at_focus_is_identity(blades):
    image = _image(1)
    depth = np.full((H, W), 3.7, np.float32)
    coc = signed_coc_px(depth, 3.7, 25.0)
    out = defocus(image, coc, blades=blades, rotation_rad=0.4)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("blades", [0, 6])
@pytest.mark.parametrize("z", [1.2, 9.0])
def test_constant_depth_elsewhere_is_one_aperture_convolution(blades, z):
    image = _image(2)
    focus, scale = 3.0, 6.0
    diameter = scale * abs(1 - focus / z)  # 9.0 in front, 4.0 behind
    out = defocus(image, signed_coc_px(np.full((H, W), z), focus, scale), blades=blades)
    kernel = aperture_kernel(diameter * np.sign(z - focus), blades=blades)
    assert kernel.shape[0] == 2 * kernel_radius(diameter) + 1
    ref = convolve(_torch(image), kernel, border="reflect")[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-6)
    assert np.abs(out - image).max() > 0.1


def test_a_point_spreads_into_a_disk_of_the_predicted_diameter():
    """Independent of the convolution engine: one bright pixel becomes the disk itself."""
    image = np.zeros((H, W, 3), np.float32)
    image[24, 30] = 1.0
    focus, scale, z = 2.0, 10.0, 8.0
    d = scale * (1 - focus / z)  # 7.5 px
    out = defocus(image, signed_coc_px(np.full((H, W), z), focus, scale))
    r = kernel_radius(d)
    np.testing.assert_allclose(out[24 - r : 24 + r + 1, 30 - r : 30 + r + 1, 1],
                               aperture_kernel(d), rtol=0, atol=1e-6)
    assert np.abs(out[..., 1]).sum() == pytest.approx(1.0, abs=1e-5)
    # The disk's extent is the diameter: nothing lit beyond d / 2 + a pixel's half-diagonal.
    yy, xx = np.nonzero(out[..., 1] > 1e-6)
    assert np.hypot(yy - 24, xx - 30).max() <= d / 2 + math.sqrt(0.5)


def test_near_objects_occlude_and_stay_sharp():
    # Left half: a black object at the focus distance; right half: a white far background.
    image = np.zeros((H, W, 3), np.float32)
    image[:, W // 2 :] = 1.0
    depth = np.full((H, W), 2.0, np.float32)
    depth[:, W // 2 :] = 40.0
    out = defocus(image, signed_coc_px(depth, 2.0, 12.0))
    # The blurred background must not spill over the sharp object in front of it.
    np.testing.assert_allclose(out[:, : W // 2], 0.0, atol=1e-6)
    # Swapped: a blurred near white object spreads over the sharp far background.
    depth = np.full((H, W), 40.0, np.float32)
    depth[:, W // 2 :] = 1.0
    out = defocus(image, signed_coc_px(depth, 40.0, 0.25))  # a 9.75 px disk in front
    assert out[:, W // 2 - 3, 0].min() > 0.1
    np.testing.assert_allclose(out[:, : W // 2 - 6], 0.0, atol=1e-6)


def _defocus_whole_frame(image, coc, blades, rotation_rad):
    """Reference: every layer convolved over the whole frame, composited as in the docs."""
    layers = coc_layers(float(coc.min()), float(coc.max()))
    acc_c = np.zeros(image.shape, np.float64)
    acc_a = np.zeros(coc.shape, np.float64)
    for j, v in enumerate(layers):
        w = layer_weights(coc, layers, j)
        planes = np.concatenate([image * w[..., None], w[..., None]], axis=2)
        kernel = aperture_kernel(v, blades=blades, rotation_rad=rotation_rad)
        b = convolve(_torch(planes), kernel, border="reflect")[0].numpy().transpose(1, 2, 0)
        a = b[..., 3:4].astype(np.float64)
        acc_c = acc_c * (1 - a) + b[..., :3]
        acc_a = acc_a * (1 - a[..., 0]) + a[..., 0]
    return acc_c / acc_a[..., None]


@pytest.mark.parametrize("i", range(3))
def test_layer_windows_match_whole_frame_layers(i):
    """defocus convolves each layer only near its support; that must not change the result."""
    depth, _ = draw_depth((H, W), rng=sample_rng(8, i, STREAM_DEPTH))
    lens = draw_defocus(depth, rng=sample_rng(8, i, STREAM_DEPTH, 1), max_coc_px=9.0, blades=5)
    coc = signed_coc_px(depth, lens["focus_distance"], lens["coc_scale_px"])
    image = _image(i)
    out = defocus(image, coc, blades=5, rotation_rad=lens["rotation_rad"])
    ref = _defocus_whole_frame(image, coc, 5, lens["rotation_rad"])
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-5)


def test_defocus_bytes_do_not_depend_on_threads_or_repeats():
    import torch

    image = _image(3)
    depth, _ = draw_depth((H, W), rng=sample_rng(5, 1, STREAM_DEPTH))
    coc = signed_coc_px(depth, float(np.median(depth)), 8.0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        a = defocus(image, coc, blades=7, rotation_rad=1.0)
        torch.set_num_threads(1)
        b = defocus(image, coc, blades=7, rotation_rad=1.0)
    finally:
        torch.set_num_threads(before)
    assert a.tobytes() == b.tobytes()
    assert np.all(np.isfinite(a)) and a.min() >= 0 and a.max() <= 1 + 1e-5


@pytest.mark.parametrize("call", [
    lambda: defocus(_image().astype(np.float64), np.zeros((H, W))),
    lambda: defocus(_image(), np.zeros((H, W + 1))),
    lambda: defocus(_image(), np.full((H, W), np.nan)),
    lambda: defocus(_image(), np.full((H, W), 60.0)),  # the disk is larger than the image
    lambda: defocus(_image(), np.zeros((H, W)), border="valid"),
    lambda: defocus(_image(), np.zeros((H, W)), bin_step_px=0),
])
def test_defocus_bad_input(call):
    with pytest.raises(BadInputError):
        call()


# ---------------------------------------------------------------- random depth and lens


def test_draw_depth_is_keyed_and_rebuilds_from_json_params():
    shapes = set()
    for i in range(6):
        depth, params = draw_depth((H, W), rng=sample_rng(9, i, STREAM_DEPTH))
        again, _ = draw_depth((H, W), rng=sample_rng(9, i, STREAM_DEPTH))
        assert depth.dtype == np.float32 and depth.shape == (H, W)
        assert depth.tobytes() == again.tobytes()
        rebuilt = depth_from_params(json.loads(json.dumps(params)))
        assert rebuilt.tobytes() == depth.tobytes()
        assert DRAW_DEPTH_NEAR <= depth.min() and depth.max() <= DRAW_DEPTH_FAR * (1 + 1e-6)
        shapes.add(len(params["pieces"]))
    assert len(shapes) > 1  # the number of pieces is drawn
    other, _ = draw_depth((H, W), rng=sample_rng(9, 99, STREAM_DEPTH))
    assert other.tobytes() != depth.tobytes()


def test_draw_depth_is_piecewise_planar_in_inverse_depth():
    for i in range(6):
        depth, params = draw_depth((H, W), rng=sample_rng(4, i, STREAM_DEPTH))
        inv = 1.0 / depth.astype(np.float64)
        bg = params["background"]
        yy, xx = np.mgrid[0:H, 0:W]
        plane = (bg["inverse_depth"] + bg["gx"] * (xx - (W - 1) / 2) / W
                 + bg["gy"] * (yy - (H - 1) / 2) / H)
        # Pieces lie in front of the background; where none is, the background plane shows.
        assert (inv >= plane * (1 - 1e-6)).all()
        behind = np.isclose(inv, plane, rtol=1e-6)
        # Planar: the second differences vanish inside the background region.
        both = behind[:, :-2] & behind[:, 1:-1] & behind[:, 2:]
        second = inv[:, :-2] - 2 * inv[:, 1:-1] + inv[:, 2:]
        assert np.abs(second[both]).max(initial=0) < 1e-6


def test_draw_defocus_sets_the_largest_blur():
    depth, _ = draw_depth((H, W), rng=sample_rng(2, 0, STREAM_DEPTH))
    p = draw_defocus(depth, rng=sample_rng(2, 0, STREAM_DEPTH, 1), max_coc_px=(3.0, 9.0),
                     blades=6)
    q = draw_defocus(depth, rng=sample_rng(2, 0, STREAM_DEPTH, 1), max_coc_px=(3.0, 9.0),
                     blades=6)
    assert p == q and json.loads(json.dumps(p)) == p
    assert 3.0 <= p["max_coc_px"] <= 9.0 and 0 <= p["rotation_rad"] < math.pi / 3
    assert depth.min() <= p["focus_distance"] <= depth.max()
    coc = signed_coc_px(depth, p["focus_distance"], p["coc_scale_px"])
    assert abs(float(np.abs(coc).max()) - p["max_coc_px"]) < 1e-4
    out = defocus_from_params(_image(4), depth, p)
    replay = defocus_from_params(_image(4), depth, json.loads(json.dumps(p)))
    assert out.tobytes() == replay.tobytes()
    with pytest.raises(BadInputError):
        draw_defocus(depth, rng=sample_rng(0, 0), max_coc_px=(5.0, 2.0))


# ---------------------------------------------------------------- depth files


def _png(path, values):
    import cv2

    assert cv2.imwrite(str(path), values)
    return path


def test_load_depth_png_8_and_16_bit_and_npy(tmp_path):
    v16 = np.random.default_rng(0).integers(1, 65535, (H, W)).astype(np.uint16)
    d = load_depth(_png(tmp_path / "a.png", v16), shape=(H, W))
    assert d.dtype == np.float32 and np.array_equal(d, v16.astype(np.float32))
    v8 = np.random.default_rng(1).integers(1, 255, (H, W)).astype(np.uint8)
    assert np.array_equal(load_depth(_png(tmp_path / "b.png", v8)), v8.astype(np.float32))
    inv = load_depth(tmp_path / "b.png", inverse=True)
    np.testing.assert_allclose(inv, 1.0 / v8, rtol=1e-6)
    np.save(tmp_path / "c.npy", np.full((H, W, 1), 2.5))
    assert load_depth(tmp_path / "c.npy", shape=(H, W)).tolist() == np.full((H, W), 2.5).tolist()


def test_load_depth_errors_are_one_line(tmp_path):
    ok = _png(tmp_path / "ok.png", np.full((H, W), 7, np.uint8))
    holes = np.full((H, W), 7, np.uint16)
    holes[3, 4] = 0
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    cases = {
        "is 48x64 (HxW) but its photo is 50x64": lambda: load_depth(ok, shape=(50, 64)),
        "1 pixel(s) that are 0": lambda: load_depth(_png(tmp_path / "h.png", holes)),
        "must have one channel": lambda: load_depth(
            _png(tmp_path / "rgb.png", np.full((H, W, 3), 9, np.uint8))),
        "unsupported file type .jpg": lambda: load_depth(tmp_path / "x.jpg"),
        "cannot read": lambda: load_depth(tmp_path / "missing.png"),
        "cannot decode": lambda: load_depth(tmp_path / "bad.png"),
        "not a plain .npy": lambda: load_depth(tmp_path / "obj.npy"),
    }
    for expected, call in cases.items():
        with pytest.raises(BadInputError) as e:
            call()
        assert expected in str(e.value) and "\n" not in str(e.value)


def _torch(image):
    import torch

    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]


def test_resize_depth_keeps_edges_and_values():
    depth = np.full((H, W), 3.0, np.float32)
    depth[:, W // 2 :] = 30.0
    out = resize_depth(depth, (H // 2 + 1, W * 2 - 3))
    assert out.shape == (H // 2 + 1, W * 2 - 3) and out.dtype == np.float32
    assert set(np.unique(out).tolist()) == {3.0, 30.0}  # no invented in-between depths
    assert np.array_equal(resize_depth(depth, (H, W)), depth)
