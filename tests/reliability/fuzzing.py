"""Bad input, made on purpose (issue 13 §2): seeded mutations of valid synthetic mammograms.

One engine, two drivers. A mutator draws its choices from a :class:`Draw`:
:class:`RandomDraw` (a seeded ``random.Random``; the C-STORE fuzzer and ``bench/fuzz.py``) or
:class:`HypothesisDraw` (hypothesis' ``data.draw``; the preprocessing and worker properties, which
shrink a failure to its smallest case). Every mutation works on the data set's *bytes* (explicit
VR little endian elements as :class:`El`), so it can say what pydicom would refuse to write:
wrong VRs and lengths, truncated or oversized pixel data, bogus UIDs, deep sequences.

Kinds (:data:`KINDS`): ``tag_removed``, ``wrong_vr``, ``wrong_length``, ``pixel_truncated``,
``pixel_oversized``, ``huge_dims``, ``odd_transfer_syntax``, ``bogus_uid``, ``deep_sequence``,
``bad_values``, ``pixel_values``, ``random_bytes``, ``truncated_header``. Each :class:`Mutant`
carries the C-STORE statuses the listener's policy allows for it (``docs/conformance.md``):
0xC001 for a bad or missing SOP Instance / Study UID (or a Series / SOP Class UID that is not a
UID), 0xA701 over ``max_dataset_bytes``, 0xC000 for a header that cannot be parsed, 0x0000 for
everything parseable. Where the policy fixes one status, only that one is allowed.

:func:`run_cstore_campaign` is the fuzzer over a real association: the listener
(``tests.plugin.listener.conftest.start``) with its coordinator, C-STOREs in batches (one
association per batch, a C-ECHO after each), then every stored instance's outcome from the
index (the plan: a pair target, or not analyzed with a reason), and for a sample of studies
the whole chain: the real :class:`~plugin.coordinator.dispatcher.Dispatcher` on the embedded
(filesystem) queue and a Celery worker thread running the real ``brgan.analyze_study`` task
with a tiny model. It returns a report (kind → tried, statuses, outcomes) and the list of
problems found; the tests assert that list is empty, ``bench/fuzz.py`` runs it longer.

:func:`preprocess_case` and :func:`worker_case` check one mutant against
``brgan_core.preprocess.preprocess`` and ``plugin.worker.analysis.run_task`` (the hypothesis
tests and ``bench/fuzz.py`` share them), each call bounded in time (:class:`Bounded`).
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import struct
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from io import BytesIO
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"

KINDS: tuple[str, ...] = (
    "tag_removed",
    "wrong_vr",
    "wrong_length",
    "pixel_truncated",
    "pixel_oversized",
    "huge_dims",
    "odd_transfer_syntax",
    "bogus_uid",
    "deep_sequence",
    "bad_values",
    "pixel_values",
    "random_bytes",
    "truncated_header",
)

#: Every transfer syntax a mutant may be declared in (the SCU proposes each one).
TRANSFER_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
    RLELossless,
    JPEG2000Lossless,
    JPEG2000,
    JPEGLSLossless,
    JPEGLosslessSV1,
    JPEGBaseline8Bit,
    HTJ2KLossless,
)

OK, REFUSED, BAD_UID, TOO_LARGE = 0x0000, 0xC000, 0xC001, 0xA701
ANY_PARSE = frozenset({OK, REFUSED, BAD_UID})

# Tags (as ints) the mutators aim at more often than the rest.
T = {
    "SpecificCharacterSet": 0x00080005,
    "ImageType": 0x00080008,
    "SOPClassUID": 0x00080016,
    "SOPInstanceUID": 0x00080018,
    "StudyDate": 0x00080020,
    "AcquisitionDate": 0x00080022,
    "AcquisitionDateTime": 0x0008002A,
    "StudyTime": 0x00080030,
    "AccessionNumber": 0x00080050,
    "Modality": 0x00080060,
    "PresentationIntentType": 0x00080068,
    "Manufacturer": 0x00080070,
    "PatientName": 0x00100010,
    "PatientID": 0x00100020,
    "PatientBirthDate": 0x00100030,
    "PatientSex": 0x00100040,
    "ImagerPixelSpacing": 0x00181164,
    "ViewPosition": 0x00185101,
    "StudyInstanceUID": 0x0020000D,
    "SeriesInstanceUID": 0x0020000E,
    "SeriesNumber": 0x00200011,
    "InstanceNumber": 0x00200013,
    "PatientOrientation": 0x00200020,
    "Laterality": 0x00200060,
    "ImageLaterality": 0x00200062,
    "SamplesPerPixel": 0x00280002,
    "PhotometricInterpretation": 0x00280004,
    "NumberOfFrames": 0x00280008,
    "Rows": 0x00280010,
    "Columns": 0x00280011,
    "BitsAllocated": 0x00280100,
    "BitsStored": 0x00280101,
    "HighBit": 0x00280102,
    "PixelRepresentation": 0x00280103,
    "WindowCenter": 0x00281050,
    "WindowWidth": 0x00281051,
    "RescaleIntercept": 0x00281052,
    "RescaleSlope": 0x00281053,
    "VOILUTFunction": 0x00281056,
    "BreastImplantPresent": 0x00281300,
    "PartialView": 0x00281350,
    "ModalityLUTSequence": 0x00283000,
    "VOILUTSequence": 0x00283010,
    "ViewCodeSequence": 0x00540220,
    "PresentationLUTShape": 0x20500020,
    "PixelData": 0x7FE00010,
}
UID_TAGS = {
    T["SOPInstanceUID"]: "SOPInstanceUID",
    T["StudyInstanceUID"]: "StudyInstanceUID",
    T["SeriesInstanceUID"]: "SeriesInstanceUID",
    T["SOPClassUID"]: "SOPClassUID",
}
IMPORTANT = tuple(T.values())

LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
ALL_VRS = (
    *("AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF"),
    *("OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN"),
    *("UR", "US", "UT", "UV"),
)
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


# -- drawing choices ------------------------------------------------------------------------


class Draw(Protocol):
    """Where a mutator's choices come from (seeded random, or hypothesis)."""

    def integer(self, lo: int, hi: int) -> int: ...

    def choice(self, options: Sequence[Any]) -> Any: ...


class RandomDraw:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, options: Sequence[Any]) -> Any:
        return options[self.rng.randrange(len(options))]


class HypothesisDraw:
    """``data.draw`` of hypothesis' ``st.data()``: failures shrink to the simplest choices."""

    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def integer(self, lo: int, hi: int) -> int:
        return int(self.data.draw(self.st.integers(lo, hi)))

    def choice(self, options: Sequence[Any]) -> Any:
        return options[self.integer(0, len(options) - 1)]


def _chance(draw: Draw, percent: int) -> bool:
    return draw.integer(0, 99) < percent


def _noise(draw: Draw, n: int) -> bytes:
    """``n`` pseudo-random bytes from one drawn seed (hypothesis cannot draw megabytes)."""
    return np.random.default_rng(draw.integer(0, 2**32 - 1)).bytes(n)


# -- data sets as raw elements -----------------------------------------------------------------


@dataclass
class El:
    """One top-level element as explicit VR little endian bytes: ``value`` is written as is,
    ``length`` (when set) is the declared length instead of ``len(value)``."""

    tag: int
    vr: str
    value: bytes
    length: int | None = None

    def encode(self) -> bytes:
        head = struct.pack("<HH", self.tag >> 16, self.tag & 0xFFFF) + self.vr.encode("latin-1")
        declared = len(self.value) if self.length is None else self.length
        if self.vr in LONG_VRS:
            head += b"\0\0" + struct.pack("<I", declared & 0xFFFFFFFF)
        else:
            head += struct.pack("<H", declared & 0xFFFF)
        return head + self.value


def text_value(text: str | bytes, pad: bytes = b" ") -> bytes:
    raw = text.encode("latin-1") if isinstance(text, str) else text
    return raw + pad if len(raw) % 2 else raw


def uid_el(tag: int, uid: str | bytes) -> El:
    return El(tag, "UI", text_value(uid, b"\0"))


def us_el(tag: int, value: int) -> El:
    return El(tag, "US", struct.pack("<H", value & 0xFFFF))


def elements_of(ds: Dataset) -> list[El]:
    """``ds``'s top-level elements encoded one by one (explicit VR little endian)."""
    out: list[El] = []
    for elem in ds:
        buf = DicomBytesIO()
        buf.is_little_endian, buf.is_implicit_VR = True, False
        write_data_element(buf, elem)
        raw = buf.getvalue()
        tag = struct.unpack("<HH", raw[:4])
        vr = raw[4:6].decode("latin-1")
        if vr in LONG_VRS:
            (declared,) = struct.unpack("<I", raw[8:12])
            value = raw[12:]
        else:
            value = raw[8:]
            declared = len(value)
        out.append(
            El(tag[0] << 16 | tag[1], vr, value, UNDEFINED if declared == UNDEFINED else None)
        )
    return out


def encode(elements: Iterable[El]) -> bytes:
    return b"".join(e.encode() for e in elements)


def _index(elements: list[El], tag: int) -> int | None:
    for i, e in enumerate(elements):
        if e.tag == tag:
            return i
    return None


def _put(elements: list[El], new: El) -> None:
    """Replace the element with ``new``'s tag, or insert it in tag order."""
    i = _index(elements, new.tag)
    if i is not None:
        elements[i] = new
        return
    at = next((j for j, e in enumerate(elements) if e.tag > new.tag), len(elements))
    elements.insert(at, new)


def file_meta(sop_uid: str, transfer_syntax: str, sop_class: str = MG_FOR_PRESENTATION) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_file_meta_info(buf, meta, enforce_standard=True)
    return b"\0" * 128 + b"DICM" + buf.getvalue()


def split_file(data: bytes) -> tuple[bytes, bytes]:
    """(preamble + file meta, data set) of a DICOM file's bytes."""
    (group_length,) = struct.unpack("<I", data[140:144])
    end = 144 + group_length
    return data[:end], data[end:]


# -- the base: four valid synthetic views ------------------------------------------------------


@dataclass(frozen=True)
class View:
    laterality: str
    view: str
    ds: Dataset  # header + pixels, decoded form
    elements: tuple[El, ...]  # the same, encoded

    @property
    def key(self) -> str:
        return f"{self.laterality}-{self.view}"

    def __repr__(self) -> str:  # hypothesis prints the drawn view: keep it short
        return f"View({self.key})"


@dataclass(frozen=True)
class Base:
    views: tuple[View, ...]

    def __repr__(self) -> str:
        return f"Base({', '.join(v.key for v in self.views)})"

    def view(self, laterality: str, view: str) -> View:
        return next(v for v in self.views if (v.laterality, v.view) == (laterality, view))

    def contralateral(self, v: View) -> View:
        return self.view("R" if v.laterality == "L" else "L", v.view)


def make_base(out: Path, seed: int = 3, shrink: int = 2) -> Base:
    """Four valid views of one synthetic study (``brgan_core.synth``), downsampled by
    ``shrink`` so a thousand of them go over loopback in seconds."""
    from tests.helpers import write_synth_studies

    rows = write_synth_studies(out, patients=1, seed=seed)
    views = []
    for row in rows[:4]:
        ds = pydicom.dcmread(row["path"])
        if shrink > 1:
            pixels = np.ascontiguousarray(ds.pixel_array[::shrink, ::shrink]).astype(np.uint16)
            ds.Rows, ds.Columns = pixels.shape
            ds.PixelData = pixels.tobytes()
            if "ImagerPixelSpacing" in ds:
                ds.ImagerPixelSpacing = [float(v) * shrink for v in ds.ImagerPixelSpacing]
        views.append(View(row["laterality"], row["view"], ds, tuple(elements_of(ds))))
    return Base(tuple(sorted(views, key=lambda v: (v.view, v.laterality))))


# -- mutants ---------------------------------------------------------------------------------


@dataclass
class Mutant:
    """One instance to send: its file (meta + data set as bytes) and what is allowed back."""

    kind: str
    detail: str  # PHI-free: what was changed
    meta: bytes
    body: bytes
    transfer_syntax: str
    sop_uid: str  # the SOP Instance UID it was made with (the meta's; the body's may be bogus)
    study_uid: str
    laterality: str
    view: str
    expected: frozenset[int] = frozenset({OK})
    #: True: a positive control (a lossless re-encoding): it must be analyzed.
    analyzable: bool = False
    mutated: bool = True

    @property
    def data(self) -> bytes:
        return self.meta + self.body


@dataclass
class Draft:
    """A mutator's working copy: the elements, or (``body`` set) finished bytes."""

    elements: list[El]
    ds: Dataset
    transfer_syntax: str = ExplicitVRLittleEndian
    detail: str = ""
    expected: frozenset[int] = frozenset({OK})
    analyzable: bool = False
    body: bytes | None = None
    limit: int = 2 * 1024**3


def _name(tag: int) -> str:
    from pydicom.datadict import keyword_for_tag

    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _pick_tag(draw: Draw, d: Draft) -> int:
    present = [e.tag for e in d.elements]
    pool = [t for t in IMPORTANT if t in present] if _chance(draw, 60) else present
    return int(draw.choice(pool or present))


def _uid_status(d: Draft) -> frozenset[int]:
    present = {e.tag for e in d.elements}
    if not present & {T["SOPInstanceUID"], T["StudyInstanceUID"], T["SOPClassUID"]}:
        return frozenset({REFUSED})
    if T["SOPInstanceUID"] not in present or T["StudyInstanceUID"] not in present:
        return frozenset({BAD_UID})
    return frozenset({OK})


def m_tag_removed(draw: Draw, d: Draft) -> None:
    names = []
    for _ in range(draw.integer(1, 3)):
        tag = _pick_tag(draw, d)
        i = _index(d.elements, tag)
        if i is not None:
            del d.elements[i]
            names.append(_name(tag))
    d.detail = "removed " + ", ".join(names)
    d.expected = _uid_status(d)


def m_wrong_vr(draw: Draw, d: Draft) -> None:
    tag = _pick_tag(draw, d)
    i = _index(d.elements, tag)
    assert i is not None
    old = d.elements[i]
    vr = draw.choice([v for v in ALL_VRS if v != old.vr])
    d.elements[i] = replace(old, vr=vr)
    d.detail = f"{_name(tag)} VR {old.vr} -> {vr}"
    if tag in UID_TAGS:
        d.expected = (
            frozenset({OK})
            if vr == "UN"
            else frozenset({BAD_UID, REFUSED} if vr == "SQ" else {BAD_UID})
        )
    elif vr not in LONG_VRS and len(old.value) > 0xFFFF:
        d.expected = ANY_PARSE  # the 16-bit length wraps: the rest is misaligned
    elif vr == "SQ" or tag == T["SpecificCharacterSet"]:
        # Bytes read as a sequence, or a character set nothing can be decoded with: unreadable.
        d.expected = frozenset({OK, REFUSED})
    else:
        d.expected = frozenset({OK})  # a malformed value reads as absent; the set is stored


def m_wrong_length(draw: Draw, d: Draft) -> None:
    tag = _pick_tag(draw, d)
    i = _index(d.elements, tag)
    assert i is not None
    old = d.elements[i]
    actual = len(old.value)
    long_form = old.vr in LONG_VRS
    options = [actual + 1, max(actual - 1, 0), actual + 2, 0, actual * 2 + 2, 0xFFFF]
    if long_form:
        options += [UNDEFINED, 0x7FFFFFFF]
    declared = int(draw.choice(options))
    if declared == actual:
        declared = actual + 1
    d.elements[i] = replace(old, length=declared)
    d.detail = f"{_name(tag)} length {actual} declared {declared:#x}"
    d.expected = ANY_PARSE


def m_pixel_truncated(draw: Draw, d: Draft) -> None:
    i = _index(d.elements, T["PixelData"])
    assert i is not None
    old = d.elements[i]
    n = len(old.value)
    keep = int(draw.choice([0, 1, 2, n // 2, n - 1, n - 2, draw.integer(0, n)]))
    if _chance(draw, 50):
        d.elements[i] = replace(old, value=old.value[:keep])
        d.detail = f"PixelData {keep} of {n} bytes (length says {keep})"
    else:  # the data set ends inside the pixel data: the declared length is still n
        d.body = encode(d.elements[:i]) + old.encode()[: 12 + keep]
        d.detail = f"data set ends after {keep} of {n} pixel bytes"
    d.expected = frozenset({OK})


def m_pixel_oversized(draw: Draw, d: Draft) -> None:
    i = _index(d.elements, T["PixelData"])
    assert i is not None
    old = d.elements[i]
    n = len(old.value)
    if d.limit <= 64 * 1024**2 and _chance(draw, 20):
        extra = d.limit - n + 2 + 2 * draw.integer(0, 1000)  # the file goes over the limit
        d.expected = frozenset({TOO_LARGE})
    else:
        extra = int(draw.choice([2, 4, 1000, n, 3 * n]))
        d.expected = frozenset({OK})
    d.elements[i] = replace(old, value=old.value + _noise(draw, extra))
    d.detail = f"PixelData {n} + {extra} bytes"


def m_huge_dims(draw: Draw, d: Draft) -> None:
    sizes = [0, 1, 2, 3, 7, 12000, 12001, 30000, 65535]
    rows = cols = None
    which = draw.choice(["rows", "columns", "both"])
    if which in ("rows", "both"):
        rows = int(draw.choice(sizes))
        _put(d.elements, us_el(T["Rows"], rows))
    if which in ("columns", "both"):
        cols = int(draw.choice(sizes))
        _put(d.elements, us_el(T["Columns"], cols))
    r = rows if rows is not None else int(d.ds.Rows)
    c = cols if cols is not None else int(d.ds.Columns)
    if r * c * 2 <= 64 * 1024 and _chance(draw, 50):  # a tiny image whose pixels match
        arr = np.asarray(d.ds.pixel_array)[: max(r, 1), : max(c, 1)]
        pix = np.resize(arr, (r, c)).astype(np.uint16).tobytes()
        _put(d.elements, El(T["PixelData"], "OW", text_value(pix, b"\0")))
        d.detail = f"Rows {r} x Columns {c}, pixel data to match"
    else:
        d.detail = f"Rows {r} x Columns {c}, pixel data of {d.ds.Rows} x {d.ds.Columns}"
    d.expected = frozenset({OK})


def _reencode(ds: Dataset, transfer_syntax: str) -> bytes:
    """``ds`` written properly in ``transfer_syntax`` (compressed where that is asked)."""
    ds = copy.deepcopy(ds)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if (
        pydicom.uid.UID(transfer_syntax).is_compressed
        and transfer_syntax != DeflatedExplicitVRLittleEndian
    ):
        ds.compress(transfer_syntax, generate_instance_uid=False)
    elif transfer_syntax == ExplicitVRBigEndian:  # 16-bit pixel values swapped as well
        ds.PixelData = np.asarray(ds.pixel_array).astype(">u2").tobytes()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    buf = BytesIO()
    big = transfer_syntax == ExplicitVRBigEndian
    implicit = transfer_syntax == ImplicitVRLittleEndian
    pydicom.dcmwrite(buf, ds, little_endian=not big, implicit_vr=implicit, enforce_file_format=True)
    return split_file(buf.getvalue())[1]


def m_odd_transfer_syntax(draw: Draw, d: Draft) -> None:
    mode = draw.choice(
        ["proper", "proper", "explicit-as", "native-under-compressed", "fragments", "wrong-codec"]
    )
    i = _index(d.elements, T["PixelData"])
    assert i is not None
    if mode == "proper":
        ts = draw.choice(
            [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian,
             RLELossless, JPEG2000Lossless, JPEGLSLossless]
        )  # fmt: skip
        d.ds = _with_uids(d.ds, d.elements)
        d.body = _reencode(d.ds, ts)
        d.detail = f"re-encoded losslessly as {pydicom.uid.UID(ts).name}"
        d.analyzable = True
        d.expected = frozenset({OK})
    elif mode == "explicit-as":
        ts = draw.choice(
            [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian]
        )
        d.detail = f"explicit VR LE bytes declared as {pydicom.uid.UID(ts).name}"
        d.expected = ANY_PARSE
    elif mode == "native-under-compressed":
        ts = draw.choice(
            [RLELossless, JPEG2000Lossless, JPEGBaseline8Bit, JPEGLSLossless, HTJ2KLossless]
        )
        d.detail = f"native pixel data declared as {pydicom.uid.UID(ts).name}"
        d.expected = frozenset({OK})
    else:
        ts = draw.choice(
            [
                RLELossless,
                JPEG2000Lossless,
                JPEG2000,
                JPEGLosslessSV1,
                JPEGBaseline8Bit,
                JPEGLSLossless,
            ]
        )
        if mode == "fragments":
            frames = [_noise(draw, int(draw.choice([2, 16, 1000, 20000])))]
            what = "random fragments"
        else:  # a real codestream of another codec
            other = JPEG2000Lossless if ts != JPEG2000Lossless else RLELossless
            src = copy.deepcopy(d.ds)
            src.compress(other)
            frames = [f for f in pydicom.encaps.generate_fragmented_frames(src.PixelData)]
            frames = [b"".join(f) for f in frames]
            what = f"a {pydicom.uid.UID(other).name} codestream"
        d.elements[i] = El(
            T["PixelData"], "OB", text_value(pydicom.encaps.encapsulate(frames), b"\0"), UNDEFINED
        )
        d.detail = f"{what} as {pydicom.uid.UID(ts).name}"
        d.expected = frozenset({OK})
    d.transfer_syntax = ts


BOGUS_UIDS: tuple[tuple[str, bytes | None, bool], ...] = (
    # (what, value or None = made from the real UID, still valid?)
    ("path ../../etc/passwd", b"../../etc/passwd", False),
    ("path 1.2/../../3", b"1.2/../../3", False),
    ("absolute path", b"/tmp/brgan-fuzz", False),
    ("dot-dot", b"..", False),
    ("backslash path", b"C:\\x\\y", False),
    ("NUL inside", b"1.2.3\x00../x", False),
    ("letters", b"1.2.abc", False),
    ("space inside", b"1.2 .3", False),
    ("trailing dot", b"1.2.", False),
    ("non-ASCII", b"1.2.\xc3\xa9", False),
    ("two values", b"1.2.3\\1.2.4", False),
    ("65 characters", b"1." + b"2" * 63, False),
    ("200 characters", b"1." + b"23." * 65 + b"4", False),
    ("empty", b"", False),
    ("exactly 64 characters", None, True),
    ("leading zeros", None, True),
    ("NUL padded", None, True),
)


def m_bogus_uid(draw: Draw, d: Draft) -> None:
    tag = int(draw.choice([T["SOPInstanceUID"]] * 3 + [T["StudyInstanceUID"]] * 3
                          + [T["SeriesInstanceUID"]] * 2 + [T["SOPClassUID"]] * 2))  # fmt: skip
    what, value, valid = draw.choice(BOGUS_UIDS)
    name = UID_TAGS[tag]
    if value is None:
        unique = fixed_uid()  # 64 characters
        if what == "exactly 64 characters":
            value = unique.encode()
        elif what == "leading zeros":
            value = (unique[:56] + ".0000007").encode()
        else:
            value = unique.encode() + b"\0\0"
        if tag == T["SOPClassUID"]:  # a valid SOP Class UID is a known one
            value = MG_FOR_PRESENTATION.encode() + (b"\0\0" if what == "NUL padded" else b"")
    _put(d.elements, El(tag, "UI", text_value(value, b"\0")))
    d.detail = f"{name}: {what}"
    if valid:
        d.expected = frozenset({OK})
    elif value == b"" and tag in (T["SeriesInstanceUID"], T["SOPClassUID"]):
        d.expected = frozenset({OK})  # optional (SOP Class falls back to the file meta)
    else:
        d.expected = frozenset({BAD_UID})


def _nested(depth: int, undefined: bool, breakage: str, code: bytes | None) -> bytes:
    """Items nested ``depth`` deep: each item holds a (0008,0100) code and a sequence of the
    next level (private SQ tag (0009,1010) or ViewModifierCodeSequence)."""
    inner = b""
    for level in range(depth):
        content = b""
        if code is not None:
            content += El(0x00080100, "SH", text_value(code)).encode()
            content += El(0x00080102, "SH", text_value("SCT")).encode()
        if level:
            seq_tag = 0x00540222 if code is not None else 0x00091010
            if undefined:
                seq = El(seq_tag, "SQ", inner + _tag_bytes(SEQ_END) + b"\0\0\0\0", UNDEFINED)
            else:
                seq = El(seq_tag, "SQ", inner)
            content += seq.encode()
        if undefined:
            item_end = b"" if breakage == "no delimiters" else _tag_bytes(ITEM_END) + b"\0\0\0\0"
            item_tag = 0x00080100 if breakage == "bad item tag" and level == depth // 2 else ITEM
            inner = _tag_bytes(item_tag) + struct.pack("<I", UNDEFINED) + content + item_end
        else:
            inner = _tag_bytes(ITEM) + struct.pack("<I", len(content)) + content
    return inner


def _tag_bytes(tag: int) -> bytes:
    return struct.pack("<HH", tag >> 16, tag & 0xFFFF)


def m_deep_sequence(draw: Draw, d: Draft) -> None:
    depth = int(draw.choice([2, 8, 32, 64, 100, 128, 150, 200, 300, 1000, 3000]))
    undefined = _chance(draw, 60)
    breakage = (
        draw.choice(["none", "none", "no delimiters", "bad item tag"]) if undefined else "none"
    )
    where = draw.choice(["private", "ViewCodeSequence"])
    items = _nested(
        depth, undefined, breakage, b"399162004" if where == "ViewCodeSequence" else None
    )
    tail = _tag_bytes(SEQ_END) + b"\0\0\0\0" if undefined and breakage != "no delimiters" else b""
    seq_tag = T["ViewCodeSequence"] if where == "ViewCodeSequence" else 0x00091010
    if where == "private":
        _put(d.elements, El(0x00090010, "LO", text_value("BRGAN FUZZ")))
    _put(d.elements, El(seq_tag, "SQ", items + tail, UNDEFINED if undefined else None))
    d.detail = (
        f"{'private (0009,1010)' if where == 'private' else where} nested {depth} deep, "
        f"{'undefined' if undefined else 'defined'} lengths"
        + ("" if breakage == "none" else f", {breakage}")
    )
    # An unclosed sequence may swallow the UIDs after it (the private one sits before them).
    d.expected = frozenset({OK, REFUSED}) if breakage == "none" else ANY_PARSE


def _lut_item(descriptor: tuple[int, int, int], data: bytes) -> bytes:
    content = El(
        0x00283002, "US", b"".join(struct.pack("<H", v & 0xFFFF) for v in descriptor)
    ).encode()
    content += El(0x00283006, "OW", text_value(data, b"\0")).encode()
    return _tag_bytes(ITEM) + struct.pack("<I", len(content)) + content


BAD_VALUES: dict[str, tuple[str, tuple[Any, ...]]] = {
    "PhotometricInterpretation": (
        "CS",
        ("RGB", "PALETTE COLOR", "YBR_FULL", "MONOCHROME3", "", "monochrome2", "MONOCHROME1"),
    ),
    "SamplesPerPixel": ("US", (0, 3, 4, 65535)),
    "BitsAllocated": ("US", (0, 1, 8, 12, 32, 64, 65535)),
    "BitsStored": ("US", (0, 1, 8, 16, 17, 32)),
    "HighBit": ("US", (0, 7, 15, 16, 99)),
    "PixelRepresentation": ("US", (1, 2, 65535)),
    "NumberOfFrames": ("IS", ("0", "2", "-1", "abc", "1e9", "")),
    "WindowCenter": ("DS", ("0", "-5", "nan", "inf", "1e308", "abc", "", "1\\2\\3")),
    "WindowWidth": ("DS", ("0", "-1", "0.5", "nan", "inf", "-inf", "1e-300", "abc", "")),
    "VOILUTFunction": ("CS", ("SIGMOID", "LINEAR_EXACT", "BOGUS", "")),
    "RescaleSlope": ("DS", ("0", "nan", "-1", "1e300", "inf", "abc", "")),
    "RescaleIntercept": ("DS", ("1e300", "-1e300", "nan", "abc")),
    "PatientOrientation": ("CS", ("X\\Y", "A", "R\\P\\F", "", "P\\L", "F\\H", "\\", "a\\r")),
    "ImageLaterality": ("CS", ("B", "X", "", "l", "R", "L\\R")),
    "Laterality": ("CS", ("R", "L", "B", "")),
    "ViewPosition": ("CS", ("XX", "", "ML", "LM", "SPOT", "MLO", "CC\\MLO")),
    "Modality": ("CS", ("CT", "", "MG\\CT", "mg", "SR")),
    "PatientSex": ("CS", ("M", "O", "", "X")),
    "PresentationIntentType": ("CS", ("FOR PROCESSING", "BOGUS", "")),
    "PresentationLUTShape": ("CS", ("INVERSE", "BOGUS", "")),
    "PatientName": ("PN", ("A" * 200, "A^B^C^D^E^F^G", b"\xff\xfe\x00\x01", "a\\b\\c", "=" * 9)),
    "PatientID": ("LO", ("X" * 1000, "", b"\xe9\xe8\xff", "..\\..")),
    "PatientBirthDate": ("DA", ("2023-13-45", "abcdefgh", "99999999", "", "1\\2")),
    "StudyDate": ("DA", ("20241340", "", "x", "2024")),
    "StudyTime": ("TM", ("256161", "ab", "", "99:99:99.9999999")),
    "AcquisitionDateTime": ("DT", ("20241399999999", "garbage", "2024+9999", "")),
    "AccessionNumber": ("SH", ("A" * 100, b"\x00\x00", "")),
    "SpecificCharacterSet": (
        "CS",
        ("ISO_IR 999", "ISO 2022 IR 87", "GB18030", "ISO_IR 192", "", "\\\\"),
    ),
    "ImagerPixelSpacing": ("DS", ("0\\0", "-1\\-1", "abc", "1e308\\1e308", "", "0.1")),
    "InstanceNumber": ("IS", ("abc", "1e99", "", "99999999999999")),
    "SeriesNumber": ("IS", ("-99999999999", "x")),
    "ImageType": ("CS", ("DERIVED\\SECONDARY\\STEREO", "", "ORIGINAL\\PRIMARY\\\\CONTRAST")),
    "BreastImplantPresent": ("CS", ("YES", "MAYBE")),
    "PartialView": ("CS", ("YES", "")),
    "Manufacturer": ("LO", ("brgan-pacs", "", "X" * 300)),
    "VOILUTSequence": (
        "SQ",
        ("descriptor 0/0/0", "descriptor 4096/0/99", "LUT data short", "empty item"),
    ),
    "ModalityLUTSequence": ("SQ", ("descriptor 0/0/0", "LUT data short", "empty item")),
}


def _lut_value(what: str) -> bytes:
    if what == "descriptor 0/0/0":
        return _lut_item((0, 0, 0), b"\0\0")
    if what == "descriptor 4096/0/99":
        return _lut_item((4096, 0, 99), b"\1\0" * 4096)
    if what == "LUT data short":
        return _lut_item((4096, 0, 16), b"\1\0" * 10)
    return _tag_bytes(ITEM) + struct.pack("<I", 0)


def m_bad_values(draw: Draw, d: Draft) -> None:
    changes = []
    for _ in range(draw.integer(1, 3)):
        keyword = draw.choice(sorted(BAD_VALUES))
        vr, options = BAD_VALUES[keyword]
        value = draw.choice(options)
        tag = T.get(keyword) or pydicom.datadict.tag_for_keyword(keyword)
        assert tag is not None
        if vr == "US":
            el = us_el(tag, int(value))
        elif vr == "SQ":
            el = El(tag, "SQ", _lut_value(str(value)))
        else:
            el = El(tag, vr, text_value(value))
        _put(d.elements, el)
        shown = value if isinstance(value, int) else repr(value)[:24]
        changes.append(f"{keyword}={shown}")
    d.detail = ", ".join(changes)
    d.expected = frozenset({OK})


def m_pixel_values(draw: Draw, d: Draft) -> None:
    i = _index(d.elements, T["PixelData"])
    assert i is not None
    rows, cols = int(d.ds.Rows), int(d.ds.Columns)
    rng = np.random.default_rng(draw.integer(0, 2**32 - 1))
    mode = draw.choice(
        ["zeros", "all 0xFFFF", "noise 16 bit", "noise 14 bit", "one bright pixel", "checkerboard",
         "stripes", "gradient", "inverted", "high bits set", "two values"]
    )  # fmt: skip
    original = np.asarray(d.ds.pixel_array).astype(np.uint16)
    if mode == "zeros":
        arr = np.zeros((rows, cols), np.uint16)
    elif mode == "all 0xFFFF":
        arr = np.full((rows, cols), 0xFFFF, np.uint16)
    elif mode == "noise 16 bit":
        arr = rng.integers(0, 2**16, (rows, cols), dtype=np.uint16)
    elif mode == "noise 14 bit":
        arr = rng.integers(0, 2**14, (rows, cols), dtype=np.uint16)
    elif mode == "one bright pixel":
        arr = np.zeros((rows, cols), np.uint16)
        arr[rng.integers(rows), rng.integers(cols)] = 16383
    elif mode == "checkerboard":
        arr = ((np.indices((rows, cols)).sum(axis=0) % 2) * 16383).astype(np.uint16)
    elif mode == "stripes":
        arr = np.tile((np.arange(cols) % 8 < 4) * 16383, (rows, 1)).astype(np.uint16)
    elif mode == "gradient":
        arr = np.tile(np.linspace(0, 16383, cols), (rows, 1)).astype(np.uint16)
    elif mode == "inverted":
        arr = (16383 - np.minimum(original, 16383)).astype(np.uint16)
    elif mode == "high bits set":
        arr = original | np.uint16(0xC000)
    else:
        arr = np.where(original > np.median(original), 16383, 0).astype(np.uint16)
    d.elements[i] = El(T["PixelData"], "OW", arr.tobytes())
    d.detail = f"pixel values: {mode}"
    d.expected = frozenset({OK})


def m_random_bytes(draw: Draw, d: Draft) -> None:
    body = bytearray(encode(d.elements))
    pixel_at = body.find(_tag_bytes(T["PixelData"]) + b"OW")
    header_end = pixel_at if pixel_at > 0 else len(body)
    n = int(draw.choice([1, 2, 4, 16, 64]))
    for _ in range(n):
        pos = (
            draw.integer(0, header_end - 1) if _chance(draw, 85) else draw.integer(0, len(body) - 1)
        )
        body[pos] = draw.integer(0, 255)
    d.body = bytes(body)
    d.detail = f"{n} random byte(s) overwritten"
    d.expected = ANY_PARSE


def m_truncated_header(draw: Draw, d: Draft) -> None:
    body = encode(d.elements)
    pixel_at = body.find(_tag_bytes(T["PixelData"]) + b"OW")
    cut = draw.integer(0, max(pixel_at, 1))
    d.body = body[:cut]
    d.detail = f"data set cut at byte {cut} of {len(body)} (header)"
    d.expected = ANY_PARSE


MUTATORS: dict[str, Callable[[Draw, Draft], None]] = {
    "tag_removed": m_tag_removed,
    "wrong_vr": m_wrong_vr,
    "wrong_length": m_wrong_length,
    "pixel_truncated": m_pixel_truncated,
    "pixel_oversized": m_pixel_oversized,
    "huge_dims": m_huge_dims,
    "odd_transfer_syntax": m_odd_transfer_syntax,
    "bogus_uid": m_bogus_uid,
    "deep_sequence": m_deep_sequence,
    "bad_values": m_bad_values,
    "pixel_values": m_pixel_values,
    "random_bytes": m_random_bytes,
    "truncated_header": m_truncated_header,
}
assert tuple(MUTATORS) == KINDS


def fixed_uid() -> str:
    """A fresh UID of always 64 characters, so a mutant's byte offsets (and so hypothesis'
    draws, which depend on them) do not vary from run to run."""
    import secrets

    return f"1.2.826.0.1.3680043.8.498.1{secrets.randbelow(10**37):037d}"


def _with_uids(ds: Dataset, elements: list[El]) -> Dataset:
    """A copy of ``ds`` with the (valid) UIDs of ``elements``."""
    out = copy.deepcopy(ds)
    for tag, keyword in UID_TAGS.items():
        i = _index(elements, tag)
        if i is not None:
            setattr(out, keyword, elements[i].value.rstrip(b"\0 ").decode("ascii"))
    return out


def instance(
    view: View,
    study_uid: str,
    kind: str | None,
    draw: Draw | None,
    *,
    limit: int = 2 * 1024**3,
) -> Mutant:
    """``view`` as a new instance of study ``study_uid`` (fresh SOP and Series UIDs), mutated
    by ``kind`` (None: sent as it is, a valid image)."""
    sop_uid = fixed_uid()
    elements = list(view.elements)
    _put(elements, uid_el(T["SOPInstanceUID"], sop_uid))
    _put(elements, uid_el(T["StudyInstanceUID"], study_uid))
    _put(elements, uid_el(T["SeriesInstanceUID"], fixed_uid()))
    draft = Draft(elements, view.ds, limit=limit)
    if kind is None:
        draft.detail, draft.analyzable = "valid", True
    else:
        assert draw is not None
        MUTATORS[kind](draw, draft)
    body = draft.body if draft.body is not None else encode(draft.elements)
    return Mutant(
        kind=kind or "valid",
        detail=draft.detail,
        meta=file_meta(sop_uid, draft.transfer_syntax),
        body=body,
        transfer_syntax=draft.transfer_syntax,
        sop_uid=sop_uid,
        study_uid=study_uid,
        laterality=view.laterality,
        view=view.view,
        expected=draft.expected,
        analyzable=draft.analyzable,
        mutated=kind is not None,
    )


def relabel(elements: list[El], tag: int, vr: str) -> None:
    """Give the element ``tag`` another VR label, its value bytes unchanged."""
    i = _index(elements, tag)
    assert i is not None, f"no element {tag:08X}"
    elements[i] = replace(elements[i], vr=vr)


def edited(view: View, study_uid: str, edit: Callable[[list[El]], None]) -> Mutant:
    """``view`` as a new instance of ``study_uid`` with ``edit`` applied to its elements."""
    mutant = instance(view, study_uid, None, None)
    elements = elements_of(pydicom.dcmread(BytesIO(mutant.data)))
    edit(elements)
    return replace(mutant, kind="edited", body=encode(elements), analyzable=False, mutated=True)


def study_of_mutants(base: Base, draw: Draw, kinds: Sequence[str], *, limit: int) -> list[Mutant]:
    """One four-view study: ``len(kinds)`` of its views mutated (one kind each), the others
    valid, in a random order of sending."""
    study_uid = fixed_uid()
    slots = list(base.views)
    order = [slots.pop(draw.integer(0, len(slots) - 1)) for _ in range(len(base.views))]
    out = []
    for i, view in enumerate(order):
        kind = kinds[i] if i < len(kinds) else None
        out.append(instance(view, study_uid, kind, draw if kind else None, limit=limit))
    return out


# -- reasons, summarized ------------------------------------------------------------------

_UID_RE = re.compile(r"\b\d+(\.\d+){2,}\b")
_PATH_RE = re.compile(r"(?<![\w/])/(?:[\w.\-]+/)+[\w.\-]*")
_TAG_RE = re.compile(r"\([0-9A-Fa-f]{4},[0-9A-Fa-f]{4}\)")
_NUM_RE = re.compile(r"(?<![\w.-])(?<!JPEG )-?\d+(\.\d+)?(?![\w-])")


def reason_class(text: str | None, width: int = 96) -> str:
    """A reason with UIDs, paths and numbers taken out, so equal reasons count together
    (DICOM tags and names such as "JPEG 2000" kept)."""
    text = _UID_RE.sub("<uid>", text or "")
    text = _PATH_RE.sub("<path>", text)
    tags = _TAG_RE.findall(text)
    text = _NUM_RE.sub("N", _TAG_RE.sub("\x01", text))
    for tag in tags:
        text = text.replace("\x01", tag, 1)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass
class KindStats:
    tried: int = 0
    status: Counter[str] = field(default_factory=Counter)
    outcome: Counter[str] = field(default_factory=Counter)
    worker: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tried": self.tried}
        for name in ("status", "outcome", "worker"):
            counts = getattr(self, name)
            if counts:
                out[name] = dict(counts.most_common())
        return out


def report_section(stats: dict[str, KindStats]) -> dict[str, Any]:
    return {kind: stats[kind].to_json() for kind in sorted(stats)}


def update_report(section: str, data: dict[str, Any], path: str | None = None) -> Path | None:
    """Merge ``data`` as ``section`` into the JSON report at ``$BRGAN_FUZZ_REPORT`` (if set)."""
    target = path or os.environ.get("BRGAN_FUZZ_REPORT")
    if not target:
        return None
    out = Path(target)
    existing: dict[str, Any] = {}
    if out.is_file():
        try:
            existing = json.loads(out.read_text(encoding="utf-8"))
        except ValueError:
            existing = {}
    existing[section] = data
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


# -- the C-STORE campaign ------------------------------------------------------------------


@dataclass(frozen=True)
class Campaign:
    """How long and how hard to fuzz the listener."""

    iterations: int = 1000  # mutated instances sent (each in a four-view study)
    batch: int = 50  # mutated instances per association (their studies' valid views too)
    seed: int = 13
    #: at most this many studies also go through dispatcher → embedded queue → worker, about
    #: ``worker_studies / len(KINDS)`` per mutation kind (-1: every study)
    worker_studies: int = 26
    limit: int = 2 * 1024**2  # max_dataset_bytes of the listener under test
    timeout: float = 600.0


@dataclass
class _Sent:
    mutant: Mutant
    status: int | None
    comment: str
    sampled: bool


def _stored_uid(m: Mutant) -> str | None:
    """The SOP Instance UID the listener indexes a stored mutant under, when predictable."""
    if m.kind in ("random_bytes", "wrong_length", "truncated_header") or (
        m.kind == "odd_transfer_syntax" and "declared as" in m.detail
    ):
        return None  # the bytes may say anything
    if m.kind == "bogus_uid" and m.detail.startswith("SOPInstanceUID"):
        body = m.body
        start = body.find(_tag_bytes(T["SOPInstanceUID"]) + b"UI")
        (length,) = struct.unpack("<H", body[start + 6 : start + 8])
        return body[start + 8 : start + 8 + length].rstrip(b"\0 ").decode("ascii", "replace")
    return m.sop_uid


def _listing(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")} if root.exists() else set()


def send_batch(port: int, mutants: list[Mutant], folder: Path) -> list[tuple[int | None, str]]:
    """C-STORE every mutant over one association (re-associating if it is lost)."""
    from pynetdicom import AE, _config

    from tests.plugin.listener.conftest import CALLING_AE

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, m in enumerate(mutants):
        path = folder / f"{i:05d}.dcm"
        path.write_bytes(m.data)
        paths.append(path)
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # the bytes go on the wire exactly as made

    def associate() -> Any:
        ae = AE(ae_title=CALLING_AE)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        for ts in TRANSFER_SYNTAXES:
            ae.add_requested_context(MG_FOR_PRESENTATION, ts)
        assoc = ae.associate("127.0.0.1", port, ae_title="BRGAN")
        if not assoc.is_established:
            raise AssertionError("the listener refused the fuzzer's association")
        return assoc

    results: list[tuple[int | None, str]] = []
    try:
        assoc = associate()
        try:
            for path in paths:
                if not assoc.is_established:
                    assoc = associate()
                rsp = assoc.send_c_store(path)
                status = int(rsp.Status) if "Status" in rsp else None
                results.append((status, str(rsp.get("ErrorComment", "") or "")))
        finally:
            if assoc.is_established:
                assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous
        for path in paths:
            path.unlink(missing_ok=True)
    return results


def _map_by_content(
    index: Any, studies: list[Any], sent: list[_Sent], by_uid: dict[str, _Sent]
) -> list[_Sent]:
    """Find the mutants whose SOP Instance UID the mutation may have changed: the spool file
    ends with exactly the bytes that were sent."""
    loose = [s for s in sent if s.status == OK and _stored_uid(s.mutant) is None]
    for st in studies:
        for row in index.instances(st.study_uid):
            if row.sop_instance_uid in by_uid or not loose:
                continue
            try:
                data = Path(row.path).read_bytes()
            except OSError:
                continue
            same = sorted(loose, key=lambda s: s.mutant.study_uid != row.study_uid)
            for s in same:
                if data.endswith(s.mutant.body):
                    by_uid[row.sop_instance_uid] = s
                    loose.remove(s)
                    break
    return loose


def _score_outcome(score_json: str | None) -> str | None:
    if not score_json:
        return None
    score = json.loads(score_json)
    if score.get("status") == "analyzed":
        return "analyzed"
    return "not analyzed: " + reason_class(score.get("reason"))


def run_cstore_campaign(
    work: Path, cfg: Campaign, progress: Callable[[str], None] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Fuzz a real listener (see the module docstring); returns ``(report, problems)``."""
    import tempfile
    from contextlib import ExitStack

    from pynetdicom import _config

    from plugin.coordinator import Coordinator, CoordinatorTiming
    from plugin.coordinator.dispatcher import Dispatcher
    from plugin.index import FINAL_STATES, StudyState
    from plugin.listener.server import route_temp_files
    from tests.plugin.listener.conftest import echo, make_settings, start, wait_until

    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    problems: list[str] = []
    rng = random.Random(cfg.seed)
    draw = RandomDraw(rng)
    base = make_base(work / "base", seed=3)
    root = work / "svc"
    data = root / "data"
    data.mkdir(parents=True)
    settings = make_settings(
        data, stable_age=1.0, max_dataset_bytes=cfg.limit, coordinator_interval=0.05
    )
    if cfg.worker_studies:
        from tests.helpers import make_tiny_registry

        make_tiny_registry(settings.registry_path)
    before = _listing(root)

    sampled: set[str] = set()
    stats: dict[str, KindStats] = defaultdict(KindStats)
    sent: list[_Sent] = []
    chunked, tempdir = _config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir
    svc = start(settings)
    with ExitStack() as stack:
        stack.callback(setattr, tempfile, "tempdir", tempdir)
        stack.callback(setattr, _config, "STORE_RECV_CHUNKED_DATASET", chunked)
        stack.callback(svc.stop)
        route_temp_files(svc.spool)  # as `brgan serve` does: temp files inside the spool
        hook: Callable[[str, int], None] = lambda uid, version: None  # noqa: E731
        reconcile = None
        if cfg.worker_studies:
            from celery.contrib.testing.worker import start_worker

            from plugin.queue.app import make_celery
            from plugin.queue.tasks import register_tasks

            app = make_celery(settings)
            app.conf.broker_transport_options = {
                **app.conf.broker_transport_options,
                "polling_interval": 0.05,
            }
            register_tasks(app, settings)
            dispatcher = Dispatcher(settings, svc.index, app=app)
            real_ready = dispatcher.on_study_ready

            def sampled_ready(uid: str, version: int) -> None:
                if uid in sampled:  # the rest are judged by their plan (stay ``ready``)
                    real_ready(uid, version)

            dispatcher.on_study_ready = sampled_ready  # type: ignore[method-assign]
            hook, reconcile = sampled_ready, dispatcher.reconcile
            stack.enter_context(
                start_worker(
                    app, pool="solo", perform_ping_check=False, loglevel="ERROR",
                    shutdown_timeout=30,
                )
            )  # fmt: skip
        svc.coordinator = Coordinator(
            svc.index,
            svc.spool,
            CoordinatorTiming(0.0, settings.stable_age, settings.retention_days, 0.05),
            on_study_ready=hook,
            reconcile=reconcile,
        )
        svc.coordinator.start()

        quota = 10**9 if cfg.worker_studies < 0 else max(1, -(-cfg.worker_studies // len(KINDS)))
        per_kind_sampled: Counter[str] = Counter()
        order: list[str] = []
        made = 0
        associations = 0
        while made < cfg.iterations:
            batch: list[Mutant] = []
            flags: list[bool] = []
            n_mutants = 0
            while n_mutants < cfg.batch and made < cfg.iterations:
                count = min(int(draw.choice([1, 1, 1, 1, 1, 1, 2, 2, 3, 4])), cfg.iterations - made)
                kinds = []
                for _ in range(count):
                    if not order:
                        order = list(KINDS)
                        rng.shuffle(order)
                    kinds.append(order.pop())
                study = study_of_mutants(base, draw, kinds, limit=cfg.limit)
                take = cfg.worker_studies < 0 or (
                    len(sampled) < cfg.worker_studies
                    and any(per_kind_sampled[k] < quota for k in kinds)
                )
                if take:
                    sampled.add(study[0].study_uid)
                    per_kind_sampled.update(kinds)
                batch += study
                flags += [take] * len(study)
                made += count
                n_mutants += count
            results = send_batch(svc.port, batch, work / "send")
            associations += 1
            for m, flag, (status, comment) in zip(batch, flags, results, strict=True):
                sent.append(_Sent(m, status, comment, flag))
            if echo(svc.port) != 0:
                problems.append(f"C-ECHO failed after association {associations}")
            say(f"association {associations}: {made}/{cfg.iterations} mutated instances")

        # -- statuses, and what the spool and index hold for each answer -------------------
        spool_root = svc.spool.root.resolve()
        for s in sent:
            m = s.mutant
            stats[m.kind].tried += 1
            label = "no response" if s.status is None else f"0x{s.status:04X}"
            stats[m.kind].status[label] += 1
            if s.status not in m.expected:
                allowed = "/".join(f"0x{v:04X}" for v in sorted(m.expected))
                problems.append(
                    f"{m.kind} ({m.detail}): status {label} ({s.comment!r}), expected {allowed}"
                )
            uid = _stored_uid(m)
            row = svc.index.instance(uid) if uid else None
            if s.status == OK and uid is not None:
                if row is None:
                    problems.append(f"{m.kind} ({m.detail}): 0x0000 but not in the index")
                elif not Path(row.path).resolve().is_relative_to(spool_root):
                    problems.append(f"{m.kind} ({m.detail}): stored outside the spool")
                elif not Path(row.path).read_bytes().endswith(m.body):
                    problems.append(f"{m.kind} ({m.detail}): spool file differs from what was sent")
            elif s.status != OK:
                if row is not None and row.study_uid == m.study_uid:
                    problems.append(
                        f"{m.kind} ({m.detail}): refused 0x{s.status or 0:04X} but indexed"
                    )
                stats[m.kind].outcome[
                    f"refused {label}: {reason_class(s.comment) or '(no comment)'}"
                ] += 1

        # -- every stored instance gets an outcome -----------------------------------------
        say("waiting for the coordinator (and the worker) to finish")
        deadline = time.monotonic() + cfg.timeout

        def settled() -> bool:
            studies = svc.index.studies()
            return all(
                st.state != StudyState.RECEIVING
                and (st.study_uid not in sampled or st.state in FINAL_STATES)
                for st in studies
            )

        try:
            wait_until(settled, timeout=max(deadline - time.monotonic(), 1.0))
        except TimeoutError:
            stuck = [
                f"{st.study_uid[-12:]}={st.state}"
                for st in svc.index.studies()
                if st.state == StudyState.RECEIVING
                or (st.study_uid in sampled and st.state not in FINAL_STATES)
            ]
            problems.append(f"studies not settled in {cfg.timeout:.0f} s: {stuck[:10]}")
        svc.coordinator.stop()

        by_uid = {(_stored_uid(s.mutant) or ""): s for s in sent if s.status == OK}
        by_uid.pop("", None)
        studies = svc.index.studies()
        for s in _map_by_content(svc.index, studies, sent, by_uid):
            problems.append(f"{s.mutant.kind} ({s.mutant.detail}): 0x0000 but no spool file of it")
        worker_done = 0
        for st in studies:
            plan = json.loads(st.plan_json) if st.plan_json else {}
            reasons: dict[str, str] = plan.get("not_analyzed") or {}
            pairs = {p.target_uid: p for p in svc.index.pairs(st.study_uid, st.version)}
            result = json.loads(st.result_json) if st.result_json else {}
            final_reasons: dict[str, str] = result.get("not_analyzed") or {}
            usable = {
                uid: bool(c.get("usable")) for uid, c in (plan.get("classifications") or {}).items()
            }
            in_worker = st.study_uid in sampled and st.state in FINAL_STATES
            if in_worker:
                worker_done += 1
                if st.state == StudyState.FAILED and not st.result_json:
                    problems.append(f"study …{st.study_uid[-12:]}: task failed: {st.error}")
            for row in svc.index.instances(st.study_uid):
                uid = row.sop_instance_uid
                s = by_uid.get(uid)
                kind = s.mutant.kind if s else "unmapped"
                if uid in pairs:
                    outcome = "paired"
                elif reasons.get(uid):
                    outcome = "not analyzed: " + reason_class(reasons[uid])
                else:
                    problems.append(f"{kind}: instance …{uid[-12:]} stored without an outcome")
                    outcome = "NO OUTCOME"
                stats[kind].outcome[outcome] += 1
                if s is not None and s.mutant.analyzable and not usable.get(uid, False):
                    problems.append(
                        f"{kind} ({s.mutant.detail}): a valid image classified not usable: "
                        f"{reasons.get(uid)}"
                    )
                if not in_worker:
                    continue
                if uid in pairs:
                    got = _score_outcome(pairs[uid].score_json)
                    if got is None:
                        problems.append(f"{kind}: target …{uid[-12:]} has no score after the task")
                        got = "NO OUTCOME"
                elif final_reasons.get(uid) or reasons.get(uid):
                    got = "not analyzed: " + reason_class(final_reasons.get(uid) or reasons[uid])
                else:
                    got = "NO OUTCOME"
                    problems.append(f"{kind}: instance …{uid[-12:]} has no outcome after the task")
                stats[kind].worker[got] += 1
                if (
                    s is not None
                    and s.mutant.analyzable
                    and uid in pairs
                    and got != "analyzed"
                    and "contralateral view could not be decoded" not in got
                ):
                    problems.append(f"{kind} ({s.mutant.detail}): not analyzed: {got}")
        final = {st.study_uid for st in studies if st.state in FINAL_STATES and st.result_json}
        transient: Counter[str] = Counter()
        for error in svc.index.errors(1000):
            if error.source == "queue" and error.study_uid in final and "collect" in error.message:
                # Read while the result backend wrote it; the next pass collected the result.
                transient[reason_class(error.message)] += 1
            elif error.source in ("coordinator", "queue") or "task failed" in error.message:
                problems.append(f"{error.source} error: {error.message[:200]}")
        leftovers = list(svc.spool.incoming_dir.iterdir())
        if leftovers:
            problems.append(f"{len(leftovers)} temp file(s) left in the spool's .incoming")
        counts = svc.index.study_counts()

    # -- nothing written outside the spool, the index, the queue and the results ------------
    allowed = [
        settings.spool_path,
        settings.results_path,
        settings.registry_path,
        settings.data_dir / "queue",
    ]
    index_files = {
        Path(f"{settings.index_path}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")
    }
    for path in sorted(_listing(root) - before):
        if path in index_files or path == settings.data_dir:
            continue
        if not any(path == a or path.is_relative_to(a) for a in allowed):
            problems.append(f"written outside the spool: {path.relative_to(root)}")
    name_ok = re.compile(r"^(\d+(\.\d+)*|u[0-9a-f]{40})$")
    for path in settings.spool_path.glob("*/*"):
        if path.parent.name.startswith("."):
            continue
        if not (name_ok.match(path.parent.name) and name_ok.match(path.stem)):
            problems.append(f"unsafe spool name: {path.relative_to(settings.spool_path)}")

    report = {
        "seed": cfg.seed,
        "mutated_instances": sum(1 for s in sent if s.mutant.mutated),
        "instances_sent": len(sent),
        "associations": associations,
        "studies": len(studies),
        "studies_by_state": {str(k): v for k, v in counts.items() if v},
        "worker_studies": worker_done,
        "max_dataset_bytes": cfg.limit,
        "seconds": round(time.perf_counter() - started, 1),
        "problems": len(problems),
        "transient_errors": dict(transient),
        "kinds": report_section(stats),
    }
    return report, problems


# -- preprocessing and the worker, one case at a time ------------------------------------------

HANG_S = 60.0  # one preprocess or one two-image task; they take ~0.01-1 s


class Bounded:
    """Run calls in one worker thread; a call that does not return in ``limit`` s is a hang."""

    def __init__(self, limit: float = HANG_S) -> None:
        import concurrent.futures

        self.limit = limit
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fuzz")

    def __call__(self, fn: Callable[[], Any]) -> Any:
        import concurrent.futures

        future = self.pool.submit(fn)
        try:
            return future.result(timeout=self.limit)
        except concurrent.futures.TimeoutError:
            raise HangError(f"no answer within {self.limit:.0f} s") from None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class HangError(Exception):
    """A bounded call did not return in time."""


def _unexpected(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, HangError):
        return "HUNG", str(exc)
    return f"UNCAUGHT {type(exc).__name__}", f"{type(exc).__name__}: {exc}"


def preprocess_case(
    mutant: Mutant, folder: Path, as_planned: bool, run: Bounded
) -> tuple[str, str | None]:
    """``brgan_core.preprocess.preprocess`` on the mutant's file: ``(outcome, problem)``.

    A model input of the right size, finite and in [0, 1], or a ``BrganCoreError`` with a
    message; ``problem`` says what else happened. ``as_planned``: laterality and view passed
    as the worker does (the plan's), else read from the mutated header."""
    from brgan_core.errors import BrganCoreError
    from brgan_core.preprocess import preprocess

    path = folder / f"{mutant.sop_uid}.dcm"
    path.write_bytes(mutant.data)
    kwargs: dict[str, Any] = {"size": (64, 52)}
    if as_planned:
        kwargs.update(laterality=mutant.laterality, view=mutant.view, patient_orientation=None)
    try:
        out = run(lambda: preprocess(path, **kwargs))
    except BrganCoreError as exc:
        label = f"{type(exc).__name__}: {reason_class(getattr(exc, 'reason', str(exc)))}"
        return label, None if str(exc).strip() else f"{type(exc).__name__} without a message"
    except Exception as exc:
        return _unexpected(exc)
    finally:
        path.unlink(missing_ok=True)
    image, mask = out.image, out.mask
    if image.shape != (64, 52) or mask.shape != (64, 52) or image.dtype != np.float32:
        return "BAD OUTPUT", f"model input {image.shape} {image.dtype}, mask {mask.shape}"
    if not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0:
        return "BAD OUTPUT", "model input not finite or outside [0, 1]"
    return "preprocessed", None


def worker_outcome(uid: str, summary: Any) -> str | None:
    """``analyzed``, ``not analyzed: <reason>``, or None (no outcome) for one image."""
    if any(i.sop_instance_uid == uid for i in summary.images):
        return "analyzed"
    reasons = [n.reason for n in summary.not_analyzed if n.sop_instance_uid == uid]
    if reasons and reasons[0].strip():
        return "not analyzed: " + reason_class(reasons[0])
    return None


def worker_case(
    base: Base, mutant: Mutant, settings: Any, loaded: Any, run: Bounded
) -> tuple[str, str | None]:
    """``plugin.worker.analysis.run_task`` (what ``brgan.analyze_study`` runs) on a study of
    the mutant and a valid contralateral, both pairs: ``(outcome of the mutant, problem)``.

    Both images must end analyzed or not analyzed with a reason (or the task raise a
    ``BrganCoreError`` with a message); a lossless re-encoding must be analyzed; result files
    stay in the task's folder."""
    from brgan_core.errors import BrganCoreError
    from plugin.queue.contract import ImageRef, ModelRef, StudyTask, TaskPair
    from plugin.worker.analysis import run_task

    folder = settings.spool_path / mutant.study_uid
    folder.mkdir(parents=True, exist_ok=True)
    view = base.view(mutant.laterality, mutant.view)
    other = base.contralateral(view)
    partner = instance(other, mutant.study_uid, None, None)
    refs = []
    for m, v in ((mutant, view), (partner, other)):
        path = folder / f"{m.sop_uid}.dcm"
        path.write_bytes(m.data)
        # laterality, view and orientation as the plan decided them: from the valid header
        refs.append(ImageRef(m.sop_uid, str(path), v.laterality, v.view,
                             tuple(v.ds.PatientOrientation)))  # fmt: skip
    task = StudyTask(
        study_uid=mutant.study_uid,
        study_version=1,
        queued_at=time.time(),
        model=ModelRef(loaded.version, loaded.sha256),
        pairs=(TaskPair(refs[0], refs[1]), TaskPair(refs[1], refs[0])),
    )
    task_id = str(generate_uid(prefix=None))
    out_dir = settings.results_path / task_id
    try:
        summary = run(lambda: run_task(task, loaded, settings, out_dir, task_id))
    except BrganCoreError as exc:
        label = f"task error {type(exc).__name__}: {reason_class(str(exc))}"
        return label, None if str(exc).strip() else f"{type(exc).__name__} without a message"
    except Exception as exc:
        return _unexpected(exc)
    mutated, valid = (
        worker_outcome(mutant.sop_uid, summary),
        worker_outcome(partner.sop_uid, summary),
    )
    if mutated is None or valid is None:
        return "NO OUTCOME", f"no outcome: mutated image {mutated}, valid contralateral {valid}"
    if mutant.analyzable and not mutated == valid == "analyzed":
        return mutated, f"a lossless re-encoding not analyzed: {mutated} / {valid}"
    outside = [f.path for f in summary.result_files if not Path(f.path).is_relative_to(out_dir)]
    if outside:
        return mutated, f"result files outside the task folder: {outside}"
    return mutated, None
