"""``brgan train``: trains from a TOML file, resumes, names bad keys, documents the keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from brgan_core.training import TrainingError
from plugin.cli.train_cmd import train
from tests.brgan_core.training.conftest import toml


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(train)
    return app


def test_cli_trains_and_logs(manifest: Path, tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    # a constant schedule can be extended on resume; a cosine one cannot (tested below)
    path.write_text(toml(manifest, tmp_path / "ignored", 'schedule = "constant"'), encoding="utf-8")
    out = tmp_path / "run"
    result = CliRunner().invoke(cli(), ["--config", str(path), "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "epoch 1: val AUC" in result.output and "done after 1 epochs" in result.output
    assert "cls " in result.output and "gan_t2c " in result.output
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["best"]
    assert not (tmp_path / "ignored").exists()
    resumed = CliRunner().invoke(
        cli(), ["--config", str(path), "--out-dir", str(out), "--epochs", "2", "--resume"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert len((out / "log.jsonl").read_text().splitlines()) == 2


def test_cli_refuses_to_extend_a_cosine_schedule(manifest: Path, tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(toml(manifest, tmp_path / "ignored"), encoding="utf-8")
    out = tmp_path / "run"
    assert CliRunner().invoke(cli(), ["--config", str(path), "--out-dir", str(out)]).exit_code == 0
    resumed = CliRunner().invoke(
        cli(), ["--config", str(path), "--out-dir", str(out), "--epochs", "2", "--resume"]
    )
    assert resumed.exit_code != 0
    assert "cosine schedule of the run there spans 1 epochs" in str(resumed.exception)


def test_cli_bad_config_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text("[model]\nbackbon = 'tiny'\n", encoding="utf-8")
    result = CliRunner().invoke(cli(), ["--config", str(path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, TrainingError)
    assert "model.backbon: unknown" in str(result.exception)


def test_cli_help_documents_the_keys() -> None:
    result = CliRunner().invoke(cli(), ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for key in ("patience", "lr_d", "max_steps_per_epoch", "split_seed", "weight_cyc_c", "preset"):
        assert key in result.output, key


def test_registered_in_brgan_and_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from plugin.cli.main import main

    path = tmp_path / "t.toml"
    path.write_text("epochs = 0\n", encoding="utf-8")
    with pytest.raises(SystemExit) as stop:
        main(["train", "--config", str(path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "epochs must be an integer >= 1" in err and "Traceback" not in err
