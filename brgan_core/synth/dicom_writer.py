"""Write a synthetic image as a real DICOM Digital Mammography X-Ray Image (For Presentation).

SOP Class 1.2.840.10008.5.1.4.1.1.1.2; modules per PS3.3 A.26 (Digital Mammography X-Ray Image
IOD), written in the order of the standard's module table:
Patient, General Study, Patient Study, General Series, DX Series, Mammography Series-level
attributes, Frame of Reference, General Equipment, General Image, Image Pixel, DX Anatomy Imaged,
DX Image, DX Detector, Mammography Image (C.8.11.7), VOI LUT, Acquisition Context, SOP Common.

Options: MONOCHROME1 (inverted stored values, Presentation LUT Shape INVERSE), legacy SNOMED RT
(SRT) view codes instead of SNOMED CT (SCT), and the transfer syntaxes Explicit VR Little Endian,
JPEG 2000 Lossless and RLE Lossless (compressed with pydicom's ``Dataset.compress`` and the
pylibjpeg / pydicom encoders).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    DigitalMammographyXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

from brgan_core import __version__
from brgan_core.synth.generator import SynthImage, SynthStudy

MANUFACTURER = "brgan-synth"
MODEL_NAME = "brgan-synth bilateral phantom"


class TransferSyntax(StrEnum):
    """Transfer syntaxes ``brgan synth`` can write."""

    EXPLICIT = "explicit"
    JPEG2000 = "jpeg2000"
    RLE = "rle"

    @property
    def uid(self) -> str:
        return {
            TransferSyntax.EXPLICIT: ExplicitVRLittleEndian,
            TransferSyntax.JPEG2000: JPEG2000Lossless,
            TransferSyntax.RLE: RLELossless,
        }[self]


# CID 4014 view codes: (SNOMED CT, legacy SNOMED RT), code meaning.
VIEW_CODES: dict[str, tuple[str, str, str]] = {
    "CC": ("399162004", "R-10242", "cranio-caudal"),
    "MLO": ("399368009", "R-10226", "medio-lateral oblique"),
}
BREAST_CODE = {"SCT": ("76752008", "Breast"), "SRT": ("T-04000", "Breast")}

# PatientOrientation (row direction, column direction) of the stored image.
PATIENT_ORIENTATION: dict[tuple[str, str], list[str]] = {
    ("L", "CC"): ["A", "R"],
    ("R", "CC"): ["P", "L"],
    ("L", "MLO"): ["A", "F"],
    ("R", "MLO"): ["P", "F"],
}
SERIES_NUMBER = {"CC": 1, "MLO": 2}
INSTANCE_NUMBER = {("L", "CC"): 1, ("R", "CC"): 2, ("L", "MLO"): 1, ("R", "MLO"): 2}


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _da(date: dt.date) -> str:
    return date.strftime("%Y%m%d")


def _tm(time: dt.datetime) -> str:
    return time.strftime("%H%M%S")


def build_dataset(
    study: SynthStudy,
    image: SynthImage,
    *,
    monochrome1: bool = False,
    legacy_codes: bool = False,
) -> Dataset:
    """The uncompressed DICOM dataset (with file meta) of one synthetic image."""
    preset = study.preset
    bits = preset.bits_stored
    max_value = 2**bits - 1
    scheme = "SRT" if legacy_codes else "SCT"
    acquired = study.study_datetime + dt.timedelta(
        minutes=2 * (SERIES_NUMBER[image.view] - 1)
        + INSTANCE_NUMBER[(image.laterality, image.view)]
    )

    ds = Dataset()
    # SOP Common (first attributes by tag order)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
    ds.InstanceCreationDate = _da(acquired.date())
    ds.InstanceCreationTime = _tm(acquired)
    ds.SOPClassUID = DigitalMammographyXRayImageStorageForPresentation
    ds.SOPInstanceUID = image.sop_instance_uid
    # General Study
    ds.StudyDate = _da(study.study_datetime.date())
    ds.SeriesDate = _da(study.study_datetime.date())
    ds.AcquisitionDate = _da(acquired.date())
    ds.ContentDate = _da(acquired.date())
    ds.StudyTime = _tm(study.study_datetime)
    ds.SeriesTime = _tm(study.study_datetime)
    ds.AcquisitionTime = _tm(acquired)
    ds.ContentTime = _tm(acquired)
    ds.AccessionNumber = study.accession_number
    ds.Modality = "MG"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = MANUFACTURER
    ds.InstitutionName = "brgan-synth (synthetic data)"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "MG SCREENING BILATERAL (SYNTHETIC)"
    ds.SeriesDescription = f"{image.view} (SYNTHETIC)"
    ds.ManufacturerModelName = MODEL_NAME
    # Patient
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = _da(study.birth_date)
    ds.PatientSex = "F"
    ds.PatientAge = f"{study.age:03d}Y"
    # Acquisition / equipment
    ds.BodyPartExamined = "BREAST"
    ds.DeviceSerialNumber = f"SYNTH-{preset.name}"
    ds.SoftwareVersions = f"brgan-pacs {__version__}"
    ds.PositionerType = "MAMMOGRAPHIC"
    ds.DetectorType = "DIRECT"
    ds.ViewPosition = image.view
    ds.ImagerPixelSpacing = [preset.pixel_spacing_mm, preset.pixel_spacing_mm]
    # General Study / Series identifiers
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = image.series_instance_uid
    ds.StudyID = "1"
    ds.SeriesNumber = SERIES_NUMBER[image.view]
    ds.InstanceNumber = INSTANCE_NUMBER[(image.laterality, image.view)]
    ds.PatientOrientation = PATIENT_ORIENTATION[(image.laterality, image.view)]
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[study.study_uid, "frame", image.view])
    ds.PositionReferenceIndicator = ""
    ds.ImageLaterality = image.laterality
    # Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.Rows, ds.Columns = image.pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    # DX Image
    ds.BurnedInAnnotation = "NO"
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1 if monochrome1 else -1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "INVERSE" if monochrome1 else "IDENTITY"
    # VOI LUT: a window over the breast's anatomy (generator.anatomy_window: findings left out)
    pixels = image.pixels
    if image.voi_window is not None:
        low, high = image.voi_window
    else:
        breast = pixels[pixels > 0.12 * max_value]
        low, high = np.percentile(breast, [1, 99.5]) if breast.size else (0, max_value)
    if monochrome1:
        low, high = max_value - high, max_value - low
    ds.WindowCenter = round(float(low + high) / 2, 1)
    ds.WindowWidth = max(round(float(high - low), 1), 2.0)
    ds.WindowCenterWidthExplanation = "BREAST"
    # VOILUTFunction is left out: LINEAR is its default (PS3.3 C.11.2.1.3), and OHIF 3.13.2
    # turns a present value into a black viewport (docs/results.md, "Viewers").
    # DX Anatomy Imaged
    breast_code = BREAST_CODE[scheme]
    ds.AnatomicRegionSequence = Sequence([_code(breast_code[0], scheme, breast_code[1])])
    # Mammography Image
    view_sct, view_srt, view_meaning = VIEW_CODES[image.view]
    view = _code(view_srt if legacy_codes else view_sct, scheme, view_meaning)
    view.ViewModifierCodeSequence = Sequence()
    ds.ViewCodeSequence = Sequence([view])
    ds.BreastImplantPresent = "NO"
    ds.PartialView = "NO"
    ds.OrganExposed = "BREAST"
    # Acquisition Context
    ds.AcquisitionContextSequence = Sequence()

    stored = (max_value - pixels).astype(np.uint16) if monochrome1 else pixels
    ds.PixelData = np.ascontiguousarray(stored, dtype="<u2").tobytes()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def write_image(
    path: Path,
    study: SynthStudy,
    image: SynthImage,
    *,
    transfer_syntax: TransferSyntax | str = TransferSyntax.EXPLICIT,
    monochrome1: bool = False,
    legacy_codes: bool = False,
) -> Path:
    """Write one image of ``study`` as a DICOM Part 10 file; returns ``path``."""
    syntax = TransferSyntax(transfer_syntax)
    ds = build_dataset(study, image, monochrome1=monochrome1, legacy_codes=legacy_codes)
    if syntax is not TransferSyntax.EXPLICIT:
        plugin = "pylibjpeg" if syntax is TransferSyntax.JPEG2000 else "pydicom"
        ds.compress(syntax.uid, encoding_plugin=plugin, generate_instance_uid=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
