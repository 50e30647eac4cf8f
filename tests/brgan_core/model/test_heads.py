"""p_m, the classification module and CAM (Zhou et al. 2016)."""

from __future__ import annotations

import torch

from brgan_core.model.heads import (
    MALIGNANT,
    ClassifierHead,
    MalignancyHead,
    classifier_input,
    normalize_map,
)


def test_head_is_gap_then_linear() -> None:
    head = MalignancyHead(4)
    x = torch.randn(3, 4, 5, 6)
    torch.testing.assert_close(head(x), head.fc(x.mean(dim=(2, 3))))
    assert head(x).shape == (3, 2)


def test_cam_mean_plus_bias_is_the_logit() -> None:
    torch.manual_seed(0)
    head = ClassifierHead(6)
    x = torch.randn(2, 6, 4, 3)
    cam = head.cam(x)
    assert cam.shape == (2, 4, 3)
    torch.testing.assert_close(
        cam.mean(dim=(1, 2)) + head.fc.bias[MALIGNANT], head(x)[:, MALIGNANT]
    )


def test_classifier_input() -> None:
    f_t, f_h = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    fused = classifier_input(f_t, f_h)
    assert fused.shape == (2, 6, 4, 4)
    torch.testing.assert_close(fused[:, :3], f_t - f_h)
    torch.testing.assert_close(fused[:, 3:], f_t)
    assert classifier_input(f_t, None) is f_t


def test_normalize_map() -> None:
    raw = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[7.0, 7.0], [7.0, 7.0]]])
    norm = normalize_map(raw)
    torch.testing.assert_close(norm[0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    assert torch.equal(norm[1], torch.zeros(2, 2))
