"""Records shared by the dataset readers, the synthetic generator and training.

An :class:`ImageRecord` is one mammogram with its label; a :class:`PairRecord` is what the
model consumes: a *target* image and its *contralateral* (same view, other breast, same
patient and study), with the target's label and ground-truth boxes.

The manifest CSV (written by ``brgan synth``, read by :mod:`brgan_core.data.manifest`) has
one row per image with the columns of :data:`MANIFEST_COLUMNS`:

=================  =========================================================================
path               image file, relative to the manifest's folder (or absolute)
patient_id         pseudonymous patient key (the split is patient-wise on it)
study_uid          StudyInstanceUID
sop_instance_uid   SOPInstanceUID
laterality         ``L`` or ``R`` (the breast)
view               ``CC`` or ``MLO`` (or ``ML``/``XCCL``; pairs never cross view codes)
label              1 = malignant (BI-RADS > 3 or a malignant finding), 0 = not
birads             BI-RADS-like category string, e.g. ``1``, ``2``, ``4a``, ``5``
density            ACR density category ``a``–``d`` (empty when unknown)
findings           ``;``-separated finding kinds, e.g. ``spiculated_mass;vessel`` (may be empty)
boxes              JSON list of ``[x0, y0, x1, y1]`` boxes of *malignant* findings, in pixel
                   coordinates (column, row) of the stored image, end-exclusive
mask_path          optional lesion mask PNG (same size as the image), relative like ``path``
=================  =========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Laterality = Literal["L", "R"]
Box = tuple[float, float, float, float]

MANIFEST_COLUMNS: tuple[str, ...] = (
    "path",
    "patient_id",
    "study_uid",
    "sop_instance_uid",
    "laterality",
    "view",
    "label",
    "birads",
    "density",
    "findings",
    "boxes",
    "mask_path",
)


@dataclass(frozen=True)
class ImageRecord:
    """One mammogram of a dataset, with its label and ground truth."""

    path: Path
    patient_id: str
    laterality: Laterality
    view: str
    label: int
    study_uid: str = ""
    sop_instance_uid: str = ""
    birads: str = ""
    density: str = ""
    findings: tuple[str, ...] = ()
    boxes: tuple[Box, ...] = ()
    mask_path: Path | None = None

    def __post_init__(self) -> None:
        if self.laterality not in ("L", "R"):
            raise ValueError(f"{self.path}: laterality must be 'L' or 'R', not {self.laterality!r}")
        if self.label not in (0, 1):
            raise ValueError(f"{self.path}: label must be 0 or 1, not {self.label!r}")


@dataclass(frozen=True)
class PairRecord:
    """A target image and its contralateral view: the unit BR-GAN scores (paper Sect. 2)."""

    target: ImageRecord
    contralateral: ImageRecord

    @property
    def label(self) -> int:
        return self.target.label

    @property
    def boxes(self) -> tuple[Box, ...]:
        return self.target.boxes

    @property
    def patient_id(self) -> str:
        return self.target.patient_id


@dataclass
class ReadReport:
    """What a reader found: the pairs, and counts of what it could not use and why."""

    pairs: list[PairRecord] = field(default_factory=list)
    images: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count
