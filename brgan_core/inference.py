"""Scoring one target/contralateral pair with a registered BR-GAN checkpoint.

The worker, the demo and the tests call the same functions (DESIGN.md data flow step 6):
preprocess both images, run ``predict`` (training-only modules never run), and map the CAM
back onto the target's original pixel grid through the preprocessing ``Geometry``. The
suspicious region is the connected area where the CAM is at least half of its peak, around the
peak (DESIGN.md step 6).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from brgan_core.checkpoint import CheckpointError, CheckpointInfo, load_checkpoint

REGION_FRACTION = 0.5


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for ``predict``, with the provenance every output must carry."""

    model: Any
    info: CheckpointInfo
    version: str
    sha256: str
    input_size: tuple[int, int]
    device: str
    #: The checkpoint's domain-shift guard (:mod:`brgan_core.shift`), or None.
    guard: Any = None


@dataclass(frozen=True)
class PairScore:
    """BR-GAN's answer for one target image."""

    p_malignant: float
    cam: np.ndarray  # model space (H, W), [0, 1]
    cam_original: np.ndarray  # the target's stored pixel grid (rows, cols), [0, 1]
    region: tuple[int, int, int, int] | None  # x0, y0, x1, y1 on the original grid
    #: Closed outline of the same region (x, y) on the original grid; None when the CAM is 0.
    outline: tuple[tuple[float, float], ...] | None = None
    peak: tuple[float, float] | None = None  # (x, y) of the CAM maximum on the original grid
    #: Distance of the target's features from the training distribution (None: no guard).
    shift_distance: float | None = None


def pick_device(requested: str = "auto") -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise CheckpointError("device 'cuda' requested but no CUDA device is available")
    return requested


def load_model(path: str | Path, sha256: str, version: str, device: str = "auto") -> LoadedModel:
    """Build the model a checkpoint describes and load its weights (hash verified first)."""
    import torch

    from brgan_core.model import BRGAN, BRGANConfig

    state_dict, info = load_checkpoint(path, expected_sha256=sha256)
    try:
        config = BRGANConfig.from_dict(info.model_config)
        model = BRGAN(config)
        model.load_state_dict(state_dict, strict=True)
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot build the checkpoint's model: {exc}") from exc
    size = info.preprocessing.get("size")
    if not (isinstance(size, list | tuple) and len(size) == 2):
        raise CheckpointError(f"{path}: checkpoint has no preprocessing size")
    dev = pick_device(device)
    model.set_temperature(info.temperature)  # the calibrated T stored with the checkpoint
    model.to(torch.device(dev)).eval()
    from brgan_core.shift import guard_of

    try:
        guard = guard_of(info)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    return LoadedModel(model, info, version, sha256, (int(size[0]), int(size[1])), dev, guard)


def region_box(cam: np.ndarray, fraction: float = REGION_FRACTION) -> tuple[int, int, int, int]:
    """Box ``(x0, y0, x1, y1)``, end-exclusive, of the area ≥ fraction·peak around the peak."""
    from scipy import ndimage

    peak_index = np.unravel_index(int(np.argmax(cam)), cam.shape)
    above = cam >= fraction * float(cam[peak_index])
    labels, _ = ndimage.label(above)
    component = labels == labels[peak_index]
    rows = np.flatnonzero(component.any(axis=1))
    cols = np.flatnonzero(component.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def cam_peak(cam: np.ndarray) -> tuple[float, float]:
    """``(x, y)`` of the CAM maximum: the centre of the first argmax pixel, in the image
    coordinates of PS3.3 C.18.6.1.2 (the top-left corner of the top-left pixel is (0, 0), so
    that pixel's centre is (0.5, 0.5))."""
    row, col = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return float(col) + 0.5, float(row) + 0.5


def region_outline(
    cam: np.ndarray, fraction: float = REGION_FRACTION
) -> tuple[tuple[float, float], ...] | None:
    """Closed outline ``((x, y), …, first point again)`` of the CAM region (the connected area
    ≥ fraction·peak around the peak, DESIGN.md step 6): the convex hull of its pixel corners, in
    stored-pixel coordinates as PS3.3 C.18.6.1.2 defines them for SCOORD (column, row; the pixel
    (0, 0) spans 0…1 on both axes). None when the CAM is 0."""
    from scipy import ndimage
    from scipy.spatial import ConvexHull, QhullError

    peak_index = np.unravel_index(int(np.argmax(cam)), cam.shape)
    peak = float(cam[peak_index])
    if not peak > 0:
        return None
    labels, _ = ndimage.label(cam >= fraction * peak)
    component = labels == labels[peak_index]
    # Boundary pixels only (the hull of the interior adds nothing), as their four corners.
    edge = component & ~ndimage.binary_erosion(component)
    rows, cols = np.nonzero(edge)
    corners = np.concatenate(
        [np.stack([cols + dx, rows + dy], axis=1) for dx in (0, 1) for dy in (0, 1)]
    ).astype(np.float64)
    try:
        hull = ConvexHull(corners)
    except QhullError:  # degenerate (a line of pixels): use the bounding box
        x0, y0 = corners.min(axis=0)
        x1, y1 = corners.max(axis=0)
        box = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
        return (*box, box[0])
    points = [(float(x), float(y)) for x, y in corners[hull.vertices]]
    return (*points, points[0])


def score_pair(loaded: LoadedModel, target: Any, contralateral: Any | None) -> PairScore:
    """Score a preprocessed target against its preprocessed contralateral.

    ``target``/``contralateral`` are :class:`brgan_core.preprocess.PreprocessedImage`;
    ``contralateral`` None scores the target alone (a model with the contralateral branch, or
    one that never reads it; SBF and the paired generator raise ``ValueError``).
    """
    import torch

    def tensor(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(
            loaded.device
        )

    from brgan_core.shift import capture, describe

    with capture(loaded.model) as acts:  # the guard's descriptor, from the same forward pass
        prediction = loaded.model.predict(
            tensor(target.image), None if contralateral is None else tensor(contralateral.image)
        )
    p = float(prediction.p_malignant.reshape(-1)[0])
    cam_small = prediction.cam[0].detach().float().cpu().numpy()
    cam = _resize(cam_small, target.image.shape)
    cam = np.where(target.mask, cam, 0.0).astype(np.float32)
    cam_original = target.geometry.heatmap_to_original(cam)
    region = outline = peak = None
    if float(cam_original.max()) > 0:
        region = region_box(cam_original)
        outline = region_outline(cam_original)
        peak = cam_peak(cam_original)
    distance = None
    if loaded.guard is not None:
        distance = float(loaded.guard.distance(describe(acts, 1))[0])
    return PairScore(p, cam, cam_original.astype(np.float32), region, outline, peak, distance)


def _resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a small map (e.g. a CAM at feature resolution) to ``shape``."""
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    out = F.interpolate(tensor, size=shape, mode="bilinear", align_corners=False)
    return out[0, 0].numpy()
