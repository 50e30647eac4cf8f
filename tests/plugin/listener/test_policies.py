"""Malformed input, AE-title policy, TLS, dcmtk interoperability."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import _config
from structlog.testing import capture_logs

from plugin.index import StudyState
from tests.plugin.listener.conftest import Service, echo, scu, store, wait_until
from tests.plugin.listener.dicom_data import MG_FOR_PRESENTATION, four_view_study, save


def _garbage_file(path: Path) -> Path:
    """Valid file meta, then bytes that are no DICOM data set at all."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MG_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    with path.open("wb") as fh:
        fh.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(DicomFileLike(fh), meta, enforce_standard=True)
        fh.write(b"\xff\xfe\x12\x34 definitely not a data set " * 7)
    return path


def test_unparseable_bytes_fail_and_service_survives(service: Service, tmp_path: Path) -> None:
    garbage = _garbage_file(tmp_path / "garbage.dcm")
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # the SCU sends the file's bytes as they are
    try:
        ae = scu()
        ae.add_requested_context(MG_FOR_PRESENTATION, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", service.port, ae_title="BRGAN")
        assert assoc.is_established
        status = assoc.send_c_store(garbage)
        assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous
    assert 0xC000 <= status.Status <= 0xCFFF
    assert service.index.studies() == []
    [error] = service.index.errors()
    assert error.source == "store" and error.status == status.Status
    assert service.index.associations()[0].instances_failed == 1
    assert echo(service.port) == 0
    assert [s.Status for s in store(service.port, four_view_study()[:1])] == [0]


def test_calling_ae_outside_whitelist_is_rejected(service: Service) -> None:
    ae = scu("INTRUDER")
    ae.add_requested_context(MG_FOR_PRESENTATION)
    assoc = ae.associate("127.0.0.1", service.port, ae_title="BRGAN")
    assert assoc.is_rejected
    wait_until(lambda: service.index.associations())  # recorded by the server's event thread
    audit = service.index.associations()[0]
    assert audit.calling_ae == "INTRUDER" and audit.outcome == "rejected"
    assert audit.last_failure == "calling AE title not allowed"
    assert echo(service.port) == 0


def test_wrong_called_ae_is_rejected(service: Service) -> None:
    ae = scu()
    ae.add_requested_context(MG_FOR_PRESENTATION)
    assoc = ae.associate("127.0.0.1", service.port, ae_title="NOTBRGAN")
    assert assoc.is_rejected
    assert service.index.associations()[0].last_failure == "called AE title not recognised"


def test_empty_whitelist_accepts_all_and_warns(service_factory) -> None:
    with capture_logs() as logs:
        svc = service_factory(allowed_calling_aets=[])
    assert any(
        e["event"] == "calling_ae_whitelist_empty" and e["log_level"] == "warning" for e in logs
    )
    assert echo(svc.port, calling_ae="ANYONE") == 0


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _client_ctx(cert: Path, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    if key is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def test_tls_association(service_factory, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    svc = service_factory(tls_cert=cert, tls_key=key)
    assert echo(svc.port, tls=(_client_ctx(cert), "localhost")) == 0
    study = four_view_study()
    assert [s.Status for s in store(svc.port, study, tls=(_client_ctx(cert), "localhost"))] == [
        0
    ] * 4
    audit = svc.index.associations()[0]
    assert audit.tls and audit.instances_ok == 4
    assert echo(svc.port) is None  # plain TCP to a TLS port gets nowhere


def test_tls_client_certificate_required(service_factory, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    svc = service_factory(tls_cert=cert, tls_key=key, tls_ca=cert)
    assert echo(svc.port, tls=(_client_ctx(cert, key), "localhost")) == 0
    assert echo(svc.port, tls=(_client_ctx(cert), "localhost")) is None


@pytest.mark.integration
def test_dcmtk_echoscu_and_storescu(service: Service, tmp_path: Path) -> None:
    if shutil.which("storescu") is None or shutil.which("echoscu") is None:
        pytest.skip("dcmtk not installed")
    study = four_view_study()
    files = [save(ds, tmp_path / f"{i}.dcm") for i, ds in enumerate(study)]
    port = str(service.port)
    env = dict(os.environ)
    echo_run = subprocess.run(
        ["echoscu", "-aet", "TESTSCU", "-aec", "BRGAN", "127.0.0.1", port],
        capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert echo_run.returncode == 0, echo_run.stderr
    run = subprocess.run(
        ["storescu", "-aet", "TESTSCU", "-aec", "BRGAN", "127.0.0.1", port, *map(str, files)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = service.index.instances(study[0].StudyInstanceUID)
    assert len(rows) == 4 and all(r.usable for r in rows)
    assert service.index.get_study(study[0].StudyInstanceUID).state == StudyState.RECEIVING
    refused = subprocess.run(
        ["echoscu", "-aet", "STRANGER", "-aec", "BRGAN", "127.0.0.1", port],
        capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert refused.returncode != 0
