from __future__ import annotations

import csv
from pathlib import Path

import pytest

from brgan_core.data.pairing import NO_CONTRALATERAL
from brgan_core.data.readers import read_dataset
from brgan_core.data.vindr import read_vindr
from brgan_core.errors import DatasetError

from .helpers import accounted, touch

BREAST_HEADER = [
    "study_id",
    "series_id",
    "image_id",
    "laterality",
    "view_position",
    "height",
    "width",
    "breast_birads",
    "breast_density",
    "split",
]
FINDING_HEADER = [
    "study_id",
    "series_id",
    "image_id",
    "laterality",
    "view_position",
    "height",
    "width",
    "breast_birads",
    "breast_density",
    "finding_categories",
    "finding_birads",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "split",
]
S1, S2 = "b8d273e8601b348d3664778bae0e7e0b", "4e3a578fd6e7e0ce8a6d4a9e2b5f5a1c"
ROWS = [
    (S1, "1a", "L", "CC", "BI-RADS 4", "DENSITY C"),
    (S1, "1b", "L", "MLO", "BI-RADS 4", "DENSITY C"),
    (S1, "1c", "R", "CC", "BI-RADS 1", "DENSITY C"),
    (S1, "1d", "R", "MLO", "BI-RADS 1", "DENSITY C"),
    (S2, "2a", "L", "CC", "BI-RADS 2", "DENSITY B"),
    (S2, "2b", "R", "CC", "BI-RADS 3", "DENSITY B"),
    (S2, "2c", "R", "MLO", "BI-RADS 2", "DENSITY B"),
    (S2, "2d", "L", "MLO", "", "DENSITY B"),
]


def _dataset(root: Path, *, findings: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "breast-level_annotations.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(BREAST_HEADER)
        for study, image_id, side, view, birads, density in ROWS:
            writer.writerow(
                [
                    study,
                    "s" + study[:4],
                    image_id,
                    side,
                    view,
                    3518,
                    2800,
                    birads,
                    density,
                    "training",
                ]
            )
            touch(root / "images" / study / f"{image_id}.dicom")
    if findings:
        with (root / "finding_annotations.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(FINDING_HEADER)
            base = [S1, "s", "1a", "L", "CC", 3518, 2800, "BI-RADS 4", "DENSITY C"]
            writer.writerow([*base, "['Mass']", "BI-RADS 4", 10.5, 20, 110, 220.25, "training"])
            writer.writerow(
                [*base, "['Suspicious Calcification']", "BI-RADS 3", 1, 2, 3, 4, "training"]
            )
            writer.writerow(
                [
                    *base[:2],
                    "1c",
                    "R",
                    "CC",
                    3518,
                    2800,
                    "BI-RADS 1",
                    "DENSITY C",
                    "['No Finding']",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "training",
                ]
            )
    return root


def test_reads_breast_level_annotations(tmp_path: Path) -> None:
    report = read_vindr(_dataset(tmp_path / "vindr"))
    assert report.images == 8
    assert report.dropped == {"no label": 1, NO_CONTRALATERAL: 1}  # 2d unlabelled → 2c alone
    assert accounted(report) == report.images
    by_id = {p.target.sop_instance_uid: p for p in report.pairs}
    assert set(by_id) == {"1a", "1b", "1c", "1d", "2a", "2b"}
    assert by_id["1a"].label == 1 and by_id["1a"].contralateral.sop_instance_uid == "1c"
    assert by_id["1a"].boxes == ((10.5, 20.0, 110.0, 220.25),)  # BI-RADS 3 finding left out
    assert by_id["1b"].boxes == () and by_id["1c"].label == 0
    assert by_id["2b"].label == 0 and by_id["2b"].target.birads == "3"
    assert by_id["1a"].target.density == "c" and by_id["1a"].patient_id == S1
    assert by_id["1a"].target.path == tmp_path / "vindr" / "images" / S1 / "1a.dicom"


def test_missing_files_and_optional_findings(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "vindr", findings=False)
    (root / "images" / S1 / "1d.dicom").unlink()
    report = read_vindr(root)
    assert report.dropped == {"no label": 1, "image file not found": 1, NO_CONTRALATERAL: 2}
    assert all(p.boxes == () for p in report.pairs)
    assert len(read_vindr(root, check_files=False).pairs) == 6


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"breast-level_annotations\.csv not found"):
        read_vindr(tmp_path)
    (tmp_path / "breast-level_annotations.csv").write_text("study_id,image_id\n")
    with pytest.raises(DatasetError, match="missing column"):
        read_vindr(tmp_path)
    _dataset(tmp_path)
    with (tmp_path / "breast-level_annotations.csv").open("a") as handle:
        handle.write(f"{S1},s,9z,B,CC,1,1,BI-RADS 1,DENSITY A,test\n")
    with pytest.raises(DatasetError, match=r"line 10, column 'laterality'"):
        read_vindr(tmp_path)


def test_dispatcher(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "vindr")
    assert len(read_dataset("VinDr-Mammo", root).pairs) == 6
    assert len(read_dataset("vindr", root).pairs) == 6
    with pytest.raises(DatasetError, match="unknown dataset kind 'ddsm'"):
        read_dataset("ddsm", root)
    (tmp_path / "manifest.csv").write_text("path,patient_id,laterality,view,label\n")
    assert read_dataset("manifest", tmp_path).pairs == []
    with pytest.raises(DatasetError, match="CBIS-DDSM description CSVs"):
        read_dataset("CBIS_DDSM", tmp_path)
    with pytest.raises(DatasetError, match=r"no INbreast\.xls"):
        read_dataset("INbreast", tmp_path)
