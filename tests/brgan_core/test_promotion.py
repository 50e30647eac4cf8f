"""The activation rule and the audit log (issue 14 §2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brgan_core.promotion import (
    EvaluationRecord,
    PromotionError,
    audit,
    check_activation,
    find_record,
    paired_patient_bootstrap,
    read_audit,
    save_record,
)


def _record(delta: float, low: float, high: float) -> EvaluationRecord:
    return EvaluationRecord(
        candidate_sha256=("a" * 64, "b" * 64),
        reference_sha256="c" * 64,
        candidate_auc=0.8 + delta,
        reference_auc=0.8,
        delta_auc=delta,
        delta_ci=(low, high),
        delong_p=0.2,
        n_images=400,
        n_patients=100,
        candidate_ece=0.03,
        reference_ece=0.04,
        data="held-out",
        n_boot=2000,
    )


@pytest.mark.parametrize(
    ("delta", "ci", "require", "allowed"),
    [
        (0.03, (0.01, 0.05), "better", True),
        (0.01, (-0.01, 0.03), "better", False),
        (0.01, (-0.01, 0.03), "not-worse", True),
        (0.0, (-0.02, 0.02), "not-worse", True),
        (-0.01, (-0.03, 0.01), "not-worse", False),
    ],
)
def test_the_rule_follows_the_verdict(delta, ci, require, allowed) -> None:
    record = _record(delta, *ci)
    if allowed:
        assert record.verdict in check_activation(record, first=False, require=require)
    else:
        with pytest.raises(PromotionError, match="activate anyway only with --force --reason"):
            check_activation(record, first=False, require=require)
        forced = check_activation(record, first=False, require=require, force=True, reason="x")
        assert forced.startswith("FORCED; ")


def test_first_activation_missing_evidence_and_force_without_reason() -> None:
    assert "first activation" in check_activation(None, first=True)
    with pytest.raises(PromotionError, match="no evaluation of this version"):
        check_activation(None, first=False)
    with pytest.raises(PromotionError, match="--force needs --reason"):
        check_activation(None, first=False, force=True, reason="  ")
    with pytest.raises(PromotionError, match="require must be one of"):
        check_activation(None, first=True, require="maybe")


def test_non_finite_numbers_are_refused() -> None:
    with pytest.raises(PromotionError, match="non-finite"):
        check_activation(_record(float("nan"), float("nan"), float("nan")), first=False)


def test_records_are_found_by_either_candidate_hash(tmp_path: Path) -> None:
    record = _record(0.02, 0.0, 0.04)
    save_record(tmp_path, record)
    assert find_record(tmp_path, "a" * 64, "c" * 64) == record
    assert find_record(tmp_path, "b" * 64, "c" * 64) == record
    assert find_record(tmp_path, "a" * 64, "d" * 64) is None


def test_patient_bootstrap_is_paired_and_clustered() -> None:
    rng = np.random.default_rng(0)
    patients = [f"p{i // 4}" for i in range(400)]
    y = np.repeat(rng.integers(0, 2, 100), 4)
    reference = y + rng.normal(0, 1.0, 400)
    candidate = y + rng.normal(0, 0.7, 400)  # a better model
    delta, low, high = paired_patient_bootstrap(y, reference, candidate, patients, n_boot=300)
    assert low < delta < high and delta > 0
    same = paired_patient_bootstrap(y, reference, reference, patients, n_boot=100)
    assert same == (0.0, 0.0, 0.0)


def test_audit_log_appends(tmp_path: Path) -> None:
    audit(tmp_path, "activate", version="v1", previous=None, evidence="first")
    audit(tmp_path, "rollback", version="v1", previous="v2", reason="bad night")
    entries = read_audit(tmp_path)
    assert [e["action"] for e in entries] == ["activate", "rollback"]
    assert all(e["user"] and e["time"] for e in entries) and entries[1]["reason"] == "bad night"
