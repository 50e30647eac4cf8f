"""The listener process never imports torch and stays small (DESIGN.md, "Who owns state")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

SCRIPT = r"""
import sys, tempfile, threading
from pathlib import Path
import plugin.cli.main  # what `brgan serve` imports
from plugin.config import Settings
from plugin.coordinator.service import run_service
import plugin.coordinator.dispatcher  # the coordinator's queue side (serve imports it)
from tests.plugin.listener.conftest import store
from tests.plugin.listener.dicom_data import four_view_study

data = Path(tempfile.mkdtemp())
settings = Settings(data_dir=data, host="127.0.0.1", port=0, allowed_calling_aets=["TESTSCU"],
                    complete_grace=0, stable_age=0, coordinator_interval=0.05)
stop = threading.Event()
ports = []
ready = threading.Event()
def started(info):
    ports.append(info.port)
    ready.set()
t = threading.Thread(target=run_service, args=(settings, stop), kwargs={"on_started": started})
t.start()
assert ready.wait(30)
statuses = [s.Status for s in store(ports[0], four_view_study())]
stop.set()
t.join(30)
rss_kb = int([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1])
worker = any(m.startswith("plugin.worker") for m in sys.modules)
print(statuses, "torch" in sys.modules or worker, rss_kb)
"""


def test_listener_process_does_not_import_torch() -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    statuses, torch_loaded, rss_kb = run.stdout.strip().splitlines()[-1].rsplit(" ", 2)
    assert statuses == "[0, 0, 0, 0]"
    assert torch_loaded == "False", "the listener imported torch or plugin.worker"
    assert int(rss_kb) < 300 * 1024
