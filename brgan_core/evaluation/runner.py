"""Evaluate and calibrate BR-GAN checkpoints on pairs: the library behind ``brgan evaluate``.

The metric modules of this package take arrays; this module produces them from a model and a
dataset of pairs, and turns them into one result per checkpoint.

* :func:`predict_pairs` (in :mod:`.predictions`, re-exported here) — one pass of
  :meth:`BRGAN.predict` over a dataset: labels, the *raw* {benign, malignant} logits (captured
  from the classification layer, before the model's temperature), p(malignant) as the model
  reports it, CAMs on the feature grid, ground-truth boxes in model-input pixels (mapped through
  each image's preprocessing :class:`~brgan_core.preprocess.Geometry`) and, optionally, the
  features behind the paper's FIDs (f_T, f_C and f_H = G_T2C(f_T), captured with forward hooks;
  model code is not touched).
* :func:`calibrate_predictions` — temperature scaling and the operating threshold on
  *validation* predictions (DESIGN.md: the threshold is chosen on validation at a stated
  sensitivity, default 0.90, after temperature scaling).
* :func:`evaluate_checkpoint` — calibration on validation, every metric on test: image-wise AUC
  with a stratified bootstrap 95% CI, ECE before/after temperature scaling, the validation
  threshold's sensitivity and specificity on test, CAM top-1 localization error at IoU 0.1
  (ILSVRC style, Table 2), mean FIDs (Sect. 3.2), and with ``compare`` the DeLong test between
  two checkpoints on the same test images.
* :func:`calibrate_checkpoint` / :func:`write_calibrated_checkpoint` — a new checkpoint file with
  the fitted temperature (in its metadata *and* its ``temperature`` buffer, so ``predict`` returns
  calibrated probabilities) and the threshold and validation metrics in its metadata: the file
  an admin registers with ``brgan models register``.

Probabilities used for the threshold are computed exactly as :meth:`BRGAN.predict` computes them
(float32 softmax of the raw logits divided by the temperature), so the stored threshold compared
with the service's ``p_malignant`` reproduces the validation operating point. The stored threshold
is the midpoint between the validation score that reaches the target sensitivity and the next
lower validation score: every threshold in that gap gives the same validation sensitivity and
specificity, and the midpoint leaves a margin for floating-point differences between machines.

The files (report, plots, metrics.json) are written by :mod:`brgan_core.evaluation.outputs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from brgan_core.card import WITHOUT_CONTRALATERAL_METRIC
from brgan_core.checkpoint import CheckpointInfo, load_checkpoint, save_checkpoint, sha256_file
from brgan_core.data.records import PairRecord
from brgan_core.evaluation.auc import AucResult, DelongResult, bootstrap_auc, delong_test, roc_auc
from brgan_core.evaluation.calibration import (
    Calibration,
    OperatingPoint,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
)
from brgan_core.evaluation.localization import LocalizationResult, localization_error
from brgan_core.evaluation.predictions import (
    FID_PAIRS,
    EvaluationError,
    FeatureSummary,
    GeometryRecorder,
    Predictions,
    ProgressFn,
    eval_dataset,
    predict_pairs,
)

if TYPE_CHECKING:
    from brgan_core.model import BRGAN
    from brgan_core.training.dataset import Loader

__all__ = [
    "FID_PAIRS",
    "CalibratedCheckpoint",
    "EvaluationError",
    "EvaluationResult",
    "FeatureSummary",
    "GeometryRecorder",
    "ModelResult",
    "Predictions",
    "ProgressFn",
    "calibrate_checkpoint",
    "calibrate_predictions",
    "eval_dataset",
    "evaluate_checkpoint",
    "load_checkpoint_model",
    "model_names",
    "model_size",
    "predict_pairs",
    "write_calibrated_checkpoint",
]


# -- calibration --------------------------------------------------------------------------------


def _check_classes(labels: NDArray, what: str) -> None:
    if labels.size == 0 or labels.all() or not labels.any():
        raise EvaluationError(
            f"{what} has {int(labels.sum())} malignant and {int((labels == 0).sum())} benign "
            "images; it needs both (use more patients or another split seed)"
        )


def _with_margin(op: OperatingPoint, y: NDArray, p: NDArray) -> OperatingPoint:
    """Lower the threshold to the midpoint of the gap below it (same validation operating point)."""
    below = p[p < op.threshold]
    threshold = (op.threshold + float(below.max())) / 2 if below.size else op.threshold / 2
    called = p >= threshold
    positive = y.astype(bool)
    moved = replace(
        op,
        threshold=threshold,
        sensitivity=float(called[positive].mean()),
        specificity=float((~called[~positive]).mean()),
    )
    assert (moved.sensitivity, moved.specificity) == (op.sensitivity, op.specificity)
    return moved


def calibrate_predictions(
    val: Predictions, *, sensitivity: float = 0.90, n_bins: int = 10
) -> Calibration:
    """Temperature (NLL on validation logits) and the threshold at ``sensitivity``.

    ECEs are on the validation images: before (temperature 1) and after scaling.
    """
    _check_classes(val.labels, "the validation split")
    temperature = fit_temperature(val.logits, val.labels)
    calibrated = val.calibrated(temperature)
    op = _with_margin(choose_threshold(val.labels, calibrated, sensitivity), val.labels, calibrated)
    return Calibration(
        temperature=temperature,
        operating_point=op,
        ece_before=expected_calibration_error(val.labels, val.calibrated(1.0), n_bins),
        ece_after=expected_calibration_error(val.labels, calibrated, n_bins),
        n_bins=n_bins,
    )


# -- checkpoints --------------------------------------------------------------------------------


def load_checkpoint_model(path: str | Path) -> tuple[BRGAN, CheckpointInfo]:
    """Build the model a checkpoint describes, with its weights (temperature buffer included)."""
    from brgan_core.checkpoint import CheckpointError
    from brgan_core.model import build_model

    state_dict, info = load_checkpoint(path)
    try:
        model = build_model(info.model_config)
        model.load_state_dict(state_dict, strict=True)
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot build the checkpoint's model: {exc}") from exc
    return model, info


def model_size(info: CheckpointInfo, source: str | Path) -> tuple[int, int]:
    """The model input size ``(rows, columns)`` stored with a checkpoint."""
    size = info.preprocessing.get("size")
    if not (isinstance(size, list | tuple) and len(size) == 2):
        raise EvaluationError(f"{source}: checkpoint has no preprocessing size")
    return int(size[0]), int(size[1])


@dataclass(frozen=True)
class CalibratedCheckpoint:
    """The file :func:`write_calibrated_checkpoint` wrote, and what it holds."""

    path: Path
    sha256: str
    calibration: Calibration
    val_auc: float
    val_n: int


def write_calibrated_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    calibration: Calibration,
    *,
    val_auc: float,
    val_n: int,
    extra_metrics: dict[str, float] | None = None,
) -> CalibratedCheckpoint:
    """Copy ``checkpoint`` to ``out`` with the temperature and threshold of ``calibration``.

    The temperature goes into the weights' ``temperature`` buffer (``predict`` divides the
    logits by it) and into the metadata; the threshold and the validation metrics (``auc``,
    ``val_ece_before``/``val_ece_after``, ``val_sensitivity``/``val_specificity``,
    ``target_sensitivity``, ``calibration_n``) into the metadata. Training metrics are kept.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    if out.resolve() == checkpoint.resolve():
        raise EvaluationError(f"{out}: write the calibrated checkpoint to a new file")
    model, info = load_checkpoint_model(checkpoint)
    model.set_temperature(calibration.temperature)
    op = calibration.operating_point
    metrics = dict(info.metrics)
    metrics.update(
        {
            "auc": val_auc,
            "val_auc": val_auc,
            "val_ece_before": calibration.ece_before,
            "val_ece_after": calibration.ece_after,
            "val_sensitivity": op.sensitivity,
            "val_specificity": op.specificity,
            "target_sensitivity": op.target_sensitivity,
            "calibration_n": val_n,
            "ece_bins": calibration.n_bins,
            **(extra_metrics or {}),
        }
    )
    note = (
        f"calibrated on {val_n} validation images: temperature {calibration.temperature:.4f}, "
        f"threshold {op.threshold:.6f} at target sensitivity {op.target_sensitivity:.2f} "
        f"(from {checkpoint.name}, sha256 {sha256_file(checkpoint)[:16]})"
    )
    new_info = replace(
        info,
        metrics=metrics,
        threshold=op.threshold,
        temperature=calibration.temperature,
        created="",
        notes=f"{info.notes}; {note}" if info.notes else note,
    )
    sha = save_checkpoint(out, model.state_dict(), new_info)
    return CalibratedCheckpoint(out, sha, calibration, val_auc, val_n)


def calibrate_checkpoint(
    checkpoint: str | Path,
    val_data: Sequence[PairRecord],
    sensitivity: float = 0.90,
    out: str | Path | None = None,
    *,
    batch_size: int = 8,
    device: str = "cpu",
    loader: Loader | None = None,
    n_bins: int = 10,
    progress: ProgressFn | None = None,
) -> CalibratedCheckpoint:
    """Fit temperature and threshold on validation pairs; write ``out`` (default
    ``<name>.calibrated.safetensors`` beside the checkpoint)."""
    checkpoint = Path(checkpoint)
    out = Path(out) if out is not None else checkpoint.with_suffix(".calibrated.safetensors")
    model, info = load_checkpoint_model(checkpoint)
    dataset = eval_dataset(val_data, model_size(info, checkpoint), loader=loader)
    val = predict_pairs(
        model,
        dataset,
        batch_size=batch_size,
        device=device,
        progress=progress,
        stage=f"validation {checkpoint.name}",
    )
    calibration = calibrate_predictions(val, sensitivity=sensitivity, n_bins=n_bins)
    extra: dict[str, float] = {}
    if model.config.contralateral_branch:
        extra = without_contralateral_metrics(
            model, dataset, calibration, batch_size=batch_size, device=device, progress=progress
        )
    return write_calibrated_checkpoint(
        checkpoint,
        out,
        calibration,
        val_auc=roc_auc(val.labels, val.malignancy_logit),
        val_n=len(val),
        extra_metrics=extra,
    )


def without_contralateral_metrics(
    model: BRGAN,
    dataset: Any,
    calibration: Calibration,
    *,
    batch_size: int = 8,
    device: str = "cpu",
    progress: ProgressFn | None = None,
) -> dict[str, float]:
    """The validation images scored as if no contralateral were there (issue 11 §4): the AUC
    that lets the model card allow such images (``brgan_core.card``), and the sensitivity and
    specificity of the threshold fitted *with* contralaterals on those scores."""
    alone = predict_pairs(
        model,
        dataset,
        batch_size=batch_size,
        device=device,
        progress=progress,
        stage="validation without contralateral",
        contralateral=False,
    )
    op = calibration.operating_point
    called = alone.calibrated(calibration.temperature) >= op.threshold
    y = alone.labels.astype(bool)
    return {
        WITHOUT_CONTRALATERAL_METRIC: roc_auc(alone.labels, alone.malignancy_logit),
        "val_sensitivity_without_contralateral": float(called[y].mean()),
        "val_specificity_without_contralateral": float((~called[~y]).mean()),
    }


# -- evaluation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelResult:
    """Everything measured for one checkpoint (calibration on validation, metrics on test).

    ``calibration_source``: ``validation`` (fitted here), ``checkpoint`` (the temperature and
    threshold stored in the file) or ``none`` (no threshold: localization uses p ≥ 0.5).
    ``test_operating_point``: the validation threshold's sensitivity and specificity on test.
    """

    name: str
    checkpoint: str
    sha256: str
    model_config: dict[str, Any]
    test: Predictions
    auc: AucResult
    temperature: float
    threshold: float | None
    calibration_source: str
    calibration: Calibration | None
    val_auc: float | None
    val_n: int
    ece_before: float
    ece_after: float
    test_operating_point: OperatingPoint | None
    localization: LocalizationResult | None
    mean_fid: dict[str, float | None] = field(default_factory=dict)
    pooled_fid: dict[str, float | None] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: With the contralateral branch: the same test images scored without their contralateral.
    test_without_contralateral: Predictions | None = None
    auc_without_contralateral: AucResult | None = None

    @property
    def p_uncalibrated(self) -> NDArray[np.float64]:
        return self.test.calibrated(1.0)

    @property
    def p_calibrated(self) -> NDArray[np.float64]:
        return self.test.calibrated(self.temperature)

    @property
    def called_malignant(self) -> NDArray[np.bool_]:
        threshold = 0.5 if self.threshold is None else self.threshold
        return self.p_calibrated >= threshold

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-image arrays)."""
        return {
            "name": self.name,
            "checkpoint": self.checkpoint,
            "sha256": self.sha256,
            "model_config": self.model_config,
            "test_n": len(self.test),
            "auc": asdict(self.auc),
            "temperature": self.temperature,
            "threshold": self.threshold,
            "calibration_source": self.calibration_source,
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "val_auc": self.val_auc,
            "val_n": self.val_n,
            "test_ece_before": self.ece_before,
            "test_ece_after": self.ece_after,
            "test_operating_point": (
                None if self.test_operating_point is None else asdict(self.test_operating_point)
            ),
            "localization": None if self.localization is None else asdict(self.localization),
            "mean_fid": self.mean_fid,
            "pooled_fid": self.pooled_fid,
            "auc_without_contralateral": (
                None
                if self.auc_without_contralateral is None
                else asdict(self.auc_without_contralateral)
            ),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class EvaluationResult:
    """One or two checkpoints on the same test pairs; ``delong`` compares the first with the
    second (``auc1`` is the first model's)."""

    models: tuple[ModelResult, ...]
    delong: DelongResult | None
    sensitivity: float
    n_bins: int
    notes: tuple[str, ...] = ()

    @property
    def labels(self) -> NDArray[np.int64]:
        return self.models[0].test.labels

    def to_dict(self) -> dict[str, Any]:
        return {
            "sensitivity_target": self.sensitivity,
            "ece_bins": self.n_bins,
            "test_n": len(self.labels),
            "test_malignant": int(self.labels.sum()),
            "models": [m.to_dict() for m in self.models],
            "delong": None if self.delong is None else self.delong._asdict(),
            "notes": list(self.notes),
        }


def _test_operating_point(
    y: NDArray, p: NDArray, threshold: float, target: float
) -> OperatingPoint:
    called = p >= threshold
    positive = y.astype(bool)
    return OperatingPoint(
        threshold=threshold,
        sensitivity=float(called[positive].mean()),
        specificity=float((~called[~positive]).mean()),
        target_sensitivity=target,
    )


def _evaluate_model(
    name: str,
    path: Path,
    test_pairs: Sequence[PairRecord],
    val_pairs: Sequence[PairRecord] | None,
    datasets: dict[tuple[tuple[int, int], str], Any],
    *,
    sensitivity: float,
    batch_size: int,
    device: str,
    loader: Loader | None,
    features: bool,
    n_boot: int,
    seed: int,
    n_bins: int,
    progress: ProgressFn | None,
) -> ModelResult:
    model, info = load_checkpoint_model(path)
    size = model_size(info, path)

    def dataset(split: str, pairs: Sequence[PairRecord]) -> Any:
        if (size, split) not in datasets:
            datasets[(size, split)] = eval_dataset(pairs, size, loader=loader)
        return datasets[(size, split)]

    notes: list[str] = []
    calibration: Calibration | None = None
    val_auc: float | None = None
    val_n = 0
    if val_pairs:
        val = predict_pairs(
            model,
            dataset("val", val_pairs),
            batch_size=batch_size,
            device=device,
            progress=progress,
            stage=f"{name}: validation",
        )
        calibration = calibrate_predictions(val, sensitivity=sensitivity, n_bins=n_bins)
        val_auc, val_n = roc_auc(val.labels, val.malignancy_logit), len(val)
        temperature: float = calibration.temperature
        threshold: float | None = calibration.operating_point.threshold
        source = "validation"
    elif info.threshold is not None:
        temperature, threshold, source = info.temperature, info.threshold, "checkpoint"
        notes.append(
            f"{name}: temperature {temperature:.4f} and threshold {threshold:.4f} are the ones "
            "stored in the checkpoint (no validation data given)"
        )
    else:
        temperature, threshold, source = info.temperature, None, "none"
        notes.append(
            f"{name}: no validation data and no stored threshold — not calibrated here; "
            "localization counts an image as classified malignant when p ≥ 0.5"
        )

    test = predict_pairs(
        model,
        dataset("test", test_pairs),
        batch_size=batch_size,
        device=device,
        features=features,
        progress=progress,
        stage=f"{name}: test",
    )
    _check_classes(test.labels, "the evaluated split")
    y = test.labels
    auc = bootstrap_auc(y, test.malignancy_logit, n_boot=n_boot, seed=seed)
    p_cal = test.calibrated(temperature)
    op = None
    if threshold is not None:
        op = _test_operating_point(y, p_cal, threshold, sensitivity)
    called = p_cal >= (0.5 if threshold is None else threshold)
    localization = None
    if any(y[i] == 1 and test.boxes[i] for i in range(len(y))):
        localization = localization_error(
            list(test.cams),
            list(test.boxes),
            y,
            called.astype(np.int64),
            iou_threshold=0.1,
            image_shapes=[test.model_shape] * len(y),
        )
    else:
        notes.append(f"{name}: no malignant test image has a ground-truth box; no localization")
    alone: Predictions | None = None
    alone_auc: AucResult | None = None
    if model.config.contralateral_branch:
        alone = predict_pairs(
            model,
            dataset("test", test_pairs),
            batch_size=batch_size,
            device=device,
            progress=progress,
            stage=f"{name}: test without contralateral",
            contralateral=False,
        )
        alone_auc = bootstrap_auc(alone.labels, alone.malignancy_logit, n_boot=n_boot, seed=seed)
    mean_fid: dict[str, float | None] = {}
    pooled_fid: dict[str, float | None] = {}
    if test.features is not None:
        mean_fid = test.features.mean_fids()
        pooled_fid = test.features.pooled_fids()
    return ModelResult(
        name=name,
        checkpoint=str(path),
        sha256=sha256_file(path),
        model_config=info.model_config,
        test=test,
        auc=auc,
        temperature=temperature,
        threshold=threshold,
        calibration_source=source,
        calibration=calibration,
        val_auc=val_auc,
        val_n=val_n,
        ece_before=expected_calibration_error(y, test.calibrated(1.0), n_bins),
        ece_after=expected_calibration_error(y, p_cal, n_bins),
        test_operating_point=op,
        localization=localization,
        mean_fid=mean_fid,
        pooled_fid=pooled_fid,
        notes=tuple(notes),
        test_without_contralateral=alone,
        auc_without_contralateral=alone_auc,
    )


def model_names(paths: Sequence[Path]) -> list[str]:
    """Short, distinct names for checkpoints: the file stem, with parent folders if needed."""
    paths = [Path(p) for p in paths]
    for depth in range(1, 6):
        names = ["/".join(p.with_suffix("").parts[-depth:]) for p in paths]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def evaluate_checkpoint(
    checkpoint: str | Path,
    test_pairs: Sequence[PairRecord],
    val_pairs: Sequence[PairRecord] | None = None,
    *,
    compare: str | Path | None = None,
    sensitivity: float = 0.90,
    batch_size: int = 8,
    device: str = "cpu",
    loader: Loader | None = None,
    features: bool = True,
    n_boot: int = 2000,
    seed: int = 0,
    n_bins: int = 10,
    progress: ProgressFn | None = None,
) -> EvaluationResult:
    """Evaluate ``checkpoint`` (and ``compare``) on ``test_pairs``, calibrated on ``val_pairs``.

    Without ``val_pairs`` each checkpoint's stored temperature and threshold are used (a
    calibrated checkpoint), or none. Both checkpoints see the same test pairs (each at its own
    input size), so the DeLong test is paired.
    """
    if not 0 < sensitivity <= 1:
        raise EvaluationError(f"sensitivity must be in (0, 1], not {sensitivity}")
    if not test_pairs:
        raise EvaluationError("no test pairs to evaluate")
    paths = [Path(checkpoint)] + ([Path(compare)] if compare is not None else [])
    names = model_names(paths)
    datasets: dict[tuple[tuple[int, int], str], Any] = {}
    results = tuple(
        _evaluate_model(
            name,
            path,
            test_pairs,
            val_pairs,
            datasets,
            sensitivity=sensitivity,
            batch_size=batch_size,
            device=device,
            loader=loader,
            features=features,
            n_boot=n_boot,
            seed=seed,
            n_bins=n_bins,
            progress=progress,
        )
        for name, path in zip(names, paths, strict=True)
    )
    delong = None
    if len(results) == 2:
        a, b = results
        if a.test.ids != b.test.ids or not np.array_equal(a.test.labels, b.test.labels):
            raise EvaluationError("the two checkpoints were not scored on the same test images")
        delong = delong_test(a.test.labels, a.test.malignancy_logit, b.test.malignancy_logit)
    return EvaluationResult(results, delong, sensitivity, n_bins)
