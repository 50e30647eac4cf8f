"""`brgan serve` as a real process (SIGTERM shutdown) and `brgan status` on a real index."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from plugin.cli.main import app
from plugin.errors import PluginError
from plugin.index import SqliteIndex, StudyState
from tests.plugin.listener.conftest import (
    Service,
    echo,
    free_port,
    scu,
    store,
    wait_for_port,
    wait_until,
)
from tests.plugin.listener.dicom_data import four_view_study, mg_image, save, text_sr

REPO = Path(__file__).resolve().parents[3]


@dataclass
class ServeProcess:
    proc: subprocess.Popen[str]
    port: int
    data_dir: Path

    def terminate(self) -> tuple[str, str]:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.communicate(timeout=30)

    def peak_rss_kb(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1])


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[ServeProcess]:
    """`python -m plugin.cli.main serve` on a free port, JSON logs; SIGTERM at the end."""
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
        "BRGAN_MAX_PDU_SIZE": "0",
    }
    env.pop("BRGAN_CONFIG", None)
    env.pop("BRGAN_BROKER_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin.cli.main", "serve"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield ServeProcess(proc, port, tmp_path / "data")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_brgan_serve_process(serve_process: ServeProcess) -> None:
    port = serve_process.port
    assert echo(port) == 0
    study = four_view_study()
    uid = study[0].StudyInstanceUID
    assert [s.Status for s in store(port, study)] == [0] * 4
    index = SqliteIndex(serve_process.data_dir / "index.sqlite3", readonly=True)
    try:
        wait_until(lambda: index.get_study(uid).state == StudyState.READY)
    finally:
        index.close()
    out, err = serve_process.terminate()
    assert serve_process.proc.returncode == 0, err
    assert f"listening on 127.0.0.1:{port} as AE BRGAN" in out
    assert "embedded mode" in out and "stopped cleanly" in out
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    names = {e["event"] for e in events}
    assert {"listener_started", "instance_stored", "study_ready", "listener_stopped"} <= names
    assert "SYNTH-001" not in err and "Synthetic" not in err  # no PHI in any log line


@pytest.mark.slow
def test_big_dataset_keeps_memory_flat(serve_process: ServeProcess, tmp_path: Path) -> None:
    """A 96 MiB instance (tomosynthesis-sized) via dcmtk storescu: streamed to disk."""
    if shutil.which("storescu") is None:
        pytest.skip("dcmtk not installed")
    big = mg_image(generate_uid(), "L", "CC", rows=2, columns=2)
    big.Rows, big.Columns = 4096, 12288
    big.PixelData = bytes(4096 * 12288 * 2)
    path = save(big, tmp_path / "big.dcm")
    del big
    run = subprocess.run(
        ["storescu", "-aet", "TESTSCU", "-aec", "BRGAN", "127.0.0.1", str(serve_process.port),
         str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    peak_mb = serve_process.peak_rss_kb() / 1024
    stored = list((serve_process.data_dir / "spool").glob("*/*.dcm"))
    assert len(stored) == 1 and stored[0].stat().st_size > 96 * 1024 * 1024
    assert peak_mb < 200, f"listener peak RSS {peak_mb:.0f} MB for a 96 MiB data set"
    serve_process.terminate()


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
    from plugin.coordinator import Coordinator, CoordinatorTiming

    Coordinator(cli_env.index, cli_env.spool, CoordinatorTiming(0.0, 0.0, 7.0)).run_once()
    cli_env.index.transition(uid, StudyState.QUEUED, task_id="task-42")
    first, second = (p.target_uid for p in cli_env.index.pairs(uid)[:2])
    cli_env.index.record_scores(
        uid,
        1,
        {
            first: json.dumps({"status": "analyzed", "p_malignant": 0.125}),
            second: json.dumps({"status": "not analyzed", "reason": "decode failed"}),
        },
    )
    cli_env.index.record_result(uid, 1, json.dumps({"exam": 0.125, "breasts": {"L": 0.125}}))

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
    assert "not analyzed: decode failed" in result.output
    assert "Result: exam 12.5 %" in result.output

    result = runner.invoke(app, ["status", "--study", uid, "--json"])
    data = json.loads(result.output)
    assert data["state"] == "queued" and len(data["pairs"]) == 4
    assert data["result"]["exam"] == 0.125
    assert {i["view"] for i in data["images"]} == {"CC", "MLO", None}


def test_status_errors_are_clear(cli_env: Service, tmp_path: Path, monkeypatch) -> None:
    result = CliRunner().invoke(app, ["status", "--study", "1.2.3.4"])
    assert isinstance(result.exception, PluginError)
    assert "not in the index" in str(result.exception)
    monkeypatch.setenv("BRGAN_DATA_DIR", str(tmp_path / "empty"))
    result = CliRunner().invoke(app, ["status"])
    assert isinstance(result.exception, PluginError)
    assert "has `brgan serve` run" in str(result.exception)


def test_serve_fails_clearly_on_a_busy_port_and_bad_tls(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRGAN_")}
    env.update(BRGAN_DATA_DIR=str(tmp_path / "data"), BRGAN_HOST="127.0.0.1")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-m", "plugin.cli.main", "serve", "--port", str(port)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert run.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in run.stderr and "Traceback" not in run.stderr
    env["BRGAN_TLS_CERT"] = str(tmp_path / "missing.pem")
    env["BRGAN_TLS_KEY"] = str(tmp_path / "missing.key")
    run = subprocess.run(
        [sys.executable, "-m", "plugin.cli.main", "serve", "--port", "0"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "cannot load TLS files" in run.stderr and "Traceback" not in run.stderr


def test_pdu_limit_is_announced(service_factory) -> None:
    svc = service_factory(max_pdu_size=32768)
    ae = scu()
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", svc.port, ae_title="BRGAN")
    try:
        assert assoc.acceptor.maximum_length == 32768
    finally:
        assoc.release()
