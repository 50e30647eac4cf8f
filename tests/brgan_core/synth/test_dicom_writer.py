from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    DigitalMammographyXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from brgan_core.synth import SynthStudy, generate_patient, get_preset, write_image
from brgan_core.synth.dicom_writer import PATIENT_ORIENTATION, TransferSyntax

CPU = get_preset("bench-cpu")
DCIODVFY = shutil.which("dciodvfy")


@pytest.fixture(scope="module")
def study() -> SynthStudy:
    return generate_patient(CPU, 1, 0)


def _dciodvfy_errors(path: Path) -> list[str]:
    assert DCIODVFY, "dciodvfy (dicom3tools) is required"
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if "Error" in line]


def test_required_attributes_read_back(tmp_path: Path, study: SynthStudy) -> None:
    for image in study.images:
        path = write_image(tmp_path / f"{image.name}.dcm", study, image)
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.SOPClassUID == DigitalMammographyXRayImageStorageForPresentation
        assert ds.SOPInstanceUID == image.sop_instance_uid
        assert ds.StudyInstanceUID == study.study_uid
        assert ds.SeriesInstanceUID == image.series_instance_uid
        assert ds.Modality == "MG"
        assert ds.PresentationIntentType == "FOR PRESENTATION"
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 14, 13)
        assert ds.ImageLaterality == image.laterality
        assert ds.ViewPosition == image.view
        code = ds.ViewCodeSequence[0]
        assert code.CodingSchemeDesignator == "SCT"
        assert code.CodeValue == {"CC": "399162004", "MLO": "399368009"}[image.view]
        assert list(ds.PatientOrientation) == PATIENT_ORIENTATION[(image.laterality, image.view)]
        assert [float(v) for v in ds.ImagerPixelSpacing] == [0.9, 0.9]
        assert ds.BodyPartExamined == "BREAST"
        assert ds.BreastImplantPresent == "NO"
        assert ds.PatientSex == "F"
        assert str(ds.PatientName).startswith("SYNTH^")
        assert ds.Manufacturer == "brgan-synth"
        assert ds.PatientAge == f"{study.age:03d}Y"
        assert float(ds.WindowWidth) > 0
        assert np.array_equal(ds.pixel_array, image.pixels)
    orientation = {
        (d.ImageLaterality, d.ViewPosition): list(d.PatientOrientation)
        for d in (pydicom.dcmread(p) for p in tmp_path.glob("*.dcm"))
    }
    assert orientation[("L", "CC")] == ["A", "R"] and orientation[("R", "CC")] == ["P", "L"]
    assert orientation[("L", "MLO")] == ["A", "F"] and orientation[("R", "MLO")] == ["P", "F"]


@pytest.mark.parametrize(
    ("syntax", "uid", "monochrome1", "legacy"),
    [
        (TransferSyntax.EXPLICIT, ExplicitVRLittleEndian, False, False),
        (TransferSyntax.JPEG2000, JPEG2000Lossless, False, False),
        (TransferSyntax.RLE, RLELossless, False, False),
        (TransferSyntax.EXPLICIT, ExplicitVRLittleEndian, True, False),
        (TransferSyntax.EXPLICIT, ExplicitVRLittleEndian, False, True),
        (TransferSyntax.RLE, RLELossless, True, True),
    ],
)
def test_dciodvfy_finds_no_errors(
    tmp_path: Path,
    study: SynthStudy,
    syntax: TransferSyntax,
    uid: str,
    monochrome1: bool,
    legacy: bool,
) -> None:
    for image in (study.image("L", "CC"), study.image("R", "MLO")):
        path = write_image(
            tmp_path / f"{image.name}.dcm",
            study,
            image,
            transfer_syntax=syntax,
            monochrome1=monochrome1,
            legacy_codes=legacy,
        )
        assert _dciodvfy_errors(path) == []
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == uid
        assert ds.SOPInstanceUID == image.sop_instance_uid  # compression keeps the UID
        expected = (2**14 - 1 - image.pixels) if monochrome1 else image.pixels
        assert np.array_equal(ds.pixel_array, expected)  # lossless
        if monochrome1:
            assert ds.PhotometricInterpretation == "MONOCHROME1"
            assert ds.PresentationLUTShape == "INVERSE"
        if legacy:
            code = ds.ViewCodeSequence[0]
            assert (code.CodingSchemeDesignator, code.CodeValue) == (
                "SRT",
                {"CC": "R-10242", "MLO": "R-10226"}[image.view],
            )


def test_same_study_writes_identical_file_bytes(tmp_path: Path) -> None:
    paths = []
    for name in ("a", "b"):
        study = generate_patient(CPU, 9, 1)
        paths.append(write_image(tmp_path / f"{name}.dcm", study, study.images[0]))
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_full_field_clinical_image_can_be_written(tmp_path: Path) -> None:
    """One 3328 × 2560 image at 0.07 mm (the clinical preset); no timing asserted."""
    clinical = get_preset("clinical")
    study = generate_patient(clinical, 1, 0, views=(("L", "CC"),))
    path = write_image(tmp_path / "L_CC.dcm", study, study.images[0])
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert (ds.Rows, ds.Columns) == (3328, 2560)
    assert [float(v) for v in ds.ImagerPixelSpacing] == [0.07, 0.07]
    assert path.stat().st_size > 3328 * 2560 * 2
    assert _dciodvfy_errors(path) == []
