"""The residual-preserved module (paper Sect. 2.1, Eq. 2): f_P = f_T ∗ softmax(f_T − f_H).

The paper turns the residual f_T − f_H into an attention map "by softmax function for
normalization" so that "locations on residual features with high values" get high weight. It
does not name the softmax axis. Our reading (DESIGN.md, the contract): the softmax runs over the
spatial positions, separately for each channel, and is multiplied by H·W so the map averages 1
and f_P keeps the scale of f_T:

    A[b, c, :, :] = H·W · softmax_{(y, x)}((f_T − f_H)[b, c, y, x])
    f_P = f_T ⊙ A

Ablation "no mask" (Table 3, Mask ×): f_P = f_T − f_H, the raw residual.
"""

from __future__ import annotations

from torch import Tensor


def spatial_attention(residual: Tensor) -> Tensor:
    """A = H·W · softmax over positions, per channel, of ``residual`` [B, C, H, W]."""
    b, c, h, w = residual.shape
    weights = residual.reshape(b, c, h * w).softmax(dim=-1)
    return (weights * (h * w)).reshape(b, c, h, w)


def preserved_features(f_t: Tensor, f_h: Tensor, *, mask: bool = True) -> tuple[Tensor, Tensor]:
    """Return ``(f_p, attention)``; with ``mask=False`` f_p = f_t − f_h and attention is ones."""
    residual = f_t - f_h
    if not mask:
        return residual, residual.new_ones(residual.shape)
    attention = spatial_attention(residual)
    return f_t * attention, attention
