"""Pair datasets: items, collation, caching, random healthy references, fingerprints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from brgan_core.data.records import ImageRecord, PairRecord
from brgan_core.model import Batch
from brgan_core.training import ArrayPairDataset, PairDataset, collate_pairs, data_fingerprint


@dataclass
class Fake:
    image: np.ndarray
    mask: np.ndarray


class FakeLoader:
    """Images whose value encodes the file (so tests can tell which one was loaded)."""

    def __init__(self) -> None:
        self.calls: list[Path] = []

    def __call__(self, path: Path, size: tuple[int, int]) -> Fake:
        self.calls.append(path)
        value = (int(path.stem.split("-")[-1]) % 100) / 100
        return Fake(np.full(size, value, np.float32), np.ones(size, bool))


def record(patient: str, side: str, view: str, label: int, n: int) -> ImageRecord:
    return ImageRecord(Path(f"/d/{patient}-{side}{view}-{n}.dcm"), patient, side, view, label)  # type: ignore[arg-type]


def make_pairs() -> list[PairRecord]:
    pairs = []
    n = 0
    for p, malignant in (("p1", 1), ("p2", 0), ("p3", 0)):
        for view in ("CC", "MLO"):
            left = record(p, "L", view, malignant, n)
            right = record(p, "R", view, 0, n + 1)
            n += 2
            pairs += [PairRecord(left, right), PairRecord(right, left)]
    return pairs


def test_array_dataset_and_collate() -> None:
    data = ArrayPairDataset(
        np.zeros((3, 8, 6)), np.ones((3, 8, 6)), [0, 1, 0], contralateral_label=[1, 0, 0]
    )
    assert len(data) == 3
    item = data[1]
    assert item["target"].shape == (1, 8, 6) and item["label"] == 1
    batch = collate_pairs([data[i] for i in range(3)])
    assert isinstance(batch, Batch)
    assert batch.target.shape == batch.target_mask.shape == (3, 1, 8, 6)
    assert torch.equal(batch.contralateral_label, torch.tensor([1, 0, 0]))
    assert torch.equal(batch.target_mask, torch.ones(3, 1, 8, 6))
    with pytest.raises(ValueError, match="shape"):
        ArrayPairDataset(np.zeros((3, 8, 6)), np.zeros((3, 8, 5)), [0, 1, 0])


def test_pair_dataset_reads_and_caches() -> None:
    pairs = make_pairs()
    loader = FakeLoader()
    data = PairDataset(pairs, (8, 6), loader=loader)
    item = data[0]
    assert item["label"] == 1 and item["contralateral_label"] == 0
    assert item["target"].shape == (1, 8, 6)
    assert float(item["target"][0, 0, 0]) == pytest.approx(0.0)
    assert float(item["contralateral"][0, 0, 0]) == pytest.approx(0.01)
    data[0]
    data[1]  # same two files, swapped
    assert len(loader.calls) == 2
    uncached = PairDataset(pairs, (8, 6), loader=loader, cache=False)
    uncached[0]
    uncached[0]
    assert len(loader.calls) == 6


def test_random_healthy_reference() -> None:
    pairs = make_pairs()
    data = PairDataset(pairs, (8, 6), loader=FakeLoader(), reference="random_healthy", seed=3)
    picks = {}
    for epoch in range(6):
        data.set_epoch(epoch)
        for i, pair in enumerate(pairs):
            ref = data.healthy_reference(i)
            assert ref.label == 0
            assert ref.patient_id != pair.target.patient_id
            assert ref.view == pair.target.view
            picks[(epoch, i)] = ref.path
    data.set_epoch(2)
    assert data.healthy_reference(0).path == picks[(2, 0)]  # repeatable
    assert len({picks[(e, 0)] for e in range(6)}) > 1  # redrawn across epochs
    item = data[0]
    assert item["contralateral_label"] == 0


def test_random_healthy_needs_other_patients() -> None:
    only = [p for p in make_pairs() if p.patient_id == "p1"]
    data = PairDataset(only, (8, 6), loader=FakeLoader(), reference="random_healthy")
    with pytest.raises(ValueError, match="another patient"):
        data[0]


def test_fingerprint_ignores_order() -> None:
    pairs = make_pairs()
    assert data_fingerprint(pairs) == data_fingerprint(list(reversed(pairs)))
    assert data_fingerprint(pairs) != data_fingerprint(pairs[1:])
