"""Start `brgan serve` as a subprocess in embedded mode (no broker), as an admin would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.plugin.listener.conftest import CALLING_AE, free_port, wait_for_port

REPO = Path(__file__).resolve().parents[3]


def start_embedded_serve(
    data: Path, *, cwd: Path = REPO, **settings: str
) -> tuple[subprocess.Popen[str], int]:
    """``brgan serve`` on a free loopback port with ``data`` as data_dir; ``settings`` are
    extra ``BRGAN_<NAME>`` values (e.g. ``WORKER_LEASE="5"``). Returns once it listens."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "BRGAN_DATA_DIR": str(data),
        "BRGAN_HOST": "127.0.0.1",
        "BRGAN_PORT": str(port),
        "BRGAN_ALLOWED_CALLING_AETS": json.dumps([CALLING_AE]),
        "BRGAN_COMPLETE_GRACE": "0",
        "BRGAN_COORDINATOR_INTERVAL": "0.2",
        **{f"BRGAN_{name.upper()}": value for name, value in settings.items()},
    }
    for key in ("BRGAN_BROKER_URL", "BRGAN_RESULT_BACKEND", "BRGAN_CONFIG"):
        env.pop(key, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin.cli.main", "serve"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_port(port)
    return proc, port


def storescu(port: int, files: list[str]) -> None:
    """dcmtk ``storescu`` of ``files`` to the listener on ``port``, as a modality would."""
    subprocess.run(
        ["storescu", "-aet", CALLING_AE, "-aec", "BRGAN", "127.0.0.1", str(port), *files],
        check=True,
        capture_output=True,
        timeout=60,
    )
