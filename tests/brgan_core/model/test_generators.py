"""G_T2C, G_C2T (light 1×1-bottleneck residual blocks) and the feature discriminators."""

from __future__ import annotations

import pytest
import torch

from brgan_core.model.discriminators import FeatureDiscriminator
from brgan_core.model.generators import BottleneckBlock, GeneratorC2T, GeneratorT2C


def test_t2c_shape_and_identity_at_init() -> None:
    g = GeneratorT2C(64, 16)
    f = torch.rand(2, 64, 8, 7)
    f_h = g(f)
    assert f_h.shape == f.shape
    torch.testing.assert_close(f_h, f)  # zero-initialised last conv: starts as the identity
    assert (g(torch.randn(2, 64, 8, 7)) >= 0).all()  # features live after a ReLU


def test_paired_t2c_sees_the_reference() -> None:
    g = GeneratorT2C(64, 16, paired=True)
    assert g.block[0].in_channels == 128
    f, f_ref = torch.rand(2, 64, 8, 7), torch.rand(2, 64, 8, 7)
    torch.testing.assert_close(g(f, f_ref), f)  # identity at init, like the unpaired G_T2C
    with torch.no_grad():
        g.block[-1].weight.normal_()
    assert not torch.allclose(g(f, f_ref), g(f, torch.zeros_like(f_ref)))
    with pytest.raises(ValueError, match="f_ref"):
        g(f)
    with pytest.raises(ValueError, match="must match"):
        g(f, torch.rand(2, 64, 4, 7))


def test_bottleneck_widths() -> None:
    block = BottleneckBlock(2048, 256, 2048)
    widths = [(m.in_channels, m.out_channels, m.kernel_size) for m in block if hasattr(m, "weight")]
    assert widths == [(2048, 256, (1, 1)), (256, 256, (3, 3)), (256, 2048, (1, 1))]


def test_c2t_concatenates_f_p() -> None:
    g = GeneratorC2T(64, 16, preserved=True)
    assert g.block[0].in_channels == 128
    f, f_p = torch.rand(2, 64, 8, 7), torch.rand(2, 64, 8, 7)
    assert g(f, f_p).shape == f.shape
    with pytest.raises(ValueError, match="f_p"):
        g(f)


def test_c2t_without_preservation_is_plain_cyclegan() -> None:
    g = GeneratorC2T(64, 16, preserved=False)
    assert g.block[0].in_channels == 64
    assert g(torch.rand(2, 64, 8, 7)).shape == (2, 64, 8, 7)


def test_c2t_output_depends_on_f_p_once_trained() -> None:
    torch.manual_seed(0)
    g = GeneratorC2T(8, 4)
    torch.nn.init.normal_(g.block[-1].weight)
    f = torch.rand(1, 8, 4, 4)
    assert not torch.allclose(g(f, torch.zeros_like(f)), g(f, torch.ones_like(f)))


def test_discriminator_patch_logits() -> None:
    d = FeatureDiscriminator(64, 16)
    logits = d(torch.randn(3, 64, 8, 7))
    assert logits.shape == (3, 1, 8, 7)
    logits.sum().backward()
    assert all(p.grad is not None for p in d.parameters())
