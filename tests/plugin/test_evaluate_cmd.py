"""``brgan evaluate``: files, consistent numbers, a calibrated checkpoint that registers, help."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sklearn.metrics import roc_auc_score

from brgan_core.checkpoint import read_info
from tests.brgan_core.evaluation.test_runner import make_checkpoint, make_set
from tests.plugin.cli import run_cli as _run


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_evaluate_calibrate_register(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, settings = make_set(tmp_path / "data")
    a = make_checkpoint(tmp_path / "a.safetensors", "brgan", 1, manifest, settings)
    b = make_checkpoint(tmp_path / "b.safetensors", "sbf", 2, manifest, settings)
    out, calibrated = tmp_path / "out", tmp_path / "a-calibrated.safetensors"
    split = ["--split-seed", str(settings.seed), "--ratios", "0.5,0.25,0.25"]
    args = ["evaluate", str(a), "--compare", str(b), "--data", str(manifest), *split]
    args += ["--out", str(out), "--calibrated-out", str(calibrated), "--device", "cpu"]
    code, text = _run([*args, "--n-boot", "200", "--batch-size", "6"], capsys)
    assert code == 0, text
    assert "test AUC" in text and "DeLong p" in text and "brgan models register" in text
    assert "matches the checkpoint's training-data fingerprint" in text
    for name in ("report.md", "metrics.json", "predictions.csv", "roc.png", "reliability.png"):
        assert (out / name).is_file(), name
    assert (out / "reliability-2.png").is_file()

    metrics = json.loads((out / "metrics.json").read_text())
    with (out / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for model in metrics["models"]:
        mine = [r for r in rows if r["model"] == model["name"]]
        auc = roc_auc_score(
            [int(r["label"]) for r in mine], [float(r["p_calibrated"]) for r in mine]
        )
        assert model["auc"]["auc"] == pytest.approx(auc)
        assert model["calibration_source"] == "validation"
        assert model["test_n"] == len(mine) == metrics["test_n"]
    report = (out / "report.md").read_text()
    first = metrics["models"][0]
    assert f"{first['auc']['auc']:.3f}" in report and "Evaluated:" in report

    info = read_info(calibrated)
    assert info.threshold == pytest.approx(first["threshold"])
    assert info.temperature == pytest.approx(first["temperature"])
    assert info.metrics["val_sensitivity"] >= 0.9

    monkeypatch.setenv("BRGAN_DATA_DIR", str(tmp_path / "registry"))
    code, text = _run(["models", "register", "--activate", str(calibrated)], capsys)
    assert code == 0 and "active version: v1" in text, text
    code, text = _run(["models", "show", "v1"], capsys)
    assert json.loads(text)["threshold"] == pytest.approx(info.threshold)


def test_compare_active_stores_the_evidence_activate_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 14 §2: `evaluate CANDIDATE --compare active` stores a record (both AUCs, the
    patient-bootstrap Δ CI, DeLong p, ECE) keyed by the candidate's and its calibrated copy's
    sha256; `models activate` follows its verdict, --force --reason overrides, all audited."""
    from brgan_core.checkpoint import sha256_file
    from brgan_core.promotion import read_audit

    manifest, settings = make_set(tmp_path / "data")
    monkeypatch.setenv("BRGAN_DATA_DIR", str(tmp_path / "state"))
    active = make_checkpoint(tmp_path / "active.safetensors", "brgan", 1, manifest, settings)
    code, text = _run(["models", "register", "--activate", str(active)], capsys)
    assert code == 0 and "first activation" in text, text
    candidate = make_checkpoint(tmp_path / "cand.safetensors", "brgan", 5, manifest, settings)
    calibrated = tmp_path / "cand-calibrated.safetensors"
    split = ["--split-seed", str(settings.seed), "--ratios", "0.5,0.25,0.25"]
    args = ["evaluate", str(candidate), "--compare", "active", "--data", str(manifest), *split]
    args += ["--out", str(tmp_path / "ev"), "--calibrated-out", str(calibrated), "--no-fid"]
    code, text = _run([*args, "--n-boot", "200", "--device", "cpu"], capsys)
    assert code == 0, text
    assert "evidence for `brgan models activate`" in text
    records = sorted((tmp_path / "state" / "models" / "evaluations").glob("*.json"))
    assert len(records) == 2  # the evaluated file and its calibrated copy
    record = json.loads(records[0].read_text())
    assert set(record["candidate_sha256"]) == {sha256_file(candidate), sha256_file(calibrated)}
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    first, second = metrics["models"]
    assert record["candidate_auc"] == pytest.approx(first["auc"]["auc"])
    assert record["reference_auc"] == pytest.approx(second["auc"]["auc"])
    assert record["delta_auc"] == pytest.approx(first["auc"]["auc"] - second["auc"]["auc"])
    low, high = record["delta_ci"]
    assert low <= record["delta_auc"] <= high and record["n_patients"] < record["n_images"]

    code, text = _run(["models", "register", str(calibrated)], capsys)
    assert code == 0 and "registered v2" in text
    code, text = _run(["models", "activate", "v2"], capsys)
    if record["verdict"] == "worse":
        assert code == 2 and "not at least as good as the active model" in text, text
        code, text = _run(["models", "activate", "v2", "--force"], capsys)
        assert code == 2 and "--force needs --reason" in text
        code, text = _run(["models", "activate", "v2", "--force", "--reason", "t"], capsys)
        assert code == 0 and "FORCED" in text
    else:
        assert code == 0 and record["verdict"] in text, text
    entries = read_audit(tmp_path / "state" / "models")
    assert [e["action"] for e in entries] == ["activate", "activate"]
    assert entries[-1]["version"] == "v2" and entries[-1]["previous"] == "v1"
    assert entries[-1]["evaluation"] == str(records[0]) or entries[-1]["evaluation"] == str(
        records[1]
    )
    code, text = _run(["models", "activate", "v1", "--require", "better"], capsys)
    assert code == 2 and "no evaluation of this version" in text  # v1 against v2: none


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, settings = make_set(tmp_path / "data", n=6, need_both=False)
    a = make_checkpoint(tmp_path / "a.safetensors", "vanilla", 1, manifest, settings)
    args = ["evaluate", str(a), "--data", str(manifest), "--split", "all"]
    args += ["--calibrated-out", str(tmp_path / "c.safetensors"), "--out", str(tmp_path / "o")]
    code, text = _run(args, capsys)
    assert code == 2 and "--calibrated-out needs validation data" in text
    assert "Traceback" not in text
    code, text = _run(["evaluate", str(tmp_path / "missing.safetensors"), "--data", "x"], capsys)
    assert code == 2 and "does not exist" in text


def test_help_teaches_metrics_and_splits(capsys: pytest.CaptureFixture[str]) -> None:
    from typer.testing import CliRunner

    from plugin.cli.main import app

    result = CliRunner().invoke(app, ["evaluate", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for words in (
        "validation split fits the calibration",
        "measured on the test split",
        "patient-wise",
        "IoU < 0.1",
        "ECE",
        "DeLong p",
        "Mean FID",
        "brgan models register FILE",
        "--calibrated-out",
        "--sensitivity",
    ):
        assert words in text, words


def test_cli_main_does_not_import_torch() -> None:
    code = "import sys, plugin.cli.main; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
