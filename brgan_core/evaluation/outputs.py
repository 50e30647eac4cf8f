"""The files of an evaluation: ROC and reliability PNGs, ``report.md``, ``metrics.json`` and
``predictions.csv`` (:func:`write_outputs`, from an :class:`~.runner.EvaluationResult`).

``report.md`` starts with :func:`brgan_core.evaluation.report.markdown_report`'s table (AUC with
its CI, DeLong p, top-1 localization error, ECE after temperature scaling, and the validation
threshold's sensitivity/specificity on test), then the paper's Table 1 and Table 2 formats,
calibration, FIDs (Sect. 3.2), the notes and the plots. ``predictions.csv`` has one row per model
and test image, so every number can be recomputed (e.g. the AUC with scikit-learn).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brgan_core.evaluation.report import ModelEvaluation, markdown_report, plot_roc
from brgan_core.evaluation.runner import FID_PAIRS, EvaluationResult, ModelResult

REPORT_NAME = "report.md"
METRICS_NAME = "metrics.json"
PREDICTIONS_NAME = "predictions.csv"
ROC_NAME = "roc.png"

_FID_TITLES = {
    "target_contralateral": "target–contralateral",
    "generated_contralateral": "generated–contralateral",
    "target_generated": "target–generated",
    "target_generated_outside_lesions": "target–generated, lesions removed",
}


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _fid(value: float | None) -> str:
    """FIDs span orders of magnitude (0.73 to 63.63 in the paper): 4 significant digits."""
    return "–" if value is None or not math.isfinite(value) else f"{value:.4g}"


def reliability_name(index: int) -> str:
    """``reliability.png`` for the first model, ``reliability-2.png`` for the second."""
    return "reliability.png" if index == 0 else f"reliability-{index + 1}.png"


def _rows(result: EvaluationResult) -> list[ModelEvaluation]:
    reference = result.models[0]
    rows = []
    for m in result.models:
        delong_p = None
        if result.delong is not None and m is not reference:
            delong_p = result.delong.p
        rows.append(
            ModelEvaluation(
                name=m.name,
                auc=m.auc,
                delong_p=delong_p,
                localization_error=None if m.localization is None else m.localization.error,
                ece=m.ece_after,
                operating_point=m.test_operating_point,
            )
        )
    return rows


def _paper_tables(models: Sequence[ModelResult]) -> list[str]:
    lines = [
        "## In the paper's format",
        "",
        "Table 1 (image-wise AUC):",
        "",
        "| Methodology | AUC |",
        "|---|---|",
        *(f"| {m.name} | {m.auc.auc:.3f} |" for m in models),
        "",
        "Table 2 (top-1 localization error, CAM box at ≥ 50% of the peak, IoU ≥ 0.1, "
        "class must be right):",
        "",
        "| Methodology | Top-1 error |",
        "|---|---|",
    ]
    for m in models:
        loc = m.localization
        lines.append(f"| {m.name} | {'–' if loc is None else f'{loc.error:.3f}'} |")
    return lines


def _calibration_table(models: Sequence[ModelResult]) -> list[str]:
    lines = [
        "## Calibration and operating point",
        "",
        "Temperature T fitted on the validation images (NLL); p(malignant) = σ(z / T). "
        "ECE over 10 equal-width bins of p(malignant). The threshold is chosen on validation.",
        "",
        "| model | source | T | val AUC | val ECE before → after | test ECE before → after "
        "| threshold | val sens / spec | test sens / spec |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in models:
        cal = m.calibration
        val_ece = "–" if cal is None else f"{cal.ece_before:.3f} → {cal.ece_after:.3f}"
        val_op = (
            "–"
            if cal is None
            else f"{cal.operating_point.sensitivity:.3f} / {cal.operating_point.specificity:.3f}"
        )
        op = m.test_operating_point
        test_op = "–" if op is None else f"{op.sensitivity:.3f} / {op.specificity:.3f}"
        lines.append(
            f"| {m.name} | {m.calibration_source} | {m.temperature:.3f} | {_num(m.val_auc)} "
            f"| {val_ece} | {m.ece_before:.3f} → {m.ece_after:.3f} | {_num(m.threshold, 4)} "
            f"| {val_op} | {test_op} |"
        )
    return lines


def _fid_table(models: Sequence[ModelResult]) -> list[str]:
    if not any(m.mean_fid for m in models):
        return []
    header = " | ".join(_FID_TITLES[k] for k in FID_PAIRS)
    lines = [
        "## Feature distances (FID, paper Sect. 3.2)",
        "",
        "Mean FID: per test image, the Fréchet distance between the spatial positions of two "
        "feature maps (f_T target, f_C contralateral, f_H = G_T2C(f_T) generated), averaged "
        "over images; 'lesions removed' leaves out the feature cells under ground-truth boxes. "
        "Pooled FID: one pooled vector per image, distance between the two sets.",
        "",
        f"| model | | {header} |",
        "|---|---|" + "---|" * len(FID_PAIRS),
    ]
    for m in models:
        lines.append(
            f"| {m.name} | mean | " + " | ".join(_fid(m.mean_fid.get(k)) for k in FID_PAIRS) + " |"
        )
        lines.append(
            f"| {m.name} | pooled | "
            + " | ".join(_fid(m.pooled_fid.get(k)) for k in FID_PAIRS)
            + " |"
        )
    return lines


def _localization_notes(models: Sequence[ModelResult]) -> list[str]:
    notes = []
    for m in models:
        loc = m.localization
        if loc is not None:
            notes.append(
                f"{m.name}: {loc.localized} of {loc.evaluated} malignant test images with a "
                f"ground-truth box localized (IoU ≥ {loc.iou_threshold:g}, classified "
                f"malignant at the threshold); {loc.skipped_no_box} without a box skipped"
            )
    return notes


def markdown(result: EvaluationResult, *, title: str = "Evaluation") -> str:
    """The whole ``report.md`` text."""
    models = result.models
    reference = models[0].name if len(models) > 1 else None
    checkpoints = ", ".join(f"{m.name} = {m.checkpoint} (sha256 {m.sha256[:12]})" for m in models)
    notes = [
        *result.notes,
        *(n for m in models for n in m.notes),
        *_localization_notes(models),
        f"Checkpoints: {checkpoints}",
    ]
    text = markdown_report(_rows(result), title=title, reference=reference, notes=notes)
    sections = [
        _paper_tables(models),
        _calibration_table(models),
        _fid_table(models),
        [
            "## Plots",
            "",
            "How to read this report, and how each number is computed: docs/evaluation.md.",
            "",
            f"![ROC]({ROC_NAME})",
            *(
                f"\n![Reliability on test: {m.name}]({reliability_name(i)})"
                for i, m in enumerate(models)
            ),
        ],
    ]
    for lines in sections:
        if lines:
            text += "\n" + "\n".join(lines) + "\n"
    return text


def _write_predictions(path: Path, models: Sequence[ModelResult]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "model",
                "image",
                "label",
                "logit_benign",
                "logit_malignant",
                "p_uncalibrated",
                "p_calibrated",
                "called_malignant",
            ]
        )
        for m in models:
            p_raw, p_cal, called = m.p_uncalibrated, m.p_calibrated, m.called_malignant
            for i, image in enumerate(m.test.ids):
                writer.writerow(
                    [
                        m.name,
                        image,
                        int(m.test.labels[i]),
                        repr(float(m.test.logits[i, 0])),
                        repr(float(m.test.logits[i, 1])),
                        repr(float(p_raw[i])),
                        repr(float(p_cal[i])),
                        int(called[i]),
                    ]
                )


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_outputs(
    result: EvaluationResult, out_dir: str | Path, *, title: str = "Evaluation"
) -> dict[str, Path]:
    """Write every file into ``out_dir`` (created); returns ``{kind: path}``."""
    from brgan_core.evaluation.calibration import reliability_diagram

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = result.labels
    files: dict[str, Path] = {}
    files["roc"] = plot_roc(
        y,
        {m.name: m.test.malignancy_logit for m in result.models},
        out / ROC_NAME,
        title=f"ROC, image-wise ({len(y)} test images)",
        operating_points={
            m.name: m.test_operating_point for m in result.models if m.test_operating_point
        },
    )
    for i, m in enumerate(result.models):
        files[f"reliability{'' if i == 0 else f'-{i + 1}'}"] = reliability_diagram(
            y,
            {
                "before (T = 1)": m.p_uncalibrated,
                f"after (T = {m.temperature:.2f})": m.p_calibrated,
            },
            out / reliability_name(i),
            n_bins=result.n_bins,
            title=f"Reliability on test: {m.name}",
        )
    files["predictions"] = out / PREDICTIONS_NAME
    _write_predictions(files["predictions"], result.models)
    files["metrics"] = out / METRICS_NAME
    files["metrics"].write_text(
        json.dumps(_json_safe(result.to_dict()), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    files["report"] = out / REPORT_NAME
    files["report"].write_text(markdown(result, title=title), encoding="utf-8")
    return files
