"""Smoke tests of the benchmark scripts: they load, parse arguments and summarize (no run).

The benchmarks themselves are not part of the suite (minutes of CPU, numbers in ``docs/``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(name: str) -> ModuleType:
    """Import ``bench/<name>.py`` by path (``bench`` is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["inference", "ingest", "ablation", "cam_figure", "seeds"])
def test_help_exits_cleanly(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        load(name).main(["--help"])
    assert exc.value.code == 0
    assert "usage: bench/" in capsys.readouterr().out


def test_inference_defaults_match_the_issue() -> None:
    args = load("inference").build_parser().parse_args([])
    assert (args.backbone, args.height, args.width, args.device) == ("resnet50", 1024, None, "auto")
    assert args.reps >= 1 and args.warmup >= 1


def test_inference_preset_flag_and_a_tiny_paired_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inference = load("inference")
    parser = inference.build_parser()
    assert parser.parse_args([]).preset == "brgan"
    assert parser.parse_args(["--preset", "brgan_paired"]).preset == "brgan_paired"
    with pytest.raises(SystemExit):
        parser.parse_args(["--preset", "nonsense"])
    # A real (tiny) run: G_T2C of a paired generator gets f_C in the FLOP count (seconds).
    rc = inference.main(
        [
            *("--backbone", "tiny", "--height", "64", "--reps", "1", "--warmup", "1"),
            *("--profile-reps", "1", "--no-json", "--preset", "brgan_paired"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "preset brgan_paired" in out and "predict encodes both images" in out
    assert "| g_t2c |" in out


def test_ingest_defaults_and_flags() -> None:
    parser = load("ingest").build_parser()
    args = parser.parse_args([])
    assert (args.studies, args.growth) == (5, True)
    assert parser.parse_args(["--studies", "2", "--no-growth"]).growth is False


@pytest.mark.parametrize("name", ["inference", "ingest"])
def test_summarize_median_and_iqr(name: str) -> None:
    stats = load(name).summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (stats["median"], stats["q1"], stats["q3"], stats["iqr"]) == (3.0, 2.0, 4.0, 2.0)
    assert load(name).summarize([7.0])["median"] == 7.0


def test_common_machine_info_and_summarize() -> None:
    common = load("common")
    info = common.machine_info(storescp="storescp v3.6", load_at_end=[0.5, 0.4, 0.3])
    for key in ("cpu", "cpus", "mem_total_gib", "python", "platform", "loadavg_start"):
        assert key in info
    assert info["storescp"] == "storescp v3.6" and info["load_at_end"] == [0.5, 0.4, 0.3]
    stats = common.summarize([4, 1, 3, 2, 5])
    assert (stats["median"], stats["q1"], stats["q3"], stats["n"]) == (3, 2, 4, 5)
    assert (stats["min"], stats["max"], stats["iqr"]) == (1, 5, 2)
    # the scripts re-export the shared helpers
    assert load("ingest").summarize is not None and load("inference").machine_info is not None


def test_bad_counts_are_refused() -> None:
    with pytest.raises(SystemExit, match="at least 1"):
        load("ingest").main(["--studies", "0"])
    with pytest.raises(SystemExit, match="--reps"):
        load("inference").main(["--reps", "0"])


def test_bootstrap_interval_brackets_the_median() -> None:
    low, high = load("inference").bootstrap_median_ci([1.0, 1.1, 0.9, 1.05, 0.95], resamples=200)
    assert 0.9 <= low <= 1.0 <= high <= 1.1


def test_ingest_reuses_a_bigger_cached_set(tmp_path: Path) -> None:
    folder = tmp_path / "clinical-seed0-n3"
    for i in range(3):
        study = folder / f"SYN0-{i:05d}"
        study.mkdir(parents=True)
        for view in ("L_CC", "L_MLO", "R_CC", "R_MLO"):
            (study / f"{view}.dcm").write_bytes(b"")
    (folder / "masks").mkdir()  # the generator's masks folder holds no .dcm
    (folder / "manifest.csv").write_text("header\n")
    studies = load("ingest").ensure_studies(tmp_path, 2, seed=0, workers=1)
    assert [s[0].parent.name for s in studies] == ["SYN0-00000", "SYN0-00001"]
    assert all(len(s) == 4 for s in studies)


def test_ablation_trains_rows_in_two_children_then_evaluates_all(tmp_path: Path) -> None:
    """A whole (tiny) ablation run: two child trainers, then one evaluation with DeLong."""
    import json

    out = tmp_path / "abl"
    rc = load("ablation").main(
        [
            *("--out", str(out), "--rows", "vanilla,sbf", "--jobs", "2"),
            *("--train-patients", "8", "--test-patients", "4", "--epochs", "1"),
            *("--backbone", "tiny", "--n-boot", "20"),
        ]
    )
    assert rc == 0
    results = json.loads((out / "ablation.json").read_text())
    assert list(results) == ["vanilla", "sbf"]
    for row in ("vanilla", "sbf"):
        done = json.loads((out / "runs" / row / "done.json").read_text())
        assert done["epochs_run"] == 1
        assert 0.0 <= results[row]["auc"] <= 1.0 and results[row]["test_n"] == 16
    assert results["vanilla"]["delong_p"] is None
    assert 0.0 <= results["sbf"]["delong_p"] <= 1.0  # compared with vanilla on the same images
    table = (out / "ablation.md").read_text()
    assert "SBF (simple bilateral fusion)" in table
    assert "| Bilateral | L_c | L_RE | Mask | AUC [95% CI] |" in table  # paper's Table 3 layout
    assert "| SBF | × | × | × | " in table and "| Methodology | Top-1 error |" in table


def test_ablation_refuses_unknown_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert load("ablation").main(["--rows", "vanilla,nonsense"]) == 2
    assert "unknown rows: nonsense" in capsys.readouterr().err


def test_seeds_trains_rows_by_seed_and_reports_the_paired_contrast(tmp_path: Path) -> None:
    """A tiny rows x seeds run: children per (row, seed), then the paired statistics."""
    import json

    seeds = load("seeds")
    assert seeds.parse_seeds("0-2,5") == [0, 1, 2, 5]
    out = tmp_path / "seeds"
    rc = seeds.main(
        [
            *("--out", str(out), "--rows", "vanilla,sbf,brgan_bilateral", "--primary", "sbf"),
            *("--jobs", "2", "--decide", "brgan_bilateral:sbf"),
            *("--seeds", "0,1", "--epochs", "2", "--backbone", "tiny", "--n-boot", "20"),
            *("--train-patients", "6", "--val-patients", "4", "--test-patients", "4"),
        ]
    )
    assert rc == 0
    report = json.loads((out / "seeds.json").read_text())
    alone = "brgan_bilateral:no-contralateral"  # the same models, targets scored alone
    assert set(report["rows"]) == {"vanilla", "sbf", "brgan_bilateral", alone}
    branch = json.loads((out / "runs" / "brgan_bilateral" / "seed-0" / "eval.json").read_text())
    assert len(branch["scores_without_contralateral"]) == len(branch["scores"]) == 16
    assert branch["scores_without_contralateral"] != branch["scores"]
    assert report["rows"][alone]["per_seed"][0]["test_auc"] == pytest.approx(
        branch["test_auc_without_contralateral"]
    )
    decision = report["decisions"]["brgan_bilateral:sbf"]
    assert decision["baseline"] == "sbf" and decision["n_seeds"] == 2
    assert set(report["secondary"]) == {"brgan_bilateral"}  # the Holm family: trained rows
    derived = report["decisions"][f"{alone}:brgan_bilateral"]  # with vs without, descriptive
    assert derived["declared"] is False and decision["declared"] is True
    for row in ("vanilla", "sbf"):
        for seed in (0, 1):
            result = json.loads((out / "runs" / row / f"seed-{seed}" / "eval.json").read_text())
            assert result["epochs_run"] == 2 and len(result["scores"]) == 16
            assert result["config"]["select"] == "final" and result["config"]["ema_decay"] > 0
            assert result["config"]["data"]["val_root"].endswith("val")
    primary = report["primary"]
    assert primary["row"] == "sbf" and primary["n_seeds"] == 2 and len(primary["diffs"]) == 2
    low, high = primary["hierarchical_ci"]
    assert low <= high
    assert (out / "curves.png").stat().st_size > 1000
    markdown = (out / "seeds.md").read_text()
    assert "Primary contrast, sbf − baseline over 2 paired seeds" in markdown
    assert "Decision contrast brgan_bilateral − sbf" in markdown
    assert f"Descriptive contrast {alone} − brgan_bilateral" in markdown


def test_per_finding_aucs_match_sklearn_and_pair_over_seeds(tmp_path: Path) -> None:
    """bench/per_finding.py: per kind, that kind's malignant images against every negative."""
    import csv
    import json

    import numpy as np
    from sklearn.metrics import roc_auc_score

    per_finding = load("per_finding")
    rng = np.random.default_rng(4)
    kinds = ["spiculated_mass;vessel", "calcification_cluster", "architectural_distortion",
             "focal_asymmetry;round_mass", "irregular_mass"]  # fmt: skip
    rows = []
    for i in range(60):
        label = int(i % 3 == 0)
        rows.append({"sop_instance_uid": f"1.{i}", "label": label,
                     "findings": kinds[i % 5] if label else "vessel"})  # fmt: skip
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["sop_instance_uid", "label", "findings"])
        writer.writeheader()
        writer.writerows(rows)
    ids = [r["sop_instance_uid"] for r in rows]
    labels = np.array([r["label"] for r in rows])
    for row, shift in (("vanilla", 0.5), ("brgan", 1.5)):
        for seed in range(3):
            scores = labels * shift + rng.normal(0, 1, len(ids))
            folder = tmp_path / "runs" / row / f"seed-{seed}"
            folder.mkdir(parents=True)
            (folder / "eval.json").write_text(json.dumps({"ids": ids, "scores": list(scores)}))
    out = tmp_path / "per.json"
    code = per_finding.main([
        "--runs", str(tmp_path / "runs"), "--manifest", str(manifest),
        "--rows", "vanilla,brgan", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    mass = [r["label"] == 1 and ("spiculated_mass" in r["findings"] or "irregular_mass"
            in r["findings"]) for r in rows]  # fmt: skip
    keep = np.array(mass) | (labels == 0)
    scores = json.loads((tmp_path / "runs/brgan/seed-1/eval.json").read_text())["scores"]
    expected = roc_auc_score(np.array(mass)[keep], np.array(scores)[keep])
    assert report["rows"]["brgan"]["mass"]["per_seed"]["1"] == pytest.approx(expected)
    assert report["rows"]["brgan"]["mass"]["n_positive"] == sum(mass)
    contrast = report["contrasts"]["brgan"]
    assert set(contrast) == {"mass", "calcifications", "distortion", "asymmetry"}
    assert all(c["mean_diff"] > 0 and c["p_holm"] >= c["p_ttest"] for c in contrast.values())
