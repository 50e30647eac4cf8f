"""Synthetic pairs for the model and training tests (no files, no preprocessing)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from brgan_core.model import Batch

H, W = 64, 52


def synthetic_pairs(n: int = 16, seed: int = 0, h: int = H, w: int = W) -> Batch:
    """``n`` pairs on a shared smooth random texture; odd pairs have a bright blob in the target.

    The contralateral is the same texture with a little independent noise, so a blob present in
    the target only is the lesion; label = 1 for odd indices. Masks cover the whole image except
    a 4-pixel border; contralateral_label is all 0.
    """
    gen = torch.Generator().manual_seed(seed)
    texture = F.avg_pool2d(torch.rand(n, 1, h, w, generator=gen), 5, 1, 2)
    texture = (texture - texture.mean()) / texture.std() * 0.3
    target = texture.clone()
    contralateral = texture + 0.05 * torch.randn(n, 1, h, w, generator=gen)
    label = torch.arange(n) % 2
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    for i in range(n):
        if label[i]:
            cy = int(torch.randint(12, h - 12, (1,), generator=gen))
            cx = int(torch.randint(12, w - 12, (1,), generator=gen))
            blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 3.0**2))
            target[i, 0] += 2.0 * blob
    mask = torch.zeros(n, 1, h, w)
    mask[:, :, 4:-4, 4:-4] = 1.0
    return Batch(
        target=target,
        contralateral=contralateral,
        label=label,
        target_mask=mask,
        contralateral_mask=mask.clone(),
        contralateral_label=torch.zeros(n, dtype=torch.long),
    )
