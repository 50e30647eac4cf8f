"""Backbones: the paper's "last convolution layer", local weights only, the grey-image stem."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from brgan_core.model.backbone import (
    FEATURE_CHANNELS,
    TinyBackbone,
    WeightsError,
    build_backbone,
    load_weights_file,
)


@pytest.mark.parametrize(
    ("name", "grid"),
    [("tiny", (8, 7)), ("alexnet", (3, 2)), ("resnet18", (2, 2)), ("resnet50", (2, 2))],
)
def test_feature_shapes(name: str, grid: tuple[int, int]) -> None:
    backbone = build_backbone(name, in_channels=1)
    with torch.no_grad():
        f = backbone.eval()(torch.randn(2, 1, 64, 52))
    assert f.shape == (2, FEATURE_CHANNELS[name], *grid)


def test_alexnet_ends_with_last_conv_and_relu() -> None:
    features = build_backbone("alexnet")
    assert isinstance(features[-1], nn.ReLU)
    assert isinstance(features[-2], nn.Conv2d)
    assert not any(isinstance(m, nn.MaxPool2d) for m in list(features)[-3:])
    assert len(features) == 12  # torchvision's 13 layers minus the final max-pool


def test_resnet_stops_at_layer4() -> None:
    backbone = build_backbone("resnet18")
    assert not any(isinstance(m, nn.AdaptiveAvgPool2d | nn.Linear) for m in backbone.modules())
    assert backbone[-1][-1].conv2.out_channels == 512


def test_tiny_is_stride_8() -> None:
    f = TinyBackbone(1)(torch.randn(1, 1, 64, 64))
    assert f.shape == (1, 64, 8, 8)


def _resnet18_file(tmp_path: Path, suffix: str) -> tuple[Path, nn.Module]:
    torch.manual_seed(3)
    reference = tvm.resnet18(weights=None)
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    else:
        torch.save(reference.state_dict(), path)
    return path, reference


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_load_and_grey_stem_equals_rgb(tmp_path: Path, suffix: str) -> None:
    path, reference = _resnet18_file(tmp_path, suffix)
    backbone = build_backbone("resnet18", in_channels=1, weights=path).eval()
    assert torch.equal(backbone[4][0].conv1.weight, reference.layer1[0].conv1.weight)
    # the adapted stem on a grey image equals the RGB network on the image replicated to RGB
    grey = torch.randn(1, 1, 64, 52)
    reference_trunk = nn.Sequential(*list(reference.children())[:-2]).eval()
    with torch.no_grad():
        expected = reference_trunk(grey.repeat(1, 3, 1, 1))
        got = backbone(grey)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_three_channel_stem_is_untouched(tmp_path: Path) -> None:
    path, reference = _resnet18_file(tmp_path, ".pth")
    backbone = build_backbone("resnet18", in_channels=3, weights=path)
    assert torch.equal(backbone[0].weight, reference.conv1.weight)


def test_weights_for_another_architecture_are_refused(tmp_path: Path) -> None:
    path, _ = _resnet18_file(tmp_path, ".pth")
    with pytest.raises(WeightsError, match="not resnet50 weights"):
        build_backbone("resnet50", weights=path)


def test_missing_or_garbage_weights_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights_file(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        load_weights_file(junk)


def test_pickled_objects_are_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save(tvm.alexnet(weights=None), path)  # a whole pickled module, not a state dict
    with pytest.raises(WeightsError):
        load_weights_file(path)


def test_unknown_backbone() -> None:
    with pytest.raises(ValueError, match="backbone"):
        build_backbone("vgg16")
