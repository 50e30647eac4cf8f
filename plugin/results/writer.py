"""Write every result object of one study version (DESIGN.md step 7), atomically.

Called by the worker (``<results>/<task id>/``) and by ``brgan analyze`` (``<out>/<study>/``).
Which objects, by the settings: the TID 1500 SR (always; for a study where nothing could be
analyzed only with ``write_not_analyzed_sr``), the Mammography CAD SR (``write_cad_sr``), one
heatmap Secondary Capture per analyzed image, one summary Secondary Capture, and — for a new
version — an IOCM rejection KOS for the objects it supersedes (``write_rejection_kos``).

File names are ``<kind>[-<n>].dcm``; the bytes depend only on the task (deterministic UIDs and
Content Date/Time), so a redelivered task rewrites byte-identical files.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from plugin.fsutil import DIR_MODE, atomic_write_bytes
from plugin.logging import get_logger
from plugin.queue.contract import ResultFile
from plugin.results.inputs import StudyResults, sha256_hex

log = get_logger(__name__)

SR_KINDS = ("tid1500_sr", "cad_sr")


def encode(ds: Dataset) -> bytes:
    """The Part 10 bytes of ``ds`` (file meta enforced)."""
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _previous(results: StudyResults, kind: str) -> list[Dataset]:
    """The superseded SRs of this kind (read from the results folder; a minimal reference
    data set when the file is gone)."""
    out = []
    for ref in results.task.supersedes:
        if ref.kind != kind:
            continue
        try:
            out.append(pydicom.dcmread(ref.path, stop_before_pixels=True))
        except (OSError, pydicom.errors.InvalidDicomError):
            ds = Dataset()
            ds.SOPClassUID = ref.sop_class_uid
            ds.SOPInstanceUID = ref.sop_instance_uid
            ds.SeriesInstanceUID = ref.series_instance_uid
            ds.StudyInstanceUID = results.study_uid
            out.append(ds)
    return out


def build_objects(results: StudyResults, settings: Any) -> list[tuple[str, str | None, Dataset]]:
    """``(kind, source image UID or None, data set)`` of every object to write."""
    from plugin.results import heatmap_sc, kos, summary_sc, tid1500

    objects: list[tuple[str, str | None, Dataset]] = []
    nothing = not results.analyzed
    sr = tid1500.from_study(
        results,
        previous=_previous(results, "tid1500_sr"),
        not_analyzed_sr=settings.write_not_analyzed_sr,
    )
    if sr is not None:
        objects.append(("tid1500_sr", None, sr))
    if settings.write_cad_sr and (not nothing or settings.write_not_analyzed_sr):
        from plugin.results import cad_sr

        objects.append(
            ("cad_sr", None, cad_sr.from_study(results, previous=_previous(results, "cad_sr")))
        )
    for image in results.analyzed:
        objects.append(
            (
                "heatmap_sc",
                image.score.sop_instance_uid,
                heatmap_sc.from_image(results, image, max_size=settings.heatmap_max_size),
            )
        )
    objects.append(("summary_sc", None, summary_sc.from_study(results)))
    if settings.write_rejection_kos and results.task.supersedes:
        objects.append(("kos", None, kos.rejection_for(results, results.task.supersedes)))
    return objects


def write_results(results: StudyResults, settings: Any, out_dir: Path) -> list[ResultFile]:
    """Build and write every object under ``out_dir``; returns what was written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    files: list[ResultFile] = []
    counters: dict[str, int] = {}
    for kind, source_uid, ds in build_objects(results, settings):
        n = counters.get(kind, 0)
        counters[kind] = n + 1
        name = f"{kind}.dcm" if source_uid is None else f"{kind}-{n:02d}.dcm"
        data = encode(ds)
        path = out_dir / name
        atomic_write_bytes(path, data)
        files.append(
            ResultFile(
                kind=kind,
                path=str(path),
                sop_instance_uid=str(ds.SOPInstanceUID),
                sop_class_uid=str(ds.SOPClassUID),
                series_instance_uid=str(ds.SeriesInstanceUID),
                source_uid=source_uid,
                sha256=sha256_hex(data),
            )
        )
    log.info(
        "results_written",
        study_uid=results.study_uid,
        version=results.task.study_version,
        files=len(files),
        bytes=sum(Path(f.path).stat().st_size for f in files),
    )
    return files
