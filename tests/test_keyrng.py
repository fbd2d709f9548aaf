import math

import numpy as np
import pytest
from scipy import stats

from blursynth._keyrng import ZIG_F, ZIG_R, ZIG_W, keyed_draws, ziggurat_tables

from . import naive


def test_tables_give_every_layer_the_same_area():
    widths = ZIG_W * 2.0**53
    v = ZIG_R * math.exp(-0.5 * ZIG_R**2) + math.sqrt(math.pi / 2) * math.erfc(ZIG_R / math.sqrt(2))
    # Layer i >= 1 is [0, width_i] x [f_i, f_{i+1}]; the base's virtual width holds the tail.
    areas = widths[1:] * (ZIG_F[2:] - ZIG_F[1:-1])
    np.testing.assert_allclose(areas, v, rtol=1e-9)
    np.testing.assert_allclose(widths[0] * ZIG_F[1], v, rtol=1e-12)
    assert widths[1] == ZIG_R and np.all(np.diff(widths[1:]) < 0)
    assert ZIG_R == pytest.approx(3.6541528853610088, rel=1e-12)  # the known 256-layer edge


def test_tables_for_another_layer_count_are_consistent():
    k, w, f, r = ziggurat_tables(128)
    assert r == pytest.approx(3.442619855899, rel=1e-9)  # Marsaglia & Tsang's 128-layer edge
    assert k.dtype == np.int64 and np.all(k < 2**53) and np.all(k >= 0)


def test_stream_matches_plain_python_reference_bit_for_bit():
    ref = naive.KeyedStream(7, 12345, 2)
    bits = keyed_draws(7, 12345, 50, kind="bits53", stream=2)
    assert bits.tolist() == [float(ref.word() >> 11) for _ in range(50)]
    ref = naive.KeyedStream(7, 12345, 2)
    assert keyed_draws(7, 12345, 50, kind="uniform", stream=2).tolist() == [ref.uniform() for _ in range(50)]
    # 20,000 normals take the rare paths (wedges ~1%, tail ~0.03%) many times.
    ref = naive.KeyedStream(3, 9)
    fast = keyed_draws(3, 9, 20000)
    slow = np.array([ref.normal() for _ in range(20000)])
    np.testing.assert_array_equal(fast, slow)
    assert np.abs(fast).max() > ZIG_R  # the tail was drawn at least once


def test_normals_follow_the_standard_normal():
    x = keyed_draws(0, 0, 1_000_000)
    assert stats.kstest(x, "norm").pvalue > 1e-3
    assert abs(x.mean()) < 5e-3 and abs(x.var() - 1) < 5e-3
    # Tails, where a wrong wedge or tail sampler shows: counts beyond 3 and 3.65 (= r) sigma.
    for z in (3.0, ZIG_R):
        expected = 2 * stats.norm.sf(z) * x.size
        assert abs((np.abs(x) > z).sum() - expected) < 5 * math.sqrt(expected)


def test_uniforms_are_uniform_and_keys_are_independent():
    u = keyed_draws(1, 2, 200_000, kind="uniform")
    assert u.min() >= 0 and u.max() < 1 and stats.kstest(u, "uniform").pvalue > 1e-3
    # Neighbouring keys give unrelated streams.
    a, b = keyed_draws(1, 2, 100_000), keyed_draws(1, 3, 100_000)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.02
    assert not np.array_equal(keyed_draws(1, 2, 10), keyed_draws(2, 1, 10))
    assert not np.array_equal(keyed_draws(1, 2, 10), keyed_draws(1, 2, 10, stream=1))


def test_bad_keys_and_kinds_are_refused():
    with pytest.raises(ValueError, match="seed"):
        keyed_draws(-1, 0, 3)
    with pytest.raises(ValueError, match="kind"):
        keyed_draws(0, 0, 3, kind="gamma")
