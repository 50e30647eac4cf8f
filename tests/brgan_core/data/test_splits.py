from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brgan_core.data.pairing import pair_images
from brgan_core.data.splits import SPLIT_NAMES, split_pairs, split_patients

from .helpers import image


def test_eight_one_one_on_100_patients() -> None:
    assignment = split_patients([f"p{i}" for i in range(100)], seed=3)
    assert Counter(assignment.values()) == {"train": 80, "val": 10, "test": 10}


def test_small_datasets_still_fill_every_split() -> None:
    assert Counter(split_patients(["a", "b", "c"]).values()) == {"train": 1, "val": 1, "test": 1}
    assert Counter(split_patients(["a", "b"]).values()) == {"train": 2}


def test_seed_changes_the_split_and_is_reproducible() -> None:
    ids = [f"p{i}" for i in range(50)]
    assert split_patients(ids, seed=1) == split_patients(ids, seed=1)
    assert split_patients(ids, seed=1) != split_patients(ids, seed=2)


def test_stratified_by_patient_label() -> None:
    ids = [f"p{i}" for i in range(100)]
    labels = {p: int(i < 20) for i, p in enumerate(ids)}
    assignment = split_patients(ids, labels=labels)
    malignant = Counter(assignment[p] for p in ids if labels[p])
    assert malignant == {"train": 16, "val": 2, "test": 2}
    assert Counter(assignment.values()) == {"train": 80, "val": 10, "test": 10}
    # small and unbalanced: the sizes stay 8:1:1 of the whole, each stratum is spread
    small = [f"q{i}" for i in range(10)]
    assignment = split_patients(small, labels={p: int(i < 5) for i, p in enumerate(small)})
    assert Counter(assignment.values()) == {"train": 8, "val": 1, "test": 1}
    assert Counter(assignment[p] for p in small[:5])["train"] == 4


@pytest.mark.parametrize("ratios", [(0.5, 0.5), (0.8, 0.1, 0.2), (1.1, -0.05, -0.05)])
def test_bad_ratios_refused(ratios: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="ratios"):
        split_patients(["a"], ratios=ratios)


def test_split_pairs_keeps_patients_together() -> None:
    records = [
        image(f"p{i}", s, v, label=int(i % 5 == 0 and s == "L"))
        for i in range(30)
        for s in "LR"
        for v in ("CC", "MLO")
    ]
    splits = split_pairs(pair_images(records).pairs, seed=7)
    seen: dict[str, str] = {}
    for name in SPLIT_NAMES:
        for pair in splits[name]:
            assert seen.setdefault(pair.patient_id, name) == name
    assert sum(len(splits[n]) for n in SPLIT_NAMES) == 120
    assert len(splits.train) == 96  # 24 of 30 patients, 4 pairs each
    with pytest.raises(KeyError):
        splits["holdout"]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.text(min_size=1, max_size=8), max_size=60),
    st.integers(0, 2**31),
    st.randoms(use_true_random=False),
)
def test_split_property(ids: list[str], seed: int, rnd: random.Random) -> None:
    assignment = split_patients(ids, seed=seed)
    assert set(assignment) == set(ids)
    assert set(assignment.values()) <= set(SPLIT_NAMES)
    shuffled = ids + ids[: len(ids) // 2]
    rnd.shuffle(shuffled)
    assert split_patients(shuffled, seed=seed) == assignment
    n = len(set(ids))
    counts = Counter(assignment.values())
    assert abs(counts["train"] - 0.8 * n) <= 2


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 25), st.sampled_from("LR"), st.sampled_from(["CC", "MLO"])),
        max_size=80,
        unique=True,
    ),
    st.sets(st.integers(0, 25)),
    st.integers(0, 1000),
    st.randoms(use_true_random=False),
)
def test_split_pairs_property(
    views: list[tuple[int, str, str]], malignant: set[int], seed: int, rnd: random.Random
) -> None:
    records = [
        image(f"p{i}", side, view, label=int(i in malignant and side == "L"))
        for i, side, view in views
    ]
    pairs = pair_images(records).pairs
    splits = split_pairs(pairs, seed=seed)
    where: dict[str, set[str]] = {}
    for name in SPLIT_NAMES:
        for pair in splits[name]:
            where.setdefault(pair.patient_id, set()).add(name)
    assert all(len(names) == 1 for names in where.values())  # never a patient in two splits
    assert sum(len(splits[n]) for n in SPLIT_NAMES) == len(pairs)
    shuffled = list(pairs)
    rnd.shuffle(shuffled)
    again = split_pairs(shuffled, seed=seed)
    for name in SPLIT_NAMES:
        assert sorted(str(p.target.path) for p in again[name]) == sorted(
            str(p.target.path) for p in splits[name]
        )
