"""BI-RADS strings to labels, shared by the readers.

The paper (Sect. 3.1) follows Zhu et al.: an image is *malignant* when its BI-RADS category
is greater than 3 (4, 4a, 4b, 4c, 5 and 6), benign otherwise (0 to 3).
"""

from __future__ import annotations

import math
import re

_BIRADS = re.compile(r"^\s*(?:BI-?RADS)?\s*([0-6])\s*([ABCabc])?\s*$", re.IGNORECASE)


def parse_birads(value: object) -> str | None:
    """Normalize a BI-RADS value to ``"0"``–``"6"`` or ``"4a"``/``"4b"``/``"4c"``.

    Accepts what the datasets write: ``"4a"``, ``"4A"``, ``"BI-RADS 4"``, ``5``, ``5.0``
    (xlrd gives numbers as floats). Returns ``None`` for an empty or unreadable value.
    """
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value) or not value.is_integer():
            return None
        value = int(value)
    match = _BIRADS.match(str(value))
    if match is None:
        return None
    category, sub = match.groups()
    if sub is not None and category != "4":
        return None
    return category + (sub.lower() if sub else "")


def birads_label(birads: str) -> int:
    """1 (malignant) when the normalized category is > 3, else 0."""
    return int(int(birads[0]) > 3)
