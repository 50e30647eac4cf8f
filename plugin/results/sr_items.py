"""Small builders of SR content items on pydicom datasets (PS3.3 C.17.3 SR Document Content).

highdicom's content items are tied to its TID 1500 classes and refuse some of what the
Mammography CAD SR needs (an empty NUM, by-reference relationships), so the CAD SR is built from
these plain functions instead: each returns one content item :class:`Dataset`, children are
attached with :func:`add`.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence as SequenceOf

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.coding import Code

CONTAINS = "CONTAINS"
HAS_CONCEPT_MOD = "HAS CONCEPT MOD"
HAS_ACQ_CONTEXT = "HAS ACQ CONTEXT"
HAS_PROPERTIES = "HAS PROPERTIES"
INFERRED_FROM = "INFERRED FROM"
SELECTED_FROM = "SELECTED FROM"

#: UCUM units used by the CAD SR.
PERCENT = Code("%", "UCUM", "percent")
MILLIMETER = Code("mm", "UCUM", "millimeter")
DEGREE = Code("deg", "UCUM", "degree")


def code_item(code: Code) -> Dataset:
    """A Code Sequence item (PS3.3 Table 8.8-1, basic coded entry attributes)."""
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    item.CodeMeaning = code.meaning
    return item


def code_sequence(code: Code) -> Sequence:
    return Sequence([code_item(code)])


def _item(value_type: str, relationship: str | None, name: Code | None) -> Dataset:
    item = Dataset()
    if relationship is not None:
        item.RelationshipType = relationship
    item.ValueType = value_type
    if name is not None:
        item.ConceptNameCodeSequence = code_sequence(name)
    return item


def container(name: Code, relationship: str | None = CONTAINS) -> Dataset:
    """CONTAINER, ContinuityOfContent SEPARATE (its children are independent statements)."""
    item = _item("CONTAINER", relationship, name)
    item.ContinuityOfContent = "SEPARATE"
    return item


def code(name: Code, value: Code, relationship: str) -> Dataset:
    item = _item("CODE", relationship, name)
    item.ConceptCodeSequence = code_sequence(value)
    return item


def text(name: Code, value: str, relationship: str) -> Dataset:
    item = _item("TEXT", relationship, name)
    item.TextValue = value
    return item


def date(name: Code, value: str, relationship: str) -> Dataset:
    item = _item("DATE", relationship, name)
    item.Date = value
    return item


def time(name: Code, value: str, relationship: str) -> Dataset:
    item = _item("TIME", relationship, name)
    item.Time = value
    return item


def num(name: Code, value: str, unit: Code, relationship: str) -> Dataset:
    """NUM with one measured value; ``value`` is the DS string as it shall be written."""
    measured = Dataset()
    measured.MeasurementUnitsCodeSequence = code_sequence(unit)
    measured.NumericValue = value
    item = _item("NUM", relationship, name)
    item.MeasuredValueSequence = Sequence([measured])
    return item


def image(sop_class_uid: str, sop_instance_uid: str, relationship: str) -> Dataset:
    """IMAGE without a concept name (as TID 4020 has it)."""
    ref = Dataset()
    ref.ReferencedSOPClassUID = sop_class_uid
    ref.ReferencedSOPInstanceUID = sop_instance_uid
    item = _item("IMAGE", relationship, None)
    item.ReferencedSOPSequence = Sequence([ref])
    return item


def scoord(
    name: Code, graphic_type: str, points: Iterable[tuple[float, float]], relationship: str
) -> Dataset:
    """2D SCOORD in image coordinates (column, row), PS3.3 C.18.6."""
    item = _item("SCOORD", relationship, name)
    item.GraphicType = graphic_type
    item.GraphicData = [float(v) for point in points for v in point]
    return item


def by_reference(relationship: str, target: SequenceOf[int]) -> Dataset:
    """A by-reference relationship to the content item at position ``target`` (PS3.3 C.17.3.2.5:
    the 1-based positions from the root down to the item)."""
    item = Dataset()
    item.RelationshipType = relationship
    item.ReferencedContentItemIdentifier = [int(v) for v in target]
    return item


def add(parent: Dataset, *children: Dataset) -> Dataset:
    """Append ``children`` to ``parent``'s Content Sequence; returns ``parent``."""
    existing = list(parent.get("ContentSequence", []))
    existing.extend(children)
    parent.ContentSequence = Sequence(existing)
    return parent
