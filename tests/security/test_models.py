"""Model files are verified by their sha256 before anything is loaded, and loading never
unpickles (DESIGN.md "Who owns state": workers load exactly the version and hash a task names).

The worker's own loading path is exercised (:func:`plugin.worker.analysis.get_model`, what
every ``brgan.analyze_study`` task calls) on a real registry with a real tiny checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from brgan_core.checkpoint import CheckpointError, load_checkpoint, sha256_file
from brgan_core.registry import Registry
from plugin.config import Settings
from plugin.worker import analysis
from tests.helpers import make_tiny_registry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[Settings, str, str]]:
    settings = Settings(data_dir=tmp_path / "data", device="cpu")
    version, sha256 = make_tiny_registry(settings.registry_path)
    analysis._MODELS.clear()  # the worker's per-process cache: start cold
    yield settings, version, sha256
    analysis._MODELS.clear()


def _stored(settings: Settings, version: str) -> Path:
    registry = Registry(settings.registry_path)
    return registry.path_of(registry.get(version))


def _forge_metadata(data: bytes, **changes: str) -> bytes:
    """A safetensors file with its ``__metadata__`` rewritten, tensors untouched."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    header["__metadata__"].update(changes)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + length :]


def test_the_worker_loads_the_registered_model_and_refuses_a_tampered_one(
    registry: tuple[Settings, str, str],
) -> None:
    settings, version, sha256 = registry
    assert analysis.get_model(settings, version, sha256).sha256 == sha256
    analysis._MODELS.clear()
    # The attack that matters: strip the research-only label from the checkpoint's metadata
    # (a well-formed safetensors file that still builds) to make its results look clinical.
    path = _stored(settings, version)
    os.chmod(path, 0o644)
    path.write_bytes(_forge_metadata(path.read_bytes(), research_only="false"))
    tensors, info = load_checkpoint(path)  # the forgery itself is a loadable checkpoint...
    assert tensors and info.research_only is False
    with pytest.raises(CheckpointError, match="was modified"):
        analysis.get_model(settings, version, sha256)  # ...and is refused before loading
    assert analysis._MODELS == {}
    with pytest.raises(CheckpointError, match="was modified"):
        Registry(settings.registry_path).activate(version)


def test_a_task_naming_another_hash_is_refused(registry: tuple[Settings, str, str]) -> None:
    settings, version, sha256 = registry
    other = ("0" if sha256[0] != "0" else "1") + sha256[1:]
    with pytest.raises(CheckpointError, match="registries differ"):
        analysis.get_model(settings, version, other)
    assert analysis._MODELS == {}


class _Payload:
    """Unpickling this creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


def test_a_pickle_in_place_of_a_checkpoint_is_never_unpickled(
    registry: tuple[Settings, str, str], tmp_path: Path
) -> None:
    """Even an intruder who rewrites the registry (file *and* its recorded hash, the trust
    boundary of docs/security.md) cannot run code: checkpoints are safetensors, read without
    unpickling."""
    settings, version, _ = registry
    marker = tmp_path / "unpickled"
    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "x": _Payload(marker)}, evil)
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
        Registry(settings.registry_path).register(evil)
    path = _stored(settings, version)
    os.chmod(path, 0o644)
    path.write_bytes(evil.read_bytes())
    state = Registry(settings.registry_path)
    entries = json.loads((settings.registry_path / "registry.json").read_text())
    entries["versions"][version]["sha256"] = sha256_file(path)
    (settings.registry_path / "registry.json").write_text(json.dumps(entries))
    with pytest.raises(CheckpointError):
        analysis.get_model(settings, version, state.get(version).sha256)
    assert not marker.exists()
