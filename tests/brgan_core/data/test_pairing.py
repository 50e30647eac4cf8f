from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from brgan_core.data.pairing import DUPLICATE_IMAGE, NO_CONTRALATERAL, pair_images
from brgan_core.data.records import ReadReport

from .helpers import accounted, image


def _summary(report: ReadReport) -> list[tuple[str, str]]:
    return [(str(p.target.path), str(p.contralateral.path)) for p in report.pairs]


def test_four_view_study_gives_four_pairs() -> None:
    views = [
        image("p1", s, v, study="s1", label=int(s == "L")) for s in "LR" for v in ("CC", "MLO")
    ]
    report = pair_images(views)
    assert report.images == 4 and report.dropped == {}
    assert len(report.pairs) == 4
    for pair in report.pairs:
        assert pair.target.view == pair.contralateral.view
        assert {pair.target.laterality, pair.contralateral.laterality} == {"L", "R"}
        assert pair.label == pair.target.label
    assert sum(p.label for p in report.pairs) == 2


def test_never_pairs_across_view_codes() -> None:
    report = pair_images(
        [
            image("p", "L", "CC"),
            image("p", "R", "MLO"),
            image("p", "L", "ML"),
            image("p", "R", "XCCL"),
        ]
    )
    assert report.pairs == []
    assert report.dropped == {NO_CONTRALATERAL: 4}


def test_view_codes_compare_case_insensitively() -> None:
    report = pair_images([image("p", "L", "mlo"), image("p", "R", "MLO")])
    assert len(report.pairs) == 2


def test_never_pairs_across_patients_or_studies() -> None:
    report = pair_images(
        [
            image("p1", "L", "CC", study="a"),
            image("p1", "R", "CC", study="b"),
            image("p2", "R", "CC", study="a"),
            image("p3", "L", "CC"),
            image("p3", "R", "CC"),
        ]
    )
    assert [(p.target.patient_id, p.target.laterality) for p in report.pairs] == [
        ("p3", "L"),
        ("p3", "R"),
    ]
    assert report.dropped == {NO_CONTRALATERAL: 3}


def test_duplicate_path_dropped_and_counted() -> None:
    left = image("p", "L", "CC")
    report = pair_images([left, left, image("p", "R", "CC")])
    assert report.images == 3
    assert report.dropped == {DUPLICATE_IMAGE: 1}
    assert len(report.pairs) == 2
    assert accounted(report) == report.images


def test_repeated_view_keeps_all_targets_and_first_contralateral() -> None:
    records = [
        image("p", "L", "CC", sop="2"),
        image("p", "L", "CC", sop="1"),
        image("p", "R", "CC", sop="9"),
        image("p", "R", "CC", sop="3"),
    ]
    report = pair_images(records)
    assert len(report.pairs) == 4
    by_target = {(p.target.laterality, p.target.sop_instance_uid): p for p in report.pairs}
    assert by_target["L", "1"].contralateral.sop_instance_uid == "3"
    assert by_target["L", "2"].contralateral.sop_instance_uid == "3"
    assert by_target["R", "9"].contralateral.sop_instance_uid == "1"


def test_given_report_keeps_caller_counts() -> None:
    report = ReadReport(images=7)
    report.drop("no label", 2)
    pair_images([image("p", "L", "CC"), image("p", "R", "CC"), image("q", "L", "CC")], report)
    assert report.images == 7
    assert report.dropped == {"no label": 2, NO_CONTRALATERAL: 1}
    assert len(report.pairs) == 2


_records = st.lists(
    st.builds(
        image,
        st.sampled_from(["p1", "p2", "p3"]),
        st.sampled_from(["L", "R"]),
        st.sampled_from(["CC", "MLO", "ML"]),
        study=st.sampled_from(["", "s1", "s2"]),
        sop=st.sampled_from(["1", "2", "3"]),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(_records, st.randoms(use_true_random=False))
def test_pairing_is_order_independent_and_accounts_for_every_image(
    records: list, rnd: random.Random
) -> None:
    report = pair_images(records)
    shuffled = list(records)
    rnd.shuffle(shuffled)
    assert _summary(pair_images(shuffled)) == _summary(report)
    assert accounted(report) == len(records)
    for pair in report.pairs:
        t, c = pair.target, pair.contralateral
        assert (t.patient_id, t.study_uid, t.view) == (c.patient_id, c.study_uid, c.view)
        assert t.laterality != c.laterality
