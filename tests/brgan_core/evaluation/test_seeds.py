"""The across-seed statistics: AUC, patient bootstrap, paired tests, hierarchical CI, Holm."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from brgan_core.evaluation.seeds import (
    fast_auc,
    hierarchical_contrast,
    holm,
    paired_seed_test,
    patient_bootstrap_auc,
)


def _clustered(n_patients: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """4 images per patient whose scores share a strong patient effect (not independent)."""
    labels = np.repeat(rng.random(n_patients) < 0.3, 4).astype(int)
    patient_effect = np.repeat(rng.normal(0, 1.5, n_patients), 4)
    scores = labels * 1.0 + patient_effect + rng.normal(0, 0.3, 4 * n_patients)
    patients = [f"p{i // 4}" for i in range(4 * n_patients)]
    return labels, scores, np.array(patients)


def test_fast_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.4
    s = np.round(rng.normal(size=300) + y, 1)  # many ties
    assert fast_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert np.isnan(fast_auc(np.zeros(5, bool), np.arange(5.0)))


def test_patient_bootstrap_is_wider_than_an_image_bootstrap_on_clustered_data() -> None:
    rng = np.random.default_rng(1)
    y, s, patients = _clustered(150, rng)
    clustered = patient_bootstrap_auc(y, s, list(patients), n_boot=500)
    # treating every image as its own patient is the image bootstrap
    naive = patient_bootstrap_auc(y, s, [str(i) for i in range(len(y))], n_boot=500)
    assert clustered.auc == pytest.approx(naive.auc)
    assert clustered.n_patients == 150 and naive.n_patients == 600
    assert clustered.ci_low <= clustered.auc <= clustered.ci_high
    assert (clustered.ci_high - clustered.ci_low) > 1.3 * (naive.ci_high - naive.ci_low)


def test_paired_seed_test() -> None:
    a = [0.75, 0.78, 0.76, 0.77, 0.74, 0.79]
    same = paired_seed_test(a, a)
    assert same.mean_diff == 0 and same.p_wilcoxon == 1.0
    better = paired_seed_test(a, [x + 0.03 + 0.002 * i for i, x in enumerate(a)])
    assert better.mean_diff == pytest.approx(0.035)
    assert better.p_ttest < 1e-4 and better.t > 0
    assert better.p_wilcoxon == pytest.approx(0.03125)  # 2 / 2**6: the smallest for n = 6
    assert better.sd_a == pytest.approx(float(np.std(a, ddof=1)))
    with pytest.raises(ValueError):
        paired_seed_test([0.7], [0.8])


def test_hierarchical_contrast_covers_seed_noise() -> None:
    rng = np.random.default_rng(2)
    y, s, patients = _clustered(100, rng)
    # six "seeds" of two rows: row b is row a plus a small real gain, both plus seed noise
    a = [s + rng.normal(0, 0.8, len(s)) for _ in range(6)]
    b = [x + 0.4 * y for x in a]
    point, low, high = hierarchical_contrast(y, a, b, list(patients), n_boot=300)
    assert low < point < high
    assert point > 0 and low > 0  # a consistent gain in every seed
    # identical rows: the contrast is exactly 0
    zero = hierarchical_contrast(y, a, a, list(patients), n_boot=50)
    assert zero == (0.0, 0.0, 0.0)


def test_holm_step_down() -> None:
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})
    assert holm({"x": 0.8, "y": 0.9}) == {"x": 1.0, "y": 1.0}
