"""STOW-RS (PS3.18 §10.5, Store Transaction) with dicomweb-client.

One :meth:`StowSink.send` call is one ``POST {url}/studies`` of a ``multipart/related;
type="application/dicom"`` body holding every readable file
(``DICOMwebClient.store_instances``). The answer is read per instance from the Store Instances
Response Module (PS3.18 §10.5.3, Table 10.5.3-2), in DICOM JSON (PS3.18 Annex F) or the
Native DICOM Model XML (PS3.19 Annex A):

* Failed SOP Sequence (0008,1198): items with Referenced SOP Instance UID (0008,1155) and
  Failure Reason (0008,1197), a Storage status code (PS3.4 Annex B.2.3);
* Referenced SOP Sequence (0008,1199): the instances stored, optionally with a Warning Reason
  (0008,1196).

dicomweb-client calls ``raise_for_status()`` before it looks at the Failed SOP Sequence, so a
400 or 409 partial failure raises ``requests.HTTPError``; and it does not hand back the HTTP
status of a 200/202. So the sink ignores the library's parsed answer and reads every response
itself (:func:`map_response`), from the error's ``response`` or from a session response hook.

Per instance (HTTP status codes from PS3.18 Table 10.5.3-1):

=============================================  ==============================================
Response                                       Outcome of each instance
=============================================  ==============================================
in Failed SOP Sequence, reason 0xA7xx/0x0213   TRANSIENT (out of resources)
in Failed SOP Sequence, other reason           PERMANENT
in Referenced SOP Sequence (not failed)        DELIVERED (a Warning Reason goes in detail)
listed in neither (200/202/400/409 with body)  TRANSIENT (not acknowledged)
200/202 without a Store Instances Response     TRANSIENT (cannot tell it was stored)
400/409 without a Store Instances Response     PERMANENT
408, 429, 5xx                                  TRANSIENT
401, 403, 407 (auth), 404, 405 (wrong url)     TRANSIENT (a destination setting; detail says)
other 4xx (413, 415, ...)                      PERMANENT
connection error, timeout, TLS error           TRANSIENT
file that cannot be read or encoded            PERMANENT (not sent)
=============================================  ==============================================

The library's own retries are **off** (``set_http_retry_params(retry=False)``): its default,
5 attempts with exponential waits of 2, 4, 8 and 16 s, applies to *every* exception (the
``retrying`` decorator's default ``retry_on_exception`` retries all of them, connection
errors included) as well as 408/429/503/504, and a chunked upload (above ``chunk_size``) is a
generator that a second attempt would send empty. Retrying belongs to the caller's outbox, so
one ``send`` makes one POST, bounded by ``timeout`` for the connection and for each read.
"""

from __future__ import annotations

import io
import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
import requests
import structlog
from dicomweb_client import DICOMwebClient

from pacs_adapters.destination import DestinationConfig
from pacs_adapters.sink import FileResult, LoadedFile, Outcome, load_file

log = structlog.stdlib.get_logger(__name__)

FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"

TRANSIENT_HTTP = {408, 429}
AUTH_HTTP = {401: "not authenticated", 403: "forbidden", 407: "proxy authentication required"}
WRONG_URL_HTTP = {404: "not found", 405: "method not allowed"}


@dataclass
class StoreResponse:
    """The Store Instances Response Module, reduced to what the outcome needs."""

    failed: dict[str, int | None] = field(default_factory=dict)  # UID → Failure Reason
    referenced: dict[str, int | None] = field(default_factory=dict)  # UID → Warning Reason


def _json_value(item: Any, tag: str) -> Any:
    element = item.get(tag) if isinstance(item, dict) else None
    values = element.get("Value") if isinstance(element, dict) else None
    return values if isinstance(values, list) else []


def _first_int(values: list[Any]) -> int | None:
    try:
        return int(values[0]) if values else None
    except (TypeError, ValueError):
        return None


def _parse_json(body: bytes) -> StoreResponse | None:
    data = json.loads(body)
    if isinstance(data, list):  # some servers wrap the data set in an array
        data = data[0] if len(data) == 1 else None
    if not isinstance(data, dict):
        return None
    if FAILED_SOP_SEQUENCE not in data and REFERENCED_SOP_SEQUENCE not in data:
        return None
    answer = StoreResponse()
    for seq, reason_tag, into in (
        (FAILED_SOP_SEQUENCE, FAILURE_REASON, answer.failed),
        (REFERENCED_SOP_SEQUENCE, WARNING_REASON, answer.referenced),
    ):
        for item in _json_value(data, seq):
            uids = _json_value(item, REFERENCED_SOP_INSTANCE_UID)
            if uids and isinstance(uids[0], str):
                into[uids[0]] = _first_int(_json_value(item, reason_tag))
    return answer


def _local(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]  # the Native DICOM Model has a namespace


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child) == name]


def _parse_xml(body: bytes) -> StoreResponse | None:
    root = ET.fromstring(body)
    found = False
    answer = StoreResponse()
    for seq, reason_tag, into in (
        (FAILED_SOP_SEQUENCE, FAILURE_REASON, answer.failed),
        (REFERENCED_SOP_SEQUENCE, WARNING_REASON, answer.referenced),
    ):
        for attribute in _children(root, "DicomAttribute"):
            if attribute.get("tag", "").upper() != seq:
                continue
            found = True
            for item in _children(attribute, "Item"):
                values: dict[str, str | None] = {}
                for child in _children(item, "DicomAttribute"):
                    value = next(iter(_children(child, "Value")), None)
                    values[child.get("tag", "").upper()] = (
                        value.text.strip() if value is not None and value.text else None
                    )
                uid = values.get(REFERENCED_SOP_INSTANCE_UID)
                if uid:
                    reason = values.get(reason_tag)
                    into[uid] = _first_int([reason]) if reason else None
    return answer if found else None


def parse_store_response(content_type: str, body: bytes) -> StoreResponse | None:
    """The Store Instances Response in ``body`` (DICOM JSON or XML), or None when there is none
    or it does not parse."""
    if not body.strip():
        return None
    media = content_type.split(";")[0].strip().lower()
    try:
        if media.endswith("xml"):
            return _parse_xml(body)
        return _parse_json(body)
    except (ValueError, ET.ParseError, IndexError, TypeError):
        return None


def _is_transient_reason(reason: int | None) -> bool:
    return reason is not None and (0xA700 <= reason <= 0xA7FF or reason == 0x0213)


def map_response(
    status: int, content_type: str, body: bytes, uids: Sequence[str], *, redirected: bool = False
) -> list[tuple[Outcome, str]]:
    """The outcome and detail of each instance in ``uids`` (in order) for one STOW-RS answer.

    See the module docstring for the table (PS3.18 §10.5.3).
    """
    http = f"HTTP {status}" + (" after a redirect" if redirected else "")

    def every(outcome: Outcome, detail: str) -> list[tuple[Outcome, str]]:
        return [(outcome, detail)] * len(uids)

    if status in TRANSIENT_HTTP or 500 <= status <= 599:
        return every(Outcome.TRANSIENT, f"{http}: server busy or unavailable")
    if status in AUTH_HTTP:
        return every(Outcome.TRANSIENT, f"{http}: {AUTH_HTTP[status]} (check auth_header)")
    if status in WRONG_URL_HTTP:
        return every(Outcome.TRANSIENT, f"{http}: {WRONG_URL_HTTP[status]} (check url)")
    if status in (200, 202, 400, 409):
        answer = parse_store_response(content_type, body)
        if answer is None:
            if status in (400, 409):
                return every(Outcome.PERMANENT, f"{http}: refused, no Store Instances Response")
            return every(
                Outcome.TRANSIENT,
                f"{http} without a Store Instances Response (not a STOW-RS answer)",
            )
        out = []
        for uid in uids:
            if uid in answer.failed:
                reason = answer.failed[uid]
                shown = "unknown" if reason is None else f"0x{reason:04X}"
                if _is_transient_reason(reason):
                    out.append((Outcome.TRANSIENT, f"{http}: out of resources ({shown})"))
                else:
                    out.append((Outcome.PERMANENT, f"{http}: failed, reason {shown}"))
            elif uid in answer.referenced:
                warning = answer.referenced[uid]
                out.append(
                    (
                        Outcome.DELIVERED,
                        f"{http}: stored"
                        + ("" if warning is None else f" with warning 0x{warning:04X}"),
                    )
                )
            else:
                out.append((Outcome.TRANSIENT, f"{http}: instance not acknowledged"))
        return out
    if 400 <= status <= 499:
        return every(Outcome.PERMANENT, f"{http}: refused")
    return every(Outcome.TRANSIENT, f"{http}: unexpected status")


class StowSink:
    """STOW-RS client for one ``stow`` destination (one ``requests`` session, kept open)."""

    def __init__(self, config: DestinationConfig) -> None:
        if config.kind != "stow":
            raise ValueError(f"destination {config.name!r} is not a stow destination")
        assert config.url is not None
        self.config = config
        self._lock = threading.Lock()
        self._responses: list[requests.Response] = []
        self._session = requests.Session()
        self._session.verify = config.verify_tls
        self._session.hooks["response"].append(self._record)
        headers = {"Accept": "application/dicom+json"}
        if config.auth_header is not None:
            # A session header: dicomweb-client's debug log prints only per-request headers.
            headers["Authorization"] = config.auth_header.get_secret_value()
        self._client = DICOMwebClient(
            config.url, session=self._session, headers=headers, timeout=config.timeout
        )
        self._client.set_http_retry_params(retry=False)

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        return f"StowSink({self.config.name!r}, {self.config.describe()})"

    def close(self) -> None:
        self._session.close()

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._responses.append(response)

    def send(self, files: Sequence[Path]) -> list[FileResult]:
        """POST every readable file in one STOW-RS request; one result per file, in order."""
        loaded = []
        for path in files:
            f = load_file(Path(path))
            if f.problem is None and not _encodes(f):
                problem = "cannot encode data set"
                f = LoadedFile(f.path, None, f.sop_instance_uid, f.sop_class_uid, None, problem)
            loaded.append(f)
        results: list[FileResult | None] = [f.unusable() if f.problem else None for f in loaded]
        todo = [i for i, f in enumerate(loaded) if f.problem is None]
        if todo:
            with self._lock:
                outcomes, status = self._post([loaded[i] for i in todo])
            for i, (outcome, detail) in zip(todo, outcomes, strict=True):
                f = loaded[i]
                results[i] = FileResult(f.path, f.sop_instance_uid, outcome, status, detail)
        final = [r for r in results if r is not None]
        assert len(final) == len(loaded)
        log.info(
            "stow_sent",
            destination=self.name,
            files=len(final),
            **{o.value: sum(r.outcome is o for r in final) for o in Outcome},
        )
        return final

    def _post(self, files: list[LoadedFile]) -> tuple[list[tuple[Outcome, str]], int | None]:
        """One POST; each file's outcome and the HTTP status (None without a response)."""
        self._responses.clear()
        failure: str | None = None
        response: requests.Response | None = None
        try:
            self._client.store_instances([f.dataset for f in files])
        except requests.HTTPError as exc:
            response = exc.response
        except requests.Timeout:
            failure = f"no answer within {self.config.timeout:g} s (timeout)"
        except requests.exceptions.SSLError:
            failure = "TLS error (certificate or handshake; check verify_tls)"
        except requests.ConnectionError:
            failure = "cannot connect (refused, unreachable or connection reset)"
        except requests.RequestException as exc:
            failure = f"request failed: {type(exc).__name__}"
        except Exception as exc:  # e.g. the library cannot parse a 200 body: read it ourselves
            if not self._responses:
                log.exception("stow_send_failed", destination=self.name)
                failure = f"send failed: {type(exc).__name__}"
        if failure is not None:
            log.warning("stow_not_sent", destination=self.name, detail=failure)
            return [(Outcome.TRANSIENT, failure)] * len(files), None
        if response is None:
            response = self._responses[-1] if self._responses else None
        if response is None:  # pragma: no cover - the hook sees every response
            return [(Outcome.TRANSIENT, "no HTTP response recorded")] * len(files), None
        uids = [f.sop_instance_uid or "" for f in files]
        outcomes = map_response(
            response.status_code,
            response.headers.get("Content-Type", ""),
            response.content or b"",
            uids,
            redirected=bool(response.history),
        )
        if response.status_code not in (200,):
            log.warning(
                "stow_answer",
                destination=self.name,
                http_status=response.status_code,
                **{o.value: sum(out is o for out, _ in outcomes) for o in Outcome},
            )
        return outcomes, response.status_code


def _encodes(f: LoadedFile) -> bool:
    """Whether pydicom can write the data set (dicomweb-client encodes it with ``dcmwrite``;
    a failure there would abort the whole POST)."""
    try:
        pydicom.dcmwrite(io.BytesIO(), f.dataset)
    except Exception:
        return False
    return True
