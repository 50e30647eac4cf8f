from __future__ import annotations

import csv
from pathlib import Path

import pydicom
from typer.testing import CliRunner

from plugin.cli.main import app

runner = CliRunner()


def test_help_explains_presets_and_outputs() -> None:
    result = runner.invoke(app, ["synth", "--help"])
    assert result.exit_code == 0
    for word in ("bench-cpu", "bench-gpu", "clinical", "manifest.csv", "--monochrome1", "--force"):
        assert word in result.output


def test_writes_dicom_files_manifest_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "studies"
    result = runner.invoke(
        app,
        ["synth", "--patients", "2", "--preset", "bench-cpu", "--seed", "7", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*/*.dcm"))
    assert len(files) == 8
    assert "wrote 8 DICOM files for 2 patients" in result.output
    assert "manifest.csv" in result.output
    with (out / "manifest.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 8
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert ds.Rows == 256


def test_options_reach_the_files(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "synth",
            "-n",
            "1",
            "--preset",
            "bench-cpu",
            "--out",
            str(tmp_path / "o"),
            "--monochrome1",
            "--legacy-codes",
            "--transfer-syntax",
            "rle",
        ],
    )
    assert result.exit_code == 0, result.output
    ds = pydicom.dcmread(next((tmp_path / "o").glob("*/L_CC.dcm")))
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert ds.ViewCodeSequence[0].CodingSchemeDesignator == "SRT"
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"


def test_refuses_a_non_empty_out_dir_without_force(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("precious")
    args = ["synth", "-n", "1", "--preset", "bench-cpu", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "not empty" in str(result.exception) or "not empty" in result.output
    assert not list(tmp_path.glob("*/*.dcm"))
    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "keep.txt").read_text() == "precious"
    assert len(list(tmp_path.glob("*/*.dcm"))) == 4


def test_unknown_preset_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", "--preset", "huge", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
