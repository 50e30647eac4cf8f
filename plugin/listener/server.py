"""The DICOM front door: a pynetdicom AE with Storage and Verification SCPs.

:class:`Listener` wires the settings into one AE once (AE titles, association and PDU limits,
TLS) and runs it in pynetdicom's background server thread; ``brgan serve`` and the tests use
the same class. Study assembly happens elsewhere (:mod:`plugin.coordinator.loop`).
"""

from __future__ import annotations

import ssl
import tempfile
import time
from typing import Any

from pynetdicom import AE, _config
from pynetdicom.transport import ThreadedAssociationServer

from plugin.config import Settings
from plugin.errors import PluginError
from plugin.index import Index
from plugin.listener import incoming
from plugin.listener.contexts import (
    STORAGE_TRANSFER_SYNTAXES,
    VERIFICATION_SOP_CLASS,
    VERIFICATION_TRANSFER_SYNTAXES,
    storage_sop_classes,
)
from plugin.listener.handlers import AuditTrail, build_handlers
from plugin.listener.receive import StoreLimits
from plugin.logging import get_logger
from plugin.spool import Spool

log = get_logger(__name__)


class ListenerError(PluginError):
    """The listener cannot start (port in use, bad TLS files, …); the message says which."""


def build_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """Server TLS context from the settings, or None when TLS is off.

    ``tls_cert`` + ``tls_key`` turn TLS on (TLS 1.2 or newer); ``tls_ca`` additionally requires
    and verifies a client certificate signed by that CA.
    """
    if settings.tls_cert is None and settings.tls_key is None:
        if settings.tls_ca is not None:
            raise ListenerError("tls_ca is set but tls_cert/tls_key are not; set all three")
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise ListenerError("TLS needs both tls_cert and tls_key (PEM files)")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    password = settings.tls_key_password.get_secret_value() if settings.tls_key_password else None
    try:
        ctx.load_cert_chain(settings.tls_cert, settings.tls_key, password=password)
        if settings.tls_ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=settings.tls_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ListenerError(
            f"cannot load TLS files (tls_cert={settings.tls_cert}, tls_key={settings.tls_key}, "
            f"tls_ca={settings.tls_ca}): {exc}"
        ) from exc
    return ctx


def build_ae(settings: Settings) -> AE:
    """The AE with every storage SOP class and Verification, limits and AE-title policy set."""
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_associations = settings.max_associations
    ae.maximum_pdu_size = settings.max_pdu_size
    ae.require_calling_aet = list(settings.allowed_calling_aets)
    ae.require_called_aet = settings.require_called_aet
    for uid in storage_sop_classes():
        ae.add_supported_context(uid, list(STORAGE_TRANSFER_SYNTAXES))
    ae.add_supported_context(VERIFICATION_SOP_CLASS, list(VERIFICATION_TRANSFER_SYNTAXES))
    return ae


def route_temp_files(spool: Spool) -> None:
    """Make pynetdicom's chunked-receive temp files land in the spool's ``.incoming`` folder.

    Python's temp folder is process-wide; ``brgan serve`` (which owns its process) calls this so
    the move into the spool is a rename on one filesystem and big data sets never fill a
    memory-backed ``/tmp``. Without it, :meth:`Spool.move_in` copies across filesystems.
    """
    spool.ensure()
    tempfile.tempdir = str(spool.incoming_dir)


class Listener:
    """Storage + Verification SCP on ``settings.host:settings.port`` (port 0 = any free port)."""

    def __init__(self, settings: Settings, spool: Spool, index: Index) -> None:
        self.settings = settings
        self.spool = spool
        self.index = index
        self._server: ThreadedAssociationServer | None = None
        self._ssl = build_ssl_context(settings)

    @property
    def tls(self) -> bool:
        return self._ssl is not None

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise ListenerError("the listener is not running")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> tuple[str, int]:
        """Start serving in background threads; returns the bound (host, port)."""
        if self._server is not None:
            return self.address
        self.spool.ensure()
        # Process-wide in pynetdicom: every data set is streamed to a temp file (flat memory).
        _config.STORE_RECV_CHUNKED_DATASET = self.settings.chunked_receive
        if self.settings.chunked_receive:
            incoming.install()  # a full disk answers 0xA700 instead of killing the association
        if not self.settings.allowed_calling_aets:
            log.warning(
                "calling_ae_whitelist_empty",
                detail="any calling AE may store; set allowed_calling_aets to restrict",
            )
        limits = StoreLimits(max_dataset_bytes=self.settings.max_dataset_bytes)
        audit = AuditTrail(self.index, tls=self.tls)
        handlers: Any = build_handlers(self.spool, self.index, limits, audit)
        ae = build_ae(self.settings)
        try:
            self._server = ae.start_server(
                (self.settings.host, self.settings.port),
                block=False,
                evt_handlers=handlers,
                ssl_context=self._ssl,
            )
        except OSError as exc:
            raise ListenerError(
                f"cannot listen on {self.settings.host}:{self.settings.port}: {exc.strerror}; "
                "is another service using the port? (setting: port)"
            ) from exc
        host, port = self.address
        log.info(
            "listener_started",
            ae_title=self.settings.ae_title,
            host=host,
            port=port,
            tls=self.tls,
            client_certificates=self.settings.tls_ca is not None,
            chunked_receive=self.settings.chunked_receive,
        )
        return host, port

    def stop(self, grace: float = 0.0) -> None:
        """Stop accepting; give running associations ``grace`` seconds, then abort them."""
        if self._server is None:
            return
        ae = self._server.ae
        self._server.shutdown()  # closes the listening socket
        self._server = None
        deadline = time.monotonic() + grace
        # Only established associations are worth waiting for (a bare TCP probe is not).
        while any(a.is_established for a in ae.active_associations):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        leftovers = list(ae.active_associations)
        for assoc in leftovers:
            assoc.abort()
        log.info("listener_stopped", aborted_associations=len(leftovers))

    def __enter__(self) -> Listener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
