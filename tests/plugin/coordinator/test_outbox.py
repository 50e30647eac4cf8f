"""The outbox's rules on a real index and a real C-STORE peer: back-off capped, the retry window
closing into "failed", rows surviving a restart (nothing is kept in memory), exactly one row per
object and destination."""

from __future__ import annotations

from pathlib import Path

from plugin.coordinator.outbox import Outbox
from plugin.index import OutboxState, SqliteIndex
from plugin.queue.contract import ResultFile
from tests.plugin.coordinator.recording_scp import RecordingSCP
from tests.plugin.listener.conftest import free_port
from tests.plugin.listener.dicom_data import four_view_study, save


def _sink(port: int):
    from pacs_adapters.destination import DestinationConfig
    from pacs_adapters.sink import make_sink

    return make_sink(
        DestinationConfig(
            name="pacs", kind="dimse", ae_title="RECORDER", host="127.0.0.1", port=port, timeout=3
        )
    )


def _files(tmp: Path) -> list[ResultFile]:
    out = []
    for i, ds in enumerate(four_view_study()[:2]):
        path = save(ds, tmp / f"{i}.dcm")
        out.append(ResultFile("heatmap_sc", str(path), ds.SOPInstanceUID, ds.SOPClassUID, "2.25.9"))
    return out


def test_backoff_is_capped_the_window_closes_and_a_restart_resumes(tmp_path: Path) -> None:
    index = SqliteIndex(tmp_path / "index.sqlite3")
    now = [1_000_000.0]
    port = free_port()  # nothing listens yet: connection refused, transient
    outbox = Outbox(
        index, {"pacs": _sink(port)}, backoff_initial=10, backoff_max=40, retry_hours=1,
        clock=lambda: now[0],
    )  # fmt: skip
    files = _files(tmp_path)
    assert outbox.enqueue("1.2.3", 1, files) == 2
    assert outbox.enqueue("1.2.3", 1, files) == 0  # a redelivered task queues nothing twice
    index.set_outbox_state(OutboxState.PENDING, ids=[r.id for r in index.outbox_rows()])
    now[0] = index.outbox_rows()[0].created_at  # the rows' own clock
    delays = []
    for _ in range(5):
        outbox.run_once()
        row = index.outbox_rows()[0]
        assert row.state == OutboxState.PENDING
        delays.append(row.next_attempt_at - now[0])
        now[0] = row.next_attempt_at
    assert delays == [10, 20, 40, 40, 40]  # doubling, capped at backoff_max

    # A restart: a new outbox over the same index, the peer now up: everything is delivered.
    recorder = RecordingSCP(port)
    recorder.start()
    try:
        again = Outbox(index, {"pacs": _sink(port)}, backoff_initial=10, backoff_max=40,
                       retry_hours=1, clock=lambda: now[0])  # fmt: skip
        again.run_once()
        assert {r.state for r in index.outbox_rows()} == {OutboxState.DELIVERED}
        assert set(recorder.counts().values()) == {1}
        assert not index.outbox_holds("1.2.3")
    finally:
        recorder.stop()
        index.close()


def test_retry_window_closes_into_failed(tmp_path: Path) -> None:
    index = SqliteIndex(tmp_path / "index.sqlite3")
    now = [0.0]
    outbox = Outbox(
        index, {"pacs": _sink(free_port())}, backoff_initial=1, backoff_max=1, retry_hours=0.001,
        clock=lambda: now[0],
    )  # fmt: skip
    outbox.enqueue("1.2.3", 1, _files(tmp_path))
    now[0] = index.outbox_rows()[0].created_at + 10  # past the 3.6 s window
    outbox.run_once()
    rows = index.outbox_rows()
    assert {r.state for r in rows} == {OutboxState.FAILED}
    assert all("gave up after" in (r.last_detail or "") for r in rows)
    assert index.outbox_holds("1.2.3")  # a failed row holds the files back
    assert any("not delivered" in e.message for e in index.errors(10))
    index.close()


def test_purge_waits_for_delivery_and_keeps_undelivered_results(tmp_path: Path) -> None:
    """Spool and result folders go only when every destination holds the objects; a study
    whose objects were never sent anywhere keeps its results (the only copy)."""
    import json

    from plugin.coordinator import Coordinator, CoordinatorTiming
    from plugin.index import InstanceRecord, StudyState
    from plugin.spool import Spool

    index = SqliteIndex(tmp_path / "index.sqlite3")
    spool = Spool(tmp_path / "spool")
    folders = {}
    for study in ("1.2.1", "1.2.2"):
        index.record_instance(
            InstanceRecord(f"{study}.1", study, None, "1.2.840.10008.5.1.4.1.1.1.2",
                           "1.2.840.10008.1.2.1", str(tmp_path / "x.dcm"), 1, "{}", "L", "CC",
                           True, None, 1.0)
        )  # fmt: skip
        folder = tmp_path / "results" / f"0000000{study[-1]}-0000-0000-0000-000000000000"
        folder.mkdir(parents=True)
        (folder / "tid1500_sr.dcm").write_bytes(b"x")
        folders[study] = folder
        for state in (StudyState.READY, StudyState.QUEUED, StudyState.DONE):
            index.transition(study, state)
        files = [ResultFile("tid1500_sr", str(folder / "tid1500_sr.dcm"), f"2.25.{study[-1]}",
                            "1.2.840.10008.5.1.4.1.1.88.33", "2.25.9")]  # fmt: skip
        index.record_result(study, 1, json.dumps({"result_files": [f.to_json() for f in files]}))
    outbox = Outbox(index, {"pacs": _sink(free_port())}, backoff_initial=1, backoff_max=1,
                    retry_hours=1)  # fmt: skip
    sr = folders["1.2.1"] / "tid1500_sr.dcm"
    files = [ResultFile("tid1500_sr", str(sr), "2.25.1", "1.2.840.10008.5.1.4.1.1.88.33", "2.25.9")]
    outbox.enqueue("1.2.1", 1, files)
    loop = Coordinator(index, spool, CoordinatorTiming(0.0, 3600.0, 0.0))
    assert loop.purge_expired() == 1  # 1.2.2 (nothing pending); 1.2.1 waits for the PACS
    assert folders["1.2.2"].is_dir()  # never sent anywhere: the results are the only copy
    [row] = index.outbox_rows()
    index.record_send(row.id, OutboxState.DELIVERED, status=0, detail="ok")
    assert loop.purge_expired() == 1
    assert not folders["1.2.1"].exists()  # delivered: the folder goes with the study
    index.close()
