"""Fréchet distance between two feature sets (FID, Heusel et al. 2017; paper Sect. 3.2).

``d² = |μ₁ − μ₂|² + tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2})``.

The trace of the matrix square root is computed in the symmetric form
``tr((Σ₁ Σ₂)^{1/2}) = tr((Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2})``: both square roots are of symmetric
positive semi-definite matrices, so they come from ``scipy.linalg.eigh`` with eigenvalues
clipped at zero. That equals the usual ``scipy.linalg.sqrtm(Σ₁ @ Σ₂)`` (the tests check it)
but never produces complex parts, and it stays finite for singular covariances (fewer
samples than feature dimensions), where ``sqrtm`` needs an ``eps·I`` offset.

The paper computes FID between BR-GAN's *features* (target vs contralateral, generated vs
contralateral, target vs generated): pass pooled feature vectors, one row per image.
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


def fid(features1: ArrayLike, features2: ArrayLike) -> float:
    """FID between two feature sets (N₁×D and N₂×D arrays)."""
    mu1, sigma1 = feature_statistics(features1)
    mu2, sigma2 = feature_statistics(features2)
    if mu1.shape != mu2.shape:
        raise ValueError(f"feature dimensions differ: {mu1.shape[0]} vs {mu2.shape[0]}")
    return frechet_distance(mu1, sigma1, mu2, sigma2)
