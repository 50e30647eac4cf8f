"""What a worker does with one ``brgan.analyze_study`` payload.

Payload (JSON, built by the coordinator; never pixels)::

    {"schema": 1, "study_uid": "...", "study_version": 1,
     "model": {"version": "v3", "sha256": "..."},
     "pairs": [{"target": {"sop_instance_uid": "...", "path": "/spool/..."},
                "contralateral": {"sop_instance_uid": "...", "path": "/spool/..."},
                "laterality": "L", "view": "CC"}, ...]}

Result (JSON summary returned through the result backend)::

    {"schema": 1, "study_uid", "study_version", "task_id",
     "model": {"version", "sha256", "research_only", "threshold"},
     "images": [{"sop_instance_uid", "contralateral_uid", "laterality", "view",
                 "p_malignant", "positive", "region": [x0, y0, x1, y1] | null,
                 "heatmap_path"}],
     "not_analyzed": [{"sop_instance_uid", "reason"}],
     "breasts": {"L": p | null, "R": p | null}, "exam": p | null,
     "timings": {"load_model_s", "preprocess_s", "predict_s", "total_s"}}

Scores (DESIGN.md step 6): breast = max of its images, exam = max of breasts. An image that
cannot be decoded is reported as not analyzed with the reason (and so is its partner's pair),
never dropped and never scored negative.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from brgan_core.checkpoint import CheckpointError
from brgan_core.errors import BrganCoreError
from brgan_core.registry import Registry
from plugin.config import Settings

PAYLOAD_SCHEMA = 1
_MODELS: dict[tuple[str, str], Any] = {}


class PayloadError(ValueError):
    """The task payload is malformed (names the missing or wrong key)."""


def _require(mapping: dict[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        raise PayloadError(f"analyze_study payload: {where} has no {key!r}")
    return mapping[key]


def get_model(settings: Settings, version: str, sha256: str) -> Any:
    """The named model version, loaded once per worker process, hash verified."""
    from brgan_core.inference import load_model

    key = (version, sha256)
    if key not in _MODELS:
        entry = Registry(settings.registry_path).get(version)
        if entry.sha256 != sha256:
            raise CheckpointError(
                f"model {version}: task asks for sha256 {sha256[:12]}… but this worker's "
                f"registry has {entry.sha256[:12]}…; the registries differ — refusing"
            )
        _, path = Registry(settings.registry_path).resolve(version)
        _MODELS.clear()  # one model in memory at a time
        _MODELS[key] = load_model(path, sha256, version, settings.device)
    return _MODELS[key]


def aggregate(images: list[dict[str, Any]]) -> tuple[dict[str, float | None], float | None]:
    """Breast score = max of its images; exam score = max of breasts (DESIGN.md step 6)."""
    breasts: dict[str, float | None] = {"L": None, "R": None}
    for image in images:
        side = image["laterality"]
        current = breasts.get(side)
        breasts[side] = (
            image["p_malignant"] if current is None else max(current, image["p_malignant"])
        )
    scored = [p for p in breasts.values() if p is not None]
    return breasts, (max(scored) if scored else None)


def _save_heatmap(cam_original: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    Image.fromarray(np.clip(cam_original * 255.0 + 0.5, 0, 255).astype(np.uint8)).save(tmp)
    tmp.replace(path)


def analyze_study_payload(
    payload: dict[str, Any], settings: Settings, task_id: str | None = None
) -> dict[str, Any]:
    """Score every pair of a study; see the module docstring for the payload and the result."""
    from brgan_core.inference import score_pair
    from brgan_core.preprocess import preprocess

    started = time.perf_counter()
    if payload.get("schema") != PAYLOAD_SCHEMA:
        raise PayloadError(f"analyze_study payload schema {payload.get('schema')!r} unsupported")
    study_uid = _require(payload, "study_uid", "payload")
    model_ref = _require(payload, "model", "payload")
    pairs = _require(payload, "pairs", "payload")

    loaded = get_model(
        settings, _require(model_ref, "version", "model"), _require(model_ref, "sha256", "model")
    )
    load_s = time.perf_counter() - started
    out_dir = settings.results_path / (task_id or "untracked")

    prepared: dict[str, Any] = {}
    failures: dict[str, str] = {}
    preprocess_s = predict_s = 0.0

    def prepare(ref: dict[str, Any]) -> Any:
        nonlocal preprocess_s
        uid = _require(ref, "sop_instance_uid", "pair image")
        if uid not in prepared and uid not in failures:
            t0 = time.perf_counter()
            try:
                prepared[uid] = preprocess(
                    Path(_require(ref, "path", "pair image")), size=loaded.input_size
                )
            except (BrganCoreError, OSError) as exc:
                failures[uid] = f"cannot decode image: {getattr(exc, 'reason', exc)}"
            preprocess_s += time.perf_counter() - t0
        return prepared.get(uid)

    images: list[dict[str, Any]] = []
    not_analyzed: list[dict[str, str]] = []
    threshold = loaded.info.threshold
    for pair in pairs:
        target_ref = _require(pair, "target", "pair")
        contra_ref = _require(pair, "contralateral", "pair")
        target, contra = prepare(target_ref), prepare(contra_ref)
        target_uid = target_ref["sop_instance_uid"]
        if target is None or contra is None:
            reason = failures.get(target_uid) or (
                "contralateral view could not be decoded: "
                + failures.get(contra_ref["sop_instance_uid"], "unknown reason")
            )
            not_analyzed.append({"sop_instance_uid": target_uid, "reason": reason})
            continue
        t0 = time.perf_counter()
        score = score_pair(loaded, target, contra)
        predict_s += time.perf_counter() - t0
        heatmap = out_dir / f"heatmap-{len(images):02d}.png"
        _save_heatmap(score.cam_original, heatmap)
        images.append(
            {
                "sop_instance_uid": target_uid,
                "contralateral_uid": contra_ref["sop_instance_uid"],
                "laterality": _require(pair, "laterality", "pair"),
                "view": _require(pair, "view", "pair"),
                "p_malignant": score.p_malignant,
                "positive": None if threshold is None else bool(score.p_malignant >= threshold),
                "region": list(score.region) if score.region else None,
                "heatmap_path": str(heatmap),
            }
        )
    breasts, exam = aggregate(images)
    return {
        "schema": PAYLOAD_SCHEMA,
        "study_uid": study_uid,
        "study_version": payload.get("study_version", 1),
        "task_id": task_id,
        "model": {
            "version": loaded.version,
            "sha256": loaded.sha256,
            "research_only": loaded.info.research_only,
            "threshold": threshold,
        },
        "images": images,
        "not_analyzed": not_analyzed,
        "breasts": breasts,
        "exam": exam,
        "timings": {
            "load_model_s": round(load_s, 4),
            "preprocess_s": round(preprocess_s, 4),
            "predict_s": round(predict_s, 4),
            "total_s": round(time.perf_counter() - started, 4),
        },
    }
