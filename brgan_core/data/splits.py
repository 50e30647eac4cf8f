"""Patient-wise train/validation/test split (paper Sect. 3.1: 8:1:1, patient-wise).

A patient's rank is the SHA-256 of ``"<seed>:<patient_id>"``, so the split depends only on
the set of patients and the seed — not on the order of the input, the Python version or
``PYTHONHASHSEED`` — and no patient ever lands in two splits.

Split sizes are the ratios times the number of patients, rounded by largest remainder; when
there are at least as many patients as splits, every split with a ratio above zero gets at
least one patient.

Stratification (default in :func:`split_pairs`): malignant patients (any image labelled 1) and
the others are each ranked by hash; every patient gets its quantile within its stratum,
``(rank + 0.5) / stratum size``, and the whole list, sorted by quantile, is cut at the split
sizes. The split sizes stay exact and each split keeps about the dataset's share of malignant
patients.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from brgan_core.data.records import PairRecord

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")
DEFAULT_RATIOS: tuple[float, float, float] = (0.8, 0.1, 0.1)


@dataclass
class Splits:
    """The pairs of each split."""

    train: list[PairRecord] = field(default_factory=list)
    val: list[PairRecord] = field(default_factory=list)
    test: list[PairRecord] = field(default_factory=list)

    def __getitem__(self, name: str) -> list[PairRecord]:
        if name not in SPLIT_NAMES:
            raise KeyError(f"unknown split {name!r}; use one of {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)  # type: ignore[no-any-return]


def _rank(seed: int, patient_id: str) -> str:
    return hashlib.sha256(f"{seed}:{patient_id}".encode()).hexdigest()


def _sizes(n: int, ratios: Sequence[float]) -> list[int]:
    exact = [n * r for r in ratios]
    sizes = [math.floor(x) for x in exact]
    order = sorted(range(len(ratios)), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in order[: n - sum(sizes)]:
        sizes[i] += 1
    if n >= sum(1 for r in ratios if r > 0):
        for i, r in enumerate(ratios):
            if r > 0 and sizes[i] == 0:
                sizes[max(range(len(sizes)), key=lambda j: sizes[j])] -= 1
                sizes[i] = 1
    return sizes


def _check_ratios(ratios: Sequence[float]) -> None:
    if len(ratios) != len(SPLIT_NAMES):
        raise ValueError(f"ratios must have {len(SPLIT_NAMES)} values (train, val, test)")
    if any(r < 0 for r in ratios) or not math.isclose(sum(ratios), 1.0, abs_tol=1e-9):
        raise ValueError(f"ratios must be >= 0 and sum to 1, not {tuple(ratios)}")


def split_patients(
    patient_ids: Iterable[str],
    *,
    seed: int = 0,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    labels: Mapping[str, int] | None = None,
) -> dict[str, str]:
    """Map each distinct patient to ``"train"``, ``"val"`` or ``"test"``.

    ``labels`` (patient → 0/1), when given, stratifies: patients with label 1 and the others
    are split separately with the same ratios.
    """
    _check_ratios(ratios)
    patients = set(patient_ids)
    groups: dict[int, list[str]] = {}
    for patient in patients:
        stratum = int(labels.get(patient, 0)) if labels is not None else 0
        groups.setdefault(stratum, []).append(patient)

    keyed: list[tuple[float, str, str]] = []
    for members in groups.values():
        ranked = sorted(members, key=lambda p: (_rank(seed, p), p))
        keyed.extend(((i + 0.5) / len(ranked), _rank(seed, p), p) for i, p in enumerate(ranked))
    ordered = [p for *_, p in sorted(keyed)]

    assignment: dict[str, str] = {}
    start = 0
    for name, size in zip(SPLIT_NAMES, _sizes(len(ordered), ratios), strict=True):
        for patient in ordered[start : start + size]:
            assignment[patient] = name
        start += size
    return assignment


def split_pairs(
    pairs: Iterable[PairRecord],
    *,
    seed: int = 0,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    stratify: bool = True,
) -> Splits:
    """Split pairs patient-wise; pairs keep their input order within each split."""
    pairs = list(pairs)
    labels: dict[str, int] = {}
    for pair in pairs:
        labels[pair.patient_id] = max(labels.get(pair.patient_id, 0), pair.label)
    assignment = split_patients(
        labels, seed=seed, ratios=ratios, labels=labels if stratify else None
    )
    splits = Splits()
    for pair in pairs:
        splits[assignment[pair.patient_id]].append(pair)
    return splits
