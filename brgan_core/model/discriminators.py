"""Feature-level discriminators D_C and D_T (paper Sect. 2.1, Eq. 1).

* D_C: real contralateral features f_C vs generated healthy features f_H = G_T2C(f_T).
* D_T: real target features f_T vs back-translated features G_C2T([f_C, f_P]).

Our reading (the paper gives no architecture): a light PatchGAN-style network on the feature
map — 1×1 conv (C → d), LeakyReLU(0.2), 3×3 conv (d → d), LeakyReLU(0.2), 1×1 conv (d → 1) —
returning one logit per feature position, ``[B, 1, h, w]``.
"""

from __future__ import annotations

from torch import Tensor, nn


class FeatureDiscriminator(nn.Module):
    """Patch logits ``[B, 1, h, w]`` saying "real" for each feature position."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 1, 1),
        )

    def forward(self, f: Tensor) -> Tensor:
        return self.net(f)
