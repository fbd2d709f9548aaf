import numpy as np
import pytest

from blursynth._rng import sample_rng
from blursynth.trajectory import (
    EXPL_CHOICES, TrajectoryConfig, draw_trajectory_numbers, sample_trajectory, trajectory_from_numbers,
)

from . import naive


@pytest.mark.parametrize("index", range(6))
def test_fast_path_matches_naive_reference_exactly(index):
    config = TrajectoryConfig(n_samples=600, length_px=45.0)
    numbers = draw_trajectory_numbers(config, rng=sample_rng(3, index))
    fast = trajectory_from_numbers(numbers, config)
    slow = naive.trajectory(numbers, config.n_samples, config.length_px)
    np.testing.assert_array_equal(fast, slow)


def test_naive_reference_exercises_big_shakes():
    # Force frequent events so the impulse branch is compared too.
    config = TrajectoryConfig(n_samples=500, expl=1.0, big_shake_max=0.5)
    numbers = draw_trajectory_numbers(config, rng=sample_rng(0, 1))
    assert numbers.event_steps.size > 10
    np.testing.assert_array_equal(trajectory_from_numbers(numbers, config), naive.trajectory(numbers, 500, 60.0))


def test_path_length_and_start():
    traj, params = sample_trajectory(rng=sample_rng(1, 2))
    assert traj.shape == (2000, 2)
    np.testing.assert_array_equal(traj[0], [0.0, 0.0])
    steps = np.hypot(*np.diff(traj, axis=0).T)
    np.testing.assert_allclose(steps, 60.0 / 1999, rtol=1e-9)
    assert params["expl"] in EXPL_CHOICES
    assert 0 <= params["centripetal"] <= 0.7 and 0 <= params["prob_big_shake"] <= 0.2
    assert 0 <= params["gaussian_shake"] <= 10 and 0 <= params["angle_rad"] < 2 * np.pi


def test_same_key_same_trajectory_other_key_differs():
    a, _ = sample_trajectory(rng=sample_rng(5, 9))
    b, _ = sample_trajectory(rng=sample_rng(5, 9))
    c, _ = sample_trajectory(rng=sample_rng(5, 10))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_given_expl_is_used_and_overrides_apply():
    _, params = sample_trajectory(rng=0, expl=0.004, n_samples=50, length_px=10.0)
    assert params["expl"] == 0.004


def test_geometric_event_gaps_match_bernoulli_rate():
    # Exactly-in-distribution claim: the mean event count equals (T-1) * p * expl.
    config = TrajectoryConfig(n_samples=1001, expl=0.5, big_shake_max=0.2)
    counts, expected = [], []
    for i in range(400):
        nums = draw_trajectory_numbers(config, rng=sample_rng(11, i))
        counts.append(nums.event_steps.size)
        expected.append(1000 * nums.prob_big_shake * nums.expl)
        assert np.all(np.diff(nums.event_steps) > 0)
        assert nums.event_steps.size == 0 or (nums.event_steps[0] >= 0 and nums.event_steps[-1] < 1000)
    # Poisson-like count: sum of 400 draws with mean ~ 25 each; 5 sigma bound.
    total, mean = sum(counts), sum(expected)
    assert abs(total - mean) < 5 * np.sqrt(mean)


@pytest.mark.parametrize(
    "kwargs",
    [{"n_samples": 1}, {"length_px": 0.0}, {"expl": 0.0}, {"expl": 1.5}, {"big_shake_max": 2.0}, {"centripetal_max": -1}],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        TrajectoryConfig(**kwargs)


def test_batched_lanes_match_one_at_a_time_exactly():
    from blursynth.trajectory import sample_trajectories

    config = TrajectoryConfig(n_samples=700, big_shake_max=0.5, expl=0.5)  # many big shakes too
    indices = list(range(5, 24))  # not a multiple of the lane count
    trajs, params, n_events = sample_trajectories(config, 9, indices)
    for j, i in enumerate(indices):
        numbers = draw_trajectory_numbers(config, rng=sample_rng(9, i))
        np.testing.assert_array_equal(trajs[j], trajectory_from_numbers(numbers, config))
        assert params[j, 0] == numbers.expl and n_events[j] == numbers.event_steps.size
    assert n_events.sum() > 20
