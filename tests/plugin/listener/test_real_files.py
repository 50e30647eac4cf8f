"""The real mammography fixtures sent with dcmtk storescu: stored as sent, classified."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.plugin.listener.conftest import Service


@pytest.mark.integration
def test_real_files_are_stored_unchanged_and_classified(
    service: Service, real_mg_dir: Path
) -> None:
    if shutil.which("storescu") is None:
        pytest.skip("dcmtk not installed")
    files = sorted(real_mg_dir.glob("*.dcm"))
    # storescu proposes the file's syntax only when told which (plus uncompressed fallbacks in
    # the same context): the listener must pick the compressed one, or storescu cannot send.
    proposal = {"1.2.840.10008.1.2.4.70": "-xs", "1.2.840.10008.1.2.4.91": "-xw",
                "1.2.840.10008.1.2.4.51": "-xx"}  # fmt: skip
    for path in files:
        ts = dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
        run = subprocess.run(
            ["storescu", proposal.get(ts, "-x="), "-aet", "TESTSCU", "-aec", "BRGAN",
             "127.0.0.1", str(service.port), str(path)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, f"{path.name}: {run.stderr}"
    rows = {}
    for path in files:
        original = dcmread(path, force=True)
        [row] = [
            r
            for s in service.index.studies()
            for r in service.index.instances(s.study_uid)
            if r.sop_instance_uid == original.SOPInstanceUID
        ]
        rows[path.name] = row
        stored = dcmread(row.path)
        assert row.transfer_syntax_uid == original.file_meta.TransferSyntaxUID  # no transcoding
        assert stored.PixelData == original.PixelData
    assert (rows["GH133.dcm"].laterality, rows["GH133.dcm"].view) == ("R", "MLO")
    assert rows["GH133.dcm"].usable
    assert not rows["OutOfBoundsOverlay.dcm"].usable
    assert "STEREO" in rows["OutOfBoundsOverlay.dcm"].reason
    for name in ("MG1_J2KI.dcm", "MG1_JPLY.dcm"):
        assert not rows[name].usable and rows[name].reason
