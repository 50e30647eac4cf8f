"""Tiny hand-made mammography datasets for the preprocessing tests (no real patient data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

#: Digital Mammography X-Ray Image Storage – For Presentation.
MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"


def make_ds(
    arr: np.ndarray,
    *,
    bits_stored: int = 12,
    photometric: str = "MONOCHROME2",
    **attrs: Any,
) -> Dataset:
    """A minimal single-frame MG dataset holding ``arr`` (uint16 or int16), plus ``attrs``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MG_FOR_PRESENTATION
    ds.SOPClassUID = MG_FOR_PRESENTATION
    ds.Modality = "MG"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.set_pixel_data(np.ascontiguousarray(arr), photometric, bits_stored)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def write(ds: Dataset, path: Path) -> Path:
    """Write ``ds`` as a DICOM Part 10 file (with preamble) and return the path."""
    ds.save_as(path, enforce_file_format=True)
    return path


def phantom(
    shape: tuple[int, int] = (160, 128),
    *,
    chest_wall: str = "left",
    seed: int = 0,
    bits_stored: int = 12,
) -> tuple[np.ndarray, np.ndarray]:
    """A half-ellipse "breast" with smooth texture on a dark background.

    Returns the image (uint16) and the true breast mask (bool).

    The chest wall touches the left (or right) edge; a bright blob sits in the lower half so
    the vertical direction is recognisable.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    x = xx if chest_wall == "left" else (w - 1 - xx)
    inside = ((x / (0.7 * w)) ** 2 + ((yy - h / 2) / (0.45 * h)) ** 2) <= 1.0
    texture = rng.normal(size=(h // 8 + 1, w // 8 + 1))
    texture = np.kron(texture, np.ones((8, 8)))[:h, :w]
    top = 2**bits_stored - 1
    img = np.full(shape, 0.03 * top)
    img[inside] = (0.45 + 0.08 * texture[inside]) * top
    blob = ((x - 0.2 * w) ** 2 + (yy - 0.7 * h) ** 2) <= (0.06 * min(h, w)) ** 2
    img[blob & inside] = 0.85 * top
    return np.clip(img, 0, top).astype(np.uint16), inside
