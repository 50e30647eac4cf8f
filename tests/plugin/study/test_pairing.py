"""plan_study(): dedupe, latest-wins, patient checks, same-code pairing, complete, pairs_key."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.study.header import InstanceHeader
from plugin.study.pairing import NO_CONTRALATERAL, Pair, StudyPlan, plan_study
from tests.plugin.study.conftest import make_header


def four_views(**kwargs) -> list[InstanceHeader]:
    return [
        make_header(side, view, sop_uid=f"1.9.{side}.{view}", **kwargs)
        for side in ("L", "R")
        for view in ("CC", "MLO")
    ]


def test_standard_study_four_pairs_complete() -> None:
    plan = plan_study(four_views())
    assert plan.complete
    assert plan.not_analyzed == {}
    assert plan.pairs == (
        Pair("1.9.L.CC", "1.9.R.CC", "L", "CC"),
        Pair("1.9.R.CC", "1.9.L.CC", "R", "CC"),
        Pair("1.9.L.MLO", "1.9.R.MLO", "L", "MLO"),
        Pair("1.9.R.MLO", "1.9.L.MLO", "R", "MLO"),
    )
    assert set(plan.classifications) == {h.sop_instance_uid for h in four_views()}


def test_missing_view_gives_no_contralateral_and_incomplete() -> None:
    headers = [h for h in four_views() if h.sop_instance_uid != "1.9.R.MLO"]
    plan = plan_study(headers)
    assert not plan.complete
    assert len(plan.pairs) == 2
    assert plan.not_analyzed == {"1.9.L.MLO": "no contralateral view (no R MLO)"}


def test_score_unpaired_plans_the_target_alone() -> None:
    """A model whose card allows it (issue 11 §4): the unpaired target becomes a pair with no
    contralateral, not a "not analyzed"; the other pairs and completeness are unchanged."""
    headers = [h for h in four_views() if h.sop_instance_uid != "1.9.R.MLO"]
    plan = plan_study(headers, score_unpaired=True)
    assert not plan.complete and plan.not_analyzed == {}
    assert Pair("1.9.L.MLO", NO_CONTRALATERAL, "L", "MLO") in plan.pairs
    assert len(plan.pairs) == 3
    assert StudyPlan.from_json(plan.to_json()).pairs == plan.pairs
    assert plan.pairs_key() != plan_study(headers).pairs_key()
    # unusable images stay not analyzed with their own reason
    spot = make_header("R", "CC", sop_uid="1.9.R.CC.spot", modifiers=(("399055006", "SCT"),))
    other = plan_study([*headers, spot], score_unpaired=True)
    assert other.not_analyzed["1.9.R.CC.spot"].startswith("spot compression view")


def test_unusable_contralateral_leaves_target_unpaired() -> None:
    headers = [h for h in four_views() if h.sop_instance_uid != "1.9.R.CC"]
    headers.append(
        make_header("R", "CC", sop_uid="1.9.R.CC.spot", modifiers=(("399055006", "SCT"),))
    )
    plan = plan_study(headers)
    assert not plan.complete
    assert plan.not_analyzed["1.9.L.CC"] == "no contralateral view (no R CC)"
    assert plan.not_analyzed["1.9.R.CC.spot"].startswith("spot compression view")


@pytest.mark.parametrize("view", ["ML", "XCCL", "LM", "FB"])
def test_extra_views_pair_only_with_the_same_code(view: str) -> None:
    headers = [
        *four_views(),
        make_header("L", view, sop_uid="1.9.L.x"),
        make_header("R", view, sop_uid="1.9.R.x"),
    ]
    plan = plan_study(headers)
    assert Pair("1.9.L.x", "1.9.R.x", "L", view) in plan.pairs
    assert Pair("1.9.R.x", "1.9.L.x", "R", view) in plan.pairs
    assert len(plan.pairs) == 6


def test_ml_never_pairs_with_mlo() -> None:
    headers = [
        make_header("L", "ML", sop_uid="1.9.L.ML"),
        make_header("R", "MLO", sop_uid="1.9.R.MLO"),
    ]
    plan = plan_study(headers)
    assert plan.pairs == ()
    assert plan.not_analyzed == {
        "1.9.L.ML": "no contralateral view (no R ML)",
        "1.9.R.MLO": "no contralateral view (no L MLO)",
    }


def test_xccl_never_pairs_with_cc() -> None:
    plan = plan_study([make_header("L", "XCCL", sop_uid="a"), make_header("R", "CC", sop_uid="b")])
    assert plan.pairs == ()


def test_duplicate_view_latest_acquisition_wins() -> None:
    early = make_header("L", "CC", sop_uid="1.9.L.CC.early", acquired_time="090000")
    late = make_header("L", "CC", sop_uid="1.9.L.CC", acquired_time="101500")
    others = [h for h in four_views() if h.sop_instance_uid != "1.9.L.CC"]
    plan = plan_study([late, early, *others])
    assert Pair("1.9.L.CC", "1.9.R.CC", "L", "CC") in plan.pairs
    assert plan.not_analyzed == {
        "1.9.L.CC.early": "superseded by a later acquisition of the same view (L CC: 1.9.L.CC)"
    }


def test_duplicate_view_without_times_is_decided_deterministically() -> None:
    a = make_header("L", "CC", sop_uid="1.9.a", AcquisitionDate=None, InstanceNumber=1)
    b = make_header("L", "CC", sop_uid="1.9.b", AcquisitionDate=None, InstanceNumber=2)
    r = make_header("R", "CC", sop_uid="1.9.r")
    assert plan_study([a, b, r]) == plan_study([r, b, a])
    assert plan_study([a, b, r]).not_analyzed["1.9.a"].startswith("superseded")


def test_superseded_only_among_usable_images() -> None:
    later_spot = make_header(
        "L",
        "CC",
        sop_uid="1.9.L.CC.spot",
        acquired_time="120000",
        modifiers=(("399055006", "SCT"),),
    )
    plan = plan_study([*four_views(), later_spot])
    assert plan.complete
    assert Pair("1.9.L.CC", "1.9.R.CC", "L", "CC") in plan.pairs


def test_patient_id_minority_excluded() -> None:
    intruder = make_header(
        "L", "CC", sop_uid="1.9.other", patient_id="SOMEONE-ELSE", acquired_time="235959"
    )
    plan = plan_study([*four_views(), intruder])
    assert plan.not_analyzed == {
        "1.9.other": "outside intended use: PatientID differs from the rest of the study"
    }
    assert Pair("1.9.L.CC", "1.9.R.CC", "L", "CC") in plan.pairs
    assert "SOMEONE-ELSE" not in json.dumps(plan.to_json())


def test_patient_id_tie_excludes_everything() -> None:
    headers = [
        make_header("L", "CC", sop_uid="a", patient_id="P1"),
        make_header("R", "CC", sop_uid="b", patient_id="P2"),
    ]
    plan = plan_study(headers)
    assert plan.pairs == ()
    assert set(plan.not_analyzed.values()) == {
        "outside intended use: PatientID differs within the study (no majority)"
    }


def test_non_images_do_not_vote_on_patient_id() -> None:
    sr = [
        make_header(
            None,
            None,
            sop_uid=f"sr{i}",
            patient_id="X",
            SOPClassUID="1.2.840.10008.5.1.4.1.1.88.22",
            Modality="SR",
        )
        for i in range(5)
    ]
    plan = plan_study([*four_views(), *sr])
    assert len(plan.pairs) == 4
    assert plan.not_analyzed["sr0"] == "not an image (SOP class Enhanced SR Storage)"


def test_loop_guard_objects_recorded_not_paired() -> None:
    ours = make_header(
        "L",
        "CC",
        sop_uid="1.9.ours",
        Manufacturer="brgan-pacs",
        SOPClassUID="1.2.840.10008.5.1.4.1.1.7",
        acquired_time="235959",
    )
    plan = plan_study([*four_views(), ours])
    assert len(plan.pairs) == 4
    assert plan.not_analyzed == {"1.9.ours": "our own result object (loop guard)"}


def test_every_instance_is_paired_or_has_a_reason() -> None:
    headers = [
        *four_views(),
        make_header("L", "ML", sop_uid="ml"),
        make_header("R", "CC", sop_uid="male", PatientSex="M"),
        make_header("L", "MLO", sop_uid="raw", PresentationIntentType="FOR PROCESSING"),
        make_header("R", "MLO", sop_uid="empty", has_pixel_data=False),
    ]
    plan = plan_study(headers)
    targets = {p.target_uid for p in plan.pairs}
    for h in headers:
        assert (h.sop_instance_uid in targets) != (h.sop_instance_uid in plan.not_analyzed)


def test_duplicates_of_one_uid_are_idempotent() -> None:
    headers = four_views()
    assert plan_study(headers + headers) == plan_study(headers)


def test_mixed_studies_rejected() -> None:
    with pytest.raises(ValueError, match="group them by StudyInstanceUID"):
        plan_study([make_header(sop_uid="a"), make_header(sop_uid="b", study_uid="1.2.3")])
    with pytest.raises(ValueError):
        plan_study([])


def test_pairs_key_stable_and_sensitive() -> None:
    plan = plan_study(four_views())
    assert plan.pairs_key() == plan_study(list(reversed(four_views()))).pairs_key()
    with_sr = plan_study(
        [
            *four_views(),
            make_header(None, None, sop_uid="sr", SOPClassUID="1.2.840.10008.5.1.4.1.1.88.22"),
        ]
    )
    assert with_sr.pairs_key() == plan.pairs_key()
    newer = make_header("L", "CC", sop_uid="1.9.L.CC.new", acquired_time="235959")
    assert plan_study([*four_views(), newer]).pairs_key() != plan.pairs_key()


def test_plan_json_round_trip() -> None:
    plan = plan_study([*four_views(), make_header("L", "ML", sop_uid="ml")])
    data = json.loads(json.dumps(plan.to_json()))
    again = StudyPlan.from_json(data)
    assert again == plan
    assert data["pairs_key"] == plan.pairs_key()


# -- property: order and duplicates never change the plan ---------------------------------------

_POOL = [
    *four_views(),
    make_header("L", "CC", sop_uid="dup.early", acquired_time="080000"),
    make_header("R", "MLO", sop_uid="dup.late", acquired_time="110000"),
    make_header("L", "ML", sop_uid="ml.L"),
    make_header("R", "ML", sop_uid="ml.R"),
    make_header("R", "XCCL", sop_uid="xccl.R"),
    make_header("L", "CC", sop_uid="spot", modifiers=(("399055006", "SCT"),)),
    make_header("L", "MLO", sop_uid="other", patient_id="P2"),
    make_header(None, None, sop_uid="sr", SOPClassUID="1.2.840.10008.5.1.4.1.1.88.22"),
    make_header("R", "CC", sop_uid="ours", Manufacturer="brgan-pacs"),
]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(_POOL), min_size=1, max_size=20), st.randoms())
def test_plan_is_order_and_duplicate_invariant(picked, rnd) -> None:
    shuffled = list(picked) + list(picked[: len(picked) // 2])
    rnd.shuffle(shuffled)
    unique = list({h.sop_instance_uid: h for h in picked}.values())
    a, b = plan_study(shuffled), plan_study(unique)
    assert a == b
    assert a.pairs_key() == b.pairs_key()
    targets = {p.target_uid for p in a.pairs}
    for h in unique:
        assert (h.sop_instance_uid in targets) != (h.sop_instance_uid in a.not_analyzed)
    for p in a.pairs:
        assert p.contralateral_uid in targets
        assert a.classifications[p.contralateral_uid].view == p.view
        assert a.classifications[p.contralateral_uid].laterality != p.laterality
