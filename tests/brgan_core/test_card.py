"""The model card derives its facts from the checkpoint metadata."""

from __future__ import annotations

from brgan_core.card import may_score_without_contralateral, model_card
from brgan_core.checkpoint import CheckpointInfo
from brgan_core.model import BRGANConfig


def _info(preset: str, **extra: object) -> CheckpointInfo:
    config = BRGANConfig.preset(preset, backbone="tiny").to_dict()
    return CheckpointInfo(model_config=config, preprocessing={"size": [64, 52]}, **extra)


def test_contralateral_at_inference_by_preset() -> None:
    assert model_card(_info("sbf"))["uses_contralateral_at_inference"] is True
    assert model_card(_info("brgan_paired"))["uses_contralateral_at_inference"] is True
    assert model_card(_info("brgan"))["uses_contralateral_at_inference"] is False
    assert model_card(_info("vanilla"))["uses_contralateral_at_inference"] is False


def test_only_a_model_evaluated_without_contralateral_may_score_such_images() -> None:
    plain = _info("brgan", metrics={"test_auc": 0.8})
    assert not may_score_without_contralateral(plain)
    evaluated = _info("brgan", metrics={"val_auc_without_contralateral": 0.71})
    assert may_score_without_contralateral(evaluated)
    assert model_card(evaluated)["evaluated_without_contralateral"] == 0.71
    bilateral = _info("brgan_bilateral", metrics={"val_auc_without_contralateral": 0.7})
    assert may_score_without_contralateral(bilateral)
    assert model_card(bilateral)["uses_contralateral_at_inference"] is True
    # an architecture that cannot score alone, or a metric that is not a number, never may
    for preset in ("sbf", "brgan_paired"):
        assert not may_score_without_contralateral(
            _info(preset, metrics={"val_auc_without_contralateral": 0.9})
        )
    for bad in (float("nan"), None, "0.8", True):
        assert not may_score_without_contralateral(
            _info("brgan_bilateral", metrics={"val_auc_without_contralateral": bad})
        )


def test_real_data_model_is_not_labelled_demo_and_guard_is_summarized() -> None:
    guard = {
        "threshold": 9.5,
        "percentile": 99.0,
        "mean": [0.0] * 64,
        "variances": [1.0] * 8,
        "n_train": 10,
        "n_val": 5,
    }
    card = model_card(_info("brgan", synthetic_training=False, feature_guard=guard))
    assert card["intended_use"] == "RESEARCH USE ONLY - not a medical device"
    assert card["domain_shift_guard"] == {
        "threshold": 9.5,
        "percentile": 99.0,
        "features": 64,
        "components": 8,
        "train_images": 10,
        "validation_images": 5,
    }
