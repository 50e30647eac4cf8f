"""`brgan reprocess`: a finished study re-opens as a new version; in-flight ones are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugin.config import load_settings
from plugin.index import InstanceRecord, SqliteIndex, StudyState
from tests.plugin.cli import run_cli as _run


def _study(data: Path, state: StudyState) -> str:
    index = SqliteIndex(load_settings(data_dir=data).index_path)
    index.record_instance(
        InstanceRecord(
            sop_instance_uid="1.2.3.4.1",
            study_uid="1.2.3.4",
            series_uid="1.2.3.4.9",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.1.2",
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            path=str(data / "x.dcm"),
            size=1,
            header_json="{}",
            laterality="L",
            view="CC",
            usable=True,
            reason=None,
            received_at=1.0,
        )
    )
    path = {
        StudyState.DONE: [StudyState.READY, StudyState.QUEUED, StudyState.DONE],
        StudyState.QUEUED: [StudyState.READY, StudyState.QUEUED],
    }[state]
    for step in path:
        index.transition("1.2.3.4", step)
    index.close()
    return "1.2.3.4"


def test_done_study_reopens_as_new_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BRGAN_DATA_DIR", str(tmp_path))
    uid = _study(tmp_path, StudyState.DONE)
    code, out = _run(["reprocess", uid], capsys)
    assert code == 0 and "version 2 opened" in out
    index = SqliteIndex(tmp_path / "index.sqlite3", readonly=True)
    study = index.get_study(uid)
    index.close()
    assert study is not None and study.version == 2 and study.state == StudyState.RECEIVING


def test_in_flight_and_unknown_studies_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BRGAN_DATA_DIR", str(tmp_path))
    uid = _study(tmp_path, StudyState.QUEUED)
    code, out = _run(["reprocess", uid], capsys)
    assert code == 2 and "is queued" in out
    code, out = _run(["reprocess", "9.9.9"], capsys)
    assert code == 2 and "not in the index" in out
