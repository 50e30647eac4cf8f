"""The residual-preserved module, Eq. 2, with our softmax-over-positions reading."""

from __future__ import annotations

import math

import torch

from brgan_core.model.residual import preserved_features, spatial_attention


def test_attention_hand_computed() -> None:
    # one channel, 1×2 positions: residual (0, ln 3) -> softmax (1/4, 3/4) -> × H·W = (1/2, 3/2)
    residual = torch.tensor([0.0, math.log(3.0)]).reshape(1, 1, 1, 2)
    torch.testing.assert_close(spatial_attention(residual), torch.tensor([[[[0.5, 1.5]]]]))


def test_attention_is_per_channel_and_averages_one() -> None:
    torch.manual_seed(0)
    a = spatial_attention(torch.randn(2, 5, 4, 3))
    torch.testing.assert_close(a.mean(dim=(2, 3)), torch.ones(2, 5))
    # each channel is normalised on its own: changing channel 0 leaves channel 1 alone
    r = torch.randn(1, 2, 4, 3)
    r2 = r.clone()
    r2[:, 0] += torch.randn(4, 3)
    torch.testing.assert_close(spatial_attention(r)[:, 1], spatial_attention(r2)[:, 1])


def test_preserved_features_with_mask() -> None:
    f_t = torch.tensor([2.0, 4.0]).reshape(1, 1, 1, 2)
    f_h = torch.tensor([2.0, 4.0 - math.log(3.0)]).reshape(1, 1, 1, 2)
    f_p, attention = preserved_features(f_t, f_h, mask=True)
    torch.testing.assert_close(attention, torch.tensor([[[[0.5, 1.5]]]]))
    torch.testing.assert_close(f_p, torch.tensor([[[[1.0, 6.0]]]]))


def test_uniform_residual_keeps_f_t() -> None:
    f_t = torch.rand(2, 3, 4, 4)
    f_p, _ = preserved_features(f_t, f_t - 0.7, mask=True)
    torch.testing.assert_close(f_p, f_t)


def test_no_mask_is_the_raw_residual() -> None:
    f_t, f_h = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    f_p, attention = preserved_features(f_t, f_h, mask=False)
    torch.testing.assert_close(f_p, f_t - f_h)
    assert torch.equal(attention, torch.ones_like(f_t))
