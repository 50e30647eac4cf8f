"""pynetdicom's chunked receive, made to survive a full spool disk (issue 13 §1).

With ``STORE_RECV_CHUNKED_DATASET`` pynetdicom writes each incoming data set, P-DATA fragment by
fragment, to a ``NamedTemporaryFile`` (in the spool's ``.incoming`` folder, see
:func:`plugin.listener.server.route_temp_files`). When that write fails — ENOSPC, EDQUOT, EIO —
the ``OSError`` rises in pynetdicom's state machine thread: the association dies without a
response, and the sender sees a dropped connection instead of a status it can act on.

:func:`install` replaces that temporary file with :class:`IncomingFile`, which keeps the first
write error, stops writing, truncates what it had written (so the full disk gets its space back
at once) and lets the transfer run to its end. The C-STORE handler then asks :func:`failure_of`
(the event's temporary file) and answers 0xA700 (out of resources), naming the OS error; the
sender keeps the instance and retries. Nothing half-written ever reaches the spool or the index.
An error when pynetdicom closes the file *after* the handler (it was moved into the spool by
then, or refused) is ignored: the answer has been given.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import threading
from typing import Any

_lock = threading.Lock()
_installed = False


class IncomingFile:
    """A write-only temporary file that records its first write error instead of raising."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._file: Any = None
        self.error: str | None = None
        self._closed = False
        # Unbuffered: a failed write leaves no bytes in a Python buffer to fail again later,
        # and each P-DATA fragment (up to the PDU size) is one write anyway.
        kwargs["buffering"] = 0
        try:
            self._file = tempfile.NamedTemporaryFile(*args, **kwargs)  # noqa: SIM115
            self.name = self._file.name
        except OSError as exc:  # not even the file could be made (no space for an inode)
            folder = tempfile.gettempdir()
            self.name = os.path.join(folder, f"unwritable-{id(self):x}.dcm")
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        if self.error is None:
            self.error = f"spool write failed: {exc.strerror or type(exc).__name__}"
        if self._file is not None and not self._closed:
            with contextlib.suppress(OSError):  # the space back now; the data set is refused
                os.ftruncate(self._file.fileno(), 0)

    def write(self, data: bytes) -> int:
        if self.error is None and self._file is not None:
            view = memoryview(data)
            try:
                # An unbuffered write may be short on a nearly full disk (it returns what fit
                # instead of raising): write the rest until it is all there or nothing fits.
                while view:
                    written = self._file.write(view)
                    if not written:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    view = view[written:]
            except OSError as exc:
                self._fail(exc)
        return len(data)

    def flush(self) -> None:
        if self.error is None and self._file is not None:
            try:
                self._file.flush()
            except OSError as exc:
                self._fail(exc)

    @property
    def file(self) -> IncomingFile:
        """pynetdicom calls ``.file.flush()`` after each fragment."""
        return self

    def close(self) -> None:
        """pynetdicom closes the file after the C-STORE handler answered: nothing to report."""
        self._closed = True
        if self._file is not None:
            with contextlib.suppress(OSError, ValueError):
                self._file.close()

    def __getattr__(self, name: str) -> Any:
        if self._file is None:
            raise AttributeError(name)
        return getattr(self._file, name)


def failure_of(event: Any) -> str | None:
    """Why the C-STORE ``event``'s temporary file could not be written, or None (also when the
    data set came in memory, not through a temporary file)."""
    request = getattr(event, "request", None)
    return getattr(getattr(request, "_dataset_file", None), "error", None)


def install() -> None:
    """Use :class:`IncomingFile` for pynetdicom's chunked receive (idempotent)."""
    global _installed
    from pynetdicom import dimse_messages

    with _lock:
        if not _installed:
            dimse_messages.NamedTemporaryFile = IncomingFile  # type: ignore[assignment,misc]
            _installed = True
