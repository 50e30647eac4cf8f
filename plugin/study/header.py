"""What the study assembler needs to know about one stored instance, read from its header only.

:class:`InstanceHeader` is extracted once, when an instance is received, from a header-only
pydicom Dataset (``dcmread(..., stop_before_pixels=True)``); the index stores it as JSON
(:meth:`InstanceHeader.to_json`) and the classifier and the pairing work on it alone. Pixel data
is never decoded here: whether an instance *has* pixels is known from the Pixel Data element's tag
and length (:func:`read_header` finds them without reading the value).

No PHI leaves this object: the PatientID is kept only as its SHA-256 (to compare the images of a
study with each other); names, birth dates and accession numbers are not copied at all.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError

from plugin.errors import PluginError
from plugin.study.deflate import (
    DEFAULT_MAX_INFLATED_BYTES,
    DeflatedUnreadableError,
    is_deflated,
    read_deflated_header,
)

__all__ = ["BadUID", "HeaderError", "InstanceHeader", "NotADataSet", "read_header"]

#: Pixel Data, Float Pixel Data, Double Float Pixel Data.
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_DEFLATED = "1.2.840.10008.1.2.1.99"
_UNDEFINED_LENGTH = 0xFFFFFFFF

Code = tuple[str, str]
"""A coded concept as ``(code_value, coding_scheme_designator)``, e.g. ``("399162004", "SCT")``."""


class HeaderError(PluginError, ValueError):
    """A dataset lacks what every stored instance must have (SOP Instance / Study UID)."""


class NotADataSet(HeaderError):  # noqa: N818
    """The bytes parse to nothing a DICOM object has (empty, or random bytes)."""


class BadUID(HeaderError):  # noqa: N818
    """A UID the service needs is missing or not a valid UI value; ``attribute`` names it."""

    def __init__(self, attribute: str, problem: str) -> None:
        super().__init__(f"{attribute} {problem}")
        self.attribute = attribute
        self.problem = problem


#: PS3.5 §9.1: UID components are digits separated by dots, at most 64 characters. Leading
#: zeros in a component are tolerated (seen in the wild); anything else is refused.
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
UID_MAX_LENGTH = 64
#: Identifying attributes that, when present, must be valid UIDs (SOPClassUID falls back to the
#: file meta's MediaStorageSOPClassUID when absent; Series is optional for assembly).
REQUIRED_UIDS = ("SOPInstanceUID", "StudyInstanceUID")
OPTIONAL_UIDS = ("SeriesInstanceUID", "SOPClassUID")


@dataclass(frozen=True, slots=True)
class InstanceHeader:
    """The header fields of one instance that classification, pairing and results need.

    All values are JSON-safe (str, int, bool, None and tuples of those). Coded string values are
    stripped and upper-cased where the standard defines them as enumerated or defined terms
    (laterality, view position, image type, presentation intent, YES/NO flags).
    """

    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str = ""
    modality: str | None = None
    #: SHA-256 hex digest of PatientID (0010,0020); None when the attribute is absent or empty.
    patient_id_hash: str | None = None
    patient_sex: str | None = None
    #: ImageLaterality (0020,0062).
    image_laterality: str | None = None
    #: FrameLaterality (0020,9072), top level or in the Shared/first Per-Frame Functional Group.
    frame_laterality: str | None = None
    #: Laterality (0020,0060), the series-level attribute.
    laterality: str | None = None
    #: ViewPosition (0018,5101).
    view_position: str | None = None
    #: Every item of ViewCodeSequence (0054,0220).
    view_codes: tuple[Code, ...] = ()
    #: ViewModifierCodeSequence (0054,0222), top level and nested in ViewCodeSequence items.
    view_modifier_codes: tuple[Code, ...] = ()
    #: PresentationIntentType (0008,0068): "FOR PRESENTATION" or "FOR PROCESSING".
    presentation_intent: str | None = None
    #: ImageType (0008,0008), every value (empty values kept so positions stay meaningful).
    image_type: tuple[str, ...] = ()
    #: PartialView (0028,1350): "YES" / "NO".
    partial_view: str | None = None
    #: BreastImplantPresent (0028,1300): "YES" / "NO".
    breast_implant_present: str | None = None
    #: ContrastBolusAgent (0018,0010) or ContrastBolusAgentSequence (0018,0012) is non-empty.
    contrast_agent_present: bool = False
    manufacturer: str | None = None
    manufacturer_model_name: str | None = None
    series_description: str | None = None
    protocol_name: str | None = None
    series_number: int | None = None
    instance_number: int | None = None
    #: ISO 8601 ``YYYY-MM-DD[THH:MM:SS[.ffffff]]`` from AcquisitionDateTime, else
    #: AcquisitionDate/Time, else ContentDate/Time; None when none is readable. Time zone dropped,
    #: so values of one study compare as strings.
    acquisition_datetime: str | None = None
    #: True/False when known (from the Pixel Data element's length); None when unknown.
    has_pixel_data: bool | None = None
    #: The Pixel Data element declares more bytes than the file holds.
    pixel_data_truncated: bool = False
    #: The declared length of native (uncompressed) Pixel Data; None when encapsulated or unknown.
    pixel_data_length: int | None = None
    #: Pixel Data has undefined length (encapsulated fragments, PS3.5 §A.4); None when unknown.
    pixel_data_encapsulated: bool | None = None
    rows: int | None = None
    columns: int | None = None
    photometric: str | None = None
    bits_allocated: int | None = None
    bits_stored: int | None = None
    samples_per_pixel: int | None = None
    number_of_frames: int | None = None
    transfer_syntax_uid: str | None = None
    software_versions: tuple[str, ...] = ()
    #: DeviceUID (0018,1002).
    device_uid: str | None = None
    #: PatientOrientation (0020,0020): the row and column directions, e.g. ("A", "R"), as
    #: stored (upper case); () when absent. Passed to the worker with laterality and view.
    patient_orientation: tuple[str, ...] = ()

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_dataset(
        cls,
        ds: Dataset,
        *,
        has_pixel_data: bool | None = None,
        pixel_data_truncated: bool = False,
        pixel_data_length: int | None = None,
        pixel_data_encapsulated: bool | None = None,
        transfer_syntax_uid: str | None = None,
        strict_uids: bool = False,
    ) -> InstanceHeader:
        """Extract the header fields from ``ds`` (a header-only read is enough).

        ``has_pixel_data``: pass it when ``ds`` was read with ``stop_before_pixels=True`` (the
        caller knows from the bytes); when None, it is taken from ``ds`` if a pixel element is
        there, else left None (unknown). ``transfer_syntax_uid`` defaults to the file meta's.

        Raises :class:`NotADataSet` when ``ds`` has none of SOPClassUID, SOPInstanceUID and
        StudyInstanceUID (empty or random bytes), :class:`BadUID` when SOPInstanceUID or
        StudyInstanceUID is missing, or when one of those, SeriesInstanceUID or SOPClassUID is
        present with another VR than UI or more than one value; with ``strict_uids`` (what the
        listener uses) also when its characters or length break PS3.5 §9.1. Every other
        attribute is optional and a malformed value reads as None.
        """
        if not any(keyword in ds for keyword in (*REQUIRED_UIDS, "SOPClassUID")):
            raise NotADataSet(
                "no SOPClassUID, SOPInstanceUID or StudyInstanceUID: not a DICOM data set"
            )
        sop_instance_uid = _uid(ds, "SOPInstanceUID", required=True, strict=strict_uids)
        study_uid = _uid(ds, "StudyInstanceUID", required=True, strict=strict_uids)
        series_uid = _uid(ds, "SeriesInstanceUID", required=False, strict=strict_uids)
        meta = getattr(ds, "file_meta", None)
        sop_class_uid = _uid(ds, "SOPClassUID", required=False, strict=strict_uids) or (
            _text(meta, "MediaStorageSOPClassUID") if meta is not None else None
        )
        if transfer_syntax_uid is None and meta is not None:
            transfer_syntax_uid = _text(meta, "TransferSyntaxUID")
        if has_pixel_data is None:
            has_pixel_data = _pixel_presence_in_dataset(ds)
        if pixel_data_length is None:
            pixel_data_length = _native_pixel_length_in_dataset(ds)

        patient_id = _text(ds, "PatientID")
        view_codes, nested_modifiers = _view_codes(ds)
        modifiers = _codes(_get(ds, "ViewModifierCodeSequence")) + nested_modifiers
        return cls(
            sop_class_uid=sop_class_uid or "",
            sop_instance_uid=sop_instance_uid or "",
            study_uid=study_uid or "",
            series_uid=series_uid or "",
            modality=_upper(ds, "Modality"),
            patient_id_hash=(
                hashlib.sha256(patient_id.encode("utf-8")).hexdigest() if patient_id else None
            ),
            patient_sex=_upper(ds, "PatientSex"),
            image_laterality=_upper(ds, "ImageLaterality"),
            frame_laterality=_frame_laterality(ds),
            laterality=_upper(ds, "Laterality"),
            view_position=_upper(ds, "ViewPosition"),
            view_codes=view_codes,
            view_modifier_codes=tuple(dict.fromkeys(modifiers)),
            presentation_intent=_upper(ds, "PresentationIntentType"),
            image_type=tuple(v.strip().upper() for v in _multi(ds, "ImageType")),
            partial_view=_upper(ds, "PartialView"),
            breast_implant_present=_upper(ds, "BreastImplantPresent"),
            contrast_agent_present=bool(
                _text(ds, "ContrastBolusAgent") or _get(ds, "ContrastBolusAgentSequence")
            ),
            manufacturer=_text(ds, "Manufacturer"),
            manufacturer_model_name=_text(ds, "ManufacturerModelName"),
            series_description=_text(ds, "SeriesDescription"),
            protocol_name=_text(ds, "ProtocolName"),
            series_number=_int(ds, "SeriesNumber"),
            instance_number=_int(ds, "InstanceNumber"),
            acquisition_datetime=_acquisition_datetime(ds),
            has_pixel_data=has_pixel_data,
            pixel_data_truncated=pixel_data_truncated,
            pixel_data_length=pixel_data_length,
            pixel_data_encapsulated=pixel_data_encapsulated,
            rows=_int(ds, "Rows"),
            columns=_int(ds, "Columns"),
            photometric=_upper(ds, "PhotometricInterpretation"),
            bits_allocated=_int(ds, "BitsAllocated"),
            bits_stored=_int(ds, "BitsStored"),
            samples_per_pixel=_int(ds, "SamplesPerPixel"),
            number_of_frames=_int(ds, "NumberOfFrames"),
            transfer_syntax_uid=transfer_syntax_uid,
            software_versions=tuple(v.strip() for v in _multi(ds, "SoftwareVersions") if v),
            device_uid=_text(ds, "DeviceUID"),
            patient_orientation=tuple(
                v.strip().upper() for v in _multi(ds, "PatientOrientation") if v.strip()
            ),
        )

    # -- storage --------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (tuples become lists); :meth:`from_json` reverses it."""
        out = asdict(self)
        out["view_codes"] = [list(c) for c in self.view_codes]
        out["view_modifier_codes"] = [list(c) for c in self.view_modifier_codes]
        out["image_type"] = list(self.image_type)
        out["software_versions"] = list(self.software_versions)
        out["patient_orientation"] = list(self.patient_orientation)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceHeader:
        """Rebuild from :meth:`to_json` output. Unknown keys are ignored, missing optional ones
        take their defaults (so rows written by an older version still load)."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        for key in ("view_codes", "view_modifier_codes"):
            if key in kwargs:
                kwargs[key] = tuple((str(c[0]), str(c[1])) for c in kwargs[key] or ())
        for key in ("image_type", "software_versions", "patient_orientation"):
            if key in kwargs:
                kwargs[key] = tuple(str(v) for v in kwargs[key] or ())
        return cls(**kwargs)


# -- reading from bytes or a file -------------------------------------------------------------


def read_header(
    source: str | os.PathLike[str] | bytes | BinaryIO,
    *,
    strict_uids: bool = False,
    max_inflated_bytes: int | None = None,
) -> InstanceHeader:
    """Read the header of a stored instance (file path, encoded bytes or a binary file object)
    without reading its pixel data, and find whether pixel data is present from the element's
    tag and length.

    Raises :class:`HeaderError` when the bytes are not a DICOM dataset or lack the required UIDs,
    and :class:`~plugin.study.deflate.DeflatedTooLargeError` when a Deflated data set inflates
    to more than ``max_inflated_bytes`` (None: 2 GiB, the default ``max_dataset_bytes``).
    """
    if isinstance(source, bytes | bytearray):
        return _read_header_fp(io.BytesIO(source), strict_uids, max_inflated_bytes)
    if isinstance(source, str | os.PathLike):
        with Path(source).open("rb") as fp:
            return _read_header_fp(fp, strict_uids, max_inflated_bytes)
    return _read_header_fp(source, strict_uids, max_inflated_bytes)


def _read_header_fp(
    fp: BinaryIO, strict_uids: bool = False, max_inflated_bytes: int | None = None
) -> InstanceHeader:
    if is_deflated(fp):
        # dcmread would inflate the whole data set, pixel data included (issue 8 §3).
        return _read_deflated_header_fp(fp, strict_uids, max_inflated_bytes)
    try:
        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
    except (InvalidDicomError, EOFError, struct.error, ValueError, OSError) as exc:
        raise HeaderError(f"not a readable DICOM header: {exc}") from exc
    meta = getattr(ds, "file_meta", None)
    ts = _text(meta, "TransferSyntaxUID") if meta is not None else None
    has_pixels, truncated, length = _probe_pixel_element(fp, ds)
    return InstanceHeader.from_dataset(
        ds,
        has_pixel_data=has_pixels,
        pixel_data_truncated=truncated,
        pixel_data_length=length,
        pixel_data_encapsulated=(length is None) if has_pixels else None,
        transfer_syntax_uid=ts,
        strict_uids=strict_uids,
    )


def _read_deflated_header_fp(
    fp: BinaryIO, strict_uids: bool, max_inflated_bytes: int | None
) -> InstanceHeader:
    """A Deflated Explicit VR Little Endian file (PS3.5 §A.5), inflated as a stream: only the
    header is kept, the pixel data is counted (:mod:`plugin.study.deflate`). A corrupt stream is
    a :class:`HeaderError`; :class:`~plugin.study.deflate.DeflatedTooLargeError` passes through.
    """
    limit = DEFAULT_MAX_INFLATED_BYTES if max_inflated_bytes is None else max_inflated_bytes
    try:
        ds, pixels = read_deflated_header(fp, max_inflated_bytes=limit)
    except DeflatedUnreadableError as exc:
        raise HeaderError(f"not a readable DICOM header: {exc}") from exc
    return InstanceHeader.from_dataset(
        ds,
        has_pixel_data=pixels.has_pixel_data,
        pixel_data_truncated=pixels.truncated,
        pixel_data_length=pixels.length,
        pixel_data_encapsulated=(pixels.length is None) if pixels.has_pixel_data else None,
        transfer_syntax_uid=_DEFLATED,
        strict_uids=strict_uids,
    )


def _probe_pixel_element(fp: BinaryIO, ds: Dataset) -> tuple[bool, bool, int | None]:
    """After a ``stop_before_pixels`` read, ``fp`` sits on the pixel element's tag (if any).

    Returns ``(has_pixel_data, truncated, declared_length)`` from the element's header; the
    length is None for encapsulated (undefined-length) pixel data."""
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return False, False, None
    little = getattr(ds, "is_little_endian", None)
    implicit = getattr(ds, "is_implicit_VR", None)
    little = True if little is None else bool(little)
    implicit = False if implicit is None else bool(implicit)
    endian = "<" if little else ">"
    group, elem = struct.unpack(endian + "HH", head[:4])
    if (group << 16 | elem) not in PIXEL_TAGS:
        return False, False, None
    if implicit:
        (length,) = struct.unpack(endian + "L", head[4:8])
        value_start = start + 8
    elif head[4:6] in (b"OB", b"OW", b"OF", b"OD", b"UN", b"OL", b"OV"):
        if len(head) < 12:
            return False, False, None
        (length,) = struct.unpack(endian + "L", head[8:12])
        value_start = start + 12
    else:
        (length,) = struct.unpack(endian + "H", head[6:8])
        value_start = start + 8
    if length == _UNDEFINED_LENGTH:
        # Encapsulated: present; truncation shows only when decoding (the worker's concern).
        return True, False, None
    if length == 0:
        return False, False, 0
    end = fp.seek(0, io.SEEK_END)
    return True, value_start + length > end, length


def _pixel_presence_in_dataset(ds: Dataset) -> bool | None:
    for tag in PIXEL_TAGS:
        if tag in ds:
            value = ds[tag].value
            return value is not None and len(value) > 0
    return None


def _native_pixel_length_in_dataset(ds: Dataset) -> int | None:
    elem = ds.get(0x7FE00010)
    if elem is None or elem.value is None or getattr(elem, "is_undefined_length", False):
        return None
    meta = getattr(ds, "file_meta", None)
    ts = _text(meta, "TransferSyntaxUID") if meta is not None else None
    if ts is not None and pydicom.uid.UID(ts).is_compressed:
        return None
    return len(elem.value)


# -- attribute helpers (tolerant: a malformed value reads as None) ----------------------------


#: What pydicom raises converting a malformed raw value (e.g. a 2-byte value under VR FD:
#: BytesLengthException, which is no ValueError; issue 13 §2, found by the fuzzer).
_VALUE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    OverflowError,
    BytesLengthException,
)


def _uid(ds: Dataset, keyword: str, *, required: bool, strict: bool) -> str | None:
    """A UID attribute checked as PS3.5 §6.2 / §9.1 define UI: VR UI (or UN that decodes to
    one), one value; with ``strict`` also digits and dots, at most 64 characters (trailing
    NUL/space padding stripped). Raises :class:`BadUID` naming the attribute, never quoting
    the value."""
    if keyword not in ds:
        if required:
            raise BadUID(keyword, "missing")
        return None
    try:
        elem = ds.data_element(keyword)
    except _VALUE_ERRORS:
        raise BadUID(keyword, "cannot be read as a UID") from None
    if elem is None or elem.value is None or elem.value == "" or elem.value == b"":
        if required:
            raise BadUID(keyword, "missing")
        return None
    if elem.VR not in ("UI", "UN"):
        raise BadUID(keyword, f"has VR {elem.VR}, not UI")
    value = elem.value
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise BadUID(keyword, "not a valid UID: not ASCII") from None
    if not isinstance(value, str):
        raise BadUID(keyword, "not a valid UID: not one text value")
    text = value.rstrip("\x00 ").lstrip(" ")
    if not text:
        if required:
            raise BadUID(keyword, "missing")
        return None
    if not strict:
        return text
    if len(text) > UID_MAX_LENGTH:
        raise BadUID(keyword, f"not a valid UID: {len(text)} chars > 64")
    if not _UID_RE.match(text):
        raise BadUID(keyword, "not a valid UID: not digits and dots")
    return text


def _get(ds: Dataset | None, keyword: str) -> Any:
    if ds is None:
        return None
    try:
        return ds.get(keyword)
    except _VALUE_ERRORS:
        return None


def _text(ds: Dataset | None, keyword: str) -> str | None:
    value = _get(ds, keyword)
    if value is None:
        return None
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value)
    text = str(value).strip().strip("\x00").strip()
    return text or None


def _upper(ds: Dataset | None, keyword: str) -> str | None:
    text = _text(ds, keyword)
    return text.upper() if text else None


def _multi(ds: Dataset, keyword: str) -> list[str]:
    value = _get(ds, keyword)
    if value is None:
        return []
    if isinstance(value, str):
        return value.split("\\") if value else []
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return [str(value)]


def _int(ds: Dataset, keyword: str) -> int | None:
    value = _get(ds, keyword)
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        value = value[0] if value else None
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        try:
            return int(float(str(value)))
        except (TypeError, ValueError):
            return None


def _codes(seq: Any) -> tuple[Code, ...]:
    out: list[Code] = []
    for item in seq or ():
        value = _text(item, "CodeValue") or _text(item, "LongCodeValue")
        scheme = _upper(item, "CodingSchemeDesignator")
        if value:
            out.append((value.upper() if not value.isdigit() else value, scheme or ""))
    return tuple(out)


def _view_codes(ds: Dataset) -> tuple[tuple[Code, ...], tuple[Code, ...]]:
    seq = _get(ds, "ViewCodeSequence")
    nested: list[Code] = []
    for item in seq or ():
        nested.extend(_codes(_get(item, "ViewModifierCodeSequence")))
    return _codes(seq), tuple(nested)


def _frame_laterality(ds: Dataset) -> str | None:
    top = _upper(ds, "FrameLaterality")
    if top:
        return top
    for group_keyword in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = _get(ds, group_keyword)
        if not groups:
            continue
        anatomy = _get(groups[0], "FrameAnatomySequence")
        if anatomy:
            value = _upper(anatomy[0], "FrameLaterality")
            if value:
                return value
    return None


def _iso_date(da: str | None) -> str | None:
    if not da:
        return None
    digits = da.replace("-", "").replace(".", "").strip()
    if len(digits) < 8 or not digits[:8].isdigit():
        return None
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}"


def _iso_time(tm: str | None) -> str | None:
    if not tm:
        return None
    text = tm.replace(":", "").strip()
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or len(whole) not in (2, 4, 6):
        return None
    whole = whole.ljust(6, "0")
    frac = "".join(ch for ch in frac if ch.isdigit())[:6].ljust(6, "0")
    return f"{whole[:2]}:{whole[2:4]}:{whole[4:6]}.{frac}"


def _acquisition_datetime(ds: Dataset) -> str | None:
    dt = _text(ds, "AcquisitionDateTime")
    if dt:
        core = dt.split("+")[0].split("-")[0] if len(dt) > 8 else dt
        date = _iso_date(core[:8])
        if date:
            time = _iso_time(core[8:]) if len(core) > 8 else None
            return f"{date}T{time}" if time else date
    for date_kw, time_kw in (
        ("AcquisitionDate", "AcquisitionTime"),
        ("ContentDate", "ContentTime"),
    ):
        date = _iso_date(_text(ds, date_kw))
        if date:
            time = _iso_time(_text(ds, time_kw))
            return f"{date}T{time}" if time else date
    return None
