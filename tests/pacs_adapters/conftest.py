"""Real result objects to send (the project's writers), and a recording Storage SCP."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    ComprehensiveSRStorage,
    KeyObjectSelectionDocumentStorage,
    MammographyCADSRStorage,
    SecondaryCaptureImageStorage,
)

from plugin.config import Settings
from plugin.queue.contract import ResultFile
from plugin.results.writer import write_results
from tests.plugin.results.conftest import make_results

RESULT_SOP_CLASSES = {
    "tid1500_sr": ComprehensiveSRStorage,
    "cad_sr": MammographyCADSRStorage,
    "heatmap_sc": SecondaryCaptureImageStorage,
    "summary_sc": SecondaryCaptureImageStorage,
    "kos": KeyObjectSelectionDocumentStorage,
}


@pytest.fixture(scope="session")
def result_files(tmp_path_factory: pytest.TempPathFactory) -> list[ResultFile]:
    """Every object kind the worker writes, for one synthetic study: version 2 of its results,
    so the IOCM rejection KOS for version 1 is there too (TID 1500 SR, CAD SR, 4 heatmap SCs,
    the summary SC, the KOS)."""
    root = tmp_path_factory.mktemp("results")
    settings = Settings(data_dir=root)
    first = write_results(make_results(root / "v1", version=1), settings, root / "out-v1")
    second = make_results(root / "v2", version=2)
    second = dataclasses.replace(
        second, task=dataclasses.replace(second.task, supersedes=tuple(first))
    )
    files = write_results(second, settings, root / "out-v2")
    assert {f.kind for f in files} == set(RESULT_SOP_CLASSES)
    for f in files:
        assert f.sop_class_uid == RESULT_SOP_CLASSES[f.kind], f
    return files


@pytest.fixture(scope="session")
def one_of_each(result_files: list[ResultFile]) -> list[ResultFile]:
    """One object of each SOP class: TID 1500 SR, CAD SR, a heatmap SC, the KOS."""
    wanted = ("tid1500_sr", "cad_sr", "heatmap_sc", "kos")
    return [next(f for f in result_files if f.kind == kind) for kind in wanted]


def paths(files: list[ResultFile]) -> list[Path]:
    return [Path(f.path) for f in files]


@dataclass
class Received:
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    calling_ae: str
    called_ae: str
    dataset_uid: str


@dataclass
class RecordingSCP:
    """A pynetdicom Storage SCP on a free loopback port that records every C-STORE."""

    ae_title: str = "RECORDER"
    statuses: dict[str, int] = field(default_factory=dict)  # SOP Instance UID → status
    delays: dict[str, float] = field(default_factory=dict)  # SOP Instance UID → seconds
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    server: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(
        self,
        *,
        sop_classes: tuple[str, ...] = tuple(set(RESULT_SOP_CLASSES.values())),
        require_called_aet: bool = False,
        maximum_associations: int = 10,
        ssl_context: Any = None,
    ) -> RecordingSCP:
        ae = AE(ae_title=self.ae_title)
        for sop_class in sop_classes:
            ae.add_supported_context(sop_class)  # every transfer syntax pynetdicom knows
        ae.require_called_aet = require_called_aet
        ae.maximum_associations = maximum_associations
        ae.dimse_timeout = ae.acse_timeout = ae.network_timeout = 10
        self.server = ae.start_server(
            ("127.0.0.1", 0),
            block=False,
            ssl_context=ssl_context,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store), (evt.EVT_CONN_OPEN, self._on_open)],
        )
        self.port = int(self.server.server_address[1])
        return self

    def _on_open(self, event: Any) -> None:
        with self.lock:
            self.connections += 1

    def _on_store(self, event: Any) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        ds = event.dataset  # decodes the data set: it must arrive whole
        with self.lock:
            self.received.append(
                Received(
                    uid,
                    str(event.request.AffectedSOPClassUID),
                    str(event.context.transfer_syntax),
                    str(event.assoc.requestor.ae_title),
                    str(event.assoc.acceptor.ae_title),
                    str(ds.SOPInstanceUID),
                )
            )
        delay = self.delays.get(uid, 0.0)
        if delay:
            time.sleep(delay)
        return self.statuses.get(uid, 0x0000)

    @property
    def uids(self) -> list[str]:
        with self.lock:
            return [r.sop_instance_uid for r in self.received]

    def reset(self) -> None:
        with self.lock:
            self.statuses.clear()
            self.delays.clear()
            self.received.clear()
            self.connections = 0

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None


@pytest.fixture(scope="session")
def shared_scp() -> Iterator[RecordingSCP]:
    recorder = RecordingSCP().start()
    try:
        yield recorder
    finally:
        recorder.stop()


@pytest.fixture
def scp(shared_scp: RecordingSCP) -> RecordingSCP:
    """The recording SCP (AE ``RECORDER``, every result SOP class, status 0x0000), with
    nothing recorded yet (one server for the session: stopping one takes 0.5 s)."""
    shared_scp.reset()
    return shared_scp


@pytest.fixture
def make_scp() -> Iterator[Any]:
    """``make_scp(**start_kwargs)`` → a started :class:`RecordingSCP`, stopped afterwards."""
    started: list[RecordingSCP] = []

    def factory(**kwargs: Any) -> RecordingSCP:
        recorder = RecordingSCP().start(**kwargs)
        started.append(recorder)
        return recorder

    try:
        yield factory
    finally:
        for recorder in started:
            recorder.stop()
