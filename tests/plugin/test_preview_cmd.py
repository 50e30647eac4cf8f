"""``brgan preview``: PNGs per DICOM file, one clear line per failure, exit status."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from plugin.cli.main import app
from plugin.cli.preview_cmd import find_dicom_files, parse_size
from tests.brgan_core.preprocess.dicom_factory import make_ds, phantom, write


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    left, _ = phantom((120, 90), seed=1)
    right, _ = phantom((120, 90), chest_wall="right", seed=2)
    write(make_ds(left, ImageLaterality="L", PatientOrientation=["A", "F"]), src / "l_mlo.dcm")
    write(make_ds(right, ImageLaterality="R"), src / "sub" / "r_mlo.dcm")  # no orientation
    (src / "bad.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
    (src / "README.md").write_text("not an image")
    return src


def test_preview_writes_pngs_and_reports_failures(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["preview", str(folder), "--out", str(out), "--size", "64x52"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["l_mlo.png", "r_mlo.png"]
    with Image.open(out / "l_mlo.png") as png:
        assert png.mode == "RGB" and png.width > png.height
    text = result.output
    bad_lines = [line for line in text.splitlines() if "bad.dcm" in line]
    assert len(bad_lines) == 1 and "cannot decode image" in bad_lines[0]
    assert "2 ok, 1 failed" in text
    assert "README" not in text


def test_preview_exit_1_when_nothing_succeeds(folder: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["preview", str(folder / "bad.dcm"), "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "0 ok, 1 failed" in result.output


def test_preview_no_dicom_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["preview", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "no DICOM files" in result.output


def test_bad_size_is_a_usage_error(folder: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["preview", str(folder), "--out", str(tmp_path), "--size", "big"]
    )
    assert result.exit_code == 2


def test_helpers(folder: Path) -> None:
    assert parse_size("512x416") == (512, 416)
    names = [p.name for p in find_dicom_files([folder])]
    assert names == ["bad.dcm", "l_mlo.dcm", "r_mlo.dcm"]
    assert find_dicom_files([folder / "README.md"]) == [folder / "README.md"]


def test_cli_module_does_not_import_heavy_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys, plugin.cli.main; "
        "print(sorted(m for m in ('torch', 'pydicom', 'SimpleITK', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "torch" not in out.stdout and "SimpleITK" not in out.stdout, out.stdout + out.stderr
