"""Both sinks against a real Orthanc with the deploy config (``deploy/orthanc/orthanc.json``:
C-STORE only from the modalities it declares, AE ``BRGAN`` among them; DICOMweb plugin)."""

from __future__ import annotations

import io
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from pacs_adapters.destination import DestinationConfig
from pacs_adapters.sink import Outcome, make_sink
from tests.deploy.orthanc import Orthanc, free_ports, orthanc_binary, start_orthanc
from tests.pacs_adapters.conftest import RESULT_SOP_CLASSES, paths

pytestmark = pytest.mark.integration

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    if orthanc_binary() is None:
        pytest.skip("Orthanc is not installed (apt: orthanc)")
    if not DICOMWEB_PLUGIN.is_file():
        pytest.skip("the Orthanc DICOMweb plugin is not installed (apt: orthanc-dicomweb)")
    (listener_port,) = free_ports(1)  # the routing target; nothing MG is stored here
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"), listener_port=listener_port)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def empty_orthanc(orthanc: Orthanc) -> Orthanc:
    for patient in orthanc.get("/patients"):
        orthanc.request("DELETE", f"/patients/{patient}")
    assert orthanc.get("/instances") == []
    return orthanc


def stored_file(orthanc: Orthanc, instance_id: str) -> pydicom.Dataset:
    with urllib.request.urlopen(f"{orthanc.url}/instances/{instance_id}/file", timeout=10) as r:
        return pydicom.dcmread(io.BytesIO(r.read()))


def check_stored(orthanc: Orthanc, result_files) -> None:
    """Every object is in Orthanc, in the study of the source images, unchanged."""
    study_uids = set()
    for f in result_files:
        instance_id = orthanc.lookup(f.sop_instance_uid)
        assert instance_id is not None, f"{f.kind} {f.sop_instance_uid} is not in Orthanc"
        tags = orthanc.get(f"/instances/{instance_id}/simplified-tags")
        assert tags["SOPClassUID"] == f.sop_class_uid == RESULT_SOP_CLASSES[f.kind]
        assert tags["SeriesInstanceUID"] == f.series_instance_uid
        study_uids.add(tags["StudyInstanceUID"])
        assert stored_file(orthanc, instance_id) == pydicom.dcmread(f.path)
    assert len(study_uids) == 1
    assert len(orthanc.get("/instances")) == len(result_files)


def test_c_store_to_orthanc(empty_orthanc: Orthanc, result_files) -> None:
    orthanc = empty_orthanc
    sink = make_sink(
        DestinationConfig(
            name="orthanc",
            kind="dimse",
            ae_title=orthanc.aet,
            host="127.0.0.1",
            port=orthanc.dicom_port,
            timeout=10,
        )
    )
    results = sink.send(paths(result_files))
    assert [(r.outcome, r.status) for r in results] == [(Outcome.DELIVERED, 0)] * len(
        result_files
    ), [r.detail for r in results]
    check_stored(orthanc, result_files)

    # The same objects again: Orthanc answers Success and keeps one copy of each.
    again = sink.send(paths(result_files))
    assert [(r.outcome, r.status) for r in again] == [(Outcome.DELIVERED, 0)] * len(result_files)
    assert len(orthanc.get("/instances")) == len(result_files)


def test_c_store_from_an_undeclared_ae(empty_orthanc: Orthanc, one_of_each) -> None:
    """Orthanc 1.10 accepts the association of a calling AE missing from DicomModalities (it
    allows C-ECHO from anyone) and aborts it on the C-STORE: transient, and the detail says
    the peer aborted."""
    orthanc = empty_orthanc
    sink = make_sink(
        DestinationConfig(
            name="orthanc",
            kind="dimse",
            ae_title=orthanc.aet,
            host="127.0.0.1",
            port=orthanc.dicom_port,
            calling_ae="STRANGER",
            timeout=10,
        )
    )
    results = sink.send(paths(one_of_each[:2]))
    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * 2
    assert "aborted by the peer" in results[0].detail
    assert "association lost" in results[1].detail
    assert orthanc.get("/instances") == []


def test_stow_rs_to_orthanc(empty_orthanc: Orthanc, result_files) -> None:
    orthanc = empty_orthanc
    sink = make_sink(
        DestinationConfig(name="orthanc-web", kind="stow", url=f"{orthanc.url}/dicom-web/")
    )
    results = sink.send(paths(result_files))
    assert [(r.outcome, r.status) for r in results] == [(Outcome.DELIVERED, 200)] * len(
        result_files
    ), [r.detail for r in results]
    check_stored(orthanc, result_files)

    # Again: Orthanc answers 200 and lists each instance in the Referenced SOP Sequence.
    again = sink.send(paths(result_files))
    assert [(r.outcome, r.status) for r in again] == [(Outcome.DELIVERED, 200)] * len(result_files)
    assert len(orthanc.get("/instances")) == len(result_files)
    sink.close()
