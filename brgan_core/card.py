"""The model card: what a checkpoint is, what it was trained and tested on, and what it needs.

Derived from the checkpoint's own metadata (:class:`~brgan_core.checkpoint.CheckpointInfo`), so
it cannot drift from the weights. ``brgan models show`` prints it; docs/model.md explains it.

Two facts decide how the worker may use a model on an image without a contralateral view:

* ``uses_contralateral_at_inference``: SBF fuses f_C into the classifier input and the paired
  generator conditions G_T2C on it; the paper's BR-GAN (f_H = G_T2C(f_T), Sect. 2.1) and vanilla
  never read it at inference; our ``contralateral_branch`` variant reads it when it is there.
* ``evaluated_without_contralateral``: the AUC measured on held-out validation images scored with
  no contralateral (metric ``val_auc_without_contralateral``, written by calibration for a model
  with the contralateral branch), or None when it was never measured.

Only a model evaluated that way may score an image without a contralateral
(:func:`may_score_without_contralateral`); for any other the image stays *not analyzed: no
contralateral view*.
"""

from __future__ import annotations

import math
from typing import Any

WITHOUT_CONTRALATERAL_METRIC = "val_auc_without_contralateral"


def uses_contralateral_at_inference(model_config: dict[str, Any]) -> bool:
    return (
        model_config.get("bilateral") == "sbf"
        or bool(model_config.get("paired_generator"))
        or bool(model_config.get("contralateral_branch"))
    )


def can_score_without_contralateral(model_config: dict[str, Any]) -> bool:
    """The architecture can score a target alone (SBF and the paired generator cannot)."""
    return model_config.get("bilateral") != "sbf" and not model_config.get("paired_generator")


def may_score_without_contralateral(info: Any) -> bool:
    """True only when the card says the model was evaluated on images without a contralateral
    (a finite AUC) and its architecture can score one alone."""
    auc = info.metrics.get(WITHOUT_CONTRALATERAL_METRIC)
    measured = isinstance(auc, int | float) and not isinstance(auc, bool) and math.isfinite(auc)
    return measured and can_score_without_contralateral(getattr(info, "model_config", {}) or {})


def model_card(info: Any) -> dict[str, Any]:
    """The card of a :class:`~brgan_core.checkpoint.CheckpointInfo`, JSON-ready."""
    config = info.model_config
    guard = info.feature_guard or {}
    metrics = dict(info.metrics)
    return {
        "intended_use": (
            "RESEARCH USE ONLY - not a medical device"
            + (
                "; DEMO MODEL trained on synthetic phantoms, its scores mean nothing clinically"
                if info.synthetic_training
                else ""
            )
        ),
        "architecture": {
            "backbone": config.get("backbone"),
            "bilateral": config.get("bilateral"),
            "consistency": config.get("consistency"),
            "residual_embedding": config.get("residual_embedding"),
            "mask": config.get("mask"),
            "paired_generator": config.get("paired_generator", False),
            "contralateral_branch": config.get("contralateral_branch", False),
            "input_size": info.preprocessing.get("size"),
        },
        "uses_contralateral_at_inference": uses_contralateral_at_inference(config),
        "evaluated_without_contralateral": metrics.get(WITHOUT_CONTRALATERAL_METRIC),
        "scores_images_without_contralateral": may_score_without_contralateral(info),
        "training_data": {
            "synthetic": info.synthetic_training,
            "fingerprint": info.data_fingerprint,
        },
        "metrics": metrics,
        "calibration": {"temperature": info.temperature, "threshold": info.threshold},
        "domain_shift_guard": (
            {
                "threshold": guard.get("threshold"),
                "percentile": guard.get("percentile"),
                "features": len(guard.get("mean", [])),
                "components": len(guard.get("variances", [])),
                "train_images": guard.get("n_train"),
                "validation_images": guard.get("n_val"),
            }
            if guard
            else None
        ),
    }
