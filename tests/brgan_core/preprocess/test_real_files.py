"""The real mammography fixtures in ../shared/fixtures/real-mg (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.pixels import apply_voi

from brgan_core.errors import DecodeError
from brgan_core.preprocess import (
    PreprocessedImage,
    breast_mask,
    preprocess,
    read_dataset,
    to_display,
)

DECODABLE = ("GH133.dcm", "OutOfBoundsOverlay.dcm", "MG1_J2KI.dcm")


@pytest.fixture(scope="module")
def results(real_mg_dir: Path) -> dict[str, PreprocessedImage]:
    """Each decodable real file preprocessed once for the whole module."""
    return {name: preprocess(real_mg_dir / name) for name in DECODABLE}


@pytest.mark.parametrize("name", DECODABLE)
def test_breast_lands_chest_wall_left(results: dict[str, PreprocessedImage], name: str) -> None:
    result = results[name]
    ch, cw = result.geometry.content_shape
    mask = result.mask
    assert result.image.shape == (512, 416) and 0 <= result.image.min() <= result.image.max() <= 1
    assert not result.image[~mask].any()
    assert mask[:ch, :3].any(axis=1).mean() > 0.5, "chest wall is not at column 0"
    assert mask[:ch, cw - 1].mean() < 0.5, "the breast apex should not fill the far side"
    cols = np.nonzero(mask)[1]
    assert cols.mean() < cw / 2 + 10, "more tissue near the chest wall than near the nipple"
    assert result.orientation_rule == "patient_orientation"


def test_gh133_right_mlo(results: dict[str, PreprocessedImage]) -> None:
    r = results["GH133.dcm"]
    assert (r.laterality, r.view, r.photometric) == ("R", "MLO", "MONOCHROME2")
    g = r.geometry
    assert (g.transpose, g.flip_x, g.flip_y) == (False, True, False)
    assert g.original_shape == (3062, 2394)


def test_gh133_uses_its_voi_lut_sequence(real_mg_dir: Path) -> None:
    ds = read_dataset(real_mg_dir / "GH133.dcm")
    display = to_display(ds)
    stored = ds.pixel_array
    expected = apply_voi(stored[::97, ::97], ds, index=0) / 4095.0  # LUT Descriptor: 12 bits
    np.testing.assert_allclose(display[::97, ::97], expected, atol=1e-6)


def test_out_of_bounds_overlay_is_stored_transposed(
    results: dict[str, PreprocessedImage], real_mg_dir: Path
) -> None:
    r = results["OutOfBoundsOverlay.dcm"]
    assert (r.laterality, r.view) == ("L", "CC")
    g = r.geometry
    assert (g.transpose, g.flip_x, g.flip_y) == (True, True, False)
    # the model-space mask mapped back overlaps the mask of the stored image
    original = breast_mask(to_display(read_dataset(real_mg_dir / "OutOfBoundsOverlay.dcm")))
    back = g.heatmap_to_original(r.mask.astype(np.float32), order=0) > 0.5
    iou = (back & original).sum() / (back | original).sum()
    assert iou > 0.95


def test_j2k_lossy_scanned_film_decodes(results: dict[str, PreprocessedImage]) -> None:
    r = results["MG1_J2KI.dcm"]
    assert (r.laterality, r.view) == ("L", "MLO")
    assert r.geometry.original_shape == (4664, 3064)
    assert not (r.geometry.transpose or r.geometry.flip_x or r.geometry.flip_y)


def test_jpeg_extended_is_a_clear_decode_error(real_mg_dir: Path) -> None:
    path = real_mg_dir / "MG1_JPLY.dcm"
    with pytest.raises(DecodeError) as info:
        preprocess(path)
    message = str(info.value)
    assert str(path) in message
    assert "JPEG Extended" in message and "1.2.840.10008.1.2.4.51" in message
    assert info.value.source == str(path)
