"""Shared helpers for the model tests: one CPU thread, tiny images, simple synthetic pairs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from brgan_core.model import Batch
from tests.brgan_core.model.helpers import synthetic_pairs


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """The CPU is shared with other jobs: keep each test on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def pairs() -> Batch:
    return synthetic_pairs(4)
