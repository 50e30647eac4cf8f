"""The worker's analysis of one payload: real DICOM, real (untrained tiny) model, real scores."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from brgan_core.checkpoint import CheckpointError
from plugin.config import load_settings
from plugin.worker.analysis import PayloadError, analyze_study_payload
from tests.helpers import make_tiny_registry, write_synth_studies


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    root = tmp_path_factory.mktemp("worker")
    rows = write_synth_studies(root / "synth", patients=1)
    return root, rows


def _payload(rows: list[dict[str, str]], version: str, sha256: str) -> dict:
    by_view = {(r["laterality"], r["view"]): r for r in rows}
    pairs = []
    for (side, view), row in sorted(by_view.items()):
        other = by_view[("R" if side == "L" else "L", view)]
        pairs.append(
            {
                "target": {"sop_instance_uid": row["sop_instance_uid"], "path": row["path"]},
                "contralateral": {
                    "sop_instance_uid": other["sop_instance_uid"],
                    "path": other["path"],
                },
                "laterality": side,
                "view": view,
            }
        )
    return {
        "schema": 1,
        "study_uid": rows[0]["study_uid"],
        "study_version": 1,
        "model": {"version": version, "sha256": sha256},
        "pairs": pairs,
    }


def test_four_pairs_scored(study: tuple[Path, list[dict[str, str]]]) -> None:
    root, rows = study
    settings = load_settings(data_dir=root / "data")
    version, sha = make_tiny_registry(settings.registry_path)
    result = analyze_study_payload(_payload(rows, version, sha), settings, task_id="t1")
    json.dumps(result)  # the result travels as JSON
    assert len(result["images"]) == 4 and result["not_analyzed"] == []
    for image in result["images"]:
        assert 0.0 <= image["p_malignant"] <= 1.0
        heatmap = np.asarray(Image.open(image["heatmap_path"]))
        source = next(r for r in rows if r["sop_instance_uid"] == image["sop_instance_uid"])
        ds = pydicom.dcmread(source["path"], stop_before_pixels=True)
        assert heatmap.shape == (ds.Rows, ds.Columns)  # mapped back onto the original grid
        if image["region"] is not None:  # a closed outline on the stored pixel grid
            points = np.array(image["region"])
            assert (points[0] == points[-1]).all()
            assert (points >= 0).all() and (points[:, 0] <= ds.Columns).all()
            assert (points[:, 1] <= ds.Rows).all()
    scores = [i["p_malignant"] for i in result["images"]]
    assert result["exam"] == pytest.approx(max(scores))
    assert result["provenance"]["research_only"] is True
    assert result["provenance"]["synthetic_training"] is True  # the tiny test model says so
    assert result["timings"]["total_s"] > 0
    kinds = sorted(f["kind"] for f in result["result_files"])
    assert kinds == ["cad_sr", "heatmap_sc", "heatmap_sc", "heatmap_sc", "heatmap_sc",
                     "summary_sc", "tid1500_sr"]  # fmt: skip
    for item in result["result_files"]:
        ds = pydicom.dcmread(item["path"])
        assert ds.SOPInstanceUID == item["sop_instance_uid"]
        assert ds.StudyInstanceUID == rows[0]["study_uid"]


def test_a_redelivered_task_writes_byte_identical_objects(
    study: tuple[Path, list[dict[str, str]]], tmp_path: Path
) -> None:
    """Deterministic UIDs and Content Date/Time from the task: running it twice (a worker died
    after writing, the task was redelivered) gives the same bytes."""
    import hashlib

    from plugin.queue.contract import StudyTask

    _, rows = study
    settings = load_settings(data_dir=tmp_path / "data")
    version, sha = make_tiny_registry(settings.registry_path)
    payload = StudyTask.from_json(_payload(rows, version, sha)).to_json()
    payload["schema"], payload["queued_at"] = 2, 1_764_000_000.0
    first = analyze_study_payload(payload, settings, task_id="t3")
    digests = {f["path"]: hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest()
               for f in first["result_files"]}  # fmt: skip
    second = analyze_study_payload(payload, settings, task_id="t3")
    assert [f["sha256"] for f in second["result_files"]] == [
        f["sha256"] for f in first["result_files"]
    ]
    assert digests == {f["path"]: f["sha256"] for f in second["result_files"]}


def test_undecodable_image_is_not_analyzed_with_reason(
    study: tuple[Path, list[dict[str, str]]], tmp_path: Path
) -> None:
    _, rows = study
    settings = load_settings(data_dir=tmp_path / "data")
    version, sha = make_tiny_registry(settings.registry_path)
    payload = _payload(rows, version, sha)
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"DICM but not really")
    payload["pairs"][0]["target"]["path"] = str(broken)
    result = analyze_study_payload(payload, settings, task_id="t2")
    bad_uid = payload["pairs"][0]["target"]["sop_instance_uid"]
    reasons = {n["sop_instance_uid"]: n["reason"] for n in result["not_analyzed"]}
    assert "cannot decode" in reasons[bad_uid]
    # its contralateral's own pair cannot be scored either, and says why
    partner = payload["pairs"][0]["contralateral"]["sop_instance_uid"]
    assert "contralateral view could not be decoded" in reasons[partner]
    assert len(result["images"]) == 2
    # the summary SC and the SRs still list the two images that were not analyzed
    assert {f["kind"] for f in result["result_files"]} >= {"tid1500_sr", "summary_sc"}


def test_wrong_model_hash_is_refused(study: tuple[Path, list[dict[str, str]]], tmp_path) -> None:
    _, rows = study
    settings = load_settings(data_dir=tmp_path / "data")
    version, _ = make_tiny_registry(settings.registry_path)
    with pytest.raises(CheckpointError, match="registries differ"):
        analyze_study_payload(_payload(rows, version, "0" * 64), settings)


def test_malformed_payload_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(PayloadError, match="'pairs'"):
        analyze_study_payload(
            {"schema": 1, "study_uid": "1.2", "model": {}}, load_settings(data_dir=tmp_path)
        )


@pytest.mark.parametrize("mode", ["refuse", "warn", "off"])
def test_domain_shift_guard_modes(
    study: tuple[Path, list[dict[str, str]]], tmp_path: Path, mode: str
) -> None:
    """A guard that flags every image: refuse → not analyzed with the reason; warn → analyzed,
    the caution in the SR; off → analyzed silently. (The guard's statistics: test_shift.py and
    the real-image test in tests/plugin/worker/test_shift_guard.py.)"""
    _, rows = study
    settings = load_settings(data_dir=tmp_path / "data", shift_guard=mode)
    version, sha = make_tiny_registry(settings.registry_path, guard_threshold=0.0)
    result = analyze_study_payload(_payload(rows, version, sha), settings, task_id=f"g-{mode}")
    sr_path = next(f["path"] for f in result["result_files"] if f["kind"] == "tid1500_sr")
    sr_text = " ".join(
        str(e.value) for e in pydicom.dcmread(sr_path).iterall() if e.keyword == "TextValue"
    )
    if mode == "refuse":
        assert result["images"] == []
        reasons = [n["reason"] for n in result["not_analyzed"]]
        assert len(reasons) == 4
        assert all(r.startswith("outside the model's training distribution") for r in reasons)
        assert "outside the model's training distribution" in sr_text
    else:
        assert len(result["images"]) == 4 and result["not_analyzed"] == []
        warned = [bool(i["warnings"]) for i in result["images"]]
        assert warned == [mode == "warn"] * 4
        assert ("Caution:" in sr_text) == (mode == "warn")
        # Every result object carries it (the burned-in legends: tests/plugin/results).
        files = {f["kind"]: [] for f in result["result_files"]}
        for f in result["result_files"]:
            files[f["kind"]].append(pydicom.dcmread(f["path"]))
        cad_text = " ".join(
            str(e.value) for e in files["cad_sr"][0].iterall() if e.keyword == "TextValue"
        )
        assert cad_text.count("Caution:") == (4 if mode == "warn" else 0)
        comments = [str(sc.ImageComments) for sc in files["heatmap_sc"]]
        assert len(comments) == 4
        assert all(("Caution:" in c) == (mode == "warn") for c in comments)


def test_a_passing_guard_changes_nothing(
    study: tuple[Path, list[dict[str, str]]], tmp_path: Path
) -> None:
    _, rows = study
    settings = load_settings(data_dir=tmp_path / "data")
    version, sha = make_tiny_registry(settings.registry_path, guard_threshold=1e9)
    result = analyze_study_payload(_payload(rows, version, sha), settings, task_id="g-pass")
    assert len(result["images"]) == 4 and not any(i["warnings"] for i in result["images"])


def _without_r_mlo(rows: list[dict[str, str]], version: str, sha: str) -> tuple[dict, str]:
    """The 4-view payload as if R MLO were missing: L MLO planned alone (schema 3)."""
    from dataclasses import replace

    from plugin.queue.contract import StudyTask, TaskPair

    task = StudyTask.from_json(_payload(rows, version, sha))
    r_mlo = next(
        r["sop_instance_uid"] for r in rows if (r["laterality"], r["view"]) == ("R", "MLO")
    )
    pairs = tuple(
        TaskPair(p.target, None) if p.contralateral.sop_instance_uid == r_mlo else p
        for p in task.pairs
        if p.target.sop_instance_uid != r_mlo
    )
    l_mlo = next(p.target.sop_instance_uid for p in pairs if p.contralateral is None)
    return replace(task, pairs=pairs, schema=2).to_json(), l_mlo


def test_a_target_alone_is_scored_only_by_a_model_evaluated_that_way(
    study: tuple[Path, list[dict[str, str]]], tmp_path: Path
) -> None:
    """issue 11 §4: with a contralateral-branch model whose card has the metric, the target
    planned alone is scored and every result object says no contralateral was available; with
    any other model (the plan may predate an activation) it is not analyzed, with the reason."""
    _, rows = study
    allowed = load_settings(data_dir=tmp_path / "allowed")
    version, sha = make_tiny_registry(
        allowed.registry_path,
        preset="brgan_bilateral",
        metrics={"auc": 0.5, "val_auc_without_contralateral": 0.71},
    )
    payload, l_mlo = _without_r_mlo(rows, version, sha)
    assert payload["schema"] == 3
    result = analyze_study_payload(payload, allowed, task_id="alone-1")
    by_uid = {i["sop_instance_uid"]: i for i in result["images"]}
    assert len(by_uid) == 3 and result["not_analyzed"] == []
    [caution] = by_uid[l_mlo]["warnings"]
    assert caution.startswith("no contralateral view available (no R MLO in the study)")
    assert "validation AUC 0.710" in caution
    assert by_uid[l_mlo]["contralateral_uid"] is None
    assert all(not i["warnings"] for u, i in by_uid.items() if u != l_mlo)
    files = {f["kind"]: pydicom.dcmread(f["path"]) for f in result["result_files"]}
    for kind in ("tid1500_sr", "cad_sr"):
        text = " ".join(str(e.value) for e in files[kind].iterall() if e.keyword == "TextValue")
        assert "no contralateral view available" in text, kind

    # a contralateral that cannot be decoded: scored alone too, saying why
    from plugin.queue.contract import ImageRef, StudyTask, TaskPair

    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not a DICOM file")
    task = StudyTask.from_json(payload)
    first = task.pairs[0]
    bad = ImageRef(
        first.contralateral.sop_instance_uid, str(broken), first.contralateral.laterality,
        first.contralateral.view,
    )  # fmt: skip
    payload2 = dataclasses.replace(task, pairs=(TaskPair(first.target, bad),)).to_json()
    again = analyze_study_payload(payload2, allowed, task_id="alone-3")
    [image] = again["images"]
    assert image["contralateral_uid"] is None
    assert "could not be decoded): scored from this image alone" in image["warnings"][0]

    refused = load_settings(data_dir=tmp_path / "refused")
    version, sha = make_tiny_registry(refused.registry_path)  # the paper's BR-GAN: no metric
    payload, l_mlo = _without_r_mlo(rows, version, sha)
    result = analyze_study_payload(payload, refused, task_id="alone-2")
    assert l_mlo not in {i["sop_instance_uid"] for i in result["images"]}
    [reason] = [n["reason"] for n in result["not_analyzed"] if n["sop_instance_uid"] == l_mlo]
    assert reason.startswith("no contralateral view (no R MLO; model ")
    assert reason.endswith("was not evaluated without one)")
