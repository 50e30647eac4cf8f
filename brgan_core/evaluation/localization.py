"""CAM top-1 localization error (paper Table 2; ILSVRC style at an IoU threshold of 0.1).

From a class activation map to a box (:func:`cam_to_box`): min–max normalize the map, keep the
pixels at or above ``fraction`` of the peak, take the connected region (4-connectivity) that
holds the peak, and return its bounding box. This is the region the service reports to
radiologists (DESIGN.md: "the connected area where the CAM is ≥ 50% of its peak, around the
peak"; :func:`brgan_core.inference.region_box`, same default ``fraction`` 0.5 and the same
connectivity; the model's CAMs are already min–max normalized, so both agree), so the metric
measures what the service shows. Zhou et al. (CAM, CVPR 2016) used 0.2 — pass ``fraction=0.2``
to reproduce that. The paper does not say which it used.

Top-1 localization error (:func:`localization_error`) over the *malignant* images that have at
least one ground-truth box: an image is localized when its predicted box has IoU ≥ ``t`` with
*some* ground-truth box. ILSVRC's top-1 error (which the paper follows) also requires the
predicted class to be right: with ``require_correct_class=True`` (the default) a malignant image
counts as localized only when it is also classified malignant; ``False`` gives the pure
localization error (sometimes called GT-known).

Boxes are ``(x0, y0, x1, y1)`` in pixel coordinates (column, row), end-exclusive, as in
:mod:`brgan_core.data.records`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from brgan_core.data.records import Box


@dataclass(frozen=True)
class LocalizationResult:
    """Top-1 localization error and the counts it comes from."""

    error: float
    localized: int
    evaluated: int
    skipped_no_box: int
    iou_threshold: float
    require_correct_class: bool


def cam_to_box(
    cam: ArrayLike,
    *,
    fraction: float = 0.5,
    image_shape: tuple[int, int] | None = None,
) -> Box | None:
    """Bounding box of the connected region ≥ ``fraction`` × peak around the CAM's peak.

    ``image_shape`` (rows, columns) scales the box from CAM cells to image pixels when the CAM
    is smaller than the image (a cell covers ``image/cam`` pixels). Returns ``None`` for a CAM
    that is constant or not finite (no peak to localize).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    a = np.asarray(cam, dtype=np.float64)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"cam must be a non-empty H×W array, got shape {a.shape}")
    if not np.isfinite(a).all():
        return None
    low, peak = a.min(), a.max()
    if peak <= low:
        return None
    # Threshold relative to the map's range so that negative CAM values do not matter.
    level = low + fraction * (peak - low)
    regions, _ = ndimage.label(a >= level)  # 4-connectivity, as brgan_core.inference
    peak_row, peak_col = np.unravel_index(int(np.argmax(a)), a.shape)
    rows, cols = np.nonzero(regions == regions[peak_row, peak_col])
    sy, sx = (1.0, 1.0)
    if image_shape is not None:
        sy, sx = image_shape[0] / a.shape[0], image_shape[1] / a.shape[1]
    return (
        float(cols.min() * sx),
        float(rows.min() * sy),
        float((cols.max() + 1) * sx),
        float((rows.max() + 1) * sy),
    )


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes (end-exclusive)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def localization_error(
    cams: Sequence[ArrayLike],
    gt_boxes: Sequence[Sequence[Box]],
    y_true: ArrayLike,
    y_pred: ArrayLike | None = None,
    *,
    iou_threshold: float = 0.1,
    fraction: float = 0.5,
    image_shapes: Sequence[tuple[int, int] | None] | None = None,
    require_correct_class: bool = True,
) -> LocalizationResult:
    """Top-1 localization error over malignant images with ground-truth boxes.

    ``y_pred`` holds predicted labels (0/1, e.g. ``p >= threshold``); it is required when
    ``require_correct_class`` is true. ``image_shapes[i]`` maps CAM ``i`` to image pixels
    (see :func:`cam_to_box`); ``None`` means the CAM is already at image resolution.
    """
    y = np.asarray(y_true)
    n = len(cams)
    if len(gt_boxes) != n or len(y) != n:
        raise ValueError(f"cams ({n}), gt_boxes ({len(gt_boxes)}), y_true ({len(y)}) differ")
    if image_shapes is not None and len(image_shapes) != n:
        raise ValueError(f"image_shapes has {len(image_shapes)} entries, cams {n}")
    if require_correct_class:
        if y_pred is None:
            raise ValueError(
                "require_correct_class=True (ILSVRC top-1) needs y_pred, the predicted labels;"
                " pass them or set require_correct_class=False"
            )
        pred = np.asarray(y_pred)
        if len(pred) != n:
            raise ValueError(f"y_pred has {len(pred)} entries, cams {n}")
    localized = evaluated = skipped = 0
    for i in range(n):
        if y[i] != 1:
            continue
        if not gt_boxes[i]:
            skipped += 1
            continue
        evaluated += 1
        if require_correct_class and pred[i] != 1:
            continue
        shape = image_shapes[i] if image_shapes is not None else None
        box = cam_to_box(cams[i], fraction=fraction, image_shape=shape)
        if box is not None and max(box_iou(box, gt) for gt in gt_boxes[i]) >= iou_threshold:
            localized += 1
    if evaluated == 0:
        raise ValueError("no malignant image with a ground-truth box to evaluate")
    return LocalizationResult(
        error=1 - localized / evaluated,
        localized=localized,
        evaluated=evaluated,
        skipped_no_box=skipped,
        iou_threshold=iou_threshold,
        require_correct_class=require_correct_class,
    )
