"""ROC plot and the markdown evaluation report (``brgan evaluate`` writes both).

:func:`evaluate_scores` turns labels and each model's scores into :class:`ModelEvaluation`
rows (AUC with its bootstrap CI, DeLong p against a reference model); the caller may add the
localization error, ECE and operating threshold it computed (``dataclasses.replace``).
:func:`markdown_report` renders the table; :func:`plot_roc` draws the curves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from brgan_core.evaluation.auc import AucResult, bootstrap_auc, delong_test
from brgan_core.evaluation.calibration import OperatingPoint


@dataclass(frozen=True)
class ModelEvaluation:
    """One row of the report; optional metrics are ``None`` when not measured."""

    name: str
    auc: AucResult
    delong_p: float | None = None
    localization_error: float | None = None
    ece: float | None = None
    operating_point: OperatingPoint | None = None


def evaluate_scores(
    y_true: ArrayLike,
    scores: Mapping[str, ArrayLike],
    *,
    reference: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> list[ModelEvaluation]:
    """AUC [CI] for every model and, with ``reference``, DeLong p of each against it."""
    if reference is not None and reference not in scores:
        raise ValueError(f"reference {reference!r} is not one of {', '.join(scores)}")
    rows = []
    for name, s in scores.items():
        p = None
        if reference is not None and name != reference:
            p = delong_test(y_true, s, scores[reference]).p
        rows.append(
            ModelEvaluation(name, bootstrap_auc(y_true, s, n_boot=n_boot, seed=seed), delong_p=p)
        )
    return rows


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def markdown_report(
    evaluations: Sequence[ModelEvaluation],
    *,
    title: str = "Evaluation",
    reference: str | None = None,
    notes: Sequence[str] = (),
    images: Mapping[str, str] | None = None,
) -> str:
    """The report as markdown: a table of every model, then notes and linked images.

    ``images`` maps a caption to a PNG path (relative to where the report is written).
    """
    if not evaluations:
        raise ValueError("nothing to report: no evaluations")
    first = evaluations[0].auc
    confidence = round(first.confidence * 100)
    ref = f" vs {reference}" if reference else ""
    lines = [
        f"# {title}",
        "",
        f"Test images: {first.n_positive + first.n_negative} "
        f"({first.n_positive} malignant, {first.n_negative} benign). "
        f"AUC is image-wise with a {confidence}% stratified bootstrap CI ({first.n_boot} "
        "resamples); p is the two-sided DeLong test.",
        "",
        f"| model | AUC [{confidence}% CI] | DeLong p{ref} | top-1 loc. error | ECE "
        "| threshold | sensitivity | specificity |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in evaluations:
        op = e.operating_point
        lines.append(
            f"| {e.name} | {e.auc} | {_p(e.delong_p)} | {_num(e.localization_error)} "
            f"| {_num(e.ece)} | {_num(op.threshold if op else None)} "
            f"| {_num(op.sensitivity if op else None)} | {_num(op.specificity if op else None)} |"
        )
    if any(e.operating_point for e in evaluations):
        targets = {e.operating_point.target_sensitivity for e in evaluations if e.operating_point}
        lines += [
            "",
            "Threshold chosen on validation data at a target sensitivity of "
            + ", ".join(f"{t:.2f}" for t in sorted(targets))
            + "; sensitivity and specificity are those reached on the evaluated images.",
        ]
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    for caption, png in (images or {}).items():
        lines += ["", f"![{caption}]({png})"]
    return "\n".join(lines) + "\n"


def write_report(
    path: str | Path,
    evaluations: Sequence[ModelEvaluation],
    *,
    title: str = "Evaluation",
    reference: str | None = None,
    notes: Sequence[str] = (),
    images: Mapping[str, str] | None = None,
) -> Path:
    """Write :func:`markdown_report` to ``path``."""
    path = Path(path)
    text = markdown_report(
        evaluations, title=title, reference=reference, notes=notes, images=images
    )
    path.write_text(text, encoding="utf-8")
    return path


def plot_roc(
    y_true: ArrayLike,
    scores: Mapping[str, ArrayLike],
    path: str | Path,
    *,
    title: str = "ROC, image-wise",
    operating_points: Mapping[str, OperatingPoint] | None = None,
) -> Path:
    """Write a PNG with one ROC curve per model (legend: AUC) and optional operating points."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
    from sklearn.metrics import roc_curve

    from brgan_core.evaluation.auc import roc_auc

    y = np.asarray(y_true)
    fig = Figure(figsize=(5.5, 5.5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="chance")
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y, np.asarray(s, dtype=np.float64))
        (line,) = ax.plot(fpr, tpr, linewidth=1.8, label=f"{name} (AUC {roc_auc(y, s):.3f})")
        op = (operating_points or {}).get(name)
        if op is not None:
            ax.plot(
                1 - op.specificity,
                op.sensitivity,
                marker="o",
                color=line.get_color(),
                markeredgecolor="black",
                linestyle="none",
                label=f"{name} operating point",
            )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="1 − specificity (false positive rate)",
        ylabel="sensitivity (true positive rate)",
        title=title,
        aspect="equal",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
