from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from brgan_core.evaluation.calibration import (
    apply_temperature,
    calibrate,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
    reliability_diagram,
)


def _overconfident(n: int = 20000, factor: float = 3.0, seed: int = 0):  # type: ignore[no-untyped-def]
    """Labels drawn from sigmoid(z); the 'model' reports factor·z (too sure of itself)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < expit(z)).astype(int)
    return factor * z, y


def test_temperature_recovers_the_overconfidence() -> None:
    logits, y = _overconfident()
    assert fit_temperature(logits, y) == pytest.approx(3.0, rel=0.08)


def test_two_logit_output_is_the_softmax() -> None:
    logits, y = _overconfident(n=4000)
    two = np.stack([np.zeros_like(logits) + 0.7, logits + 0.7], axis=1)
    t = fit_temperature(two, y)
    assert t == pytest.approx(fit_temperature(logits, y), rel=1e-6)
    assert apply_temperature(two, t) == pytest.approx(expit(logits / t))


def test_ece_hand_computed() -> None:
    # bin [0.1, 0.2): mean p 0.1, observed 0.5 → gap 0.4; bin [0.9, 1]: mean p 0.9, observed 1
    # → gap 0.1; both bins hold half the images → ECE 0.25
    assert expected_calibration_error([0, 1, 1, 1], [0.1, 0.1, 0.9, 0.9]) == pytest.approx(0.25)
    assert expected_calibration_error([1, 1], [1.0, 1.0]) == 0.0  # p = 1 is in the last bin
    bins = reliability_bins([0, 1, 1, 1], [0.1, 0.1, 0.9, 0.9], n_bins=2)
    assert bins.counts.tolist() == [2, 2]
    assert bins.fraction_positive.tolist() == [0.5, 1.0]


def test_temperature_scaling_lowers_ece() -> None:
    logits, y = _overconfident(n=5000)
    result = calibrate(logits, y)
    assert result.ece_after < result.ece_before / 2
    assert result.ece_after < 0.03
    op = result.operating_point
    assert op.sensitivity >= 0.90 and op.target_sensitivity == 0.90
    assert result.to_dict()["operating_point"]["threshold"] == op.threshold  # type: ignore[index]


def test_threshold_hand_computed() -> None:
    positives = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.2]
    negatives = [0.1, 0.3, 0.5, 0.6, 0.7]
    y = [1] * 10 + [0] * 5
    p = positives + negatives
    op = choose_threshold(y, p)  # 9 of 10 positives → threshold = 9th largest positive
    assert (op.threshold, op.sensitivity, op.specificity) == (0.55, 0.9, 0.6)
    op = choose_threshold(y, p, sensitivity=1.0)
    assert (op.threshold, op.sensitivity, op.specificity) == (0.2, 1.0, 0.2)
    op = choose_threshold(y, p, sensitivity=0.7)  # 0.7·10 must not round up to 8
    assert (op.threshold, op.sensitivity, op.specificity) == (0.65, 0.7, 0.8)


def test_threshold_with_ties_reports_what_it_achieves() -> None:
    op = choose_threshold([1, 1, 1, 0], [0.5, 0.5, 0.9, 0.5], sensitivity=0.5)
    assert op.threshold == 0.5 and op.sensitivity == 1.0 and op.specificity == 0.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: choose_threshold([1, 1], [0.2, 0.3]), "malignant"),
        (lambda: choose_threshold([1, 0], [0.2, 1.3]), r"\[0, 1\]"),
        (lambda: choose_threshold([1, 0], [0.2, 0.3], sensitivity=0), "sensitivity"),
        (lambda: fit_temperature(np.zeros((3, 3)), [0, 1, 0]), "N×2"),
        (lambda: apply_temperature([0.0], 0.0), "temperature"),
        (lambda: expected_calibration_error([0, 1], [0.2, 0.3], n_bins=0), "n_bins"),
    ],
)
def test_refuses_bad_input(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()


def test_reliability_diagram_png(tmp_path: Path) -> None:
    logits, y = _overconfident(n=3000)
    t = fit_temperature(logits, y)
    path = reliability_diagram(
        y,
        {"raw": expit(logits), "temperature-scaled": apply_temperature(logits, t)},
        tmp_path / "reliability.png",
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    single = reliability_diagram(y, expit(logits), tmp_path / "one.png", n_bins=5)
    assert single.stat().st_size > 1000
