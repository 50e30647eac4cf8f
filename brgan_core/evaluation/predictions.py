"""Model outputs on a dataset of pairs: :func:`predict_pairs` and :class:`Predictions`.

One pass of :meth:`BRGAN.predict` over a dataset gives labels, the *raw* {benign, malignant}
logits (captured from the classification layer by a forward hook, before the model's
temperature), p(malignant) as the model reports it, CAMs on the feature grid, ground-truth boxes
in model-input pixels (mapped through each image's preprocessing
:class:`~brgan_core.preprocess.Geometry`, recorded by :class:`GeometryRecorder`) and, optionally,
what the paper's FIDs need (f_T, f_C and f_H = G_T2C(f_T), captured with forward hooks and
reduced batch by batch, so feature maps are never all in memory). Model code is not touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from brgan_core.data.records import Box, PairRecord
from brgan_core.errors import BrganCoreError
from brgan_core.evaluation.calibration import malignancy_logit
from brgan_core.evaluation.fid import fid

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from brgan_core.model import BRGAN
    from brgan_core.training.dataset import Loaded, Loader

#: ``progress(stage, done, total)``: called after every batch (the CLI draws a bar from it).
ProgressFn = Callable[[str, int, int], None]

#: FID pairs of feature sets, in the paper's order (Sect. 3.2).
FID_PAIRS: tuple[str, ...] = (
    "target_contralateral",
    "generated_contralateral",
    "target_generated",
    "target_generated_outside_lesions",
)


class EvaluationError(BrganCoreError):
    """Evaluation cannot run: no pairs, one class only, an unusable checkpoint, ..."""


# -- geometry: ground-truth boxes into model space ----------------------------------------------


class GeometryRecorder:
    """A :class:`~brgan_core.training.dataset.PairDataset` loader that remembers geometries.

    Wraps any ``loader(path, size)``; every loaded image's ``.geometry`` (the preprocessing
    :class:`~brgan_core.preprocess.Geometry`) is kept by path, so ground-truth boxes in stored
    pixels can be mapped to model-input pixels. A loaded object without ``geometry`` is taken
    to be the stored image itself (boxes unchanged).
    """

    def __init__(self, loader: Loader | None = None) -> None:
        from brgan_core.training.dataset import preprocess_loader

        self.loader: Loader = loader or preprocess_loader
        self.geometries: dict[Path, Any] = {}

    def __call__(self, path: Path, size: tuple[int, int]) -> Loaded:
        loaded = self.loader(path, size)
        self.geometries[Path(path)] = getattr(loaded, "geometry", None)
        return loaded

    def box_to_model(self, path: Path, box: Box, size: tuple[int, int]) -> Box:
        """``box`` (stored pixels of ``path``) in model-input pixels."""
        if Path(path) not in self.geometries:
            self(path, size)  # e.g. the dataset's cache was filled before we were attached
        geometry = self.geometries[Path(path)]
        return box if geometry is None else geometry.box_to_model(box)


def _recorder(dataset: Any) -> GeometryRecorder | None:
    """The dataset's recorder, attaching one to a PairDataset that has none."""
    from brgan_core.training.dataset import PairDataset

    if not isinstance(dataset, PairDataset):
        return None
    if not isinstance(dataset.loader, GeometryRecorder):
        dataset.loader = GeometryRecorder(dataset.loader)
    return dataset.loader


#: Preprocessed images are kept in memory (each image is a target once and a contralateral once,
#: and ``compare`` scores the same pairs again) while they take less than this many bytes.
CACHE_BYTES = 1 << 30


def eval_dataset(
    pairs: Sequence[PairRecord],
    size: tuple[int, int],
    *,
    loader: Loader | None = None,
    cache: bool | None = None,
) -> Dataset[Any]:
    """A PairDataset of ``pairs`` at model input ``size`` (rows, columns) that records geometry.

    The reference is always the contralateral (evaluation never uses random references).
    ``cache=None``: cache the preprocessed images when image and mask of every pair (float32)
    fit in :data:`CACHE_BYTES`.
    """
    from brgan_core.training.dataset import PairDataset

    if not pairs:
        raise EvaluationError("no pairs to evaluate")
    if cache is None:
        cache = len(pairs) * size[0] * size[1] * 4 * 2 <= CACHE_BYTES
    return PairDataset(pairs, size, loader=GeometryRecorder(loader), cache=cache)


# -- predictions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSummary:
    """What the FIDs need, gathered batch by batch (feature maps are not kept).

    Attributes:
        pooled: ``{"target", "contralateral", "generated"}`` → N×C global-average-pooled
            features (``generated`` only for bilateral = gan); set-level FID uses these.
        image_fid: per image, the FID between the spatial positions of two feature maps (the
            paper's "mean FID" reading, :func:`brgan_core.evaluation.fid.mean_fid`), one array
            of N values per :data:`FID_PAIRS` name; NaN where it cannot be computed (fewer than
            two positions left after removing lesion cells).
    """

    pooled: dict[str, NDArray[np.float64]]
    image_fid: dict[str, NDArray[np.float64]]

    def mean_fids(self) -> dict[str, float | None]:
        """Mean over images of each per-image FID (``None`` when not available)."""
        out: dict[str, float | None] = {}
        for name in FID_PAIRS:
            values = self.image_fid.get(name)
            finite = values[np.isfinite(values)] if values is not None else np.empty(0)
            out[name] = float(finite.mean()) if finite.size else None
        return out

    def pooled_fids(self) -> dict[str, float | None]:
        """Set-level FID of the pooled features (one vector per image)."""
        pairs = {
            "target_contralateral": ("target", "contralateral"),
            "generated_contralateral": ("generated", "contralateral"),
            "target_generated": ("target", "generated"),
        }
        out: dict[str, float | None] = {}
        for name, (a, b) in pairs.items():
            if a in self.pooled and b in self.pooled and len(self.pooled[a]) >= 2:
                out[name] = fid(self.pooled[a], self.pooled[b])
            else:
                out[name] = None
        return out


@dataclass(frozen=True)
class Predictions:
    """One model's outputs on a dataset of N pairs, in dataset order.

    Attributes:
        ids: the target image of each pair (SOPInstanceUID, else its path).
        labels: ``[N]`` 1 = target malignant.
        logits: ``[N, 2]`` float32 raw {benign, malignant} logits (before any temperature).
        temperature: the model's temperature while predicting.
        p_malignant: ``[N]`` p(malignant) exactly as :meth:`BRGAN.predict` returned it.
        cams: ``[N, h, w]`` CAMs on the feature grid, min–max normalized (model-space field of
            view: cell (i, j) covers model pixels ``i·H/h …``).
        boxes: per pair, the target's ground-truth boxes in model-input pixels.
        model_shape: model input ``(H, W)``.
        features: FID inputs (:func:`predict_pairs` with ``features=True``), else ``None``.
    """

    ids: tuple[str, ...]
    labels: NDArray[np.int64]
    logits: NDArray[np.float32]
    temperature: float
    p_malignant: NDArray[np.float64]
    cams: NDArray[np.float32]
    boxes: tuple[tuple[Box, ...], ...]
    model_shape: tuple[int, int]
    features: FeatureSummary | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def malignancy_logit(self) -> NDArray[np.float64]:
        """``z = logit_malignant − logit_benign`` (raw): the score AUC and DeLong use."""
        return malignancy_logit(self.logits)

    def calibrated(self, temperature: float) -> NDArray[np.float64]:
        """p(malignant) at ``temperature``, computed as :meth:`BRGAN.predict` does (float32)."""
        import torch

        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, not {temperature}")
        logits = torch.from_numpy(np.ascontiguousarray(self.logits, dtype=np.float32))
        scaled = logits / torch.tensor(float(temperature), dtype=torch.float32)
        return scaled.softmax(dim=1)[:, 1].double().numpy()


def _cell_mask(boxes: Sequence[Box], grid: tuple[int, int], shape: tuple[int, int]) -> NDArray:
    """True at the feature cells a box overlaps (model pixels → grid cells)."""
    h, w = grid
    sy, sx = shape[0] / h, shape[1] / w
    mask = np.zeros(grid, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        c0, c1 = max(0, math.floor(x0 / sx)), min(w, math.ceil(x1 / sx))
        r0, r1 = max(0, math.floor(y0 / sy)), min(h, math.ceil(y1 / sy))
        mask[r0:r1, c0:c1] = True
    return mask


def _image_fid(a: NDArray, b: NDArray, keep: NDArray | None = None) -> float:
    sa = a.reshape(a.shape[0], -1).T
    sb = b.reshape(b.shape[0], -1).T
    if keep is not None:
        sa, sb = sa[keep.reshape(-1)], sb[keep.reshape(-1)]
    return fid(sa, sb) if len(sa) >= 2 else math.nan


class _Capture:
    """Forward hooks that keep the latest output of a few submodules."""

    def __init__(self) -> None:
        self.outputs: dict[str, Any] = {}
        self.handles: list[Any] = []

    def add(self, name: str, module: Any) -> None:
        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            self.outputs[name] = output

        self.handles.append(module.register_forward_hook(hook))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


class _FeatureAccumulator:
    """Reduces each batch's feature maps to pooled vectors and per-image FIDs."""

    def __init__(self) -> None:
        self.pooled: dict[str, list[NDArray]] = {}
        self.image_fid: dict[str, list[float]] = {name: [] for name in FID_PAIRS}

    def add(
        self,
        maps: dict[str, Any],
        boxes: Sequence[Sequence[Box]],
        model_shape: tuple[int, int],
    ) -> None:
        """``maps``: ``target``, ``contralateral`` (and ``generated``) tensors ``[B, C, h, w]``;
        ``boxes``: each image's ground-truth boxes in model pixels."""
        arrays = {k: v.double().cpu().numpy() for k, v in maps.items()}
        for key, value in arrays.items():
            self.pooled.setdefault(key, []).append(value.mean(axis=(2, 3)))
        t_all, c_all, g_all = arrays["target"], arrays["contralateral"], arrays.get("generated")
        for i, (t, c) in enumerate(zip(t_all, c_all, strict=True)):
            self.image_fid["target_contralateral"].append(_image_fid(t, c))
            if g_all is None:
                continue
            g = g_all[i]
            lesion = _cell_mask(boxes[i], t.shape[1:], model_shape)
            self.image_fid["generated_contralateral"].append(_image_fid(g, c))
            self.image_fid["target_generated"].append(_image_fid(t, g))
            self.image_fid["target_generated_outside_lesions"].append(_image_fid(t, g, ~lesion))

    def summary(self, n: int) -> FeatureSummary:
        return FeatureSummary(
            pooled={k: np.concatenate(v) for k, v in self.pooled.items()},
            image_fid={
                k: np.asarray(v, dtype=np.float64) if v else np.full(n, np.nan)
                for k, v in self.image_fid.items()
            },
        )


def predict_pairs(
    model: BRGAN,
    dataset: Dataset[Any],
    *,
    batch_size: int = 8,
    device: str = "cpu",
    features: bool = False,
    progress: ProgressFn | None = None,
    stage: str = "predict",
    contralateral: bool = True,
) -> Predictions:
    """Run :meth:`BRGAN.predict` over ``dataset`` (pair items, e.g. :func:`eval_dataset`).

    With ``contralateral=False`` every target is scored as if its contralateral were missing
    (``predict(target, None)``; only a model with the contralateral branch, or one that never
    reads it, can).

    The model is moved to ``device``; its train/eval mode is restored afterwards. With
    ``features`` the backbone's f_T (and f_C) and G_T2C's f_H are captured by forward hooks and
    reduced to :class:`FeatureSummary` batch by batch.
    """
    import torch
    from torch.utils.data import DataLoader

    from brgan_core.training.dataset import collate_pairs

    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise EvaluationError("no pairs to evaluate")
    recorder = _recorder(dataset)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_pairs)
    dev = torch.device(device)
    model.to(dev)
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    capture = _Capture()
    capture.add("logits", model.classifier)
    paired = model.config.needs_contralateral_at_inference
    if not contralateral:
        if model.config.requires_contralateral_at_inference:
            raise EvaluationError(
                f"bilateral={model.config.bilateral!r}"
                + (" with paired_generator" if model.config.paired_generator else "")
                + " cannot score a target without its contralateral"
            )
        if features:
            raise EvaluationError("features are summarised only for pairs (contralateral=True)")
    if features:
        capture.add("backbone", model.backbone)
        if model.g_t2c is not None:
            capture.add("f_h", model.g_t2c)
    pairs: list[PairRecord] | None = list(dataset.pairs) if recorder is not None else None  # type: ignore[attr-defined]

    def model_boxes(index: int, shape: tuple[int, int]) -> tuple[Box, ...]:
        if pairs is None or recorder is None:
            return ()
        pair = pairs[index]
        return tuple(recorder.box_to_model(pair.target.path, box, shape) for box in pair.boxes)

    labels: list[NDArray] = []
    logits: list[NDArray] = []
    probs: list[NDArray] = []
    cams: list[NDArray] = []
    boxes: list[tuple[Box, ...]] = []
    accumulator = _FeatureAccumulator() if features else None
    model_shape = (0, 0)
    try:
        for batch in loader:
            batch = batch.to(dev)
            b, done = batch.target.shape[0], len(boxes)
            model_shape = (int(batch.target.shape[-2]), int(batch.target.shape[-1]))
            pred = model.predict(batch.target, batch.contralateral if contralateral else None)
            labels.append(batch.label.cpu().numpy())
            logits.append(capture.outputs["logits"].float().cpu().numpy())
            probs.append(pred.p_malignant.double().cpu().numpy())
            cams.append(pred.cam.float().cpu().numpy())
            boxes.extend(model_boxes(done + i, model_shape) for i in range(b))
            if accumulator is not None:
                f = capture.outputs["backbone"]
                if paired:  # one backbone pass over cat[target, contralateral]
                    maps = {"target": f[:b], "contralateral": f[b:]}
                else:
                    with torch.inference_mode():
                        maps = {"target": f, "contralateral": model.encode(batch.contralateral)}
                if "f_h" in capture.outputs:
                    maps["generated"] = capture.outputs["f_h"]
                accumulator.add(maps, boxes[done:], model_shape)
            if progress is not None:
                progress(stage, len(boxes), n)
    finally:
        capture.remove()
        for module, mode in modes:
            module.training = mode

    if pairs is not None:
        ids = [p.target.sop_instance_uid or str(p.target.path) for p in pairs]
    else:
        ids = [str(i) for i in range(n)]
    return Predictions(
        ids=tuple(ids),
        labels=np.concatenate(labels).astype(np.int64),
        logits=np.concatenate(logits).astype(np.float32),
        temperature=float(model.temperature),
        p_malignant=np.concatenate(probs),
        cams=np.concatenate(cams),
        boxes=tuple(boxes),
        model_shape=model_shape,
        features=None if accumulator is None else accumulator.summary(n),
    )
