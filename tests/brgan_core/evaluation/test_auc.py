from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from brgan_core.evaluation.auc import (
    bootstrap_auc,
    delong_covariance,
    delong_test,
    roc_auc,
)


def _slow_delong(y: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[float, float, float]:
    """DeLong 1988 written out with the m×n kernel matrix (reference for the fast version)."""
    comps = []
    for s in (s1, s2):
        pos, neg = s[y == 1], s[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        comps.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
    (a1, v10_1, v01_1), (a2, v10_2, v01_2) = comps
    s10 = np.cov(np.stack([v10_1, v10_2]))
    s01 = np.cov(np.stack([v01_1, v01_2]))
    m, n = len(v10_1), len(v01_1)
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    return a1, a2, (a1 - a2) / math.sqrt(var)


def test_auc_hand_computed() -> None:
    # positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of 4 pairs ordered
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts one half
    assert roc_auc([1, 0], [0.9, 0.1]) == 1.0


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounding makes ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        ([1, 1], [0.1, 0.2], "at least one"),
        ([0, 1, 2], [0.1, 0.2, 0.3], "only 0"),
        ([0, 1], [0.1], "must match"),
        ([0, 1], [0.1, float("nan")], "finite"),
    ],
)
def test_auc_refuses_bad_input(y: list, s: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        roc_auc(y, s)


def test_bootstrap_ci_is_seeded_and_sensible() -> None:
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(200, int), np.zeros(600, int)]
    s = rng.normal(y * 1.2, 1.0)
    result = bootstrap_auc(y, s, n_boot=1000, seed=5)
    assert result.auc == pytest.approx(roc_auc_score(y, s))
    assert result.ci_low < result.auc < result.ci_high
    assert (result.n_positive, result.n_negative, result.n_boot) == (200, 600, 1000)
    assert bootstrap_auc(y, s, n_boot=1000, seed=5) == result
    assert bootstrap_auc(y, s, n_boot=1000, seed=6) != result
    # the width agrees with DeLong's standard error (both estimate the same sampling spread)
    _, cov = delong_covariance(y, s)
    expected = 2 * norm.ppf(0.975) * math.sqrt(cov[0, 0])
    assert result.ci_high - result.ci_low == pytest.approx(expected, rel=0.2)
    assert str(result).startswith(f"{result.auc:.3f} [")


def test_bootstrap_with_a_single_positive_still_has_an_auc() -> None:
    result = bootstrap_auc([1, 0, 0, 0], [0.5, 0.1, 0.7, 0.2], n_boot=50)
    assert 0 <= result.ci_low <= result.auc <= result.ci_high <= 1


def test_delong_hand_computed() -> None:
    # model 1: positives 0.9, 0.6; negatives 0.7, 0.2 → V10 = [1, .5], V01 = [.5, 1], AUC .75
    # model 2: positives 0.8, 0.05; negatives 0.5, 0.1 → V10 = [1, 0], V01 = [.5, .5], AUC .5
    # var(diff) = (.125 + .5 - 2·.25)/2 + (.125 + 0 - 0)/2 = .125 → z = .25/√.125
    y = [1, 1, 0, 0]
    auc1, auc2, z, p = delong_test(y, [0.9, 0.6, 0.7, 0.2], [0.8, 0.05, 0.5, 0.1])
    assert (auc1, auc2) == (pytest.approx(0.75), pytest.approx(0.5))
    assert z == pytest.approx(0.25 / math.sqrt(0.125))
    assert p == pytest.approx(0.4795, abs=1e-4)


def test_delong_fast_matches_the_definition() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    s1 = np.round(rng.normal(y * 1.0, 1.0), 1)
    s2 = np.round(s1 + rng.normal(y * 0.3, 0.7), 1)
    result = delong_test(y, s1, s2)
    a1, a2, z = _slow_delong(y, s1, s2)
    assert result.auc1 == pytest.approx(a1) and result.auc1 == pytest.approx(roc_auc_score(y, s1))
    assert result.auc2 == pytest.approx(a2)
    assert result.z == pytest.approx(z)
    assert result.p == pytest.approx(2 * norm.sf(abs(z)))


def test_delong_identical_models() -> None:
    y, s = [0, 1, 0, 1, 1], [0.2, 0.9, 0.4, 0.3, 0.8]
    assert tuple(delong_test(y, s, s))[2:] == (0.0, 1.0)
    # a monotone transform ranks the same images the same way: no difference either
    assert delong_test(y, s, np.exp(s)).p == pytest.approx(1.0)


def test_delong_detects_a_real_difference() -> None:
    rng = np.random.default_rng(4)
    y = np.r_[np.ones(300, int), np.zeros(700, int)]
    strong = rng.normal(y * 2.0, 1.0)
    weak = strong + rng.normal(0, 2.0, y.size)
    result = delong_test(y, strong, weak)
    assert result.auc1 > result.auc2 and result.z > 0 and result.p < 0.001
