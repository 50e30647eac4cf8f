"""The shared feature extractor: f_T and f_C from "the last convolution layer" (paper Sect. 3.1).

One backbone instance serves target and contralateral (shared weights). Our reading of "last
convolution layer" (DESIGN.md, the contract):

* ResNet-50 / ResNet-18: the stem and ``layer1``–``layer4`` (stride 32; 2048 / 512 channels),
  without the global pool and ``fc``;
* AlexNet: ``features`` up to the last conv + ReLU, dropping its final max-pool (256 channels);
* ``tiny``: three stride-2 conv/BN/ReLU blocks (stride 8, 64 channels) for tests and CPU runs.
* ``cnn4``: four double conv/BN/ReLU blocks with max-pooling (stride 8, 128 channels) for the
  CPU benchmark.

Weights are never downloaded (``weights=None``). A local ImageNet file (torchvision's ``.pth``,
read with ``torch.load(weights_only=True)``, or ``.safetensors``) may be given; it is loaded into
the full torchvision model strictly, so a file for another architecture is refused. The RGB stem
is then adapted to ``in_channels``: for a grey image the three RGB filters are summed, which is
exactly the network applied to the grey image replicated to RGB, without the 3× input.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from brgan_core.errors import BrganCoreError

#: Channels of f for each backbone.
FEATURE_CHANNELS = {"alexnet": 256, "resnet18": 512, "resnet50": 2048, "tiny": 64, "cnn4": 128}


class WeightsError(BrganCoreError):
    """A local pretrained-weights file is missing, unreadable, or for another architecture."""


class TinyBackbone(nn.Sequential):
    """Three conv(3×3, stride 2) + BN + ReLU blocks: 16, 32, 64 channels, stride 8."""

    def __init__(self, in_channels: int = 1) -> None:
        layers: list[nn.Module] = []
        width_in = in_channels
        for width in (16, 32, 64):
            layers += [
                nn.Conv2d(width_in, width, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            width_in = width
        super().__init__(*layers)


class Cnn4Backbone(nn.Sequential):
    """Four blocks of two conv(3×3) + BN + ReLU, the first three followed by a 2×2 max-pool:
    16, 32, 64, 128 channels, stride 8. Small enough to train the ablation table on a CPU; the
    synthetic data's difficulty was calibrated with a CNN of this shape (docs/synthetic-data.md).
    """

    def __init__(self, in_channels: int = 1) -> None:
        layers: list[nn.Module] = []
        width_in = in_channels
        for index, width in enumerate((16, 32, 64, 128)):
            for _ in range(2):
                layers += [
                    nn.Conv2d(width_in, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                width_in = width
            if index < 3:
                layers.append(nn.MaxPool2d(2))
        super().__init__(*layers)


def load_weights_file(path: Path) -> dict[str, Tensor]:
    """Read a local state dict without unpickling code (``weights_only=True``)."""
    if not path.is_file():
        raise WeightsError(f"{path}: pretrained weights file does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any reader failure becomes one clear error
        raise WeightsError(f"{path}: cannot read pretrained weights ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors")
    return state


def _adapt_stem(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A copy of an RGB stem conv that takes ``in_channels`` (RGB filters summed, then spread)."""
    if in_channels == conv.in_channels:
        return conv
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        summed = conv.weight.sum(dim=1, keepdim=True)
        new.weight.copy_(summed.repeat(1, in_channels, 1, 1) / in_channels)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)  # type: ignore[union-attr]
    return new


def _load_into(model: nn.Module, weights: Path | None, name: str) -> None:
    if weights is None:
        return
    state = load_weights_file(weights)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{weights}: not {name} weights ({str(exc).splitlines()[0]})") from exc


def build_backbone(name: str, in_channels: int = 1, weights: Path | None = None) -> nn.Module:
    """The feature extractor ``x [B, in_channels, H, W] -> f [B, FEATURE_CHANNELS[name], h, w]``."""
    import torchvision.models as tvm

    if name in ("tiny", "cnn4"):
        if weights is not None:
            raise WeightsError(f"{weights}: the {name} backbone has no pretrained weights")
        return TinyBackbone(in_channels) if name == "tiny" else Cnn4Backbone(in_channels)
    if name == "alexnet":
        alex = tvm.alexnet(weights=None)
        _load_into(alex, weights, name)
        features = alex.features[:-1]  # drop the final max-pool: ends with the last conv + ReLU
        features[0] = _adapt_stem(features[0], in_channels)
        return features
    if name in ("resnet18", "resnet50"):
        resnet = getattr(tvm, name)(weights=None)
        _load_into(resnet, weights, name)
        resnet.conv1 = _adapt_stem(resnet.conv1, in_channels)
        return nn.Sequential(
            resnet.conv1,
            resnet.bn1,
            resnet.relu,
            resnet.maxpool,
            resnet.layer1,
            resnet.layer2,
            resnet.layer3,
            resnet.layer4,
        )
    raise ValueError(f"backbone must be one of {', '.join(FEATURE_CHANNELS)}, not {name!r}")
