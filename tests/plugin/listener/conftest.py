"""A real listener on a free loopback port, and SCU helpers that talk to it."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config
from pynetdicom.sop_class import Verification

from plugin.config import Settings
from plugin.coordinator import Coordinator, CoordinatorTiming
from plugin.index import Index, SqliteIndex
from plugin.listener import Listener
from plugin.spool import Spool

CALLING_AE = "TESTSCU"
MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"


@dataclass
class Service:
    settings: Settings
    index: Index
    spool: Spool
    listener: Listener
    port: int
    coordinator: Coordinator | None = None
    ready: list[tuple[str, int]] = field(default_factory=list)

    def stop(self) -> None:
        if self.coordinator is not None:
            self.coordinator.stop()
        self.listener.stop()
        self.index.close()


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "host": "127.0.0.1",
        "port": 0,
        "allowed_calling_aets": [CALLING_AE],
        "complete_grace": 0.0,
        "stable_age": 3600.0,
        "coordinator_interval": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


def start(settings: Settings, *, coordinator: bool = False, spool: Spool | None = None) -> Service:
    index = SqliteIndex(settings.index_path)
    spool = spool or Spool(settings.spool_path)
    listener = Listener(settings, spool, index)
    _, port = listener.start()
    svc = Service(settings, index, spool, listener, port)
    if coordinator:
        svc.coordinator = Coordinator(
            index,
            spool,
            CoordinatorTiming(
                settings.complete_grace,
                settings.stable_age,
                settings.retention_days,
                settings.coordinator_interval,
            ),
            on_study_ready=lambda uid, version: svc.ready.append((uid, version)),
        )
        svc.coordinator.recover()
        svc.coordinator.start()
    return svc


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Start services (stopped at teardown); keyword arguments override settings."""
    started: list[Service] = []
    chunked = _config.STORE_RECV_CHUNKED_DATASET

    def factory(*, coordinator: bool = False, spool: Spool | None = None, **overrides: Any):
        svc = start(
            make_settings(tmp_path / "data", **overrides), coordinator=coordinator, spool=spool
        )
        started.append(svc)
        return svc

    yield factory
    for svc in started:
        svc.stop()
    _config.STORE_RECV_CHUNKED_DATASET = chunked


@pytest.fixture
def service(service_factory: Callable[..., Service]) -> Service:
    return service_factory()


def scu(calling_ae: str = CALLING_AE) -> AE:
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    return ae


def store(
    port: int,
    datasets: Sequence[Dataset | Path],
    *,
    calling_ae: str = CALLING_AE,
    called_ae: str = "BRGAN",
    tls: tuple[ssl.SSLContext, str] | None = None,
) -> list[Dataset]:
    """C-STORE each data set over one association; returns the response status datasets."""
    ae = scu(calling_ae)
    for ds in datasets:
        if isinstance(ds, Dataset):
            ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    if not any(isinstance(ds, Dataset) for ds in datasets):
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.1.2")
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae, tls_args=tls)
    assert assoc.is_established, "association was not accepted"
    try:
        return [assoc.send_c_store(ds) for ds in datasets]
    finally:
        assoc.release()


def echo(port: int, *, calling_ae: str = CALLING_AE, tls: Any = None) -> int | None:
    """C-ECHO status, or None when the association was refused."""
    ae = scu(calling_ae)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="BRGAN", tls_args=tls)
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_echo()
        return int(status.Status) if "Status" in status else None
    finally:
        assoc.release()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll a condition (the coordinator works in its own thread)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)


def raw_file(
    path: Path, ds: Dataset, *, sop_uid: str | None = None, sop_class: str = MG_FOR_PRESENTATION
) -> Path:
    """``ds`` written as explicit VR little endian exactly as built (no validation), with a
    well-formed file meta so the SCU can send it."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    with path.open("wb") as fh:
        fh.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(DicomFileLike(fh), meta, enforce_standard=True)
        body = DicomFileLike(BytesIO())
        body.is_little_endian, body.is_implicit_VR = True, False
        write_dataset(body, ds)
        fh.write(body.parent.getvalue())
    return path


def send_files(
    port: int, files: list[Path], *, transfer_syntax: str = ExplicitVRLittleEndian
) -> list[Dataset]:
    """C-STORE files over one association, their bytes on the wire as they are."""
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # the bytes go on the wire as they are
    try:
        ae = scu()
        ae.add_requested_context(MG_FOR_PRESENTATION, transfer_syntax)
        assoc = ae.associate("127.0.0.1", port, ae_title="BRGAN")
        assert assoc.is_established
        try:
            return [assoc.send_c_store(f) for f in files]
        finally:
            assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous
