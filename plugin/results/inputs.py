"""What every result writer gets: one study version's scores, CAMs, sources and provenance.

The worker builds one :class:`StudyResults` after scoring and hands it to each writer's
``from_study(results, settings-like options)``; ``brgan analyze`` builds the same offline. Writers
never look anything up themselves: every attribute they write comes from here, so two runs of the
same task write byte-identical objects (issue 9 §2).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from plugin.queue.contract import ImageScore, NotAnalyzed, Provenance, StudyTask

#: Object kinds, as used in file names, UIDs and :class:`plugin.queue.contract.ResultFile`.
KINDS = ("tid1500_sr", "cad_sr", "heatmap_sc", "summary_sc", "kos", "seg")
#: Series numbers of our result series (one series per kind, all in the source study).
SERIES_NUMBERS = {
    "tid1500_sr": 9001,
    "cad_sr": 9002,
    "heatmap_sc": 9003,
    "summary_sc": 9004,
    "kos": 9005,
    "seg": 9006,
}


class SourceUnavailable(KeyError):  # noqa: N818
    """A source instance's file is not known, gone, or not readable as DICOM."""


@dataclass(frozen=True)
class AnalyzedImage:
    """One scored target: its score and region, and the CAM on its stored pixel grid."""

    score: ImageScore
    #: (Rows, Columns) float32 in [0, 1], aligned with the stored pixels (not model space).
    cam: np.ndarray
    source_path: Path


@dataclass(frozen=True)
class StudyResults:
    """One study version's analysis, ready to be written as DICOM."""

    task: StudyTask
    provenance: Provenance
    analyzed: tuple[AnalyzedImage, ...]
    #: The plan's and the worker's not-analyzed images, each with its reason.
    not_analyzed: tuple[NotAnalyzed, ...]
    breasts: dict[str, float | None]
    exam: float | None
    #: SOP Instance UID → spool path of every source image the objects may reference.
    source_paths: dict[str, Path] = field(default_factory=dict)
    #: Source data sets read so far (``source``'s cache; not part of the value).
    _headers: dict[str, Dataset] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def study_uid(self) -> str:
        return self.task.study_uid

    @property
    def content_datetime(self) -> datetime:
        """Content Date/Time of every object: when this study version was queued (UTC)."""
        return datetime.fromtimestamp(self.task.queued_at, UTC)

    def source(self, sop_instance_uid: str, *, pixels: bool = False) -> Dataset:
        """The source instance as stored (header only unless ``pixels``); cached per call kind."""
        key = f"{sop_instance_uid}|{pixels}"
        cache = self._headers
        if key not in cache:
            path = self.source_paths.get(sop_instance_uid)
            if path is None:
                for image in self.analyzed:
                    if image.score.sop_instance_uid == sop_instance_uid:
                        path = image.source_path
            if path is None:
                for item in self.not_analyzed:
                    if item.sop_instance_uid == sop_instance_uid and item.path:
                        path = Path(item.path)
            if path is None:
                raise SourceUnavailable(f"no source path for image {sop_instance_uid}")
            try:
                cache[key] = pydicom.dcmread(path, stop_before_pixels=not pixels)
            except Exception as exc:  # unreadable or gone: the writers say "not analyzed"
                raise SourceUnavailable(
                    f"image {sop_instance_uid}: {type(exc).__name__} reading its file"
                ) from exc
        return cache[key]

    def any_source(self) -> Dataset:
        """A header of the study (for patient/study attributes), analyzed images first."""
        for uid in [a.score.sop_instance_uid for a in self.analyzed] + list(self.source_paths):
            try:
                return self.source(uid)
            except (KeyError, OSError):
                continue
        raise KeyError(f"study {self.study_uid}: no readable source instance")

    def uid(self, kind: str, image_uid: str | None = None, *, series: bool = False) -> str:
        """Deterministic UID of a result object (or its series) from (study, results version,
        model version, kind, image): a redelivered task writes the same UIDs (PS3.5 §B.2,
        UUID-derived ``2.25`` form)."""
        return result_uid(
            self.study_uid,
            self.task.study_version,
            self.provenance.model_version,
            kind,
            None if series else image_uid,
            series=series,
        )


def result_uid(
    study_uid: str,
    study_version: int,
    model_version: str,
    kind: str,
    image_uid: str | None = None,
    *,
    series: bool = False,
) -> str:
    """See :meth:`StudyResults.uid`."""
    if kind not in KINDS:
        raise ValueError(f"unknown result kind {kind!r} (one of {', '.join(KINDS)})")
    parts = [study_uid, str(study_version), model_version, kind, image_uid or "", "series" * series]
    # PS3.5 §B.2: a UUID in the 2.25 root; derived from the parts (pydicom's generate_uid
    # ignores entropy_srcs when prefix is None, so it is built here).
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
