"""`brgan analyze`: the service's analysis on a folder, offline (no listener, queue, index)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from plugin.spool import safe_name
from tests.helpers import make_tiny_registry, write_synth_studies
from tests.plugin.cli import run_cli


def test_analyze_a_folder_writes_objects_and_prints_a_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    make_tiny_registry(data / "models")
    monkeypatch.setenv("BRGAN_DATA_DIR", str(data))
    rows = write_synth_studies(tmp_path / "in", patients=1, seed=8)
    # a unilateral extra study and a stray file: reported, never fatal
    lone = write_synth_studies(tmp_path / "lone", patients=1, seed=9)
    left = [r for r in lone if r["laterality"] == "L"]
    folder = tmp_path / "in"
    for r in left:
        target = folder / "lone" / Path(r["path"]).name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(Path(r["path"]).read_bytes())
    (folder / "notes.txt").write_text("not DICOM")
    out = tmp_path / "out"

    code, shown = run_cli(["analyze", str(folder), "--out", str(out)], capsys)

    assert code == 0, shown
    study_dir = out / safe_name(rows[0]["study_uid"])
    kinds = sorted(p.name.split("-")[0].removesuffix(".dcm") for p in study_dir.glob("*.dcm"))
    assert kinds.count("heatmap_sc") == 4 and "tid1500_sr" in kinds and "summary_sc" in kinds
    sr = pydicom.dcmread(study_dir / "tid1500_sr.dcm")
    assert sr.StudyInstanceUID == rows[0]["study_uid"]
    assert "not readable DICOM, skipped" in shown, shown
    assert "no contralateral" in shown  # the unilateral study's images, with their reason
    assert " %" in shown and "DEMO MODEL" in shown
    assert (out / safe_name(left[0]["study_uid"])).is_dir()  # its not-analyzed SR and summary
