from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from brgan_core.evaluation.auc import delong_test
from brgan_core.evaluation.calibration import OperatingPoint
from brgan_core.evaluation.report import evaluate_scores, markdown_report, plot_roc, write_report


def _scores(seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(60, int), np.zeros(140, int)]
    return y, {
        "vanilla": rng.normal(y * 0.8, 1.0),
        "BR-GAN": rng.normal(y * 2.0, 1.0),
    }


def test_rows_with_delong_against_the_reference() -> None:
    y, scores = _scores()
    rows = evaluate_scores(y, scores, reference="vanilla", n_boot=200)
    assert [r.name for r in rows] == ["vanilla", "BR-GAN"]
    assert rows[0].delong_p is None
    assert rows[1].delong_p == pytest.approx(delong_test(y, scores["BR-GAN"], scores["vanilla"]).p)
    with pytest.raises(ValueError, match="reference 'cnn'"):
        evaluate_scores(y, scores, reference="cnn")


def test_markdown_table(tmp_path: Path) -> None:
    y, scores = _scores()
    rows = evaluate_scores(y, scores, reference="vanilla", n_boot=200)
    op = OperatingPoint(threshold=0.4123, sensitivity=0.9, specificity=0.75, target_sensitivity=0.9)
    rows[1] = replace(rows[1], localization_error=0.519, ece=0.0312, operating_point=op)
    text = markdown_report(
        rows,
        title="Synthetic test set",
        reference="vanilla",
        notes=["seed 0"],
        images={"ROC": "roc.png"},
    )
    lines = text.splitlines()
    assert lines[0] == "# Synthetic test set"
    assert "Test images: 200 (60 malignant, 140 benign)" in text
    header = next(line for line in lines if line.startswith("| model"))
    assert "AUC [95% CI]" in header and "DeLong p vs vanilla" in header
    vanilla = next(line for line in lines if line.startswith("| vanilla"))
    assert vanilla.count("–") == 6  # no p against itself, no other metrics
    brgan = next(line for line in lines if line.startswith("| BR-GAN"))
    assert str(rows[1].auc) in brgan and "< 0.001" in brgan
    assert "| 0.519 | 0.031 | 0.412 | 0.900 | 0.750 |" in brgan
    assert "target sensitivity of 0.90" in text and "- seed 0" in text
    assert "![ROC](roc.png)" in text
    path = write_report(tmp_path / "report.md", rows, reference="vanilla")
    assert path.read_text().startswith("# Evaluation")
    with pytest.raises(ValueError, match="nothing to report"):
        markdown_report([])


def test_roc_png(tmp_path: Path) -> None:
    y, scores = _scores()
    op = OperatingPoint(threshold=0.0, sensitivity=0.9, specificity=0.7, target_sensitivity=0.9)
    path = plot_roc(y, scores, tmp_path / "roc.png", operating_points={"BR-GAN": op})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5000
