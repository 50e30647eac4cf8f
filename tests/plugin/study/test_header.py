"""InstanceHeader: extraction from header-only datasets, JSON storage, pixel presence probing."""

from __future__ import annotations

import json
import warnings
import zlib

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian

from plugin.study.header import HeaderError, InstanceHeader, read_header
from tests.plugin.study.conftest import encode, make_dataset, make_header


def test_fields_from_a_standard_image() -> None:
    h = make_header("R", "MLO", scheme="SNM3", sop_uid="1.2.3.4")
    assert h.sop_instance_uid == "1.2.3.4"
    assert h.modality == "MG"
    assert h.image_laterality == "R"
    assert h.view_codes == (("R-10226", "SNM3"),)
    assert h.view_position == "MLO"
    assert h.image_type == ("ORIGINAL", "PRIMARY", "")
    assert h.presentation_intent == "FOR PRESENTATION"
    assert h.acquisition_datetime == "2024-01-02T10:15:00.000000"
    assert (h.rows, h.columns, h.bits_stored, h.photometric) == (64, 48, 14, "MONOCHROME2")
    assert h.has_pixel_data is True


def test_patient_id_is_only_kept_hashed() -> None:
    h = make_header(patient_id="SECRET-MRN-42")
    stored = json.dumps(h.to_json())
    assert "SECRET-MRN-42" not in stored
    assert "Test^Patient" not in stored
    assert h.patient_id_hash is not None and len(h.patient_id_hash) == 64
    assert make_header(patient_id="SECRET-MRN-42").patient_id_hash == h.patient_id_hash
    assert make_header(patient_id="OTHER").patient_id_hash != h.patient_id_hash
    assert make_header(PatientID=None).patient_id_hash is None


@pytest.mark.parametrize("missing", ["SOPInstanceUID", "StudyInstanceUID"])
def test_missing_required_uid_raises(missing: str) -> None:
    with pytest.raises(HeaderError, match=missing):
        InstanceHeader.from_dataset(make_dataset(**{missing: None}))


def test_json_round_trip_and_tolerance() -> None:
    h = make_header(
        "L",
        "CC",
        modifiers=(("399055006", "SCT"),),
        SoftwareVersions=["1.0", "2.0"],
    )
    data = json.loads(json.dumps(h.to_json()))
    assert InstanceHeader.from_json(data) == h
    data["a_field_from_the_future"] = 1
    del data["device_uid"]
    assert InstanceHeader.from_json(data) == h


def test_acquisition_datetime_sources() -> None:
    dt = make_header(AcquisitionDateTime="20230405112233.5+0100")
    assert dt.acquisition_datetime == "2023-04-05T11:22:33.500000"
    content = make_header(
        AcquisitionDate=None, AcquisitionTime=None, ContentDate="20220101", ContentTime="0930"
    )
    assert content.acquisition_datetime == "2022-01-01T09:30:00.000000"
    date_only = make_header(AcquisitionTime=None)
    assert date_only.acquisition_datetime == "2024-01-02"
    assert make_header(AcquisitionDate=None).acquisition_datetime is None


def test_frame_laterality_in_functional_groups() -> None:
    anatomy = Dataset()
    anatomy.FrameLaterality = "R"
    group = Dataset()
    group.FrameAnatomySequence = [anatomy]
    h = make_header(None, "CC", SharedFunctionalGroupsSequence=[group])
    assert h.frame_laterality == "R"
    assert make_header(None, "CC", FrameLaterality="L").frame_laterality == "L"


def test_view_modifiers_top_level_and_nested() -> None:
    nested = make_header("L", "CC", modifiers=(("399163009", "SCT"),))
    assert nested.view_modifier_codes == (("399163009", "SCT"),)
    top = make_header("L", None, modifiers=(("R-102D7", "SRT"),))
    assert top.view_modifier_codes == (("R-102D7", "SRT"),)


def test_malformed_values_read_as_none() -> None:
    ds = make_dataset()
    raw = b"not-a-number"
    ds[0x00200011] = RawDataElement(Tag(0x00200011), "IS", len(raw), raw, 0, False, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h = InstanceHeader.from_dataset(ds)
    assert h.series_number is None


def test_pixel_presence_unknown_from_header_only_dataset() -> None:
    assert InstanceHeader.from_dataset(make_dataset()).has_pixel_data is None


def test_read_header_finds_pixel_data_without_reading_it() -> None:
    ds = make_dataset("R", "CC")
    pixels = bytes(64 * 48 * 2)
    with_pixels = read_header(encode(ds, pixels))
    assert with_pixels.has_pixel_data is True
    assert with_pixels.pixel_data_truncated is False
    assert with_pixels.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert read_header(encode(ds)).has_pixel_data is False
    assert read_header(encode(ds, b"")).has_pixel_data is False


def test_read_header_detects_truncated_pixel_data() -> None:
    data = encode(make_dataset(), bytes(64 * 48 * 2))
    h = read_header(data[:-100])
    assert h.has_pixel_data is True
    assert h.pixel_data_truncated is True


def test_read_header_implicit_vr_and_path(tmp_path) -> None:
    data = encode(make_dataset(), bytes(64 * 48 * 2), transfer_syntax=ImplicitVRLittleEndian)
    path = tmp_path / "x.dcm"
    path.write_bytes(data)
    h = read_header(path)
    assert h.has_pixel_data is True
    assert h.transfer_syntax_uid == ImplicitVRLittleEndian


def test_read_header_deflated() -> None:
    data = encode(
        make_dataset(), bytes(64 * 48 * 2), transfer_syntax=DeflatedExplicitVRLittleEndian
    )
    h = read_header(data)
    assert h.has_pixel_data is True
    assert zlib  # deflate support is part of the standard library


def test_read_header_rejects_garbage() -> None:
    with pytest.raises(HeaderError):
        read_header(b"this is not dicom at all" * 10)


def test_read_header_records_native_pixel_length() -> None:
    h = read_header(encode(make_dataset(), bytes(64 * 48 * 2)))
    assert h.pixel_data_length == 64 * 48 * 2
    assert (h.bits_allocated, h.samples_per_pixel) == (16, 1)


def test_study_package_never_imports_torch() -> None:
    import subprocess
    import sys

    code = "import sys, plugin.study; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
