"""The PHI scanner finds what it looks for (so that its silence in the chain tests means
something): every identifier of a synthetic study, in each spelling, and nothing else."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom

from tests.helpers import write_synth_studies
from tests.security.phi import identifiers, scan


def test_every_identifier_and_spelling_is_found(tmp_path: Path) -> None:
    rows = write_synth_studies(tmp_path / "synth", patients=1, seed=61)
    ds = pydicom.dcmread(rows[0]["path"], stop_before_pixels=True)
    needles = identifiers(Path(r["path"]) for r in rows)
    name, pid, born, accession = (
        str(ds.PatientName),
        ds.PatientID,
        ds.PatientBirthDate,
        ds.AccessionNumber,
    )
    family, given = name.split("^")[:2]
    lines = {
        "name": f"x patient={name}",
        "name spaced": f"{family} {given} arrived",
        "name comma": f"who={family.lower()}, {given}",
        "id": f'{{"id": "{pid}"}}',
        "id hash": hashlib.sha256(pid.encode()).hexdigest(),
        "birth": f"born {born}",
        "birth iso": f"born {born[:4]}-{born[4:6]}-{born[6:]}",
        "accession": f"acc={accession}",
        "clean": f"study_uid={ds.StudyInstanceUID} size=1234 laterality=L",
    }
    found = {leak.source for leak in scan(lines, needles)}
    assert found == set(lines) - {"clean"}
