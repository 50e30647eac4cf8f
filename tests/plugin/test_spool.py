"""The spool: atomic private writes, safe names, move-in, purge, stale temp files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from plugin.spool import Spool, SpoolError, safe_name


def test_safe_name_keeps_uids_and_hashes_the_rest() -> None:
    assert safe_name("1.2.840.10008.1") == "1.2.840.10008.1"
    assert safe_name(" 1.2.3\x00") == "1.2.3"
    for bad in ("../../etc/passwd", "..", "", "1.2/3", "a" * 80, "1." + "2" * 70):
        name = safe_name(bad)
        assert name.startswith("u") and "/" not in name and ".." not in name


def test_write_is_private_and_complete(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    stored = spool.write_bytes("1.2.3", "1.2.3.4", b"DICM" * 100)
    assert stored.path == tmp_path / "spool" / "1.2.3" / "1.2.3.4.dcm"
    assert stored.path.read_bytes() == b"DICM" * 100 and stored.size == 400
    assert stat.S_IMODE(stored.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.path.parent.stat().st_mode) == 0o700
    assert [p.name for p in stored.path.parent.iterdir()] == ["1.2.3.4.dcm"]  # no temp left
    # overwrite (same instance re-sent) replaces atomically
    spool.write_bytes("1.2.3", "1.2.3.4", b"new")
    assert stored.path.read_bytes() == b"new"


def test_write_failure_raises_spool_error_and_leaves_no_temp(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    (tmp_path / "spool" / "1.2.3").write_bytes(b"not a folder")
    with pytest.raises(SpoolError, match="cannot write"):
        spool.write_bytes("1.2.3", "1.2.3.4", b"x")


def test_move_in_renames_a_temp_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    src = spool.incoming_dir / "tmpabc.dcm"
    src.write_bytes(b"payload")
    stored = spool.move_in("1.2", "1.2.5", src)
    assert not src.exists() and stored.path.read_bytes() == b"payload"
    assert stat.S_IMODE(stored.path.stat().st_mode) == 0o600


def test_purge_and_stale_temp(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    spool.write_bytes("1.2", "1.2.1", b"a")
    spool.write_bytes("1.2", "1.2.2", b"b")
    (spool.study_dir("1.2") / ".1.2.3.xyz.tmp").write_bytes(b"half")
    (spool.incoming_dir / "tmp1.dcm").write_bytes(b"half")
    assert len(spool.instance_files()) == 2  # never the incoming temp files
    assert spool.remove_stale_temp() == 2
    assert len(spool.instance_files()) == 2
    assert spool.purge_study("1.2") == 2
    assert not spool.study_dir("1.2").exists()
    assert spool.purge_study("1.2") == 0
