"""preprocess / preprocess_array: crop, canonical orientation, resize with padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

from brgan_core.errors import DecodeError
from brgan_core.preprocess import (
    ImageHeader,
    PreprocessedImage,
    preprocess,
    preprocess_array,
    read_header,
    read_laterality,
    read_view,
)
from tests.brgan_core.preprocess.dicom_factory import make_ds, phantom, write

SIZE = (96, 80)


@pytest.fixture(scope="module")
def canonical() -> np.ndarray:
    """A left breast in the canonical frame: chest wall left, blob toward F/medial (lower half)."""
    raw, _ = phantom((150, 110), seed=11)
    return raw.astype(np.float32) / 4095.0


def _check_canonical(result: PreprocessedImage) -> None:
    img, mask = result.image, result.mask
    assert img.shape == mask.shape == SIZE and img.dtype == np.float32
    assert img.min() >= 0.0 and img.max() <= 1.0
    assert not img[~mask].any()  # background zero
    ch, cw = result.geometry.content_shape
    assert mask[:ch, 0].mean() > 0.5  # chest wall on the left ...
    assert mask[:ch, cw - 1].mean() < 0.3  # ... nipple toward +x
    assert not mask[ch:, :].any() and not mask[:, cw:].any()  # padding right/bottom only


# stored frame from the canonical left image, per (laterality, PatientOrientation)
STORED = {
    ("L", "A\\F"): lambda c: c,
    ("R", "P\\F"): lambda c: c[:, ::-1],
    ("R", "P\\L"): lambda c: c[:, ::-1],
    ("L", "A\\R"): lambda c: c,
    ("L", "R\\P"): lambda c: c[:, ::-1].T,  # OutOfBoundsOverlay's layout
    ("R", "L\\A"): lambda c: c.T,
    ("L", "A\\H"): lambda c: c[::-1, :],
}


@pytest.mark.parametrize(("laterality", "po"), list(STORED))
def test_left_and_right_overlay_after_canonicalisation(
    canonical: np.ndarray, laterality: str, po: str
) -> None:
    reference = preprocess_array(canonical, "L", ["A", "F"], SIZE)
    stored = np.ascontiguousarray(STORED[(laterality, po)](canonical))
    result = preprocess_array(stored, laterality, po.split("\\"), SIZE)
    _check_canonical(result)
    assert result.orientation_rule == "patient_orientation"
    np.testing.assert_allclose(result.image, reference.image, atol=1e-4)
    np.testing.assert_array_equal(result.mask, reference.mask)


def test_without_orientation_the_mask_finds_the_chest_wall(canonical: np.ndarray) -> None:
    result = preprocess_array(np.ascontiguousarray(canonical[:, ::-1]), "R", None, SIZE)
    assert result.orientation_rule == "mask" and result.geometry.flip_x
    _check_canonical(result)


def test_geometry_points_back_to_the_blob(canonical: np.ndarray) -> None:
    stored = np.ascontiguousarray(canonical[:, ::-1].T)
    result = preprocess_array(stored, "L", ["R", "P"], SIZE)
    peak_model = np.unravel_index(np.argmax(result.image * (result.image > 0.8)), SIZE)
    back = result.geometry.to_original([peak_model[1], peak_model[0]])
    col, row = round(float(back[0])), round(float(back[1]))
    assert stored[max(0, row - 2) : row + 3, max(0, col - 2) : col + 3].max() > 0.8


def test_integer_arrays_are_stretched(canonical: np.ndarray) -> None:
    result = preprocess_array((canonical * 4095).astype(np.uint16), "L", ["A", "F"], SIZE)
    assert result.image.max() <= 1.0 and result.image.max() > 0.5


def test_blank_image_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match=r"blank\.dcm: .*no breast"):
        preprocess_array(np.zeros((40, 30)), "L", None, SIZE, source="blank.dcm")


def test_preprocess_file_and_dataset(tmp_path: Path) -> None:
    raw, _ = phantom((150, 110), chest_wall="right", seed=4)
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "399368009", "SCT", "MLO"
    ds = make_ds(
        raw,
        ImageLaterality="R",
        PatientOrientation=["P", "F"],
        ViewPosition="CC",  # the code wins
        ViewCodeSequence=[code],
        WindowCenter=2048,
        WindowWidth=4096,
    )
    path = write(ds, tmp_path / "r_mlo.dcm")
    from_file = preprocess(path, size=SIZE)
    from_ds = preprocess(ds, size=SIZE)
    for result in (from_file, from_ds):
        assert (result.laterality, result.view) == ("R", "MLO")
        assert result.photometric == "MONOCHROME2"
        _check_canonical(result)
    np.testing.assert_array_equal(from_file.image, from_ds.image)


def test_monochrome1_gives_the_same_model_input() -> None:
    raw, _ = phantom((150, 110), seed=8)
    mono2 = preprocess(make_ds(raw, PatientOrientation=["A", "F"]), size=SIZE)
    inverted = (4095 - raw).astype(np.uint16)
    mono1 = preprocess(
        make_ds(inverted, photometric="MONOCHROME1", PatientOrientation=["A", "F"]), size=SIZE
    )
    assert mono1.photometric == "MONOCHROME1"
    np.testing.assert_allclose(mono1.image, mono2.image, atol=1e-5)


def test_laterality_and_view_sources() -> None:
    ds = Dataset()
    assert read_laterality(ds) is None and read_view(ds) is None
    ds.Laterality = "L"
    assert read_laterality(ds) == "L"
    frame = Dataset()
    frame.FrameLaterality = "R"
    anatomy = Dataset()
    anatomy.FrameAnatomySequence = [frame]
    ds.SharedFunctionalGroupsSequence = [anatomy]
    assert read_laterality(ds) == "R"  # FrameLaterality before Laterality
    ds.ImageLaterality = "L"
    assert read_laterality(ds) == "L"
    ds.ViewPosition = "ML"
    assert read_view(ds) == "ML"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "R-10242", "SRT"
    ds.ViewCodeSequence = [code]
    assert read_view(ds) == "CC"


def test_read_header() -> None:
    ds = make_ds(np.zeros((4, 4), dtype=np.uint16), ImageLaterality="R", ViewPosition="CC")
    ds.PatientOrientation = ["P", "L"]
    header = read_header(ds)
    assert header == ImageHeader("R", "CC", ("P", "L"), "MONOCHROME2")
    del ds.PatientOrientation
    assert read_header(ds).patient_orientation is None
