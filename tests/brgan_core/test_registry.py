"""Model registry: register, activate, rollback, hash verification, unbuildable configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from brgan_core.checkpoint import CheckpointError, CheckpointInfo, save_checkpoint
from brgan_core.registry import Registry


def _checkpoint(path: Path, seed: int, backbone: str = "tiny") -> Path:
    gen = torch.Generator().manual_seed(seed)
    save_checkpoint(
        path,
        {"w": torch.randn(4, generator=gen)},
        CheckpointInfo(model_config={"backbone": backbone}, metrics={"auc": 0.8 + seed / 100}),
    )
    return path


def test_register_activate_rollback(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    v1, created = registry.register(_checkpoint(tmp_path / "a.safetensors", 1))
    assert created and v1.version == "v1"
    v2, _ = registry.register(_checkpoint(tmp_path / "b.safetensors", 2))
    assert v2.version == "v2"
    assert registry.active_version() is None
    with pytest.raises(CheckpointError, match="no active model"):
        registry.resolve()

    registry.activate("v1")
    registry.activate("v2")
    entry, path = registry.resolve()
    assert entry.version == "v2" and path.is_file()
    assert registry.rollback().version == "v1"
    assert registry.active_version() == "v1"
    with pytest.raises(CheckpointError, match="nothing to roll back"):
        registry.rollback()
    assert [v.version for v in registry.versions()] == ["v1", "v2"]


def test_same_bytes_register_once(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    source = _checkpoint(tmp_path / "a.safetensors", 1)
    first, created = registry.register(source)
    again, created_again = registry.register(source)
    assert created and not created_again
    assert again.version == first.version


def test_tampered_registered_file_is_refused(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    entry, _ = registry.register(_checkpoint(tmp_path / "a.safetensors", 1))
    stored = registry.path_of(entry)
    os.chmod(stored, 0o644)
    data = bytearray(stored.read_bytes())
    data[-2] ^= 0x01
    stored.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="was modified"):
        registry.activate(entry.version)
    with pytest.raises(CheckpointError, match="was modified"):
        registry.resolve(entry.version)


def test_unbuildable_config_is_refused(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")

    def validate(info: CheckpointInfo) -> None:
        if info.model_config["backbone"] not in {"tiny", "resnet18"}:
            raise CheckpointError(f"unknown backbone {info.model_config['backbone']!r}")

    with pytest.raises(CheckpointError, match="unknown backbone 'vgg99'"):
        registry.register(_checkpoint(tmp_path / "x.safetensors", 3, "vgg99"), validate=validate)
    assert registry.versions() == []


def test_unknown_version(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    with pytest.raises(CheckpointError, match="'v9' is not registered"):
        registry.activate("v9")
