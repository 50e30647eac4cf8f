"""CBIS-DDSM reader (Lee et al., Sci. Data 2017).

Layout: the four description CSVs next to the image folder as downloaded from TCIA::

    mass_case_description_train_set.csv   calc_case_description_train_set.csv
    mass_case_description_test_set.csv    calc_case_description_test_set.csv
    CBIS-DDSM/Mass-Training_P_00001_LEFT_CC/<study UID>/<series UID>/1-1.dcm ...

One CSV row is one *abnormality*. Columns used: ``patient_id``, ``left or right breast``
(LEFT/RIGHT), ``image view`` (CC/MLO), ``pathology`` (MALIGNANT, BENIGN,
BENIGN_WITHOUT_CALLBACK), ``image file path``, ``assessment`` (BI-RADS) and ``breast_density``
(``breast density`` in the calc CSVs; 1–4, stored as ACR ``a``–``d``).

* Image-level label: an image (patient, side, view) is malignant if *any* of its
  abnormalities, in any of the four CSVs, is MALIGNANT. Its BI-RADS is the highest assessment.
* The same mammogram is listed once per abnormality and, when it has both a mass and a
  calcification, once in each family (stored twice by TCIA); the first path in the order
  mass-train, mass-test, calc-train, calc-test is used.
* The ``image file path`` of the CSVs names ``000000.dcm`` while TCIA downloads hold
  ``1-1.dcm``: a missing file is looked up as the single ``.dcm`` under the CSV path's first
  folder, searched in ``root`` and ``root/CBIS-DDSM``. With ``check_files`` (default) images
  whose file cannot be found are dropped as ``"image file not found"``.
* CBIS-DDSM lists only views *with* an abnormality, so most images have no contralateral
  view: expect few pairs; the rest is counted as ``"no contralateral view"``.
* Boxes are not read (the ROI masks would have to be opened); records carry none.
"""

from __future__ import annotations

import csv
from pathlib import Path

from brgan_core.data.labels import parse_birads
from brgan_core.data.pairing import pair_images
from brgan_core.data.records import ImageRecord, ReadReport
from brgan_core.errors import DatasetError

CSV_FILES: tuple[str, ...] = (
    "mass_case_description_train_set.csv",
    "mass_case_description_test_set.csv",
    "calc_case_description_train_set.csv",
    "calc_case_description_test_set.csv",
)
REQUIRED_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "left or right breast",
    "image view",
    "pathology",
    "image file path",
)
PATHOLOGIES = ("MALIGNANT", "BENIGN", "BENIGN_WITHOUT_CALLBACK")
_SIDES = {"LEFT": "L", "RIGHT": "R"}
_DENSITY = {"1": "a", "2": "b", "3": "c", "4": "d"}


def _locate(root: Path, relative: str) -> Path | None:
    for base in (root, root / "CBIS-DDSM"):
        direct = base / relative
        if direct.is_file():
            return direct
    first = Path(relative).parts[0] if relative else ""
    for base in (root, root / "CBIS-DDSM"):
        folder = base / first
        if first and folder.is_dir():
            found = sorted(folder.rglob("*.dcm"))
            if len(found) == 1:
                return found[0]
    return None


class _Image:
    def __init__(self, relative: str) -> None:
        self.relative = relative
        self.malignant = False
        self.birads = ""
        self.density = ""


def read_cbis_ddsm(root: str | Path, *, check_files: bool = True) -> ReadReport:
    """Pairs of a CBIS-DDSM download (``root`` holds the description CSVs)."""
    root = Path(root)
    csv_paths = [root / name for name in CSV_FILES if (root / name).is_file()]
    if not csv_paths:
        raise DatasetError(
            f"{root}: none of the CBIS-DDSM description CSVs ({', '.join(CSV_FILES)}) found"
        )

    images: dict[tuple[str, str, str], _Image] = {}
    for csv_path in csv_paths:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DatasetError(f"{csv_path}, line 1: missing column(s) {', '.join(missing)}")
            for row in reader:
                where = f"{csv_path}, line {reader.line_num}"
                side = _SIDES.get(row["left or right breast"].strip().upper())
                if side is None:
                    raise DatasetError(
                        f"{where}, column 'left or right breast': must be LEFT or RIGHT, "
                        f"not {row['left or right breast']!r}"
                    )
                pathology = row["pathology"].strip().upper()
                if pathology not in PATHOLOGIES:
                    raise DatasetError(
                        f"{where}, column 'pathology': must be one of {', '.join(PATHOLOGIES)}"
                        f", not {row['pathology']!r}"
                    )
                key = (row["patient_id"].strip(), side, row["image view"].strip().upper())
                image = images.setdefault(key, _Image(row["image file path"].strip()))
                image.malignant |= pathology == "MALIGNANT"
                birads = parse_birads(row.get("assessment", ""))
                if birads and (not image.birads or birads > image.birads):
                    image.birads = birads
                density = (row.get("breast_density") or row.get("breast density") or "").strip()
                image.density = image.density or _DENSITY.get(density, "")

    report = ReadReport(images=len(images))
    records: list[ImageRecord] = []
    for (patient, side, view), image in sorted(images.items()):
        path = _locate(root, image.relative) if check_files else root / image.relative
        if path is None:
            report.drop("image file not found")
            continue
        records.append(
            ImageRecord(
                path=path,
                patient_id=patient,
                laterality=side,  # type: ignore[arg-type]
                view=view,
                label=int(image.malignant),
                birads=image.birads,
                density=image.density,
            )
        )
    return pair_images(records, report)
