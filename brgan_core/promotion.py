"""Promoting a model on evidence (issue 14 §2): evaluation records, the activation rule, the
audit log.

* An :class:`EvaluationRecord` is what ``brgan evaluate CANDIDATE --compare active`` measured:
  both AUCs on the same held-out test images, their difference with a patient-clustered
  bootstrap CI (images of one patient resampled together; DeLong's p beside it, which treats
  images as independent) and both models' calibration error. It is stored in the registry
  under ``evaluations/``, keyed by the SHA-256 of the candidate (and of its calibrated copy,
  the file that gets registered) and of the reference it was compared with.
* :func:`check_activation` is the rule ``brgan models activate`` applies: the first activation
  of a registry needs no evidence; any other needs a record of this candidate against the
  active model, and is refused when the candidate is worse (by default: a negative difference)
  or, with ``require="better"``, when it is not significantly better (CI above 0).
  ``--force --reason`` overrides, and says so in the audit log.
* The audit log (``audit.jsonl`` in the registry, append-only, one JSON object per line) records
  who activated or rolled back what, when, on which evidence, and why.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from brgan_core.errors import BrganCoreError

EVALUATIONS = "evaluations"
AUDIT_LOG = "audit.jsonl"
REQUIREMENTS = ("not-worse", "better")


class PromotionError(BrganCoreError):
    """An activation the evidence does not allow (the message says what is missing)."""


@dataclass(frozen=True)
class EvaluationRecord:
    """A candidate against a reference model on the same held-out test images."""

    candidate_sha256: tuple[str, ...]  # the evaluated file and its calibrated copy, if written
    reference_sha256: str
    candidate_auc: float
    reference_auc: float
    delta_auc: float  # candidate − reference
    delta_ci: tuple[float, float]  # patient-clustered bootstrap, 95 %
    delong_p: float | None
    n_images: int
    n_patients: int
    candidate_ece: float
    reference_ece: float
    data: str
    n_boot: int
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def verdict(self) -> str:
        """``better`` (the CI lies above 0), ``worse`` (a negative difference), else
        ``not significantly different``."""
        if self.delta_ci[0] > 0:
            return "better"
        if self.delta_auc < 0:
            return "worse"
        return "not significantly different"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvaluationRecord:
        values = {k: v for k, v in data.items() if k != "verdict"}
        values["candidate_sha256"] = tuple(values["candidate_sha256"])
        values["delta_ci"] = tuple(values["delta_ci"])
        return cls(**values)

    def summary(self) -> str:
        low, high = self.delta_ci
        return (
            f"AUC {self.candidate_auc:.3f} vs {self.reference_auc:.3f} (Δ {self.delta_auc:+.3f}, "
            f"patient-bootstrap 95% CI [{low:+.3f}, {high:+.3f}], DeLong p "
            f"{'n/a' if self.delong_p is None else f'{self.delong_p:.3g}'}; {self.n_images} "
            f"images of {self.n_patients} patients): {self.verdict}"
        )


def paired_patient_bootstrap(
    labels: Sequence[int],
    reference: Sequence[float],
    candidate: Sequence[float],
    patients: Sequence[str],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(AUC_candidate − AUC_reference, CI low, CI high): patients resampled with their images."""
    from brgan_core.evaluation.seeds import hierarchical_contrast

    return hierarchical_contrast(
        np.asarray(labels), [reference], [candidate], list(patients), n_boot=n_boot, seed=seed
    )


def record_path(registry_root: Path, candidate_sha: str, reference_sha: str) -> Path:
    return registry_root / EVALUATIONS / f"{candidate_sha}-vs-{reference_sha}.json"


def save_record(registry_root: Path, record: EvaluationRecord) -> list[Path]:
    """Write the record once per candidate hash (the file and its calibrated copy)."""
    paths = []
    for sha in record.candidate_sha256:
        path = record_path(registry_root, sha, record.reference_sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record.to_json(), indent=2))
        tmp.replace(path)
        paths.append(path)
    return paths


def find_record(
    registry_root: Path, candidate_sha: str, reference_sha: str
) -> EvaluationRecord | None:
    path = record_path(registry_root, candidate_sha, reference_sha)
    if not path.is_file():
        return None
    record = EvaluationRecord.from_json(json.loads(path.read_text()))
    if candidate_sha not in record.candidate_sha256 or record.reference_sha256 != reference_sha:
        return None  # a 16-character prefix collision: not this pair
    return record


def check_activation(
    record: EvaluationRecord | None,
    *,
    first: bool,
    require: str = "not-worse",
    force: bool = False,
    reason: str | None = None,
) -> str:
    """The evidence line for the audit log, or :class:`PromotionError` naming what is missing."""
    if require not in REQUIREMENTS:
        raise PromotionError(f"require must be one of {', '.join(REQUIREMENTS)}, not {require!r}")
    if force and not (reason and reason.strip()):
        raise PromotionError("--force needs --reason \"why\" (it goes into the audit log)")
    if first:
        return "first activation of this registry (no evidence needed)"
    if record is None:
        if force:
            return "FORCED without an evaluation against the active model"
        raise PromotionError(
            "no evaluation of this version against the active model: run `brgan evaluate "
            "CANDIDATE --compare active --data HELD_OUT_DATA` first (or --force --reason)"
        )
    numbers = (record.delta_auc, *record.delta_ci, record.candidate_auc, record.reference_auc)
    if not all(np.isfinite(numbers)):
        if force:
            return "FORCED; the evaluation record holds non-finite numbers"
        raise PromotionError(
            "the evaluation record holds non-finite AUCs (one class missing in its test data?): "
            "evaluate again on held-out data with both classes"
        )
    refused = record.verdict == "worse" or (require == "better" and record.verdict != "better")
    if refused and not force:
        want = "better than" if require == "better" else "at least as good as"
        raise PromotionError(
            f"the candidate is not {want} the active model: {record.summary()}; "
            "activate anyway only with --force --reason"
        )
    return ("FORCED; " if refused else "") + record.summary()


def audit(registry_root: Path, action: str, **details: Any) -> dict[str, Any]:
    """Append one entry to the registry's audit log (fsynced); returns it."""
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "user": _user(),
        "host": socket.gethostname(),
        "action": action,
        **details,
    }
    path = registry_root / AUDIT_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(entry, sort_keys=True) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return entry


def read_audit(registry_root: Path) -> list[dict[str, Any]]:
    path = registry_root / AUDIT_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary UID)
        return f"uid {os.getuid()}"
