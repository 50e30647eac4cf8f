"""Builders shared by tests of several packages: a registered tiny model, synthetic studies."""

from __future__ import annotations

from pathlib import Path

TINY_INPUT_SIZE = (64, 52)


def make_tiny_registry(
    root: Path,
    seed: int = 0,
    guard_threshold: float | None = None,
    *,
    preset: str = "brgan",
    metrics: dict[str, float] | None = None,
) -> tuple[str, str]:
    """Register and activate an untrained tiny BR-GAN (real weights, real outputs) in ``root``.

    Untrained on purpose: plumbing tests check that real scores flow through the system, not
    what they are. ``guard_threshold``: give it a domain-shift guard (unit-variance features)
    with that distance threshold (0 flags every image, 1e9 none). ``preset``/``metrics``: another
    model preset and the card's metrics (default ``{"auc": 0.5}``). Returns
    ``(version, sha256)``.
    """
    import torch

    from brgan_core.checkpoint import CheckpointInfo, save_checkpoint
    from brgan_core.model import BRGANConfig, build_model
    from brgan_core.registry import Registry

    torch.manual_seed(seed)
    config = BRGANConfig.preset(preset, backbone="tiny")
    model = build_model(config)
    info = CheckpointInfo(
        model_config=config.to_dict(),
        preprocessing={"size": list(TINY_INPUT_SIZE)},
        metrics=metrics or {"auc": 0.5},
        threshold=0.5,
        research_only=True,
        notes="untrained tiny model for tests",
    )
    if guard_threshold is not None:
        import dataclasses

        import numpy as np

        from brgan_core.shift import FeatureGuard

        channels = 2 * (16 + 32)  # the guard descriptor of the tiny backbone (STYLE_LAYERS)
        guard = FeatureGuard(
            mean=np.zeros(channels),
            components=np.eye(1, channels),
            variances=np.ones(1),
            residual_variance=1.0,
            threshold=guard_threshold,
            percentile=99.0,
            n_train=100,
            n_val=100,
        )
        info = dataclasses.replace(info, feature_guard=guard.to_dict())
    checkpoint = root.parent / f"{root.name}-tiny.safetensors"
    save_checkpoint(checkpoint, model.state_dict(), info)
    registry = Registry(root)
    entry, _ = registry.register(checkpoint)
    registry.activate(entry.version)
    return entry.version, entry.sha256


def write_synth_studies(out: Path, patients: int = 1, seed: int = 3) -> list[dict[str, str]]:
    """Write ``patients`` small 4-view synthetic studies (bench-cpu size); manifest rows."""
    import csv

    from brgan_core.synth import get_preset, write_dataset

    manifest = write_dataset(out, patients, get_preset("bench-cpu"), seed)
    with manifest.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["path"] = str((manifest.parent / row["path"]).resolve())
    return rows


#: The demo model shipped in the repository (deploy/models/brgan-demo/, issue 11 §6).
SHIPPED_DEMO_MODEL = (
    Path(__file__).resolve().parents[1] / "deploy" / "models" / "brgan-demo" / "model.safetensors"
)


def register_shipped_demo_model(root: Path) -> tuple[str, str]:
    """Register and activate the shipped demo model in the registry at ``root``."""
    from brgan_core.registry import Registry

    assert SHIPPED_DEMO_MODEL.is_file(), f"the shipped demo model {SHIPPED_DEMO_MODEL} is missing"
    registry = Registry(root)
    entry, _ = registry.register(SHIPPED_DEMO_MODEL)
    registry.activate(entry.version)
    return entry.version, entry.sha256
