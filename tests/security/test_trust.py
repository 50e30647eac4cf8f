"""The Redis trust boundary on the coordinator's side, and the containment rule both sides use.

A result in the Celery result backend is what the coordinator believes about a study: it
records its scores, hands its files to the outbox (which sends them to the PACS) and later
deletes their folders (retention). Here a forged result naming a file outside
``<results_dir>/<task id>/`` is written into a real Redis of the test's own for a study the
real listener and coordinator queued; the coordinator refuses it, records why, and keeps
nothing of it (no scores, no result record that the purge or the outbox would act on).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from plugin.index import StudyState
from plugin.queue.app import make_celery
from plugin.queue.contract import Provenance, ResultFile, StudySummary, StudyTask
from plugin.queue.trust import UntrustedMessageError, check_task, inside
from tests.helpers import make_tiny_registry
from tests.plugin.listener.conftest import make_settings, start, store, wait_until
from tests.plugin.listener.dicom_data import four_view_study
from tests.plugin.queue.test_pipeline import _with_dispatcher
from tests.security.redis_server import own_redis

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def test_inside_resolves_dots_links_and_prefixes(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    (spool / "1.2").mkdir(parents=True)
    (tmp_path / "spool-evil").mkdir()
    os.symlink(tmp_path, spool / "link")
    assert inside(spool / "1.2" / "x.dcm", spool)
    assert inside(spool, spool)
    assert not inside(spool / ".." / "index.sqlite3", spool)
    assert not inside(tmp_path / "spool-evil" / "x.dcm", spool)  # a shared prefix is not inside
    assert not inside(spool / "link" / "etc", spool)  # a link out of the spool is followed
    assert not inside("/etc/passwd", spool)


def _task(paths: tuple[str, str], supersedes: tuple[ResultFile, ...] = ()) -> dict:
    image = {"sop_instance_uid": "1.2.3.1", "laterality": "L", "view": "CC"}
    pair = {
        "target": {**image, "path": paths[0]},
        "contralateral": {**image, "sop_instance_uid": "1.2.3.2", "laterality": "R",
                          "path": paths[1]},
    }  # fmt: skip
    return {
        "schema": 2, "study_uid": "1.2.3", "study_version": 1, "queued_at": time.time(),
        "model": {"version": "v1", "sha256": "0" * 64}, "pairs": [pair], "not_analyzed": [],
        "supersedes": [r.to_json() for r in supersedes], "shadow_model": None,
    }  # fmt: skip


def test_check_task_accepts_our_own_tasks_only(tmp_path: Path) -> None:
    spool, results = tmp_path / "spool", tmp_path / "results"
    ok = (str(spool / "1.2.3" / "a.dcm"), str(spool / "1.2.3" / "b.dcm"))
    task_id = "6f1c1a52-3c55-4a1b-9a7b-4f1e9a2d2b10"
    assert isinstance(check_task(_task(ok), task_id, spool, results), StudyTask)
    old = ResultFile("tid1500_sr", str(results / task_id / "tid1500_sr.dcm"), "1.9", "1.2", "1.8")
    check_task(_task(ok, (old,)), task_id, spool, results)
    refused = [
        (_task(ok), "../../x"),
        (_task(ok), None),
        (_task(ok), task_id.upper() + "/.."),
        (_task((ok[0], "/etc/shadow")), task_id),
        (_task((str(spool / ".." / "index.sqlite3"), ok[1])), task_id),
        (_task(ok, (ResultFile("kos", "/home/x/y.dcm", "1", "1", "1"),)), task_id),
    ]
    for payload, bad_id in refused:
        with pytest.raises(UntrustedMessageError):
            check_task(payload, bad_id, spool, results)


def _forged(study_uid: str, task_id: str, path: Path) -> StudySummary:
    provenance = Provenance(
        model_name="brgan/tiny", model_version="v1", sha256="0" * 64, research_only=True,
        synthetic_training=True, uses_contralateral=False, threshold=0.5,
        manufacturer="brgan-pacs", manufacturer_model_name="BR-GAN", software_version="0",
        device_uid="2.25.1",
    )  # fmt: skip
    return StudySummary(
        study_uid=study_uid,
        study_version=1,
        task_id=task_id,
        provenance=provenance,
        images=(),
        not_analyzed=(),
        breasts={"L": None, "R": None},
        exam=None,
        result_files=(ResultFile("tid1500_sr", str(path), "2.25.7", COMPREHENSIVE_SR, "2.25.8"),),
    )


@pytest.mark.integration
def test_a_forged_result_naming_a_foreign_file_is_refused_by_the_coordinator(
    tmp_path: Path,
) -> None:
    # A folder named like a task id, outside the results folder: the retention purge would
    # delete it and the outbox would send its file, were the result believed.
    victim = tmp_path / "elsewhere" / "00000000-0000-0000-0000-000000000000" / "private.dcm"
    victim.parent.mkdir(parents=True)
    victim.write_bytes(b"not yours")
    with own_redis(tmp_path / "redis") as server:
        settings = make_settings(tmp_path / "data", broker_url=server.url(), requeue_after=3600)
        make_tiny_registry(settings.registry_path)
        svc = start(settings)
        app = make_celery(settings)
        try:
            _with_dispatcher(svc)
            study = four_view_study()
            uid = study[0].StudyInstanceUID
            assert [s.Status for s in store(svc.port, study)] == [0] * 4
            wait_until(lambda: (s := svc.index.get_study(uid)) and s.state == StudyState.QUEUED)
            task_id = svc.index.get_study(uid).task_id
            app.backend.store_result(task_id, _forged(uid, task_id, victim).to_json(), "SUCCESS")
            wait_until(lambda: svc.index.get_study(uid).state == StudyState.FAILED, timeout=30)
            row = svc.index.get_study(uid)
        finally:
            app.close()
            svc.stop()
    assert "outside" in (row.error or "") and str(victim) in (row.error or "")
    assert row.result_json is None  # nothing for the purge or the outbox to act on
    assert victim.read_bytes() == b"not yours"
