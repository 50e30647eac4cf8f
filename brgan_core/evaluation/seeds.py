"""Statistics for "does the method help": across training seeds, clustered by patient.

A single model's AUC CI must resample *patients*, not images: the four images of a patient are
not independent (:func:`patient_bootstrap_auc`). A claim about a *method* must treat the trained
network as a random draw: the primary test is a paired t-test of per-seed AUCs (seed k gives
both rows the same initialisation and batch order; :func:`paired_seed_test`, Wilcoxon's
signed-rank beside it — with n = 5 its smallest two-sided p is 0.0625, so it cannot be primary).
The contrast's CI comes from a two-level (hierarchical) bootstrap that resamples seeds and, inside
each replicate, test patients (:func:`hierarchical_contrast`; Efron & Tibshirani 1993 §8 for
clustered data). Secondary rows against the same baseline are corrected with Holm (1979)
(:func:`holm`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats


def fast_auc(y: NDArray[np.bool_], scores: NDArray[np.float64]) -> float:
    """Mann–Whitney AUC with mid-ranks for ties (equal to ``sklearn.roc_auc_score``)."""
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(scores)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _clusters(patients: Sequence[str]) -> list[NDArray[np.int64]]:
    index: dict[str, list[int]] = {}
    for i, patient in enumerate(patients):
        index.setdefault(patient, []).append(i)
    return [np.asarray(v, dtype=np.int64) for v in index.values()]


def _resample(clusters: list[NDArray[np.int64]], rng: np.random.Generator) -> NDArray[np.int64]:
    picks = rng.integers(0, len(clusters), size=len(clusters))
    return np.concatenate([clusters[i] for i in picks])


@dataclass(frozen=True)
class ClusteredAuc:
    """An AUC with a percentile CI from resampling patients (all of a patient's images)."""

    auc: float
    ci_low: float
    ci_high: float
    n_images: int
    n_patients: int
    n_boot: int


def patient_bootstrap_auc(
    labels: ArrayLike,
    scores: ArrayLike,
    patients: Sequence[str],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> ClusteredAuc:
    """AUC and its (1 − alpha) percentile CI, bootstrapping patients (cluster bootstrap)."""
    y = np.asarray(labels).astype(bool)
    p = np.asarray(scores, dtype=np.float64)
    clusters = _clusters(patients)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = _resample(clusters, rng)
        value = fast_auc(y[idx], p[idx])
        if value == value:
            boots.append(value)
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return ClusteredAuc(fast_auc(y, p), float(low), float(high), len(y), len(clusters), n_boot)


@dataclass(frozen=True)
class SeedTest:
    """Paired comparison of per-seed AUCs: row B − row A, seed by seed."""

    n_seeds: int
    mean_a: float
    sd_a: float
    mean_b: float
    sd_b: float
    mean_diff: float
    sd_diff: float
    t: float
    p_ttest: float
    p_wilcoxon: float
    diffs: tuple[float, ...]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def paired_seed_test(auc_a: Sequence[float], auc_b: Sequence[float]) -> SeedTest:
    """Two-sided paired t-test (primary) and Wilcoxon signed-rank test of ``b − a`` over seeds."""
    a = np.asarray(auc_a, dtype=np.float64)
    b = np.asarray(auc_b, dtype=np.float64)
    if a.shape != b.shape or len(a) < 2:
        raise ValueError("paired_seed_test needs two equally long sequences of >= 2 seeds")
    d = b - a
    t, p_t = stats.ttest_rel(b, a)
    try:
        p_w = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    except ValueError:
        p_w = float("nan")
    return SeedTest(
        n_seeds=len(a),
        mean_a=float(a.mean()),
        sd_a=float(a.std(ddof=1)),
        mean_b=float(b.mean()),
        sd_b=float(b.std(ddof=1)),
        mean_diff=float(d.mean()),
        sd_diff=float(d.std(ddof=1)),
        t=float(t),
        p_ttest=float(p_t),
        p_wilcoxon=p_w,
        diffs=tuple(float(x) for x in d),
    )


def hierarchical_contrast(
    labels: ArrayLike,
    scores_a: Sequence[ArrayLike],
    scores_b: Sequence[ArrayLike],
    patients: Sequence[str],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """Mean over seeds of AUC_b − AUC_a, with a two-level bootstrap CI.

    ``scores_a[k]`` and ``scores_b[k]`` are the two rows' test scores of training seed k, on the
    same images. Each replicate draws seeds with replacement (keeping the pairs), then patients
    with replacement, and averages the per-seed differences on those patients.
    """
    y = np.asarray(labels).astype(bool)
    a = [np.asarray(s, dtype=np.float64) for s in scores_a]
    b = [np.asarray(s, dtype=np.float64) for s in scores_b]
    if len(a) != len(b) or not a:
        raise ValueError("hierarchical_contrast needs the same seeds for both rows")
    point = float(np.mean([fast_auc(y, bk) - fast_auc(y, ak) for ak, bk in zip(a, b, strict=True)]))
    clusters = _clusters(patients)
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for i in range(n_boot):
        seeds = rng.integers(0, len(a), size=len(a))
        idx = _resample(clusters, rng)
        yi = y[idx]
        boots[i] = np.mean([fast_auc(yi, b[k][idx]) - fast_auc(yi, a[k][idx]) for k in seeds])
    low, high = np.nanquantile(boots, [alpha / 2, 1 - alpha / 2])
    return point, float(low), float(high)


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    order = sorted(pvalues, key=lambda k: pvalues[k])
    m = len(order)
    adjusted: dict[str, float] = {}
    running = 0.0
    for rank, key in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[key]))
        adjusted[key] = running
    return adjusted
