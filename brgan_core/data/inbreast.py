"""INbreast reader (Moreira et al., Acad. Radiol. 2012; the paper's public dataset).

Layout of the release (``INbreast Release 1.0/``)::

    INbreast.xls            labels, one row per image (or INbreast.csv, its CSV export)
    AllDICOMs/<ImageID>_<PatientHash>_MG_<R|L>_<CC|ML>_ANON.dcm
    AllXML/<ImageID>.xml    lesion contours (Apple plist XML), optional
    AllROI/ ...             (not read)

* Laterality and view come from the file name. INbreast writes MLO as ``ML`` in its file
  names; that is a dataset convention, so ``ML`` is read as ``MLO`` (not the DICOM ML view).
* The patient is the file name's ``PatientHash``; the study is the label file's
  ``Acquisition date`` when it has one (a few patients have more than one exam), else unknown.
* Labels: column ``Bi-Rads`` (strings like ``"4a"``; xlrd gives plain numbers as floats),
  joined on ``File Name`` (= ImageID). Malignant if BI-RADS > 3 (paper Sect. 3.1). Density:
  column ``ACR`` 1–4, stored as ``a``–``d``.
* Boxes (for the localization error): from ``AllXML/<ImageID>.xml`` when present, the bounding
  box of each lesion ROI's ``Point_px`` contour (names in :data:`LESION_ROIS`: masses,
  calcification clusters, distortions, asymmetries; single calcifications are points and are
  left out), for malignant images only (the records' boxes are malignant findings). Every ROI
  name is kept in ``findings``.
* Dropped and counted: files whose name does not follow the pattern (``"unrecognized file
  name"``), images without a label row or with an unreadable BI-RADS (``"no label"``), images
  without a contralateral view (``"no contralateral view"``; the paper drops 9 images so).
"""

from __future__ import annotations

import csv
import plistlib
import re
from pathlib import Path
from typing import Any, NamedTuple
from xml.parsers.expat import ExpatError

from brgan_core.data.labels import birads_label, parse_birads
from brgan_core.data.pairing import pair_images
from brgan_core.data.records import Box, ImageRecord, ReadReport
from brgan_core.errors import DatasetError

FILE_NAME = re.compile(
    r"^(?P<image_id>\d+)_(?P<patient>[0-9A-Za-z]+)_MG_(?P<side>[RL])_(?P<view>CC|ML)_ANON\.dcm$",
    re.IGNORECASE,
)
LABEL_FILES: tuple[str, ...] = ("INbreast.xls", "INbreast.csv")
ID_COLUMN = "File Name"
BIRADS_COLUMN = "Bi-Rads"
DATE_COLUMN = "Acquisition date"
DENSITY_COLUMN = "ACR"
LESION_ROIS: frozenset[str] = frozenset(
    {"mass", "cluster", "distortion", "asymmetry", "assymetry", "spiculated region"}
)
_VIEWS = {"CC": "CC", "ML": "MLO"}
_DENSITY = {"1": "a", "2": "b", "3": "c", "4": "d"}
_POINT = re.compile(r"^\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*\)$")


class InbreastLabel(NamedTuple):
    """One row of the label sheet."""

    birads: str  # normalized, "" when unreadable
    date: str  # acquisition date, "" when absent
    density: str  # ACR a–d, "" when absent


def _cell_text(value: Any) -> str:
    """A cell as text; whole floats (xlrd's numbers) lose their ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _find_label_file(root: Path) -> Path:
    for name in LABEL_FILES:
        for candidate in (root / name, *root.glob(f"*/{name}")):
            if candidate.is_file():
                return candidate
    raise DatasetError(
        f"{root}: no INbreast.xls or INbreast.csv found; pass the release folder or labels=PATH"
    )


def _rows_from_xls(path: Path) -> list[dict[str, Any]]:
    import xlrd  # lazy: only needed for the original .xls

    try:
        sheet = xlrd.open_workbook(str(path)).sheet_by_index(0)
    except xlrd.XLRDError as exc:
        raise DatasetError(f"{path}: cannot read the workbook ({exc})") from None
    # The header is the first row naming the ImageID column (title rows may come before it).
    first = next(
        (
            i
            for i in range(min(sheet.nrows, 10))
            if ID_COLUMN in (_cell_text(v) for v in sheet.row_values(i))
        ),
        0,
    )
    header = [_cell_text(v) for v in sheet.row_values(first)] if sheet.nrows else []
    return [
        dict(zip(header, sheet.row_values(i), strict=False)) for i in range(first + 1, sheet.nrows)
    ]


def _rows_from_csv(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    try:
        dialect: Any = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t")
    except (csv.Error, IndexError):
        dialect = csv.excel
    return list(csv.DictReader(text.splitlines(), dialect=dialect))


def read_labels(path: str | Path) -> dict[str, InbreastLabel]:
    """ImageID → its :class:`InbreastLabel`, from ``INbreast.xls`` or its CSV export."""
    path = Path(path)
    rows = _rows_from_xls(path) if path.suffix.lower() == ".xls" else _rows_from_csv(path)
    if rows and (ID_COLUMN not in rows[0] or BIRADS_COLUMN not in rows[0]):
        raise DatasetError(
            f"{path}, line 1: columns {ID_COLUMN!r} and {BIRADS_COLUMN!r} are required; "
            f"found {', '.join(map(str, rows[0]))}"
        )
    labels: dict[str, InbreastLabel] = {}
    for row in rows:
        image_id = _cell_text(row.get(ID_COLUMN, ""))
        if not image_id.isdigit():
            continue  # blank or note rows at the end of the sheet
        birads = parse_birads(_cell_text(row.get(BIRADS_COLUMN, ""))) or ""
        density = _DENSITY.get(_cell_text(row.get(DENSITY_COLUMN, "")), "")
        labels[image_id] = InbreastLabel(birads, _cell_text(row.get(DATE_COLUMN, "")), density)
    return labels


def read_rois(path: str | Path) -> tuple[tuple[str, ...], tuple[Box, ...]]:
    """ROI names (lower case) and the boxes of lesion ROIs of one ``AllXML`` file.

    A box is ``(x0, y0, x1, y1)`` around the contour's ``Point_px`` points, end-exclusive.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            plist = plistlib.load(handle)
        rois = [roi for image in plist["Images"] for roi in image.get("ROIs", [])]
    except (ExpatError, plistlib.InvalidFileException, KeyError, TypeError, AttributeError) as exc:
        raise DatasetError(f"{path}: not an INbreast ROI file ({exc!r})") from None
    names: list[str] = []
    boxes: list[Box] = []
    for roi in rois:
        name = str(roi.get("Name", "")).strip().lower()
        names.append(name)
        if name not in LESION_ROIS:
            continue
        points = [_POINT.match(str(p).strip()) for p in roi.get("Point_px", [])]
        if not points or None in points:
            raise DatasetError(f"{path}: ROI {name!r} has no readable Point_px contour")
        xs = [float(m[1]) for m in points if m]
        ys = [float(m[2]) for m in points if m]
        boxes.append((min(xs), min(ys), max(xs) + 1, max(ys) + 1))
    return tuple(names), tuple(boxes)


def read_inbreast(root: str | Path, *, labels: str | Path | None = None) -> ReadReport:
    """Pairs of an INbreast release folder.

    ``root`` is the release folder (holding ``AllDICOMs/``, or DICOMs anywhere below it);
    ``labels`` overrides the label file (default: ``INbreast.xls``, else ``INbreast.csv``, in
    ``root`` or one folder below).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: INbreast folder not found")
    table = read_labels(labels if labels is not None else _find_label_file(root))
    image_dir = root / "AllDICOMs" if (root / "AllDICOMs").is_dir() else root
    files = sorted(p for p in image_dir.rglob("*") if p.suffix.lower() == ".dcm")
    if not files:
        raise DatasetError(f"{image_dir}: no .dcm files; expected AllDICOMs/*.dcm")

    xml_dir = root / "AllXML"
    report = ReadReport(images=len(files))
    records: list[ImageRecord] = []
    for file in files:
        match = FILE_NAME.match(file.name)
        if match is None:
            report.drop("unrecognized file name")
            continue
        row = table.get(match["image_id"])
        if row is None or not row.birads:
            report.drop("no label")
            continue
        label = birads_label(row.birads)
        findings: tuple[str, ...] = ()
        boxes: tuple[Box, ...] = ()
        xml = xml_dir / f"{match['image_id']}.xml"
        if xml.is_file():
            findings, boxes = read_rois(xml)
        records.append(
            ImageRecord(
                path=file,
                patient_id=match["patient"],
                laterality=match["side"].upper(),  # type: ignore[arg-type]
                view=_VIEWS[match["view"].upper()],
                label=label,
                study_uid=row.date,
                sop_instance_uid=match["image_id"],
                birads=row.birads,
                density=row.density,
                findings=findings,
                boxes=boxes if label else (),
            )
        )
    return pair_images(records, report)
