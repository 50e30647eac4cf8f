"""BR-GAN's losses, one small function per term, each citing the paper (Sect. 2, Eq. 1–4).

All functions take logits or features and return a scalar tensor. Our readings where the paper
is silent (DESIGN.md, "BR-GAN model, the contract"):

* Eq. 1, "log" loss: the discriminator maximises log D(real) + log(1 − D(fake)), i.e. minimises
  BCE(D(real), 1) + BCE(D(fake), 0) on its patch logits; the generator uses the usual
  non-saturating form BCE(D(G(f)), 1) (as CycleGAN's ``GANLoss``). ``lsgan`` replaces BCE with
  squared error to 1 / 0. For D_C, contralaterals known to be malignant are left out of the
  "real" set (per-sample weight 0): they are not examples of healthy tissue.
* Eq. 2 text, L_c^T and L_c^C, "selected MSE": the mean squared error over the feature positions
  inside the breast mask, downsampled to the feature grid (a position counts when at least half
  of its area is breast). The reconstruction target is the detached real feature map, as the
  real image is a constant in CycleGAN's cycle loss.
* Eq. 3, L_RE: BCE of p_m(f_P) against p_m(f_T), the latter detached and used as a soft target.
* L_CLS: cross-entropy of the classification module's logits (Sect. 2.2); the auxiliary
  cross-entropy of p_m(f_T) against the image label keeps p_m a malignancy classifier.
* Eq. 4: the weighted sum of the terms present (all weights default to 1).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from brgan_core.model.heads import MALIGNANT


def _patch_loss(logits: Tensor, real: bool, kind: str) -> Tensor:
    """Per-sample mean over patches of the loss of calling ``logits`` real / fake: ``[B]``."""
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if kind == "log":
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    elif kind == "lsgan":
        loss = (logits - target) ** 2
    else:
        raise ValueError(f"gan_loss must be 'log' or 'lsgan', not {kind!r}")
    return loss.flatten(1).mean(dim=1)


def gan_generator_loss(d_fake: Tensor, kind: str = "log") -> Tensor:
    """Eq. 1, generator side: make D call the generated features real (non-saturating)."""
    return _patch_loss(d_fake, True, kind).mean()


def gan_discriminator_loss(
    d_real: Tensor,
    d_fake: Tensor,
    kind: str = "log",
    real_weight: Tensor | None = None,
) -> Tensor:
    """Eq. 1, discriminator side: −[log D(real) + log(1 − D(fake))], batch means.

    ``real_weight`` ``[B]`` (0 or 1) removes samples from the real set (D_C: malignant
    contralaterals); the real term averages over the kept samples, and is 0 if none is kept.
    """
    real = _patch_loss(d_real, True, kind)
    if real_weight is None:
        real_term = real.mean()
    else:
        weight = real_weight.to(real.dtype)
        real_term = (real * weight).sum() / weight.sum().clamp_min(1.0)
    return real_term + _patch_loss(d_fake, False, kind).mean()


def downsample_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Breast mask ``[B, 1, H, W]`` (or ``[B, H, W]``) → ``[B, 1, h, w]`` of 0/1 by area ≥ 0.5."""
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    fraction = F.adaptive_avg_pool2d(mask.to(torch.float32), size)
    return (fraction >= 0.5).to(torch.float32)


def selected_mse(pred: Tensor, target: Tensor, selection: Tensor | None = None) -> Tensor:
    """ "Selected MSE" (Eq. 2 text): mean of (pred − target)² over selected positions, all channels.

    ``selection`` ``[B, 1, h, w]`` of 0/1 (see :func:`downsample_mask`); ``None`` selects all.
    With nothing selected the loss is 0 (still attached to the graph).
    """
    squared = (pred - target) ** 2
    if selection is None:
        return squared.mean()
    selection = selection.to(squared.dtype)
    count = selection.sum() * squared.shape[1]
    return (squared * selection).sum() / count.clamp_min(1.0)


def cycle_loss_target(f_t_rec: Tensor, f_t: Tensor, selection: Tensor | None = None) -> Tensor:
    """L_c^T: f_T → G_T2C → G_C2T([·, f_P]) ≈ f_T (selected MSE, target detached)."""
    return selected_mse(f_t_rec, f_t.detach(), selection)


def cycle_loss_contralateral(
    f_c_rec: Tensor, f_c: Tensor, selection: Tensor | None = None
) -> Tensor:
    """L_c^C: f_C → G_C2T([f_C, f_P]) → G_T2C ≈ f_C (selected MSE, target detached)."""
    return selected_mse(f_c_rec, f_c.detach(), selection)


def residual_embedding_loss(pm_logits_p: Tensor, pm_logits_t: Tensor) -> Tensor:
    """Eq. 3: L_RE = −p_m(f_T) log p_m(f_P) − (1 − p_m(f_T)) log(1 − p_m(f_P)).

    Both arguments are p_m's 2-class logits; p_m(f_T) is detached (a soft target). Computed with
    log-softmax, so it is finite even when p_m(f_P) saturates.
    """
    soft_target = pm_logits_t.detach().softmax(dim=1)[:, MALIGNANT]
    log_p = pm_logits_p.log_softmax(dim=1)
    benign = 1 - MALIGNANT
    return -(soft_target * log_p[:, MALIGNANT] + (1 - soft_target) * log_p[:, benign]).mean()


def classification_loss(logits: Tensor, label: Tensor) -> Tensor:
    """L_CLS (Sect. 2.2): cross-entropy of the {benign, malignant} logits."""
    return F.cross_entropy(logits, label.long())


def auxiliary_malignancy_loss(pm_logits_t: Tensor, label: Tensor) -> Tensor:
    """Our reading: p_m(f_T) supervised by the image label (CE), so p_m stays meaningful."""
    return F.cross_entropy(pm_logits_t, label.long())


def total_loss(components: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """Eq. 4: Σ weight[name] · component[name] over the components present.

    Every component must have a weight (a missing one is a programming error, not a default).
    """
    missing = [name for name in components if name not in weights]
    if missing:
        raise KeyError(f"no weight for loss component(s): {', '.join(missing)}")
    terms = [weights[name] * value for name, value in components.items()]
    if not terms:
        raise ValueError("total_loss: no loss components")
    return torch.stack(terms).sum()
