"""`brgan serve` as a real process (SIGTERM shutdown) and `brgan status` on a real index."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plugin.cli.main import app
from plugin.errors import PluginError
from plugin.index import SqliteIndex, StudyState
from tests.plugin.listener.conftest import (
    Service,
    echo,
    free_port,
    store,
    wait_for_port,
    wait_until,
)
from tests.plugin.listener.dicom_data import four_view_study, text_sr

REPO = Path(__file__).resolve().parents[3]


def test_brgan_serve_process(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "BRGAN_DATA_DIR": str(tmp_path / "data"),
        "BRGAN_HOST": "127.0.0.1",
        "BRGAN_PORT": str(port),
        "BRGAN_ALLOWED_CALLING_AETS": '["TESTSCU"]',
        "BRGAN_COMPLETE_GRACE": "0",
        "BRGAN_STABLE_AGE": "3600",
        "BRGAN_COORDINATOR_INTERVAL": "0.1",
        "BRGAN_LOG_JSON": "true",
    }
    env.pop("BRGAN_CONFIG", None)
    env.pop("BRGAN_BROKER_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin.cli.main", "serve"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_port(port)
        assert echo(port) == 0
        study = four_view_study()
        uid = study[0].StudyInstanceUID
        assert [s.Status for s in store(port, study)] == [0] * 4
        index = SqliteIndex(tmp_path / "data" / "index.sqlite3", readonly=True)
        try:
            wait_until(lambda: index.get_study(uid).state == StudyState.READY)
        finally:
            index.close()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert f"listening on 127.0.0.1:{port} as AE BRGAN" in out
    assert "embedded mode" in out and "stopped cleanly" in out
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    names = {e["event"] for e in events}
    assert {"listener_started", "instance_stored", "study_ready", "listener_stopped"} <= names
    assert "SYNTH-001" not in err and "Synthetic" not in err  # no PHI in any log line


@pytest.fixture
def cli_env(service: Service, monkeypatch: pytest.MonkeyPatch) -> Service:
    monkeypatch.setenv("BRGAN_DATA_DIR", str(service.settings.data_dir))
    monkeypatch.delenv("BRGAN_CONFIG", raising=False)
    monkeypatch.delenv("BRGAN_BROKER_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    return service


def test_status_overview_and_study(cli_env: Service) -> None:
    study = four_view_study()
    uid = study[0].StudyInstanceUID
    sr = text_sr(uid)
    store(cli_env.port, [*study, sr])
    from plugin.listener import Coordinator, CoordinatorTiming

    Coordinator(cli_env.index, cli_env.spool, CoordinatorTiming(0.0, 0.0, 7.0)).run_once()
    cli_env.index.transition(uid, StudyState.QUEUED, task_id="task-42")
    target = cli_env.index.pairs(uid)[0].target_uid
    cli_env.index.record_scores(uid, 1, {target: json.dumps({"probability": 0.125})})

    runner = CliRunner()
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "Studies by state" in result.output and "queued" in result.output
    assert uid in result.output and "Queue depth" in result.output

    result = runner.invoke(app, ["status", "--study", uid])
    assert result.exit_code == 0, result.output
    assert "task task-42" in result.output
    assert "not an image" in result.output  # the SR's reason
    assert "0.125" in result.output and "Pairs (version 1)" in result.output

    result = runner.invoke(app, ["status", "--study", uid, "--json"])
    data = json.loads(result.output)
    assert data["state"] == "queued" and len(data["pairs"]) == 4
    assert {i["view"] for i in data["images"]} == {"CC", "MLO", None}


def test_status_errors_are_clear(cli_env: Service, tmp_path: Path, monkeypatch) -> None:
    result = CliRunner().invoke(app, ["status", "--study", "1.2.3.4"])
    assert isinstance(result.exception, PluginError)
    assert "not in the index" in str(result.exception)
    monkeypatch.setenv("BRGAN_DATA_DIR", str(tmp_path / "empty"))
    result = CliRunner().invoke(app, ["status"])
    assert isinstance(result.exception, PluginError)
    assert "has `brgan serve` run" in str(result.exception)
