"""``brgan models``: register, activate, list, show, rollback; refusals are one clear line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from brgan_core.checkpoint import CheckpointInfo, save_checkpoint
from brgan_core.model import BRGANConfig, build_model
from tests.plugin.cli import run_cli as _run


def _checkpoint(path: Path, seed: int, config: dict | None = None) -> Path:
    torch.manual_seed(seed)
    cfg = BRGANConfig.preset("brgan", backbone="tiny")
    save_checkpoint(
        path,
        build_model(cfg).state_dict(),
        CheckpointInfo(model_config=config or cfg.to_dict(), preprocessing={"size": [64, 52]}),
    )
    return path


def test_models_lifecycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BRGAN_DATA_DIR", str(tmp_path / "data"))
    code, out = _run(["models", "register", str(_checkpoint(tmp_path / "a.st", 1))], capsys)
    assert code == 0 and "registered v1" in out
    code, out = _run(
        ["models", "register", "--activate", str(_checkpoint(tmp_path / "b.st", 2))], capsys
    )
    assert code == 0 and "active version: v2" in out
    code, out = _run(["models", "activate", "v1"], capsys)
    assert code == 2 and "no evaluation of this version against the active model" in out
    forced = ["--force", "--reason", "lifecycle test"]
    code, out = _run(["models", "activate", "v1", *forced], capsys)
    assert code == 0 and "FORCED without an evaluation" in out, out
    code, out = _run(["models", "activate", "v2", *forced], capsys)
    code, out = _run(["models", "rollback", "--reason", "back to v1"], capsys)
    assert code == 0 and "active version: v1" in out
    code, out = _run(["models", "history"], capsys)
    assert code == 0 and out.count("activate") >= 3 and "rollback" in out
    assert "first activation" in out and "lifecycle test" in out
    code, out = _run(["models", "show", "v1"], capsys)
    shown = json.loads(out)
    assert shown["active"] is True and shown["model_config"]["backbone"] == "tiny"
    card = shown["card"]
    assert card["intended_use"].startswith("RESEARCH USE ONLY")
    assert "DEMO MODEL" in card["intended_use"]  # no synthetic_training flag reads as synthetic
    assert card["uses_contralateral_at_inference"] is False  # the paper's BR-GAN: f_H = G(f_T)
    assert card["evaluated_without_contralateral"] is None
    assert card["scores_images_without_contralateral"] is False
    assert card["domain_shift_guard"] is None
    code, out = _run(["models", "list"], capsys)
    assert code == 0 and "v2" in out and "research-only" in out


def test_unbuildable_and_tampered_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BRGAN_DATA_DIR", str(tmp_path / "data"))
    bad = _checkpoint(tmp_path / "bad.st", 1, config={"backbone": "vgg99"})
    code, out = _run(["models", "register", str(bad)], capsys)
    assert code == 2
    assert "cannot build the checkpoint's model" in out and "Traceback" not in out

    _run(["models", "register", "--activate", str(_checkpoint(tmp_path / "ok.st", 3))], capsys)
    stored = tmp_path / "data" / "models" / "v1" / "model.safetensors"
    os.chmod(stored, 0o644)
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF
    stored.write_bytes(bytes(data))
    code, out = _run(["models", "show", "v1"], capsys)
    assert code == 2 and "was modified" in out
