"""Heads: the malignancy head p_m, the classification module, and CAM (Zhou et al. 2016).

* :class:`MalignancyHead` p_m (Sect. 2.1, Eq. 3): GAP → FC → {benign, malignant} logits on a
  single feature map; p_m(f) = softmax(·)[malignant]. Used on f_T and f_P for L_RE. Our reading
  (DESIGN.md): p_m is also supervised by the image label (an auxiliary cross-entropy), so it
  cannot collapse to a constant that makes L_RE trivially small.
* :class:`ClassifierHead` (Sect. 2.2): GAP → FC → {benign, malignant} on the classifier input
  built by :func:`classifier_input` — concat[f_T − f_H, f_T] for BR-GAN, concat[f_T − f_C, f_T]
  for SBF ("simple bilateral features … fed into the fusion layer directly"), f_T for vanilla.
* Because the head is global average pooling followed by one linear layer, the class activation
  map of Zhou et al. is the malignant row of the FC weights applied to the pre-pool features;
  its spatial mean plus the bias is the malignant logit (tested).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Index of the malignant class in every 2-logit output.
MALIGNANT = 1


class GapLinearHead(nn.Module):
    """Global pooling (average by default, or max) then one linear layer to 2 logits."""

    def __init__(self, channels: int, num_classes: int = 2, pooling: str = "avg") -> None:
        super().__init__()
        if pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', not {pooling!r}")
        self.pooling = pooling
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, features: Tensor) -> Tensor:
        if self.pooling == "max":
            return self.fc(features.amax(dim=(2, 3)))
        return self.fc(features.mean(dim=(2, 3)))

    def cam(self, features: Tensor, class_index: int = MALIGNANT) -> Tensor:
        """Raw class activation map ``[B, h, w]``: Σ_k w_k · features_k (no bias, no pooling)."""
        weight = self.fc.weight[class_index]
        return torch.einsum("k,bkhw->bhw", weight, features)


class MalignancyHead(GapLinearHead):
    """p_m: the malignancy classifier on single features (f_T or f_P), Eq. 3."""


class ClassifierHead(GapLinearHead):
    """The classification module's GAP → FC on the (fused) classifier input."""


def classifier_input(f_t: Tensor, reference: Tensor | None, branch: Tensor | None = None) -> Tensor:
    """concat[f_T − reference, f_T] (reference = f_H or f_C), or f_T alone when it is None;
    with the contralateral ``branch`` (f_T − f_C, or zeros) appended as a third block."""
    parts = [f_t] if reference is None else [f_t - reference, f_t]
    if branch is not None:
        parts.append(branch)
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def normalize_map(raw: Tensor, eps: float = 1e-12) -> Tensor:
    """Min–max normalise each map of ``[B, h, w]`` to [0, 1]; a constant map becomes zeros."""
    flat = raw.flatten(1)
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    scaled = torch.where(span > eps, (flat - low) / span.clamp_min(eps), torch.zeros_like(flat))
    return scaled.reshape(raw.shape)
