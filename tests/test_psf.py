import numpy as np
import pytest

from blursynth._rng import sample_rng
from blursynth.ops.psf import psf_centroid, rasterize_psf, rasterize_psfs
from blursynth.ops.trajectory import sample_trajectory

from . import naive


def _traj(i, **kw):
    return sample_trajectory(rng=sample_rng(21, i), **kw)[0]


@pytest.mark.parametrize("i", range(8))
@pytest.mark.parametrize("f", [0.01, 0.1, 0.5, 1.0])
def test_invariants(i, f):
    psf = rasterize_psf(_traj(i), exposure_fraction=f)
    k = psf.shape[0]
    assert psf.dtype == np.float32 and psf.shape == (k, k) and k % 2 == 1 and k >= 3
    assert psf.min() >= 0
    assert abs(float(psf.sum(dtype=np.float64)) - 1) < 1e-6
    cx, cy = psf_centroid(psf)
    assert abs(cx - (k - 1) / 2) < 1e-5 and abs(cy - (k - 1) / 2) < 1e-5


@pytest.mark.parametrize("i", range(4))
@pytest.mark.parametrize("centre", ["mass", "bbox"])
@pytest.mark.parametrize("size", [None, 15])
def test_fast_path_matches_naive(i, centre, size):
    """Same samples, same weights; the fast path sums a run of samples that fall in one
    cell before adding it to the pixels (the naive one adds sample by sample), so the
    float64 sums differ in the last bits and the float32 PSFs agree to 2e-7 absolute
    (about one float32 step at the largest values)."""
    traj = _traj(i, n_samples=400)
    for f in (0.1, 1.0):
        fast = rasterize_psf(traj, exposure_fraction=f, centre=centre, size=size)
        slow = naive.rasterize(traj, f, size=size, centre=centre)
        assert fast.shape == slow.shape
        np.testing.assert_allclose(fast, slow, rtol=0, atol=2e-7)


def test_longer_exposure_never_has_smaller_support():
    for i in range(200):
        traj = _traj(i)
        values, sizes, _, extents = rasterize_psfs(traj[None], (0.01, 0.1, 0.5, 1.0))
        supports, offset = [], 0
        for k in sizes[0]:
            supports.append(int((values[offset : offset + k * k] > 0).sum()))
            offset += k * k
        assert supports == sorted(supports), (i, supports)
        assert list(extents[0]) == sorted(extents[0])


def test_bbox_centring_puts_box_centre_on_centre_pixel():
    traj = np.stack([np.linspace(0, 6, 100) ** 2 / 6, np.zeros(100)], axis=1)  # mass piles up at x=0
    mass = rasterize_psf(traj, centre="mass")
    box = rasterize_psf(traj, centre="bbox")
    k = box.shape[0]
    cols = np.nonzero(box.sum(axis=0))[0]
    assert (cols[0] + cols[-1]) / 2 == (k - 1) / 2
    assert abs(psf_centroid(mass)[0] - (mass.shape[0] - 1) / 2) < 1e-6
    assert abs(psf_centroid(box)[0] - (k - 1) / 2) > 0.5


def test_fixed_size_clips_and_renormalises():
    traj = np.stack([np.linspace(-20, 20, 401), np.zeros(401)], axis=1)
    values, sizes, clipped, _ = rasterize_psfs(traj[None], (1.0,), size=11)
    assert sizes[0, 0] == 11
    assert abs(values.sum() - 1) < 1e-6
    assert 0.6 < clipped[0, 0] < 0.8  # 30 of 40 px of the line fall outside an 11 px square


def test_straight_line_psf_is_a_line():
    traj = np.stack([np.linspace(0, 8, 81), np.zeros(81)], axis=1)
    psf = rasterize_psf(traj)
    assert psf.shape == (9, 9)
    assert np.count_nonzero(psf.sum(axis=1)) == 1  # a single row
    np.testing.assert_allclose(psf[4].sum(), 1, atol=1e-6)


def test_single_sample_is_a_delta():
    psf = rasterize_psf(np.array([[3.3, -1.7]]), exposure_fraction=1.0)
    expected = np.zeros((3, 3), np.float32)
    expected[1, 1] = 1
    np.testing.assert_allclose(psf, expected, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"size": 4}, {"size": 1}, {"exposure_fraction": 0}, {"exposure_fraction": 1.5}, {"centre": "middle"}])
def test_bad_options(kwargs):
    with pytest.raises(ValueError):
        rasterize_psf(_traj(0), **kwargs)


def test_bad_shape():
    with pytest.raises(ValueError, match=r"\(T, 2\)"):
        rasterize_psf(np.zeros((3, 3)))


def test_fixed_size_smaller_than_a_ring_gives_a_centred_delta_not_zeros():
    # A circle of radius 5 centred on its mean: no sample falls within a 3x3 square.
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    traj = np.stack([5 * np.cos(t), 5 * np.sin(t)], axis=1)
    values, sizes, clipped, _ = rasterize_psfs(traj[None], (1.0,), size=3)
    psf = values.reshape(3, 3)
    assert psf.sum() == 1.0 and psf[1, 1] == 1.0 and clipped[0, 0] == 1.0
