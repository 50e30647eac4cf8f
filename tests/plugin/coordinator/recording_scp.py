"""A C-STORE SCP for tests that counts what arrives (a real pynetdicom peer, not a mock)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from pynetdicom import AE, AllStoragePresentationContexts, evt


@dataclass
class RecordingSCP:
    """A C-STORE SCP that records every store and answers with ``status`` (by SOP class)."""

    port: int
    received: list[tuple[str, str]] = field(default_factory=list)
    refuse: dict[str, int] = field(default_factory=dict)  # SOP class → status
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        ae = AE(ae_title="RECORDER")
        ae.supported_contexts = AllStoragePresentationContexts
        self._server = ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._store)]
        )

    def _store(self, event: evt.Event) -> int:
        ds = event.dataset
        with self.lock:
            self.received.append((str(ds.SOPClassUID), str(ds.SOPInstanceUID)))
        return self.refuse.get(str(ds.SOPClassUID), 0x0000)

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(uid for _, uid in self.received)

    def stop(self) -> None:
        self._server.shutdown()
