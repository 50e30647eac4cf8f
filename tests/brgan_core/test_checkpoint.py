"""Checkpoint round trip (bit-exact), metadata, and refusal of tampered or foreign files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from brgan_core.checkpoint import (
    CheckpointError,
    CheckpointInfo,
    load_checkpoint,
    load_state_dict_file,
    read_info,
    save_checkpoint,
    sha256_file,
)


def _state() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "backbone.conv.weight": torch.randn(8, 1, 3, 3, generator=gen),
        "head.fc.bias": torch.randn(2, generator=gen).double(),
        "steps": torch.tensor([7], dtype=torch.int64),
    }


def _info() -> CheckpointInfo:
    return CheckpointInfo(
        model_config={"backbone": "tiny", "bilateral": "gan"},
        preprocessing={"size": [128, 104]},
        data_fingerprint="abc123",
        metrics={"auc": 0.91},
        threshold=0.3125,
        temperature=1.5,
        research_only=True,
    )


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    digest = save_checkpoint(path, _state(), _info())
    assert digest == sha256_file(path)
    state, info = load_checkpoint(path, expected_sha256=digest)
    for name, tensor in _state().items():
        assert state[name].dtype == tensor.dtype
        assert torch.equal(state[name], tensor)
    assert info.model_config == _info().model_config
    assert info.threshold == 0.3125
    assert info.temperature == 1.5
    assert info.research_only is True
    assert read_info(path).metrics == {"auc": 0.91}


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    digest = save_checkpoint(path, _state(), _info())
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(path, expected_sha256=digest)


def test_foreign_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"junk\.safetensors"):
        read_info(junk)
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not a brgan-pacs checkpoint"):
        read_info(plain)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_info(tmp_path / "missing.safetensors")


def test_torch_save_weights_load_without_pickle_code(tmp_path: Path) -> None:
    path = tmp_path / "imagenet.pth"
    torch.save(_state(), path)
    assert torch.equal(load_state_dict_file(path)["steps"], torch.tensor([7]))

    class Evil:
        def __reduce__(self):  # pragma: no cover - never executed by weights_only
            return (print, ("pwned",))

    bad = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, bad)
    with pytest.raises(CheckpointError, match="cannot load weights safely"):
        load_state_dict_file(bad)
