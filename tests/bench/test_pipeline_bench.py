"""Smoke test of ``bench/pipeline.py``: a ``--tiny`` run goes through the whole hospital chain
(storescu → Orthanc → listener → Redis → ``brgan worker`` → outbox → Orthanc) and reports every
stage (the benchmark itself is not part of the suite: minutes of CPU, numbers in
``docs/benchmarks-pipeline.md``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.test_bench_scripts import load


def test_defaults_match_the_issue() -> None:
    pipeline = load("pipeline")
    args = pipeline.build_parser().parse_args([])
    assert (args.studies, args.preset, args.backbone, args.size) == (10, "clinical", "resnet50",
                                                                    None)  # fmt: skip


@pytest.mark.integration
def test_tiny_run_reports_every_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = load("pipeline")
    missing = pipeline.tools_missing()
    if missing:
        pytest.skip("bench/pipeline.py needs " + "; ".join(missing))
    out = tmp_path / "pipeline.json"
    argv = ["--tiny", "--no-warmup", "--complete-grace", "1", "--cache", str(tmp_path / "cache"),
            "--out", str(out), "--timeout", "45"]  # fmt: skip
    assert pipeline.main(argv) == 0
    table = capsys.readouterr().out
    for stage in pipeline.STAGES:
        assert f"| {stage} |" in table
    result = json.loads(out.read_text())
    assert result["config"]["complete_grace"] == 1.0 and result["config"]["backbone"] == "tiny"
    (study,) = result["studies"]
    assert study["phase"] == "single" and study["instances"] == 4
    assert study["result_objects"] == 7 and study["outbox_states"] == ["delivered"]
    stages = study["stages_s"]
    assert stages["router_wait"] > 0 and stages["inference"] > 0 and stages["writing"] > 0
    assert stages["assembly_wait"] >= 1.0  # the complete_grace
    assert sum(stages.values()) == pytest.approx(study["total_s"], abs=1e-6)
    assert study["plugin_overhead_s"] == pytest.approx(
        study["total_s"] - stages["router_wait"] - stages["inference"]
    )
    assert set(result["phases"]) == {"single"}
    # the run folder (Redis, Orthanc, the index) is removed; the generated study is kept
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["bench-cpu-seed0-n1"]
