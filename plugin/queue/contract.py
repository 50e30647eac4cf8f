"""The coordinator ↔ worker contract: what a task carries and what comes back (DESIGN.md step 5).

Frozen types that validate on construction and in ``from_json``: a missing or mistyped key
raises :class:`ContractError` naming it, never a silent default. Both processes import this
module; it imports neither torch nor anything of ``plugin.worker``.

* :class:`StudyTask` — the ``brgan.analyze_study`` payload (schema 2, or 3 when a target is
  scored without a contralateral): the study version, when it
  was queued (the result objects' Content Date/Time, so a redelivered task writes
  byte-identical objects), the model, the pairs with each image's spool path, laterality, view
  and PatientOrientation *as the study rules decided them*, the plan's not-analyzed images with
  their reasons, the result objects this version supersedes, and room for a shadow model.
  :meth:`StudyTask.from_json` also accepts the schema-1 payload of the previous release (during
  a rolling upgrade) and upgrades it.
* :class:`Provenance` — the one object every output's labels and equipment attributes come from.
* :class:`StudySummary` — what a worker returns: scores, regions, result files, timings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plugin.errors import PluginError

TASK_SCHEMA = 2
#: The schema of a task with a target scored without a contralateral (``TaskPair.contralateral``
#: None); a task without one stays schema 2, so a worker of the previous release still takes it.
UNPAIRED_TASK_SCHEMA = 3
SUMMARY_SCHEMA = 2
#: Schemas of the payload a worker still accepts (the previous release's coordinator sends 1).
ACCEPTED_TASK_SCHEMAS = frozenset({1, 2, 3})

RESEARCH_LABEL = "FOR RESEARCH USE ONLY"
#: The first words of the error of a task stopped by a full results disk (the worker raises it,
#: the coordinator sends such a study again after ``disk_full_retry`` instead of failing it).
RESULTS_DISK_FULL = "results disk full"
DEMO_LABEL = "DEMO MODEL - synthetic training data, not for clinical use"


class ContractError(PluginError, ValueError):
    """A task or summary does not match the contract; the message names the key."""


# -- validation helpers --------------------------------------------------------------------------


def _get(data: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(data, dict):
        raise ContractError(f"{where}: expected an object, got {type(data).__name__}")
    if key not in data:
        raise ContractError(f"{where}: missing key {key!r}")
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ContractError(f"{where}: {key!r} must be {names}, got {type(value).__name__}")
    return value


def _opt(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if data.get(key) is None:
        return None
    return _get(data, key, kind, where)


def _text(value: str, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ContractError(f"{name} must be a non-empty string")
    return value


def _side(value: str | None, name: str) -> None:
    if value not in ("L", "R"):
        raise ContractError(f"{name} must be 'L' or 'R', got {value!r}")


# -- the task ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """A registered model version and the sha256 of its checkpoint (the worker verifies it)."""

    version: str
    sha256: str

    def __post_init__(self) -> None:
        _text(self.version, "model version")
        if len(self.sha256) != 64:
            raise ContractError(f"model {self.version}: sha256 must be 64 hex characters")

    def to_json(self) -> dict[str, str]:
        return {"version": self.version, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: Any, where: str = "model") -> ModelRef:
        return cls(_get(data, "version", str, where), _get(data, "sha256", str, where))


@dataclass(frozen=True)
class ImageRef:
    """One image of a pair: where it is, and laterality/view/orientation as pairing decided."""

    sop_instance_uid: str
    path: str
    laterality: str
    view: str
    #: PatientOrientation (0020,0020) row and column directions, e.g. ("A", "R"); None when the
    #: header has none (the worker then falls back to the pixels).
    patient_orientation: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        _text(self.sop_instance_uid, "sop_instance_uid")
        _text(self.path, f"image {self.sop_instance_uid}: path")
        _side(self.laterality, f"image {self.sop_instance_uid}: laterality")
        _text(self.view, f"image {self.sop_instance_uid}: view")
        po = self.patient_orientation
        if po is not None and (len(po) != 2 or not all(isinstance(v, str) and v for v in po)):
            raise ContractError(
                f"image {self.sop_instance_uid}: patient_orientation needs 2 values"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "sop_instance_uid": self.sop_instance_uid,
            "path": self.path,
            "laterality": self.laterality,
            "view": self.view,
            "patient_orientation": list(self.patient_orientation)
            if self.patient_orientation
            else None,
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> ImageRef:
        po = _opt(data, "patient_orientation", list, where)
        return cls(
            _get(data, "sop_instance_uid", str, where),
            _get(data, "path", str, where),
            _get(data, "laterality", str, where),
            _get(data, "view", str, where),
            (str(po[0]), str(po[1])) if po and len(po) == 2 else None,
        )


@dataclass(frozen=True)
class TaskPair:
    """A target image and its contralateral (same view, other breast), or None: a target the
    model scores alone (only planned for a model evaluated that way; schema 3)."""

    target: ImageRef
    contralateral: ImageRef | None

    def __post_init__(self) -> None:
        if self.contralateral is None:
            return
        if self.target.laterality == self.contralateral.laterality:
            raise ContractError(
                f"pair {self.target.sop_instance_uid}: contralateral has the same laterality"
            )
        if self.target.view != self.contralateral.view:
            raise ContractError(f"pair {self.target.sop_instance_uid}: views differ")

    def to_json(self) -> dict[str, Any]:
        contralateral = None if self.contralateral is None else self.contralateral.to_json()
        return {"target": self.target.to_json(), "contralateral": contralateral}

    @classmethod
    def from_json(cls, data: Any, where: str, *, unpaired: bool = False) -> TaskPair:
        target = ImageRef.from_json(_get(data, "target", dict, where), f"{where}.target")
        if unpaired and isinstance(data, dict) and data.get("contralateral", ...) is None:
            return cls(target, None)
        return cls(
            target,
            ImageRef.from_json(_get(data, "contralateral", dict, where), f"{where}.contralateral"),
        )


@dataclass(frozen=True)
class NotAnalyzed:
    """An image the plan (or the worker) could not analyze, with the reason; ``path`` lets the
    result writers reference it (None when only the UID is known)."""

    sop_instance_uid: str
    reason: str
    path: str | None = None
    laterality: str | None = None
    view: str | None = None

    def __post_init__(self) -> None:
        _text(self.sop_instance_uid, "not analyzed sop_instance_uid")
        _text(self.reason, f"not analyzed {self.sop_instance_uid}: reason")

    def to_json(self) -> dict[str, Any]:
        return {
            "sop_instance_uid": self.sop_instance_uid,
            "reason": self.reason,
            "path": self.path,
            "laterality": self.laterality,
            "view": self.view,
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> NotAnalyzed:
        return cls(
            _get(data, "sop_instance_uid", str, where),
            _get(data, "reason", str, where),
            _opt(data, "path", str, where),
            _opt(data, "laterality", str, where),
            _opt(data, "view", str, where),
        )


@dataclass(frozen=True)
class StudyTask:
    """One ``brgan.analyze_study`` task (schema 2; 3 when a pair has no contralateral)."""

    study_uid: str
    study_version: int
    queued_at: float
    model: ModelRef
    pairs: tuple[TaskPair, ...]
    not_analyzed: tuple[NotAnalyzed, ...] = ()
    #: The result objects of earlier versions that this one replaces (Predecessor Documents,
    #: IOCM rejection).
    supersedes: tuple[ResultFile, ...] = ()
    #: A candidate model run beside the active one (its results are kept, never sent).
    shadow_model: ModelRef | None = None
    schema: int = TASK_SCHEMA

    def __post_init__(self) -> None:
        _text(self.study_uid, "study_uid")
        if self.study_version < 1:
            raise ContractError(f"study {self.study_uid}: study_version must be >= 1")
        if self.queued_at <= 0:
            raise ContractError(f"study {self.study_uid}: queued_at must be a POSIX time")
        targets = [p.target.sop_instance_uid for p in self.pairs]
        if len(set(targets)) != len(targets):
            raise ContractError(f"study {self.study_uid}: a target appears in two pairs")

    def images(self) -> dict[str, ImageRef]:
        """Every image of the pairs by SOP Instance UID."""
        out: dict[str, ImageRef] = {}
        for pair in self.pairs:
            out[pair.target.sop_instance_uid] = pair.target
            if pair.contralateral is not None:
                out[pair.contralateral.sop_instance_uid] = pair.contralateral
        return out

    def to_json(self) -> dict[str, Any]:
        unpaired = any(p.contralateral is None for p in self.pairs)
        return {
            "schema": max(self.schema, UNPAIRED_TASK_SCHEMA) if unpaired else self.schema,
            "study_uid": self.study_uid,
            "study_version": self.study_version,
            "queued_at": self.queued_at,
            "model": self.model.to_json(),
            "pairs": [p.to_json() for p in self.pairs],
            "not_analyzed": [n.to_json() for n in self.not_analyzed],
            "supersedes": [r.to_json() for r in self.supersedes],
            "shadow_model": self.shadow_model.to_json() if self.shadow_model else None,
        }

    @classmethod
    def from_json(cls, data: Any) -> StudyTask:
        schema = _get(data, "schema", int, "task")
        if schema not in ACCEPTED_TASK_SCHEMAS:
            raise ContractError(f"task: schema {schema} is not supported (accepts 1 to 3)")
        if schema == 1:
            return _from_schema_1(data)
        unpaired = schema >= UNPAIRED_TASK_SCHEMA
        shadow = data.get("shadow_model")
        return cls(
            study_uid=_get(data, "study_uid", str, "task"),
            study_version=_get(data, "study_version", int, "task"),
            queued_at=_get(data, "queued_at", float, "task"),
            model=ModelRef.from_json(_get(data, "model", dict, "task")),
            pairs=tuple(
                TaskPair.from_json(p, f"task.pairs[{i}]", unpaired=unpaired)
                for i, p in enumerate(_get(data, "pairs", list, "task"))
            ),
            not_analyzed=tuple(
                NotAnalyzed.from_json(n, f"task.not_analyzed[{i}]")
                for i, n in enumerate(_get(data, "not_analyzed", list, "task"))
            ),
            supersedes=tuple(
                ResultFile.from_json(r, f"task.supersedes[{i}]")
                for i, r in enumerate(_get(data, "supersedes", list, "task"))
            ),
            shadow_model=ModelRef.from_json(shadow, "shadow_model") if shadow else None,
        )


def _from_schema_1(data: dict[str, Any]) -> StudyTask:
    """The previous release's payload: pairs without orientation, no queue time."""
    pairs = []
    for i, raw in enumerate(_get(data, "pairs", list, "task")):
        where = f"task.pairs[{i}]"
        laterality = _get(raw, "laterality", str, where)
        view = _get(raw, "view", str, where)
        other = {"L": "R", "R": "L"}.get(laterality, laterality)
        target = _get(raw, "target", dict, where)
        contra = _get(raw, "contralateral", dict, where)
        pairs.append(
            TaskPair(
                ImageRef(
                    _get(target, "sop_instance_uid", str, where),
                    _get(target, "path", str, where),
                    laterality,
                    view,
                ),
                ImageRef(
                    _get(contra, "sop_instance_uid", str, where),
                    _get(contra, "path", str, where),
                    other,
                    view,
                ),
            )
        )
    return StudyTask(
        study_uid=_get(data, "study_uid", str, "task"),
        study_version=int(data.get("study_version", 1)),
        queued_at=1.0,  # unknown: the epoch's first second, the same on every redelivery
        model=ModelRef.from_json(_get(data, "model", dict, "task")),
        pairs=tuple(pairs),
        schema=1,
    )


# -- provenance ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provenance:
    """Who made a result: the model, how it may be used, and our equipment identity."""

    model_name: str
    model_version: str
    sha256: str
    research_only: bool
    synthetic_training: bool
    uses_contralateral: bool
    threshold: float | None
    manufacturer: str
    manufacturer_model_name: str
    software_version: str
    device_uid: str

    def __post_init__(self) -> None:
        for name in ("model_name", "model_version", "manufacturer", "manufacturer_model_name"):
            _text(getattr(self, name), name)
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ContractError(f"threshold {self.threshold} is not a probability")

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels every object and output carries (issue 9 §2: one rule for all)."""
        out: list[str] = []
        if self.research_only or self.synthetic_training:
            out.append(RESEARCH_LABEL)
        if self.synthetic_training:
            out.append(DEMO_LABEL)
        return tuple(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "sha256": self.sha256,
            "research_only": self.research_only,
            "synthetic_training": self.synthetic_training,
            "uses_contralateral": self.uses_contralateral,
            "threshold": self.threshold,
            "manufacturer": self.manufacturer,
            "manufacturer_model_name": self.manufacturer_model_name,
            "software_version": self.software_version,
            "device_uid": self.device_uid,
        }

    @classmethod
    def from_json(cls, data: Any) -> Provenance:
        w = "provenance"
        return cls(
            model_name=_get(data, "model_name", str, w),
            model_version=_get(data, "model_version", str, w),
            sha256=_get(data, "sha256", str, w),
            research_only=_get(data, "research_only", bool, w),
            synthetic_training=_get(data, "synthetic_training", bool, w),
            uses_contralateral=_get(data, "uses_contralateral", bool, w),
            threshold=_opt(data, "threshold", float, w),
            manufacturer=_get(data, "manufacturer", str, w),
            manufacturer_model_name=_get(data, "manufacturer_model_name", str, w),
            software_version=_get(data, "software_version", str, w),
            device_uid=_get(data, "device_uid", str, w),
        )


# -- the summary ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageScore:
    """One analyzed target image. Coordinates are (column, row) on the stored pixel grid."""

    sop_instance_uid: str
    #: None: scored without a contralateral (the warnings say so).
    contralateral_uid: str | None
    laterality: str
    view: str
    p_malignant: float
    positive: bool | None
    #: Closed outline of the CAM region (>= 50 % of the peak, around it); None if the CAM is 0.
    region: tuple[tuple[float, float], ...] | None
    #: The CAM peak.
    peak: tuple[float, float] | None
    heatmap_path: str | None = None
    #: Caveats every result object repeats (e.g. outside the training distribution, warn mode).
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _side(self.laterality, f"image {self.sop_instance_uid}: laterality")
        if not 0.0 <= self.p_malignant <= 1.0:
            raise ContractError(f"image {self.sop_instance_uid}: p_malignant out of [0, 1]")

    def to_json(self) -> dict[str, Any]:
        return {
            "sop_instance_uid": self.sop_instance_uid,
            "contralateral_uid": self.contralateral_uid,
            "laterality": self.laterality,
            "view": self.view,
            "p_malignant": self.p_malignant,
            "positive": self.positive,
            "region": [list(p) for p in self.region] if self.region else None,
            "peak": list(self.peak) if self.peak else None,
            "heatmap_path": self.heatmap_path,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> ImageScore:
        region = _opt(data, "region", list, where)
        peak = _opt(data, "peak", list, where)
        return cls(
            sop_instance_uid=_get(data, "sop_instance_uid", str, where),
            contralateral_uid=_get(data, "contralateral_uid", (str, type(None)), where),
            laterality=_get(data, "laterality", str, where),
            view=_get(data, "view", str, where),
            p_malignant=_get(data, "p_malignant", float, where),
            positive=_opt(data, "positive", bool, where),
            region=tuple((float(x), float(y)) for x, y in region) if region else None,
            peak=(float(peak[0]), float(peak[1])) if peak else None,
            heatmap_path=_opt(data, "heatmap_path", str, where),
            warnings=tuple(str(w) for w in (_opt(data, "warnings", list, where) or ())),
        )


@dataclass(frozen=True)
class ResultFile:
    """One result object written by the worker."""

    kind: str  # tid1500_sr | cad_sr | heatmap_sc | summary_sc | kos | seg
    path: str
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    source_uid: str | None = None  # the image it belongs to (heatmaps), else None
    sha256: str | None = None  # of the file's bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "sop_instance_uid": self.sop_instance_uid,
            "sop_class_uid": self.sop_class_uid,
            "series_instance_uid": self.series_instance_uid,
            "source_uid": self.source_uid,
            "sha256": self.sha256,
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> ResultFile:
        return cls(
            _get(data, "kind", str, where),
            _get(data, "path", str, where),
            _get(data, "sop_instance_uid", str, where),
            _get(data, "sop_class_uid", str, where),
            _get(data, "series_instance_uid", str, where),
            _opt(data, "source_uid", str, where),
            _opt(data, "sha256", str, where),
        )


@dataclass(frozen=True)
class StudySummary:
    """What the worker returns through the result backend (the one channel back)."""

    study_uid: str
    study_version: int
    task_id: str | None
    provenance: Provenance
    images: tuple[ImageScore, ...]
    not_analyzed: tuple[NotAnalyzed, ...]
    breasts: dict[str, float | None]
    exam: float | None
    result_files: tuple[ResultFile, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    schema: int = SUMMARY_SCHEMA

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "study_uid": self.study_uid,
            "study_version": self.study_version,
            "task_id": self.task_id,
            "provenance": self.provenance.to_json(),
            "images": [i.to_json() for i in self.images],
            "not_analyzed": [n.to_json() for n in self.not_analyzed],
            "breasts": dict(self.breasts),
            "exam": self.exam,
            "result_files": [r.to_json() for r in self.result_files],
            "timings": dict(self.timings),
        }

    @classmethod
    def from_json(cls, data: Any) -> StudySummary:
        w = "summary"
        schema = _get(data, "schema", int, w)
        if schema != SUMMARY_SCHEMA:
            raise ContractError(f"summary: schema {schema} is not supported (expects 2)")
        breasts = _get(data, "breasts", dict, w)
        return cls(
            study_uid=_get(data, "study_uid", str, w),
            study_version=_get(data, "study_version", int, w),
            task_id=_opt(data, "task_id", str, w),
            provenance=Provenance.from_json(_get(data, "provenance", dict, w)),
            images=tuple(
                ImageScore.from_json(d, f"summary.images[{i}]")
                for i, d in enumerate(_get(data, "images", list, w))
            ),
            not_analyzed=tuple(
                NotAnalyzed.from_json(d, f"summary.not_analyzed[{i}]")
                for i, d in enumerate(_get(data, "not_analyzed", list, w))
            ),
            breasts={str(k): (None if v is None else float(v)) for k, v in breasts.items()},
            exam=_opt(data, "exam", float, w),
            result_files=tuple(
                ResultFile.from_json(d, f"summary.result_files[{i}]")
                for i, d in enumerate(_get(data, "result_files", list, w))
            ),
            timings={str(k): float(v) for k, v in _get(data, "timings", dict, w).items()},
        )
