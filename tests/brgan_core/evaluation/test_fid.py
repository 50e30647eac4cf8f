from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from brgan_core.evaluation.fid import feature_statistics, fid, frechet_distance, mean_fid


def _sqrtm_reference(mu1, s1, mu2, s2) -> float:  # type: ignore[no-untyped-def]
    """The usual formula with scipy.linalg.sqrtm (pytorch-fid style)."""
    covmean = linalg.sqrtm(s1 @ s2).real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1 + s2 - 2 * covmean))


def test_identical_distributions() -> None:
    s = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert frechet_distance([1, 2], s, [1, 2], s) == pytest.approx(0.0, abs=1e-10)


def test_diagonal_gaussians_known_answer() -> None:
    # |Δμ|² = 3² + 4² = 25; Σ (σ₁ − σ₂)² = (1 − 2)² + (2 − 3)² = 2
    d = frechet_distance([0, 0], np.diag([1.0, 4.0]), [3, 4], np.diag([4.0, 9.0]))
    assert d == pytest.approx(27.0)


def test_one_dimensional() -> None:
    assert frechet_distance(0.0, 1.0, 1.0, 4.0) == pytest.approx(1 + (1 - 2) ** 2)


def test_matches_sqrtm_on_full_covariances() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
        _sqrtm_reference(mu1, s1, mu2, s2), rel=1e-8
    )


def test_samples_approach_the_analytic_distance() -> None:
    rng = np.random.default_rng(1)
    f1 = rng.normal([0, 0, 0], [1, 2, 1], size=(20000, 3))
    f2 = rng.normal([1, 0, 2], [1, 1, 3], size=(20000, 3))
    assert fid(f1, f2) == pytest.approx(5 + 1 + 4, rel=0.03)
    mu, sigma = feature_statistics(f1)
    assert mu.shape == (3,) and sigma.shape == (3, 3)


def test_singular_covariance_stays_finite() -> None:
    rng = np.random.default_rng(2)
    f1, f2 = rng.normal(size=(5, 64)), rng.normal(size=(5, 64)) + 1
    d = fid(f1, f2)
    assert np.isfinite(d) and d > 0
    assert fid(f1, f1) == pytest.approx(0.0, abs=1e-6)


def test_refuses_bad_shapes() -> None:
    with pytest.raises(ValueError, match="N×D"):
        fid(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="dimensions differ"):
        fid(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="shapes do not match"):
        frechet_distance([0, 0], np.eye(3), [0, 0], np.eye(2))


def test_few_samples_path_equals_the_covariance_formula() -> None:
    rng = np.random.default_rng(3)
    f1 = rng.normal(size=(12, 40))
    f2 = rng.normal(size=(15, 40)) @ rng.normal(size=(40, 40)) * 0.3 + 0.5
    expected = frechet_distance(*feature_statistics(f1), *feature_statistics(f2))
    assert fid(f1, f2) == pytest.approx(expected, rel=1e-7)


def test_mean_fid_over_spatial_positions() -> None:
    rng = np.random.default_rng(4)
    target = rng.normal(size=(3, 8, 6, 5))
    generated = target.copy()
    generated[:, :, 0:2, 0:2] += 10.0  # the "lesion" area differs
    assert mean_fid(target, target) == pytest.approx(0.0, abs=1e-9)
    assert mean_fid(target, generated) > 1.0
    healthy = np.ones((3, 6, 5), dtype=bool)
    healthy[:, 0:2, 0:2] = False
    assert mean_fid(target, generated, masks1=healthy, masks2=healthy) == pytest.approx(
        0.0, abs=1e-9
    )
    # one image's value is the FID of its positions
    one = fid(target[0].reshape(8, -1).T, generated[0].reshape(8, -1).T)
    assert mean_fid(target[:1], generated[:1]) == pytest.approx(one)
    with pytest.raises(ValueError, match="N×C×H×W"):
        mean_fid(target, target[:, :4])
    with pytest.raises(ValueError, match="positions"):
        mean_fid(target, target, masks1=np.ones((3, 2, 2), dtype=bool))
