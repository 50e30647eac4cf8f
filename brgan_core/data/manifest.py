"""Read (and write) the manifest CSV described in :mod:`brgan_core.data.records`.

The synthetic generator (``brgan synth``) writes it; any dataset converted to that schema can
be read the same way. Paths in the file are relative to the manifest's folder (or absolute).
A bad row is an error, not a drop: :class:`~brgan_core.errors.DatasetError` names the file,
the line and the column, and says what the value should look like.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from pathlib import Path

from brgan_core.data.pairing import pair_images
from brgan_core.data.records import MANIFEST_COLUMNS, Box, ImageRecord, ReadReport
from brgan_core.errors import DatasetError

MANIFEST_NAME = "manifest.csv"
REQUIRED_COLUMNS: tuple[str, ...] = ("path", "patient_id", "laterality", "view", "label")


class _RowError(ValueError):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


def _parse_boxes(text: str) -> tuple[Box, ...]:
    if not text.strip():
        return ()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _RowError("boxes", f"not valid JSON ({exc.msg})") from None
    if not isinstance(value, list):
        raise _RowError("boxes", "must be a JSON list of [x0, y0, x1, y1] lists")
    boxes: list[Box] = []
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in item)
            or not all(math.isfinite(v) for v in item)
        ):
            raise _RowError("boxes", f"each box must be [x0, y0, x1, y1] numbers, got {item!r}")
        x0, y0, x1, y1 = (float(v) for v in item)
        if x1 <= x0 or y1 <= y0:
            raise _RowError("boxes", f"box {item!r} is empty (need x1 > x0 and y1 > y0)")
        boxes.append((x0, y0, x1, y1))
    return tuple(boxes)


def _resolve(base: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base / path


def _record(row: dict[str, str], base: Path) -> ImageRecord:
    def get(column: str) -> str:
        return (row.get(column) or "").strip()

    for column in REQUIRED_COLUMNS:
        if not get(column):
            raise _RowError(column, "is empty")
    laterality = get("laterality").upper()
    if laterality not in ("L", "R"):
        raise _RowError("laterality", f"must be L or R, not {get('laterality')!r}")
    if get("label") not in ("0", "1"):
        raise _RowError("label", f"must be 0 or 1, not {get('label')!r}")
    mask = get("mask_path")
    return ImageRecord(
        path=_resolve(base, get("path")),
        patient_id=get("patient_id"),
        laterality=laterality,  # type: ignore[arg-type]
        view=get("view").upper(),
        label=int(get("label")),
        study_uid=get("study_uid"),
        sop_instance_uid=get("sop_instance_uid"),
        birads=get("birads"),
        density=get("density").lower(),
        findings=tuple(f for f in get("findings").split(";") if f),
        boxes=_parse_boxes(get("boxes")),
        mask_path=_resolve(base, mask) if mask else None,
    )


def read_manifest_records(path: str | Path) -> list[ImageRecord]:
    """The image records of a manifest CSV, in file order."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise DatasetError(f"{path}: manifest not found; pass the CSV written by `brgan synth`")
    base = path.parent
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DatasetError(
                f"{path}, line 1: missing column(s) {', '.join(missing)}; "
                f"the header must hold {', '.join(MANIFEST_COLUMNS)}"
            )
        records = []
        for row in reader:
            try:
                records.append(_record(row, base))
            except _RowError as exc:
                raise DatasetError(
                    f"{path}, line {reader.line_num}, column {exc.column!r}: {exc}"
                ) from None
    return records


def read_manifest(path: str | Path) -> ReadReport:
    """Pairs of a manifest CSV (or of ``DIR/manifest.csv`` when ``path`` is a folder)."""
    return pair_images(read_manifest_records(path))


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def write_manifest(records: Iterable[ImageRecord], path: str | Path) -> Path:
    """Write ``records`` as a manifest CSV; paths under its folder are written relative."""
    path = Path(path)
    base = path.parent
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(MANIFEST_COLUMNS))
        writer.writeheader()
        for r in records:
            writer.writerow(
                {
                    "path": _relative(r.path, base),
                    "patient_id": r.patient_id,
                    "study_uid": r.study_uid,
                    "sop_instance_uid": r.sop_instance_uid,
                    "laterality": r.laterality,
                    "view": r.view,
                    "label": r.label,
                    "birads": r.birads,
                    "density": r.density,
                    "findings": ";".join(r.findings),
                    "boxes": json.dumps([list(b) for b in r.boxes]),
                    "mask_path": _relative(r.mask_path, base) if r.mask_path else "",
                }
            )
    return path
