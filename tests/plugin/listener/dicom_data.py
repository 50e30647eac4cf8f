"""Small, valid DICOM objects for the listener tests (tiny pixel arrays, no real patients)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
VIEW_CODES = {"CC": ("399162004", "cranio-caudal"), "MLO": ("399368009", "medio-lateral oblique")}
FOUR_VIEWS = (("L", "CC"), ("R", "CC"), ("L", "MLO"), ("R", "MLO"))


def _meta(ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta = meta


def mg_image(
    study_uid: str,
    laterality: str,
    view: str,
    *,
    rows: int = 16,
    columns: int = 12,
    pixels: bool = True,
    **attributes: Any,
) -> Dataset:
    """A Digital Mammography For Presentation image of one view with a tiny 14-bit array."""
    ds = Dataset()
    ds.SOPClassUID = MG_FOR_PRESENTATION
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "MG"
    ds.PatientName = "Synthetic^Phantom"
    ds.PatientID = "SYNTH-001"
    ds.PatientSex = "F"
    ds.Manufacturer = "Phantom Imaging"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
    ds.ImageLaterality = laterality
    ds.ViewPosition = view
    item = Dataset()
    item.CodeValue, item.CodeMeaning = VIEW_CODES[view]
    item.CodingSchemeDesignator = "SCT"
    ds.ViewCodeSequence = [item]
    ds.BreastImplantPresent = "NO"
    ds.AcquisitionDate = "20260102"
    ds.AcquisitionTime = "101500"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 14, 13
    ds.SamplesPerPixel = 1
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    if pixels:
        rng = np.random.default_rng(7)
        ds.PixelData = rng.integers(0, 2**14, (rows, columns), dtype=np.uint16).tobytes()
    else:
        ds.PixelData = b""
    ds["PixelData"].VR = "OW"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    _meta(ds)
    return ds


def four_view_study(study_uid: str | None = None) -> list[Dataset]:
    study_uid = study_uid or generate_uid()
    return [mg_image(study_uid, side, view) for side, view in FOUR_VIEWS]


def text_sr(study_uid: str) -> Dataset:
    """A minimal Basic Text SR (a valid non-image object a router may send with a study)."""
    ds = Dataset()
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "SR"
    ds.PatientID = "SYNTH-001"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator = "18748-4", "LN"
    concept.CodeMeaning = "Diagnostic Imaging Report"
    ds.ConceptNameCodeSequence = [concept]
    _meta(ds)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path
