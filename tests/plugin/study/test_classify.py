"""classify(): one test per rule of docs/classification.md, in the order applied."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from plugin.study.classify import classify
from plugin.study.header import InstanceHeader
from tests.plugin.study.conftest import make_dataset, make_header


def _usable(h: InstanceHeader) -> None:
    c = classify(h)
    assert c.usable, c.reason
    assert c.reason is None


# -- laterality ---------------------------------------------------------------------------------


def test_image_laterality() -> None:
    c = classify(make_header("R", "CC"))
    assert (c.laterality, c.view, c.usable) == ("R", "CC", True)


def test_laterality_from_series_when_image_laterality_missing() -> None:
    c = classify(make_header(None, "MLO", Laterality="L"))
    assert (c.laterality, c.usable) == ("L", True)


def test_frame_laterality_before_series_laterality() -> None:
    c = classify(make_header(None, "CC", FrameLaterality="R"))
    assert (c.laterality, c.usable) == ("R", True)


def test_laterality_disagreement() -> None:
    c = classify(make_header("L", "CC", Laterality="R"))
    assert not c.usable
    assert c.laterality is None
    assert c.reason == "laterality disagreement: ImageLaterality L vs Laterality R"


def test_laterality_missing() -> None:
    c = classify(make_header(None, "CC"))
    assert not c.usable
    assert c.reason is not None and c.reason.startswith("laterality unknown")


def test_laterality_both() -> None:
    c = classify(make_header("B", "CC"))
    assert not c.usable
    assert c.laterality is None
    assert "not a single breast" in (c.reason or "")


# -- view ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["SCT", "SRT", "SNM3"])
@pytest.mark.parametrize("view", ["CC", "MLO", "ML", "XCCL", "LM", "FB"])
def test_view_code_in_every_scheme(view: str, scheme: str) -> None:
    c = classify(make_header("L", view, scheme=scheme, ViewPosition=None))
    assert (c.view, c.usable) == (view, True)


def test_view_code_without_view_position() -> None:
    assert classify(make_header("L", "MLO", ViewPosition=None)).view == "MLO"


def test_view_position_without_view_code() -> None:
    c = classify(make_header("L", "MLO", ViewCodeSequence=None))
    assert (c.view, c.usable) == ("MLO", True)


@pytest.mark.parametrize(("position", "view"), [("RCC", "CC"), ("L_MLO", "MLO"), ("XCC", "XCCL")])
def test_view_position_vendor_spellings(position: str, view: str) -> None:
    assert classify(make_header("L", None, ViewPosition=position)).view == view


def test_view_code_wins_over_view_position_and_is_noted() -> None:
    c = classify(make_header("L", "CC", ViewPosition="MLO"))
    assert (c.view, c.usable) == ("CC", True)
    assert c.notes == ("ViewCodeSequence CC overrides ViewPosition MLO",)


def test_unknown_scheme_falls_back_to_view_position() -> None:
    item = Dataset()
    item.CodeValue = "399162004"
    item.CodingSchemeDesignator = "99LOCAL"
    c = classify(make_header("L", None, ViewCodeSequence=[item], ViewPosition="MLO"))
    assert c.view == "MLO"
    assert c.notes and "not in CID 4014" in c.notes[0]


def test_view_from_description_text() -> None:
    c = classify(make_header("R", None, SeriesDescription="Screening R MLO"))
    assert (c.view, c.usable) == ("MLO", True)
    assert c.notes and "SeriesDescription" in c.notes[0]
    assert classify(make_header("R", None, ProtocolName="RCC tomo-free")).view == "CC"


def test_ambiguous_or_absent_view_text() -> None:
    c = classify(make_header("R", None, SeriesDescription="CC and MLO"))
    assert c.view is None
    assert not c.usable
    assert c.reason is not None and c.reason.startswith("view unknown")


def test_monochrome1_is_usable() -> None:
    _usable(make_header("L", "CC", PhotometricInterpretation="MONOCHROME1"))


# -- exclusions, in decision-table order ------------------------------------------------------

EXCLUSIONS = [
    pytest.param({"Manufacturer": "brgan-pacs"}, "our own result object (loop guard)", id="loop"),
    pytest.param(
        {"Manufacturer": "BRGAN-PACS", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.88.33"},
        "our own result object (loop guard)",
        id="loop-sr",
    ),
    pytest.param(
        {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.88.22", "Modality": "SR"},
        "not an image (SOP class Enhanced SR Storage)",
        id="sr",
    ),
    pytest.param(
        {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.11.1", "Modality": "PR"},
        "not an image (SOP class Grayscale Softcopy Presentation State Storage)",
        id="pr",
    ),
    pytest.param(
        {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.88.59", "Modality": "KO"},
        "not an image (SOP class Key Object Selection Document Storage)",
        id="ko",
    ),
    pytest.param({"Modality": "RG"}, "not a mammogram: Modality RG", id="modality-rg"),
    pytest.param({"Modality": None}, "not a mammogram: Modality (absent)", id="no-modality"),
    pytest.param(
        {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.13.1.3"},
        "tomosynthesis object (Breast Tomosynthesis Image Storage)",
        id="tomo",
    ),
    pytest.param(
        {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.13.1.4"},
        "tomosynthesis object (Breast Projection X-Ray Image Storage - For Presentation)",
        id="bpx-presentation",
    ),
    pytest.param(
        {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.13.1.5"},
        "tomosynthesis object (Breast Projection X-Ray Image Storage - For Processing)",
        id="bpx-processing",
    ),
    pytest.param(
        {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"},
        "not a digital mammogram (SOP class Secondary Capture Image Storage)",
        id="secondary-capture",
    ),
    pytest.param({"NumberOfFrames": 3}, "multi-frame image (NumberOfFrames 3)", id="multiframe"),
    pytest.param({"PatientSex": "M"}, "outside intended use: PatientSex M", id="male"),
    pytest.param(
        {"BreastImplantPresent": "YES"},
        "outside intended use: breast implant present",
        id="implant",
    ),
    pytest.param(
        {"PresentationIntentType": "FOR PROCESSING"},
        "FOR PROCESSING image (raw detector data)",
        id="for-processing",
    ),
    pytest.param(
        {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.1.2.1"},
        "FOR PROCESSING image (raw detector data)",
        id="for-processing-class",
    ),
    pytest.param(
        {"ImageType": ["DERIVED", "PRIMARY", "STEREO", "LEFT"]},
        "stereotactic/biopsy image (ImageType STEREO)",
        id="stereo",
    ),
    pytest.param(
        {"ImageType": ["ORIGINAL", "PRIMARY", "BIOPSY"]},
        "stereotactic/biopsy image (ImageType BIOPSY)",
        id="biopsy",
    ),
    pytest.param(
        {"ImageType": ["ORIGINAL", "PRIMARY", "SPECIMEN"]},
        "specimen radiograph (ImageType SPECIMEN)",
        id="specimen",
    ),
    pytest.param(
        {"ImageType": ["DERIVED", "PRIMARY", "CONTRAST"]},
        "contrast-enhanced image (ImageType CONTRAST)",
        id="contrast-imagetype",
    ),
    pytest.param(
        {"ContrastBolusAgent": "Iohexol"},
        "contrast-enhanced image (ContrastBolusAgent)",
        id="contrast-agent",
    ),
    pytest.param({"PartialView": "YES"}, "partial view (PartialView YES)", id="partial"),
    pytest.param(
        {"ViewCodeSequence": None, "ViewPosition": "CV"},
        "cleavage view (ViewPosition CV)",
        id="cleavage-position",
    ),
]


@pytest.mark.parametrize(("attributes", "reason"), EXCLUSIONS)
def test_exclusion(attributes: dict, reason: str) -> None:
    c = classify(make_header("L", "CC", **attributes))
    assert not c.usable
    assert c.reason == reason


@pytest.mark.parametrize(
    ("code", "scheme", "reason"),
    [
        ("399055006", "SCT", "spot compression view (ViewModifierCodeSequence 399055006)"),
        ("399163009", "SCT", "magnification view (ViewModifierCodeSequence 399163009)"),
        ("399209000", "SCT", "implant displaced view (ViewModifierCodeSequence 399209000)"),
        ("R-102D7", "SRT", "spot compression view (ViewModifierCodeSequence R-102D7)"),
        ("399161006", "SCT", "cleavage view (ViewModifierCodeSequence 399161006)"),
        ("123456", "99LOCAL", "view modifier view (ViewModifierCodeSequence 123456)"),
    ],
)
def test_view_modifiers(code: str, scheme: str, reason: str) -> None:
    c = classify(make_header("R", "CC", modifiers=((code, scheme),)))
    assert not c.usable
    assert c.reason == reason
    assert (c.laterality, c.view) == ("R", "CC")  # still recorded for the index


def test_view_modifier_at_top_level() -> None:
    ds = make_dataset("R", "CC")
    item = Dataset()
    item.CodeValue = "399163009"
    item.CodingSchemeDesignator = "SCT"
    ds.ViewModifierCodeSequence = [item]
    c = classify(InstanceHeader.from_dataset(ds, has_pixel_data=True))
    assert c.reason == "magnification view (ViewModifierCodeSequence 399163009)"


def test_no_pixel_data() -> None:
    c = classify(make_header("L", "CC", has_pixel_data=False))
    assert (c.usable, c.reason) == (False, "no pixel data")


def test_unknown_pixel_presence_is_not_an_exclusion() -> None:
    _usable(make_header("L", "CC", has_pixel_data=None))


def test_own_device_uid_is_loop_guard() -> None:
    h = make_header("L", "CC", DeviceUID="1.2.3.999")
    assert classify(h).usable
    c = classify(h, own_device_uid="1.2.3.999")
    assert c.reason == "our own result object (loop guard)"


def test_own_manufacturer_is_configurable() -> None:
    h = make_header("L", "CC", Manufacturer="Hospital AI")
    assert classify(h).usable
    assert not classify(h, own_manufacturer="hospital ai").usable


def test_female_and_other_sex_are_in_intended_use() -> None:
    _usable(make_header("L", "CC", PatientSex="O"))
    _usable(make_header("L", "CC", PatientSex=None))


def test_first_rule_wins() -> None:
    c = classify(make_header("L", "CC", PatientSex="M", PresentationIntentType="FOR PROCESSING"))
    assert c.reason == "outside intended use: PatientSex M"


def test_classification_json_round_trip() -> None:
    from plugin.study.classify import Classification

    c = classify(make_header("L", "CC", ViewPosition="MLO"))
    assert Classification.from_json(c.to_json()) == c


def test_truncated_pixel_data() -> None:
    from plugin.study.header import read_header
    from tests.plugin.study.conftest import encode

    short = read_header(encode(make_dataset("L", "CC"), bytes(64 * 48)))
    c = classify(short)
    assert (
        c.reason == "truncated pixel data (3072 of 6144 bytes for Rows x Columns x BitsAllocated)"
    )
    data = encode(make_dataset("L", "CC"), bytes(64 * 48 * 2))
    cut = classify(read_header(data[:-10]))
    assert cut.reason == "truncated pixel data (shorter than its declared length)"
    assert classify(read_header(data)).usable
