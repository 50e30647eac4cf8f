"""BR-GAN checkpoints: one safetensors file with the weights and everything needed to trust them.

A checkpoint is a single ``.safetensors`` file. The tensors are the model's ``state_dict``; the
file's string metadata (safetensors header ``__metadata__``) holds, as JSON:

``brgan_format``      format version of this layout (:data:`FORMAT_VERSION`)
``model_config``      the full model config (``BRGANConfig.to_dict()``)
``preprocessing``     the preprocessing config (input size, ...)
``data_fingerprint``  a fingerprint of the training data (e.g. sha256 of the sorted manifest)
``metrics``           validation metrics (AUC, ECE, ...)
``threshold``         operating threshold chosen on validation at a stated sensitivity
``temperature``       temperature-scaling factor fitted on validation logits
``research_only``     true for models trained on synthetic data (every output says so)
``feature_guard``     the training distribution in feature space (mean, whitening, distance
                      threshold; :mod:`brgan_core.shift`): the domain-shift guard
``created``           ISO timestamp; ``notes`` free text

Its sha256 is the hash of the file's bytes; the registry stores it beside the file (a file cannot
hold its own hash) and refuses a file whose bytes no longer match. Loading never unpickles:
safetensors holds raw tensors only. (Files written by ``torch.save`` are read with
``torch.load(weights_only=True)`` by :func:`load_state_dict_file`.)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from brgan_core.errors import BrganCoreError

FORMAT_VERSION = 1
_JSON_KEYS = ("model_config", "preprocessing", "metrics", "feature_guard")


class CheckpointError(BrganCoreError):
    """A checkpoint file is missing, corrupt, tampered with, or cannot be built by this code."""


@dataclass(frozen=True)
class CheckpointInfo:
    """Everything in a checkpoint except the tensors."""

    model_config: dict[str, Any]
    preprocessing: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    threshold: float | None = None
    temperature: float = 1.0
    research_only: bool = True
    #: Trained on synthetic data (``brgan synth`` output): a demo model, labelled so in every
    #: output. A checkpoint written before the flag existed reads as True (the safe side).
    synthetic_training: bool = True
    #: :class:`brgan_core.shift.FeatureGuard` as a dict; empty for a checkpoint without one.
    feature_guard: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    notes: str = ""

    def to_metadata(self) -> dict[str, str]:
        """Encode as safetensors string metadata."""
        meta = {
            "brgan_format": str(FORMAT_VERSION),
            "model_config": json.dumps(self.model_config, sort_keys=True),
            "preprocessing": json.dumps(self.preprocessing, sort_keys=True),
            "data_fingerprint": self.data_fingerprint,
            "metrics": json.dumps(self.metrics, sort_keys=True),
            "feature_guard": json.dumps(self.feature_guard, sort_keys=True),
            "threshold": "" if self.threshold is None else repr(float(self.threshold)),
            "temperature": repr(float(self.temperature)),
            "research_only": "true" if self.research_only else "false",
            "synthetic_training": "true" if self.synthetic_training else "false",
            "created": self.created or datetime.now(UTC).isoformat(timespec="seconds"),
            "notes": self.notes,
        }
        return meta

    @classmethod
    def from_metadata(cls, meta: dict[str, str] | None, source: str | Path) -> CheckpointInfo:
        """Decode safetensors metadata; :class:`CheckpointError` naming ``source`` if malformed."""
        if not meta or "brgan_format" not in meta:
            raise CheckpointError(
                f"{source}: not a brgan-pacs checkpoint (no brgan_format in its metadata)"
            )
        if meta["brgan_format"] != str(FORMAT_VERSION):
            raise CheckpointError(
                f"{source}: checkpoint format {meta['brgan_format']} is not supported by this "
                f"version (expects {FORMAT_VERSION}); upgrade brgan-pacs or re-export the model"
            )
        try:
            decoded = {key: json.loads(meta.get(key) or "{}") for key in _JSON_KEYS}
            threshold = float(meta["threshold"]) if meta.get("threshold") else None
            temperature = float(meta.get("temperature") or 1.0)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{source}: corrupt checkpoint metadata: {exc}") from exc
        return cls(
            model_config=decoded["model_config"],
            preprocessing=decoded["preprocessing"],
            metrics=decoded["metrics"],
            feature_guard=decoded["feature_guard"],
            data_fingerprint=meta.get("data_fingerprint", ""),
            threshold=threshold,
            temperature=temperature,
            research_only=meta.get("research_only", "true") != "false",
            synthetic_training=meta.get("synthetic_training", "true") != "false",
            created=meta.get("created", ""),
            notes=meta.get("notes", ""),
        )


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(path: str | Path, state_dict: dict[str, Any], info: CheckpointInfo) -> str:
    """Write ``state_dict`` + ``info`` atomically to ``path``; return the file's sha256."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in state_dict.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=info.to_metadata())
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return sha256_file(path)


def read_info(path: str | Path) -> CheckpointInfo:
    """Read only the metadata of a checkpoint (cheap; no tensors, no torch needed)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        with open(path, "rb") as handle:
            header_len = int.from_bytes(handle.read(8), "little")
            if header_len <= 0 or header_len > 100 * 1024 * 1024:
                raise ValueError(f"implausible header length {header_len}")
            header = json.loads(handle.read(header_len))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a safetensors checkpoint ({exc})") from exc
    return CheckpointInfo.from_metadata(header.get("__metadata__"), path)


def load_checkpoint(
    path: str | Path, expected_sha256: str | None = None
) -> tuple[dict[str, Any], CheckpointInfo]:
    """Load ``(state_dict, info)``; refuse the file when its sha256 is not the expected one."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    info = read_info(path)
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise CheckpointError(
                f"{path}: sha256 {actual[:16]}… does not match the registered "
                f"{expected_sha256[:16]}…; the file was modified or corrupted. Re-register "
                "a trusted copy with `brgan models register`."
            )
    try:
        state_dict = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read tensors: {exc}") from exc
    return state_dict, info


def load_state_dict_file(path: str | Path) -> dict[str, Any]:
    """Load a ``torch.save`` state dict (e.g. local ImageNet weights) without unpickling code."""
    import torch

    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files
        raise CheckpointError(f"{path}: cannot load weights safely: {exc}") from exc
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(loaded).__name__}")
    return loaded
