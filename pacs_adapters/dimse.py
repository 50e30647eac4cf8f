"""C-STORE SCU (PS3.4 Annex B, Storage Service Class; PS3.7 §9.1.1 C-STORE) with pynetdicom.

One association per :meth:`DimseSink.send` call: A-ASSOCIATE with one presentation context per
SOP class and transfer syntax in the files, plus one per SOP class offering Explicit VR Little
Endian and Implicit VR Little Endian (which any Storage SCP takes), then one C-STORE per file,
in order, then A-RELEASE. A file goes in its own transfer syntax when the SCP accepted it
(pynetdicom prefers the exact match; between the uncompressed little-endian syntaxes it
converts; a compressed file needs its own syntax accepted). TLS (PS3.15 Annex B.1) when the
destination says so.

How answers map to :class:`~pacs_adapters.sink.Outcome` (:func:`~pacs_adapters.sink.storage_status`
has the status table, PS3.4 Annex B.2.3 and GG.4.2):

* C-STORE status 0x0000, 0xB000, 0xB006, 0xB007 (and the other warnings) → DELIVERED;
  0xA7xx → TRANSIENT; 0xA9xx, 0xCxxx and other failures → PERMANENT;
* no C-STORE response within ``timeout`` (DIMSE timeout), association aborted mid-way → that
  file and the rest TRANSIENT;
* A-ASSOCIATE-RJ (PS3.8 §9.3.4): result "rejected-transient" → TRANSIENT, "rejected-permanent"
  (e.g. called or calling AE title not recognised) → PERMANENT, the detail says which;
* no TCP connection (refused, unreachable, timed out, TLS handshake failed), no answer to the
  association request, A-ABORT during negotiation → TRANSIENT;
* the SCP accepted none of our presentation contexts for a file's SOP class → PERMANENT;
* a file that cannot be read → PERMANENT (it is not sent).
"""

from __future__ import annotations

import itertools
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.association import Association

from pacs_adapters.destination import DestinationConfig
from pacs_adapters.sink import FileResult, LoadedFile, Outcome, load_file, storage_status

log = structlog.stdlib.get_logger(__name__)

UNCOMPRESSED_LE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
MAX_CONTEXTS = 128  # PS3.8 §9.3.2.2: presentation context IDs are odd numbers 1-255

# A-ASSOCIATE-RJ result, source and reason (PS3.8 Table 9-21).
REJECT_RESULT = {0x01: "permanent", 0x02: "transient"}
REJECT_SOURCE = {
    0x01: "service user",
    0x02: "service provider (ACSE)",
    0x03: "service provider (presentation)",
}
REJECT_REASON = {
    (0x01, 0x01): "no reason given",
    (0x01, 0x02): "application context name not supported",
    (0x01, 0x03): "calling AE title not recognised",
    (0x01, 0x07): "called AE title not recognised",
    (0x02, 0x01): "no reason given",
    (0x02, 0x02): "protocol version not supported",
    (0x03, 0x01): "temporary congestion",
    (0x03, 0x02): "local limit exceeded",
}


class DimseSink:
    """C-STORE SCU for one ``dimse`` destination."""

    def __init__(self, config: DestinationConfig) -> None:
        if config.kind != "dimse":
            raise ValueError(f"destination {config.name!r} is not a dimse destination")
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        return f"DimseSink({self.config.name!r}, {self.config.describe()})"

    def close(self) -> None:
        """Nothing is held between calls (one association per :meth:`send`)."""

    # -- sending ------------------------------------------------------------------------------

    def send(self, files: Sequence[Path]) -> list[FileResult]:
        """C-STORE each file once on one new association; one result per file, in order."""
        loaded = [load_file(Path(f)) for f in files]
        results: list[FileResult | None] = [f.unusable() if f.problem else None for f in loaded]
        todo = [i for i, f in enumerate(loaded) if f.problem is None]
        if todo:
            try:
                self._send_loaded(loaded, todo, results)
            except Exception as exc:  # never raise for a connection problem
                log.exception("dimse_send_failed", destination=self.name)
                for i in todo:
                    if results[i] is None:
                        results[i] = self._result(
                            loaded[i], Outcome.TRANSIENT, None, f"send failed: {type(exc).__name__}"
                        )
        final = [r for r in results if r is not None]
        assert len(final) == len(loaded)
        log.info(
            "dimse_sent",
            destination=self.name,
            files=len(final),
            **{o.value: sum(r.outcome is o for r in final) for o in Outcome},
        )
        return final

    @staticmethod
    def _result(f: LoadedFile, outcome: Outcome, status: int | None, detail: str) -> FileResult:
        return FileResult(f.path, f.sop_instance_uid, outcome, status, detail)

    def _application_entity(self, loaded: Sequence[LoadedFile]) -> tuple[AE, set[str]]:
        """An AE with the presentation contexts these files need; the SOP classes left out
        (more than :data:`MAX_CONTEXTS` contexts)."""
        cfg = self.config
        ae = AE(ae_title=cfg.calling_ae)
        ae.acse_timeout = cfg.timeout
        ae.dimse_timeout = cfg.timeout
        ae.network_timeout = cfg.timeout
        ae.connection_timeout = cfg.timeout
        wanted: dict[str, list[str]] = {}
        for f in loaded:
            assert f.sop_class_uid and f.transfer_syntax
            syntaxes = wanted.setdefault(f.sop_class_uid, [])
            if f.transfer_syntax not in syntaxes:
                syntaxes.append(f.transfer_syntax)
        left_out: set[str] = set()
        count = 0
        for sop_class, own in wanted.items():
            # One context per transfer syntax the files are in (so an SCP that takes it keeps
            # it: an acceptor picks one syntax per context, often Implicit VR first), then the
            # fallback that every Storage SCP takes.
            contexts = [[tsyntax] for tsyntax in own] + [list(UNCOMPRESSED_LE)]
            if count + len(contexts) > MAX_CONTEXTS:
                left_out.add(sop_class)
                continue
            for syntaxes in contexts:
                ae.add_requested_context(sop_class, syntaxes)
            count += len(contexts)
        return ae, left_out

    def _tls_args(self) -> tuple[ssl.SSLContext, str] | None:
        cfg = self.config
        if not cfg.tls:
            return None
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(cfg.tls_ca) if cfg.tls_ca else None
        )
        if cfg.tls_cert is not None:
            context.load_cert_chain(str(cfg.tls_cert), str(cfg.tls_key))
        assert cfg.host is not None
        return context, cfg.host

    def _send_loaded(
        self, loaded: list[LoadedFile], todo: list[int], results: list[FileResult | None]
    ) -> None:
        cfg = self.config
        files = [loaded[i] for i in todo]

        def fail_all(outcome: Outcome, detail: str) -> None:
            for i in todo:
                if results[i] is None:
                    results[i] = self._result(loaded[i], outcome, None, detail)

        try:
            tls_args = self._tls_args()
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.error("dimse_tls_setup_failed", destination=self.name, error=type(exc).__name__)
            fail_all(Outcome.TRANSIENT, f"TLS setup failed: {type(exc).__name__} (check tls_*)")
            return
        ae, left_out = self._application_entity(files)
        for i in todo:
            if loaded[i].sop_class_uid in left_out:
                results[i] = self._result(
                    loaded[i], Outcome.PERMANENT, None, "too many SOP classes in one send"
                )

        connected = []
        assoc = ae.associate(
            cfg.host,
            cfg.port,
            ae_title=cfg.ae_title,
            tls_args=tls_args,
            evt_handlers=[(evt.EVT_CONN_OPEN, lambda event: connected.append(True))],
        )
        if not assoc.is_established:
            outcome, detail = self._not_established(assoc, bool(connected))
            log.warning(
                "dimse_association_failed",
                destination=self.name,
                outcome=outcome.value,
                detail=detail,
            )
            fail_all(outcome, detail)
            return
        lost = False
        try:
            message_ids = itertools.count(1)
            for i in todo:
                if results[i] is not None:
                    continue
                if lost or not assoc.is_established:
                    lost = True
                    results[i] = self._result(
                        loaded[i],
                        Outcome.TRANSIENT,
                        None,
                        "association lost before this file was sent",
                    )
                    continue
                result = self._store(assoc, loaded[i], next(message_ids))
                # No response: pynetdicom has aborted (DIMSE timeout) or is handling the
                # peer's A-ABORT (its flags may lag behind); either way the association is
                # unusable, and another C-STORE on it could wait out the timeout again.
                lost = result.status is None and result.outcome is Outcome.TRANSIENT
                results[i] = result
        finally:
            if assoc.is_established and not lost:
                assoc.release()
            else:
                assoc.abort()

    def _not_established(self, assoc: Association, connected: bool) -> tuple[Outcome, str]:
        """Why the association did not come up, as an outcome for every file."""
        cfg = self.config
        where = f"{cfg.host}:{cfg.port}" + (" over TLS" if cfg.tls else "")
        if assoc.is_rejected:
            rsp: Any = assoc.acceptor.primitive
            result = getattr(rsp, "result", None)
            source = getattr(rsp, "result_source", None)
            reason = getattr(rsp, "diagnostic", None)
            kind = REJECT_RESULT.get(result or 0, "unknown")
            outcome = Outcome.PERMANENT if result == 0x01 else Outcome.TRANSIENT
            why = REJECT_REASON.get((source or 0, reason or 0), f"reason {reason}")
            by = REJECT_SOURCE.get(source or 0, f"source {source}")
            return outcome, f"association rejected ({kind}) by {by}: {why}"
        if not connected:
            return Outcome.TRANSIENT, (
                f"cannot connect to {where} (refused, unreachable, timed out"
                + (" or TLS handshake failed)" if cfg.tls else ")")
            )
        answer = assoc.acceptor.primitive
        if answer is not None and getattr(answer, "result", None) == 0x00:
            # A-ASSOCIATE-AC with no accepted presentation context; pynetdicom aborts.
            return Outcome.PERMANENT, (
                "the SCP accepted no presentation context (it does not store these SOP classes)"
            )
        return Outcome.TRANSIENT, (
            f"association with {where} aborted or not answered within {cfg.timeout:g} s"
        )

    def _store(self, assoc: Association, f: LoadedFile, message_id: int) -> FileResult:
        started = time.monotonic()
        try:
            rsp = assoc.send_c_store(f.dataset, msg_id=message_id)
        except ValueError as exc:
            if "presentation context" in str(exc).lower():
                return self._result(
                    f,
                    Outcome.PERMANENT,
                    None,
                    "the SCP accepted no presentation context for this SOP class and "
                    "transfer syntax",
                )
            return self._result(f, Outcome.PERMANENT, None, "cannot encode the data set")
        except AttributeError:
            return self._result(f, Outcome.PERMANENT, None, "data set lacks SOP or file meta UIDs")
        except RuntimeError:
            return self._result(
                f, Outcome.TRANSIENT, None, "association lost before this file was sent"
            )
        status = rsp.get("Status") if rsp is not None else None
        if status is None:
            waited = time.monotonic() - started
            if waited < 0.9 * self.config.timeout:
                # pynetdicom answers early only when the association ended (A-ABORT or the
                # connection closed). Orthanc does this to a calling AE that is not in its
                # DicomModalities.
                detail = "association aborted by the peer instead of a C-STORE response"
            else:
                detail = f"no C-STORE response within {self.config.timeout:g} s (DIMSE timeout)"
            return self._result(f, Outcome.TRANSIENT, None, detail)
        outcome, detail = storage_status(int(status))
        return self._result(f, outcome, int(status), detail)
