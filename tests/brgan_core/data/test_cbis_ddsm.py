from __future__ import annotations

import csv
from pathlib import Path

import pytest

from brgan_core.data.cbis_ddsm import read_cbis_ddsm
from brgan_core.data.pairing import NO_CONTRALATERAL
from brgan_core.errors import DatasetError

from .helpers import accounted, touch

MASS_HEADER = [
    "patient_id",
    "breast_density",
    "left or right breast",
    "image view",
    "abnormality id",
    "abnormality type",
    "mass shape",
    "mass margins",
    "assessment",
    "pathology",
    "subtlety",
    "image file path",
    "cropped image file path",
    "ROI mask file path",
]
CALC_HEADER = [
    "patient_id",
    "breast density",
    "left or right breast",
    "image view",
    "abnormality id",
    "abnormality type",
    "calc type",
    "calc distribution",
    "assessment",
    "pathology",
    "subtlety",
    "image file path",
    "cropped image file path",
    "ROI mask file path",
]
STUDY = "1.3.6.1.4.1.9590.100.1.2.422112722213189649807611434612228974994"
SERIES = "1.3.6.1.4.1.9590.100.1.2.342386194811267636608694132590482924515"


def _image_path(family: str, patient: str, side: str, view: str) -> str:
    return f"{family}_{patient}_{side}_{view}/{STUDY}/{SERIES}/000000.dcm"


def _write(root: Path, name: str, header: list[str], rows: list[tuple[str, ...]]) -> None:
    family = {
        "mass_case_description_train_set.csv": "Mass-Training",
        "mass_case_description_test_set.csv": "Mass-Test",
        "calc_case_description_train_set.csv": "Calc-Training",
        "calc_case_description_test_set.csv": "Calc-Test",
    }[name]
    with (root / name).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for patient, side, view, assessment, pathology in rows:
            path = _image_path(family, patient, side, view)
            writer.writerow(
                [
                    patient,
                    "3",
                    side,
                    view,
                    "1",
                    family.split("-")[0].lower(),
                    "IRREGULAR",
                    "SPICULATED",
                    assessment,
                    pathology,
                    "4",
                    path,
                    path.replace("000000", "1"),
                    path.replace("000000", "2"),
                ]
            )
            # TCIA downloads hold 1-1.dcm, not the CSV's 000000.dcm
            touch(
                root
                / "CBIS-DDSM"
                / f"{family}_{patient}_{side}_{view}"
                / STUDY
                / SERIES
                / "1-1.dcm"
            )


def _dataset(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _write(
        root,
        "mass_case_description_train_set.csv",
        MASS_HEADER,
        [
            ("P_00001", "LEFT", "CC", "4", "MALIGNANT"),
            ("P_00001", "LEFT", "MLO", "4", "MALIGNANT"),
            ("P_00001", "RIGHT", "CC", "3", "BENIGN"),
            ("P_00004", "LEFT", "CC", "3", "BENIGN"),
            ("P_00004", "LEFT", "CC", "5", "MALIGNANT"),  # second abnormality of the same image
            ("P_00004", "RIGHT", "CC", "2", "BENIGN_WITHOUT_CALLBACK"),
        ],
    )
    _write(
        root,
        "mass_case_description_test_set.csv",
        MASS_HEADER,
        [
            ("P_00016", "LEFT", "MLO", "4", "MALIGNANT"),
        ],
    )
    _write(
        root,
        "calc_case_description_train_set.csv",
        CALC_HEADER,
        [
            ("P_00001", "RIGHT", "MLO", "2", "BENIGN"),
            ("P_00001", "RIGHT", "CC", "4", "MALIGNANT"),  # same image as the mass row above
        ],
    )
    return root


def test_image_level_labels_and_pairs(tmp_path: Path) -> None:
    report = read_cbis_ddsm(_dataset(tmp_path / "cbis"))
    assert report.images == 7  # distinct (patient, side, view)
    assert report.dropped == {NO_CONTRALATERAL: 1}  # P_00016 L MLO
    assert accounted(report) == report.images
    labels = {(p.patient_id, p.target.laterality, p.target.view): p.label for p in report.pairs}
    assert labels == {
        ("P_00001", "L", "CC"): 1,
        ("P_00001", "R", "CC"): 1,  # malignant calcification, benign mass → malignant
        ("P_00001", "L", "MLO"): 1,
        ("P_00001", "R", "MLO"): 0,
        ("P_00004", "L", "CC"): 1,  # any malignant abnormality → malignant
        ("P_00004", "R", "CC"): 0,
    }
    pair = next(p for p in report.pairs if p.patient_id == "P_00004" and p.label == 1)
    assert pair.target.birads == "5" and pair.target.density == "c"
    assert pair.target.path.name == "1-1.dcm" and pair.target.path.is_file()
    # the mass copy is listed first, so it is the one used
    r_cc = next(
        p
        for p in report.pairs
        if p.patient_id == "P_00001" and p.target.laterality == "R" and p.target.view == "CC"
    )
    assert "Mass-Training_P_00001_RIGHT_CC" in str(r_cc.target.path)


def test_missing_image_files_are_counted(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "cbis")
    (root / "CBIS-DDSM" / "Mass-Training_P_00004_RIGHT_CC" / STUDY / SERIES / "1-1.dcm").unlink()
    report = read_cbis_ddsm(root)
    assert report.dropped == {"image file not found": 1, NO_CONTRALATERAL: 2}
    unchecked = read_cbis_ddsm(root, check_files=False)
    assert len(unchecked.pairs) == 6


def test_bad_values_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="description CSVs"):
        read_cbis_ddsm(tmp_path)
    _write(
        tmp_path,
        "mass_case_description_train_set.csv",
        MASS_HEADER,
        [
            ("P_1", "LEFT", "CC", "4", "MALIGNANT"),
            ("P_1", "LEFT", "CC", "4", "UNPROVEN"),
        ],
    )
    with pytest.raises(DatasetError, match=r"line 3, column 'pathology'"):
        read_cbis_ddsm(tmp_path)
    (tmp_path / "mass_case_description_train_set.csv").write_text(
        "patient_id,pathology\nP,BENIGN\n"
    )
    with pytest.raises(DatasetError, match="missing column"):
        read_cbis_ddsm(tmp_path)
