"""The chunked-receive temporary file keeps a write error instead of killing the association
(the full-disk path end to end: tests/reliability/test_disk_full.py)."""

from __future__ import annotations

import errno
from pathlib import Path
from types import SimpleNamespace

import pytest

from plugin.listener import incoming


class _Raw:
    """A raw file that takes at most ``room`` bytes: short writes, then ENOSPC (a full disk)."""

    def __init__(self, room: int) -> None:
        self.room, self.data = room, bytearray()

    def write(self, view: memoryview) -> int:
        if self.room == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = min(len(view), self.room, 5)  # never all of it at once: short writes
        self.data += bytes(view[:n])
        self.room -= n
        return n

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "no real file")

    def close(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")  # a full disk at close


def _event(f: incoming.IncomingFile) -> object:
    """What pynetdicom hands the C-STORE handler: the request holds the temporary file."""
    return SimpleNamespace(request=SimpleNamespace(_dataset_file=f))


def _file(tmp_path: Path, raw: _Raw) -> incoming.IncomingFile:
    f = incoming.IncomingFile(dir=tmp_path, delete=False, suffix=".dcm")
    f._file.close()
    f._file = raw
    return f


def test_short_writes_are_completed(tmp_path: Path) -> None:
    raw = _Raw(room=100)
    f = _file(tmp_path, raw)
    assert f.write(b"x" * 42) == 42 and f.write(b"y" * 8) == 8
    assert bytes(raw.data) == b"x" * 42 + b"y" * 8
    assert f.error is None and incoming.failure_of(_event(f)) is None


def test_a_full_disk_is_recorded_once_and_later_writes_are_dropped(tmp_path: Path) -> None:
    raw = _Raw(room=12)
    f = _file(tmp_path, raw)
    assert f.write(b"a" * 30) == 30  # pynetdicom goes on with the transfer
    assert f.write(b"b" * 30) == 30
    f.file.flush()
    assert len(raw.data) == 12, "nothing is written after the first failure"
    assert f.error == "spool write failed: No space left on device"
    assert incoming.failure_of(_event(f)) == f.error
    f.close()  # after the handler: an error then is not news
    assert incoming.failure_of(object()) is None  # a data set that came in memory


def test_install_replaces_pynetdicoms_temporary_file() -> None:
    from pynetdicom import dimse_messages

    incoming.install()
    incoming.install()
    assert dimse_messages.NamedTemporaryFile is incoming.IncomingFile


def test_no_file_at_all_is_a_failure_too(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    f = incoming.IncomingFile(dir=missing, delete=False)
    assert f.error and incoming.failure_of(_event(f)) == f.error
    with pytest.raises(AttributeError):
        f.fileno()
