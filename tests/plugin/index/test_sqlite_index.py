"""The SQLite index: instances, the study state machine, plans/scores, audit, threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from plugin.index import (
    TRANSITIONS,
    IllegalTransition,
    InstanceRecord,
    PairRow,
    SqliteIndex,
    StudyIndexError,
    StudyState,
    UnknownStudy,
    open_index,
)

S = StudyState


def record(sop: str, study: str = "1.2.3", at: float = 100.0, usable: bool = True):
    return InstanceRecord(
        sop_instance_uid=sop,
        study_uid=study,
        series_uid="1.2.3.9",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.1.2",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        path=f"/spool/{study}/{sop}.dcm",
        size=10,
        header_json="{}",
        laterality="L",
        view="CC",
        usable=usable,
        reason=None if usable else "no pixel data",
        received_at=at,
    )


@pytest.fixture
def index(tmp_path: Path) -> SqliteIndex:
    idx = SqliteIndex(tmp_path / "index.sqlite3")
    yield idx
    idx.close()


def test_wal_and_private_file(index: SqliteIndex) -> None:
    assert index._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert oct(index.path.stat().st_mode & 0o777) == "0o600"


def test_record_instance_creates_study_and_upserts(index: SqliteIndex) -> None:
    row = index.record_instance(record("1.1", at=100.0))
    assert row.study_version == 1 and row.receive_count == 1
    index.record_instance(record("1.2", at=105.0, usable=False))
    again = index.record_instance(record("1.1", at=110.0))
    assert again.receive_count == 2
    study = index.get_study("1.2.3")
    assert study.state == S.RECEIVING and study.instance_count == 2
    assert study.first_instance_at == 100.0 and study.last_instance_at == 110.0
    assert [r.sop_instance_uid for r in index.instances("1.2.3")] == ["1.2", "1.1"]
    assert index.instances("1.2.3")[0].reason == "no pixel data"
    assert index.known_paths() == {"/spool/1.2.3/1.1.dcm", "/spool/1.2.3/1.2.dcm"}


def test_full_life_cycle_with_task_id_and_scores(index: SqliteIndex) -> None:
    index.record_instance(record("1.1"))
    index.record_instance(record("1.2"))
    pairs = [
        PairRow("1.2.3", 1, "1.1", "1.2", "L", "CC"),
        PairRow("1.2.3", 1, "1.2", "1.1", "R", "CC"),
    ]
    index.record_plan("1.2.3", 1, pairs_key="k1", plan_json="{}", pairs=pairs, as_of=100.0)
    index.transition("1.2.3", S.READY, expected=S.RECEIVING)
    study = index.transition("1.2.3", S.QUEUED, task_id="task-1", model_version="demo-1")
    assert study.task_id == "task-1" and study.model_version == "demo-1"
    assert index.set_task_id("1.2.3", "task-2").task_id == "task-2"
    index.transition("1.2.3", S.RUNNING)
    index.record_scores("1.2.3", 1, {"1.1": '{"p": 0.1}'})
    study = index.transition("1.2.3", S.PARTIALLY_ANALYZED, error="1 pair failed")
    assert study.finished_at is not None and study.error == "1 pair failed"
    scored = {p.target_uid: p.score_json for p in index.pairs("1.2.3")}
    assert scored == {"1.1": '{"p": 0.1}', "1.2": None}
    assert index.study_counts()[S.PARTIALLY_ANALYZED] == 1
    with pytest.raises(StudyIndexError, match="no pair with target"):
        index.record_scores("1.2.3", 1, {"9.9": "{}"})


def test_illegal_transitions_raise(index: SqliteIndex) -> None:
    index.record_instance(record("1.1"))
    with pytest.raises(IllegalTransition, match="cannot go from receiving to done"):
        index.transition("1.2.3", S.DONE)
    with pytest.raises(IllegalTransition, match="expected state ready"):
        index.transition("1.2.3", S.QUEUED, expected=S.READY)
    with pytest.raises(IllegalTransition):
        index.set_task_id("1.2.3", "t")
    with pytest.raises(UnknownStudy):
        index.transition("9.9", S.READY)
    for source, targets in TRANSITIONS.items():
        assert source not in targets  # no silent self-transitions


def test_new_version_keeps_old_pairs(index: SqliteIndex) -> None:
    index.record_instance(record("1.1", at=100.0))
    index.record_plan(
        "1.2.3",
        1,
        pairs_key="k1",
        plan_json="{}",
        pairs=[PairRow("1.2.3", 1, "1.1", "1.1", "L", "CC")],
        as_of=100.0,
    )
    for state in (S.READY, S.QUEUED, S.DONE):
        index.transition("1.2.3", state)
    assert index.studies_with_new_instances() == []
    index.record_instance(record("1.5", at=200.0))
    [late] = index.studies_with_new_instances()
    assert late.study_uid == "1.2.3"
    reopened = index.open_new_version("1.2.3")
    assert reopened.version == 2 and reopened.state == S.RECEIVING and reopened.finished_at is None
    assert index.pairs("1.2.3") == [] and len(index.pairs("1.2.3", 1)) == 1
    assert index.record_instance(record("1.6", at=201.0)).study_version == 2
    with pytest.raises(IllegalTransition, match="version"):
        index.record_plan("1.2.3", 1, pairs_key="k", plan_json="{}", pairs=[], as_of=1.0)


def test_purge_selection(index: SqliteIndex) -> None:
    index.record_instance(record("1.1"))
    index.record_plan("1.2.3", 1, pairs_key="k", plan_json="{}", pairs=[], as_of=100.0)
    for state in (S.READY, S.QUEUED, S.DONE):
        study = index.transition("1.2.3", state)
    assert index.due_for_purge(study.finished_at - 1) == []
    [due] = index.due_for_purge(study.finished_at + 1)
    index.mark_purged(due.study_uid)
    assert index.due_for_purge(study.finished_at + 1) == []


def test_audit_and_errors(index: SqliteIndex) -> None:
    aid = index.open_association("ORTHANC", "BRGAN", "127.0.0.1", 4242, False)
    index.count_association_instance(aid, True)
    index.count_association_instance(aid, False, "header not readable as DICOM")
    index.close_association(aid, "released")
    index.open_association("EVIL", "BRGAN", "10.0.0.9", 1, True, outcome="rejected", failure="x")
    rejected, first = index.associations()
    assert rejected.outcome == "rejected" and rejected.ended_at is not None and rejected.tls
    assert (first.instances_ok, first.instances_failed) == (1, 1)
    assert first.last_failure == "header not readable as DICOM" and first.outcome == "released"
    index.record_error("store", "0xC000 header not readable", status=0xC000)
    assert index.errors()[0].status == 0xC000


def test_threads_share_one_index(index: SqliteIndex) -> None:
    def work(n: int) -> None:
        for i in range(25):
            index.record_instance(record(f"{n}.{i}", study=f"9.{n % 3}", at=float(i)))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(s.instance_count for s in index.studies()) == 200


def test_readonly_open(tmp_path: Path) -> None:
    with pytest.raises(StudyIndexError, match="does not exist"):
        open_index(tmp_path / "none.sqlite3", readonly=True)
    rw = open_index(tmp_path / "i.sqlite3")
    rw.record_instance(record("1.1"))
    ro = open_index(tmp_path / "i.sqlite3", readonly=True)
    assert ro.get_study("1.2.3").instance_count == 1
    with pytest.raises(StudyIndexError, match="read-only"):
        ro.record_error("x", "y")
    ro.close()
    rw.close()


def test_result_summary_and_new_version_clears_it(index: SqliteIndex) -> None:
    index.record_instance(record("1.1"))
    index.record_plan("1.2.3", 1, pairs_key="k", plan_json="{}", pairs=[], as_of=100.0)
    for state in (S.READY, S.QUEUED, S.DONE):
        index.transition("1.2.3", state)
    assert index.record_result("1.2.3", 1, '{"exam": 0.3}').result_json == '{"exam": 0.3}'
    with pytest.raises(IllegalTransition):
        index.record_result("1.2.3", 2, "{}")
    assert index.open_new_version("1.2.3").result_json is None


def test_old_database_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE studies (study_uid TEXT PRIMARY KEY, state TEXT NOT NULL, "
        "version INTEGER NOT NULL DEFAULT 1, first_instance_at REAL NOT NULL, "
        "last_instance_at REAL NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL, "
        "state_changed_at REAL NOT NULL, planned_at REAL, pairs_key TEXT, plan_json TEXT, "
        "task_id TEXT, model_version TEXT, error TEXT, finished_at REAL, purged_at REAL)"
    )
    conn.execute(
        "CREATE TABLE instances (sop_instance_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL, "
        "series_uid TEXT, sop_class_uid TEXT NOT NULL, transfer_syntax_uid TEXT NOT NULL, "
        "path TEXT NOT NULL, size INTEGER NOT NULL, header_json TEXT NOT NULL, laterality TEXT, "
        "view TEXT, usable INTEGER NOT NULL, reason TEXT, received_at REAL NOT NULL, "
        "association_id INTEGER, study_version INTEGER NOT NULL, "
        "receive_count INTEGER NOT NULL DEFAULT 1)"
    )
    conn.commit()
    conn.close()
    idx = SqliteIndex(path)
    row = idx.record_instance(record("1.1"))
    assert row.acquisition_datetime is None and row.presentation_intent is None
    assert idx.get_study("1.2.3").result_json is None
    idx.close()


def test_study_without_pairs_reaches_not_analyzed_a_final_state(index: SqliteIndex) -> None:
    index.record_instance(record("1.1"))
    index.transition("1.2.3", S.READY)
    study = index.transition("1.2.3", S.NOT_ANALYZED, expected=S.READY, error="no pair")
    assert study.state.is_final and study.finished_at is not None
    assert index.due_for_purge(study.finished_at + 1)  # its spool files age out like the rest
    assert index.open_new_version("1.2.3").version == 2  # a late contralateral re-opens it


def test_same_sop_in_another_study_moves_and_reopens_a_ready_study(index: SqliteIndex) -> None:
    index.record_instance(record("1.1", study="1.2.3", at=100.0))
    index.record_instance(record("1.2", study="1.2.3", at=100.0))
    index.transition("1.2.3", S.READY)
    moved = index.record_instance(record("1.1", study="7.7.7", at=200.0))
    assert (moved.study_uid, moved.moved_from_study) == ("7.7.7", "1.2.3")
    assert moved.moved_from_path == "/spool/1.2.3/1.1.dcm"
    assert index.instance("1.1").study_uid == "7.7.7"
    assert index.instance("1.1").moved_from_study is None  # only on the returned row
    old = index.get_study("1.2.3")
    assert old.state == S.RECEIVING and old.instance_count == 1  # planned again
    again = index.record_instance(record("1.1", study="7.7.7", at=300.0))
    assert again.moved_from_study is None  # a re-send in the same study is no move


def test_error_once_records_a_repeating_error_once(index: SqliteIndex) -> None:
    from plugin.index.once import ErrorOnce

    once = ErrorOnce(index)
    for _ in range(50):
        once.report("coordinator", "_assemble", "ValueError: boom", study_uid="1.2.3")
    assert [e.message for e in index.errors(100)] == ["_assemble: ValueError: boom"]
    assert once.repeats("coordinator", "_assemble", "1.2.3") == 49
    once.report("coordinator", "_assemble", "KeyError: other", study_uid="1.2.3")
    once.report("coordinator", "_assemble", "ValueError: boom", study_uid="9.9")  # other study
    assert len(index.errors(100)) == 3
    once.clear("coordinator", "_assemble", "1.2.3")
    once.report("coordinator", "_assemble", "KeyError: other", study_uid="1.2.3")
    assert len(index.errors(100)) == 4  # after recovery, the same failure is news again


def test_moving_out_the_newest_instance_lowers_the_old_studys_last_arrival(
    index: SqliteIndex,
) -> None:
    """Else a plan made as of the latest remaining arrival looks out of date on every pass."""
    index.record_instance(record("1.1", study="1.2.3", at=100.0))
    index.record_instance(record("1.2", study="1.2.3", at=150.0))
    index.record_plan("1.2.3", 1, pairs_key="k", plan_json="{}", pairs=[], as_of=150.0)
    index.transition("1.2.3", S.READY)
    index.transition("1.2.3", S.QUEUED)
    index.transition("1.2.3", S.DONE)
    index.record_instance(record("1.2", study="7.7.7", at=200.0))
    old = index.get_study("1.2.3")
    assert (old.first_instance_at, old.last_instance_at) == (100.0, 100.0)
    index.update_plan_json("1.2.3", "{}", as_of=100.0)  # the coordinator's re-plan
    assert [s.study_uid for s in index.studies_with_new_instances()] == []
