"""Small builders shared by the reader tests."""

from __future__ import annotations

from pathlib import Path

from brgan_core.data.records import ImageRecord, ReadReport


def image(
    patient: str,
    side: str,
    view: str,
    *,
    label: int = 0,
    study: str = "",
    sop: str = "",
    name: str | None = None,
) -> ImageRecord:
    return ImageRecord(
        path=Path(name or f"{patient}_{study}_{side}_{view}_{sop}.dcm"),
        patient_id=patient,
        laterality=side,  # type: ignore[arg-type]
        view=view,
        label=label,
        study_uid=study,
        sop_instance_uid=sop,
    )


def accounted(report: ReadReport) -> int:
    """Images the report accounts for: paired targets plus every drop."""
    return len(report.pairs) + sum(report.dropped.values())


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path
