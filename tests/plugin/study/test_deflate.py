"""Deflated Explicit VR Little Endian headers read with bounded memory (issue 8 §3)."""

from __future__ import annotations

import dataclasses
import io
import random
import struct
import tracemalloc
import zlib
from collections.abc import Iterable, Iterator

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian

from plugin.errors import PluginError
from plugin.study.deflate import (
    DeflatedTooLargeError,
    DeflatedUnreadableError,
    is_deflated,
    read_deflated_header,
)
from plugin.study.header import HeaderError, read_header
from tests.plugin.study.conftest import MG_FOR_PRESENTATION, encode, make_dataset

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
SECRET_ID = "PAT-SECRET-4711"
MB = 1_000_000
BIG_PIXELS = 200 * MB  # 10000 x 10000 x 16 bits


# -- building deflated files piece by piece ------------------------------------------------------


def _file_meta(sop_class: str, sop_instance: str) -> bytes:
    """Preamble, DICM and a File Meta Information group declaring the Deflated syntax."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    fp = DicomBytesIO()
    fp.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(fp, meta, enforce_standard=True)
    return fp.getvalue()


def _body(ds: Dataset) -> bytes:
    """``ds`` encoded as Explicit VR Little Endian, without file meta."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds)
    return fp.getvalue()


def _element_header(tag: int, vr: bytes, length: int) -> bytes:
    """Explicit VR Little Endian header of an OB/OW-like element (PS3.5 §7.1.2)."""
    return struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, vr, 0, length)


def _zeros(count: int) -> Iterator[bytes]:
    chunk = bytes(1 << 20)
    while count > 0:
        yield chunk[:count]
        count -= len(chunk)


def _deflate(pieces: Iterable[bytes]) -> bytes:
    """One raw deflate stream of ``pieces``, never holding more than one piece inflated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [compressor.compress(piece) for piece in pieces]
    out.append(compressor.flush())
    return b"".join(out)


def _deflated_file(
    ds: Dataset, *pixel_pieces: Iterable[bytes], sop_class: str = MG_FOR_PRESENTATION
) -> bytes:
    """A Deflated file: ``ds``'s header, then whatever ``pixel_pieces`` yield, all deflated."""
    pieces = [[_body(ds)], *pixel_pieces]
    stream = (piece for group in pieces for piece in group)
    return _file_meta(sop_class, ds.SOPInstanceUID) + _deflate(stream)


def _pixel_data(declared: int, actual: int | None = None) -> list[Iterable[bytes]]:
    """A native OW Pixel Data element declaring ``declared`` bytes, ``actual`` (zeros) present."""
    return [
        [_element_header(0x7FE00010, b"OW", declared)],
        _zeros(declared if actual is None else actual),
    ]


def _messages(exc: BaseException) -> str:
    """The messages of ``exc`` and of every exception it was raised from."""
    texts = []
    current: BaseException | None = exc
    while current is not None:
        texts.append(str(current))
        current = current.__cause__ or current.__context__
    return " | ".join(texts)


# -- round trip ----------------------------------------------------------------------------------


@pytest.mark.parametrize("undefined_sequences", [False, True])
def test_deflated_header_matches_explicit_vr(undefined_sequences: bool) -> None:
    ds = make_dataset("R", "MLO", modifiers=(("399055006", "SCT"),), SoftwareVersions=["1", "2"])
    if undefined_sequences:  # makes pydicom seek back and forth within the inflated bytes
        ds["ViewCodeSequence"].is_undefined_length = True
        for item in ds.ViewCodeSequence:
            item.is_undefined_length_sequence_item = True
    pixels = random.Random(0).randbytes(64 * 48 * 2)
    explicit = read_header(encode(ds, pixels))
    deflated = read_header(encode(ds, pixels, transfer_syntax=DeflatedExplicitVRLittleEndian))
    assert deflated.transfer_syntax_uid == DeflatedExplicitVRLittleEndian
    assert dataclasses.replace(deflated, transfer_syntax_uid=None) == dataclasses.replace(
        explicit, transfer_syntax_uid=None
    )
    assert deflated.has_pixel_data is True
    assert deflated.pixel_data_truncated is False
    assert deflated.pixel_data_length == 64 * 48 * 2
    assert (deflated.rows, deflated.columns) == (64, 48)
    assert deflated.view_modifier_codes == (("399055006", "SCT"),)


def test_sop_class_falls_back_to_the_file_meta() -> None:
    ds = make_dataset(SOPClassUID=None)
    h = read_header(_deflated_file(ds, *_pixel_data(64 * 48 * 2)))
    assert h.sop_class_uid == MG_FOR_PRESENTATION
    assert h.has_pixel_data is True


def test_is_deflated_sniffs_and_rewinds() -> None:
    ds = make_dataset()
    deflated = io.BytesIO(encode(ds, transfer_syntax=DeflatedExplicitVRLittleEndian))
    explicit = io.BytesIO(encode(ds))
    garbage = io.BytesIO(b"this is not dicom at all" * 10)
    assert is_deflated(deflated) is True
    assert (is_deflated(explicit), is_deflated(garbage)) == (False, False)
    assert deflated.tell() == explicit.tell() == garbage.tell() == 0


# -- memory and size bounds -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def zeros_200mb() -> bytes:
    """~200 KB of deflated data set whose Pixel Data is 200 MB of zeros."""
    return _deflated_file(make_dataset(Rows=10000, Columns=10000), *_pixel_data(BIG_PIXELS))


def test_a_deflate_bomb_is_read_with_bounded_memory(zeros_200mb: bytes) -> None:
    assert len(zeros_200mb) < 1 * MB
    tracemalloc.start()
    try:
        h = read_header(zeros_200mb, max_inflated_bytes=1 << 30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * MB, f"peak traced memory {peak / MB:.1f} MB"
    assert h.has_pixel_data is True
    assert h.pixel_data_truncated is False
    assert h.pixel_data_length == BIG_PIXELS
    assert (h.rows, h.columns) == (10000, 10000)


def test_inflating_past_the_limit_stops_there(zeros_200mb: bytes) -> None:
    fp = io.BytesIO(zeros_200mb)
    with pytest.raises(DeflatedTooLargeError, match="50000000 bytes") as caught:
        read_header(fp, max_inflated_bytes=50 * MB)
    # Only about a quarter of the compressed stream was read: the rest was never inflated.
    assert fp.tell() < len(zeros_200mb) // 2
    assert not isinstance(caught.value, HeaderError)  # "too large" is not "unreadable"
    assert isinstance(caught.value, PluginError)


def test_a_header_larger_than_max_header_bytes_is_too_large() -> None:
    data = _deflated_file(make_dataset(), *_pixel_data(64 * 48 * 2))
    with pytest.raises(DeflatedTooLargeError, match="header"):
        read_deflated_header(io.BytesIO(data), max_header_bytes=256)
    ds, info = read_deflated_header(io.BytesIO(data), max_header_bytes=64 * 1024)
    assert info.has_pixel_data is True and "PatientID" in ds


def test_a_large_element_before_the_pixels_counts_against_the_header_bound() -> None:
    ds = make_dataset()
    private = [[_element_header(0x00091010, b"OB", 4 * MB)], _zeros(4 * MB)]
    data = _deflated_file(ds, *private, *_pixel_data(64 * 48 * 2))
    with pytest.raises(DeflatedTooLargeError):
        read_deflated_header(io.BytesIO(data), max_header_bytes=1 << 20)


# -- pixel element variants -----------------------------------------------------------------------


def test_truncated_deflated_pixel_data() -> None:
    data = _deflated_file(make_dataset(), *_pixel_data(64 * 48 * 2, actual=1000))
    h = read_header(data)
    assert h.has_pixel_data is True
    assert h.pixel_data_truncated is True
    assert h.pixel_data_length == 64 * 48 * 2


def test_a_deflate_stream_cut_off_in_the_pixels_reads_as_truncated() -> None:
    noise = random.Random(1).randbytes(64 * 48 * 2)  # incompressible: cutting bytes cuts pixels
    data = _deflated_file(make_dataset(), [_element_header(0x7FE00010, b"OW", len(noise)), noise])
    h = read_header(data[:-2000])
    assert h.has_pixel_data is True
    assert h.pixel_data_truncated is True


def test_elements_after_the_pixel_data_are_not_truncation() -> None:
    padding = [_element_header(0xFFFCFFFC, b"OB", 16), bytes(16)]
    h = read_header(_deflated_file(make_dataset(), *_pixel_data(64 * 48 * 2), padding))
    assert h.has_pixel_data is True
    assert h.pixel_data_truncated is False


def test_encapsulated_pixel_data_under_deflate() -> None:
    fragments = [
        _element_header(0x7FE00010, b"OB", 0xFFFFFFFF),
        struct.pack("<HHL", 0xFFFE, 0xE000, 0),  # empty Basic Offset Table
        struct.pack("<HHL", 0xFFFE, 0xE000, 6) + b"\xff\xd8\x00\x00\xff\xd9",
        struct.pack("<HHL", 0xFFFE, 0xE0DD, 0),  # Sequence Delimitation Item
    ]
    h = read_header(_deflated_file(make_dataset(), fragments))
    assert h.has_pixel_data is True
    assert h.pixel_data_length is None
    assert h.pixel_data_truncated is False


def test_empty_pixel_data_is_no_pixel_data() -> None:
    h = read_header(_deflated_file(make_dataset(), [_element_header(0x7FE00010, b"OW", 0)]))
    assert h.has_pixel_data is False
    assert h.pixel_data_truncated is False


def test_a_text_sr_without_pixel_data_reads_fully() -> None:
    ds = Dataset()
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.77"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1.2"
    ds.Modality = "SR"
    ds.PatientID = "PAT-001"
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.TextValue = "no findings"
    ds.ContentSequence = [item]
    data = encode(ds, transfer_syntax=DeflatedExplicitVRLittleEndian)

    h = read_header(data)
    assert (h.sop_class_uid, h.modality) == (BASIC_TEXT_SR, "SR")
    assert h.has_pixel_data is False
    assert h.pixel_data_length is None

    read, info = read_deflated_header(io.BytesIO(data))
    assert read.ContentSequence[0].TextValue == "no findings"  # the last element was read
    assert read.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert info.inflated_bytes == len(_body(ds))


# -- corrupt streams ------------------------------------------------------------------------------


def test_a_corrupt_deflate_stream_is_an_unreadable_header() -> None:
    ds = make_dataset(patient_id=SECRET_ID)
    data = _file_meta(MG_FOR_PRESENTATION, ds.SOPInstanceUID) + b"\xff" * 64  # invalid block
    with pytest.raises(HeaderError) as caught:
        read_header(data)
    assert isinstance(caught.value.__cause__, DeflatedUnreadableError)
    assert "deflate" in str(caught.value)


def test_corruption_after_the_header_names_no_attribute_value() -> None:
    ds = make_dataset(patient_id=SECRET_ID)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = _body(ds) + _element_header(0x7FE00010, b"OW", 64 * 48 * 2) + bytes(1000)
    # A sync flush ends on a byte boundary; 0xFF there starts a block of the reserved type.
    stream = compressor.compress(head) + compressor.flush(zlib.Z_SYNC_FLUSH) + b"\xff" * 16
    data = _file_meta(MG_FOR_PRESENTATION, ds.SOPInstanceUID) + stream
    with pytest.raises(HeaderError) as caught:
        read_header(data)
    text = _messages(caught.value)
    for value in (SECRET_ID, ds.SOPInstanceUID, ds.StudyInstanceUID, "Test^Patient"):
        assert value not in text


def test_read_deflated_header_refuses_a_file_that_is_not_deflated() -> None:
    with pytest.raises(DeflatedUnreadableError):
        read_deflated_header(io.BytesIO(encode(make_dataset())))


def test_errors_are_plugin_value_errors() -> None:
    for cls in (DeflatedTooLargeError, DeflatedUnreadableError):
        assert issubclass(cls, PluginError) and issubclass(cls, ValueError)
