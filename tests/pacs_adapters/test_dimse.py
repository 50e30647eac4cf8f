"""The C-STORE SCU against a real pynetdicom Storage SCP that records what arrives."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import SecondaryCaptureImageStorage, Verification

from pacs_adapters.destination import DestinationConfig
from pacs_adapters.dimse import DimseSink
from pacs_adapters.sink import Outcome, Sink, make_sink
from tests.deploy.orthanc import free_ports
from tests.pacs_adapters.conftest import RecordingSCP, paths


def dimse(port: int, **kwargs: Any) -> Sink:
    values: dict[str, Any] = {
        "name": "scp",
        "kind": "dimse",
        "ae_title": "RECORDER",
        "host": "127.0.0.1",
        "port": port,
        "timeout": 5,
    }
    values.update(kwargs)
    return make_sink(DestinationConfig(**values))


def test_each_file_sent_once_on_one_association(scp: RecordingSCP, one_of_each) -> None:
    sink = dimse(scp.port)
    assert isinstance(sink, DimseSink) and isinstance(sink, Sink) and sink.name == "scp"
    results = sink.send(paths(one_of_each))

    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 4
    assert [r.status for r in results] == [0x0000] * 4
    assert [r.path for r in results] == paths(one_of_each)
    assert [r.sop_instance_uid for r in results] == [f.sop_instance_uid for f in one_of_each]
    # Exactly once each, in order, on one association; the data set arrived whole.
    assert scp.uids == [f.sop_instance_uid for f in one_of_each]
    assert scp.connections == 1
    for got, sent in zip(scp.received, one_of_each, strict=True):
        assert got.sop_class_uid == sent.sop_class_uid
        assert got.dataset_uid == sent.sop_instance_uid
        assert got.transfer_syntax == ExplicitVRLittleEndian  # the files' own syntax
        assert (got.calling_ae, got.called_ae) == ("BRGAN", "RECORDER")

    # A second send is a second association and sends everything again, once.
    sink.send(paths(one_of_each[:2]))
    assert scp.uids[4:] == [f.sop_instance_uid for f in one_of_each[:2]]
    assert scp.connections == 2
    sink.close()


def test_sends_every_result_object(scp: RecordingSCP, result_files) -> None:
    results = dimse(scp.port).send(paths(result_files))
    assert all(r.outcome is Outcome.DELIVERED for r in results), results
    assert scp.uids == [f.sop_instance_uid for f in result_files]


def test_empty_send_opens_no_association(scp: RecordingSCP) -> None:
    assert dimse(scp.port).send([]) == []
    assert scp.connections == 0


@pytest.mark.parametrize(
    ("status", "outcome", "words"),
    [
        (0xB000, Outcome.DELIVERED, "coercion"),
        (0xB006, Outcome.DELIVERED, "discarded"),
        (0xB007, Outcome.DELIVERED, "does not match"),
        (0xA700, Outcome.TRANSIENT, "out of resources"),
        (0xA7FF, Outcome.TRANSIENT, "out of resources"),
        (0xC000, Outcome.PERMANENT, "cannot understand"),
        (0xA900, Outcome.PERMANENT, "does not match SOP class"),
        (0x0122, Outcome.PERMANENT, "SOP class not supported"),
    ],
)
def test_status_of_one_file(
    scp: RecordingSCP, one_of_each, status: int, outcome: Outcome, words: str
) -> None:
    """The SCP answers ``status`` for the second file; the others still go, on the same
    association, and succeed."""
    target = one_of_each[1].sop_instance_uid
    scp.statuses[target] = status
    results = dimse(scp.port).send(paths(one_of_each))

    assert results[1].outcome is outcome
    assert results[1].status == status
    assert words in results[1].detail and f"0x{status:04X}" in results[1].detail
    assert [r.outcome for i, r in enumerate(results) if i != 1] == [Outcome.DELIVERED] * 3
    assert scp.uids == [f.sop_instance_uid for f in one_of_each]
    assert scp.connections == 1


def test_called_ae_rejected_is_permanent(make_scp, one_of_each) -> None:
    scp = make_scp(require_called_aet=True)
    results = dimse(scp.port, ae_title="SOMEONE").send(paths(one_of_each))
    assert [r.outcome for r in results] == [Outcome.PERMANENT] * 4
    assert all(r.status is None for r in results)
    detail = results[0].detail
    assert "rejected (permanent)" in detail and "called AE title not recognised" in detail
    assert scp.uids == []


def test_rejected_transient_when_the_scp_is_busy(make_scp, one_of_each) -> None:
    """pynetdicom rejects (transient, local limit exceeded) beyond maximum_associations."""
    scp = make_scp(maximum_associations=1)
    holder = AE(ae_title="HOLDER")
    holder.add_requested_context(SecondaryCaptureImageStorage)
    held = holder.associate("127.0.0.1", scp.port, ae_title="RECORDER")
    assert held.is_established
    try:
        results = dimse(scp.port).send(paths(one_of_each))
    finally:
        held.release()
    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * 4
    assert "rejected (transient)" in results[0].detail
    assert "local limit exceeded" in results[0].detail
    assert scp.uids == []


def test_nothing_listening_is_transient(one_of_each) -> None:
    (port,) = free_ports(1)
    started = time.monotonic()
    results = dimse(port).send(paths(one_of_each))
    assert time.monotonic() - started < 5
    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * 4
    assert all(r.status is None for r in results)
    assert results[0].detail.startswith(f"cannot connect to 127.0.0.1:{port}")
    assert [r.sop_instance_uid for r in results] == [f.sop_instance_uid for f in one_of_each]


def test_no_response_is_transient(make_scp, one_of_each) -> None:
    """The SCP takes longer than the DIMSE timeout: that file and the rest are TRANSIENT, and
    the call returns soon after the timeout."""
    scp = make_scp()
    scp.delays[one_of_each[1].sop_instance_uid] = 2.0
    started = time.monotonic()
    results = dimse(scp.port, timeout=0.5).send(paths(one_of_each))
    assert time.monotonic() - started < 2.0
    assert [r.outcome for r in results] == [
        Outcome.DELIVERED,
        Outcome.TRANSIENT,
        Outcome.TRANSIENT,
        Outcome.TRANSIENT,
    ]
    assert "DIMSE timeout" in results[1].detail
    assert "association lost" in results[2].detail
    assert scp.uids == [f.sop_instance_uid for f in one_of_each[:2]]


def test_unreadable_files_are_permanent_and_not_sent(
    scp: RecordingSCP, one_of_each, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"\x00" * 200 + b"not DICOM")
    missing = tmp_path / "missing.dcm"
    results = dimse(scp.port).send([garbage, Path(one_of_each[0].path), missing])
    assert [r.outcome for r in results] == [
        Outcome.PERMANENT,
        Outcome.DELIVERED,
        Outcome.PERMANENT,
    ]
    assert results[0].sop_instance_uid is None and results[0].path == garbage
    assert "cannot read file" in results[0].detail
    assert "FileNotFoundError" in results[2].detail
    assert scp.uids == [one_of_each[0].sop_instance_uid]


def test_sop_class_the_scp_does_not_take_is_permanent(make_scp, one_of_each) -> None:
    scp = make_scp(sop_classes=(SecondaryCaptureImageStorage,))
    results = dimse(scp.port).send(paths(one_of_each))
    assert [r.outcome for r in results] == [
        Outcome.PERMANENT,
        Outcome.PERMANENT,
        Outcome.DELIVERED,
        Outcome.PERMANENT,
    ]
    assert "no presentation context" in results[0].detail
    assert scp.uids == [one_of_each[2].sop_instance_uid]


def test_scp_that_takes_none_of_our_classes(make_scp, one_of_each) -> None:
    scp = make_scp(sop_classes=(Verification,))
    results = dimse(scp.port).send(paths(one_of_each[:2]))
    assert [r.outcome for r in results] == [Outcome.PERMANENT] * 2
    assert "accepted no presentation context" in results[0].detail


# -- TLS ------------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "scp.crt", tmp_path / "scp.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def test_tls(make_scp, one_of_each, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    scp = make_scp(ssl_context=context)

    results = dimse(scp.port, tls=True, tls_ca=cert).send(paths(one_of_each[:2]))
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 2
    assert scp.uids == [f.sop_instance_uid for f in one_of_each[:2]]

    # Not trusted (system CAs only): the handshake fails, nothing is sent, transient.
    results = dimse(scp.port, tls=True).send(paths(one_of_each[:1]))
    assert results[0].outcome is Outcome.TRANSIENT
    assert "TLS" in results[0].detail
    # Plain DICOM to a TLS port: no association either.
    results = dimse(scp.port, timeout=1).send(paths(one_of_each[:1]))
    assert results[0].outcome is Outcome.TRANSIENT
    assert len(scp.uids) == 2


def test_tls_setup_failure_is_transient(scp: RecordingSCP, one_of_each, tmp_path: Path) -> None:
    results = dimse(scp.port, tls=True, tls_ca=tmp_path / "absent.pem").send(paths(one_of_each[:1]))
    assert results[0].outcome is Outcome.TRANSIENT
    assert results[0].detail.startswith("TLS setup failed")
    assert scp.connections == 0
