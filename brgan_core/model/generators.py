"""Feature-level generators G_T2C and G_C2T (paper Sect. 2.1, Fig. 2).

* G_T2C: f -> f_H, the "healthy version" of the features, made to look like the contralateral
  f_C by D_C (Eq. 1). With ``paired`` (our extension, not the paper's reading) it also sees the
  reference features: f_H = ReLU(f + block(concat[f, f_ref])).
* G_C2T: concat[f, f_P] -> f, the back translation that adds the preserved lesion features f_P
  (residual-preserved mechanism); without ``residual_preserved`` it is a plain CycleGAN
  G_C2T(f).

Where the paper is silent (DESIGN.md, the contract): both are *light* — one residual block with a
1×1 bottleneck (C → b → b (3×3) → C, e.g. 2048→256→2048), so inference costs little beyond the
backbone. Our readings, documented here: the output is ``ReLU(f + block(x))`` because backbone
features end in a ReLU (non-negative), and the block's last conv starts at zero, so a new
generator is the identity (f_H = f_T, a zero residual) and learns only what it must change.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class BottleneckBlock(nn.Sequential):
    """1×1 (in → b), ReLU, 3×3 (b → b), ReLU, 1×1 (b → out); the last conv zero-initialised."""

    def __init__(self, in_channels: int, bottleneck: int, out_channels: int) -> None:
        last = nn.Conv2d(bottleneck, out_channels, 1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        super().__init__(
            nn.Conv2d(in_channels, bottleneck, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(bottleneck, bottleneck, 3, padding=1),
            nn.ReLU(inplace=True),
            last,
        )


class _ResidualGenerator(nn.Module):
    """ReLU(f + block(x)), x = concat[f, extra] when built ``conditioned``, else f.

    The shared shape of G_T2C and G_C2T: both are residual on their first input and may take a
    second feature map of the same shape (f_ref for a paired G_T2C, f_P for G_C2T).
    """

    def __init__(self, channels: int, bottleneck: int, conditioned: bool, missing: str) -> None:
        super().__init__()
        self.conditioned = conditioned
        self._missing = missing  # the error when a conditioned generator gets no second input
        in_channels = 2 * channels if conditioned else channels
        self.block = BottleneckBlock(in_channels, bottleneck, channels)

    def _residual(self, f: Tensor, extra: Tensor | None) -> Tensor:
        if self.conditioned:
            if extra is None:
                raise ValueError(self._missing)
            if extra.shape != f.shape:
                raise ValueError(
                    f"reference features {tuple(extra.shape)} must match {tuple(f.shape)}"
                )
            x = torch.cat([f, extra], dim=1)
        else:
            x = f
        return torch.relu(f + self.block(x))


class GeneratorT2C(_ResidualGenerator):
    """G_T2C: target features f_T -> healthy features f_H = ReLU(f_T + block(f_T)).

    ``paired=True``: f_H = ReLU(f_T + block(concat[f_T, f_ref])), the reference f_ref (the
    contralateral's features) given at training and inference.
    """

    def __init__(self, channels: int, bottleneck: int, *, paired: bool = False) -> None:
        super().__init__(
            channels,
            bottleneck,
            paired,
            "G_T2C was built paired: pass the reference features f_ref",
        )
        self.paired = paired

    def forward(self, f: Tensor, f_ref: Tensor | None = None) -> Tensor:
        return self._residual(f, f_ref)


class GeneratorC2T(_ResidualGenerator):
    """G_C2T: ReLU(f + block(concat[f, f_P])) (or block(f) when f_P is not preserved)."""

    def __init__(self, channels: int, bottleneck: int, *, preserved: bool = True) -> None:
        super().__init__(
            channels, bottleneck, preserved, "G_C2T was built with residual_preserved: pass f_p"
        )
        self.preserved = preserved

    def forward(self, f: Tensor, f_p: Tensor | None = None) -> Tensor:
        return self._residual(f, f_p)
