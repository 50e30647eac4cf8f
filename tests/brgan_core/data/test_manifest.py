from __future__ import annotations

from pathlib import Path

import pytest

from brgan_core.data.manifest import read_manifest, read_manifest_records, write_manifest
from brgan_core.data.records import MANIFEST_COLUMNS, ImageRecord
from brgan_core.errors import DatasetError

HEADER = ",".join(MANIFEST_COLUMNS)


def _row(path: str, patient: str, side: str, view: str, label: str, boxes: str = "[]") -> str:
    uids = f"1.2.3,1.2.3.{side}{view}"
    return f'{path},{patient},{uids},{side},{view},{label},4a,c,spiculated_mass;vessel,"{boxes}",'


def _write(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_reads_rows_relative_to_the_manifest(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _row("img/a.dcm", "p1", "L", "CC", "1", "[[1, 2, 11, 22.5]]"),
        _row("img/b.dcm", "p1", "R", "CC", "0"),
    )
    records = read_manifest_records(path)
    assert records[0].path == tmp_path / "img" / "a.dcm"
    assert records[0].boxes == ((1.0, 2.0, 11.0, 22.5),)
    assert records[0].findings == ("spiculated_mass", "vessel")
    assert records[0].birads == "4a" and records[0].density == "c"
    assert records[0].mask_path is None
    report = read_manifest(tmp_path)  # a folder means DIR/manifest.csv
    assert report.images == 2 and len(report.pairs) == 2
    malignant = next(p for p in report.pairs if p.label == 1)
    assert malignant.target.laterality == "L" and malignant.boxes == ((1.0, 2.0, 11.0, 22.5),)


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    records = [
        ImageRecord(
            path=tmp_path / "s" / f"{side}.dcm",
            patient_id="p9",
            laterality=side,  # type: ignore[arg-type]
            view="MLO",
            label=int(side == "R"),
            study_uid="1.2",
            sop_instance_uid=f"1.2.{i}",
            birads="5" if side == "R" else "1",
            density="b",
            findings=("pleomorphic_calcifications",) if side == "R" else (),
            boxes=((3.0, 4.0, 9.0, 10.0),) if side == "R" else (),
            mask_path=tmp_path / "s" / f"{side}_mask.png" if side == "R" else None,
        )
        for i, side in enumerate("LR")
    ]
    path = write_manifest(records, tmp_path / "manifest.csv")
    assert "s/L.dcm" in path.read_text()
    assert read_manifest_records(path) == records


@pytest.mark.parametrize(
    ("row", "line", "column"),
    [
        (_row("a.dcm", "p", "X", "CC", "1"), 3, "laterality"),
        (_row("a.dcm", "p", "L", "CC", "2"), 3, "label"),
        (_row("a.dcm", "", "L", "CC", "1"), 3, "patient_id"),
        (_row("a.dcm", "p", "L", "CC", "1", "[[1, 2, 3]]"), 3, "boxes"),
        (_row("a.dcm", "p", "L", "CC", "1", "[[5, 2, 3, 4]]"), 3, "boxes"),
        (_row("a.dcm", "p", "L", "CC", "1", "not json"), 3, "boxes"),
    ],
)
def test_bad_row_names_file_line_and_column(
    tmp_path: Path, row: str, line: int, column: str
) -> None:
    path = _write(tmp_path, _row("ok.dcm", "p", "R", "CC", "0"), row)
    with pytest.raises(DatasetError) as info:
        read_manifest(path)
    message = str(info.value)
    assert str(path) in message and f"line {line}" in message and repr(column) in message


def test_missing_column_and_missing_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.dcm,p", header="path,patient_id")
    with pytest.raises(DatasetError, match=r"line 1: missing column\(s\) laterality, view, label"):
        read_manifest(path)
    with pytest.raises(DatasetError, match="manifest not found"):
        read_manifest(tmp_path / "nowhere.csv")
