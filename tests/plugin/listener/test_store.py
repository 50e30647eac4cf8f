"""C-STORE and C-ECHO over real associations on loopback (pynetdicom SCU)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid

from plugin.index import StudyState
from plugin.spool import Spool
from tests.plugin.listener.conftest import Service, echo, scu, store
from tests.plugin.listener.dicom_data import MG_FOR_PRESENTATION, four_view_study, mg_image, text_sr


def test_echo(service: Service) -> None:
    assert echo(service.port) == 0x0000


def test_four_view_study_is_spooled_and_indexed(service: Service) -> None:
    study = four_view_study()
    study_uid = study[0].StudyInstanceUID
    statuses = store(service.port, study)
    assert [s.Status for s in statuses] == [0, 0, 0, 0]
    rows = service.index.instances(study_uid)
    assert {r.sop_instance_uid for r in rows} == {ds.SOPInstanceUID for ds in study}
    assert {(r.laterality, r.view) for r in rows} == {
        ("L", "CC"),
        ("R", "CC"),
        ("L", "MLO"),
        ("R", "MLO"),
    }
    assert all(r.usable and r.reason is None for r in rows)
    assert {r.presentation_intent for r in rows} == {"FOR PRESENTATION"}
    assert {r.image_type for r in rows} == {"ORIGINAL\\PRIMARY\\"}
    assert {r.acquisition_datetime[:10] for r in rows} == {"2026-01-02"}
    assert {r.view_modifiers for r in rows} == {None}
    for row in rows:
        path = Path(row.path)
        assert path.parent.parent == service.spool.root
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert dcmread(path).SOPInstanceUID == row.sop_instance_uid
        assert row.size == path.stat().st_size
        header = json.loads(row.header_json)
        assert header["has_pixel_data"] is True
        assert "PatientName" not in row.header_json and "SYNTH-001" not in row.header_json
    state = service.index.get_study(study_uid)
    assert state is not None and state.state == StudyState.RECEIVING
    assert state.instance_count == 4
    audit = service.index.associations()[0]
    assert audit.calling_ae == "TESTSCU" and audit.instances_ok == 4
    assert audit.outcome == "released" and audit.peer_address == "127.0.0.1"


def test_sr_and_empty_pixels_are_stored_but_not_usable(service: Service) -> None:
    study_uid = generate_uid()
    sr = text_sr(study_uid)
    empty = mg_image(study_uid, "L", "CC", pixels=False)
    statuses = store(service.port, [sr, empty])
    assert [s.Status for s in statuses] == [0, 0]
    rows = {r.sop_instance_uid: r for r in service.index.instances(study_uid)}
    assert not rows[sr.SOPInstanceUID].usable
    assert rows[sr.SOPInstanceUID].reason.startswith("not an image")
    assert not rows[empty.SOPInstanceUID].usable
    assert rows[empty.SOPInstanceUID].reason == "no pixel data"


def test_missing_sop_instance_uid_fails(service: Service, tmp_path: Path) -> None:
    ds = mg_image(generate_uid(), "L", "CC")
    del ds.StudyInstanceUID
    [status] = store(service.port, [ds])
    assert 0xC000 <= status.Status <= 0xCFFF
    assert "StudyInstanceUID" in status.ErrorComment
    assert service.index.errors()[0].status == status.Status
    assert echo(service.port) == 0


def test_write_failure_gives_a700_and_service_keeps_answering(service: Service) -> None:
    study = four_view_study()
    blocked = service.spool.study_dir(study[0].StudyInstanceUID)
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_bytes(b"a file where the study folder should be")  # a real write failure
    [status] = store(service.port, study[:1])
    assert status.Status == 0xA700
    assert service.index.instances(study[0].StudyInstanceUID) == []
    assert echo(service.port) == 0
    other = four_view_study()
    assert [s.Status for s in store(service.port, other[:1])] == [0]


def test_too_large_is_refused(service_factory) -> None:
    svc = service_factory(max_dataset_bytes=1024)
    [status] = store(svc.port, [mg_image(generate_uid(), "L", "CC", rows=64, columns=64)])
    assert status.Status == 0xA701
    assert echo(svc.port) == 0


class RecordingSpool(Spool):
    """A real spool that remembers which write path each instance took (instrumentation)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[str] = []

    def move_in(self, study_uid, sop_uid, source):  # type: ignore[override]
        self.calls.append("move_in")
        return super().move_in(study_uid, sop_uid, source)

    def write_bytes(self, study_uid, sop_uid, data):  # type: ignore[override]
        self.calls.append("write_bytes")
        return super().write_bytes(study_uid, sop_uid, data)


def test_large_dataset_goes_through_chunked_receive(service_factory, tmp_path: Path) -> None:
    spool = RecordingSpool(tmp_path / "spool")
    svc = service_factory(spool=spool, chunked_receive=True, max_pdu_size=16382)
    big = mg_image(generate_uid(), "L", "CC", rows=1024, columns=1024)  # 2 MiB of pixels
    [status] = store(svc.port, [big])
    assert status.Status == 0
    assert spool.calls == ["move_in"]
    [row] = svc.index.instances(big.StudyInstanceUID)
    assert row.size > 2 * 1024 * 1024
    assert dcmread(row.path).PixelData == big.PixelData
    assert stat.S_IMODE(Path(row.path).stat().st_mode) == 0o600


def test_in_memory_receive_path(service_factory, tmp_path: Path) -> None:
    spool = RecordingSpool(tmp_path / "spool")
    svc = service_factory(spool=spool, chunked_receive=False)
    ds = mg_image(generate_uid(), "R", "MLO")
    assert [s.Status for s in store(svc.port, [ds])] == [0]
    assert spool.calls == ["write_bytes"]
    assert dcmread(svc.index.instances(ds.StudyInstanceUID)[0].path).PixelData == ds.PixelData


def test_same_instance_twice_is_one_row(service: Service) -> None:
    ds = mg_image(generate_uid(), "L", "CC")
    store(service.port, [ds])
    store(service.port, [ds])
    [row] = service.index.instances(ds.StudyInstanceUID)
    assert row.receive_count == 2


def test_two_studies_interleaved_on_one_association(service: Service) -> None:
    first, second = four_view_study(), four_view_study()
    interleaved = [ds for pair in zip(first, second, strict=True) for ds in pair]
    assert [s.Status for s in store(service.port, interleaved)] == [0] * 8
    for study in (first, second):
        rows = service.index.instances(study[0].StudyInstanceUID)
        assert {r.sop_instance_uid for r in rows} == {ds.SOPInstanceUID for ds in study}


def test_one_study_over_several_associations(service: Service) -> None:
    study = four_view_study()
    for ds in study:
        assert store(service.port, [ds])[0].Status == 0
    assert service.index.get_study(study[0].StudyInstanceUID).instance_count == 4
    assert [a.instances_ok for a in service.index.associations()] == [1, 1, 1, 1]


def test_association_limit(service_factory) -> None:
    svc = service_factory(max_associations=1)
    ae = scu()
    ae.add_requested_context(MG_FOR_PRESENTATION)
    held = ae.associate("127.0.0.1", svc.port, ae_title="BRGAN")
    assert held.is_established
    try:
        assert echo(svc.port) is None
    finally:
        held.release()
    rejected = [a for a in svc.index.associations() if a.outcome == "rejected"]
    assert rejected and rejected[0].last_failure == "too many associations"
    assert echo(svc.port) == 0
