"""Who may send: the calling-AE whitelist and mutual TLS, over real associations.

DICOM association establishment (PS3.8 7.1, A-ASSOCIATE-RJ with "calling AE title not
recognized") and the TLS secure transport connection profile (PS3.15 B.1: TLS 1.2 or newer,
certificates exchanged both ways). Certificates come from a throwaway CA the test makes; the
listener is the real one on a free loopback port (``tests/plugin/listener/conftest.py``).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from plugin.listener.server import build_ssl_context
from tests.plugin.listener.conftest import CALLING_AE, Service, echo, scu, store, wait_until
from tests.plugin.listener.dicom_data import MG_FOR_PRESENTATION, four_view_study
from tests.security.pki import Issued, issue, make_ca


@pytest.mark.parametrize("calling", ["INTRUDER", "ORTHANC", CALLING_AE.lower(), CALLING_AE + "X"])
def test_a_calling_ae_outside_the_whitelist_stores_nothing(service: Service, calling: str) -> None:
    ae = scu(calling)
    ae.add_requested_context(MG_FOR_PRESENTATION)
    assoc = ae.associate("127.0.0.1", service.port, ae_title="BRGAN")
    assert assoc.is_rejected
    wait_until(lambda: service.index.associations())
    [audit] = service.index.associations()
    assert audit.outcome == "rejected" and audit.last_failure == "calling AE title not allowed"
    assert service.spool.instance_files() == [] and service.index.studies() == []
    # The whitelisted sender still gets in, padded to 16 characters as the standard allows.
    assert echo(service.port, calling_ae=CALLING_AE.ljust(16)) == 0


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Issued]:
    folder = tmp_path / "pki"
    ca, rogue_ca = make_ca(folder, "pacs-ca"), make_ca(folder, "rogue-ca")
    return {
        "ca": ca,
        "listener": issue(ca, folder, "listener"),
        "pacs": issue(ca, folder, "pacs"),
        "rogue": issue(rogue_ca, folder, "rogue"),
    }


def _client(pki: dict[str, Issued], cert: str | None, **versions: ssl.TLSVersion) -> tuple:
    """pynetdicom's ``tls_args``: a client context trusting the CA, with ``cert`` if given."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki["ca"].cert))
    if cert is not None:
        ctx.load_cert_chain(pki[cert].cert, pki[cert].key)
    for name, version in versions.items():
        setattr(ctx, name, version)
    return ctx, "localhost"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_mutual_tls_admits_only_clients_with_a_certificate_of_our_ca(
    service_factory: Callable[..., Service], pki: dict[str, Issued]
) -> None:
    listener = pki["listener"]
    svc = service_factory(tls_cert=listener.cert, tls_key=listener.key, tls_ca=pki["ca"].cert)
    study = four_view_study()
    assert [s.Status for s in store(svc.port, study, tls=_client(pki, "pacs"))] == [0] * 4
    assert svc.index.associations()[0].tls
    server = build_ssl_context(svc.settings)
    assert server is not None and server.verify_mode == ssl.CERT_REQUIRED
    assert server.minimum_version == ssl.TLSVersion.TLSv1_2
    refused = {
        "no client certificate": _client(pki, None),
        "certificate of another CA": _client(pki, "rogue"),
        "TLS 1.1": _client(pki, "pacs", maximum_version=ssl.TLSVersion.TLSv1_1),
        "plain TCP": None,
    }
    for why, tls in refused.items():
        assert echo(svc.port, tls=tls) is None, f"accepted with {why}"
    # A good certificate does not replace the whitelist: both must pass.
    assert echo(svc.port, calling_ae="INTRUDER", tls=_client(pki, "pacs")) is None
    assert echo(svc.port, tls=_client(pki, "pacs")) == 0
    assert len(svc.spool.instance_files()) == 4
