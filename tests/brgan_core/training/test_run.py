"""End to end on synthetic DICOM: manifest → split → preprocess → train → checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from brgan_core.checkpoint import read_info
from brgan_core.training import TrainConfig, TrainingError, build_trainer, train_from_config
from tests.brgan_core.training.conftest import toml


def test_train_from_config_on_synthetic_dicom(manifest: Path, tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(toml(manifest, tmp_path / "run"), encoding="utf-8")
    cfg = TrainConfig.from_toml(path)
    trainer = build_trainer(cfg)
    item = trainer.train_data[0]
    assert item["target"].shape == (1, 64, 52)
    assert float(item["target"].min()) >= 0.0 and float(item["target"].max()) <= 1.0
    assert item["target_mask"].sum() > 0
    result = trainer.fit()
    assert result.epochs_run == 1
    info = read_info(result.best_checkpoint)
    assert info.preprocessing == {"size": [64, 52]}
    assert len(info.data_fingerprint) == 64


def test_random_healthy_baseline_runs(manifest: Path, tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    text = toml(manifest, tmp_path / "run").replace(
        'preset = "brgan"', 'preset = "cyclegan_healthy"'
    )
    path.write_text(text, encoding="utf-8")
    cfg = TrainConfig.from_toml(path)
    trainer = build_trainer(cfg)
    data = trainer.train_data
    for i in range(len(data)):  # type: ignore[arg-type]
        ref = data.healthy_reference(i)  # type: ignore[attr-defined]
        assert ref.label == 0 and ref.patient_id != data.pairs[i].patient_id  # type: ignore[attr-defined]
    assert train_from_config(cfg).epochs_run == 1


def test_no_pairs_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "manifest.csv"
    empty.write_text(
        "path,patient_id,study_uid,sop_instance_uid,laterality,view,label,birads,density,"
        "findings,boxes,mask_path\n",
        encoding="utf-8",
    )
    cfg = TrainConfig.from_dict({"data": {"root": str(empty)}, "model": {"backbone": "tiny"}})
    with pytest.raises(TrainingError, match="no usable pairs"):
        build_trainer(cfg)


def test_kept_checkpoint_carries_the_domain_shift_guard(manifest: Path, tmp_path: Path) -> None:
    """train_from_config fits the guard on training features, thresholds it on validation."""
    import numpy as np

    from brgan_core.checkpoint import load_checkpoint
    from brgan_core.model import build_model
    from brgan_core.shift import guard_of, pooled_features

    path = tmp_path / "t.toml"
    path.write_text(toml(manifest, tmp_path / "run"), encoding="utf-8")
    cfg = TrainConfig.from_toml(path)
    result = train_from_config(cfg)
    weights, info = load_checkpoint(result.best_checkpoint)
    guard = guard_of(info)
    assert guard is not None and guard.percentile == 99.0
    assert guard.mean.shape == (96,)  # mean and SD of the tiny backbone's 16 + 32 channels
    trainer = build_trainer(cfg)
    model = build_model(info.model_config)
    model.load_state_dict(weights)
    val = pooled_features(
        model, (trainer.val_data[i]["target"][0].numpy() for i in range(len(trainer.val_data)))
    )
    assert guard.n_val == len(val)
    assert np.mean(guard.outside(val)) <= 0.5  # the threshold is a high validation percentile
    noise = np.random.default_rng(0).random((4, 64, 52))  # not a mammogram at all
    assert np.all(guard.outside(pooled_features(model, noise)))
