"""`brgan demo`: the chain on one machine, results back in a stand-in PACS (a real SCP)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from tests.helpers import make_tiny_registry
from tests.plugin.cli import run_cli

pytestmark = pytest.mark.integration


def test_demo_sends_studies_and_shows_what_came_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_tiny_registry(tmp_path / "models")
    monkeypatch.setenv("BRGAN_DATA_DIR", str(tmp_path / "base"))
    monkeypatch.setenv("BRGAN_REGISTRY_DIR", str(tmp_path / "models"))
    out = tmp_path / "demo"
    code, shown = run_cli(["demo", "--out", str(out), "--studies", "2", "--seed", "7"], capsys)
    assert code == 0, shown[-3000:]
    received = sorted((out / "pacs").rglob("*.dcm"))
    assert len(received) == 2 * 7  # per study: 2 SRs, 4 heatmap SCs, 1 summary SC
    classes = {pydicom.dcmread(p, stop_before_pixels=True).SOPClassUID for p in received}
    assert classes == {
        "1.2.840.10008.5.1.4.1.1.88.33",
        "1.2.840.10008.5.1.4.1.1.88.50",
        "1.2.840.10008.5.1.4.1.1.7",
    }
    pngs = sorted((out / "png").glob("*.png"))
    assert len(pngs) == 8 and all(p.stat().st_size > 1000 for p in pngs)
    assert "14 objects received in this run, 14 held" in shown
    assert "DEMO MODEL" in shown and "FOR RESEARCH USE ONLY" in shown
    assert shown.count(" %") >= 8  # every image's score
