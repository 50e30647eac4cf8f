"""Classify one instance: which breast, which view, and may it be analyzed (DESIGN.md step 3).

:func:`classify` is a pure function of an :class:`~plugin.study.header.InstanceHeader`. The rules
are applied in a fixed order and the first one that excludes the instance gives the reason; the
laterality and view are still worked out (best effort) for every image so the index and reports
can show them. The decision table, in the order applied, is ``docs/classification.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom.uid import UID

from plugin.study.header import InstanceHeader
from plugin.study.views import (
    POSITION_MODIFIERS,
    modifier_name,
    view_from_code,
    view_from_position,
    view_from_text,
)

__all__ = [
    "DEFAULT_OWN_MANUFACTURER",
    "Classification",
    "classify",
    "resolve_laterality",
    "resolve_view",
]

DEFAULT_OWN_MANUFACTURER = "brgan-pacs"
OWN_OBJECT_REASON = "our own result object (loop guard)"

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
MG_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
#: Image classes a digital mammogram may legitimately be stored as (with Modality MG).
MAMMOGRAM_CLASSES = frozenset(
    {
        MG_FOR_PRESENTATION,
        MG_FOR_PROCESSING,
        "1.2.840.10008.5.1.4.1.1.1",  # CR (older CR mammography)
        "1.2.840.10008.5.1.4.1.1.1.1",  # DX For Presentation
        "1.2.840.10008.5.1.4.1.1.1.1.1",  # DX For Processing
    }
)
#: Breast Tomosynthesis; Breast Projection X-Ray For Presentation / For Processing.
TOMOSYNTHESIS_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.13.1.3",
        "1.2.840.10008.5.1.4.1.1.13.1.4",
        "1.2.840.10008.5.1.4.1.1.13.1.5",
    }
)
#: SOP classes that hold pixel data without "Image Storage" in their name.
_OTHER_IMAGE_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.13.1.3"})

#: ImageType (0008,0008) values that mark an image outside screening use, and the reason.
IMAGE_TYPE_EXCLUSIONS: tuple[tuple[str, str], ...] = (
    ("STEREO", "stereotactic/biopsy image"),
    ("BIOPSY", "stereotactic/biopsy image"),
    ("SPECIMEN", "specimen radiograph"),
    ("CONTRAST", "contrast-enhanced image"),
    ("SUBTRACTION", "contrast-enhanced image"),
    ("RECOMBINED", "contrast-enhanced image"),
    ("HIGH_ENERGY", "contrast-enhanced image"),
)

_OTHER_SIDE = {"L": "R", "R": "L"}


@dataclass(frozen=True, slots=True)
class Classification:
    """The outcome for one instance.

    ``laterality`` is ``"L"``, ``"R"`` or None; ``view`` a short CID 4014 name (``"CC"``,
    ``"MLO"``, ``"ML"``, ``"XCCL"``, ``"LM"``, ``"FB"``…) or None. ``usable`` says whether it may
    be a target or contralateral of a pair; when not, ``reason`` is the short human-readable
    not-analyzed reason. ``notes`` records choices made on the way (e.g. ViewCodeSequence and
    ViewPosition disagreed and the code won) without making the image unusable.
    """

    laterality: str | None
    view: str | None
    usable: bool
    reason: str | None = None
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "laterality": self.laterality,
            "view": self.view,
            "usable": self.usable,
            "reason": self.reason,
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Classification:
        return cls(
            laterality=data.get("laterality"),
            view=data.get("view"),
            usable=bool(data.get("usable")),
            reason=data.get("reason"),
            notes=tuple(data.get("notes") or ()),
        )


def resolve_laterality(header: InstanceHeader) -> tuple[str | None, str | None]:
    """``(laterality, problem)``: ImageLaterality → FrameLaterality → Laterality, the first one
    present wins; any two present that differ is a problem (the text names both)."""
    sources = (
        ("ImageLaterality", header.image_laterality),
        ("FrameLaterality", header.frame_laterality),
        ("Laterality", header.laterality),
    )
    present = [(name, value) for name, value in sources if value]
    if not present:
        return None, "laterality unknown (no ImageLaterality, FrameLaterality or Laterality)"
    first_name, first = present[0]
    for name, value in present[1:]:
        if value != first:
            return None, f"laterality disagreement: {first_name} {first} vs {name} {value}"
    if first not in _OTHER_SIDE:
        return first, f"laterality {first} is not a single breast ({first_name} {first})"
    return first, None


def resolve_view(header: InstanceHeader) -> tuple[str | None, tuple[str, ...]]:
    """``(view, notes)``: ViewCodeSequence (SCT, SRT or SNM3 code of CID 4014) → ViewPosition →
    a view named in SeriesDescription / ProtocolName. When the code and ViewPosition disagree the
    code wins (it is the coded, standard attribute; ViewPosition is free-ish text) and a note
    records the disagreement."""
    notes: list[str] = []
    coded = None
    for value, scheme in header.view_codes:
        view = view_from_code(value, scheme)
        if view is not None:
            coded = view.name
            break
    if header.view_codes and coded is None:
        first = header.view_codes[0]
        notes.append(f"ViewCodeSequence {first[0]} ({first[1] or 'no scheme'}) not in CID 4014")
    positioned = view_from_position(header.view_position)
    if coded is not None:
        if positioned is not None and positioned != coded:
            notes.append(f"ViewCodeSequence {coded} overrides ViewPosition {header.view_position}")
        return coded, tuple(notes)
    if positioned is not None:
        return positioned, tuple(notes)
    hinted = view_from_text(header.series_description, header.protocol_name)
    if hinted is not None:
        notes.append(f"view {hinted} taken from SeriesDescription/ProtocolName text")
    return hinted, tuple(notes)


def _sop_class_name(uid: str) -> str:
    name = UID(uid).name if uid else ""
    return name if name and name != uid else (uid or "unknown SOP class")


def is_image_class(uid: str) -> bool:
    """Whether a SOP class holds an image (its name is an "… Image Storage" class)."""
    return _is_image_class(uid)


def _is_image_class(uid: str) -> bool:
    if uid in _OTHER_IMAGE_CLASSES:
        return True
    name = UID(uid).name if uid else ""
    return "Image Storage" in name


def _expected_native_length(header: InstanceHeader) -> int | None:
    """Bytes native pixel data of this size must hold, or None when not computable."""
    dims = (header.rows, header.columns, header.bits_allocated)
    if any(d is None or d <= 0 for d in dims):
        return None
    rows, columns, bits = (int(d) for d in dims)  # type: ignore[arg-type]
    frames = header.number_of_frames or 1
    samples = header.samples_per_pixel or 1
    return (rows * columns * frames * samples * bits + 7) // 8


_GRAYSCALE = frozenset({"MONOCHROME1", "MONOCHROME2"})
#: Largest Rows/Columns analyzed: real FFDM detectors are at most ~6,000 x 5,000 pixels; a
#: larger header is refused before a worker would decode (and inflate) it.
MAX_SIDE = 12_000


def _pixel_header_problem(header: InstanceHeader) -> str | None:
    """Header facts that make the pixel data undecodable, checked without decoding it
    (PS3.3 C.7.6.3 Image Pixel Module; C.8.11.7 Mammography Image Module: 8 or 16 bits
    allocated, one sample per pixel, MONOCHROME1/2; PS3.5 §A.4 encapsulation)."""
    rows, columns = header.rows, header.columns
    if not rows or not columns or rows < 0 or columns < 0:
        return f"invalid image header: Rows {rows or 0} x Columns {columns or 0}"
    if rows > MAX_SIDE or columns > MAX_SIDE:
        return f"unsupported image size: Rows {rows} x Columns {columns} (at most {MAX_SIDE})"
    allocated, stored = header.bits_allocated, header.bits_stored
    if not allocated:
        return "invalid image header: BitsAllocated 0 or absent"
    if allocated not in (8, 16):
        return f"unsupported pixel format: BitsAllocated {allocated} (a mammogram has 8 or 16)"
    if stored is not None and not 1 <= stored <= allocated:
        return f"invalid image header: BitsStored {stored} with BitsAllocated {allocated}"
    if header.samples_per_pixel not in (None, 1):
        return f"not a grayscale image: SamplesPerPixel {header.samples_per_pixel}"
    if header.photometric is not None and header.photometric not in _GRAYSCALE:
        return f"not a grayscale image: PhotometricInterpretation {header.photometric}"
    ts = header.transfer_syntax_uid
    if ts and header.pixel_data_encapsulated is not None:
        encapsulated_ts = UID(ts).is_encapsulated
        if header.pixel_data_encapsulated and not encapsulated_ts:
            return (
                "invalid pixel data: encapsulated fragments under the native transfer syntax "
                f"{UID(ts).name}"
            )
        if not header.pixel_data_encapsulated and encapsulated_ts:
            return (
                "invalid pixel data: native (defined-length) pixel data under the compressed "
                f"transfer syntax {UID(ts).name}"
            )
    return None


def _is_own_object(
    header: InstanceHeader, own_manufacturer: str, own_device_uid: str | None
) -> bool:
    manufacturer = (header.manufacturer or "").strip().casefold()
    if own_manufacturer and manufacturer == own_manufacturer.strip().casefold():
        return True
    return bool(own_device_uid) and header.device_uid == own_device_uid


def _exclusion(
    header: InstanceHeader,
    laterality_problem: str | None,
    view: str | None,
    own_manufacturer: str,
    own_device_uid: str | None,
) -> str | None:
    """The first rule (in decision-table order) that excludes the instance, as its reason."""
    sop = header.sop_class_uid
    # 1. Loop guard: a result object we wrote, sent back to us by the PACS.
    if _is_own_object(header, own_manufacturer, own_device_uid):
        return OWN_OBJECT_REASON
    # 2. Non-image objects (SR, PR, KO, …).
    if not _is_image_class(sop):
        return f"not an image (SOP class {_sop_class_name(sop)})"
    # 3. Modality.
    if header.modality != "MG":
        return f"not a mammogram: Modality {header.modality or '(absent)'}"
    # 4. Tomosynthesis and breast projection objects.
    if sop in TOMOSYNTHESIS_CLASSES:
        return f"tomosynthesis object ({_sop_class_name(sop)})"
    # 5. Any other image class (Secondary Capture, …).
    if sop not in MAMMOGRAM_CLASSES:
        return f"not a digital mammogram (SOP class {_sop_class_name(sop)})"
    # 6. Pixel data.
    if header.has_pixel_data is False:
        return "no pixel data"
    problem = _pixel_header_problem(header)
    if problem is not None:
        return problem
    if header.pixel_data_truncated:
        return "truncated pixel data (shorter than its declared length)"
    expected = _expected_native_length(header)
    actual = header.pixel_data_length
    if expected is not None and actual is not None and actual < expected:
        return (
            f"truncated pixel data ({actual} of {expected} bytes "
            "for Rows x Columns x BitsAllocated)"
        )
    if header.number_of_frames is not None and header.number_of_frames > 1:
        return f"multi-frame image (NumberOfFrames {header.number_of_frames})"
    # 7. Intended use.
    if header.patient_sex == "M":
        return "outside intended use: PatientSex M"
    if header.breast_implant_present == "YES":
        return "outside intended use: breast implant present"
    # 8. Raw detector data.
    if header.presentation_intent == "FOR PROCESSING" or sop in {
        MG_FOR_PROCESSING,
        "1.2.840.10008.5.1.4.1.1.1.1.1",
    }:
        return "FOR PROCESSING image (raw detector data)"
    # 9. Procedure images: stereo/biopsy, specimen, contrast.
    for marker, what in IMAGE_TYPE_EXCLUSIONS:
        if marker in header.image_type:
            return f"{what} (ImageType {marker})"
    if header.contrast_agent_present:
        return "contrast-enhanced image (ContrastBolusAgent)"
    # 10. View modifiers and partial views.
    if header.view_modifier_codes:
        value, _scheme = header.view_modifier_codes[0]
        return f"{modifier_name(value)} view (ViewModifierCodeSequence {value})"
    if header.partial_view == "YES":
        return "partial view (PartialView YES)"
    # 11. Laterality.
    if laterality_problem is not None:
        return laterality_problem
    # 12. View.
    if view is None:
        return "view unknown (no ViewCodeSequence, ViewPosition or description)"
    if view in POSITION_MODIFIERS:
        return f"{POSITION_MODIFIERS[view]} view (ViewPosition {header.view_position})"
    if view == "SPECIMEN":
        return "specimen radiograph (ViewCodeSequence)"
    return None


def classify(
    header: InstanceHeader,
    *,
    own_manufacturer: str = DEFAULT_OWN_MANUFACTURER,
    own_device_uid: str | None = None,
) -> Classification:
    """Laterality, view and usability of one instance (pure; header only).

    ``own_manufacturer`` / ``own_device_uid``: what our result objects write in Manufacturer
    (0008,0070) and DeviceUID (0018,1002); an instance carrying either is our own output coming
    back (loop guard).
    """
    laterality, laterality_problem = resolve_laterality(header)
    view, notes = resolve_view(header)
    reason = _exclusion(header, laterality_problem, view, own_manufacturer, own_device_uid)
    lat = laterality if laterality in _OTHER_SIDE else None
    view_out = None if view in POSITION_MODIFIERS else view
    return Classification(
        laterality=lat, view=view_out, usable=reason is None, reason=reason, notes=notes
    )
