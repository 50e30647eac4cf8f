"""A real Orthanc for tests: a config derived from ``deploy/orthanc/orthanc.json``, a process
on free loopback ports, and a small REST client (stdlib ``urllib``; no extra dependency)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]
ORTHANC_DIR = REPO_ROOT / "deploy" / "orthanc"
ORTHANC_CONFIG = ORTHANC_DIR / "orthanc.json"
ROUTING_LUA = ORTHANC_DIR / "route-mammo.lua"
DEBIAN_ORTHANC = "/usr/sbin/Orthanc"

T = TypeVar("T")


def orthanc_binary() -> str | None:
    """The Orthanc executable (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("Orthanc")
    if found:
        return found
    return DEBIAN_ORTHANC if Path(DEBIAN_ORTHANC).is_file() else None


def load_orthanc_config(path: Path = ORTHANC_CONFIG) -> dict[str, Any]:
    """Parse the deploy config; its comments are whole lines starting with ``//``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return json.loads("\n".join(line for line in lines if not line.lstrip().startswith("//")))


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all bound at once, so never the same twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def poll(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T:
    """Call ``probe`` until it returns something truthy; ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Orthanc:
    """A running Orthanc; ``stop()`` ends it."""

    process: subprocess.Popen[bytes]
    http_port: int
    dicom_port: int
    aet: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def request(self, method: str, path: str, body: bytes | None = None) -> Any:
        """One REST call; the decoded JSON answer (None for an empty one)."""
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/octet-stream")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise AssertionError(f"Orthanc {method} {path}: HTTP {exc.code}: {detail}") from exc
        return json.loads(raw) if raw.strip() else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def upload(self, path: Path) -> dict[str, Any]:
        """POST one DICOM file to ``/instances``; Orthanc's answer (ID, ParentStudy, Status)."""
        answer = self.request("POST", "/instances", path.read_bytes())
        assert answer["Status"] == "Success", f"Orthanc did not store {path}: {answer}"
        return answer

    def lookup(self, uid: str) -> str | None:
        """Orthanc's resource ID for a DICOM UID, or None."""
        found = self.request("POST", "/tools/lookup", uid.encode("ascii"))
        return found[0]["ID"] if found else None

    def last_change(self) -> int:
        return int(self.get("/changes?last")["Last"])

    def job_ids(self) -> set[str]:
        return set(self.get("/jobs"))

    def wait_stable(self, study_id: str, since: int, timeout: float = 20.0) -> None:
        """Wait for Orthanc's StableStudy change of ``study_id`` logged after change ``since``.

        The Lua ``OnStableStudy`` callback is queued by the same event.
        """

        def seen() -> bool:
            answer = self.get(f"/changes?since={since}&limit=1000")
            return any(
                c["ChangeType"] == "StableStudy" and c["ID"] == study_id for c in answer["Changes"]
            )

        poll(f"Orthanc to mark study {study_id} stable", seen, timeout)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def routing_config(
    work_dir: Path, *, listener_port: int, http_port: int, dicom_port: int, stable_age: int
) -> dict[str, Any]:
    """The deploy config with test-only changes: temp storage, free ports, this repo's Lua."""
    config = load_orthanc_config()
    storage = work_dir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config.update(
        Name="brgan-test",
        StorageDirectory=str(storage),
        IndexDirectory=str(storage),
        TemporaryDirectory=str(work_dir),
        HttpPort=http_port,
        DicomPort=dicom_port,
        StableAge=stable_age,
        LuaScripts=[str(ROUTING_LUA)],
        SaveJobs=False,
        JobsHistorySize=100,
        DicomScuTimeout=10,
    )
    config["DicomModalities"]["brgan"].update(Host="127.0.0.1", Port=listener_port)
    config["Plugins"] = [p for p in config.get("Plugins", []) if Path(p).exists()]
    return config


def start_orthanc(
    work_dir: Path, *, listener_port: int, stable_age: int = 1, timeout: float = 30.0
) -> Orthanc:
    """Start Orthanc with :func:`routing_config`; returns once its REST API answers."""
    binary = orthanc_binary()
    if binary is None:
        raise FileNotFoundError("Orthanc binary not found")
    http_port, dicom_port = free_ports(2)
    config = routing_config(
        work_dir,
        listener_port=listener_port,
        http_port=http_port,
        dicom_port=dicom_port,
        stable_age=stable_age,
    )
    config_path = work_dir / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    log_path = work_dir / "orthanc.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, "--verbose", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=work_dir,
        )
    orthanc = Orthanc(process, http_port, dicom_port, config["DicomAet"], log_path)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(
                f"Orthanc exited with status {process.returncode}:\n{orthanc.log_tail()}"
            )
        try:
            return orthanc.get("/system")["HttpPort"] == http_port
        except (OSError, AssertionError):
            return False

    try:
        poll(f"Orthanc's REST API on 127.0.0.1:{http_port}", answers, timeout)
    except BaseException:
        orthanc.stop()
        raise
    return orthanc
