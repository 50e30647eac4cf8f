"""What a worker does with one ``brgan.analyze_study`` task (DESIGN.md steps 6-7).

In: a :class:`plugin.queue.contract.StudyTask` (JSON; schema 2, or the previous release's
schema 1 during an upgrade). Out: a :class:`plugin.queue.contract.StudySummary` (JSON) through
the result backend, after the result objects (SR, CAD SR, heatmap and summary Secondary
Captures, …) are written atomically under ``<results>/<task id>/``.

Laterality, view and PatientOrientation come from the task, as the study rules decided them
(the image is never oriented by another laterality than it was paired by); without a
PatientOrientation the pixels decide. Scores (DESIGN.md step 6): breast = max of its images,
exam = max of breasts. An image that cannot be decoded is reported as not analyzed with the
reason (and so is its partner's pair), never dropped and never scored negative. The worker is
stateless: it never opens the index.
"""

from __future__ import annotations

import dataclasses
import errno
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from brgan_core import __version__
from brgan_core.card import WITHOUT_CONTRALATERAL_METRIC, may_score_without_contralateral
from brgan_core.checkpoint import CheckpointError
from brgan_core.errors import BrganCoreError
from brgan_core.registry import Registry
from plugin import metrics
from plugin.config import Settings
from plugin.errors import PluginError
from plugin.logging import get_logger
from plugin.queue.contract import (
    RESULTS_DISK_FULL,
    ContractError,
    ImageRef,
    ImageScore,
    NotAnalyzed,
    Provenance,
    StudySummary,
    StudyTask,
)

_MODELS: dict[tuple[str, str], Any] = {}
log = get_logger(__name__)


class PayloadError(ContractError):
    """The task payload is malformed (names the missing or wrong key)."""


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class ResultsDiskFullError(PluginError):
    """Writing heatmaps or result objects failed for want of space (ENOSPC/EDQUOT)."""


def get_model(settings: Settings, version: str, sha256: str) -> Any:
    """The named model version, loaded once per worker process, hash verified. A newly
    activated version arrives by name in the next task, so no restart is needed."""
    from brgan_core.inference import load_model

    key = (version, sha256)
    if key not in _MODELS:
        entry = Registry(settings.registry_path).get(version)
        if entry.sha256 != sha256:
            raise CheckpointError(
                f"model {version}: task asks for sha256 {sha256[:12]}… but this worker's "
                f"registry has {entry.sha256[:12]}…; the registries differ — refusing"
            )
        _, path = Registry(settings.registry_path).resolve(version)
        _MODELS.clear()  # one model in memory at a time
        loading = time.perf_counter()
        _MODELS[key] = load_model(path, sha256, version, settings.device)
        metrics.worker_model_loaded(version, time.perf_counter() - loading)
    return _MODELS[key]


def provenance_for(loaded: Any, settings: Settings) -> Provenance:
    """The one provenance object of every output of this model (issue 9 §1)."""
    from brgan_core.model import BRGANConfig

    config = BRGANConfig.from_dict(loaded.info.model_config)
    return Provenance(
        model_name=f"{config.bilateral}/{config.backbone}",
        model_version=loaded.version,
        sha256=loaded.sha256,
        research_only=bool(loaded.info.research_only),
        synthetic_training=bool(loaded.info.synthetic_training),
        uses_contralateral=bool(config.needs_contralateral_at_inference),
        threshold=loaded.info.threshold,
        manufacturer=settings.manufacturer,
        manufacturer_model_name=settings.manufacturer_model_name,
        software_version=__version__,
        device_uid=settings.device_uid,
    )


_OTHER = {"L": "R", "R": "L"}


def without_contralateral_caution(info: Any, why: str) -> str:
    """What every result object says about a target scored alone (issue 11 §4): why, and how
    the model did on validation images scored so (AUC; sensitivity at its threshold, which was
    fitted with contralaterals)."""
    metrics = info.metrics
    auc = metrics.get(WITHOUT_CONTRALATERAL_METRIC)
    sensitivity = metrics.get("val_sensitivity_without_contralateral")
    measured = f"validation AUC {auc:.3f}" if isinstance(auc, int | float) else "not measured"
    if isinstance(sensitivity, int | float):
        measured += f", sensitivity {100 * sensitivity:.0f} % at the threshold"
    return (
        f"no contralateral view available ({why}): scored from this image alone "
        f"(images scored so: {measured})"
    )


def aggregate(images: list[ImageScore]) -> tuple[dict[str, float | None], float | None]:
    """Breast score = max of its images; exam score = max of breasts (DESIGN.md step 6)."""
    breasts: dict[str, float | None] = {"L": None, "R": None}
    for image in images:
        current = breasts.get(image.laterality)
        breasts[image.laterality] = (
            image.p_malignant if current is None else max(current, image.p_malignant)
        )
    scored = [p for p in breasts.values() if p is not None]
    return breasts, (max(scored) if scored else None)


def _save_heatmap(cam_original: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    Image.fromarray(np.clip(cam_original * 255.0 + 0.5, 0, 255).astype(np.uint8)).save(tmp)
    tmp.replace(path)


UNWRITABLE = "its header cannot be written into the result objects"


def _without_unwritable_sources(results: Any, settings: Settings) -> Any:
    """``results`` without the source images whose headers break the result writers (issue 13
    §2: a missing SeriesInstanceUID, a malformed PatientOrientation, a sequence nested too deep
    for pydicom, … in one image failed the whole task, so no image of the study had an
    outcome). Each image is tried on its own; one that fails is no longer referenced (its
    path dropped): an analyzed one becomes not analyzed with :data:`UNWRITABLE` and the
    exception type (never its message, which may quote attribute values), a not-analyzed one
    keeps its reason with that note. Scores are aggregated again without the dropped images."""
    import dataclasses

    from plugin.results.writer import build_objects, encode

    probe_settings = settings.model_copy(update={"write_not_analyzed_sr": True})

    def why(**one: Any) -> str | None:
        probe = dataclasses.replace(results, **one)
        try:
            for _kind, _uid, ds in build_objects(probe, probe_settings):
                encode(ds)
        except Exception as exc:
            log.warning("source_header_unwritable", error=type(exc).__name__)
            return f"{UNWRITABLE} ({type(exc).__name__})"
        return None

    analyzed, not_analyzed = [], []
    dropped: set[str] = set()
    for image in results.analyzed:
        breasts, exam = aggregate([image.score])
        problem = why(analyzed=(image,), not_analyzed=(), breasts=breasts, exam=exam)
        if problem is None:
            analyzed.append(image)
            continue
        score = image.score
        dropped.add(score.sop_instance_uid)
        not_analyzed.append(
            NotAnalyzed(score.sop_instance_uid, problem, None, score.laterality, score.view)
        )
        Path(score.heatmap_path).unlink(missing_ok=True)
    for item in results.not_analyzed:
        problem = None if item.path is None else why(analyzed=(), not_analyzed=(item,))
        if problem is None:
            not_analyzed.append(item)
            continue
        dropped.add(item.sop_instance_uid)
        not_analyzed.append(
            dataclasses.replace(item, reason=f"{item.reason}; {problem}", path=None)
        )
    sources = {uid: p for uid, p in results.source_paths.items() if uid not in dropped}
    breasts, exam = aggregate([a.score for a in analyzed])
    return dataclasses.replace(
        results,
        analyzed=tuple(analyzed),
        not_analyzed=tuple(not_analyzed),
        breasts=breasts,
        exam=exam,
        source_paths=sources,
    )


def analyze_study_payload(
    payload: dict[str, Any], settings: Settings, task_id: str | None = None
) -> dict[str, Any]:
    """Score every pair of a study, write its result objects, return the summary's JSON."""
    started = time.perf_counter()
    try:
        task = StudyTask.from_json(payload)
    except ContractError as exc:
        raise PayloadError(f"analyze_study payload: {exc}") from exc
    loaded = get_model(settings, task.model.version, task.model.sha256)
    out_dir = settings.results_path / (task_id or f"untracked-{task.study_version}")
    # A task id may run twice (a re-sent task): an earlier run's complete result set stays.
    earlier = out_dir.is_dir() and any(out_dir.iterdir())
    try:
        return run_task(task, loaded, settings, out_dir, task_id, started=started).to_json()
    except OSError as exc:
        if exc.errno not in _DISK_FULL_ERRNOS:
            raise
        # Every file is written to a temporary name and renamed when whole, so what failed
        # left only temporary files: remove them, and the whole folder when this attempt made
        # it (the outbox never sees a partial set). The coordinator sends the study again once
        # ``disk_full_retry`` has passed.
        if earlier:
            for leftover in out_dir.glob("*.tmp*"):
                leftover.unlink(missing_ok=True)
            for leftover in out_dir.glob(".*.tmp"):
                leftover.unlink(missing_ok=True)
        else:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise ResultsDiskFullError(
            f"{RESULTS_DISK_FULL}: {exc.strerror} under {settings.results_path}; the study "
            "is retried"
        ) from None


def run_task(
    task: StudyTask,
    loaded: Any,
    settings: Settings,
    out_dir: Path,
    task_id: str | None = None,
    *,
    started: float | None = None,
) -> StudySummary:
    """The analysis proper, shared by the worker and ``brgan analyze`` (no queue, no index)."""
    from brgan_core.inference import score_pair
    from brgan_core.preprocess import preprocess
    from plugin.results.inputs import AnalyzedImage, StudyResults
    from plugin.results.writer import write_results

    started = time.perf_counter() if started is None else started
    provenance = provenance_for(loaded, settings)
    load_s = time.perf_counter() - started

    prepared: dict[str, Any] = {}
    failures: dict[str, str] = {}
    timings = {"preprocess_s": 0.0, "predict_s": 0.0}

    def prepare(ref: ImageRef) -> Any:
        uid = ref.sop_instance_uid
        if uid not in prepared and uid not in failures:
            t0 = time.perf_counter()
            try:
                prepared[uid] = preprocess(
                    Path(ref.path),
                    size=loaded.input_size,
                    laterality=ref.laterality,
                    view=ref.view,
                    patient_orientation=ref.patient_orientation,
                )
            except (BrganCoreError, OSError) as exc:
                failures[uid] = f"cannot decode image: {getattr(exc, 'reason', exc)}"
            timings["preprocess_s"] += time.perf_counter() - t0
        return prepared.get(uid)

    analyzed: list[AnalyzedImage] = []
    not_analyzed: list[NotAnalyzed] = list(task.not_analyzed)
    threshold = loaded.info.threshold
    alone_ok = may_score_without_contralateral(loaded.info)
    for pair in task.pairs:
        ref = pair.target
        if pair.contralateral is None and not alone_ok:
            # The plan was made for a model evaluated without contralaterals; this one was not.
            not_analyzed.append(
                NotAnalyzed(
                    ref.sop_instance_uid,
                    f"no contralateral view (no {_OTHER[ref.laterality]} {ref.view}; model "
                    f"{loaded.version} was not evaluated without one)",
                    ref.path,
                    ref.laterality,
                    ref.view,
                )
            )
            continue
        target = prepare(ref)
        contra = None if pair.contralateral is None else prepare(pair.contralateral)
        alone_why: str | None = None
        if pair.contralateral is None:
            alone_why = f"no {_OTHER.get(ref.laterality, '?')} {ref.view} in the study"
        elif target is not None and contra is None and alone_ok:
            alone_why = f"the {_OTHER.get(ref.laterality, '?')} {ref.view} could not be decoded"
        if target is None or (contra is None and alone_why is None):
            reason = failures.get(ref.sop_instance_uid) or (
                "contralateral view could not be decoded: "
                + failures.get(
                    pair.contralateral.sop_instance_uid if pair.contralateral else "",
                    "unknown reason",
                )
            )
            not_analyzed.append(
                NotAnalyzed(ref.sop_instance_uid, reason, ref.path, ref.laterality, ref.view)
            )
            continue
        t0 = time.perf_counter()
        score = score_pair(loaded, target, None if alone_why else contra)
        timings["predict_s"] += time.perf_counter() - t0
        warnings: tuple[str, ...] = ()
        guard = getattr(loaded, "guard", None)
        if (
            guard is not None
            and settings.shift_guard != "off"
            and score.shift_distance is not None
            and score.shift_distance > guard.threshold
        ):
            reason = guard.reason(score.shift_distance)
            if settings.shift_guard == "refuse":
                not_analyzed.append(
                    NotAnalyzed(ref.sop_instance_uid, reason, ref.path, ref.laterality, ref.view)
                )
                continue
            warnings = (f"analyzed although {reason}",)
        if alone_why is not None:
            warnings = (*warnings, without_contralateral_caution(loaded.info, alone_why))
        heatmap = out_dir / f"heatmap-{len(analyzed):02d}.png"
        _save_heatmap(score.cam_original, heatmap)
        image = ImageScore(
            sop_instance_uid=ref.sop_instance_uid,
            contralateral_uid=(
                None
                if alone_why or pair.contralateral is None
                else pair.contralateral.sop_instance_uid
            ),
            laterality=ref.laterality,
            view=ref.view,
            p_malignant=score.p_malignant,
            positive=None if threshold is None else bool(score.p_malignant >= threshold),
            region=score.outline,
            peak=score.peak,
            heatmap_path=str(heatmap),
            warnings=warnings,
        )
        analyzed.append(AnalyzedImage(image, score.cam_original, Path(ref.path)))
    scores = [a.score for a in analyzed]
    if provenance.uses_contralateral and not any(s.contralateral_uid for s in scores):
        # every image of this study was scored alone: its objects must not say otherwise
        provenance = dataclasses.replace(provenance, uses_contralateral=False)
    breasts, exam = aggregate(scores)
    sources = {uid: Path(ref.path) for uid, ref in task.images().items()}
    sources.update({n.sop_instance_uid: Path(n.path) for n in not_analyzed if n.path})
    results = StudyResults(
        task=task,
        provenance=provenance,
        analyzed=tuple(analyzed),
        not_analyzed=tuple(not_analyzed),
        breasts=breasts,
        exam=exam,
        source_paths=sources,
    )
    t0 = time.perf_counter()
    try:
        files = write_results(results, settings, out_dir)
    except Exception:  # a source header the writers cannot use must not fail the whole study
        results = _without_unwritable_sources(results, settings)
        files = write_results(results, settings, out_dir) if results.source_paths else []
        analyzed, not_analyzed = list(results.analyzed), list(results.not_analyzed)
        scores = [a.score for a in analyzed]
        breasts, exam = results.breasts, results.exam
    timings["write_s"] = time.perf_counter() - t0
    summary = StudySummary(
        study_uid=task.study_uid,
        study_version=task.study_version,
        task_id=task_id,
        provenance=provenance,
        images=tuple(scores),
        not_analyzed=tuple(not_analyzed),
        breasts=breasts,
        exam=exam,
        result_files=tuple(files),
        timings={
            "load_model_s": round(load_s, 4),
            **{k: round(v, 4) for k, v in timings.items()},
            "total_s": round(time.perf_counter() - started, 4),
        },
    )
    return summary
