"""Issue 10: every result object reaches every destination, once — real Redis, a real Celery
worker process, a real Orthanc (STOW-RS) and a recording C-STORE SCP (which counts what
arrives: Orthanc silently ignores a second store of the same SOP Instance UID, so counting in
Orthanc could not show a double send).

* a study goes in; its TID 1500 SR, CAD SR and SCs land in Orthanc in the same study and
  PatientID, and the recording SCP received each object exactly once;
* the destination is down while results are sent: rows stay pending and `brgan status` shows
  them; once it is back, everything is delivered;
* a permanent refusal is marked failed at once, shown, and `brgan outbox resend` sends it again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugin.config import Settings
from plugin.coordinator import Coordinator, CoordinatorTiming
from plugin.coordinator.dispatcher import Dispatcher
from plugin.coordinator.outbox import Outbox
from plugin.coordinator.service import make_outbox
from plugin.index import OutboxState, StudyState
from tests.deploy.orthanc import orthanc_binary
from tests.helpers import make_tiny_registry, write_synth_studies
from tests.plugin.cli import run_cli
from tests.plugin.coordinator.recording_scp import RecordingSCP
from tests.plugin.listener.conftest import Service, free_port, make_settings, start, wait_until
from tests.plugin.queue.serve import storescu as _storescu
from tests.plugin.queue.test_pipeline import _redis_server, _worker

pytestmark = pytest.mark.integration

SR_CLASSES = {"1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.50"}


@dataclass
class Chain:
    svc: Service
    settings: Settings
    outbox: Outbox
    scp: RecordingSCP
    orthanc: object
    tmp: Path


def _orthanc(tmp: Path):
    from tests.viewer.harness import start_dicomweb_orthanc

    return start_dicomweb_orthanc(tmp)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    if None in (shutil.which("storescu"), shutil.which("redis-server"), orthanc_binary()):
        pytest.skip("dcmtk, redis-server and Orthanc are needed (scripts/test installs them)")
    redis_port = free_port()
    redis_proc = _redis_server(redis_port, tmp_path / "redis.log")
    orthanc = _orthanc(tmp_path)
    scp = RecordingSCP(free_port())
    scp.start()
    settings = make_settings(
        tmp_path / "data",
        broker_url=f"redis://127.0.0.1:{redis_port}/0",
        destinations=[
            {
                "name": "recorder",
                "kind": "dimse",
                "ae_title": "RECORDER",
                "host": "127.0.0.1",
                "port": scp.port,
                "timeout": 5,
            },
            {"name": "orthanc", "kind": "stow", "url": f"{orthanc.url}/dicom-web", "timeout": 5},
        ],
        outbox_backoff_initial=0.2,
        outbox_backoff_max=1.0,
        outbox_interval=0.2,
    )
    make_tiny_registry(settings.registry_path)
    worker = _worker(settings, tmp_path / "worker.log")
    svc = start(settings)
    outbox = make_outbox(settings, svc.index)
    assert outbox is not None
    dispatcher = Dispatcher(settings, svc.index, outbox=outbox)
    svc.coordinator = Coordinator(
        svc.index,
        svc.spool,
        CoordinatorTiming(settings.complete_grace, settings.stable_age, 7.0, 0.1),
        on_study_ready=dispatcher.on_study_ready,
        reconcile=dispatcher.reconcile,
    )
    svc.coordinator.start()
    outbox.start()
    chain = Chain(svc, settings, outbox, scp, orthanc, tmp_path)
    try:
        yield chain
    finally:
        outbox.stop()
        svc.stop()
        worker.terminate()
        worker.wait(20)
        scp.stop()
        chain.orthanc.stop()  # type: ignore[attr-defined]  # the restarted one, if any
        redis_proc.terminate()
        redis_proc.wait(10)


def _send_study(chain: Chain, seed: int) -> str:
    rows = write_synth_studies(chain.tmp / f"synth{seed}", patients=1, seed=seed)
    _storescu(chain.svc.port, [r["path"] for r in rows])
    study_uid = rows[0]["study_uid"]
    wait_until(
        lambda: (
            (s := chain.svc.index.get_study(study_uid)) is not None and s.state == StudyState.DONE
        ),
        timeout=120,
    )
    return study_uid


def _rows(chain: Chain, study_uid: str, state: OutboxState | None = None) -> list:
    return chain.svc.index.outbox_rows(study_uid=study_uid, states=[state] if state else None)


def test_results_reach_orthanc_and_the_recorder_exactly_once(chain: Chain) -> None:
    study_uid = _send_study(chain, seed=51)
    files = json.loads(chain.svc.index.get_study(study_uid).result_json)["result_files"]
    kinds = Counter(f["kind"] for f in files)
    assert kinds == {"heatmap_sc": 4, "tid1500_sr": 1, "cad_sr": 1, "summary_sc": 1}
    wait_until(lambda: len(_rows(chain, study_uid, OutboxState.DELIVERED)) == 2 * len(files), 60)

    # Orthanc has every object, in the same study and PatientID as the mammograms.
    source_patient = chain.svc.index.instances(study_uid)[0]
    found = chain.orthanc.request(  # type: ignore[attr-defined]
        "POST",
        "/tools/find",
        json.dumps({"Level": "Instance", "Query": {"StudyInstanceUID": study_uid},
                    "Expand": True}).encode(),
    )  # fmt: skip
    by_uid = {i["MainDicomTags"]["SOPInstanceUID"]: i for i in found}
    assert {f["sop_instance_uid"] for f in files} <= set(by_uid)
    tags = chain.orthanc.get(
        f"/instances/{by_uid[files[0]['sop_instance_uid']]['ID']}/tags?simplify"
    )  # type: ignore[attr-defined]
    header = json.loads(source_patient.header_json)
    assert tags["StudyInstanceUID"] == study_uid
    assert header["patient_id_hash"] and tags["PatientID"]  # same patient: see below
    assert hashlib.sha256(tags["PatientID"].encode()).hexdigest() == header["patient_id_hash"]

    # The recorder got each object once; the task's redelivery would write the same UIDs.
    counts = chain.scp.counts()
    assert set(counts) == {f["sop_instance_uid"] for f in files}
    assert set(counts.values()) == {1}


def test_destination_down_then_back_everything_delivered(
    chain: Chain, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.deploy.orthanc import Orthanc

    orthanc = chain.orthanc
    config = chain.tmp / "orthanc.json"
    orthanc.stop()  # type: ignore[attr-defined]
    study_uid = _send_study(chain, seed=52)
    wait_until(
        lambda: any(r.attempts >= 2 for r in _rows(chain, study_uid, OutboxState.PENDING)), 60
    )
    monkeypatch.setenv("BRGAN_DATA_DIR", str(chain.settings.data_dir))
    code, shown = run_cli(["status"], capsys)
    assert code == 0 and "Outbox" in shown and "orthanc" in shown
    pending = [r for r in _rows(chain, study_uid) if r.destination == "orthanc"]
    assert pending and all(r.state == OutboxState.PENDING for r in pending)

    log = chain.tmp / "orthanc-2.log"
    with log.open("wb") as out:  # the same config: same ports, same storage
        process = subprocess.Popen(
            [orthanc_binary(), str(config)], stdout=out, stderr=subprocess.STDOUT, cwd=chain.tmp
        )
    back = Orthanc(process, orthanc.http_port, orthanc.dicom_port, orthanc.aet, log)  # type: ignore[attr-defined]
    chain.orthanc = back
    wait_until(
        lambda: len(_rows(chain, study_uid, OutboxState.DELIVERED)) == len(_rows(chain, study_uid)),
        timeout=90,
    )
    assert all(r.attempts >= 2 for r in _rows(chain, study_uid) if r.destination == "orthanc")


def test_permanent_refusal_is_failed_visible_and_resendable(
    chain: Chain, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    chain.scp.refuse.update(dict.fromkeys(SR_CLASSES, 0xC000))  # "cannot understand"
    study_uid = _send_study(chain, seed=53)
    wait_until(lambda: len(_rows(chain, study_uid, OutboxState.FAILED)) == 2, 60)
    failed = _rows(chain, study_uid, OutboxState.FAILED)
    assert {r.destination for r in failed} == {"recorder"} and all(r.attempts == 1 for r in failed)
    assert all(r.last_status == 0xC000 for r in failed)
    monkeypatch.setenv("BRGAN_DATA_DIR", str(chain.settings.data_dir))
    code, shown = run_cli(["outbox", "list", "--state", "failed", "--json"], capsys)
    listed = json.loads(shown[shown.index("[\n") :].split("\n]")[0] + "\n]")
    assert code == 0 and {r["kind"] for r in listed} == {"tid1500_sr", "cad_sr"}
    assert all("0xC000" in (r["last_detail"] or "") or r["last_status"] == 0xC000 for r in listed)
    # Nothing of the study may be purged while a row is failed.
    assert chain.svc.index.outbox_holds(study_uid)

    chain.scp.refuse.clear()  # the PACS side was fixed
    code, shown = run_cli(["outbox", "resend", "--destination", "recorder"], capsys)
    assert code == 0 and "2 row(s) queued again" in shown
    wait_until(lambda: not _rows(chain, study_uid, OutboxState.FAILED)
               and not _rows(chain, study_uid, OutboxState.PENDING), 30)  # fmt: skip
    assert not chain.svc.index.outbox_holds(study_uid)
    counts = chain.scp.counts()
    assert all(counts[r.sop_instance_uid] == 2 for r in failed)  # refused once, then delivered
    time.sleep(0.5)
    assert chain.scp.counts() == counts  # and nothing more
