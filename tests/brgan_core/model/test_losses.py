"""Each loss on tiny hand-computed tensors (Eq. 1–4)."""

from __future__ import annotations

import math

import pytest
import torch

from brgan_core.model import losses

LOG2 = math.log(2.0)


def test_gan_log_loss_at_zero_logits() -> None:
    zero = torch.zeros(2, 1, 2, 2)
    torch.testing.assert_close(losses.gan_generator_loss(zero), torch.tensor(LOG2))
    torch.testing.assert_close(losses.gan_discriminator_loss(zero, zero), torch.tensor(2 * LOG2))


def test_gan_log_loss_hand_computed() -> None:
    # D(real) = sigmoid(ln 3) = 3/4, D(fake) = sigmoid(−ln 3) = 1/4
    real = torch.full((1, 1, 1, 1), math.log(3.0))
    fake = -real
    expected_d = -math.log(0.75) - math.log(1 - 0.25)
    torch.testing.assert_close(
        losses.gan_discriminator_loss(real, fake, "log"), torch.tensor(expected_d)
    )
    torch.testing.assert_close(
        losses.gan_generator_loss(fake, "log"), torch.tensor(-math.log(0.25))
    )


def test_lsgan_hand_computed() -> None:
    real = torch.tensor([0.5, 1.0]).reshape(1, 1, 1, 2)  # (0.5−1)², 0 → 0.125
    fake = torch.tensor([0.0, 2.0]).reshape(1, 1, 1, 2)  # 0, 4 → 2
    torch.testing.assert_close(
        losses.gan_discriminator_loss(real, fake, "lsgan"), torch.tensor(0.125 + 2.0)
    )
    # generator: (0−1)², (2−1)² → 1
    torch.testing.assert_close(losses.gan_generator_loss(fake, "lsgan"), torch.tensor(1.0))


def test_malignant_contralaterals_leave_the_real_set() -> None:
    # per-sample real losses: sample 0 → log 2 (logit 0), sample 1 → huge (logit −20)
    real = torch.tensor([0.0, -20.0]).reshape(2, 1, 1, 1)
    fake = torch.full((2, 1, 1, 1), -30.0)  # ≈ 0 loss
    kept = losses.gan_discriminator_loss(real, fake, "log", real_weight=torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(kept, torch.tensor(LOG2), atol=1e-6, rtol=0)
    none_kept = losses.gan_discriminator_loss(real, fake, "log", real_weight=torch.zeros(2))
    torch.testing.assert_close(none_kept, torch.tensor(0.0), atol=1e-6, rtol=0)


def test_unknown_gan_loss() -> None:
    with pytest.raises(ValueError, match="gan_loss"):
        losses.gan_generator_loss(torch.zeros(1, 1, 1, 1), "wgan")


def test_downsample_mask() -> None:
    mask = torch.zeros(1, 1, 4, 4)
    mask[0, 0, :2, :] = 1.0  # top half
    mask[0, 0, 2, 0] = 1.0  # a quarter of the bottom-left 2×2 cell
    sel = losses.downsample_mask(mask, (2, 2))
    assert torch.equal(sel, torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]]))
    assert losses.downsample_mask(mask[:, 0], (2, 2)).shape == (1, 1, 2, 2)


def test_selected_mse_hand_computed() -> None:
    pred = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # [1, 2, 1, 2]
    target = torch.zeros_like(pred)
    sel = torch.tensor([[[[1.0, 0.0]]]])
    # selected position 0: channels (1, 3) → (1 + 9) / 2 = 5
    torch.testing.assert_close(losses.selected_mse(pred, target, sel), torch.tensor(5.0))
    torch.testing.assert_close(losses.selected_mse(pred, target, None), torch.tensor(7.5))
    empty = losses.selected_mse(pred.requires_grad_(), target, torch.zeros_like(sel))
    assert empty.item() == 0.0 and empty.requires_grad


def test_cycle_losses_detach_their_targets() -> None:
    rec = torch.ones(1, 2, 2, 2, requires_grad=True)
    real = torch.zeros(1, 2, 2, 2, requires_grad=True)
    for fn in (losses.cycle_loss_target, losses.cycle_loss_contralateral):
        loss = fn(rec, real)
        torch.testing.assert_close(loss, torch.tensor(1.0))
        loss.backward()
        assert real.grad is None and rec.grad is not None


def test_residual_embedding_hand_computed() -> None:
    # p_m(f_T) = 3/4 (logits 0, ln 3); p_m(f_P) = 1/2 (logits 0, 0)
    pm_t = torch.tensor([[0.0, math.log(3.0)]], requires_grad=True)
    pm_p = torch.tensor([[0.0, 0.0]], requires_grad=True)
    loss = losses.residual_embedding_loss(pm_p, pm_t)
    expected = -0.75 * math.log(0.5) - 0.25 * math.log(0.5)
    torch.testing.assert_close(loss, torch.tensor(expected))
    loss.backward()
    assert pm_t.grad is None  # the soft target is detached
    # p_m(f_P) = 3/4 as well: the minimum is the entropy of 3/4
    matched = losses.residual_embedding_loss(pm_t.detach(), pm_t)
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    torch.testing.assert_close(matched, torch.tensor(entropy))


def test_residual_embedding_is_finite_when_saturated() -> None:
    loss = losses.residual_embedding_loss(
        torch.tensor([[200.0, -200.0]]), torch.tensor([[0.0, 9.0]])
    )
    assert torch.isfinite(loss)


def test_classification_and_auxiliary_ce() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    label = torch.tensor([1, 0])
    expected = (-math.log(0.75) + LOG2) / 2
    torch.testing.assert_close(losses.classification_loss(logits, label), torch.tensor(expected))
    torch.testing.assert_close(
        losses.auxiliary_malignancy_loss(logits, label.float()), torch.tensor(expected)
    )


def test_total_loss_eq4() -> None:
    parts = {"cls": torch.tensor(1.0), "re": torch.tensor(2.0), "cyc_t": torch.tensor(4.0)}
    total = losses.total_loss(parts, {"cls": 1.0, "re": 0.5, "cyc_t": 0.25, "cyc_c": 9.0})
    torch.testing.assert_close(total, torch.tensor(3.0))
    with pytest.raises(KeyError, match="re"):
        losses.total_loss(parts, {"cls": 1.0, "cyc_t": 1.0})
