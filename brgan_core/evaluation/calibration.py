"""Calibration of p(malignant): temperature scaling, ECE, reliability diagram, threshold.

The SR reports "Probability of cancer" (111047), so the score must be a calibrated probability
(DESIGN.md). On the *validation* split:

1. :func:`fit_temperature` — one temperature ``T`` minimizing the negative log-likelihood of
   ``sigmoid(z / T)`` (Guo et al., ICML 2017). ``z`` is the malignancy logit; for the model's
   two logits {benign, malignant} it is their difference, which gives exactly the softmax.
2. :func:`choose_threshold` — the operating threshold on the calibrated probability at a stated
   sensitivity (default 0.90): the highest threshold whose sensitivity reaches the target, so
   specificity is as high as it can be there. An image is called malignant when ``p ≥ threshold``.
3. :func:`expected_calibration_error` and :func:`reliability_diagram` — ECE over equal-width
   bins of p(malignant) (the probability we report, not the top-label confidence) and its plot.

:func:`calibrate` does the three steps and returns what is stored with the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar
from scipy.special import expit

_LOG_T_BOUNDS = (-5.0, 5.0)  # T in [0.0067, 148]


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold on p(malignant) and what it achieves on the data it was chosen on."""

    threshold: float
    sensitivity: float
    specificity: float
    target_sensitivity: float


@dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width bins of predicted probability: counts, mean prediction, observed rate."""

    edges: NDArray[np.float64]
    counts: NDArray[np.int64]
    mean_predicted: NDArray[np.float64]  # NaN in empty bins
    fraction_positive: NDArray[np.float64]  # NaN in empty bins


@dataclass(frozen=True)
class Calibration:
    """Temperature and operating point fitted on validation data (stored with the model)."""

    temperature: float
    operating_point: OperatingPoint
    ece_before: float
    ece_after: float
    n_bins: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def malignancy_logit(logits: ArrayLike) -> NDArray[np.float64]:
    """The malignancy logit: ``z`` for N logits, ``z[:, 1] − z[:, 0]`` for N×2 logits."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 2 and z.shape[1] == 2:
        z = z[:, 1] - z[:, 0]
    if z.ndim != 1:
        raise ValueError(f"logits must be N or N×2 (benign, malignant), got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("logits must be finite (no NaN or inf)")
    return z


def _labels(y_true: ArrayLike, n: int) -> NDArray[np.float64]:
    y = np.asarray(y_true)
    if y.shape != (n,):
        raise ValueError(f"y_true has shape {y.shape}, expected ({n},)")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold only 0 (benign) and 1 (malignant)")
    return y.astype(np.float64)


def _probabilities(p: ArrayLike) -> NDArray[np.float64]:
    a = np.asarray(p, dtype=np.float64)
    if a.ndim != 1 or not np.isfinite(a).all() or (a < 0).any() or (a > 1).any():
        raise ValueError("probabilities must be a 1-D array of values in [0, 1]")
    return a


def _nll(z: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    # -[y log σ(z) + (1-y) log(1-σ(z))] = log(1 + e^z) - y z, computed stably.
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_temperature(logits: ArrayLike, y_true: ArrayLike) -> float:
    """Temperature ``T > 0`` minimizing the NLL of ``sigmoid(z / T)`` on validation data."""
    z = malignancy_logit(logits)
    y = _labels(y_true, len(z))
    result = minimize_scalar(
        lambda log_t: _nll(z / math.exp(log_t), y),
        bounds=_LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(math.exp(result.x))


def apply_temperature(logits: ArrayLike, temperature: float) -> NDArray[np.float64]:
    """Calibrated p(malignant) = ``sigmoid(z / T)``."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, not {temperature}")
    return expit(malignancy_logit(logits) / temperature)


def reliability_bins(
    y_true: ArrayLike, probabilities: ArrayLike, n_bins: int = 10
) -> ReliabilityBins:
    """Bin predictions into ``n_bins`` equal-width bins of [0, 1] (the last one closed)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, not {n_bins}")
    p = _probabilities(probabilities)
    y = _labels(y_true, len(p))
    index = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(index, weights=p, minlength=n_bins) / counts
        rate = np.bincount(index, weights=y, minlength=n_bins) / counts
    return ReliabilityBins(np.linspace(0, 1, n_bins + 1), counts, mean_p, rate)


def expected_calibration_error(
    y_true: ArrayLike, probabilities: ArrayLike, n_bins: int = 10
) -> float:
    """ECE = Σ_b (n_b / N) · |observed rate_b − mean prediction_b| over equal-width bins."""
    bins = reliability_bins(y_true, probabilities, n_bins)
    filled = bins.counts > 0
    gaps = np.abs(bins.fraction_positive[filled] - bins.mean_predicted[filled])
    return float((bins.counts[filled] * gaps).sum() / bins.counts.sum())


def choose_threshold(
    y_true: ArrayLike, probabilities: ArrayLike, sensitivity: float = 0.90
) -> OperatingPoint:
    """Highest threshold with sensitivity ≥ ``sensitivity`` (malignant when ``p ≥ t``)."""
    if not 0 < sensitivity <= 1:
        raise ValueError(f"sensitivity must be in (0, 1], not {sensitivity}")
    p = _probabilities(probabilities)
    y = _labels(y_true, len(p)).astype(bool)
    if y.all() or not y.any():
        raise ValueError("choosing a threshold needs malignant (1) and benign (0) images")
    positives = np.sort(p[y])[::-1]
    k = max(1, math.ceil(sensitivity * len(positives) - 1e-9))
    threshold = float(positives[k - 1])
    called = p >= threshold
    return OperatingPoint(
        threshold=threshold,
        sensitivity=float(called[y].mean()),
        specificity=float((~called[~y]).mean()),
        target_sensitivity=sensitivity,
    )


def calibrate(
    logits: ArrayLike, y_true: ArrayLike, *, sensitivity: float = 0.90, n_bins: int = 10
) -> Calibration:
    """Fit the temperature and the operating threshold on validation logits and labels."""
    z = malignancy_logit(logits)
    temperature = fit_temperature(z, y_true)
    calibrated = apply_temperature(z, temperature)
    return Calibration(
        temperature=temperature,
        operating_point=choose_threshold(y_true, calibrated, sensitivity),
        ece_before=expected_calibration_error(y_true, expit(z), n_bins),
        ece_after=expected_calibration_error(y_true, calibrated, n_bins),
        n_bins=n_bins,
    )


def reliability_diagram(
    y_true: ArrayLike,
    probabilities: ArrayLike | Mapping[str, ArrayLike],
    path: str | Path,
    *,
    n_bins: int = 10,
    title: str = "Reliability diagram",
) -> Path:
    """Write a reliability diagram PNG (observed rate vs mean predicted p, and bin counts).

    ``probabilities`` may be one array or ``{name: array}`` to compare, e.g. before and after
    temperature scaling. Each curve's legend shows its ECE.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    curves = probabilities if isinstance(probabilities, Mapping) else {"model": probabilities}
    fig = Figure(figsize=(5.5, 6.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect")
    width = 1 / n_bins
    for i, (name, p) in enumerate(curves.items()):
        bins = reliability_bins(y_true, p, n_bins)
        ece = expected_calibration_error(y_true, p, n_bins)
        filled = bins.counts > 0
        top.plot(
            bins.mean_predicted[filled],
            bins.fraction_positive[filled],
            marker="o",
            label=f"{name} (ECE {ece:.3f})",
        )
        offset = (i + 0.5) / len(curves) - 0.5
        bottom.bar(
            bins.edges[:-1] + width / 2 + offset * width,
            bins.counts,
            width=width / len(curves),
            label=name,
        )
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="observed fraction malignant", title=title)
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize="small")
    bottom.set(xlabel="predicted p(malignant)", ylabel="images")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
