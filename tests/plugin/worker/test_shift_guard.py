"""The shipped demo model's domain-shift guard on real and on foreign synthetic images.

The model was trained on ``bench-cpu`` phantoms (deploy/models/brgan-demo/). Its guard must let
in-distribution studies through and flag what it never saw: the real GE mammogram GH133 (the
one real fixture that reaches inference) and images of another synthetic preset (other size,
contrast and texture, ``bench/shift_guard.py``'s :func:`shifted_preset`).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from brgan_core.checkpoint import sha256_file
from brgan_core.inference import load_model
from brgan_core.preprocess import preprocess
from brgan_core.shift import pooled_features
from brgan_core.synth import get_preset, write_dataset

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "deploy" / "models" / "brgan-demo" / "model.safetensors"


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def loaded():
    assert SHIPPED.is_file(), f"the shipped demo model {SHIPPED} is missing"
    model = load_model(SHIPPED, sha256_file(SHIPPED), "demo", "cpu")
    assert model.guard is not None, "the shipped demo model has no domain-shift guard"
    return model


def _distances(loaded, paths: list[Path]) -> np.ndarray:
    images = [preprocess(p, size=loaded.input_size).image for p in paths]
    return loaded.guard.distance(pooled_features(loaded.model, images))


def test_in_distribution_studies_pass(loaded, tmp_path: Path) -> None:
    write_dataset(tmp_path, 6, get_preset("bench-cpu"), 77)  # unseen seed, same preset
    d = _distances(loaded, sorted(tmp_path.rglob("*.dcm")))
    assert len(d) == 24
    assert np.mean(d > loaded.guard.threshold) <= 2 / 24  # the test-set rate: docs/model.md


def test_another_synthetic_preset_is_flagged(loaded, tmp_path: Path) -> None:
    write_dataset(tmp_path, 3, _bench("shift_guard").shifted_preset(), 5)
    d = _distances(loaded, sorted(tmp_path.rglob("*.dcm")))
    assert np.all(d > loaded.guard.threshold), d


def test_the_real_ge_mammogram_is_flagged(loaded, real_mg_dir: Path) -> None:
    d = _distances(loaded, [real_mg_dir / "GH133.dcm"])
    assert d[0] > loaded.guard.threshold, (d, loaded.guard.threshold)
