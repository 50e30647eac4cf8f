"""Embedded mode: `brgan serve` alone (no broker, no Redis) receives, queues, scores, records."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from plugin.index import SqliteIndex, StudyState
from tests.helpers import make_tiny_registry, write_synth_studies
from tests.plugin.listener.conftest import CALLING_AE, free_port, wait_until
from tests.plugin.queue.serve import start_embedded_serve

pytestmark = pytest.mark.integration


def test_embedded_serve_scores_a_study_without_redis(tmp_path: Path) -> None:
    if shutil.which("storescu") is None:
        pytest.skip("dcmtk storescu is needed (scripts/test installs it)")
    data = tmp_path / "data"
    make_tiny_registry(data / "models")
    proc, port = start_embedded_serve(data)
    try:
        rows = write_synth_studies(tmp_path / "synth", patients=1, seed=21)
        subprocess.run(
            ["storescu", "-aet", CALLING_AE, "-aec", "BRGAN", "127.0.0.1", str(port)]
            + [r["path"] for r in rows],
            check=True,
            capture_output=True,
            timeout=60,
        )
        study_uid = rows[0]["study_uid"]
        index = SqliteIndex(data / "index.sqlite3", readonly=True)
        try:
            wait_until(
                lambda: (
                    (s := index.get_study(study_uid)) is not None and s.state == StudyState.DONE
                ),
                timeout=120,
            )
            scores = [json.loads(p.score_json) for p in index.pairs(study_uid) if p.score_json]
        finally:
            index.close()
        assert len(scores) == 4
        assert all(s["status"] == "analyzed" for s in scores)
        assert (data / "queue" / "results").is_dir()  # the filesystem result backend was used
        # The listener process itself never loaded torch: scoring ran in the worker child.
        assert "libtorch" not in Path(f"/proc/{proc.pid}/maps").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        worker_log = (data / "worker.log").read_text(errors="replace")[-2000:]
    assert proc.returncode == 0, err[-2000:] + worker_log
    assert "embedded mode" in out and "stopped cleanly" in out


def test_embedded_worker_sigkilled_mid_task_is_re_sent(tmp_path: Path) -> None:
    """Embedded mode: kombu's filesystem transport deletes a message when it is read, so a
    task whose worker child is SIGKILLed is gone for good unless the coordinator re-sends it
    (lease on the task's heartbeat). The supervisor restarts the child; the study is done."""
    if shutil.which("storescu") is None:
        pytest.skip("dcmtk storescu is needed (scripts/test installs it)")
    from tests.plugin.coordinator.recording_scp import RecordingSCP

    recorder = RecordingSCP(free_port())
    recorder.start()
    data = tmp_path / "data"
    make_tiny_registry(data / "models")
    proc, port = start_embedded_serve(
        data,
        coordinator_interval="0.1",
        worker_heartbeat="0.5",
        worker_lease="5",
        outbox_interval="0.2",
        destinations=json.dumps(
            [{"name": "recorder", "kind": "dimse", "ae_title": "RECORDER",
              "host": "127.0.0.1", "port": recorder.port}]
        ),
    )  # fmt: skip
    try:
        rows = write_synth_studies(tmp_path / "synth", patients=1, seed=22)
        subprocess.run(
            ["storescu", "-aet", CALLING_AE, "-aec", "BRGAN", "127.0.0.1", str(port)]
            + [r["path"] for r in rows],
            check=True,
            capture_output=True,
            timeout=60,
        )
        study_uid = rows[0]["study_uid"]
        index = SqliteIndex(data / "index.sqlite3", readonly=True)
        try:
            wait_until(
                lambda: (
                    (s := index.get_study(study_uid)) is not None and s.state == StudyState.RUNNING
                ),
                timeout=120,
            )
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            assert children, "no embedded worker child"
            for pid in children:
                os.kill(int(pid), signal.SIGKILL)
            wait_until(
                lambda: (
                    (s := index.get_study(study_uid)) is not None and s.state == StudyState.DONE
                ),
                timeout=120,
            )
            assert any("lost with its worker" in e.message for e in index.errors(50))
            files = json.loads(index.get_study(study_uid).result_json)["result_files"]
            wanted = {f["sop_instance_uid"] for f in files}
            wait_until(lambda: set(recorder.counts()) == wanted, timeout=60)
            time.sleep(1.0)
            assert set(recorder.counts().values()) == {1}  # exactly one delivery per object
        finally:
            index.close()
            recorder.stop()
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
