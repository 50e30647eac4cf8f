"""Fréchet distance between two feature sets (FID, Heusel et al. 2017; paper Sect. 3.2).

``d² = |μ₁ − μ₂|² + tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2})``.

The trace of the matrix square root is computed in the symmetric form
``tr((Σ₁ Σ₂)^{1/2}) = tr((Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2})``: both square roots are of symmetric
positive semi-definite matrices, so they come from ``scipy.linalg.eigh`` with eigenvalues
clipped at zero. That equals the usual ``scipy.linalg.sqrtm(Σ₁ @ Σ₂)`` (the tests check it)
but never produces complex parts, and it stays finite for singular covariances (fewer
samples than feature dimensions), where ``sqrtm`` needs an ``eps·I`` offset.

The paper computes FID between BR-GAN's *features* (target vs contralateral, generated vs
contralateral, target vs generated) and reports a "mean FID ... the average of features
distribution distances", including a target-generated mean FID "after removing the lesion areas
from ground truth". Removing *areas* only makes sense if the samples are spatial positions, so
our reading (:func:`mean_fid`) is: per image, the C-dimensional feature vectors at the H×W
positions of one map are one sample set, the FID between the two maps of the image is computed,
optionally leaving out masked positions, and the mean over images is reported. :func:`fid` is
the usual set-level FID (one pooled vector per image).

With fewer samples than dimensions (e.g. 26×32 positions of 2048 ResNet channels) the trace
term is computed from the samples instead: ``tr((Σ₁Σ₂)^{1/2})`` is the sum of the singular
values of ``A Bᵀ / √((n₁−1)(n₂−1))`` with ``A``, ``B`` the centred samples — exact, and an
n₁×n₂ SVD instead of two D×D eigendecompositions.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import linalg


def _psd_sqrt(a: NDArray[np.float64]) -> NDArray[np.float64]:
    values, vectors = linalg.eigh((a + a.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Fréchet distance (squared, as FID is reported) between two Gaussians."""
    m1, m2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    d = m1.shape[0]
    if m1.shape != (d,) or m2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"shapes do not match: mu1 {m1.shape}, sigma1 {s1.shape}, mu2 {m2.shape}, "
            f"sigma2 {s2.shape}"
        )
    root1 = _psd_sqrt(s1)
    covmean_trace = float(np.sqrt(np.clip(linalg.eigvalsh(root1 @ s2 @ root1), 0, None)).sum())
    diff = m1 - m2
    distance = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * covmean_trace)
    return max(distance, 0.0)


def feature_statistics(features: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and covariance (unbiased, rows = samples) of an N×D feature matrix."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be N×D with N >= 2, got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("features must be finite (no NaN or inf)")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def _samples(features: ArrayLike, name: str) -> NDArray[np.float64]:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"{name} must be N×D with N >= 2, got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return f


def fid(features1: ArrayLike, features2: ArrayLike) -> float:
    """FID between two feature sets (N₁×D and N₂×D arrays, one sample per row)."""
    f1, f2 = _samples(features1, "features1"), _samples(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature dimensions differ: {f1.shape[1]} vs {f2.shape[1]}")
    n1, n2, d = f1.shape[0], f2.shape[0], f1.shape[1]
    if max(n1, n2) >= d:
        return frechet_distance(*feature_statistics(f1), *feature_statistics(f2))
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    a, b = f1 - mu1, f2 - mu2
    trace1 = float((a * a).sum() / (n1 - 1))
    trace2 = float((b * b).sum() / (n2 - 1))
    covmean_trace = float(linalg.svdvals(a @ b.T).sum() / np.sqrt((n1 - 1) * (n2 - 1)))
    diff = mu1 - mu2
    return max(float(diff @ diff + trace1 + trace2 - 2 * covmean_trace), 0.0)


def _positions(maps: NDArray[np.float64], masks: ArrayLike | None, i: int) -> NDArray:
    samples = maps[i].reshape(maps.shape[1], -1).T  # (H·W) × C
    if masks is None:
        return samples
    keep = np.asarray(masks[i], dtype=bool).reshape(-1)  # type: ignore[index]
    if keep.size != samples.shape[0]:
        raise ValueError(f"mask {i} has {keep.size} positions, the feature map {samples.shape[0]}")
    return samples[keep]


def mean_fid(
    maps1: ArrayLike,
    maps2: ArrayLike,
    *,
    masks1: ArrayLike | None = None,
    masks2: ArrayLike | None = None,
) -> float:
    """Mean over images of the FID between two feature maps' spatial positions.

    ``maps1``, ``maps2``: N×C×H×W feature maps (e.g. f_T and f_H of the same images).
    ``masks1``, ``masks2``: optional N×H×W booleans at feature resolution; only ``True``
    positions are used (pass ``~lesion_mask`` to leave the ground-truth lesion areas out).
    """
    m1 = np.asarray(maps1, dtype=np.float64)
    m2 = np.asarray(maps2, dtype=np.float64)
    if m1.ndim != 4 or m2.ndim != 4 or m1.shape[:2] != m2.shape[:2] or m1.shape[0] == 0:
        raise ValueError(
            f"feature maps must be N×C×H×W with the same N and C, got {m1.shape} and {m2.shape}"
        )
    values = [fid(_positions(m1, masks1, i), _positions(m2, masks2, i)) for i in range(m1.shape[0])]
    return float(np.mean(values))
