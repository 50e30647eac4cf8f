"""The production shape on one machine, for the security tests: a password-protected Redis of
the test's own, ``brgan serve --no-embedded-worker`` and one ``brgan worker`` as separate
processes, every log written to a file the tests read back, DEBUG logging on (the most a log
can say)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from plugin.config import Settings
from tests.helpers import make_tiny_registry
from tests.plugin.listener.conftest import CALLING_AE, free_port, wait_for_port
from tests.security.redis_server import OwnRedis

REPO = Path(__file__).resolve().parents[2]


def http_get(port: int, path: str) -> tuple[int, str]:
    """``(status, body)`` of ``GET http://127.0.0.1:port/path``."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            return reply.status, reply.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


@dataclass
class Chain:
    """The running processes, their settings and their log files."""

    root: Path
    redis: OwnRedis
    env: dict[str, str]
    port: int
    metrics_port: int
    worker_metrics_port: int
    model: tuple[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def settings(self) -> Settings:
        """The same settings the processes run with (for in-test clients)."""
        return Settings(
            data_dir=self.data, broker_url=self.env["BRGAN_BROKER_URL"], host="127.0.0.1"
        )

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def logs(self) -> dict[str, str]:
        """Every log file's text by name (what the processes wrote so far)."""
        return {
            p.name: p.read_text(encoding="utf-8", errors="replace")
            for p in sorted(self.root.glob("*.log"))
        }

    def cli(self, *args: str) -> str:
        """``brgan ARGS`` as a separate process with the chain's environment; its output."""
        run = subprocess.run(
            [sys.executable, "-m", "plugin.cli.main", *args],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        return run.stdout + run.stderr

    def start(self) -> None:
        self.procs["serve"] = self._spawn("serve", "serve", "--no-embedded-worker")
        self.procs["worker"] = self._spawn("worker", "worker", "--pool", "solo", "--loglevel",
                                           "DEBUG")  # fmt: skip
        wait_for_port(self.port, timeout=60)
        deadline = time.monotonic() + 120
        while http_get_or_none(self.worker_metrics_port, "/readyz") != 200:
            if time.monotonic() > deadline or self.procs["worker"].poll() is not None:
                raise AssertionError("worker not ready:\n" + self.logs()["worker.log"][-3000:])
            time.sleep(0.2)

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with self.log(name).open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "plugin.cli.main", *args],
                cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def stop(self) -> None:
        """SIGTERM every process and wait (idempotent)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def http_get_or_none(port: int, path: str) -> int | None:
    try:
        return http_get(port, path)[0]
    except OSError:
        return None


def make_chain(root: Path, redis: OwnRedis) -> Chain:
    """Settings and a tiny registered model for a chain under ``root`` (not started)."""
    data = root / "data"
    model = make_tiny_registry(data / "models")
    port, metrics, worker_metrics = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRGAN_")}
    env.update(
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
        BRGAN_DATA_DIR=str(data),
        BRGAN_BROKER_URL=redis.url(),
        BRGAN_HOST="127.0.0.1",
        BRGAN_PORT=str(port),
        BRGAN_ALLOWED_CALLING_AETS=json.dumps([CALLING_AE]),
        BRGAN_COMPLETE_GRACE="0",
        BRGAN_STABLE_AGE="2",
        BRGAN_COORDINATOR_INTERVAL="0.2",
        BRGAN_METRICS_PORT=str(metrics),
        BRGAN_WORKER_METRICS_PORT=str(worker_metrics),
        BRGAN_LOG_LEVEL="DEBUG",
    )
    return Chain(root, redis, env, port, metrics, worker_metrics, model)
