"""Atomic, durable file writes: temp file in the destination folder, fsync, rename, fsync the
folder. One helper for the spool (received instances, DESIGN.md step 1) and the results folder
(result objects, step 7), so a crash never leaves a half-written file under a final name."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
#: Bits the service's processes never grant (docs/security.md): spool and results hold PHI, so
#: nothing they create — ours, or a library's (kombu's queue files, SQLite's -wal/-shm, Celery's
#: result files, heatmap PNGs, logs) — is readable by the group or others.
SERVICE_UMASK = 0o077


def restrict_umask() -> int:
    """Tighten the process umask by :data:`SERVICE_UMASK` (never loosen it); returns the
    previous umask. ``brgan serve`` and ``brgan worker`` call it once at start."""
    previous = os.umask(SERVICE_UMASK)
    os.umask(previous | SERVICE_UMASK)
    return previous


def fsync_dir(path: Path) -> None:
    """fsync a folder so a rename inside it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(final: Path, data: bytes) -> None:
    """Write ``data`` to ``final`` atomically (mode 0600); raises OSError on failure and then
    leaves no temp file behind."""
    final = Path(final)
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=".tmp", dir=final.parent)
        with os.fdopen(fd, "wb") as fh:  # mkstemp creates the file with mode 0600
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, final)
        tmp_name = None
        fsync_dir(final.parent)
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
