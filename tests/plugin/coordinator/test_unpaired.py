"""The coordinator's question "may the model to run score an image alone?" reads the card."""

from __future__ import annotations

from pathlib import Path

from plugin.config import Settings
from plugin.coordinator.unpaired import scores_unpaired
from tests.helpers import make_tiny_registry


def test_scores_unpaired_follows_the_active_models_card(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert scores_unpaired(settings) is False  # no model at all
    make_tiny_registry(settings.registry_path)  # the paper's BR-GAN, no such metric
    assert scores_unpaired(settings) is False
    version, _ = make_tiny_registry(
        settings.registry_path,
        seed=1,
        preset="brgan_bilateral",
        metrics={"auc": 0.5, "val_auc_without_contralateral": 0.7},
    )
    assert scores_unpaired(settings) is True  # the newly activated one
    pinned = Settings(data_dir=tmp_path / "data", model_version="v1")
    assert version != "v1" and scores_unpaired(pinned) is False  # model_version wins
