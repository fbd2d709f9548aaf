import numpy as np
import pytest

from blursynth._rng import sample_rng
from blursynth.ops.trajectory import EXPL_CHOICES, TrajectoryConfig, sample_trajectories, sample_trajectory

from . import naive


@pytest.mark.parametrize("index", range(4))
def test_fast_path_matches_naive_reference_exactly(index):
    config = TrajectoryConfig(n_samples=600, length_px=45.0)
    traj, params = sample_trajectory(config, rng=(3, index))
    slow, slow_params, events = naive.trajectory(3, index, 600, 45.0)
    np.testing.assert_array_equal(traj, slow)
    assert tuple(params[k] for k in ("expl", "centripetal", "prob_big_shake", "gaussian_shake", "angle_rad")) == slow_params
    assert params["n_big_shakes"] == len(events)


def test_naive_reference_exercises_big_shakes():
    # Force frequent events so the impulse branch is compared too.
    config = TrajectoryConfig(n_samples=500, expl=1.0, big_shake_max=0.5)
    traj, params = sample_trajectory(config, rng=(0, 1))
    slow, _, events = naive.trajectory(0, 1, 500, 60.0, expl=1.0, big_shake_max=0.5)
    assert len(events) > 10 and params["n_big_shakes"] == len(events)
    np.testing.assert_array_equal(traj, slow)


def test_path_length_and_start():
    traj, params = sample_trajectory(rng=(1, 2))
    assert traj.shape == (2000, 2)
    np.testing.assert_array_equal(traj[0], [0.0, 0.0])
    steps = np.hypot(*np.diff(traj, axis=0).T)
    np.testing.assert_allclose(steps, 60.0 / 1999, rtol=1e-9)
    assert params["expl"] in EXPL_CHOICES
    assert 0 <= params["centripetal"] <= 0.7 and 0 <= params["prob_big_shake"] <= 0.2
    assert 0 <= params["gaussian_shake"] <= 10 and 0 <= params["angle_rad"] < 2 * np.pi


def test_same_key_same_trajectory_other_key_differs():
    a, _ = sample_trajectory(rng=(5, 9))
    b, _ = sample_trajectory(rng=(5, 9))
    c, _ = sample_trajectory(rng=(5, 10))
    d, _ = sample_trajectory(rng=(5, 9, 1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)
    # A generator gives the trajectory of the key it draws.
    e, _ = sample_trajectory(rng=sample_rng(5, 9))
    f, _ = sample_trajectory(rng=(int(sample_rng(5, 9).integers(2**63)), 0))
    np.testing.assert_array_equal(e, f)


def test_given_expl_is_used_and_overrides_apply():
    traj, params = sample_trajectory(rng=0, expl=0.004, n_samples=50, length_px=10.0)
    assert params["expl"] == 0.004 and traj.shape == (50, 2)


def test_bad_rng_is_refused():
    with pytest.raises(TypeError, match="rng"):
        sample_trajectory(rng="seven")
    with pytest.raises(ValueError, match="index"):
        sample_trajectories(TrajectoryConfig(n_samples=10), 0, [-1])


def test_geometric_event_gaps_match_bernoulli_rate():
    # Exactly-in-distribution claim: the mean event count equals (T-1) * p * expl.
    config = TrajectoryConfig(n_samples=1001, expl=0.5, big_shake_max=0.2)
    _, params, counts = sample_trajectories(config, 11, range(400))
    expected = 1000 * params[:, 2] * params[:, 0]
    # Poisson-like count: sum of 400 draws with mean ~ 25 each; 5 sigma bound.
    total, mean = counts.sum(), expected.sum()
    assert abs(total - mean) < 5 * np.sqrt(mean)
    _, _, events = naive.trajectory(11, 3, 1001, expl=0.5, big_shake_max=0.2)
    assert all(0 <= a < b < 1000 for a, b in zip(events, events[1:]))


def test_drawn_parameters_are_uniform_over_their_ranges():
    _, params, _ = sample_trajectories(TrajectoryConfig(n_samples=20), 2, range(4000))
    from scipy import stats

    for col, top in ((1, 0.7), (2, 0.2), (3, 10.0), (4, 2 * np.pi)):
        assert stats.kstest(params[:, col] / top, "uniform").pvalue > 1e-3
    values, counts = np.unique(params[:, 0], return_counts=True)
    assert set(values) == set(EXPL_CHOICES) and counts.min() > 4000 / 6 * 0.8


@pytest.mark.parametrize(
    "kwargs",
    [{"n_samples": 1}, {"length_px": 0.0}, {"expl": 0.0}, {"expl": 1.5}, {"big_shake_max": 2.0}, {"centripetal_max": -1}],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        TrajectoryConfig(**kwargs)


def test_batched_lanes_match_one_at_a_time_exactly():
    config = TrajectoryConfig(n_samples=700, big_shake_max=0.5, expl=0.5)  # many big shakes too
    indices = list(range(5, 24))  # not a multiple of the lane count
    trajs, params, n_events = sample_trajectories(config, 9, indices)
    for j, i in enumerate(indices):
        traj, p = sample_trajectory(config, rng=(9, i))
        np.testing.assert_array_equal(trajs[j], traj)
        assert params[j, 0] == p["expl"] and n_events[j] == p["n_big_shakes"]
    assert n_events.sum() > 20
