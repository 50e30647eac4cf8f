"""Issue 8 through the real service: `brgan serve` in embedded mode (listener, coordinator and a
real `brgan worker` child over kombu's filesystem queue), started from an empty working
directory with UID hashing on, fed as a careless sender would:

* a unilateral study, a lone SR and a complete study sent together: all three reach a final
  state, the complete one is ``done`` (before the fix the first study without pairs raised
  ``IllegalTransition`` in every reconcile pass, so no result was ever collected);
* a path-like SOP Instance UID: refused with 0xC001, and its value appears nowhere in the
  service's output (pydicom's warning quoted it, past ``hash_uids_in_logs``);
* nothing is written to the working directory (kombu created ``control/`` there).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from plugin.index import SqliteIndex, StudyState
from tests.helpers import make_tiny_registry, write_synth_studies
from tests.plugin.listener.conftest import (
    raw_file,
    send_files,
    store,
    wait_until,
)
from tests.plugin.listener.dicom_data import mg_image, text_sr
from tests.plugin.queue.serve import start_embedded_serve, storescu

pytestmark = pytest.mark.integration
ILLEGAL_UID = "../../etc/x"


def test_hostile_senders_do_not_stop_the_service(tmp_path: Path) -> None:
    if shutil.which("storescu") is None:
        pytest.skip("dcmtk storescu is needed (scripts/test installs it)")
    data = tmp_path / "data"
    make_tiny_registry(data / "models")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    cwd.chmod(0o555)  # read-only for a non-root service user; root ignores it, so also listed
    proc, port = start_embedded_serve(data, cwd=cwd, stable_age="2", hash_uids_in_logs="true")
    index = None
    try:
        rows = write_synth_studies(tmp_path / "synth", patients=2, seed=31)
        complete_uid = rows[0]["study_uid"]
        unilateral_uid = next(r["study_uid"] for r in rows if r["study_uid"] != complete_uid)
        unilateral = [
            r for r in rows if r["study_uid"] == unilateral_uid and r["laterality"] == "L"
        ]
        sr_study = generate_uid()
        # Sent together: the study without pairs and the lone SR first.
        storescu(port, [r["path"] for r in unilateral])
        assert [s.Status for s in store(port, [text_sr(sr_study)])] == [0]
        storescu(port, [r["path"] for r in rows if r["study_uid"] == complete_uid])
        hostile = mg_image(generate_uid(), "L", "CC")
        del hostile.file_meta
        hostile.SOPInstanceUID = ILLEGAL_UID
        [refused] = send_files(port, [raw_file(tmp_path / "hostile.dcm", hostile)])
        assert refused.Status == 0xC001 and "SOPInstanceUID" in refused.ErrorComment

        index = SqliteIndex(data / "index.sqlite3", readonly=True)
        final = {
            complete_uid: StudyState.DONE,
            unilateral_uid: StudyState.NOT_ANALYZED,
            sr_study: StudyState.NOT_ANALYZED,
        }

        def states() -> dict[str, StudyState | None]:
            return {uid: (s.state if (s := index.get_study(uid)) else None) for uid in final}

        try:
            wait_until(lambda: states() == final, timeout=180)
        except TimeoutError as exc:
            raise AssertionError(
                f"states {states()}; errors {[e.message for e in index.errors(10)]}"
            ) from exc
        scores = [json.loads(p.score_json) for p in index.pairs(complete_uid) if p.score_json]
        assert len(scores) == 4 and all(s["status"] == "analyzed" for s in scores)
        # Every image of the study without pairs has its reason, in the plan and the result.
        lone = index.get_study(unilateral_uid)
        reasons = json.loads(lone.result_json)["not_analyzed"]
        assert set(reasons) == {r["sop_instance_uid"] for r in unilateral}
        assert all("no contralateral" in why for why in reasons.values())
        # ... and its "not analyzed" result objects, so "not read by the AI" is never mistaken
        # for "nothing found"; the lone SR (no image) is closed without any.
        kinds = {f["kind"] for f in json.loads(lone.result_json)["result_files"]}
        assert {"tid1500_sr", "cad_sr", "summary_sc"} <= kinds and "heatmap_sc" not in kinds
        assert "result_files" not in json.loads(index.get_study(sr_study).result_json)
        sr_reasons = json.loads(index.get_study(sr_study).result_json)["not_analyzed"]
        assert [why.split(" (")[0] for why in sr_reasons.values()] == ["not an image"]
        assert not [e for e in index.errors(50) if e.source == "coordinator"]
    finally:
        if index is not None:
            index.close()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert sorted(os.listdir(cwd)) == []  # everything stays under data_dir
    output = out + err + (data / "worker.log").read_text(errors="replace")
    assert ILLEGAL_UID not in output
    assert complete_uid not in output  # hash_uids_in_logs: UIDs only as hashes
