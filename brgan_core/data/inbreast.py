"""INbreast reader (Moreira et al., Acad. Radiol. 2012; the paper's public dataset).

Layout of the release (``INbreast Release 1.0/``)::

    INbreast.xls            labels, one row per image (or INbreast.csv, its CSV export)
    AllDICOMs/<ImageID>_<PatientHash>_MG_<R|L>_<CC|ML>_ANON.dcm
    AllXML/ AllROI/ ...     lesion contours (not read here)

* Laterality and view come from the file name. INbreast writes MLO as ``ML`` in its file
  names; that is a dataset convention, so ``ML`` is read as ``MLO`` (not the DICOM ML view).
* The patient is the file name's ``PatientHash``; the study is the label file's
  ``Acquisition date`` when it has one (a few patients have more than one exam), else unknown.
* Labels: column ``Bi-Rads`` (strings like ``"4a"``; xlrd gives plain numbers as floats),
  joined on ``File Name`` (= ImageID). Malignant if BI-RADS > 3 (paper Sect. 3.1).
* Dropped and counted: files whose name does not follow the pattern (``"unrecognized file
  name"``), images without a label row or with an unreadable BI-RADS (``"no label"``), images
  without a contralateral view (``"no contralateral view"``; the paper drops 9 images so).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from brgan_core.data.labels import birads_label, parse_birads
from brgan_core.data.pairing import pair_images
from brgan_core.data.records import ImageRecord, ReadReport
from brgan_core.errors import DatasetError

FILE_NAME = re.compile(
    r"^(?P<image_id>\d+)_(?P<patient>[0-9A-Za-z]+)_MG_(?P<side>[RL])_(?P<view>CC|ML)_ANON\.dcm$",
    re.IGNORECASE,
)
LABEL_FILES: tuple[str, ...] = ("INbreast.xls", "INbreast.csv")
ID_COLUMN = "File Name"
BIRADS_COLUMN = "Bi-Rads"
DATE_COLUMN = "Acquisition date"
_VIEWS = {"CC": "CC", "ML": "MLO"}


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
    header = [_cell_text(v) for v in sheet.row_values(0)]
    return [dict(zip(header, sheet.row_values(i), strict=False)) for i in range(1, sheet.nrows)]


def _rows_from_csv(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    try:
        dialect: Any = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t")
    except (csv.Error, IndexError):
        dialect = csv.excel
    return list(csv.DictReader(text.splitlines(), dialect=dialect))


def read_labels(path: str | Path) -> dict[str, tuple[str, str]]:
    """ImageID → (BI-RADS normalized or ``""`` when unreadable, acquisition date or ``""``)."""
    path = Path(path)
    rows = _rows_from_xls(path) if path.suffix.lower() == ".xls" else _rows_from_csv(path)
    if rows and (ID_COLUMN not in rows[0] or BIRADS_COLUMN not in rows[0]):
        raise DatasetError(
            f"{path}, line 1: columns {ID_COLUMN!r} and {BIRADS_COLUMN!r} are required; "
            f"found {', '.join(map(str, rows[0]))}"
        )
    labels: dict[str, tuple[str, str]] = {}
    for row in rows:
        image_id = _cell_text(row.get(ID_COLUMN, ""))
        if not image_id.isdigit():
            continue  # blank or note rows at the end of the sheet
        birads = parse_birads(_cell_text(row.get(BIRADS_COLUMN, ""))) or ""
        labels[image_id] = (birads, _cell_text(row.get(DATE_COLUMN, "")))
    return labels


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

    report = ReadReport(images=len(files))
    records: list[ImageRecord] = []
    for file in files:
        match = FILE_NAME.match(file.name)
        if match is None:
            report.drop("unrecognized file name")
            continue
        birads, date = table.get(match["image_id"], ("", ""))
        if not birads:
            report.drop("no label")
            continue
        records.append(
            ImageRecord(
                path=file,
                patient_id=match["patient"],
                laterality=match["side"].upper(),  # type: ignore[arg-type]
                view=_VIEWS[match["view"].upper()],
                label=birads_label(birads),
                study_uid=date,
                sop_instance_uid=match["image_id"],
                birads=birads,
            )
        )
    return pair_images(records, report)
