"""Orthanc routes mammography studies to our listener: ``deploy/orthanc`` against real parts.

A real Orthanc (Debian 1.10) runs the deploy config and ``route-mammo.lua`` with StableAge 1 on
free loopback ports; its ``brgan`` modality points at a real listener (``allowed_calling_aets =
["ORTHANC"]``). Synthetic 4-view studies go into Orthanc through its REST API, our results come
back over DICOM from AE BRGAN, exactly as in production; the test reads our index.

Negative checks ("not routed") need a barrier, not a sleep: Orthanc runs Lua callbacks one at a
time in order, so once a *sentinel* MG study that became stable later has reached the index,
the callback for the study under test has run; its job, if any, is in Orthanc's job list.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, _config

from brgan_core.synth import get_preset, write_dataset
from plugin.config import Settings
from plugin.index import SqliteIndex
from plugin.listener import Listener
from plugin.spool import Spool
from tests.deploy.orthanc import Orthanc, orthanc_binary, poll, start_orthanc

pytestmark = pytest.mark.integration

ROUTE_TIMEOUT = 30.0
_SENTINEL_SEEDS = itertools.count(900)


@dataclass
class Setup:
    orthanc: Orthanc
    index: SqliteIndex
    work: Path
    listener_port: int


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    if orthanc_binary() is None:
        pytest.skip(
            "Orthanc is not installed (/usr/sbin/Orthanc): `apt-get install orthanc "
            "orthanc-dicomweb`, or run ./scripts/test, which installs it"
        )
    work = tmp_path_factory.mktemp("orthanc-routing")
    settings = Settings(
        data_dir=work / "brgan-data",
        host="127.0.0.1",
        port=0,
        allowed_calling_aets=["ORTHANC"],
        complete_grace=0.0,
        stable_age=3600.0,
    )
    chunked = _config.STORE_RECV_CHUNKED_DATASET
    index = SqliteIndex(settings.index_path)
    listener = Listener(settings, Spool(settings.spool_path), index)
    _, port = listener.start()
    orthanc = None
    try:
        orthanc = start_orthanc(work / "orthanc", listener_port=port, stable_age=1)
        yield Setup(orthanc, index, work, port)
    finally:
        if orthanc is not None:
            orthanc.stop()
        listener.stop()
        index.close()
        _config.STORE_RECV_CHUNKED_DATASET = chunked


def synth_study(setup: Setup, seed: int) -> list[Path]:
    """A fresh synthetic 4-view MG study (bench-cpu size) as DICOM files."""
    out = setup.work / f"synth-{seed}"
    write_dataset(out, 1, get_preset("bench-cpu"), seed)
    files = sorted(out.glob("*/*.dcm"))
    assert len(files) == 4, files
    return files


def study_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


def copy_as(src: Path, dst: Path, **changes: str) -> Path:
    """A copy of ``src`` with a new SOP Instance UID and the given attributes changed."""
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.save_as(dst, enforce_file_format=True)
    return dst


def upload_all(setup: Setup, files: list[Path]) -> str:
    """Upload to Orthanc; the Orthanc ID of their (single) study."""
    studies = {setup.orthanc.upload(f)["ParentStudy"] for f in files}
    assert len(studies) == 1, studies
    return studies.pop()


def wait_routed(setup: Setup, uid: str, count: int) -> None:
    poll(
        f"{count} instances of study {uid} in the brgan index",
        lambda: len(setup.index.instances(uid)) >= count,
        ROUTE_TIMEOUT,
    )


def c_store(setup: Setup, ds: Dataset, calling_ae: str) -> int | None:
    """C-STORE to Orthanc's DICOM port; the status, or None when the association is refused."""
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", setup.orthanc.dicom_port, ae_title=setup.orthanc.aet)
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_store(ds)
        return int(status.Status) if "Status" in status else None
    finally:
        assoc.release()


def assert_no_new_routing(setup: Setup, study_id: str, since: int, jobs_before: set[str]) -> None:
    """After ``study_id`` became stable, its callback submits no job (sentinel barrier)."""
    setup.orthanc.wait_stable(study_id, since)
    sentinel = synth_study(setup, seed=next(_SENTINEL_SEEDS))
    upload_all(setup, sentinel)
    wait_routed(setup, study_uid(sentinel[0]), 4)
    new_jobs = [setup.orthanc.get(f"/jobs/{j}") for j in setup.orthanc.job_ids() - jobs_before]
    assert len(new_jobs) == 1, f"expected only the sentinel's routing job, got {new_jobs}"
    assert new_jobs[0]["Content"]["InstancesCount"] == 4


def test_mg_study_is_routed_to_the_listener(setup: Setup) -> None:
    files = synth_study(setup, seed=11)
    uid = study_uid(files[0])
    study_id = upload_all(setup, files)

    wait_routed(setup, uid, 4)

    rows = setup.index.instances(uid)
    sent = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
    assert {r.sop_instance_uid for r in rows} == sent
    assert all(r.receive_count == 1 for r in rows)
    assert any(a.calling_ae == "ORTHANC" for a in setup.index.associations())
    # Every routed instance carries the marker that keeps it from being sent again.
    for instance_id in setup.orthanc.get(f"/studies/{study_id}/instances"):
        metadata = setup.orthanc.get(f"/instances/{instance_id['ID']}/metadata")
        assert "BrganRouted" in metadata


def test_non_mg_study_is_not_routed(setup: Setup) -> None:
    mg = synth_study(setup, seed=12)
    new_study, new_series = generate_uid(), generate_uid()
    ct = [
        copy_as(
            f,
            f.with_name(f"CT_{f.name}"),
            Modality="CT",
            StudyInstanceUID=new_study,
            SeriesInstanceUID=new_series,
        )
        for f in mg
    ]
    jobs_before = setup.orthanc.job_ids()
    since = setup.orthanc.last_change()

    study_id = upload_all(setup, ct)

    assert_no_new_routing(setup, study_id, since, jobs_before)
    assert setup.index.instances(new_study) == []


def test_results_stored_back_do_not_route_the_study_again(setup: Setup) -> None:
    files = synth_study(setup, seed=13)
    uid = study_uid(files[0])
    study_id = upload_all(setup, files)
    wait_routed(setup, uid, 4)
    jobs_before = setup.orthanc.job_ids()
    since = setup.orthanc.last_change()

    # A result object of ours (MG on purpose: only the Manufacturer guard may stop it), stored
    # back over DICOM by AE BRGAN as the result sender does.
    result = pydicom.dcmread(
        copy_as(
            files[0],
            setup.work / "result.dcm",
            Manufacturer="brgan-pacs",
            SeriesInstanceUID=generate_uid(),
            SeriesDescription="BR-GAN heatmap",
        )
    )
    assert c_store(setup, result, calling_ae="BRGAN") == 0x0000
    assert setup.orthanc.lookup(str(result.SOPInstanceUID)) is not None

    assert_no_new_routing(setup, study_id, since, jobs_before)
    rows = setup.index.instances(uid)
    assert len(rows) == 4
    assert all(r.receive_count == 1 for r in rows), "the study's images were sent twice"


def test_late_image_is_routed_alone(setup: Setup) -> None:
    files = synth_study(setup, seed=14)
    uid = study_uid(files[0])
    upload_all(setup, files)
    wait_routed(setup, uid, 4)
    jobs_before = setup.orthanc.job_ids()

    late = copy_as(files[0], setup.work / "late.dcm", SeriesInstanceUID=generate_uid())
    setup.orthanc.upload(late)

    wait_routed(setup, uid, 5)
    new_jobs = [setup.orthanc.get(f"/jobs/{j}") for j in setup.orthanc.job_ids() - jobs_before]
    assert [j["Content"]["InstancesCount"] for j in new_jobs] == [1]
    assert all(r.receive_count == 1 for r in setup.index.instances(uid))


def test_store_from_an_unknown_ae_is_refused(setup: Setup) -> None:
    ds = pydicom.dcmread(copy_as(synth_study(setup, seed=15)[0], setup.work / "stranger.dcm"))

    status = c_store(setup, ds, calling_ae="STRANGER")

    assert status != 0x0000
    assert setup.orthanc.lookup(str(ds.SOPInstanceUID)) is None


def test_dicomweb_plugin_answers(setup: Setup) -> None:
    if not Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so").is_file():
        pytest.skip("orthanc-dicomweb is not installed")
    assert isinstance(setup.orthanc.get("/dicom-web/studies"), list)
