"""VinDr-Mammo reader (Nguyen et al., Sci. Data 2023).

Layout of the PhysioNet release::

    breast-level_annotations.csv   one row per image
    finding_annotations.csv        one row per finding (optional here)
    images/<study_id>/<image_id>.dicom

``breast-level_annotations.csv`` columns: ``study_id, series_id, image_id, laterality,
view_position, height, width, breast_birads, breast_density, split``; BI-RADS and density are
written ``"BI-RADS 4"`` and ``"DENSITY C"``.

* One study is one exam of one patient and the release has no other patient key, so the
  study is used as the patient (and the split is study-wise). The official ``split`` column is
  not used; :mod:`brgan_core.data.splits` makes the 8:1:1 split like for every dataset.
* Malignant if the breast-level BI-RADS > 3. Unreadable BI-RADS → ``"no label"``.
* Boxes: from ``finding_annotations.csv`` when present, the ``xmin, ymin, xmax, ymax`` of the
  findings with ``finding_birads`` > 3 on malignant images (pixel coordinates of the stored
  image). Findings without coordinates ("No Finding") are skipped.
* With ``check_files`` (default) images whose DICOM is missing are dropped as
  ``"image file not found"``. View codes are kept as written and pair only with the same code.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

from brgan_core.data.labels import birads_label, parse_birads
from brgan_core.data.pairing import pair_images
from brgan_core.data.records import Box, ImageRecord, ReadReport
from brgan_core.errors import DatasetError

BREAST_CSV = "breast-level_annotations.csv"
FINDING_CSV = "finding_annotations.csv"
REQUIRED_COLUMNS: tuple[str, ...] = (
    "study_id",
    "image_id",
    "laterality",
    "view_position",
    "breast_birads",
)


def _float(text: str | None) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_finding_boxes(path: str | Path) -> dict[str, list[Box]]:
    """image_id → boxes of findings with BI-RADS > 3, from ``finding_annotations.csv``."""
    boxes: dict[str, list[Box]] = defaultdict(list)
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            birads = parse_birads(row.get("finding_birads", ""))
            coords = [_float(row.get(c)) for c in ("xmin", "ymin", "xmax", "ymax")]
            if birads is None or not birads_label(birads) or None in coords:
                continue
            x0, y0, x1, y1 = (float(c) for c in coords if c is not None)
            if x1 > x0 and y1 > y0:
                boxes[row["image_id"].strip()].append((x0, y0, x1, y1))
    return dict(boxes)


def read_vindr(root: str | Path, *, check_files: bool = True) -> ReadReport:
    """Pairs of a VinDr-Mammo release folder."""
    root = Path(root)
    csv_path = root / BREAST_CSV
    if not csv_path.is_file():
        raise DatasetError(f"{root}: {BREAST_CSV} not found; pass the VinDr-Mammo folder")
    finding_path = root / FINDING_CSV
    boxes = read_finding_boxes(finding_path) if finding_path.is_file() else {}

    report = ReadReport()
    records: list[ImageRecord] = []
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{csv_path}, line 1: missing column(s) {', '.join(missing)}")
        for row in reader:
            report.images += 1
            study, image_id = row["study_id"].strip(), row["image_id"].strip()
            side = row["laterality"].strip().upper()
            if side not in ("L", "R"):
                raise DatasetError(
                    f"{csv_path}, line {reader.line_num}, column 'laterality': must be L or R,"
                    f" not {row['laterality']!r}"
                )
            birads = parse_birads(row["breast_birads"])
            if birads is None:
                report.drop("no label")
                continue
            path = root / "images" / study / f"{image_id}.dicom"
            if check_files and not path.is_file():
                report.drop("image file not found")
                continue
            label = birads_label(birads)
            density = (row.get("breast_density") or "").strip().upper().removeprefix("DENSITY")
            records.append(
                ImageRecord(
                    path=path,
                    patient_id=study,
                    laterality=side,  # type: ignore[arg-type]
                    view=row["view_position"].strip().upper(),
                    label=label,
                    study_uid=study,
                    sop_instance_uid=image_id,
                    birads=birads,
                    density=density.strip().lower(),
                    boxes=tuple(boxes.get(image_id, ())) if label else (),
                )
            )
    return pair_images(records, report)
