"""Structured logging for the service: one line per event, optionally JSON, never PHI.

Call :func:`configure_logging` once at process start (``brgan serve`` does); libraries get a
logger with :func:`get_logger` and log *events* with keyword fields::

    log = get_logger(__name__)
    log.info("instance_stored", study_uid=..., sop_uid=..., size=1234)

Two processors guard the output:

- keys that name patient data (``patient_name``, ``patient_id``, ``birth_date``,
  ``accession_number``, …) are dropped, whatever the caller passed;
- with ``hash_uids`` on, every value whose key ends in ``_uid`` (except ``sop_class_uid`` and
  ``transfer_syntax_uid``) is replaced by a short, stable hash (:func:`hash_uid`), so log lines
  can still be correlated without the UID. Log UIDs under such keys, never inside messages.

pynetdicom's own ``logging`` records go through the same renderer, at WARNING and above only:
its DEBUG level dumps whole datasets (PHI) and its INFO level duplicates our audit log.

Library text is not ours to trust: pydicom's validation warnings quote attribute values
(``Invalid value for VR UI: '../../etc/x'``, or a PatientName). Python warnings are routed into
logging (``logging.captureWarnings``) and every record of a library logger (``py.warnings``,
``pydicom``, ``pynetdicom``, ``celery``, ``kombu``) has its quoted values and anything shaped like
a UID replaced by :func:`hash_uid` — always, whatever ``hash_uids`` says, since a quoted value
may be PHI.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

PHI_KEYS = frozenset(
    {
        "patient_name",
        "patient_id",
        "patient_birth_date",
        "birth_date",
        "accession_number",
        "patient_address",
        "referring_physician",
        "institution_name",
        "other_patient_ids",
    }
)


def hash_uid(uid: str) -> str:
    """A short, stable, non-reversible stand-in for a UID in logs (``h:`` + 12 hex)."""
    return "h:" + hashlib.sha256(uid.encode("utf-8")).hexdigest()[:12]


def _drop_phi(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
    for key in [k for k in event if k.lower() in PHI_KEYS]:
        event.pop(key)
    return event


#: ``*_uid`` keys that name a standard class, not an instance: never hashed.
_PUBLIC_UID_KEYS = frozenset({"sop_class_uid", "transfer_syntax_uid"})


def _hash_uids(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
    for key, value in list(event.items()):
        if key in _PUBLIC_UID_KEYS:
            continue
        if key.endswith("_uid") and isinstance(value, str) and value:
            event[key] = hash_uid(value)
    return event


#: Loggers whose message text may quote data set values (see the module docstring).
LIBRARY_LOGGERS = ("py.warnings", "pydicom", "pynetdicom", "celery", "kombu")
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
#: Five or more dotted numbers (so IPv4 addresses stay readable); a trailing dot may follow.
_UID_LIKE = re.compile(r"(?<![\w.])[0-9]+(?:\.[0-9]+){4,}(?!\d)")


def scrub_library_text(text: str) -> str:
    """Replace quoted values and UID-shaped numbers in a library's message by stable hashes."""
    text = _QUOTED.sub(lambda m: f"'{hash_uid(m.group(0)[1:-1])}'", text)
    return _UID_LIKE.sub(lambda m: hash_uid(m.group(0)), text)


def _scrub_library_records(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
    name = str(event.get("logger") or "")
    if name.startswith(LIBRARY_LOGGERS):
        for key in ("event", "exception"):  # the message and a formatted traceback
            if isinstance(event.get(key), str):
                event[key] = scrub_library_text(event[key])
    return event


def build_processors(*, json: bool, hash_uids: bool) -> list[Any]:
    """The processor chain shared by structlog and stdlib records."""
    chain: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_phi,
        structlog.processors.format_exc_info,  # tracebacks as text, so they can be scrubbed
        _scrub_library_records,
    ]
    if hash_uids:
        chain.append(_hash_uids)
    return chain


def configure_logging(
    level: str = "INFO", *, json: bool = False, hash_uids: bool = False, stream: Any = None
) -> None:
    """Route structlog and stdlib logging to ``stream`` (stderr) as key=value or JSON lines."""
    shared = build_processors(json=json, hash_uids=hash_uids)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=False, pad_event_to=0)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_brgan", False)]:
        root.removeHandler(old)
    handler._brgan = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # pynetdicom logs whole datasets (PHI) at DEBUG and UIDs at INFO: warnings only.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    # Python warnings (pydicom's value validation) go through the same filters, not to a raw
    # stderr line; pydicom also logs each of them itself, so one copy is enough.
    logging.captureWarnings(True)
    logging.getLogger("pydicom").setLevel(logging.ERROR)


def get_logger(name: str) -> Any:
    """A structlog logger bound to ``name``."""
    return structlog.stdlib.get_logger(name)
