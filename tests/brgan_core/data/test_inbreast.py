from __future__ import annotations

import plistlib
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from brgan_core.data import inbreast
from brgan_core.data.inbreast import read_inbreast, read_labels
from brgan_core.data.pairing import NO_CONTRALATERAL
from brgan_core.errors import DatasetError

from .helpers import accounted, touch

HEADER = [
    "Patient ID",
    "Patient age",
    "Laterality",
    "View",
    "Acquisition date",
    "File Name",
    "ACR",
    "Bi-Rads",
]
# ImageID, patient hash, side, view (as in file names), BI-RADS in the sheet
IMAGES = [
    ("22678622", "7a6b3c1d2e4f5a6b", "R", "CC", "1"),
    ("22678646", "7a6b3c1d2e4f5a6b", "L", "CC", "4a"),
    ("22678694", "7a6b3c1d2e4f5a6b", "R", "ML", "1"),
    ("22678670", "7a6b3c1d2e4f5a6b", "L", "ML", "4c"),
    ("20586908", "0b1c2d3e4f5a6b7c", "R", "CC", "2"),
    ("20586934", "0b1c2d3e4f5a6b7c", "L", "CC", "3"),
    ("20586960", "0b1c2d3e4f5a6b7c", "L", "ML", "5"),  # mastectomy side: no R MLO
    ("24055274", "1c2d3e4f5a6b7c8d", "R", "CC", ""),  # no BI-RADS in the sheet
    ("24055298", "1c2d3e4f5a6b7c8d", "L", "CC", "2"),
]


def _dicom(path: Path) -> None:
    """A tiny but real DICOM file (the reader must not need pixels)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _release(tmp_path: Path, *, extra_row: bool = True) -> Path:
    root = tmp_path / "INbreast Release 1.0"
    for image_id, patient, side, view, _ in IMAGES:
        _dicom(root / "AllDICOMs" / f"{image_id}_{patient}_MG_{side}_{view}_ANON.dcm")
    touch(root / "AllDICOMs" / "99999999_abcdef_MG_X_CC_ANON.dcm")  # not the pattern
    touch(root / "AllDICOMs" / "30011674_2d3e4f5a6b7c8d9e_MG_L_CC_ANON.dcm")  # not in sheet
    lines = [";".join(HEADER)]
    for image_id, _patient, side, view, birads in IMAGES:
        lines.append(
            f"removed;;{side};{'MLO' if view == 'ML' else view};201001;{image_id};2;{birads}"
        )
    if extra_row:
        lines.append(";;;;;;;")
        lines.append("Notes: BI-RADS as read by the radiologist;;;;;;;")
    (root / "INbreast.csv").write_text("\n".join(lines) + "\n")
    return root


def test_reads_csv_export(tmp_path: Path) -> None:
    root = _release(tmp_path)
    report = read_inbreast(root)
    assert report.images == 11
    assert report.dropped == {
        "unrecognized file name": 1,
        "no label": 2,
        NO_CONTRALATERAL: 2,  # 20586960 (L MLO without R MLO) and 24055298 (its R CC unlabelled)
    }
    assert accounted(report) == report.images
    assert len(report.pairs) == 6
    views = {p.target.view for p in report.pairs}
    assert views == {"CC", "MLO"}  # file names' ML is MLO
    by_id = {p.target.sop_instance_uid: p for p in report.pairs}
    assert by_id["22678646"].label == 1 and by_id["22678646"].target.birads == "4a"
    assert by_id["22678646"].contralateral.sop_instance_uid == "22678622"
    assert by_id["22678670"].label == 1 and by_id["22678694"].label == 0
    assert by_id["20586934"].label == 0  # BI-RADS 3 is benign
    assert by_id["22678622"].patient_id == "7a6b3c1d2e4f5a6b"


class _FakeSheet:
    def __init__(self, rows: list[list[Any]]) -> None:
        self.rows = rows
        self.nrows = len(rows)

    def row_values(self, i: int) -> list[Any]:
        return self.rows[i]


class _FakeBook:
    def __init__(self, rows: list[list[Any]]) -> None:
        self.sheet = _FakeSheet(rows)

    def sheet_by_index(self, i: int) -> _FakeSheet:
        return self.sheet


def test_reads_xls_cells_as_xlrd_returns_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """xlrd gives numbers as floats (ImageID 22678622.0, BI-RADS 2.0) and strings as str.

    No tool here writes .xls, so the workbook is faked at ``xlrd.open_workbook``.
    """
    import xlrd

    rows = (
        [["INbreast", "", "", "", "", "", "", ""], HEADER]  # a title row above the header
        + [
            [
                "removed",
                60.0,
                "R",
                "CC",
                201001.0,
                float(image_id),
                2.0,
                float(birads) if birads.isdigit() else birads,
            ]
            for image_id, _p, _s, _v, birads in IMAGES
        ]
        + [["", "", "", "", "", "", "", ""]]
    )
    opened: list[str] = []

    def fake_open(path: str) -> _FakeBook:
        opened.append(path)
        return _FakeBook(rows)

    monkeypatch.setattr(xlrd, "open_workbook", fake_open)
    root = _release(tmp_path)
    (root / "INbreast.xls").write_bytes(b"")
    report = read_inbreast(root)
    assert opened == [str(root / "INbreast.xls")]  # the .xls is preferred over the CSV
    assert len(report.pairs) == 6
    labels = read_labels(root / "INbreast.xls")
    assert labels["22678646"] == ("4a", "201001", "b")
    assert labels["20586908"].birads == "2"
    assert labels["24055274"] == ("", "201001", "b")


def test_patient_with_two_exams_pairs_within_each_date(tmp_path: Path) -> None:
    root = tmp_path / "inb"
    rows = [";".join(HEADER)]
    for image_id, side, date in [("1", "L", "2008"), ("2", "R", "2008"), ("3", "L", "2010")]:
        touch(root / "AllDICOMs" / f"{image_id}_abc_MG_{side}_CC_ANON.dcm")
        rows.append(f"x;;{side};CC;{date};{image_id};1;2")
    (root / "INbreast.csv").write_text("\n".join(rows))
    report = read_inbreast(root)
    assert {p.target.sop_instance_uid for p in report.pairs} == {"1", "2"}
    assert report.dropped == {NO_CONTRALATERAL: 1}


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="INbreast folder not found"):
        read_inbreast(tmp_path / "missing")
    (tmp_path / "AllDICOMs").mkdir()
    with pytest.raises(DatasetError, match=r"no INbreast\.xls or INbreast\.csv"):
        read_inbreast(tmp_path)
    (tmp_path / "INbreast.csv").write_text("File Name,BIRADS\n1,2\n")
    with pytest.raises(DatasetError, match="'Bi-Rads' are required"):
        read_inbreast(tmp_path)
    (tmp_path / "INbreast.csv").write_text("File Name,Bi-Rads\n1,2\n")
    with pytest.raises(DatasetError, match=r"no \.dcm files"):
        read_inbreast(tmp_path)
    assert inbreast.LABEL_FILES[0] == "INbreast.xls"


def _roi(name: str, points: list[str]) -> dict[str, Any]:
    return {"Name": name, "NumberOfPoints": len(points), "Point_px": points, "Type": 15}


def _xml(path: Path, rois: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        plistlib.dump(
            {"Images": [{"ImageIndex": 0, "NumberOfROIs": len(rois), "ROIs": rois}]}, handle
        )


def test_boxes_from_allxml_on_malignant_images(tmp_path: Path) -> None:
    root = _release(tmp_path)
    mass = _roi("Mass", ["(1000.5, 2000)", "(1100, 2050.25)", "(1040, 2100)"])
    _xml(
        root / "AllXML" / "22678646.xml",
        [mass, _roi("Calcification", ["(10, 10)"]), _roi("Cluster", ["(5, 6)", "(9, 8)"])],
    )
    _xml(root / "AllXML" / "22678622.xml", [mass])  # BI-RADS 1 image: no malignant box
    by_id = {p.target.sop_instance_uid: p for p in read_inbreast(root).pairs}
    malignant = by_id["22678646"]
    assert malignant.boxes == ((1000.5, 2000.0, 1101.0, 2101.0), (5.0, 6.0, 10.0, 9.0))
    assert malignant.target.findings == ("mass", "calcification", "cluster")
    assert malignant.target.density == "b"
    assert by_id["22678622"].boxes == () and by_id["22678622"].target.findings == ("mass",)
    assert by_id["22678670"].boxes == ()  # no XML file


def test_broken_roi_file_is_an_error(tmp_path: Path) -> None:
    root = _release(tmp_path)
    (root / "AllXML").mkdir()
    (root / "AllXML" / "22678646.xml").write_text("<plist><dict><key>Images</key>")
    with pytest.raises(DatasetError, match=r"22678646\.xml: not an INbreast ROI file"):
        read_inbreast(root)
    _xml(root / "AllXML" / "22678646.xml", [_roi("Mass", ["1000, 2000"])])
    with pytest.raises(DatasetError, match="no readable Point_px"):
        read_inbreast(root)


def test_unreadable_workbook(tmp_path: Path) -> None:
    root = _release(tmp_path)
    (root / "INbreast.xls").write_bytes(b"not a workbook")
    with pytest.raises(DatasetError, match="cannot read the workbook"):
        read_inbreast(root)
