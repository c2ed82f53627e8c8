"""The paired statistics on score vectors with known answers."""

import random

import pytest

from audits.paired import bootstrap_interval, compare, mcnemar


def _noise(n, sd, seed):
    rng = random.Random(seed)
    return [rng.gauss(0, sd) for _ in range(n)]


def _pair(diffs):
    base = {f"c{i}": 1.0 for i in range(len(diffs))}
    return base, {f"c{i}": 1.0 + d for i, d in enumerate(diffs)}


def test_no_regression_passes():
    base, cand = _pair(_noise(60, 0.2, 1))
    c = compare("m", base, cand, max_drop=0.1)
    assert not c.regressed and c.lower < 0 < c.upper and c.cases == 60


def test_clear_regression_fails():
    base, cand = _pair([-0.5 + x for x in _noise(60, 0.2, 2)])
    c = compare("m", base, cand, max_drop=0.1)
    assert c.regressed and c.upper < -0.1 and abs(c.diff + 0.5) < 0.1
    assert c.worst[0] == min(cand, key=cand.get)


def test_one_outlier_decides_nothing():
    diffs = _noise(40, 0.05, 3)
    diffs[17] = -30.0  # one case collapses; the mean moves by 0.75
    base, cand = _pair(diffs)
    c = compare("m", base, cand, max_drop=0.1)
    assert c.diff < -0.7 and not c.regressed  # the interval still reaches zero
    assert c.worst[0] == "c17" and c.lower < -0.1


def test_small_drop_within_allowance_passes():
    base, cand = _pair([-0.05 + x for x in _noise(200, 0.02, 4)])
    assert not compare("m", base, cand, max_drop=0.1).regressed
    assert compare("m", base, cand, max_drop=0.01).regressed


def test_mcnemar_known_values():
    assert mcnemar(0, 0) == 1.0 and mcnemar(5, 5) == 1.0
    assert mcnemar(10, 0) == pytest.approx(2 / 2 ** 10)
    assert mcnemar(1, 0) == 1.0  # one lost case is no evidence at all
    assert mcnemar(8, 2) == pytest.approx(2 * (1 + 10 + 45) / 2 ** 10)


def test_pass_fail_metric_uses_mcnemar():
    base = {f"c{i}": 1.0 for i in range(50)}
    one_lost = {**base, "c3": 0.0}
    c = compare("m.pass", base, one_lost, max_drop=0.05, binary=True)
    assert not c.regressed and (c.lost, c.gained) == (1, 0) and c.p_value == 1.0
    many_lost = {**base, **{f"c{i}": 0.0 for i in range(12)}}
    c = compare("m.pass", base, many_lost, max_drop=0.05, binary=True)
    assert c.regressed and c.lost == 12 and c.p_value < 0.001


def test_bootstrap_is_seeded_and_covers_the_mean():
    d = _noise(30, 1.0, 5)
    assert bootstrap_interval(d, seed=1) == bootstrap_interval(d, seed=1)
    low, high = bootstrap_interval(d)
    assert low < sum(d) / len(d) < high
