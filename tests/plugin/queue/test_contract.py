"""The coordinator ↔ worker contract validates, round-trips, and accepts the previous schema."""

from __future__ import annotations

import json

import pytest

from plugin.queue.contract import (
    DEMO_LABEL,
    RESEARCH_LABEL,
    ContractError,
    ImageRef,
    ModelRef,
    NotAnalyzed,
    ResultFile,
    StudySummary,
    StudyTask,
    TaskPair,
)
from tests.plugin.results.conftest import SHA, provenance


def _task() -> StudyTask:
    pairs = (
        TaskPair(
            ImageRef("1.1", "/s/1.1.dcm", "L", "CC", ("A", "R")),
            ImageRef("1.2", "/s/1.2.dcm", "R", "CC", ("P", "L")),
        ),
        TaskPair(
            ImageRef("1.2", "/s/1.2.dcm", "R", "CC", ("P", "L")),
            ImageRef("1.1", "/s/1.1.dcm", "L", "CC", ("A", "R")),
        ),
    )
    return StudyTask(
        study_uid="1.2.3",
        study_version=2,
        queued_at=1_764_000_000.5,
        model=ModelRef("v3", SHA),
        pairs=pairs,
        not_analyzed=(NotAnalyzed("1.9", "not an image (SOP class Basic Text SR Storage)"),),
        supersedes=(
            ResultFile(
                "tid1500_sr", "/r/sr.dcm", "2.25.1", "1.2.840.10008.5.1.4.1.1.88.33", "2.25.2"
            ),
        ),
    )


def test_task_round_trips_through_json() -> None:
    task = _task()
    again = StudyTask.from_json(json.loads(json.dumps(task.to_json())))
    assert again == task
    assert set(task.images()) == {"1.1", "1.2"}


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("study_uid",), None, "missing key 'study_uid'"),
        (("queued_at",), "yesterday", "'queued_at' must be float"),
        (("pairs", 0, "target", "laterality"), "B", "laterality must be 'L' or 'R'"),
        (("pairs", 0, "contralateral", "laterality"), "L", "same laterality"),
        (("model", "sha256"), "abc", "64 hex"),
        (("schema",), 7, "schema 7 is not supported"),
    ],
)
def test_task_from_json_is_strict_and_names_the_key(path, value, message) -> None:
    data = _task().to_json()
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    with pytest.raises(ContractError, match=message):
        StudyTask.from_json(data)


def test_previous_schema_is_accepted_during_an_upgrade() -> None:
    legacy = {
        "schema": 1,
        "study_uid": "1.2.3",
        "study_version": 1,
        "model": {"version": "v3", "sha256": SHA},
        "pairs": [
            {
                "target": {"sop_instance_uid": "1.1", "path": "/s/1.1.dcm"},
                "contralateral": {"sop_instance_uid": "1.2", "path": "/s/1.2.dcm"},
                "laterality": "L",
                "view": "CC",
            }
        ],
    }
    task = StudyTask.from_json(legacy)
    assert task.schema == 1 and task.pairs[0].contralateral.laterality == "R"
    assert task.pairs[0].target.patient_orientation is None  # the worker falls back to pixels


def test_provenance_labels_follow_one_rule() -> None:
    assert provenance(synthetic=True).labels == (RESEARCH_LABEL, DEMO_LABEL)
    assert provenance(synthetic=False).labels == (RESEARCH_LABEL,)  # research_only is True
    with pytest.raises(ContractError, match="not a probability"):
        provenance(threshold=1.5)


def test_summary_round_trips_and_rejects_a_score_out_of_range() -> None:
    from plugin.queue.contract import ImageScore

    image = ImageScore(
        "1.1", "1.2", "L", "CC", 0.4, False, ((0.0, 0.0), (2.0, 0.0), (0.0, 0.0)), (1.0, 1.0)
    )
    summary = StudySummary(
        "1.2.3",
        2,
        "t",
        provenance(),
        (image,),
        (),
        {"L": 0.4, "R": None},
        0.4,
        (),
        {"total_s": 1.0},
    )
    assert StudySummary.from_json(json.loads(json.dumps(summary.to_json()))) == summary
    with pytest.raises(ContractError, match="out of"):
        ImageScore("1.1", "1.2", "L", "CC", 1.4, True, None, None)


def test_result_uids_are_deterministic_and_distinct() -> None:
    from plugin.results.inputs import result_uid

    a = result_uid("1.2.3", 1, "v3", "tid1500_sr")
    assert a == result_uid("1.2.3", 1, "v3", "tid1500_sr") and a.startswith("2.25.")
    others = {
        result_uid("1.2.3", 2, "v3", "tid1500_sr"),
        result_uid("1.2.3", 1, "v4", "tid1500_sr"),
        result_uid("1.2.3", 1, "v3", "cad_sr"),
        result_uid("1.2.3", 1, "v3", "tid1500_sr", series=True),
        result_uid("1.2.3", 1, "v3", "heatmap_sc", "1.1"),
    }
    assert a not in others and len(others) == 5 and all(len(u) <= 64 for u in others | {a})


def test_a_target_scored_alone_is_schema_3_and_only_there() -> None:
    """issue 11 §4: a pair without a contralateral travels as schema 3 (so a previous-release
    worker refuses it by its schema instead of misreading it); a schema-2 payload with a null
    contralateral is refused, naming the key; the score's contralateral_uid may be null but
    must be present."""
    from dataclasses import replace

    from plugin.queue.contract import ImageScore

    task = _task()
    alone = replace(task, pairs=(TaskPair(task.pairs[0].target, None),))
    data = json.loads(json.dumps(alone.to_json()))
    assert data["schema"] == 3 and data["pairs"][0]["contralateral"] is None
    again = StudyTask.from_json(data)
    assert again.pairs == alone.pairs and set(again.images()) == {"1.1"}
    assert _task().to_json()["schema"] == 2  # every pair has its contralateral
    data["schema"] = 2
    with pytest.raises(ContractError, match=r"contralateral.*must be dict"):
        StudyTask.from_json(data)
    image = ImageScore("1.1", None, "L", "CC", 0.4, False, None, None, warnings=("alone",))
    assert ImageScore.from_json(json.loads(json.dumps(image.to_json())), "i") == image
    payload = image.to_json()
    del payload["contralateral_uid"]
    with pytest.raises(ContractError, match="missing key 'contralateral_uid'"):
        ImageScore.from_json(payload, "i")
