"""The spool: received instances on disk, one file per SOP instance, written atomically.

Layout: ``<spool>/<study>/<sop>.dcm`` where ``<study>`` and ``<sop>`` are the UIDs when they
are well formed (digits and dots, at most 64 characters) and ``u`` + a sha256 prefix of the
value otherwise, so nothing a peer sends can escape the spool folder.

Durability (DESIGN.md step 1): the bytes go to a temporary file in the destination folder,
the file is fsynced, renamed over the final name, and the folder is fsynced; only then does
the listener answer 0x0000. Files and folders are private to the service user (0600 / 0700).

Big datasets arrive through pynetdicom's chunked receive as a temporary file; :meth:`Spool.move_in`
moves that file into place (a rename when it is on the same filesystem, otherwise a copy).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from plugin.errors import PluginError
from plugin.fsutil import DIR_MODE, FILE_MODE, atomic_write_bytes, fsync_dir

INCOMING = ".incoming"
SUPERSEDED = ".superseded"
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class SpoolError(PluginError):
    """A spool write, move or purge failed; the message names the file and the OS error."""


@dataclass(frozen=True)
class StoredFile:
    """Where an instance landed and how big it is."""

    path: Path
    size: int


def safe_name(uid: str) -> str:
    """A file-system-safe name for a UID: the UID itself when well formed, else a hash."""
    uid = uid.strip().rstrip("\x00")
    if uid and len(uid) <= 64 and _UID_RE.match(uid):
        return uid
    return "u" + hashlib.sha256(uid.encode("utf-8", "surrogateescape")).hexdigest()[:40]


_fsync_dir = fsync_dir


class Spool:
    """Atomic, private storage of received instances under one root folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- paths --------------------------------------------------------------------------
    @property
    def incoming_dir(self) -> Path:
        """Folder for temporary files on the spool's filesystem (chunked receive goes here)."""
        return self.root / INCOMING

    def study_dir(self, study_uid: str) -> Path:
        return self.root / safe_name(study_uid)

    def path_for(self, study_uid: str, sop_uid: str) -> Path:
        return self.study_dir(study_uid) / f"{safe_name(sop_uid)}.dcm"

    def ensure(self) -> None:
        """Create the root and incoming folders (0700); fail with a clear message if impossible."""
        try:
            for folder in (self.root, self.incoming_dir):
                folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(
                f"cannot create spool folder {self.root}: {exc.strerror}; "
                "check spool_dir/data_dir and the service user's permissions"
            ) from exc

    def _make_study_dir(self, study_uid: str) -> Path:
        folder = self.study_dir(study_uid)
        if not folder.is_dir():
            folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            _fsync_dir(folder.parent)
        return folder

    # -- writing ------------------------------------------------------------------------
    def write_bytes(self, study_uid: str, sop_uid: str, data: bytes) -> StoredFile:
        """Write ``data`` as the instance's file: temp file, fsync, rename, fsync folder."""
        final = self.path_for(study_uid, sop_uid)
        try:
            self._make_study_dir(study_uid)
            atomic_write_bytes(final, data)
        except OSError as exc:
            raise SpoolError(f"cannot write {final}: {exc.strerror or exc}") from exc
        return StoredFile(final, len(data))

    def move_in(self, study_uid: str, sop_uid: str, source: Path) -> StoredFile:
        """Move a complete DICOM file (e.g. pynetdicom's chunked temp file) into place."""
        final = self.path_for(study_uid, sop_uid)
        tmp_name: str | None = None
        try:
            folder = self._make_study_dir(study_uid)
            with open(source, "rb") as src:
                os.fsync(src.fileno())
            os.chmod(source, FILE_MODE)
            try:
                os.replace(source, final)
            except OSError as exc:
                if exc.errno != errno.EXDEV:  # another filesystem: copy instead
                    raise
                fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=".tmp", dir=folder)
                with os.fdopen(fd, "wb") as dst, open(source, "rb") as src:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
                    dst.flush()
                    os.fsync(dst.fileno())
                os.replace(tmp_name, final)
                tmp_name = None
                with contextlib.suppress(OSError):
                    os.unlink(source)
            _fsync_dir(folder)
            size = final.stat().st_size
        except OSError as exc:
            raise SpoolError(f"cannot move {source} to {final}: {exc.strerror or exc}") from exc
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)
        return StoredFile(final, size)

    # -- superseded files ---------------------------------------------------------------
    @property
    def superseded_dir(self) -> Path:
        """Where an earlier file of a SOP instance that arrived again under another study goes
        (kept for ``retention_days``, never re-indexed by recovery)."""
        return self.root / SUPERSEDED

    def set_aside(self, path: Path) -> Path | None:
        """Move an instance file out of its study folder into :attr:`superseded_dir`.

        Returns the new path, or None when the file is already gone. The file's mtime is set
        to now, so retention counts from the moment it was superseded.
        """
        path = Path(path)
        if not path.is_file():
            return None
        folder = self.superseded_dir / path.parent.name
        target = folder / path.name
        try:
            folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            os.replace(path, target)
            os.utime(target)
            _fsync_dir(folder)
            _fsync_dir(path.parent)
        except OSError as exc:
            raise SpoolError(f"cannot set aside {path}: {exc.strerror or exc}") from exc
        return target

    def purge_superseded(self, older_than: float) -> int:
        """Delete set-aside files whose mtime is before ``older_than``; returns how many."""
        count = 0
        if not self.superseded_dir.is_dir():
            return 0
        for path in self.superseded_dir.glob("*/*"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < older_than:
                    path.unlink()
                    count += 1
        for folder in self.superseded_dir.iterdir():
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds when empty
        return count

    # -- housekeeping -------------------------------------------------------------------
    def purge_study(self, study_uid: str) -> int:
        """Delete a study's instance files and folder; returns how many files went."""
        folder = self.study_dir(study_uid)
        if not folder.is_dir():
            return 0
        count = 0
        try:
            for child in folder.iterdir():
                child.unlink()
                count += 1
            folder.rmdir()
            _fsync_dir(self.root)
        except OSError as exc:
            raise SpoolError(f"cannot purge {folder}: {exc.strerror or exc}") from exc
        return count

    def remove_stale_temp(self) -> int:
        """Delete temporary files left by a crash (at start, before anything is received)."""
        count = 0
        if not self.root.is_dir():
            return 0
        candidates = list(self.root.glob("*/.*.tmp"))
        if self.incoming_dir.is_dir():
            candidates += list(self.incoming_dir.iterdir())
        for path in candidates:
            with contextlib.suppress(OSError):
                path.unlink()
                count += 1
        return count

    def instance_files(self) -> list[Path]:
        """Every instance file in the spool (for recovery of files the index lacks)."""
        if not self.root.is_dir():
            return []
        return sorted(
            p
            for p in self.root.glob("*/*.dcm")
            if not p.name.startswith(".") and not p.parent.name.startswith(".")
        )
