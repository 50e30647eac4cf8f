"""What lands on disk: names built from UIDs stay inside their folder, and PHI stays private.

UIDs (PS3.5 9.1: digits and dots, at most 64 characters) name the spool's folders and files;
a peer can send any bytes in their place. The spool and the results hold whole DICOM objects
(PHI), the index holds UIDs, hashed PatientIDs and scores: all are 0600 files in 0700 folders,
whatever the umask of the process that writes them (``brgan serve`` and ``brgan worker`` also
tighten theirs, so library-made files are private too; the service chains in
``test_service_chain.py`` audit every file they leave).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.fsutil import SERVICE_UMASK, atomic_write_bytes, restrict_umask
from plugin.index import SqliteIndex
from plugin.spool import Spool, safe_name
from tests.plugin.listener.conftest import Service, raw_file, send_files
from tests.plugin.listener.dicom_data import mg_image

HOSTILE = [
    "../../../escaped",
    "/tmp/absolute",
    "1.2.3/../../4",
    "1.2.3\\..\\..\\4",
    "1.2.3\x00/../x",
    "..",
    ".",
    ".incoming",
    "~root",
    "1.2.3\n4",
]


@settings(max_examples=300, deadline=None)
@given(study=st.text(max_size=80), sop=st.text(max_size=80))
def test_any_uid_text_names_a_file_inside_the_spool(study: str, sop: str) -> None:
    root = Path("/srv/spool")
    path = Spool(root).path_for(study, sop)
    for name in (safe_name(study), safe_name(sop)):
        assert name and len(name) <= 64 and name not in (".", "..")
        assert not name.startswith(".") and "/" not in name and "\\" not in name
        assert "\x00" not in name and name.isprintable()
    assert os.path.normpath(path) == str(path)  # nothing for the OS to resolve
    assert path.parent.parent == root


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # pydicom, as the test sets it
@pytest.mark.parametrize("uid", HOSTILE)
@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
def test_a_path_like_uid_over_the_wire_writes_nothing_anywhere(
    service: Service, tmp_path: Path, keyword: str, uid: str
) -> None:
    ds = mg_image("1.2.3", "L", "CC")
    del ds.file_meta
    setattr(ds, keyword, uid)
    sent = raw_file(tmp_path / "sent.dcm", ds)
    before = _tree(tmp_path)
    [status] = send_files(service.port, [sent])
    assert status.Status == 0xC001 and keyword in status.ErrorComment
    created = _tree(tmp_path) - before
    assert [p for p in created if not p.startswith(("data/index.sqlite3", "data/spool/"))] == []
    assert service.spool.instance_files() == []


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask (0): what the code itself sets is what is left."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_spool_results_and_index_are_private_under_any_umask(
    open_umask: None, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    stored = spool.write_bytes("1.2.3", "1.2.3.4", b"DICM")
    chunked = tmp_path / "chunked.tmp"  # pynetdicom's temp file, made by another library
    chunked.write_bytes(b"DICM")
    chunked.chmod(0o666)
    moved = spool.move_in("1.2.3", "1.2.3.5", chunked)
    aside = spool.set_aside(moved.path)
    assert aside is not None
    result = tmp_path / "results" / "task"
    result.mkdir(parents=True, mode=0o700)
    atomic_write_bytes(result / "tid1500_sr.dcm", b"DICM")
    index = SqliteIndex(tmp_path / "data" / "index.sqlite3")
    try:
        index.record_error("test", "a write, so that SQLite makes its -wal and -shm")
        db_files = sorted((tmp_path / "data").iterdir())
        assert [p.name for p in db_files][1:] == ["index.sqlite3-shm", "index.sqlite3-wal"]
        files = [stored.path, aside, result / "tid1500_sr.dcm", *db_files]
        folders = [spool.root, spool.incoming_dir, stored.path.parent, aside.parent]
        assert {str(p): oct(_mode(p)) for p in files} == {str(p): "0o600" for p in files}
        assert {str(p): oct(_mode(p)) for p in folders} == {str(p): "0o700" for p in folders}
    finally:
        index.close()


def test_the_service_umask_only_ever_tightens() -> None:
    previous = os.umask(0o022)
    try:
        assert restrict_umask() == 0o022
        assert os.umask(0o277) == SERVICE_UMASK
        restrict_umask()
        assert os.umask(0o022) == 0o277  # a stricter umask set by the admin is kept
    finally:
        os.umask(previous)
