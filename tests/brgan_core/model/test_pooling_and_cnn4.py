"""The ``pooling`` switch of the heads and the ``cnn4`` CPU-benchmark backbone."""

from __future__ import annotations

import pytest
import torch

from brgan_core.model import BRGANConfig, build_backbone, build_model
from brgan_core.model.heads import ClassifierHead


def test_max_pooling_head_takes_the_spatial_maximum() -> None:
    torch.manual_seed(0)
    head = ClassifierHead(4, pooling="max")
    features = torch.randn(2, 4, 5, 3)
    expected = head.fc(features.flatten(2).max(dim=2).values)
    assert torch.allclose(head(features), expected)
    avg = ClassifierHead(4)
    avg.load_state_dict(head.state_dict())
    assert not torch.allclose(avg(features), head(features))


def test_pooling_is_validated_and_round_trips() -> None:
    with pytest.raises(ValueError, match="pooling"):
        BRGANConfig(pooling="median")
    config = BRGANConfig.preset("brgan", backbone="cnn4", pooling="max")
    assert BRGANConfig.from_dict(config.to_dict()) == config


def test_cnn4_shapes_and_predict() -> None:
    torch.manual_seed(0)
    f = build_backbone("cnn4")(torch.rand(2, 1, 128, 104))
    assert f.shape == (2, 128, 16, 13)
    model = build_model(BRGANConfig.preset("brgan", backbone="cnn4", pooling="max"))
    prediction = model.predict(torch.rand(2, 1, 128, 104), torch.rand(2, 1, 128, 104))
    assert prediction.p_malignant.shape == (2,)
    assert prediction.cam.shape == (2, 16, 13)
