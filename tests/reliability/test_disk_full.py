"""issue 13 §1: the spool's file system full, through the real service.

`brgan serve` (embedded: listener, coordinator, a real worker child) with its spool on a small
tmpfs of the test's own, nearly filled by a file the test writes. A study is sent over one real
association (pynetdicom, as a modality would):

* the instances that do not fit are refused 0xA700 (out of resources: the sender keeps them and
  retries); none is half-written in the spool (no temporary file left, every file there is a
  whole instance the index knows);
* the service stays up (C-ECHO answers, later associations are accepted);
* once space returns (the filler removed) the sender's retry of the same instances is stored,
  and the study is assembled and analyzed: 0 instances lost.

Needs root (or CAP_SYS_ADMIN) to mount the tmpfs; skipped, saying so, where it cannot.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugin.index import SqliteIndex, StudyState
from tests.helpers import make_tiny_registry, write_synth_studies
from tests.plugin.listener.conftest import echo, store, wait_until
from tests.plugin.queue.serve import start_embedded_serve

pytestmark = pytest.mark.integration

SUCCESS, OUT_OF_RESOURCES = 0x0000, 0xA700
TMPFS_MB = 4


@pytest.fixture
def small_fs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A tmpfs of ``TMPFS_MB`` MiB (or the test's ``tmpfs_mb`` marker argument)."""
    marker = request.node.get_closest_marker("tmpfs_mb")
    size = marker.args[0] if marker else TMPFS_MB
    mount = tmp_path / "small-fs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path, leave: int) -> Path:
    """A filler file that leaves about ``leave`` bytes free on ``mount``."""
    free = shutil.disk_usage(mount).free
    filler = mount / "filler.bin"
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free - leave))
    return filler


def test_spool_full_refuses_with_a700_stays_up_and_resumes(tmp_path: Path, small_fs: Path) -> None:
    rows = write_synth_studies(tmp_path / "synth", patients=1, seed=53)
    paths = [Path(r["path"]) for r in rows]
    size = max(p.stat().st_size for p in paths)
    assert size * 3 < TMPFS_MB * 2**20, "the test images must be small next to the tmpfs"
    data = tmp_path / "data"
    make_tiny_registry(data / "models")
    spool = small_fs / "spool"
    proc, port = start_embedded_serve(
        data, spool_dir=str(spool), stable_age="2", min_free_disk_mb="0"
    )
    index = None
    try:
        filler = _fill(small_fs, leave=int(1.5 * size))  # room for one instance, not two
        first = [int(s.Status) for s in store(port, paths)]
        assert first.count(SUCCESS) >= 1 and OUT_OF_RESOURCES in first, first
        assert set(first) <= {SUCCESS, OUT_OF_RESOURCES}, first
        assert echo(port) == SUCCESS, "the service must stay up with its spool full"

        index = SqliteIndex(data / "index.sqlite3", readonly=True)
        study_uid = rows[0]["study_uid"]
        stored = {r["sop_instance_uid"] for r, s in zip(rows, first, strict=True) if s == SUCCESS}
        on_disk = sorted(p for p in spool.rglob("*") if p.is_file())
        assert len(on_disk) == len(stored), f"a partial or temporary file was left: {on_disk}"
        assert {i.sop_instance_uid for i in index.instances(study_uid)} == stored

        filler.unlink()  # space returns; the sender retries what was refused
        refused = [p for p, s in zip(paths, first, strict=True) if s != SUCCESS]
        again = [int(s.Status) for s in store(port, refused)]
        assert again == [SUCCESS] * len(refused), again

        def analyzed() -> int:  # the study re-planned with every view (a new version), scored
            study = index.get_study(study_uid)
            if study is None or study.state != StudyState.DONE:
                return 0
            return sum(1 for p in index.pairs(study_uid, study.version) if p.score_json)

        wait_until(lambda: analyzed() == 4, timeout=120)
        assert {i.sop_instance_uid for i in index.instances(study_uid)} == {
            r["sop_instance_uid"] for r in rows
        }
        version = index.get_study(study_uid).version
        scores = [json.loads(p.score_json) for p in index.pairs(study_uid, version)]
        assert len(scores) == 4 and all(s["status"] == "analyzed" for s in scores)
    finally:
        if index is not None:
            index.close()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        (tmp_path / "serve.err").write_text(err)
    assert proc.returncode == 0, err[-3000:]


@pytest.mark.tmpfs_mb(48)  # a study's result objects: ~15 MB (four RGB heatmap SCs)
def test_results_disk_full_waits_and_retries_until_space_returns(
    tmp_path: Path, small_fs: Path
) -> None:
    """The results folder on a nearly full tmpfs: the analysis stops on ENOSPC, leaves no
    half-written result folder, the study is not failed but waits (the reason recorded for
    `brgan status`) and is sent again every ``disk_full_retry``; once space returns it is done
    with every result object (each attempt removes what it wrote: the worker's rmtree on
    ENOSPC, so the outbox never sees a partial set)."""

    rows = write_synth_studies(tmp_path / "synth", patients=1, seed=59)
    data = tmp_path / "data"
    make_tiny_registry(data / "models")
    results = small_fs / "results"
    proc, port = start_embedded_serve(
        data, results_dir=str(results), disk_full_retry="1", min_free_disk_mb="0"
    )
    index = None
    try:
        results.mkdir(exist_ok=True)
        filler = _fill(small_fs, leave=16 * 1024)  # not even one heatmap fits
        statuses = [int(s.Status) for s in store(port, [Path(r["path"]) for r in rows])]
        assert statuses == [SUCCESS] * 4
        index = SqliteIndex(data / "index.sqlite3", readonly=True)
        study_uid = rows[0]["study_uid"]

        def disk_full_recorded() -> bool:
            return any("results disk full" in e.message for e in index.errors(20))

        wait_until(disk_full_recorded, timeout=120)
        study = index.get_study(study_uid)
        assert study.state != StudyState.FAILED, study.error
        assert not json.loads(study.result_json or "{}").get("result_files")  # nothing recorded

        filler.unlink()
        wait_until(
            lambda: (s := index.get_study(study_uid)) is not None and s.state == StudyState.DONE,
            timeout=120,
        )
        assert "results disk full" not in (index.get_study(study_uid).error or "")
        result = json.loads(index.get_study(study_uid).result_json)
        kinds = sorted(f["kind"] for f in result["result_files"])
        assert kinds.count("heatmap_sc") == 4 and {"tid1500_sr", "cad_sr", "summary_sc"} <= set(
            kinds
        )
        assert all(Path(f["path"]).stat().st_size > 0 for f in result["result_files"])
    finally:
        if index is not None:
            index.close()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        (tmp_path / "serve.err").write_text(err)
    assert proc.returncode == 0, err[-3000:]
