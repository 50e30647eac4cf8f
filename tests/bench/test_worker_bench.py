"""Smoke test of ``bench/worker.py``: it loads, parses, and a ``--tiny`` run goes through the
worker's real code path and reports every stage (the benchmark itself is not part of the
suite: minutes of CPU, numbers in ``docs/benchmarks-worker.md``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.test_bench_scripts import load


def test_help_and_defaults_match_the_issue(capsys: pytest.CaptureFixture[str]) -> None:
    worker = load("worker")
    with pytest.raises(SystemExit) as exc:
        worker.main(["--help"])
    assert exc.value.code == 0 and "usage: bench/worker.py" in capsys.readouterr().out
    args = worker.build_parser().parse_args([])
    assert (args.studies, args.warmup, args.preset, args.backbone) == (3, 1, "clinical", "resnet50")
    assert args.size is None  # the preset's model input: 1024 × 832 for clinical
    assert args.send is False  # the send step (a local Orthanc) only on request
    assert worker.build_parser().parse_args(["--size", "512", "416"]).size == [512, 416]
    with pytest.raises(SystemExit, match="at least 1"):
        worker.main(["--studies", "0"])


def test_tiny_run_reports_every_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    worker = load("worker")
    out = tmp_path / "worker.json"
    assert worker.main(["--tiny", "--cache", str(tmp_path / "cache"), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    for stage in worker.STAGES:
        assert f"| {stage} |" in table
    assert "everything but the model / total" in table and "bytes written per study" in table
    assert "send_dimse" not in table  # no --send
    result = json.loads(out.read_text())
    assert result["send"] is None and result["config"]["send"] is None
    assert "send_s" not in result["studies"][0]
    assert result["command"].startswith("bench/worker.py --tiny")
    assert result["config"]["backbone"] == "tiny" and result["config"]["input"] == [128, 104]
    for key in ("cpu", "cpus", "loadavg_start", "loadavg_end", "torch"):
        assert key in result["machine"]
    (study,) = result["studies"]
    assert len(result["warmup_studies"]) == 1
    assert study["images_analyzed"] == 4 and study["not_analyzed"] == 0
    stages = study["stages_s"]
    assert stages["decode"] > 0 and stages["preprocess"] > 0 and stages["model"] > 0
    assert stages["write"] > 0 and 0 < study["network_s"] <= stages["model"]
    assert sum(stages.values()) == pytest.approx(study["total_s"], abs=1e-3)
    assert 0 < study["non_model_fraction"] < 1
    assert study["result_files"] == 7 and study["result_bytes"] > 0
    assert set(study["result_bytes_by_kind"]) == {"tid1500_sr", "cad_sr", "heatmap_sc",
                                                  "summary_sc"}  # fmt: skip
    # the run folder (registry, result objects) is removed; the generated studies are kept
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["bench-cpu-seed0-n2"]
    # the timing wrappers are undone
    import brgan_core.preprocess.pipeline as pipeline
    from brgan_core.model import BRGAN

    assert not hasattr(pipeline.read_dataset, "__wrapped__")
    assert not hasattr(BRGAN.predict, "__wrapped__")


@pytest.mark.integration
def test_tiny_run_sends_to_orthanc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--send``: every result object of each study goes to a local Orthanc over C-STORE and
    over STOW-RS (the project's sinks), each timed; the Orthanc is stopped at the end."""
    worker = load("worker")
    missing = worker.send_tools_missing()
    if missing:
        pytest.skip("--send needs " + "; ".join(missing))
    out = tmp_path / "worker.json"
    cache = tmp_path / "cache"
    assert worker.main(["--tiny", "--send", "--cache", str(cache), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| send_dimse (C-STORE) |" in table and "| send_stow (STOW-RS) |" in table
    assert "every file DELIVERED" in table
    result = json.loads(out.read_text())
    send = result["config"]["send"]
    assert send["files_per_study"] == 7
    assert send["destinations"]["dimse"].startswith("C-STORE BRGAN->")
    assert send["destinations"]["stow"].endswith("/dicom-web/studies")
    for study in result["studies"] + result["warmup_studies"]:
        assert set(study["send_s"]) == {"send_dimse", "send_stow"}
        for key, seconds in study["send_s"].items():
            assert seconds > 0
            assert study["send_mb_per_s"][key] == pytest.approx(
                study["result_bytes"] / seconds / 1e6
            )
            assert study["load_to_send_s"][key] == pytest.approx(study["total_s"] + seconds)
    for key in ("send_dimse", "send_stow"):
        summary = result["send"][key]
        assert summary["seconds"]["n"] == 1 and summary["mb_per_s"]["mean"] > 0
        assert 0 < summary["share_of_load_to_send"]["mean"] < 1
    # the run folder, Orthanc's storage with it, is removed
    assert [p.name for p in cache.iterdir()] == ["bench-cpu-seed0-n2"]
