"""Canonical orientation from PatientOrientation (PS3.3 C.7.6.1.1.1) or the breast mask."""

from __future__ import annotations

import numpy as np
import pytest

from brgan_core.preprocess import canonical_orientation, parse_patient_orientation

# (PatientOrientation, laterality) -> (transpose, flip_x, flip_y)
CASES = [
    (("A", "R"), "L", (False, False, False)),  # L-CC as usually stored
    (("P", "L"), "R", (False, True, False)),  # R-CC
    (("A", "F"), "L", (False, False, False)),  # L-MLO
    (("P", "F"), "R", (False, True, False)),  # R-MLO
    (("P", "FL"), "R", (False, True, False)),  # GH133: refinement letters ignored
    (("A", "FR"), "L", (False, False, False)),
    (("A", "L"), "L", (False, False, True)),  # L-CC with lateral at the bottom
    (("P", "R"), "R", (False, True, True)),  # R-CC with lateral at the bottom
    (("A", "H"), "L", (False, False, True)),  # MLO stored upside down
    (("R", "P"), "L", (True, True, False)),  # OutOfBoundsOverlay: stored transposed
    (("L", "A"), "R", (True, False, False)),
    (("R", "A"), "R", (True, False, True)),
    (("F", "P"), "R", (True, True, False)),
    (("H", "A"), "L", (True, False, True)),
]


@pytest.mark.parametrize(("po", "laterality", "expected"), CASES)
def test_patient_orientation_table(po: tuple[str, str], laterality: str, expected: tuple) -> None:
    o = canonical_orientation(list(po), laterality)
    assert (o.transpose, o.flip_x, o.flip_y) == expected
    assert o.rule == "patient_orientation"
    assert f"{po[0][0]}\\{po[1][0]}" in o.detail


def test_string_value_and_case() -> None:
    o = canonical_orientation("r\\p", "L")
    assert (o.transpose, o.flip_x, o.flip_y) == (True, True, False)


def test_unknown_laterality_leaves_vertical() -> None:
    o = canonical_orientation(["P", "L"], None)
    assert (o.transpose, o.flip_x, o.flip_y) == (False, True, False)
    assert "laterality unknown" in o.detail


@pytest.mark.parametrize("value", [None, "", ["A"], ["A", "P"], ["X", "F"], ["L", "F"], 5])
def test_unusable_values(value: object) -> None:
    parsed = parse_patient_orientation(value)
    assert parsed is None or ("A" not in parsed and "P" not in parsed)
    assert canonical_orientation(value, "L").rule == "as_stored"


def _half_disc(right: bool) -> np.ndarray:
    yy, xx = np.mgrid[0:40, 0:30]
    x = 29 - xx if right else xx
    return (x**2 + (yy - 20) ** 2) < 20**2


@pytest.mark.parametrize("right", [False, True])
def test_mask_rule(right: bool) -> None:
    o = canonical_orientation(None, "R", _half_disc(right))
    assert o.rule == "mask"
    assert (o.transpose, o.flip_x, o.flip_y) == (False, right, False)


def test_mask_rule_centre_of_mass_when_no_edge_contact() -> None:
    mask = np.zeros((40, 40), dtype=bool)
    mask[10:30, 24:36] = True
    o = canonical_orientation(["A", "P"], "L", mask)  # invalid orientation -> mask
    assert o.rule == "mask" and o.flip_x and "centre of mass" in o.detail


def test_empty_mask_is_as_stored() -> None:
    o = canonical_orientation(None, "L", np.zeros((5, 5), dtype=bool))
    assert o.rule == "as_stored" and not (o.transpose or o.flip_x or o.flip_y)
