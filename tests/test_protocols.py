"""train/protocols.py and the MATLAB-style SSIM: each protocol against a hand computation.

Rows are built as dicts in the decoded-row contract (``PairDataset[i]``): ``blurred``,
``sharp`` (None without ground truth), ``psf``, ``gt_frames``, ``params``.
"""

import math

import cv2
import numpy as np
import pytest
import torch

from blursynth.errors import BadInputError
from blursynth.train import protocols
from blursynth.train.metrics import ssim, ssim_matlab
from blursynth.train.protocols import (PROTOCOLS, best_shift, default_protocol,
                                       deconvolve_true_kernel, masked_scores, score, sharpness)


def _photo(h=48, w=48, seed=0):
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.random((h, w, 3)), (0, 0), 1.5)
    return np.clip((big - big.mean()) * 6 + 0.5, 0, 1)


def _u8(a):
    return np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)


def _row(blurred, sharp, **extra):
    return {"blurred": blurred, "sharp": sharp, "psf": None, "params": {}, **extra}


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).permute(2, 0, 1)[None]


# --- MATLAB-style SSIM ---------------------------------------------------------------------

def test_ssim_matlab_of_constant_images_is_the_luminance_term():
    # Constant images: every local variance and covariance is 0, so the map is
    # (2ab + C1) / (a^2 + b^2 + C1) everywhere, borders included.
    a, b = 0.2, 0.6
    c1 = 0.01 ** 2
    got = float(ssim_matlab(_t(np.full((7, 9, 3), a)), _t(np.full((7, 9, 3), b)))[0])
    assert got == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-12)


def test_ssim_matlab_is_a_volumetric_gaussian_with_replicate_borders():
    from scipy.ndimage import correlate

    rng = np.random.default_rng(3)
    x = rng.random((13, 17, 3))
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    g = np.exp(-0.5 * (np.arange(-5, 6) / 1.5) ** 2)
    g /= g.sum()
    k3 = g[:, None, None] * g[None, :, None] * g[None, None, :]  # 11 x 11 x 11

    def f(v):  # scipy's 'nearest' is MATLAB's 'replicate'
        return correlate(v, k3, mode="nearest")

    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    want = np.mean((2 * mx * my + c1) * (2 * cxy + c2)
                   / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    got = float(ssim_matlab(_t(x), _t(y))[0])
    assert got == pytest.approx(want, abs=1e-12)
    # and it is not scikit-image's per-channel, border-cropped figure
    assert abs(got - float(ssim(_t(x), _t(y))[0])) > 1e-3


def test_ssim_filters_alike_on_both_paths():
    # OpenCV's filter (CPU, no grad) and the sliding-window one (grad or GPU) give one figure
    rng = np.random.default_rng(14)
    x, y = _t(rng.random((20, 23, 3))), _t(rng.random((20, 23, 3)))
    for f in (ssim, ssim_matlab):
        fast = float(f(x, y)[0])
        slow = float(f(x.clone().requires_grad_(True), y)[0].detach())
        assert fast == pytest.approx(slow, abs=1e-14)


# --- plain and noref -----------------------------------------------------------------------

def test_plain_scores_match_the_metrics():
    sharp = _u8(_photo())
    out = _u8(_photo() + 0.03 * np.random.default_rng(1).standard_normal((48, 48, 3)))
    s = score("plain", out, _row(out, sharp))
    mse = np.mean((out / 255.0 - sharp / 255.0) ** 2)
    assert s["psnr"] == pytest.approx(10 * math.log10(1 / mse), abs=1e-9)
    assert s["ssim"] == pytest.approx(float(ssim(_t(out / 255.0), _t(sharp / 255.0))[0]))
    assert s["ssim_matlab"] == pytest.approx(float(ssim_matlab(_t(out / 255.0),
                                                               _t(sharp / 255.0))[0]))
    assert set(s) == {"psnr", "ssim", "ssim_matlab"}


def test_rows_without_ground_truth_get_only_sharpness():
    blurred = _u8(_photo(seed=2))
    row = _row(blurred, None, params={"ground_truth": False})
    for name in ("plain", "realblur", "noref"):
        assert score(name, blurred, row) == {"sharpness": sharpness(blurred)}


def test_sharpness_is_the_variance_of_the_laplacian():
    img = np.zeros((5, 5, 3), np.uint8)
    img[2, 2] = 255  # luma 1 at the centre
    # 4-neighbour Laplacian: -4 at the centre, +1 at its 4 neighbours, 0 elsewhere
    lap = np.zeros(25)
    lap[:5] = [-4, 1, 1, 1, 1]
    assert sharpness(img) == pytest.approx(lap.var(), rel=1e-6)
    sharp = _u8(_photo(seed=4))
    assert sharpness(cv2.GaussianBlur(sharp, (0, 0), 2)) < sharpness(sharp)


def test_default_protocol():
    assert default_protocol({"layout": "realblur", "set": "realblur-r"}) == "realblur"
    assert default_protocol({"set": "RealBlur_J"}) == "realblur"
    assert default_protocol({"layout": "levin"}) == "levin"
    assert default_protocol({"layout": "kohler"}) == "kohler"
    assert default_protocol({"set": "koehler"}) == "kohler"
    assert default_protocol({"layout": "lai", "ground_truth": False}) == "noref"
    assert default_protocol({"layout": "gopro"}) == "plain"
    assert default_protocol({"layout": "rsblur", "set": "rsblur"}) == "realblur"
    assert default_protocol({}) == "plain"
    assert PROTOCOLS == ("plain", "realblur", "levin", "kohler", "noref")


def test_unknown_protocol_is_refused_in_one_line():
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(BadInputError) as e:
        score("gopro", img, _row(img, img))
    assert "\n" not in str(e.value) and "plain, realblur, levin, kohler, noref" in str(e.value)


# --- levin ---------------------------------------------------------------------------------

def test_shift_search_finds_a_known_shift():
    ref = _photo(40, 44, seed=5)
    out = np.roll(ref, (3, -2), axis=(0, 1))  # out(p + (3, -2)) = ref(p)
    dy, dx, mse = best_shift(out, ref, 4)
    assert (dy, dx, mse) == (3, -2, 0.0)
    # through the protocol: the kernel's size sets the window (9x9 -> 4 px)
    psf = np.zeros((9, 9))
    psf[4, 4] = 1.0
    row = _row(_u8(ref), _u8(ref), psf=psf)
    s = score("levin", _u8(out), row)
    assert (s["shift_y"], s["shift_x"]) == (3.0, -2.0)
    assert s["psnr"] == math.inf


def test_shift_search_compares_one_region_for_every_shift():
    ref = np.zeros((10, 10, 1))
    out = ref.copy()
    out[0, 0] = 1.0  # outside the central region at shift 0: no error there
    assert best_shift(out, ref, 2) == (0, 0, 0.0)


def _line_kernel():
    psf = np.zeros((7, 7))
    psf[3, 1:6] = 1.0
    psf[2, 5] = 0.5
    return psf / psf.sum()


def test_error_ratio_is_one_for_the_true_kernel_deconvolution():
    sharp = _photo(48, 48, seed=6)
    psf = _line_kernel()
    blurred = _u8(cv2.filter2D(sharp, -1, psf[::-1, ::-1], borderType=cv2.BORDER_REFLECT))
    row = _row(blurred, _u8(sharp), psf=psf.astype(np.float32))
    deconv = deconvolve_true_kernel(blurred, psf)
    assert score("levin", deconv, row)["error_ratio"] == pytest.approx(1.0, abs=1e-12)
    # the deconvolution restores: the blurred input scores a ratio above 1
    s_in = score("levin", blurred, row)
    assert s_in["error_ratio"] > 1.2
    # hand computation of the ratio for the input: best-shift MSEs of input and deconvolution
    ref = _u8(sharp) / 255.0
    m = 3
    mse_in = best_shift(blurred / 255.0, ref, m)[2]
    mse_dec = best_shift(deconv, ref, m)[2]
    assert s_in["error_ratio"] == pytest.approx(mse_in / mse_dec, rel=1e-12)


def test_deconvolution_undoes_much_of_a_blur():
    sharp = _photo(40, 40, seed=7)
    psf = _line_kernel()
    blurred = cv2.filter2D(sharp, -1, psf[::-1, ::-1], borderType=cv2.BORDER_REFLECT)
    rec = deconvolve_true_kernel(blurred, psf)
    inner = (slice(8, -8), slice(8, -8))
    assert np.abs(rec - sharp)[inner].mean() < 0.6 * np.abs(blurred - sharp)[inner].mean()


def test_reference_deconvolution_beats_the_blurred_input_over_the_whole_frame():
    # The FFT's periodic frame must not ring in from the edges: without the edge taper the
    # reference came out worse than the blurred photo and every error ratio was meaningless.
    from scipy.ndimage import convolve
    from skimage import data

    sharp = cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    psf = np.zeros((15, 15))
    psf[7, 3:12] = 1.0 / 9
    blurred = np.stack([convolve(sharp[..., c] / 255.0, psf, mode="mirror") for c in range(3)], 2)
    blurred_u8 = _u8(blurred)
    rec = deconvolve_true_kernel(blurred_u8, psf)
    err = lambda a: float(np.mean((a - sharp / 255.0) ** 2))  # noqa: E731
    assert err(rec) < 0.3 * err(blurred_u8 / 255.0)
    ratio = score("levin", blurred_u8, _row(blurred_u8, sharp, psf=psf))["error_ratio"]
    assert ratio > 3


def test_levin_without_a_kernel_is_refused():
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(BadInputError, match="levin"):
        score("levin", img, _row(img, img))


# --- kohler --------------------------------------------------------------------------------

def _kohler_by_hand(out, frame, m):
    # Every shift and its least-squares gain, one full comparison each (no FFT).
    h, w = frame.shape[:2]
    target = frame[m:h - m, m:w - m]
    best = None
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            win = out[m + dy:h - m + dy, m + dx:w - m + dx]
            g = np.sum(win * target) / np.sum(win * win)
            e = np.mean((g * win - target) ** 2)
            if best is None or e < best[3] - 1e-15:
                best = (dy, dx, g, e)
    return best


def test_kohler_picks_the_best_frame():
    rng = np.random.default_rng(8)
    out = _u8(_photo(seed=9))
    noise = [0.2, 0.1, 0.02, 0.08]
    frames = [_u8(out / 255.0 + s * rng.standard_normal(out.shape)) for s in noise]
    row = _row(out, frames[0], gt_frames=frames)
    s = score("kohler", out, row)
    assert s["best_frame"] == 2.0
    m = protocols.KOHLER_MAX_SHIFT
    dy, dx, g, e = _kohler_by_hand(out / 255.0, frames[2] / 255.0, m)
    assert (s["shift_y"], s["shift_x"]) == (dy, dx)
    assert s["gain"] == pytest.approx(g, abs=1e-12)
    assert s["psnr"] == pytest.approx(10 * math.log10(1 / e), abs=1e-9)
    crop = frames[2][m:-m, m:-m] / 255.0
    win = out[m + dy:48 - m + dy, m + dx:48 - m + dx] / 255.0
    assert s["ssim"] == pytest.approx(float(ssim(_t(g * win), _t(crop))[0]))
    # the first of equal bests
    row = _row(out, out, gt_frames=[frames[0], out, out])
    assert score("kohler", out, row)["best_frame"] == 1.0


def test_kohler_registers_each_frame_by_gain_and_translation():
    # The best frame is the sharp scene itself, but 2 px down, 1 px left and at 0.9 the
    # output's brightness; the other frame is unshifted at the same brightness but blurred.
    # Raw PSNR would pick the blurred one; Köhler's gain and translation pick the right one.
    big = _photo(72, 72, seed=21)
    out = big[10:58, 10:58]
    shifted = 0.9 * big[8:56, 11:59]
    blurred = cv2.GaussianBlur(out, (0, 0), 2.0)
    row = _row(_u8(out), _u8(blurred), gt_frames=[_u8(blurred), _u8(shifted)])
    raw = [float(((out - _u8(f) / 255.0) ** 2).mean()) for f in (blurred, shifted)]
    assert raw[0] < raw[1]  # without registration the blurred frame would win
    s = score("kohler", _u8(out), row)
    assert s["best_frame"] == 1.0
    assert (s["shift_y"], s["shift_x"]) == (-2.0, 1.0)
    assert s["gain"] == pytest.approx(0.9, abs=0.01)
    assert s["psnr"] > 40


def test_shift_sums_match_a_direct_computation():
    rng = np.random.default_rng(22)
    out, ref = rng.random((19, 23, 3)), rng.random((19, 23, 3))
    m = 3
    cross, energy, tt, n = protocols.shift_sums(out, ref, m)
    target = ref[m:-m, m:-m]
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            win = out[m + dy:19 - m + dy, m + dx:23 - m + dx]
            assert cross[dy + m, dx + m] == pytest.approx(np.sum(win * target), rel=1e-12)
            assert energy[dy + m, dx + m] == pytest.approx(np.sum(win * win), rel=1e-12)
    assert tt == pytest.approx(np.sum(target ** 2)) and n == target.size


# --- realblur ------------------------------------------------------------------------------

def test_masked_scores_use_only_the_valid_pixels():
    ref = _photo(24, 24, seed=10)
    out = ref.copy()
    out[:, :3] = 1 - out[:, :3]
    out[5, 10] += 0.1
    valid = np.ones((24, 24), bool)
    valid[:, :3] = False
    s = masked_scores(out, ref, valid)
    assert s["psnr"] == pytest.approx(10 * math.log10(1 / (3 * 0.1 ** 2 / (24 * 21 * 3))))
    # SSIM windows stay inside the valid region: a change outside it does not move them
    out2 = out.copy()
    out2[:, :3] = 0.5
    s2 = masked_scores(out2, ref, valid)
    assert (s2["ssim"], s2["ssim_matlab"]) == (s["ssim"], s["ssim_matlab"])
    assert s["ssim"] < 1.0


def _realblur_case(seed=11):
    margin, size = 24, 96
    big = _photo(size + 2 * margin, size + 2 * margin, seed=seed)
    sharp = big[margin:-margin, margin:-margin]
    hom = np.array([[1.01, 0.01, 1.5], [-0.008, 0.99, -1.0], [0, 0, 1.0]])
    to_big = np.array([[1, 0, margin], [0, 1, margin], [0, 0, 1.0]]) @ np.linalg.inv(hom)
    out = 0.85 * cv2.warpPerspective(big, to_big, (size, size),
                                     flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    return _u8(out), _u8(sharp), hom


def test_realblur_aligns_before_scoring():
    out, sharp, hom = _realblur_case()
    from blursynth.train.align import align_to_reference

    a = align_to_reference(out, sharp)
    assert a.converged
    # the warp found maps reference pixels where the true one does, to a quarter pixel (8-bit)
    corners = np.array([[0, 0, 1], [95, 0, 1], [0, 95, 1], [95, 95, 1.0]]).T
    got, want = a.homography @ corners, hom @ corners
    assert np.abs(got[:2] / got[2] - want[:2] / want[2]).max() < 0.25
    s = score("realblur", out, _row(out, sharp, params={"layout": "realblur"}))
    assert s["ecc_converged"] == 1.0 and 0.9 < s["valid_fraction"] < 1.0


def _realblur_literal(deblurred_u8, gt_u8):
    # RealBlur's evaluation steps written out one call each (docs/algorithms.md, realblur).
    from skimage.metrics import structural_similarity

    z, x = deblurred_u8 / 255.0, gt_u8 / 255.0
    zs = (np.sum(x * z) / np.sum(z * z)) * z  # 1: gain over the whole unaligned frame
    gray = [(a @ np.array([0.299, 0.587, 0.114])).astype(np.float32) for a in (x, zs)]
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 0)
    _, warp = cv2.findTransformECC(gray[0], gray[1], np.eye(3, dtype=np.float32),
                                   cv2.MOTION_HOMOGRAPHY, crit, None, 5)  # 2: ECC
    h, w = x.shape[:2]
    inv = cv2.WARP_INVERSE_MAP
    zr = cv2.warpPerspective(zs, warp.astype(np.float64), (w, h), flags=cv2.INTER_CUBIC | inv,
                             borderMode=cv2.BORDER_REFLECT)  # 3: cubic, reflected border
    cr = cv2.warpPerspective(np.ones_like(zs, dtype=np.float32), warp.astype(np.float64), (w, h),
                             flags=cv2.INTER_NEAREST | inv, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0)  # 4: the mask
    zr, xr = zr * cr, x * cr
    p = 10 * np.log10(1.0 / (np.sum((xr - zr) ** 2) / np.sum(cr)))  # 5: PSNR over the mask
    full = structural_similarity(xr, zr, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1.0, full=True)[1]
    r = 5  # 6: the map times the mask, border cropped, over the mask's sum, mean of channels
    m = (full * cr)[r:-r, r:-r]
    q = np.mean(m.sum(axis=(0, 1)) / cr[r:-r, r:-r].sum(axis=(0, 1)))
    return float(p), float(q)


@pytest.mark.parametrize("seed", [11, 12])
def test_realblur_matches_a_literal_port_of_its_steps(seed):
    out, sharp, _ = _realblur_case(seed)
    s = score("realblur", out, _row(out, sharp, params={"layout": "realblur"}))
    p, q = _realblur_literal(out, sharp)
    assert s["psnr"] == pytest.approx(p, abs=1e-6)
    assert s["ssim"] == pytest.approx(q, abs=1e-6)


def test_lpips_is_passed_the_compared_images():
    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen = []

        def forward(self, a, b):
            self.seen.append((a.clone(), b.clone()))
            return (a - b).abs().mean().reshape(1)

    sharp = _u8(_photo(seed=12))
    out = _u8(_photo(seed=13))
    rec = Recorder()
    s = score("plain", out, _row(out, sharp), lpips=rec)
    a, b = rec.seen[0]
    assert a.shape == (1, 3, 48, 48) and a.dtype == rec.w.dtype
    np.testing.assert_allclose(a[0].permute(1, 2, 0).numpy(), out / 255.0, atol=1e-6)
    np.testing.assert_allclose(b[0].permute(1, 2, 0).numpy(), sharp / 255.0, atol=1e-6)
    assert s["lpips"] == pytest.approx(float((a - b).abs().mean()))


def test_module_names_its_constants():
    assert protocols.KOHLER_MAX_SHIFT > 0 and protocols.DECONV_PRIOR_WEIGHT > 0
    assert not hasattr(protocols, "LEVIN_MAX_SHIFT")  # no search without a kernel exists


# --- through the importers ------------------------------------------------------------------

def test_levin_import_kernel_convention_matches_the_deconvolution(tmp_path, run_cli):
    # Levin's files hold y = x convolved with f (conv2); the imported psf must deconvolve y
    # better than its mirror image does, and the deconvolution itself scores a ratio of 1.
    from scipy.io import savemat
    from scipy.ndimage import convolve

    from blursynth.dataset.reader import PairDataset

    root = tmp_path / "levin"
    root.mkdir()
    x = _photo(40, 44, seed=15)[..., 1]
    f = np.zeros((7, 7))
    f[3, 0:5] = 1.0
    f[1:3, 5] = 2.0  # a hook: its mirror is a different kernel
    f /= f.sum()
    y = convolve(x, f, mode="reflect")
    savemat(root / "im01_flit01.mat", {"x": x, "y": y, "f": f})
    r = run_cli("dataset", "import", root, "--layout", "levin", "--out", tmp_path / "d")
    assert r.code == 0, r
    row = PairDataset(tmp_path / "d")[0]
    assert default_protocol(row["params"]) == "levin"
    sharp = row["sharp"] / 255.0
    inner = (slice(6, -6), slice(6, -6))
    right = deconvolve_true_kernel(row["blurred"], row["psf"])
    mirrored = deconvolve_true_kernel(row["blurred"], row["psf"][::-1, ::-1])
    assert np.mean((right - sharp)[inner] ** 2) < 0.5 * np.mean((mirrored - sharp)[inner] ** 2)
    s = score("levin", right, row)
    assert s["error_ratio"] == pytest.approx(1.0, abs=1e-12)
    assert (s["shift_y"], s["shift_x"]) == (0, 0)


def test_kohler_import_scores_its_best_frame(tmp_path, run_cli):
    from blursynth.dataset.reader import PairDataset
    from blursynth.sources.photos import save_rgb8

    root = tmp_path / "kohler"
    frames = [_u8(_photo(32, 32, seed=20 + k)) for k in range(5)]
    for k, frame in enumerate(frames, 1):
        (root / "GroundTruth").mkdir(parents=True, exist_ok=True)
        save_rgb8(root / "GroundTruth" / f"GroundTruth1_1_{k}.png", frame)
    (root / "BlurryImages").mkdir()
    save_rgb8(root / "BlurryImages" / "Blurry1_1.png", _u8(np.mean([f / 255.0 for f in frames], 0)))
    r = run_cli("dataset", "import", root, "--layout", "kohler", "--out", tmp_path / "d")
    assert r.code == 0, r
    row = PairDataset(tmp_path / "d")[0]
    assert default_protocol(row["params"]) == "kohler" and len(row["gt_frames"]) == 5
    s = score("kohler", frames[3], row)
    assert s["best_frame"] == 3.0 and s["psnr"] == math.inf


def test_levin_reference_deconvolution_runs_once_per_row(monkeypatch):
    # The blurred input and the output of one row share its reference error.
    from blursynth.train import evaluate
    from blursynth.train.models import CONFIGS, build_models

    calls = []
    real = protocols.deconvolve_true_kernel
    monkeypatch.setattr(protocols, "deconvolve_true_kernel",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    sharp = _u8(_photo(40, 40, seed=30))
    psf = np.ones((5, 5)) / 25
    blurred = _u8(cv2.filter2D(sharp / 255.0, -1, psf, borderType=cv2.BORDER_REFLECT))
    gen, _ = build_models(CONFIGS["small"], seed=0)
    row = {"blurred": blurred, "sharp": sharp, "psf": psf, "params": {}, "id": "a"}
    name, _, before, after = evaluate.score_row(gen, row, "levin", tile=1024, norm_stats="global")
    assert name == "levin" and len(calls) == 1
    assert "error_ratio" in before and "error_ratio" in after


def test_lpips_of_a_region_under_the_backbone_minimum_is_nan():
    from blursynth.nn.lpips import LPIPS

    img = _photo(24, 24, seed=31)
    for net in ("alex", "vgg"):
        model = LPIPS(net).double().eval()
        side = protocols.LPIPS_MIN_SIDE[net]
        assert math.isnan(protocols._lpips_value(model, img[:side - 1, :side - 1],
                                                 img[:side - 1, :side - 1]))
        big = _photo(side, side, seed=32)
        assert math.isfinite(protocols._lpips_value(model, big, big))


def test_kohler_without_frames_is_refused():
    img = _u8(_photo(16, 16))
    with pytest.raises(BadInputError, match="kohler"):
        score("kohler", img, _row(img, img))
