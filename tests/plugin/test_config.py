"""Settings precedence (defaults → TOML → env), unknown keys, secret masking, CLI output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plugin.cli.main import app
from plugin.config import ConfigError, load_settings, masked_view


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("BRGAN_"):
            monkeypatch.delenv(key)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.port == 11112
    assert settings.ae_title == "BRGAN"
    assert settings.embedded
    assert settings.spool_path == settings.data_dir / "spool"


def test_toml_overrides_defaults_and_env_overrides_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "brgan.toml"
    cfg.write_text('port = 4104\nae_title = "FROMTOML"\nallowed_calling_aets = ["ORTHANC"]\n')
    settings = load_settings(cfg)
    assert (settings.port, settings.ae_title) == (4104, "FROMTOML")
    assert settings.allowed_calling_aets == ["ORTHANC"]
    monkeypatch.setenv("BRGAN_PORT", "5104")
    settings = load_settings(cfg)
    assert (settings.port, settings.ae_title) == (5104, "FROMTOML")


def test_config_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "brgan.toml"
    cfg.write_text("stable_age = 5\n")
    monkeypatch.setenv("BRGAN_CONFIG", str(cfg))
    assert load_settings().stable_age == 5


def test_unknown_key_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "brgan.toml"
    cfg.write_text("port = 104\nstabel_age = 3\n")
    with pytest.raises(ConfigError, match="'stabel_age'"):
        load_settings(cfg)


def test_bad_value_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "brgan.toml"
    cfg.write_text("port = 70000\n")
    with pytest.raises(ConfigError, match="port"):
        load_settings(cfg)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_secrets_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRGAN_BROKER_URL", "redis://user:hunter2@redis:6379/0")
    monkeypatch.setenv("BRGAN_TLS_KEY_PASSWORD", "hunter2")
    view = masked_view(load_settings())
    assert view["broker_url"] == "redis://user:****@redis:6379/0"
    assert view["tls_key_password"] == "****"
    assert "hunter2" not in json.dumps(view)


def test_cli_config_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRGAN_BROKER_URL", "redis://:s3cret@localhost:6379/0")
    cfg = tmp_path / "brgan.toml"
    cfg.write_text("port = 4242\n")
    result = CliRunner().invoke(app, ["--config", str(cfg), "config", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["port"] == 4242
    assert "s3cret" not in result.output


def test_cli_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert "brgan-pacs" in result.output


def test_config_show_table_wraps_long_values_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """An admin copies values from the table: in a narrow terminal they wrap, never end in "…"."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("BRGAN_BROKER_URL", "redis://:secret@broker.hospital.example.org:6379/0")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert "6379/0" in result.output  # the end of the URL, which an ellipsis would cut
    assert "secret" not in result.output
