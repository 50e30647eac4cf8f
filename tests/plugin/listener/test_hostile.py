"""Issue 8: what a careless or hostile sender does, through the real listener and index.

Each test fails on the code before its fix: lying UID VRs and path-like UIDs (§5), empty and
random data sets (§5), headers that classify as usable but cannot be decoded (§6), the same
SOP Instance UID in another study (§2), and an association aborted right after its last data
set (§7).
"""

from __future__ import annotations

import copy
import os
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom.dimse_primitives import C_STORE

from plugin.coordinator import Coordinator, CoordinatorTiming
from plugin.coordinator.loop import EMPTIED_STUDY
from plugin.index import StudyState
from tests.plugin.listener.conftest import (
    Service,
    raw_file,
    scu,
    send_files,
    store,
    wait_until,
)
from tests.plugin.listener.dicom_data import MG_FOR_PRESENTATION, four_view_study, mg_image

ILLEGAL_UID = "../../etc/x"


def _image(**attributes: object) -> Dataset:
    ds = mg_image(generate_uid(), "L", "CC", **attributes)
    del ds.file_meta
    return ds


# -- §5: UIDs of the wrong VR or with illegal characters ---------------------------------------


@pytest.mark.parametrize(
    ("keyword", "vr", "value", "problem"),
    [
        ("SOPInstanceUID", "US", 1, "has VR US, not UI"),
        ("SOPInstanceUID", "SQ", [], "has VR SQ, not UI"),
        ("SOPInstanceUID", "UI", ILLEGAL_UID, "not a valid UID"),
        ("SOPInstanceUID", "UI", "1." + "2" * 70, "72 chars > 64"),
        ("StudyInstanceUID", "UI", "1.2.abc", "not a valid UID"),
        ("SeriesInstanceUID", "LO", "1.2.3", "has VR LO, not UI"),
    ],
)
def test_uid_of_wrong_vr_or_characters_is_refused_naming_it(
    service: Service, tmp_path: Path, keyword: str, vr: str, value: object, problem: str
) -> None:
    ds = _image()
    tag = ds.data_element(keyword).tag
    del ds[tag]
    ds.add_new(tag, vr, value)
    [status] = send_files(service.port, [raw_file(tmp_path / "bad.dcm", ds)])
    assert status.Status == 0xC001
    assert status.ErrorComment == f"{keyword} {problem}"[:64] or problem in status.ErrorComment
    assert status.ErrorComment.startswith(keyword) and problem in status.ErrorComment
    assert service.index.studies() == []  # nothing indexed under a made-up UID
    assert not any(ILLEGAL_UID in str(p) for p in service.spool.root.rglob("*"))
    [error] = service.index.errors()
    assert error.status == 0xC001 and keyword in error.message
    assert ILLEGAL_UID not in error.message


@pytest.mark.parametrize("body", [b"", bytes(range(256)) * 3], ids=["empty", "random"])
def test_empty_or_random_data_set_is_0xc000_as_conformance_says(
    service: Service, tmp_path: Path, body: bytes
) -> None:
    path = raw_file(tmp_path / "x.dcm", Dataset())
    path.write_bytes(path.read_bytes() + body)
    [status] = send_files(service.port, [path])
    assert status.Status == 0xC000
    conformance = (Path(__file__).resolve().parents[3] / "docs" / "conformance.md").read_text()
    assert "| `0xC000` |" in conformance and "empty" in conformance.split("| `0xC000` |")[1][:400]


# -- §6: headers that cannot be decoded are not analyzed at once -------------------------------


def _encapsulated_under_native() -> Dataset:
    ds = _image()
    ds.PixelData = encapsulate([b"\x00\x01" * 96])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: _image(BitsAllocated=0), "BitsAllocated 0"),
        (lambda: _image(Rows=0), "Rows 0"),
        (lambda: _image(Columns=0), "Columns 0"),
        (lambda: _image(BitsStored=17), "BitsStored 17 with BitsAllocated 16"),
        (lambda: _image(SamplesPerPixel=3), "SamplesPerPixel 3"),
        (_encapsulated_under_native, "encapsulated fragments under the native"),
    ],
    ids=["bits0", "rows0", "columns0", "stored>allocated", "rgb", "fragments-native"],
)
def test_undecodable_header_is_stored_but_not_usable(
    service: Service, tmp_path: Path, make, reason: str
) -> None:
    ds = make()
    [status] = send_files(service.port, [raw_file(tmp_path / "u.dcm", ds)])
    assert status.Status == 0x0000  # stored: nothing is lost, it is reported not analyzed
    [row] = service.index.instances(ds.StudyInstanceUID)
    assert not row.usable and reason in (row.reason or "")


# -- §2: the same SOP Instance UID arriving in another study -----------------------------------


def test_same_sop_uid_in_another_study_latest_wins_and_recovery_agrees(
    service_factory, tmp_path: Path
) -> None:
    svc: Service = service_factory(coordinator=True, stable_age=0.3)
    first = four_view_study()
    old_study = first[0].StudyInstanceUID
    assert [s.Status for s in store(svc.port, first[:1])] == [0]
    moved = copy.deepcopy(first[0])
    moved.StudyInstanceUID = second_study = generate_uid()
    assert [s.Status for s in store(svc.port, [moved])] == [0]
    sop = moved.SOPInstanceUID

    row = svc.index.instance(sop)
    assert row is not None and row.study_uid == second_study
    assert not svc.spool.path_for(old_study, sop).exists()  # the earlier file left the study
    assert (svc.spool.superseded_dir / svc.spool.study_dir(old_study).name).is_dir()
    # The emptied study is closed with its reason, once, instead of failing every pass.
    wait_until(lambda: svc.index.get_study(old_study).state == StudyState.NOT_ANALYZED, timeout=10)
    assert svc.index.get_study(old_study).error == EMPTIED_STUDY
    time.sleep(0.3)  # several coordinator passes
    coordinator_errors = [e for e in svc.index.errors(50) if e.source == "coordinator"]
    assert coordinator_errors == []

    # A restart's recovery does not move the instance back (it flipped on every restart).
    svc.coordinator.stop()
    again = Coordinator(svc.index, svc.spool, CoordinatorTiming(0.0, 0.3, 7.0, 0.05)).recover()
    assert again.reindexed_files == 0
    assert svc.index.instance(sop).study_uid == second_study


def test_recovery_sets_aside_an_earlier_file_left_by_a_crash(service: Service) -> None:
    """Crash between indexing the later arrival and moving the earlier file: recovery finds
    the earlier file unindexed and sets it aside instead of re-indexing it."""
    first = four_view_study()[0]
    assert [s.Status for s in store(service.port, [first])] == [0]
    old_path = service.spool.path_for(first.StudyInstanceUID, first.SOPInstanceUID)
    kept = old_path.read_bytes()
    moved = copy.deepcopy(first)
    moved.StudyInstanceUID = generate_uid()
    assert [s.Status for s in store(service.port, [moved])] == [0]
    old_path.write_bytes(kept)  # as if the set-aside never happened
    old = time.time() - 60
    os.utime(old_path, (old, old))
    report = Coordinator(
        service.index, service.spool, CoordinatorTiming(0.0, 3600.0, 7.0, 0.05)
    ).recover()
    assert (report.reindexed_files, report.superseded_files) == (0, 1)
    assert not old_path.exists()
    assert service.index.instance(first.SOPInstanceUID).study_uid == moved.StudyInstanceUID


# -- §7: an association aborted right after its last data set ----------------------------------


def test_abort_after_complete_data_set_is_counted_in_the_audit(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The peer aborts while the listener is still writing its complete data set (in the
    probe: a 134 MB instance stored 0.44 s after the abort). SIMULATED FAULT: a slow disk,
    made by delaying the spool's move by 1 s, so the abort reliably comes first."""
    real_move_in = service.spool.move_in

    def slow_move_in(*args, **kwargs):
        time.sleep(1.0)
        return real_move_in(*args, **kwargs)

    monkeypatch.setattr(service.spool, "move_in", slow_move_in)
    ds = mg_image(generate_uid(), "L", "CC", rows=2048, columns=1536)  # ~6 MB
    ds.PixelData = np.zeros((2048, 1536), dtype=np.uint16).tobytes()
    ae = scu()
    ae.add_requested_context(MG_FOR_PRESENTATION, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", service.port, ae_title="BRGAN")
    assert assoc.is_established
    buf = DicomFileLike(BytesIO())
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_dataset(buf, ds)
    req = C_STORE()
    req.MessageID = 1
    req.AffectedSOPClassUID = ds.SOPClassUID
    req.AffectedSOPInstanceUID = ds.SOPInstanceUID
    req.Priority = 2
    req.DataSet = BytesIO(buf.parent.getvalue())
    context = assoc.accepted_contexts[0]
    assoc.dimse.send_msg(req, context.context_id)
    # Wait until every P-DATA left the SCU, then abort without waiting for the response.
    wait_until(lambda: assoc.dul.to_provider_queue.empty(), timeout=30)
    time.sleep(0.05)
    assoc.abort()
    wait_until(lambda: service.index.instances(ds.StudyInstanceUID), timeout=30)
    wait_until(lambda: service.index.associations()[0].instances_ok == 1, timeout=10)
    audit = service.index.associations()[0]
    assert audit.outcome in ("aborted", "closed") and audit.instances_ok == 1


# -- §3: a deflate bomb over the wire ------------------------------------------------------------


def test_deflate_bomb_is_refused_with_0xa701_and_a_normal_deflated_set_is_stored(
    service_factory, tmp_path: Path
) -> None:
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from tests.plugin.study.conftest import make_dataset
    from tests.plugin.study.test_deflate import BIG_PIXELS, _deflated_file, _pixel_data

    svc: Service = service_factory(max_dataset_bytes=50_000_000)
    bomb_ds = make_dataset(Rows=10000, Columns=10000)  # 200 MB of zeros, ~200 KB deflated
    bomb = tmp_path / "bomb.dcm"
    bomb.write_bytes(_deflated_file(bomb_ds, *_pixel_data(BIG_PIXELS)))
    small_ds = make_dataset(Rows=64, Columns=48)
    small = tmp_path / "small.dcm"
    small.write_bytes(_deflated_file(small_ds, *_pixel_data(64 * 48 * 2)))
    assert bomb.stat().st_size < 1_000_000

    statuses = send_files(svc.port, [bomb, small], transfer_syntax=DeflatedExplicitVRLittleEndian)
    assert [s.Status for s in statuses] == [0xA701, 0x0000]
    assert "inflated" in statuses[0].ErrorComment
    assert svc.index.instance(bomb_ds.SOPInstanceUID) is None
    row = svc.index.instance(small_ds.SOPInstanceUID)
    assert row is not None and row.transfer_syntax_uid == DeflatedExplicitVRLittleEndian


def test_recovery_after_the_spool_moved_reindexes_instead_of_setting_aside(
    service: Service, tmp_path: Path
) -> None:
    """Same study, other path (data_dir moved): the latest-arrival rule does not apply."""
    study = four_view_study()
    assert [s.Status for s in store(service.port, study)] == [0] * 4
    moved_root = tmp_path / "moved-spool"
    service.spool.root.rename(moved_root)
    from plugin.spool import Spool

    spool = Spool(moved_root)
    report = Coordinator(service.index, spool, CoordinatorTiming(0.0, 3600.0, 7.0)).recover()
    assert (report.reindexed_files, report.superseded_files) == (4, 0)
    rows = service.index.instances(study[0].StudyInstanceUID)
    assert all(Path(r.path).parent.parent == moved_root for r in rows)


def test_a_queued_studys_file_stays_when_its_instance_moves(service: Service) -> None:
    """Its task names the old path: the file is kept until that study's analysis ends."""
    first = four_view_study()[0]
    assert [s.Status for s in store(service.port, [first])] == [0]
    uid = first.StudyInstanceUID
    service.index.transition(uid, StudyState.READY)
    service.index.transition(uid, StudyState.QUEUED)
    moved = copy.deepcopy(first)
    moved.StudyInstanceUID = generate_uid()
    assert [s.Status for s in store(service.port, [moved])] == [0]
    assert service.spool.path_for(uid, first.SOPInstanceUID).exists()
    assert any("kept until" in e.message for e in service.index.errors(10))
