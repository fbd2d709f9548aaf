"""Convolution engine: invariants, FFT vs direct vs scipy, borders, alignment, gradients."""

import numpy as np
import pytest
import scipy.signal
import torch

from blursynth.ops.convolve import (
    check_fits, choose_method, convolve, convolve_many, convolve_padded, output_shape, pad_image,
)
from blursynth.errors import BadInputError

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def sparse_psf(k, taps, seed=0):
    rng = np.random.default_rng(seed)
    psf = np.zeros((k, k), np.float32)
    idx = rng.integers(0, k, (taps, 2))
    psf[idx[:, 0], idx[:, 1]] = rng.random(taps).astype(np.float32) + 0.1
    return psf / psf.sum()


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.mark.parametrize("method", ["fft", "direct"])
@pytest.mark.parametrize("border", ["reflect", "wrap", "valid"])
def test_constant_image_stays_constant(method, border, device):
    x = torch.full((1, 3, 20, 27), 0.37, device=device)
    y = convolve(x, sparse_psf(9, 12), border=border, method=method)
    assert y.device == x.device
    torch.testing.assert_close(y, torch.full_like(y, 0.37), atol=2e-6, rtol=0)


@pytest.mark.parametrize("method", ["fft", "direct"])
def test_delta_psf_is_identity(method, device):
    x = torch.rand(2, 3, 17, 23, device=device)
    delta = torch.zeros(7, 7)
    delta[3, 3] = 1
    torch.testing.assert_close(convolve(x, delta, method=method), x, atol=1e-6, rtol=0)


@pytest.mark.parametrize("border,np_mode", [("reflect", "reflect"), ("wrap", "wrap")])
def test_fft_and_direct_agree_with_scipy(border, np_mode):
    rng = np.random.default_rng(1)
    img = rng.random((2, 3, 31, 40)).astype(np.float32)
    psf = sparse_psf(11, 30, seed=2)
    padded = np.pad(img, ((0, 0), (0, 0), (5, 5), (5, 5)), mode=np_mode)
    ref = np.stack([[scipy.signal.fftconvolve(padded[b, c].astype(np.float64), psf, mode="valid")
                     for c in range(3)] for b in range(2)])
    for method in ("fft", "direct"):
        out = convolve(torch.from_numpy(img), psf, border=border, method=method).numpy()
        np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)


def test_valid_border_crops_and_matches_scipy():
    rng = np.random.default_rng(3)
    img = rng.random((1, 1, 25, 33)).astype(np.float32)
    psf = sparse_psf(9, 20)
    out = convolve(torch.from_numpy(img), psf, border="valid")
    assert out.shape[-2:] == output_shape(25, 33, 9, "valid") == (17, 25)
    ref = scipy.signal.fftconvolve(img[0, 0], psf, mode="valid")
    np.testing.assert_allclose(out[0, 0].numpy(), ref, atol=1e-5)


def test_shift_direction_is_true_convolution():
    # A single tap at (+2, +1) from the centre moves content down 2, right 1.
    x = torch.zeros(1, 1, 15, 15)
    x[0, 0, 5, 5] = 1
    psf = torch.zeros(7, 7)
    psf[3 + 2, 3 + 1] = 1
    for method in ("fft", "direct"):
        y = convolve(x, psf, method=method)
        assert tuple(torch.nonzero(y > 0.5)[0, 2:].tolist()) == (7, 6)


def test_centroid_of_blurred_dot_matches_dot():
    # A PSF centred on its centre of mass keeps the pair aligned.
    rng = np.random.default_rng(4)
    psf = np.zeros((15, 15), np.float64)
    idx = rng.integers(2, 13, (25, 2))
    psf[idx[:, 0], idx[:, 1]] = rng.random(25) + 0.1
    psf /= psf.sum()
    cy, cx = np.array(np.nonzero(np.ones_like(psf))).reshape(2, 15, 15)
    my, mx = (psf * cy).sum(), (psf * cx).sum()
    # Shift PSF support so its centroid sits on the centre (integer part),
    # then put the sub-pixel remainder on the test's tolerance.
    psf = np.roll(psf, (7 - int(round(my)), 7 - int(round(mx))), axis=(0, 1))
    my, mx = (psf * cy).sum(), (psf * cx).sum()
    x = torch.zeros(1, 1, 41, 41, dtype=torch.float64)
    x[0, 0, 20, 20] = 1
    y = convolve(x, torch.from_numpy(psf))[0, 0].numpy()
    gy, gx = np.mgrid[:41, :41]
    assert (y * gy).sum() / y.sum() == pytest.approx(20 + (my - 7), abs=1e-9)
    assert (y * gx).sum() / y.sum() == pytest.approx(20 + (mx - 7), abs=1e-9)
    assert abs(my - 7) <= 0.5 and abs(mx - 7) <= 0.5


def test_energy_preserved_with_wrap():
    x = torch.rand(1, 3, 24, 30, dtype=torch.float64)
    y = convolve(x, sparse_psf(9, 15).astype(np.float64), border="wrap")
    torch.testing.assert_close(y.sum(), x.sum())


def test_per_sample_psfs_and_batch_invariance():
    x = torch.rand(3, 3, 32, 32)
    psfs = [sparse_psf(5, 4), sparse_psf(9, 20, seed=1), sparse_psf(15, 60, seed=2)]
    many = convolve_many(x, psfs)
    for i, p in enumerate(psfs):
        alone = convolve(x[i : i + 1], p)[0]
        assert torch.equal(many[i], alone)
    valid = convolve_many(x, psfs, border="valid")
    assert [tuple(v.shape) for v in valid] == [(3, 28, 28), (3, 24, 24), (3, 18, 18)]


def test_stacked_psfs_match_loop():
    x = torch.rand(2, 1, 20, 20, dtype=torch.float64)
    psfs = torch.from_numpy(np.stack([sparse_psf(7, 9), sparse_psf(7, 9, seed=5)])).double()
    y = convolve(x, psfs, method="fft")
    for i in range(2):
        torch.testing.assert_close(y[i], convolve(x[i : i + 1], psfs[i], method="direct")[0])


def test_method_choice_by_cost():
    few = torch.from_numpy(sparse_psf(65, 3))
    many = torch.rand(65, 65)
    assert choose_method(few, (784, 1344)) == "direct"
    assert choose_method(many, (784, 1344)) == "fft"


def test_follows_dtype():
    x = torch.rand(1, 1, 12, 12, dtype=torch.float64)
    assert convolve(x, sparse_psf(3, 3)).dtype == torch.float64


@pytest.mark.parametrize("method", ["fft", "direct"])
def test_gradcheck_float64(method):
    torch.manual_seed(0)  # test-local; the library never seeds
    x = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    psf = torch.rand(3, 3, dtype=torch.float64)
    psf = (psf / psf.sum()).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: convolve_padded(pad_image(a, 1, "reflect"), b, method=method), (x, psf)
    )


def test_psf_larger_than_image_is_clear_error():
    with pytest.raises(BadInputError, match="PSF is 31x31"):
        convolve(torch.rand(1, 3, 20, 40), np.ones((31, 31)) / 961)
    check_fits(31, 31, 31, "valid")


@pytest.mark.parametrize("psf,match", [
    (np.ones((4, 4)), "odd"), (np.ones((3, 5)), "square"), (np.ones((1, 1, 3, 3)), "Squeeze"), (np.ones((2, 3, 3)), "2 PSFs for a batch of 1"),
    (-np.eye(3), "non-negative"), (np.zeros((3, 3)), "sums to 0"),
])
def test_bad_psf(psf, match):
    with pytest.raises(BadInputError, match=match):
        convolve(torch.rand(1, 1, 9, 9), psf)


def test_bad_images_and_border():
    with pytest.raises(BadInputError, match="batch axis"):
        convolve(torch.rand(3, 9, 9), np.ones((3, 3)) / 9)
    with pytest.raises(BadInputError, match="float"):
        convolve(torch.zeros(1, 3, 9, 9, dtype=torch.uint8), np.ones((3, 3)) / 9)
    with pytest.raises(BadInputError, match="border"):
        convolve(torch.rand(1, 1, 9, 9), np.ones((3, 3)) / 9, border="zero")


def test_cpu_tap_kernel_matches_torch_loop_and_ignores_thread_count():
    import numba

    from blursynth.ops.convolve import _convolve_direct

    x = torch.rand(2, 3, 30, 41)
    psf = torch.from_numpy(sparse_psf(13, 37, seed=9))  # 37 taps: exercises the 4-tap tail
    padded = pad_image(x, 6, "reflect")
    fast = _convolve_direct(padded, psf)
    slow = _convolve_direct(padded, psf.clone().requires_grad_(True)).detach()
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _convolve_direct(padded, psf)
        torch.set_num_threads(2)  # the Numba kernel follows torch's thread count
        two = _convolve_direct(padded, psf)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two) and torch.equal(one, fast)
    assert numba.config.NUMBA_NUM_THREADS >= 1


def test_fft_path_ignores_thread_count():
    # Workers run with one thread, a single process with several: same bytes either way.
    x = torch.rand(1, 3, 50, 70)
    psf = torch.rand(15, 15)
    psf /= psf.sum()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = convolve(x, psf, method="fft")
        torch.set_num_threads(2)
        two = convolve(x, psf, method="fft")
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)


def test_cpu_tap_kernel_restores_numba_thread_count():
    # Numba's thread count is process-wide: a convolution under one_thread (as defocus runs
    # them) must hand back the count it found, or every later Numba loop runs on one thread.
    import numba

    from blursynth._threads import one_thread
    from blursynth.ops.convolve import _convolve_direct

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs Numba with at least two threads")
    padded = pad_image(torch.rand(1, 1, 12, 12), 2, "reflect")
    psf = torch.from_numpy(sparse_psf(5, 6, seed=1))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(2)
        with one_thread():
            _convolve_direct(padded, psf)
        assert numba.get_num_threads() == 2
    finally:
        numba.set_num_threads(before)


def test_rows_in_pairs_give_the_bytes_of_rows_one_by_one():
    # The pair kernel feeds two rows from one load; each row still sums its own taps in tap order
    # (a weight of 0 where the other row has a tap adds 0 * x, no change), so the bytes are the
    # row kernel's: every shape of PSF (trajectories, streaks, points, dense), odd and even
    # heights, several planes, float32 and float64, one thread or two.
    import numba

    from blursynth.ops._convolve_taps import _taps_kernel, pair_schedule
    from blursynth.ops.convolve import psf_taps

    rng = np.random.default_rng(5)
    psfs = [sparse_psf(13, n, seed=n) for n in (1, 2, 7, 8, 9, 16, 17, 40, 169)]
    streak = np.zeros((9, 9), np.float32)
    streak[4, :] = 1 / 9
    column = np.zeros((9, 9), np.float32)
    column[:, 4] = 1 / 9
    psfs += [streak, column, np.full((5, 5), 1 / 25, np.float32)]
    from blursynth.ops.psf import rasterize_psf
    from blursynth.ops.trajectory import sample_trajectory

    for seed, exposure in ((1, 1.0), (2, 0.5), (3, 0.1)):  # the PSFs blur draws
        path, _ = sample_trajectory(rng=seed, length_px=12.0)
        psfs.append(rasterize_psf(path, exposure_fraction=exposure, size=15).astype(np.float32))
    before = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            for i, psf in enumerate(psfs):
                for dtype, height in ((np.float32, 40), (np.float32, 41), (np.float64, 33)):
                    x = rng.random((3, height, 47)).astype(dtype)
                    k = psf.shape[0]
                    dy, dx, w = psf_taps(psf)
                    w = w.astype(dtype)
                    rows = np.empty((3, height - k + 1, 47 - k + 1), dtype)
                    pairs = np.full_like(rows, np.nan)
                    _taps_kernel("rows")(x, dy, dx, w, rows)
                    _taps_kernel("pairs")(x, *pair_schedule(dy, dx, w), pairs)
                    assert np.array_equal(rows.view(np.uint8), pairs.view(np.uint8)), (i, dtype, height)
    finally:
        numba.set_num_threads(before)


def test_a_trajectory_psf_takes_the_pair_kernel_and_a_streak_the_row_kernel(monkeypatch):
    from blursynth.ops import _convolve_taps as ct

    used = []
    real = ct._taps_kernel
    monkeypatch.setattr(ct, "_taps_kernel", lambda kind="rows": used.append(kind) or real(kind))
    x = np.random.default_rng(0).random((3, 80, 90), dtype=np.float32)
    path = np.zeros((15, 15), np.float32)
    for i in range(12):  # a diagonal path, two pixels thick: vertical neighbours everywhere
        path[i, i] = path[i + 1, i] = 1
    streak = np.zeros((15, 15), np.float32)
    streak[7, :] = 1
    ct._taps_numpy(x, path / path.sum())
    ct._taps_numpy(x, streak / streak.sum())
    sharpen = path / path.sum()
    sharpen[0, 0] = -0.1  # a weight below 0: row by row (a pair's 0 * x is exact for positive weights)
    ct._taps_numpy(x, sharpen)
    assert used == ["pairs", "rows", "rows"]


def test_taps_per_pass_do_not_change_the_bytes_and_planes_need_no_torch():
    # The row kernel sums eight taps per pass, then four, then one: a chain of FMAs in tap order
    # either way, so every tap count gives the bytes of one tap per pass (compiled here with the
    # same contraction); and convolve_planes (NumPy in, NumPy out) gives convolve_padded's numbers.
    import numba

    from blursynth.ops._convolve_taps import _taps_kernel
    from blursynth.ops.convolve import convolve_padded, convolve_planes, psf_taps

    @numba.njit(fastmath={"contract"})
    def one_per_pass(padded, dy, dx, w, out):
        planes, ho, wo = out.shape
        for p in range(planes):
            for y in range(ho):
                acc = np.zeros(wo, out.dtype)
                for t in range(dy.shape[0]):
                    wt = w[t]
                    s = padded[p, y + dy[t], dx[t] : dx[t] + wo]
                    for x in range(wo):
                        acc[x] += wt * s[x]
                out[p, y, :] = acc

    x = np.random.default_rng(3).random((2, 40, 57), dtype=np.float32)
    for n in (1, 3, 4, 5, 8, 9, 12, 15, 16, 21, 37):
        psf = sparse_psf(13, n, seed=n)
        dy, dx, w = psf_taps(psf)
        w = w.astype(np.float32)
        a = np.empty((2, 28, 45), np.float32)
        b = np.empty_like(a)
        _taps_kernel()(x, dy, dx, w, a)
        one_per_pass(x, dy, dx, w, b)
        assert np.array_equal(a, b), n
        planes = convolve_planes(x, psf)
        assert np.array_equal(planes, convolve_padded(torch.from_numpy(x)[None], psf)[0].numpy())
