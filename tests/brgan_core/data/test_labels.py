from __future__ import annotations

import pytest

from brgan_core.data.labels import birads_label, parse_birads


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4a", "4a"),
        ("4C", "4c"),
        (" 5 ", "5"),
        ("BI-RADS 4", "4"),
        ("BIRADS 3", "3"),
        (2.0, "2"),
        (6, "6"),
        ("0", "0"),
        ("", None),
        (None, None),
        ("7", None),
        ("3a", None),
        ("n/a", None),
        (float("nan"), None),
        (4.5, None),
    ],
)
def test_parse_birads(value: object, expected: str | None) -> None:
    assert parse_birads(value) == expected


@pytest.mark.parametrize(
    ("birads", "label"),
    [
        ("0", 0),
        ("1", 0),
        ("2", 0),
        ("3", 0),
        ("4", 1),
        ("4a", 1),
        ("4b", 1),
        ("4c", 1),
        ("5", 1),
        ("6", 1),
    ],
)
def test_malignant_if_birads_above_3(birads: str, label: int) -> None:
    assert birads_label(birads) == label
