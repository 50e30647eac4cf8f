"""Where result objects go: one :class:`DestinationConfig` per PACS destination.

Two kinds:

* ``dimse`` — a Storage SCP reached by C-STORE (PS3.4 Annex B; PS3.7 §9.1.1): called AE title,
  host, port, our calling AE title, optional TLS (PS3.15 Annex B.1, the TLS secure transport
  connection profile);
* ``stow`` — a DICOMweb origin server reached by STOW-RS (PS3.18 §10.5): the DICOMweb root URL
  (the ``/studies`` resource is appended), an optional ``Authorization`` header value, TLS
  verification on by default.

The model is frozen and rejects unknown fields, so a typo in a destination table is an error
rather than a silently ignored setting. ``auth_header`` is a :class:`~pydantic.SecretStr`: its
value is never in ``repr``, ``str`` or a log line.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

# PS3.5 §6.2: an AE title is at most 16 characters of the Default Character Repertoire, no
# backslash, no control characters; leading and trailing spaces are not significant.
AE_TITLE_MAX = 16
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

DIMSE_FIELDS = ("ae_title", "host", "port", "tls_ca", "tls_cert", "tls_key")
STOW_FIELDS = ("url", "auth_header")


def _check_ae_title(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("expected an AE title of 1 to 16 characters, got an empty one")
    if len(stripped) > AE_TITLE_MAX:
        raise ValueError(f"expected an AE title of at most 16 characters, got {len(stripped)}")
    if "\\" in stripped or any(not (0x20 <= ord(c) < 0x7F) for c in stripped):
        raise ValueError("expected an AE title of printable ASCII characters without a backslash")
    return stripped


class DestinationConfig(BaseModel):
    """One PACS destination (``kind`` ``"dimse"`` or ``"stow"``)."""

    # hide_input_in_errors: a model-level error would otherwise print the whole input,
    # auth_header included.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    name: str = Field(description="Unique label of the destination (letters, digits, '_' and '-').")
    kind: Literal["dimse", "stow"] = Field(
        description="'dimse' (C-STORE SCU) or 'stow' (DICOMweb STOW-RS)."
    )
    # DIMSE
    ae_title: str | None = Field(default=None, description="Called AE title of the SCP.")
    host: str | None = Field(default=None, description="Host name or IP address of the SCP.")
    port: int | None = Field(default=None, ge=1, le=65535, description="TCP port of the SCP.")
    calling_ae: str = Field(default="BRGAN", description="Our (calling) AE title.")
    tls: bool = Field(default=False, description="Use TLS on the DICOM association.")
    tls_ca: Path | None = Field(
        default=None, description="CA bundle that signs the SCP's certificate (default: system)."
    )
    tls_cert: Path | None = Field(default=None, description="Our client certificate (PEM).")
    tls_key: Path | None = Field(default=None, description="The key of tls_cert (PEM).")
    # STOW-RS
    url: str | None = Field(
        default=None, description="DICOMweb root, e.g. http://pacs:8042/dicom-web."
    )
    auth_header: SecretStr | None = Field(
        default=None,
        description="The whole Authorization header value, e.g. 'Bearer <token>' (never logged).",
    )
    verify_tls: bool = Field(default=True, description="Verify the server's TLS certificate.")
    # Both
    timeout: float = Field(
        default=30.0, gt=0, le=3600, description="Seconds for each network step."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.fullmatch(value):
            raise ValueError(
                "expected a label of 1 to 64 letters, digits, '_' or '-' (it names the "
                "destination in the outbox and in logs)"
            )
        return value

    @field_validator("ae_title", "calling_ae")
    @classmethod
    def _ae_title(cls, value: str | None) -> str | None:
        return None if value is None else _check_ae_title(value)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        try:
            return str(ipaddress.ip_address(value.strip("[]")))
        except ValueError:
            pass
        if not value or any(c.isspace() or c in "/:@[]" for c in value):
            raise ValueError(
                f"expected a host name or IP address (no scheme, port or path), got {value!r}"
            )
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "expected the DICOMweb root as an http:// or https:// URL, "
                "e.g. http://pacs:8042/dicom-web"
            )
        if parts.query or parts.fragment:
            raise ValueError("expected the DICOMweb root without a query or fragment")
        if parts.username or parts.password:
            raise ValueError("put credentials in auth_header, not in the URL")
        return value

    @model_validator(mode="after")
    def _by_kind(self) -> DestinationConfig:
        problems: list[str] = []
        if self.kind == "dimse":
            expected = {
                "ae_title": "the called AE title of the SCP",
                "host": "the SCP's host name or IP address",
                "port": "the SCP's TCP port (1-65535)",
            }
            problems += [
                f"{field}: required for a dimse destination ({what})"
                for field, what in expected.items()
                if getattr(self, field) is None
            ]
            problems += [
                f"{field}: not used by a dimse destination (it is for kind 'stow')"
                for field in STOW_FIELDS
                if getattr(self, field) is not None
            ]
            if not self.tls:
                problems += [
                    f"{field}: set tls = true to use it"
                    for field in ("tls_ca", "tls_cert", "tls_key")
                    if getattr(self, field) is not None
                ]
            if (self.tls_cert is None) != (self.tls_key is None):
                problems.append("tls_cert, tls_key: give both (a client certificate and its key)")
        else:
            if self.url is None:
                problems.append(
                    "url: required for a stow destination (the DICOMweb root, "
                    "e.g. http://pacs:8042/dicom-web)"
                )
            problems += [
                f"{field}: not used by a stow destination (it is for kind 'dimse')"
                for field in DIMSE_FIELDS
                if getattr(self, field) is not None
            ]
            if self.tls:
                problems.append(
                    "tls: not used by a stow destination (use an https:// url and verify_tls)"
                )
        if problems:
            raise ValueError(f"destination {self.name!r}: " + "; ".join(problems))
        return self

    def describe(self) -> str:
        """Where it goes, for logs and status lines (no secret)."""
        if self.kind == "dimse":
            tls = " (TLS)" if self.tls else ""
            return f"C-STORE {self.calling_ae}->{self.ae_title}@{self.host}:{self.port}{tls}"
        return f"STOW-RS {self.url}/studies"
