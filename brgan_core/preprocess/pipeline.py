"""One mammogram to one model input: display → mask → crop → orient → resize.

:func:`preprocess` reads a DICOM file or dataset; :func:`preprocess_array` does the same for an
image that is already a display array (the synthetic generator and tests use it). Both return a
:class:`PreprocessedImage` whose :class:`~.geometry.Geometry` maps model space back to the
stored pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from brgan_core.errors import DecodeError
from brgan_core.preprocess.decode import read_dataset, to_display
from brgan_core.preprocess.geometry import Geometry
from brgan_core.preprocess.mask import breast_mask
from brgan_core.preprocess.orientation import canonical_orientation

__all__ = [
    "DEFAULT_SIZE",
    "ImageHeader",
    "PreprocessedImage",
    "preprocess",
    "preprocess_array",
    "read_header",
    "read_laterality",
    "read_view",
]

#: Default model input size ``(rows, columns)``.
DEFAULT_SIZE: tuple[int, int] = (512, 416)

#: ViewCodeSequence codes (CID 4014; SCT and the legacy SRT/SNM3 values) to short view names.
_VIEW_CODES: dict[str, str] = {
    "399162004": "CC",
    "R-10242": "CC",
    "399368009": "MLO",
    "R-10226": "MLO",
    "399260004": "ML",
    "R-10224": "ML",
    "399192008": "XCCL",
    "R-1024A": "XCCL",
}


@dataclass(frozen=True, eq=False)
class PreprocessedImage:
    """A model input and how it was made.

    Attributes:
        image: float32 ``(H, W)`` in [0, 1], canonical orientation, zero outside the breast.
        mask: bool ``(H, W)`` breast mask in model space.
        geometry: model ↔ original stored-pixel mapping.
        laterality: ``"L"``, ``"R"`` or ``None`` when the file does not say.
        view: ``"CC"``, ``"MLO"``, ``"ML"``, ``"XCCL"``, another ViewPosition value, or ``None``.
        photometric: Photometric Interpretation of the source (display is always bright = dense).
        orientation_rule: ``patient_orientation``, ``mask`` or ``as_stored``.
        orientation_detail: what the rule did, e.g. ``R\\P → transpose, flip x``.
    """

    image: np.ndarray
    mask: np.ndarray
    geometry: Geometry
    laterality: str | None
    view: str | None
    photometric: str
    orientation_rule: str
    orientation_detail: str = ""


def preprocess(
    source: Path | str | Dataset,
    size: tuple[int, int] = DEFAULT_SIZE,
    *,
    laterality: str | None = None,
    view: str | None = None,
    patient_orientation: tuple[str, ...] | None = None,
) -> PreprocessedImage:
    """Read, decode and preprocess one mammogram.

    The service passes ``laterality``, ``view`` and ``patient_orientation`` as its study rules
    decided them (``plugin.study``, the same values pairing used), so an image is never oriented
    by another laterality than it was paired by. Standalone use (``brgan preview``, tests)
    leaves them None and they are read from the header: laterality ImageLaterality (0020,0062)
    → FrameLaterality (0020,9072) → Laterality (0020,0060); view ViewCodeSequence (0054,0220)
    code → ViewPosition (0018,5101). Without a PatientOrientation the pixels decide
    (:func:`~.orientation.canonical_orientation`'s mask fallback).

    Raises:
        DecodeError: the file cannot be read or decoded, or no breast is found in it.
    """
    if isinstance(source, Dataset):
        ds, name = source, None
    else:
        ds, name = read_dataset(source), str(source)
    source_name = name or str(getattr(ds, "filename", "") or "dataset")
    display = to_display(ds, source=source_name)
    header = read_header(ds, source_name)
    return preprocess_array(
        display,
        laterality if laterality is not None else header.laterality,
        patient_orientation if patient_orientation is not None else header.patient_orientation,
        size,
        view=view if view is not None else header.view,
        photometric=header.photometric,
        source=source_name,
    )


@dataclass(frozen=True)
class ImageHeader:
    """The header fields preprocessing uses (see :func:`read_header`)."""

    laterality: str | None
    view: str | None
    patient_orientation: tuple[str, ...] | None
    photometric: str


def read_header(ds: Dataset, source: str = "dataset") -> ImageHeader:
    """Laterality, view, PatientOrientation and Photometric Interpretation of ``ds``.

    Raises:
        DecodeError: a damaged value (pydicom parses values lazily, so this is where it shows).
    """
    try:
        value = ds.get("PatientOrientation")
        if isinstance(value, str):
            orientation: tuple[str, ...] | None = tuple(value.split("\\")) if value else None
        else:
            orientation = tuple(str(v) for v in value) if value else None
        return ImageHeader(
            laterality=read_laterality(ds),
            view=read_view(ds),
            patient_orientation=orientation,
            photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip(),
        )
    except Exception as exc:
        reason = f"invalid laterality/view/orientation attribute ({type(exc).__name__}: {exc})"
        raise DecodeError(source, reason) from None


def preprocess_array(
    image: np.ndarray,
    laterality: str | None,
    patient_orientation: Any,
    size: tuple[int, int] = DEFAULT_SIZE,
    *,
    view: str | None = None,
    photometric: str = "MONOCHROME2",
    source: str = "array",
) -> PreprocessedImage:
    """Preprocess a display image (bright = tissue) in its stored orientation.

    Values are used as they are when they lie in [0, 1]; otherwise (e.g. raw integers) they are
    stretched min→0, max→1 first.

    Args:
        image: 2-D array in the stored frame.
        laterality: ``"L"``, ``"R"`` or ``None``.
        patient_orientation: PatientOrientation of the stored frame (``['A', 'R']``, ``"R\\P"``)
            or ``None`` to infer the chest-wall side from the mask.
        size: model input ``(rows, columns)``.
        view, photometric: recorded in the result.
        source: what to name in errors.

    Raises:
        DecodeError: not a 2-D image, or no breast found (blank image).
    """
    arr = np.asarray(image)
    if arr.ndim != 2 or arr.size == 0:
        raise DecodeError(source, f"expected a 2-D image, got shape {arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    lo, hi = float(arr.min()), float(arr.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise DecodeError(source, "image has non-finite values")
    if lo < 0.0 or hi > 1.0:
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    mask = breast_mask(arr)
    if not mask.any():
        raise DecodeError(source, "no breast tissue found (the image is blank or uniform)")
    lat = (laterality or "").strip().upper() or None
    orient = canonical_orientation(patient_orientation, lat, mask)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    crop = (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
    geometry = Geometry.build(
        arr.shape,
        crop,
        size,
        transpose=orient.transpose,
        flip_x=orient.flip_x,
        flip_y=orient.flip_y,
    )
    model_mask = geometry.warp(mask.astype(np.float32)) >= 0.5
    model_image = geometry.warp(np.where(mask, arr, np.float32(0.0)))
    model_image = np.clip(np.where(model_mask, model_image, 0.0), 0.0, 1.0).astype(np.float32)
    return PreprocessedImage(
        image=model_image,
        mask=model_mask,
        geometry=geometry,
        laterality=lat if lat in ("L", "R") else None,
        view=view,
        photometric=photometric,
        orientation_rule=orient.rule,
        orientation_detail=orient.detail,
    )


def read_laterality(ds: Dataset) -> str | None:
    """ImageLaterality → FrameLaterality (also in functional group sequences) → Laterality."""
    for keyword in ("ImageLaterality", "FrameLaterality", "Laterality"):
        value = _find(ds, keyword)
        if value in ("L", "R"):
            return value
    return None


def read_view(ds: Dataset) -> str | None:
    """ViewCodeSequence code (CID 4014) → ViewPosition; ``None`` when neither is present."""
    for item in ds.get("ViewCodeSequence", None) or []:
        code = str(item.get("CodeValue", "")).strip()
        if code in _VIEW_CODES:
            return _VIEW_CODES[code]
    position = str(ds.get("ViewPosition", "") or "").strip().upper()
    return position or None


def _find(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value:
        return str(value).strip().upper()
    for seq_kw in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for group in ds.get(seq_kw, None) or []:
            for frame_seq in group.get("FrameAnatomySequence", None) or []:
                found = frame_seq.get(keyword)
                if found:
                    return str(found).strip().upper()
    return None
