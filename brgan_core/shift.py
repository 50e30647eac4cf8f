"""The domain-shift guard: is an image inside the distribution the model was trained on?

A model trained on one vendor's images fails silently on another's (nyukat/
breast_cancer_classifier #13 on CBIS-DDSM). Every checkpoint therefore carries a description of
its training distribution in feature space and at inference an image whose features lie beyond
it is reported as *not analyzed: outside the model's training distribution*.

The features (:data:`DESCRIPTOR`): the per-channel mean and standard deviation of the backbone's
first two stages (:data:`STYLE_LAYERS`) — the "style" statistics of Gatys et al. 2016 that carry
contrast, noise and texture. Measured on the shipped demo model (docs/model.md): the pooled
last-layer features f_T that the classifier reads are nearly blind to acquisition (42 % of a
foreign synthetic preset and none of the real GE image flagged), because training makes them
invariant to everything but the lesion; the early-stage statistics flag 90 % and 100 %.

The description (:class:`FeatureGuard`), after Lee et al. 2018 ("A simple unified framework for
detecting out-of-distribution samples", Mahalanobis distance on features) made compact with a
principal subspace:

* the training features' mean μ and their top-k principal directions V (k ≤ 32) with variances
  λ (Ledoit–Wolf shrunk covariance, so a small training set gives a stable estimate);
* distance² = Σ_j ((x − μ)·v_j)² / λ_j  +  ‖residual outside the subspace‖² / σ²_res, where σ²_res
  is the mean residual variance per dimension times the number of residual dimensions (the
  residual term catches features that move *out of* the subspace, which the subspace Mahalanobis
  term alone cannot see);
* the threshold: the ``percentile`` (99th by default) of the *validation* images' distances, so on
  validation data the false-flag rate is 1 − percentile by construction (the test-set rate is
  measured in docs/model.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

GUARD_VERSION = 2
DESCRIPTOR = "early-stage channel mean and SD, v1"
MAX_COMPONENTS = 64
#: Top-level children of each backbone whose outputs are described (the first two stages).
STYLE_LAYERS = {
    "cnn4": (5, 12),
    "tiny": (2, 5),
    "alexnet": (1, 4),
    "resnet18": (4, 5),
    "resnet50": (4, 5),
}
DEFAULT_PERCENTILE = 99.0
OUTSIDE_REASON = "outside the model's training distribution"


def _round(values: NDArray[np.float64]) -> list[Any]:
    return np.asarray(values, dtype=np.float32).astype(float).round(7).tolist()


@dataclass(frozen=True)
class FeatureGuard:
    """The training distribution of pooled backbone features, and the distance threshold."""

    mean: NDArray[np.float64]  # [C]
    components: NDArray[np.float64]  # [k, C], orthonormal rows
    variances: NDArray[np.float64]  # [k]
    residual_variance: float  # σ²_res: expected squared residual norm on training data
    threshold: float
    percentile: float
    n_train: int
    n_val: int

    def distance(self, features: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
        """Distance of each row of ``features`` [N, C] (or one [C] vector) from the training set."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if x.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"features have {x.shape[1]} channels, the guard was fitted on {len(self.mean)}"
            )
        x = x - self.mean
        projected = x @ self.components.T
        inside = (projected**2 / self.variances).sum(axis=1)
        residual = ((x - projected @ self.components) ** 2).sum(axis=1) / self.residual_variance
        return np.sqrt(inside + residual)

    def outside(self, features: NDArray[np.floating[Any]]) -> NDArray[np.bool_]:
        return self.distance(features) > self.threshold

    def reason(self, distance: float) -> str:
        """The not-analyzed reason an admin and a radiologist can read."""
        return (
            f"{OUTSIDE_REASON} (feature distance {distance:.1f} > {self.threshold:.1f}, the "
            f"{self.percentile:g}th percentile of its validation images)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": GUARD_VERSION,
            "descriptor": DESCRIPTOR,
            "mean": _round(self.mean),
            "components": [_round(row) for row in self.components],
            "variances": _round(self.variances),
            "residual_variance": float(self.residual_variance),
            "threshold": float(self.threshold),
            "percentile": float(self.percentile),
            "n_train": int(self.n_train),
            "n_val": int(self.n_val),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureGuard:
        """Read :meth:`to_dict`'s form; ``ValueError`` when it is malformed."""
        try:
            if int(data["version"]) != GUARD_VERSION:
                raise ValueError(f"feature guard version {data['version']} is not supported")
            mean = np.asarray(data["mean"], dtype=np.float64)
            components = np.asarray(data["components"], dtype=np.float64)
            variances = np.asarray(data["variances"], dtype=np.float64)
            guard = cls(
                mean=mean,
                components=components.reshape(len(variances), len(mean)),
                variances=variances,
                residual_variance=float(data["residual_variance"]),
                threshold=float(data["threshold"]),
                percentile=float(data["percentile"]),
                n_train=int(data["n_train"]),
                n_val=int(data["n_val"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed feature guard: {exc}") from exc
        if not (np.all(guard.variances > 0) and guard.residual_variance > 0):
            raise ValueError("malformed feature guard: variances must be > 0")
        return guard


def fit_guard(
    train_features: NDArray[np.floating[Any]],
    val_features: NDArray[np.floating[Any]],
    *,
    percentile: float = DEFAULT_PERCENTILE,
    max_components: int = MAX_COMPONENTS,
) -> FeatureGuard:
    """Fit the training distribution on ``train_features`` [N, C]; threshold on validation."""
    from sklearn.covariance import LedoitWolf

    train = np.asarray(train_features, dtype=np.float64)
    val = np.asarray(val_features, dtype=np.float64)
    if train.ndim != 2 or len(train) < 4 or len(val) < 1:
        raise ValueError("fit_guard needs >= 4 training and >= 1 validation feature vectors")
    if not 50 <= percentile < 100:
        raise ValueError(f"percentile must be in [50, 100), not {percentile!r}")
    mean = train.mean(axis=0)
    covariance = LedoitWolf().fit(train - mean).covariance_
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    k = int(min(max_components, train.shape[1] - 1, len(train) - 1))
    k = max(k, 1)
    floor = max(float(eigenvalues[0]) * 1e-6, 1e-12)
    variances = np.maximum(eigenvalues[:k], floor)
    rest = np.maximum(eigenvalues[k:], 0.0)
    residual_variance = max(float(rest.sum()), floor)
    guard = FeatureGuard(
        mean=mean,
        components=eigenvectors[:, :k].T.copy(),
        variances=variances,
        residual_variance=residual_variance,
        threshold=float("inf"),
        percentile=float(percentile),
        n_train=len(train),
        n_val=len(val),
    )
    return replace(guard, threshold=float(np.percentile(guard.distance(val), percentile)))


def guard_of(info: Any) -> FeatureGuard | None:
    """The guard a :class:`~brgan_core.checkpoint.CheckpointInfo` carries, or None (also for a
    guard of an earlier descriptor version, which this code cannot compute)."""
    data = getattr(info, "feature_guard", None) or {}
    if not data or data.get("version") != GUARD_VERSION:
        return None
    return FeatureGuard.from_dict(data)


@contextmanager
def capture(model: Any) -> Iterator[list[Any]]:
    """Record the :data:`STYLE_LAYERS` outputs of ``model``'s backbone during the forward passes
    inside the block (no extra pass: :func:`brgan_core.inference.score_pair` wraps ``predict``)."""
    children = list(model.backbone.children())
    indices = STYLE_LAYERS.get(model.config.backbone, (len(children) - 1,))
    acts: list[Any] = []
    hooks = [
        children[i].register_forward_hook(lambda _m, _in, out: acts.append(out.detach()))
        for i in indices
    ]
    try:
        yield acts
    finally:
        for hook in hooks:
            hook.remove()


def describe(acts: list[Any], batch: int) -> NDArray[np.float32]:
    """[batch, D] descriptor from captured activations: every layer's channel means, then SDs.

    Only the first ``batch`` rows of each activation are the targets (``predict`` of a paired
    model encodes target and contralateral in one pass: targets first).
    """
    import torch

    layers = [a[:batch].float() for a in acts]
    means = [a.mean(dim=(2, 3)) for a in layers]
    sds = [a.std(dim=(2, 3)) for a in layers]
    return torch.cat(means + sds, dim=1).cpu().numpy()


def pooled_features(
    model: Any, images: Iterable[Any], *, batch_size: int = 32, device: str = "cpu"
) -> NDArray[np.float32]:
    """The guard's descriptor of ``images`` (arrays [H, W] in [0, 1]) as [N, D]."""
    import torch

    out: list[NDArray[np.float32]] = []
    batch: list[Any] = []

    def flush() -> None:
        if batch:
            x = torch.from_numpy(np.stack(batch).astype(np.float32))[:, None].to(device)
            was_training = model.training
            model.eval()  # BatchNorm running statistics, as at inference
            try:
                with capture(model) as acts, torch.inference_mode():
                    model.encode(x)
            finally:
                model.train(was_training)
            out.append(describe(acts, len(batch)))
            batch.clear()

    for image in images:
        batch.append(np.asarray(image, dtype=np.float32))
        if len(batch) == batch_size:
            flush()
    flush()
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def attach_guard(
    checkpoint: Any,
    train_images: Iterable[Any],
    val_images: Iterable[Any],
    *,
    percentile: float = DEFAULT_PERCENTILE,
    batch_size: int = 32,
) -> FeatureGuard:
    """Fit a guard with the checkpoint's own backbone and write it into the checkpoint file.

    ``train_images``/``val_images``: preprocessed model inputs (arrays [H, W]) of the data the
    checkpoint was trained and validated on. The file is rewritten atomically with the guard in
    its metadata (its sha256 changes: register it after this step).
    """

    from brgan_core.checkpoint import load_checkpoint, save_checkpoint
    from brgan_core.model import build_model

    state_dict, info = load_checkpoint(checkpoint)
    model = build_model(info.model_config)
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    train = pooled_features(model, train_images, batch_size=batch_size)
    val = pooled_features(model, val_images, batch_size=batch_size)
    guard = fit_guard(train, val, percentile=percentile)
    save_checkpoint(checkpoint, state_dict, replace(info, feature_guard=guard.to_dict()))
    return guard
