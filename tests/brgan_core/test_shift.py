"""The domain-shift guard: fitted on training features, thresholded on validation."""

from __future__ import annotations

import numpy as np
import pytest

from brgan_core.shift import FeatureGuard, fit_guard, guard_of

MIXING = np.random.default_rng(1).normal(size=(6, 40))  # a 6-dim manifold in 40 dims


def _features(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=(n, 6)) @ MIXING + 0.05 * rng.normal(size=(n, 40))


def test_threshold_is_the_validation_percentile_and_shifted_data_is_outside() -> None:
    rng = np.random.default_rng(0)
    train, val, test = (_features(n, rng) for n in (800, 400, 400))
    guard = fit_guard(train, val, percentile=99.0)
    assert np.mean(guard.outside(val)) == pytest.approx(0.01, abs=0.006)
    assert np.mean(guard.outside(test)) < 0.05  # same distribution: few false flags
    shifted = test + 3.0 * np.ones(40)  # every channel moves (another scanner)
    assert np.all(guard.outside(shifted))


def test_off_subspace_features_are_caught_by_the_residual_term() -> None:
    rng = np.random.default_rng(2)
    train, val = (
        rng.normal(size=(500, 3)) @ np.eye(3, 30),
        rng.normal(size=(200, 3)) @ np.eye(3, 30),
    )
    train, val = (
        train + 0.01 * rng.normal(size=train.shape),
        val + 0.01 * rng.normal(size=val.shape),
    )
    guard = fit_guard(train, val, max_components=3)
    off = val.copy()
    off[:, 20] += 1.0  # as large as one in-subspace SD, but in a direction training never moved in
    assert np.all(guard.outside(off))


def test_round_trip_and_malformed() -> None:
    rng = np.random.default_rng(3)
    guard = fit_guard(rng.normal(size=(50, 8)), rng.normal(size=(20, 8)))
    again = FeatureGuard.from_dict(guard.to_dict())
    x = rng.normal(size=(5, 8))
    assert np.allclose(guard.distance(x), again.distance(x), rtol=1e-5)
    assert "outside the model's training distribution" in guard.reason(99.0)
    with pytest.raises(ValueError, match="malformed feature guard"):
        FeatureGuard.from_dict({"version": 1, "mean": [0.0]})
    with pytest.raises(ValueError, match="channels"):
        guard.distance(np.zeros(3))
    with pytest.raises(ValueError):
        fit_guard(np.zeros((2, 8)), np.zeros((2, 8)))

    class Info:
        def __init__(self) -> None:
            self.feature_guard: dict[str, object] = {}

    assert guard_of(Info()) is None
