"""issue 13 §1: the index database locked by a long-running admin command, through the real
service (`brgan serve`, embedded worker).

Another process (as an admin's ``sqlite3`` session or a backup would) holds an exclusive lock on
``index.sqlite3`` while a 4-view study arrives over one real association:

* a lock shorter than ``index_busy_timeout``: every instance waits and is stored 0x0000;
* a lock longer than it: the instances that waited past it are refused 0xA700 (their files are
  already safe in the spool), the sender retries once the lock is gone, and each instance is
  indexed exactly once.

Both end with the study analyzed and 0 instances lost.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plugin.index import SqliteIndex, StudyState
from tests.helpers import make_tiny_registry, write_synth_studies
from tests.plugin.listener.conftest import store, wait_until
from tests.plugin.queue.serve import start_embedded_serve

pytestmark = pytest.mark.integration

SUCCESS, OUT_OF_RESOURCES = 0x0000, 0xA700

HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def _hold_lock(db: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(db), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def _analyzed(index: SqliteIndex, study_uid: str) -> int:
    study = index.get_study(study_uid)
    if study is None or study.state != StudyState.DONE:
        return 0
    return sum(1 for p in index.pairs(study_uid, study.version) if p.score_json)


@pytest.mark.parametrize(("hold_s", "busy_timeout"), [(3.0, "30"), (6.0, "1")])
def test_a_locked_index_delays_or_refuses_but_loses_nothing(
    tmp_path: Path, hold_s: float, busy_timeout: str
) -> None:
    rows = write_synth_studies(tmp_path / "synth", patients=1, seed=67)
    paths = [Path(r["path"]) for r in rows]
    data = tmp_path / "data"
    make_tiny_registry(data / "models")
    proc, port = start_embedded_serve(data, stable_age="2", index_busy_timeout=busy_timeout)
    index = None
    try:
        locker = _hold_lock(data / "index.sqlite3", hold_s)
        t0 = time.monotonic()
        first = [int(s.Status) for s in store(port, paths)]
        waited = time.monotonic() - t0
        locker.wait(30)
        if float(busy_timeout) > hold_s:
            assert first == [SUCCESS] * 4, first
            assert waited >= hold_s * 0.8, "the stores waited for the lock"
        else:
            assert OUT_OF_RESOURCES in first and set(first) <= {SUCCESS, OUT_OF_RESOURCES}, first
            refused = [p for p, s in zip(paths, first, strict=True) if s != SUCCESS]
            again = [int(s.Status) for s in store(port, refused)]  # the sender's retry
            assert again == [SUCCESS] * len(refused), again
        index = SqliteIndex(data / "index.sqlite3", readonly=True)
        study_uid = rows[0]["study_uid"]
        wait_until(lambda: _analyzed(index, study_uid) == 4, timeout=120)
        instances = index.instances(study_uid)
        assert sorted(i.sop_instance_uid for i in instances) == sorted(
            r["sop_instance_uid"] for r in rows
        )  # each once
        scores = [json.loads(p.score_json) for p in index.pairs(study_uid)]
        assert all(s["status"] == "analyzed" for s in scores)
    finally:
        if index is not None:
            index.close()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
