"""issue 13 §1: `brgan serve` SIGKILLed in the middle of an association, then restarted.

A sender (pynetdicom, one association) has had two instances of a 4-view study acknowledged when
the service is killed with SIGKILL (no shutdown code runs). Then:

* its embedded worker child does not outlive it (Linux parent-death signal), so the restarted
  service never shares its queue with an orphan;
* after the restart every acknowledged instance is on disk and indexed (recovery), with nothing
  half-written left in the spool;
* the sender re-sends what was not acknowledged (and, as careful senders do, one that was): each
  instance is stored and indexed once, and the study is analyzed.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from plugin.index import SqliteIndex, StudyState
from tests.helpers import make_tiny_registry, write_synth_studies
from tests.plugin.listener.conftest import scu, store, wait_until
from tests.plugin.queue.serve import start_embedded_serve

pytestmark = pytest.mark.integration

SUCCESS = 0x0000


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(t) for t in text]
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie is dead, only not reaped


def test_listener_killed_mid_association_loses_nothing(tmp_path: Path) -> None:
    if not Path("/proc/self/task").is_dir():
        pytest.skip("needs Linux /proc to find the embedded worker")
    rows = write_synth_studies(tmp_path / "synth", patients=1, seed=71)
    paths = [Path(r["path"]) for r in rows]
    data = tmp_path / "data"
    make_tiny_registry(data / "models")
    proc, port = start_embedded_serve(data, stable_age="2")
    second = None
    index = None
    try:
        wait_until(lambda: _children(proc.pid), timeout=30)
        [worker] = _children(proc.pid)
        ae = scu()
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.1.2")
        assoc = ae.associate("127.0.0.1", port, ae_title="BRGAN")
        assert assoc.is_established
        acked = [int(assoc.send_c_store(p).Status) for p in paths[:2]]
        assert acked == [SUCCESS, SUCCESS]
        proc.send_signal(signal.SIGKILL)  # mid-association: no release, no shutdown code
        proc.wait(10)
        assoc.abort()
        wait_until(lambda: not _alive(worker), timeout=20)

        second, port = start_embedded_serve(data, stable_age="2")
        index = SqliteIndex(data / "index.sqlite3", readonly=True)
        study_uid = rows[0]["study_uid"]
        indexed = {i.sop_instance_uid for i in index.instances(study_uid)}
        assert indexed == {r["sop_instance_uid"] for r in rows[:2]}, "acknowledged = indexed"
        spool = data / "spool"
        leftovers = [p for p in spool.rglob("*") if p.is_file() and not p.name.endswith(".dcm")]
        assert leftovers == [], leftovers
        # the sender's retry: the unacknowledged two, and one it cannot be sure of
        again = [int(s.Status) for s in store(port, [paths[1], *paths[2:]])]
        assert again == [SUCCESS] * 3

        def analyzed() -> int:
            study = index.get_study(study_uid)
            if study is None or study.state != StudyState.DONE:
                return 0
            return sum(1 for p in index.pairs(study_uid, study.version) if p.score_json)

        wait_until(lambda: analyzed() == 4, timeout=120)
        instances = index.instances(study_uid)
        assert sorted(i.sop_instance_uid for i in instances) == sorted(
            r["sop_instance_uid"] for r in rows
        )
        assert len([p for p in spool.rglob("*.dcm") if study_uid in str(p)]) == 4
        version = index.get_study(study_uid).version
        scores = [json.loads(p.score_json) for p in index.pairs(study_uid, version)]
        assert all(s["status"] == "analyzed" for s in scores)
        # one embedded worker only: the killed service's is gone
        assert len(_children(second.pid)) == 1 and not _alive(worker)
    finally:
        if index is not None:
            index.close()
        for p in (proc, second):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.communicate(timeout=60)
        orphan = locals().get("worker")
        if orphan is not None and _alive(orphan):  # the test failed: leave no orphan behind
            os.kill(orphan, signal.SIGKILL)
    assert second is not None and second.returncode == 0
