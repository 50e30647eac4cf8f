"""Header-only reading of Deflated Explicit VR Little Endian files with bounded memory.

In the Deflated Explicit VR Little Endian transfer syntax (1.2.840.10008.1.2.1.99, DICOM PS3.5
§A.5) the File Meta Information (PS3.10 §7.1: preamble, ``DICM`` prefix and the group 0002
elements) stays uncompressed Explicit VR Little Endian, and everything after it is one raw
deflate stream (RFC 1951, no zlib wrapper) of an Explicit VR Little Endian data set.

pydicom's ``dcmread`` inflates that stream whole, pixel data included, even with
``stop_before_pixels``: a 200 KB file of zeros costs hundreds of MB (issue 8 §3). Here the stream
is inflated lazily, in bounded pieces, through a small read-only file-like (:class:`_Inflater`)
that pydicom's data set reader parses up to the pixel element. The parsed (header) part is kept,
up to ``max_header_bytes``, so the reader can seek back within it; the rest is inflated only to
be counted, never kept, and inflating stops as soon as the total passes ``max_inflated_bytes``.

:func:`read_deflated_header` returns the header Dataset and a :class:`DeflatedPixelInfo`.
Errors never quote attribute values (they may be PHI): :class:`DeflatedTooLargeError` when a
bound is passed, :class:`DeflatedUnreadableError` when the stream or the data set in it is
corrupt.
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from dataclasses import dataclass
from typing import BinaryIO, NoReturn

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_dataset
from pydicom.tag import BaseTag

from plugin.errors import PluginError

__all__ = [
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_MAX_INFLATED_BYTES",
    "DEFLATED_TRANSFER_SYNTAX",
    "DeflatedPixelInfo",
    "DeflatedTooLargeError",
    "DeflatedUnreadableError",
    "is_deflated",
    "read_deflated_header",
]

DEFLATED_TRANSFER_SYNTAX = "1.2.840.10008.1.2.1.99"
#: Default bound on the whole inflated data set (the default of ``Settings.max_dataset_bytes``).
DEFAULT_MAX_INFLATED_BYTES = 2 * 1024**3
#: Default bound on the inflated bytes kept for parsing: everything before the pixel element.
DEFAULT_MAX_HEADER_BYTES = 64 * 1024**2

#: Compressed bytes read from the file at a time.
_INPUT_CHUNK = 64 * 1024
#: Most inflated bytes produced by one zlib call.
_OUTPUT_CHUNK = 1024 * 1024
#: Pixel Data, Float Pixel Data, Double Float Pixel Data.
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
#: Explicit VRs whose element header has 2 reserved bytes and a 4-byte length (PS3.5 §7.1.2).
_LONG_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"})
_UNDEFINED_LENGTH = 0xFFFFFFFF
#: What pydicom raises on bytes it cannot parse.
_PARSE_ERRORS = (InvalidDicomError, EOFError, struct.error, ValueError, OSError, KeyError)


class DeflatedTooLargeError(PluginError, ValueError):
    """The inflated data set, or its header part, is larger than allowed (a status 0xA701 case:
    the sender's object is too large for us, not unreadable)."""


class DeflatedUnreadableError(PluginError, ValueError):
    """The deflate stream is corrupt, or the data set inside it is not readable as DICOM."""


@dataclass(frozen=True, slots=True)
class DeflatedPixelInfo:
    """What is known about the pixel element of a deflated data set, without keeping its value."""

    #: A pixel element with a non-empty (or undefined-length) value follows the header.
    has_pixel_data: bool
    #: The declared value length; None when undefined (encapsulated) or there is no pixel element.
    length: int | None
    #: The declared length is more than the bytes that inflate after the element's header.
    truncated: bool
    #: Size of the whole inflated data set (everything after the File Meta Information).
    inflated_bytes: int


def is_deflated(fp: BinaryIO) -> bool:
    """Whether ``fp``'s File Meta Information declares the Deflated transfer syntax.

    Reads only the preamble and group 0002 and leaves ``fp`` where it was. A file without
    readable File Meta Information is "not deflated": reading it is then the caller's concern.
    """
    start = fp.tell()
    try:
        meta = _read_meta(fp)
        return meta is not None and _transfer_syntax(meta) == DEFLATED_TRANSFER_SYNTAX
    except _PARSE_ERRORS:
        return False
    finally:
        fp.seek(start)


def read_deflated_header(
    fp: BinaryIO,
    *,
    max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
) -> tuple[Dataset, DeflatedPixelInfo]:
    """Read a Deflated Explicit VR Little Endian file up to its pixel element.

    ``fp`` is positioned at the start of the file (preamble or, without one, group 0002).
    Returns the header Dataset (``file_meta`` set, no pixel element) and what is known about
    the pixel element. The whole stream is inflated, in pieces of at most 1 MiB that are counted
    and dropped once past the header, so memory stays near ``max_header_bytes`` at worst.

    Raises :class:`DeflatedTooLargeError` as soon as the inflated data set passes
    ``max_inflated_bytes`` or the header part passes ``max_header_bytes``, and
    :class:`DeflatedUnreadableError` when the File Meta Information does not declare Deflated,
    the deflate stream is corrupt or the inflated bytes are not a DICOM data set.
    """
    try:
        meta = _read_meta(fp)
        syntax = _transfer_syntax(meta) if meta is not None else None
    except _PARSE_ERRORS as exc:
        raise _unreadable("File Meta Information", exc) from exc
    if meta is None or syntax != DEFLATED_TRANSFER_SYNTAX:
        raise DeflatedUnreadableError(
            "File Meta Information does not declare Deflated Explicit VR Little Endian"
        )
    stream = _Inflater(fp, max_kept=max_header_bytes, max_total=max_inflated_bytes)
    ds = _read_body(stream)
    ds.file_meta = meta
    return ds, _pixel_info(stream)


# -- File Meta Information and the data set ---------------------------------------------------


def _read_meta(fp: BinaryIO) -> FileMetaDataset | None:
    """The group 0002 elements, ``fp`` left after them; None when the file has none.

    As ``dcmread`` does: after a 128-byte preamble and ``DICM``, or at the start of a file
    without a preamble that begins with a group 0002 element."""
    start = fp.tell()
    head = fp.read(132)
    if head[128:132] != b"DICM":
        if head[:2] != b"\x02\x00":
            return None
        fp.seek(start)
    meta = _read_file_meta_info(fp)
    return meta if len(meta) else None


def _transfer_syntax(meta: FileMetaDataset) -> str | None:
    value = meta.get("TransferSyntaxUID")
    return str(value).strip().strip("\x00").strip() if value else None


def _at_pixel_data(tag: BaseTag, vr: str | None, length: int) -> bool:
    """pydicom's ``stop_before_pixels`` condition: the top-level data set ends at a pixel tag."""
    return tag in _PIXEL_TAGS


def _read_body(stream: _Inflater) -> Dataset:
    """Parse the inflated data set up to (not including) its pixel element."""
    try:
        ds = read_dataset(
            stream,  # type: ignore[arg-type]
            is_implicit_VR=False,
            is_little_endian=True,
            stop_when=_at_pixel_data,
        )
    except (*_PARSE_ERRORS, zlib.error) as exc:
        # pydicom may wrap what the stream raised (e.g. as OSError): the stream's own wins.
        stream.raise_failure()
        raise _unreadable("deflated data set", exc) from exc
    stream.raise_failure()
    return ds


def _pixel_info(stream: _Inflater) -> DeflatedPixelInfo:
    """After :func:`_read_body`: parse the pixel element's header (if one is next), then
    inflate the rest of the stream only to count it."""
    start = stream.tell()
    element = _pixel_element(stream.read(12))
    if element is None:
        stream.seek(start)
        return DeflatedPixelInfo(False, None, False, stream.drain())
    length, header_size = element
    stream.seek(start + header_size)
    left = stream.drain_count()
    if length is None:
        return DeflatedPixelInfo(True, None, False, stream.total)
    return DeflatedPixelInfo(length > 0, length, length > left, stream.total)


def _pixel_element(head: bytes) -> tuple[int | None, int] | None:
    """``(declared length or None when undefined, element header size)`` when ``head`` starts
    a pixel element, else None. Explicit VR Little Endian (PS3.5 §7.1.2), with a fallback to the
    implicit VR layout when the VR bytes are not a VR."""
    if len(head) < 8:
        return None
    group, elem = struct.unpack("<HH", head[:4])
    if (group << 16 | elem) not in _PIXEL_TAGS:
        return None
    vr = head[4:6]
    if vr in _LONG_VRS:
        if len(head) < 12:
            return None
        (length,) = struct.unpack("<L", head[8:12])
        size = 12
    elif vr.isalpha() and vr.isupper():
        (length,) = struct.unpack("<H", head[6:8])
        size = 8
    else:
        (length,) = struct.unpack("<L", head[4:8])
        size = 8
    return (None if length == _UNDEFINED_LENGTH else length), size


def _corrupt() -> DeflatedUnreadableError:
    return DeflatedUnreadableError("deflated data set: corrupt deflate stream")


def _unreadable(what: str, exc: BaseException) -> DeflatedUnreadableError:
    # Name the exception type only: pydicom's messages may quote attribute values.
    return DeflatedUnreadableError(f"{what} not readable as DICOM ({type(exc).__name__})")


# -- the inflating file-like --------------------------------------------------------------------


class _Inflater:
    """A read-only file-like over the raw deflate stream that follows the File Meta Information.

    ``read`` inflates on demand and keeps what it inflated, so ``seek`` and ``tell`` work
    anywhere within it (pydicom rewinds a few bytes at a time); :meth:`drain` then inflates the
    rest only to count it. Positions are offsets in the inflated data set.

    A failure (:class:`DeflatedTooLargeError`, :class:`DeflatedUnreadableError`) is raised and
    remembered: every later read raises it again, and :meth:`raise_failure` re-raises it after
    pydicom, which may wrap or swallow errors, returns.
    """

    def __init__(self, source: BinaryIO, *, max_kept: int, max_total: int) -> None:
        self._source = source
        self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        self._pending = b""  # compressed input not yet inflated
        self._kept = bytearray()
        self._pos = 0
        self._ended = False
        self._max_kept = max_kept
        self._max_total = max_total
        self._failure: PluginError | None = None
        #: Inflated bytes so far, kept or not.
        self.total = 0

    # file-like API used by pydicom

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("an inflating stream cannot seek from its end")
        if offset < 0:
            raise ValueError("negative seek position")
        self._pos = offset
        return offset

    def read(self, size: int | None = -1) -> bytes:
        end = sys.maxsize if size is None or size < 0 else self._pos + size
        self._keep_until(end)
        with memoryview(self._kept) as view:
            data = bytes(view[self._pos : end])
        self._pos += len(data)
        return data

    # counting the rest

    def drain(self) -> int:
        """Inflate the rest of the stream without keeping it; the total inflated size."""
        self.drain_count()
        return self.total

    def drain_count(self) -> int:
        """Inflate the rest of the stream without keeping it; the bytes from here to its end.
        The stream is then at its end: later reads return b""."""
        self._kept = bytearray()
        while self._inflate():
            pass
        left = max(self.total - self._pos, 0)
        self._pos = max(self._pos, self.total)
        return left

    def raise_failure(self) -> None:
        """Raise the failure this stream met, if any."""
        if self._failure is not None:
            raise self._failure

    # inflating

    def _keep_until(self, end: int) -> None:
        """Inflate and keep until ``end`` bytes are kept or the stream ends; raise
        :class:`DeflatedTooLargeError` when a read would go past ``max_kept`` bytes."""
        while len(self._kept) < end and len(self._kept) <= self._max_kept:
            chunk = self._inflate()
            if not chunk:
                break
            self._kept += chunk
        if min(end, len(self._kept)) > self._max_kept:
            self._fail(
                DeflatedTooLargeError(
                    f"deflated data set: the header before the pixel data inflates to more "
                    f"than {self._max_kept} bytes"
                )
            )

    def _inflate(self) -> bytes:
        """The next piece of inflated output (at most ``_OUTPUT_CHUNK`` bytes); b"" at the end.

        A stream cut short (no final deflate block) just ends: the caller sees truncation."""
        self.raise_failure()
        while not self._ended:
            if not self._pending:
                self._pending = b"" if self._zlib.eof else self._source.read(_INPUT_CHUNK)
                if not self._pending:
                    self._ended = True
                    return self._count(self._flush())
            try:
                out = self._zlib.decompress(self._pending, _OUTPUT_CHUNK)
            except zlib.error as exc:
                self._fail(_corrupt(), exc)
            # After the final block the rest is not ours (unused_data): ignore it.
            self._pending = b"" if self._zlib.eof else self._zlib.unconsumed_tail
            if out:
                return self._count(out)
        return b""

    def _flush(self) -> bytes:
        # All input is consumed here, so what zlib still holds is at most a partial match.
        if self._zlib.eof:
            return b""
        try:
            return self._zlib.flush()
        except zlib.error as exc:
            self._fail(_corrupt(), exc)

    def _count(self, out: bytes) -> bytes:
        self.total += len(out)
        if self.total > self._max_total:
            self._fail(
                DeflatedTooLargeError(
                    f"deflated data set inflates to more than {self._max_total} bytes"
                )
            )
        return out

    def _fail(self, error: PluginError, cause: BaseException | None = None) -> NoReturn:
        self._failure = error
        self._ended = True
        self._pending = b""
        self._kept = bytearray()
        raise error from cause
