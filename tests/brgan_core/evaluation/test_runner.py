"""Evaluation runner: plumbing and consistency on a tiny synthetic set with tiny models.

The models are untrained (random classifier weights, scaled so the logits spread); the tests check
that every number is what the metric modules give on the saved predictions, that boxes land in
model space, that the stored threshold reproduces the validation sensitivity through ``predict``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from brgan_core.checkpoint import CheckpointInfo, read_info, save_checkpoint
from brgan_core.data.readers import read_dataset
from brgan_core.data.records import PairRecord
from brgan_core.data.splits import split_pairs
from brgan_core.evaluation.auc import delong_test
from brgan_core.evaluation.calibration import OperatingPoint, expected_calibration_error
from brgan_core.evaluation.data import SplitSettings, select_pairs
from brgan_core.evaluation.outputs import write_outputs
from brgan_core.evaluation.runner import (
    EvaluationError,
    _with_margin,
    calibrate_checkpoint,
    eval_dataset,
    evaluate_checkpoint,
    load_checkpoint_model,
    predict_pairs,
)
from brgan_core.model import BRGANConfig, build_model
from brgan_core.training.dataset import data_fingerprint

SIZE = (64, 52)
RATIOS = (0.5, 0.25, 0.25)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def both_classes(pairs: list[PairRecord]) -> bool:
    labels = {p.label for p in pairs}
    return labels == {0, 1} and any(p.label and p.boxes for p in pairs)


def make_set(root: Path, n: int = 12, *, need_both: bool = True) -> tuple[Path, SplitSettings]:
    """A synthetic manifest and a split seed whose validation and test splits hold both classes."""
    from brgan_core.synth import get_preset, write_dataset

    manifest = write_dataset(root, n, get_preset("bench-cpu"), seed=1)
    if not need_both:
        return manifest, SplitSettings(0, RATIOS, "test")
    pairs = read_dataset("manifest", manifest).pairs
    for seed in range(50):
        splits = split_pairs(pairs, seed=seed, ratios=RATIOS)
        if both_classes(splits.val) and both_classes(splits.test):
            return manifest, SplitSettings(seed, RATIOS, "test")
    raise AssertionError("no split seed gives both classes in validation and test")


def make_checkpoint(
    path: Path, preset: str, seed: int, manifest: Path, settings: SplitSettings
) -> Path:
    torch.manual_seed(seed)
    cfg = BRGANConfig.preset(preset, backbone="tiny")
    model = build_model(cfg)
    with torch.no_grad():  # spread the logits so temperature scaling has something to fit
        model.classifier.fc.weight.normal_(0.0, 20.0)
    pairs = read_dataset("manifest", manifest).pairs
    train = split_pairs(pairs, seed=settings.seed, ratios=settings.ratios).train
    info = CheckpointInfo(
        cfg.to_dict(),
        preprocessing={"size": list(SIZE)},
        data_fingerprint=data_fingerprint(train),
        metrics={"val_auc": 0.5},
    )
    save_checkpoint(path, model.state_dict(), info)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    root = tmp_path_factory.mktemp("eval")
    manifest, settings = make_set(root / "data")
    return {
        "root": root,
        "manifest": manifest,
        "settings": settings,
        "brgan": make_checkpoint(root / "brgan.safetensors", "brgan", 1, manifest, settings),
        "vanilla": make_checkpoint(root / "vanilla.safetensors", "vanilla", 2, manifest, settings),
        "pairs": select_pairs(
            manifest,
            settings=settings,
            fingerprint=read_info(root / "brgan.safetensors").data_fingerprint,
        ),
    }


def test_select_pairs_follows_the_training_split(setup: dict) -> None:  # type: ignore[type-arg]
    chosen = setup["pairs"]
    assert chosen.fingerprint_matches is True
    assert chosen.val and chosen.test
    patients = {p.patient_id for p in chosen.test}
    assert not patients & {p.patient_id for p in chosen.val}
    assert any("matches the checkpoint's training-data fingerprint" in n for n in chosen.notes)
    other = select_pairs(
        setup["manifest"],
        settings=SplitSettings(setup["settings"].seed + 1, RATIOS),
        fingerprint="x",
    )
    assert other.fingerprint_matches is False and any("WARNING" in n for n in other.notes)
    separate = select_pairs(setup["manifest"], split="all")
    assert separate.val is None and len(separate.test) == 48
    with pytest.raises(EvaluationError, match="split must be one of"):
        select_pairs(setup["manifest"], split="train")
    # a separately generated validation set: every pair of it calibrates
    whole = select_pairs(
        setup["manifest"], split="all", val_data=setup["manifest"], val_split="all"
    )
    assert len(whole.val) == 48 and whole.fingerprint_matches is None
    assert any(
        "Calibration (temperature, threshold): 48 images" in n and "all of" in n
        for n in whole.notes
    )
    with pytest.raises(EvaluationError, match="val_split must be val or all"):
        select_pairs(setup["manifest"], val_data=setup["manifest"], val_split="some")


def test_predict_pairs_plumbing(setup: dict) -> None:  # type: ignore[type-arg]
    from brgan_core.preprocess import preprocess

    model, _ = load_checkpoint_model(setup["brgan"])
    pairs = setup["pairs"].test
    dataset = eval_dataset(pairs, SIZE)
    model.train()
    pred = predict_pairs(model, dataset, batch_size=5, features=True)
    assert model.training and model.backbone.training  # modes restored
    n = len(pairs)
    assert pred.logits.shape == (n, 2) and pred.cams.shape == (n, 8, 7)
    assert pred.model_shape == SIZE
    assert list(pred.labels) == [p.label for p in pairs]
    # the float32 emulation is exactly what predict returns
    np.testing.assert_array_equal(pred.calibrated(pred.temperature), pred.p_malignant)
    # boxes mapped through each image's preprocessing geometry
    i = next(k for k, p in enumerate(pairs) if p.boxes)
    geometry = preprocess(pairs[i].target.path, size=SIZE).geometry
    assert pred.boxes[i] == tuple(geometry.box_to_model(b) for b in pairs[i].boxes)
    assert all(pred.boxes[k] == () for k, p in enumerate(pairs) if not p.boxes)
    feats = pred.features
    assert feats is not None and set(feats.pooled) == {"target", "contralateral", "generated"}
    assert feats.pooled["target"].shape == (n, 64)
    assert all(np.isfinite(v).all() and len(v) == n for v in feats.image_fid.values())
    vanilla, _ = load_checkpoint_model(setup["vanilla"])
    plain = predict_pairs(vanilla, eval_dataset(pairs, SIZE), features=True)
    assert plain.features is not None and "generated" not in plain.features.pooled
    assert plain.features.mean_fids()["target_generated"] is None


def test_evaluation_numbers_are_consistent(setup: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    chosen = setup["pairs"]
    result = evaluate_checkpoint(
        setup["brgan"], chosen.test, chosen.val, compare=setup["vanilla"], n_boot=200
    )
    a, b = result.models
    y = a.test.labels
    assert a.name == "brgan" and b.name == "vanilla"
    assert a.calibration_source == "validation" and a.calibration is not None
    assert a.auc.auc == pytest.approx(roc_auc_score(y, a.p_calibrated))
    assert a.auc.ci_low <= a.auc.auc <= a.auc.ci_high
    assert a.ece_after == pytest.approx(expected_calibration_error(y, a.p_calibrated))
    assert a.ece_before == pytest.approx(expected_calibration_error(y, a.test.calibrated(1.0)))
    op = a.test_operating_point
    assert op is not None and op.threshold == a.calibration.operating_point.threshold
    called = a.p_calibrated >= op.threshold
    assert op.sensitivity == pytest.approx(called[y == 1].mean())
    assert op.specificity == pytest.approx((~called[y == 0]).mean())
    assert a.calibration.operating_point.sensitivity >= 0.9
    assert a.localization is not None and a.localization.iou_threshold == 0.1
    assert a.localization.evaluated == sum(1 for p in chosen.test if p.label and p.boxes)
    assert set(a.mean_fid) >= {"target_contralateral", "target_generated_outside_lesions"}
    expected = delong_test(y, a.test.malignancy_logit, b.test.malignancy_logit)
    assert result.delong == pytest.approx(expected)

    files = write_outputs(result, tmp_path / "out")
    for kind in ("roc", "reliability", "reliability-2", "report", "metrics", "predictions"):
        assert files[kind].is_file() and files[kind].stat().st_size > 0, kind
    assert files["roc"].read_bytes()[:4] == b"\x89PNG"
    with files["predictions"].open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["model"] == "brgan"]
    saved_auc = roc_auc_score(
        [int(r["label"]) for r in rows], [float(r["p_calibrated"]) for r in rows]
    )
    metrics = json.loads(files["metrics"].read_text())
    assert metrics["models"][0]["auc"]["auc"] == pytest.approx(saved_auc)
    assert metrics["delong"]["p"] == pytest.approx(expected.p)
    report = files["report"].read_text()
    assert f"| brgan | {a.auc} |" in report and "DeLong p vs brgan" in report
    assert "Table 2" in report and "![ROC](roc.png)" in report and "reliability-2.png" in report


def test_calibrated_checkpoint_predicts_with_its_temperature(
    setup: dict,
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    val = setup["pairs"].val
    out = tmp_path / "calibrated.safetensors"
    written = calibrate_checkpoint(setup["brgan"], val, 0.9, out)
    assert written.path == out and out.is_file()
    info = read_info(out)
    cal = written.calibration
    assert info.temperature == pytest.approx(cal.temperature)
    assert info.threshold == cal.operating_point.threshold
    assert info.metrics["auc"] == info.metrics["val_auc"] == written.val_auc
    assert info.metrics["target_sensitivity"] == 0.9 and info.metrics["calibration_n"] == len(val)
    model, _ = load_checkpoint_model(out)
    assert float(model.temperature) == pytest.approx(cal.temperature)
    pred = predict_pairs(model, eval_dataset(val, SIZE))  # predict applies the new temperature
    y = pred.labels.astype(bool)
    sensitivity = (pred.p_malignant[y] >= info.threshold).mean()
    assert sensitivity >= 0.9 and sensitivity == cal.operating_point.sensitivity
    assert (pred.p_malignant[~y] < info.threshold).mean() == cal.operating_point.specificity
    # the stored checkpoint, without validation data, reproduces the same operating point
    again = evaluate_checkpoint(out, val, features=False, n_boot=100)
    assert again.models[0].calibration_source == "checkpoint"
    assert again.models[0].test_operating_point.sensitivity == cal.operating_point.sensitivity
    with pytest.raises(EvaluationError, match="new file"):
        calibrate_checkpoint(out, val, 0.9, out)


def test_threshold_margin_and_one_class_refused(setup: dict) -> None:  # type: ignore[type-arg]
    y = np.array([1, 1, 0, 0, 1])
    p = np.array([0.9, 0.6, 0.5, 0.1, 0.7])
    op = OperatingPoint(0.6, 1.0, 1.0, 0.9)
    moved = _with_margin(op, y, p)
    assert moved.threshold == pytest.approx(0.55) and moved.sensitivity == 1.0
    benign = [p for p in setup["pairs"].test if p.label == 0]
    with pytest.raises(EvaluationError, match="needs both"):
        evaluate_checkpoint(setup["brgan"], benign, features=False, n_boot=100)


def test_calibration_recovers_an_overconfident_temperature() -> None:
    from brgan_core.evaluation.runner import Predictions, calibrate_predictions

    rng = np.random.default_rng(0)
    u = rng.normal(-1.0, 2.0, 2000)  # the true logit
    y = (rng.random(2000) < 1 / (1 + np.exp(-u))).astype(np.int64)
    z = 3.0 * u  # overconfident: calibrated at T = 3
    logits = np.stack([np.zeros_like(z), z], axis=1).astype(np.float32)
    pred = Predictions(
        ids=tuple(str(i) for i in range(len(y))),
        labels=y,
        logits=logits,
        temperature=1.0,
        p_malignant=np.zeros(len(y)),
        cams=np.zeros((len(y), 2, 2), np.float32),
        boxes=tuple(() for _ in y),
        model_shape=(16, 16),
    )
    cal = calibrate_predictions(pred, sensitivity=0.8)
    assert cal.temperature == pytest.approx(3.0, rel=0.15)
    assert cal.ece_after < cal.ece_before
    p = pred.calibrated(cal.temperature)
    assert (p[y == 1] >= cal.operating_point.threshold).mean() >= 0.8


def test_contralateral_branch_is_measured_without_its_contralateral(
    setup: dict,  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    """issue 11 §4: calibration writes the validation AUC without contralateral (the metric the
    model card's gate reads) with the threshold's sensitivity/specificity on those scores;
    evaluation reports the test AUC without contralateral beside the usual one."""
    from brgan_core.card import WITHOUT_CONTRALATERAL_METRIC, may_score_without_contralateral

    path = make_checkpoint(
        tmp_path / "bilateral.safetensors",
        "brgan_bilateral",
        3,
        setup["manifest"],
        setup["settings"],
    )
    val, test = setup["pairs"].val, setup["pairs"].test
    written = calibrate_checkpoint(path, val, 0.9, tmp_path / "bilateral.calibrated.safetensors")
    info = read_info(written.path)
    model, _ = load_checkpoint_model(written.path)
    alone = predict_pairs(model, eval_dataset(val, SIZE), contralateral=False)
    assert info.metrics[WITHOUT_CONTRALATERAL_METRIC] == pytest.approx(
        roc_auc_score(alone.labels, alone.malignancy_logit)
    )
    y = alone.labels.astype(bool)
    called = alone.p_malignant >= info.threshold
    assert info.metrics["val_sensitivity_without_contralateral"] == pytest.approx(called[y].mean())
    assert info.metrics["val_specificity_without_contralateral"] == pytest.approx(
        (~called[~y]).mean()
    )
    assert may_score_without_contralateral(info)
    result = evaluate_checkpoint(written.path, test, features=False, n_boot=100).models[0]
    assert result.auc_without_contralateral is not None
    assert result.to_dict()["auc_without_contralateral"]["auc"] == pytest.approx(
        roc_auc_score(
            result.test_without_contralateral.labels,
            result.test_without_contralateral.malignancy_logit,
        )
    )
    # the paper's BR-GAN never reads it: calibration does not claim it was measured
    plain = read_info(calibrate_checkpoint(setup["brgan"], val, 0.9, tmp_path / "b.st").path)
    assert WITHOUT_CONTRALATERAL_METRIC not in plain.metrics
    sbf = make_checkpoint(tmp_path / "sbf.st", "sbf", 4, setup["manifest"], setup["settings"])
    sbf_model, _ = load_checkpoint_model(sbf)
    with pytest.raises(EvaluationError, match="cannot score a target without its contralateral"):
        predict_pairs(sbf_model, eval_dataset(val, SIZE), contralateral=False)
