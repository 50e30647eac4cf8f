"""A PHI scanner: the patient identifiers of every study sent, searched for in any text.

DESIGN.md ("Configuration, logging, errors"): no log line carries PatientName, PatientID,
birth date or accession number. The values are read back from the DICOM files the test sent
(Patient Module, PS3.3 C.7.1.1; General Study Module, C.7.2.1), each in the spellings a program
would print: a Person Name (PS3.5 6.2) with its ``^`` separators or with spaces / ``, ``, a DA
value (PS3.5 6.2) as ``YYYYMMDD`` or ISO ``YYYY-MM-DD``, and the SHA-256 of the PatientID (the
index keeps it; it is brute-forceable, so it must not be printed either).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pydicom


@dataclass(frozen=True)
class Leak:
    """One occurrence of a patient identifier: where, which attribute, and the line."""

    source: str
    attribute: str
    value: str
    line: str


def _spellings(keyword: str, value: str) -> set[str]:
    out = {value}
    if keyword == "PatientName":
        parts = [p for p in value.split("^") if p]
        out |= {" ".join(parts), ", ".join(parts), " ".join(reversed(parts))}
    elif keyword == "PatientBirthDate" and len(value) == 8 and value.isdigit():
        out.add(f"{value[:4]}-{value[4:6]}-{value[6:]}")
    elif keyword == "PatientID":
        out.add(hashlib.sha256(value.encode("utf-8")).hexdigest())
    return {s for s in out if len(s) >= 4}  # shorter strings match by chance


def identifiers(files: Iterable[Path]) -> dict[str, str]:
    """``{spelling: attribute}`` of every patient identifier in ``files``."""
    found: dict[str, str] = {}
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber"):
            value = str(ds.get(keyword, "") or "").strip()
            if value:
                for spelling in _spellings(keyword, value):
                    found[spelling] = keyword
    return found


def scan(texts: Mapping[str, str], needles: Mapping[str, str]) -> list[Leak]:
    """Every line of ``texts`` (``{source: text}``) containing a needle, case-insensitively."""
    lowered = {n.lower(): (n, attr) for n, attr in needles.items()}
    leaks = []
    for source, text in texts.items():
        for line in text.splitlines():
            low = line.lower()
            for needle, (value, attribute) in lowered.items():
                if needle in low:
                    leaks.append(Leak(source, attribute, value, line[:300]))
    return leaks
