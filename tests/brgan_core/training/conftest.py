"""Training tests: one CPU thread, tiny model, tiny synthetic pairs, a small synthetic manifest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from brgan_core.synth import get_preset, write_dataset

    out = tmp_path_factory.mktemp("synth")
    return write_dataset(out, 10, get_preset("bench-cpu"), seed=1)


def toml(manifest: Path, out: Path, extra: str = "") -> str:
    return f"""
out_dir = "{out}"
epochs = 1
batch_size = 8
device = "cpu"
max_steps_per_epoch = 2
{extra}

[data]
kind = "manifest"
root = "{manifest}"
size = [64, 52]

[model]
preset = "brgan"
backbone = "tiny"
"""
