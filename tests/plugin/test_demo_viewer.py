"""`brgan demo --viewer` (issue 12 §3): the demo through a real Orthanc, the results in OHIF.

- The command as a person runs it (a subprocess, stopped with Ctrl-C = SIGINT): it starts
  Orthanc with the deploy configuration on the given ports, the studies go into Orthanc's DICOM
  port and the routing script sends them to the listener; we check through Orthanc's REST API
  and QIDO-RS (through the OHIF origin, as the viewer asks) that the study holds the result
  objects, and that the printed OHIF URL answers.
- An Orthanc already running is reused and left running, its modalities put back; one without
  the routing script gets the study sent through its REST API.
- What is missing (Orthanc, its DICOMweb plugin, OHIF) is named with the command that installs
  it, as one line, no traceback; so is a port held by something that is not an Orthanc.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from plugin.cli import demo_viewer
from plugin.viewer import ohif, orthanc
from tests.deploy.orthanc import REPO_ROOT, Orthanc, free_ports, orthanc_binary
from tests.helpers import make_tiny_registry
from tests.plugin.cli import run_cli
from tests.viewer.harness import DICOMWEB_PLUGIN, OHIF_DIST, start_dicomweb_orthanc

pytestmark = pytest.mark.integration

URL = re.compile(r"(http://127\.0\.0\.1:\d+)/viewer\?StudyInstanceUIDs=([0-9.]+)")
MG = "1.2.840.10008.5.1.4.1.1.1.2"
SR = "1.2.840.10008.5.1.4.1.1.88.33"
CAD = "1.2.840.10008.5.1.4.1.1.88.50"
SC = "1.2.840.10008.5.1.4.1.1.7"


def _need_viewer_tools() -> None:
    if orthanc_binary() is None or not DICOMWEB_PLUGIN.is_file():
        pytest.skip("Orthanc and its DICOMweb plugin are needed (scripts/test installs them)")
    if not (OHIF_DIST / "index.html").is_file():
        pytest.skip(f"OHIF is not in {OHIF_DIST} (scripts/test fetches it)")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"BRGAN_BROKER_URL", "BRGAN_CONFIG"}}
    env.update(
        BRGAN_DATA_DIR=str(tmp_path / "base"),
        BRGAN_REGISTRY_DIR=str(tmp_path / "models"),
        BRGAN_METRICS_PORT="0",  # no fixed ports: other tests may hold 9101/9102
        BRGAN_WORKER_METRICS_PORT="0",
        PYTHONUNBUFFERED="1",
    )
    return env


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=20) as resp:
        return resp.status, resp.read()


def _classes_in_orthanc(server: Orthanc, study_uid: str) -> dict[str, int]:
    """SOP Class UID → count of the study's instances in Orthanc; one PatientID throughout."""
    found = server.request(
        "POST",
        "/tools/find",
        json.dumps({"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}}).encode(),
    )
    counts: dict[str, int] = {}
    patients = set()
    for instance_id in found:
        tags = server.get(f"/instances/{instance_id}/tags?simplify")
        counts[tags["SOPClassUID"]] = counts.get(tags["SOPClassUID"], 0) + 1
        patients.add(tags["PatientID"])
    assert len(patients) == 1, patients
    return counts


def _assert_results(counts: dict[str, int]) -> None:
    # The four mammograms, the TID 1500 SR, the Mammography CAD SR, four heatmap SCs + summary.
    assert counts == {MG: 4, SR: 1, CAD: 1, SC: 5}, counts


def test_demo_viewer_routes_through_orthanc_and_serves_ohif_until_ctrl_c(tmp_path: Path) -> None:
    _need_viewer_tools()
    make_tiny_registry(tmp_path / "models")
    http_port, dicom_port = free_ports(2)
    out = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin.cli.main", "demo", "--viewer", "--out", str(out),
         "--studies", "1", "--seed", "5", "--timeout", "120",
         "--orthanc-http-port", str(http_port), "--orthanc-dicom-port", str(dicom_port)],
        cwd=REPO_ROOT, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    lines: list[str] = []
    serving = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Serving OHIF until Ctrl-C" in line:
                serving.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 150
        while not serving.wait(0.5):
            assert proc.poll() is None, "".join(lines)[-4000:]
            assert time.monotonic() < deadline, "".join(lines)[-4000:]
        shown = "".join(lines)
        assert "starting Orthanc" in shown
        assert "7 of 7 result objects of these studies held" in shown, shown[-4000:]
        assert "DEMO MODEL" in shown and "FOR RESEARCH USE ONLY" in shown
        urls = URL.findall(shown)
        assert len(urls) == 1, shown[-3000:]
        origin, study_uid = urls[0]
        # The printed URL answers with the OHIF page; its config points OHIF at the proxy.
        status, page = _get(f"{origin}/viewer?StudyInstanceUIDs={study_uid}")
        assert status == 200 and b"<title>OHIF Viewer" in page
        status, config = _get(f"{origin}/app-config.js")
        assert status == 200 and f"{origin}/dicom-web".encode() in config
        # QIDO-RS as OHIF asks it (same origin): the result series are in the study.
        status, body = _get(f"{origin}/dicom-web/studies/{study_uid}/series")
        modalities = sorted(s["00080060"]["Value"][0] for s in json.loads(body))
        assert status == 200 and modalities.count("SR") == 2 and modalities.count("OT") == 2
        # Orthanc's REST API: routed in by the Lua script, results stored back.
        running = orthanc.attach(http_port)
        assert running is not None and running.dicom_port == dicom_port
        _assert_results(_classes_in_orthanc(running, study_uid))
        assert set(running.get("/modalities")) == {"brgan", "brgan-demo"}
        # Ctrl-C ends it cleanly: exit status 0, and the Orthanc it started is gone.
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, "".join(lines)[-3000:]
        reader.join(10)
        assert "stopped (Ctrl-C)" in "".join(lines)
        assert "Traceback" not in "".join(lines)
        assert orthanc.attach(http_port) is None
        assert any((out / "viewer" / "png").glob("*.png"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_demo_viewer_reuses_a_running_orthanc_and_routes_without_its_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _need_viewer_tools()
    make_tiny_registry(tmp_path / "models")
    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    # No routing script in this Orthanc: the demo asks it to send the study after the grace.
    monkeypatch.setattr(demo_viewer, "ROUTE_GRACE_S", 1.0)
    running = start_dicomweb_orthanc(tmp_path / "orthanc")
    try:
        elsewhere = {"AET": "ELSEWHERE", "Host": "127.0.0.1", "Port": 11112}
        running.request("PUT", "/modalities/brgan", json.dumps(elsewhere).encode())
        code, shown = run_cli(
            ["demo", "--viewer", "--no-wait", "--out", str(tmp_path / "demo"), "--studies", "1",
             "--seed", "6", "--timeout", "120", "--orthanc-http-port", str(running.http_port)],
            capsys,
        )  # fmt: skip
        assert code == 0, shown[-4000:]
        assert f"reusing the Orthanc on {running.url}" in shown
        assert "did not route 1 study" in shown
        assert "7 of 7 result objects of these studies held" in shown, shown[-4000:]
        urls = URL.findall(shown)
        assert len(urls) == 1
        _assert_results(_classes_in_orthanc(running, urls[0][1]))
        # Left running, its modalities as they were.
        assert running.process is not None and running.process.poll() is None
        modalities = running.get("/modalities?expand")
        assert set(modalities) == {"brgan"}
        assert (modalities["brgan"]["AET"], modalities["brgan"]["Port"]) == ("ELSEWHERE", 11112)
    finally:
        running.stop()


def test_demo_viewer_names_what_is_missing_and_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BRGAN_DATA_DIR", str(tmp_path / "base"))
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no Orthanc on it
    monkeypatch.setattr(orthanc, "DEBIAN_ORTHANC", str(tmp_path / "sbin" / "Orthanc"))
    monkeypatch.setattr(ohif, "OHIF_DIST", tmp_path / "no-ohif" / "dist")
    (port,) = free_ports(1)
    code, shown = run_cli(["demo", "--viewer", "--orthanc-http-port", str(port)], capsys)
    assert code == 2, shown
    assert "Traceback" not in shown
    message = " ".join(shown.split())
    assert "brgan demo --viewer needs the OHIF viewer 3.13.2" in message
    assert "npm pack @ohif/app@3.13.2" in message
    assert "Orthanc (no `Orthanc` on PATH" in message
    assert "sudo apt-get install orthanc orthanc-dicomweb" in message
    assert "Install them with `./scripts/viewer --install`" in message
    assert "or run `brgan demo` without --viewer" in message
    assert not (tmp_path / "base").exists() or not any((tmp_path / "base").iterdir())

    # Orthanc there but not its DICOMweb plugin (OHIF there): named on its own.
    monkeypatch.setattr(orthanc, "DEBIAN_ORTHANC", sys.executable)
    monkeypatch.setattr(orthanc, "DICOMWEB_PLUGIN", tmp_path / "no-plugin.so")
    monkeypatch.setattr(ohif, "OHIF_DIST", tmp_path / "ohif")
    (tmp_path / "ohif").mkdir()
    (tmp_path / "ohif" / "index.html").write_text("<html></html>")
    code, shown = run_cli(["demo", "--viewer", "--orthanc-http-port", str(port)], capsys)
    message = " ".join(shown.split())
    assert code == 2 and "Traceback" not in shown
    assert "needs Orthanc's DICOMweb plugin" in message and "orthanc-dicomweb" in message
    assert "OHIF viewer" not in message


def test_demo_viewer_refuses_a_port_held_by_something_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BRGAN_DATA_DIR", str(tmp_path / "base"))

    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        code, shown = run_cli(["demo", "--viewer", "--orthanc-http-port", str(port)], capsys)
    finally:
        server.shutdown()
        server.server_close()
    message = " ".join(shown.split())
    assert code == 2 and "Traceback" not in shown
    assert f"something other than an Orthanc without a password answers on 127.0.0.1:{port}" in (
        message
    )
    assert "--orthanc-http-port" in message
