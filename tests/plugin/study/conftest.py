"""Builders of header-only mammography datasets for the classification and pairing tests."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from typing import Any

import pytest
from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from plugin.study.header import InstanceHeader

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1"

#: (SCT code, SRT code, ViewPosition) of the views the tests use.
VIEW_CODES = {
    "CC": ("399162004", "R-10242", "CC"),
    "MLO": ("399368009", "R-10226", "MLO"),
    "ML": ("399260004", "R-10224", "ML"),
    "XCCL": ("399192008", "R-1024A", "XCCL"),
    "LM": ("399352003", "R-10228", "LM"),
    "FB": ("399196006", "R-10244", "FB"),
}

_DROP = object()


def _code_item(value: str, scheme: str, meaning: str = "") -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning or value
    return item


def make_dataset(
    laterality: str | None = "L",
    view: str | None = "CC",
    *,
    scheme: str = "SCT",
    sop_uid: str | None = None,
    study_uid: str = STUDY_UID,
    patient_id: str = "PAT-001",
    acquired: str = "20240102",
    acquired_time: str = "101500",
    modifiers: tuple[tuple[str, str], ...] = (),
    **attributes: Any,
) -> Dataset:
    """A header-only Digital Mammography For Presentation dataset of one view.

    ``laterality`` goes to ImageLaterality; ``view`` (a key of :data:`VIEW_CODES`) fills
    ViewCodeSequence (in ``scheme``: SCT, SRT or SNM3) and ViewPosition. Extra keyword
    attributes are set by DICOM keyword; a value of ``None`` removes the attribute.
    """
    ds = Dataset()
    ds.SOPClassUID = MG_FOR_PRESENTATION
    # Tests name instances with readable labels ("1.9.L.CC", "sr"); store them unvalidated.
    ds.add(DataElement(0x00080018, "UI", sop_uid or generate_uid(), validation_mode=config.IGNORE))
    ds.add(DataElement(0x0020000D, "UI", study_uid, validation_mode=config.IGNORE))
    ds.SeriesInstanceUID = study_uid + ".1"
    ds.Modality = "MG"
    ds.PatientID = patient_id
    ds.PatientName = "Test^Patient"
    ds.PatientSex = "F"
    ds.Manufacturer = "ACME Imaging"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
    ds.BreastImplantPresent = "NO"
    ds.PartialView = "NO"
    ds.AcquisitionDate = acquired
    ds.AcquisitionTime = acquired_time
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Rows = 64
    ds.Columns = 48
    ds.BitsAllocated = 16
    ds.BitsStored = 14
    ds.SamplesPerPixel = 1
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    if laterality is not None:
        ds.ImageLaterality = laterality
    if view is not None:
        sct, srt, position = VIEW_CODES[view]
        code = sct if scheme == "SCT" else srt
        item = _code_item(code, scheme, view)
        if modifiers:
            item.ViewModifierCodeSequence = [_code_item(v, s) for v, s in modifiers]
        ds.ViewCodeSequence = [item]
        ds.ViewPosition = position
    elif modifiers:
        ds.ViewModifierCodeSequence = [_code_item(v, s) for v, s in modifiers]
    for keyword, value in attributes.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        elif keyword in ("StudyInstanceUID", "SOPInstanceUID"):
            ds.add(DataElement(keyword, "UI", value, validation_mode=config.IGNORE))
        else:
            setattr(ds, keyword, value)
    return ds


def make_header(*args: Any, has_pixel_data: bool = True, **kwargs: Any) -> InstanceHeader:
    """:func:`make_dataset` turned into an :class:`InstanceHeader` (pixels present by default)."""
    return InstanceHeader.from_dataset(make_dataset(*args, **kwargs), has_pixel_data=has_pixel_data)


def encode(ds: Dataset, pixel_bytes: bytes | None = None, *, transfer_syntax=None) -> bytes:
    """``ds`` written as a DICOM file (with file meta) and optional native Pixel Data."""
    ds = copy.deepcopy(ds)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
    ds.file_meta = meta
    if pixel_bytes is not None:
        ds.PixelData = pixel_bytes
        ds["PixelData"].VR = "OW"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture
def header_factory() -> Callable[..., InstanceHeader]:
    return make_header


@pytest.fixture
def dataset_factory() -> Callable[..., Dataset]:
    return make_dataset
