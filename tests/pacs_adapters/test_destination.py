"""DestinationConfig validation, the status table, make_sink."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pacs_adapters.destination import DestinationConfig
from pacs_adapters.dimse import DimseSink
from pacs_adapters.sink import Outcome, Sink, make_sink, storage_status
from pacs_adapters.stow import StowSink

DIMSE = {"name": "pacs-1", "kind": "dimse", "ae_title": "PACS", "host": "10.0.0.5", "port": 104}
STOW = {"name": "web_1", "kind": "stow", "url": "https://pacs.example/dicom-web/"}


def error_of(**values: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        DestinationConfig(**values)
    return str(caught.value)


def test_valid_destinations_and_defaults() -> None:
    dimse = DestinationConfig(**DIMSE)
    assert (dimse.calling_ae, dimse.tls, dimse.timeout) == ("BRGAN", False, 30.0)
    assert dimse.describe() == "C-STORE BRGAN->PACS@10.0.0.5:104"
    stow = DestinationConfig(**STOW, auth_header="Basic dXNlcjpwYXNz")
    assert stow.url == "https://pacs.example/dicom-web"  # trailing slash dropped
    assert stow.verify_tls is True
    assert stow.auth_header is not None
    assert stow.auth_header.get_secret_value() == "Basic dXNlcjpwYXNz"
    assert "dXNlcjpwYXNz" not in repr(stow) + str(stow) + stow.describe()
    assert "dXNlcjpwYXNz" not in stow.model_dump_json()
    with pytest.raises(ValidationError):
        dimse.port = 11112  # type: ignore[misc]  # frozen
    tls = DestinationConfig(
        **DIMSE, tls=True, tls_ca=Path("ca.pem"), tls_cert=Path("c.pem"), tls_key=Path("k.pem")
    )
    assert tls.describe().endswith("(TLS)")
    assert DestinationConfig(**{**DIMSE, "host": "::1"}).host == "::1"


def test_dimse_needs_host_port_and_ae_title() -> None:
    message = error_of(name="x", kind="dimse")
    for field in ("ae_title: required", "host: required", "port: required"):
        assert field in message
    assert "called AE title" in message and "TCP port" in message


def test_stow_needs_url() -> None:
    message = error_of(name="x", kind="stow")
    assert "url: required for a stow destination" in message and "DICOMweb root" in message


def test_errors_do_not_echo_the_auth_header() -> None:
    message = error_of(name="x", kind="stow", auth_header="Bearer zz-secret-zz")
    assert "url: required" in message and "zz-secret-zz" not in message


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({**DIMSE, "name": "has space"}, "name"),
        ({**DIMSE, "name": ""}, "name"),
        ({**DIMSE, "kind": "ftp"}, "kind"),
        ({**DIMSE, "ae_title": "A" * 17}, "at most 16 characters"),
        ({**DIMSE, "ae_title": "   "}, "empty"),
        ({**DIMSE, "calling_ae": "BAD\\AE"}, "without a backslash"),
        ({**DIMSE, "port": 0}, "port"),
        ({**DIMSE, "port": 70000}, "port"),
        ({**DIMSE, "host": "pacs:104"}, "no scheme, port or path"),
        ({**DIMSE, "tls_ca": "ca.pem"}, "tls_ca: set tls = true"),
        ({**DIMSE, "tls": True, "tls_cert": "c.pem"}, "give both"),
        ({**DIMSE, "url": "http://x/dicom-web"}, "url: not used by a dimse destination"),
        ({**DIMSE, "timeout": 0}, "timeout"),
        ({**DIMSE, "colour": "blue"}, "colour"),
        ({**STOW, "url": "ftp://pacs/dicom-web"}, "http:// or https://"),
        ({**STOW, "url": "http://u:p@pacs/dicom-web"}, "auth_header"),
        ({**STOW, "url": "http://pacs/dicom-web?x=1"}, "query"),
        ({**STOW, "host": "pacs"}, "host: not used by a stow destination"),
        ({**STOW, "tls": True}, "verify_tls"),
    ],
)
def test_invalid_values_say_what_is_expected(values: dict[str, Any], words: str) -> None:
    assert words in error_of(**values)


def test_make_sink() -> None:
    dimse = make_sink(DestinationConfig(**DIMSE))
    stow = make_sink(DestinationConfig(**STOW))
    assert isinstance(dimse, DimseSink) and isinstance(stow, StowSink)
    assert isinstance(dimse, Sink) and isinstance(stow, Sink)
    assert (dimse.name, stow.name) == ("pacs-1", "web_1")
    stow.close()
    with pytest.raises(ValueError, match="not a stow destination"):
        StowSink(DestinationConfig(**DIMSE))


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (0x0000, Outcome.DELIVERED),
        (0xB000, Outcome.DELIVERED),
        (0xB006, Outcome.DELIVERED),
        (0xB007, Outcome.DELIVERED),
        (0x0001, Outcome.DELIVERED),
        (0xA700, Outcome.TRANSIENT),
        (0xA7FF, Outcome.TRANSIENT),
        (0x0213, Outcome.TRANSIENT),
        (0xFE00, Outcome.TRANSIENT),
        (0xA900, Outcome.PERMANENT),
        (0xA9FF, Outcome.PERMANENT),
        (0xC000, Outcome.PERMANENT),
        (0xCFFF, Outcome.PERMANENT),
        (0x0110, Outcome.PERMANENT),
        (0x0122, Outcome.PERMANENT),
        (0x0124, Outcome.PERMANENT),
        (0xA800, Outcome.PERMANENT),
        (0xFF00, Outcome.PERMANENT),
    ],
)
def test_storage_status_table(status: int, outcome: Outcome) -> None:
    got, detail = storage_status(status)
    assert got is outcome
    assert detail.endswith(f"(0x{status:04X})")
