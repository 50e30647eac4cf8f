"""The model registry: versioned, hash-verified checkpoints and the one active version.

Layout under the registry folder (a shared volume, so that workers on other hosts see it)::

    registry.json          versions, the active one, and the activation history
    registry.lock          advisory lock held while registry.json is rewritten
    v1/model.safetensors   each registered checkpoint, copied in (never moved or edited)

A version's sha256 is recorded when it is registered; every later use (activate, resolve)
re-hashes the file and refuses it when the bytes changed. This module is torch-free: the
coordinator, which never imports torch, reads the active version and its sha256 to put them in
each task's payload; workers load exactly that version and verify the hash again.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from brgan_core.checkpoint import CheckpointError, CheckpointInfo, read_info, sha256_file

REGISTRY_FILE = "registry.json"
CHECKPOINT_NAME = "model.safetensors"


@dataclass(frozen=True)
class ModelVersion:
    """One registered checkpoint."""

    version: str
    sha256: str
    file: str
    registered: str
    source_name: str
    research_only: bool
    metrics: dict[str, Any]
    threshold: float | None
    backbone: str

    def summary(self) -> str:
        auc = self.metrics.get("auc")
        auc_text = f"AUC {auc:.3f}" if isinstance(auc, int | float) else "AUC n/a"
        flag = " RESEARCH-ONLY" if self.research_only else ""
        return f"{self.version} {self.sha256[:12]} {self.backbone} {auc_text}{flag}"


class Registry:
    """Versioned checkpoints in a folder; see the module docstring for the layout."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- state file ---------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "registry.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._read()
            yield state
            self._write(state)

    def _read(self) -> dict[str, Any]:
        path = self.root / REGISTRY_FILE
        if not path.exists():
            return {"versions": {}, "active": None, "history": []}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: registry file is unreadable: {exc}") from exc

    def _write(self, state: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".registry.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.root / REGISTRY_FILE)

    # -- queries ------------------------------------------------------------------------------
    def versions(self) -> list[ModelVersion]:
        """All registered versions, oldest first."""
        state = self._read()
        items = [ModelVersion(**entry) for entry in state["versions"].values()]
        return sorted(items, key=lambda v: int(v.version.lstrip("v")))

    def active_version(self) -> str | None:
        return self._read()["active"]

    def get(self, version: str) -> ModelVersion:
        entry = self._read()["versions"].get(version)
        if entry is None:
            known = ", ".join(v.version for v in self.versions()) or "none registered"
            raise CheckpointError(f"model version {version!r} is not registered (known: {known})")
        return ModelVersion(**entry)

    def path_of(self, version: ModelVersion) -> Path:
        return self.root / version.file

    def resolve(self, version: str | None = None) -> tuple[ModelVersion, Path]:
        """The named (default: active) version and its file, after verifying its sha256."""
        if version is None:
            version = self.active_version()
            if version is None:
                raise CheckpointError(
                    f"no active model in registry {self.root}; register one with "
                    "`brgan models register PATH` and `brgan models activate VERSION`"
                )
        entry = self.get(version)
        self.verify(entry)
        return entry, self.path_of(entry)

    def verify(self, entry: ModelVersion) -> None:
        """Raise :class:`CheckpointError` when the stored file no longer matches its sha256."""
        path = self.path_of(entry)
        if not path.is_file():
            raise CheckpointError(f"model {entry.version}: file {path} is missing")
        actual = sha256_file(path)
        if actual != entry.sha256:
            raise CheckpointError(
                f"model {entry.version}: {path} has sha256 {actual[:16]}…, registered "
                f"{entry.sha256[:16]}…; the file was modified. Refusing to use it."
            )

    # -- changes ------------------------------------------------------------------------------
    def register(
        self,
        checkpoint: str | Path,
        validate: Callable[[CheckpointInfo], None] | None = None,
    ) -> tuple[ModelVersion, bool]:
        """Copy a checkpoint in as a new version; ``(version, created)``.

        ``validate`` receives the checkpoint's metadata and raises when this code cannot build
        the model it describes (the CLI passes the model package's config check). Registering
        the same bytes twice returns the existing version with ``created=False``.
        """
        source = Path(checkpoint)
        info = read_info(source)
        if validate is not None:
            validate(info)
        digest = sha256_file(source)
        with self._locked() as state:
            for entry in state["versions"].values():
                if entry["sha256"] == digest:
                    return ModelVersion(**entry), False
            number = 1 + max((int(v.lstrip("v")) for v in state["versions"]), default=0)
            version = f"v{number}"
            target_dir = self.root / version
            target_dir.mkdir(parents=True, exist_ok=False)
            target = target_dir / CHECKPOINT_NAME
            shutil.copyfile(source, target)
            os.chmod(target, 0o444)
            if sha256_file(target) != digest:
                shutil.rmtree(target_dir)
                raise CheckpointError(f"{source}: copy into the registry did not verify")
            entry = ModelVersion(
                version=version,
                sha256=digest,
                file=f"{version}/{CHECKPOINT_NAME}",
                registered=datetime.now(UTC).isoformat(timespec="seconds"),
                source_name=source.name,
                research_only=info.research_only,
                metrics=info.metrics,
                threshold=info.threshold,
                backbone=str(info.model_config.get("backbone", "?")),
            )
            state["versions"][version] = asdict(entry)
        return entry, True

    def activate(self, version: str) -> ModelVersion:
        """Make ``version`` the one workers load (its hash is verified first)."""
        entry = self.get(version)
        self.verify(entry)
        with self._locked() as state:
            if state["active"] != version:
                state["active"] = version
                state["history"].append(version)
        return entry

    def rollback(self) -> ModelVersion:
        """Re-activate the version that was active before the current one."""
        with self._locked() as state:
            history: list[str] = state["history"]
            if len(history) < 2:
                raise CheckpointError("nothing to roll back to: fewer than two activations")
            history.pop()
            previous = history[-1]
            entry = ModelVersion(**state["versions"][previous])
            self.verify(entry)
            state["active"] = previous
        return entry
