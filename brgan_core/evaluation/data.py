"""Which pairs an evaluation uses: the patient-wise split of training, re-made by seed.

Calibration (temperature, threshold) uses the *validation* split; metrics use the *test* split
(or every pair of a separately generated test set, ``split="all"``). The split is
:func:`brgan_core.data.splits.split_pairs` with the training run's ``split_seed`` and
``ratios`` — read from the run's ``train_config.json`` beside the checkpoint when there is one
(:func:`run_split_settings`), so no test patient was seen in training. The checkpoint's
training-data fingerprint is compared with the training split made here; a mismatch (another
seed, other data) is reported, since the "test" images may then have been trained on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from brgan_core.data.readers import read_dataset
from brgan_core.data.records import PairRecord
from brgan_core.data.splits import DEFAULT_RATIOS, split_pairs
from brgan_core.evaluation.runner import EvaluationError

SPLITS = ("test", "val", "all")


@dataclass(frozen=True)
class SplitSettings:
    """The patient-wise split of a training run."""

    seed: int = 0
    ratios: tuple[float, float, float] = DEFAULT_RATIOS
    source: str = "defaults"


def run_split_settings(checkpoint: str | Path) -> SplitSettings | None:
    """``split_seed`` and ``ratios`` from the ``train_config.json`` of the checkpoint's run.

    Looks beside the checkpoint (``best.safetensors``) and one folder up
    (``checkpoints/epoch-NNN.safetensors``); ``None`` when neither has one.
    """
    path = Path(checkpoint).resolve()
    for folder in (path.parent, path.parent.parent):
        config = folder / "train_config.json"
        if config.is_file():
            try:
                data = json.loads(config.read_text(encoding="utf-8")).get("data", {})
                ratios = tuple(float(r) for r in data.get("ratios", DEFAULT_RATIOS))
                return SplitSettings(int(data.get("split_seed", 0)), ratios, str(config))  # type: ignore[arg-type]
            except (ValueError, TypeError, AttributeError) as exc:
                raise EvaluationError(f"{config}: cannot read the split settings: {exc}") from exc
    return None


@dataclass(frozen=True)
class EvalPairs:
    """The pairs to evaluate and to calibrate on, and how they were chosen (report notes)."""

    test: list[PairRecord]
    val: list[PairRecord] | None
    notes: tuple[str, ...]
    fingerprint_matches: bool | None


def _fingerprints(train: Sequence[PairRecord]) -> set[str]:
    """Fingerprints of the training pairs as read and with absolute paths (training may have
    named the same data by another path)."""
    from dataclasses import replace

    from brgan_core.training.dataset import data_fingerprint

    absolute = [
        PairRecord(
            replace(p.target, path=p.target.path.resolve()),
            replace(p.contralateral, path=p.contralateral.path.resolve()),
        )
        for p in train
    ]
    return {data_fingerprint(train), data_fingerprint(absolute)}


def _patients(pairs: Sequence[PairRecord]) -> int:
    return len({p.patient_id for p in pairs})


def _describe(pairs: Sequence[PairRecord]) -> str:
    malignant = sum(p.label for p in pairs)
    return (
        f"{len(pairs)} images of {_patients(pairs)} patients "
        f"({malignant} malignant, {len(pairs) - malignant} benign)"
    )


def select_pairs(
    data: str | Path,
    *,
    kind: str = "manifest",
    split: str = "test",
    val_data: str | Path | None = None,
    settings: SplitSettings | None = None,
    fingerprint: str = "",
    val_split: str = "val",
) -> EvalPairs:
    """Read ``data`` and choose test and validation pairs (see the module docstring).

    ``split``: ``test`` (the test split of ``data``), ``val`` or ``all`` (every pair: a
    separate test set). Validation pairs: the validation split of ``val_data`` when given, else
    of ``data`` when ``split`` is ``test``, else ``None`` (use the checkpoint's stored
    calibration); ``val_split = "all"``: every pair of ``val_data`` (a separately generated
    validation set, ``data.val_root`` in training). ``fingerprint``: the checkpoint's
    training-data fingerprint, checked against the training split of the data the validation
    pairs come from (not checkable with ``val_split = "all"``).
    """
    if split not in SPLITS:
        raise EvaluationError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    settings = settings or SplitSettings()
    split_text = (
        f"patient-wise split seed {settings.seed}, ratios "
        f"{'/'.join(f'{r:g}' for r in settings.ratios)} ({settings.source})"
    )

    def read(root: str | Path) -> list[PairRecord]:
        report = read_dataset(kind, root)
        if not report.pairs:
            dropped = ", ".join(f"{k}: {v}" for k, v in report.dropped.items()) or "none"
            raise EvaluationError(f"{root}: no usable pairs found (dropped — {dropped})")
        return report.pairs

    pairs = read(data)
    splits = split_pairs(pairs, seed=settings.seed, ratios=settings.ratios)
    test = pairs if split == "all" else splits[split]
    if not test:
        raise EvaluationError(f"{data}: the {split} split is empty ({split_text})")
    if split == "all":
        notes = [f"Evaluated: {_describe(test)}, every pair of {data}."]
    else:
        notes = [f"Evaluated: {_describe(test)}, the {split} split of {data} ({split_text})."]

    val: list[PairRecord] | None = None
    train: list[PairRecord] | None = None
    if val_split not in ("val", "all"):
        raise EvaluationError(f"val_split must be val or all, not {val_split!r}")
    if val_data is not None and val_split == "all":
        val, val_source = read(val_data), val_data
        split_text = "every pair: a separately generated validation set"
    elif val_data is not None:
        val_splits = split_pairs(read(val_data), seed=settings.seed, ratios=settings.ratios)
        val, train, val_source = val_splits.val, val_splits.train, val_data
    elif split == "test":
        val, train, val_source = splits.val, splits.train, data
    if val is not None:
        if not val:
            raise EvaluationError(f"{val_source}: the validation split is empty ({split_text})")
        which = "all" if val_data is not None and val_split == "all" else "the validation split"
        notes.append(
            f"Calibration (temperature, threshold): {_describe(val)}, {which} of "
            f"{val_source} ({split_text})."
        )
    matches: bool | None = None
    if fingerprint and train is not None:
        matches = fingerprint in _fingerprints(train)
        notes.append(
            "The training split made here matches the checkpoint's training-data fingerprint."
            if matches
            else "WARNING: the training split made here does NOT match the checkpoint's "
            "training-data fingerprint (another split seed or ratios, other data, or moved "
            "files): test images may have been used in training."
        )
    return EvalPairs(test, val, tuple(notes), matches)
