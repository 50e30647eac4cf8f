"""A real Orthanc on loopback: a config derived from ``deploy/orthanc/orthanc.json``, the process
(Debian package ``orthanc`` + ``orthanc-dicomweb``), and a small REST client (stdlib ``urllib``;
no extra dependency).

Used by ``brgan demo --viewer``, ``scripts/viewer``, the tests and the benchmarks. REST errors
raise :class:`OrthancHttpError`, an ``AssertionError`` so that the tests and benchmarks written
against this client read a refused call as a failed check.
"""

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
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")

T = TypeVar("T")


class OrthancHttpError(AssertionError):
    """Orthanc answered a REST call with an HTTP error (``status``)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class NotAnOrthancError(Exception):
    """Something answers on the port, but not as an Orthanc REST API without authentication."""


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


def port_is_free(port: int) -> bool:
    """Whether a TCP server could bind 127.0.0.1:``port`` now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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
    """An Orthanc; ``stop()`` ends it when ``process`` is ours (None: one already running)."""

    process: subprocess.Popen[bytes] | None
    http_port: int
    dicom_port: int
    aet: str
    log_path: Path | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _open(self, method: str, path: str, body: bytes | None, timeout: float) -> bytes:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/octet-stream")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise OrthancHttpError(
                f"Orthanc {method} {path}: HTTP {exc.code}: {detail}", exc.code
            ) from exc

    def request(self, method: str, path: str, body: bytes | None = None) -> Any:
        """One REST call; the decoded JSON answer (None for an empty one)."""
        raw = self._open(method, path, body, timeout=10)
        return json.loads(raw) if raw.strip() else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def download(self, path: str) -> bytes:
        """The raw body of a GET (e.g. ``/instances/<id>/file``)."""
        return self._open("GET", path, None, timeout=60)

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
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def attach(http_port: int, timeout: float = 3.0) -> Orthanc | None:
    """The Orthanc already answering on 127.0.0.1:``http_port``, or None when nothing listens.

    Raises :class:`NotAnOrthancError` when something else (or an Orthanc asking for a password)
    answers there.
    """
    url = f"http://127.0.0.1:{http_port}/system"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            system = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise NotAnOrthancError(f"{url} answered HTTP {exc.code}") from exc
    except (ConnectionError, TimeoutError):
        return None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionError | TimeoutError | socket.timeout):
            return None
        raise NotAnOrthancError(f"{url}: {exc.reason}") from exc
    except (ValueError, OSError) as exc:
        raise NotAnOrthancError(f"{url} did not answer like Orthanc's REST API ({exc})") from exc
    if not isinstance(system, dict) or not {"DicomAet", "DicomPort"} <= system.keys():
        raise NotAnOrthancError(f"{url} did not answer like Orthanc's REST API")
    return Orthanc(None, http_port, int(system["DicomPort"]), str(system["DicomAet"]), None)


def routing_config(
    work_dir: Path,
    *,
    listener_port: int,
    http_port: int,
    dicom_port: int,
    stable_age: int,
    name: str = "brgan-test",
) -> dict[str, Any]:
    """The deploy config with local changes: storage in ``work_dir``, these ports, this repo's
    Lua routing script, the ``brgan`` modality on 127.0.0.1:``listener_port``."""
    config = load_orthanc_config()
    storage = work_dir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config.update(
        Name=name,
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


def launch(
    config: dict[str, Any], work_dir: Path, *, verbose: bool = False, timeout: float = 30.0
) -> Orthanc:
    """Start Orthanc with ``config`` (written to ``work_dir/orthanc.json``, log beside it);
    returns once its REST API answers. ``FileNotFoundError`` without an Orthanc binary,
    ``RuntimeError`` (with the log's tail) when it exits, ``TimeoutError`` when it never
    answers."""
    binary = orthanc_binary()
    if binary is None:
        raise FileNotFoundError("Orthanc binary not found")
    http_port = int(config["HttpPort"])
    work_dir.mkdir(parents=True, exist_ok=True)
    config_path = work_dir / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    log_path = work_dir / "orthanc.log"
    args = [binary, *(["--verbose"] if verbose else []), str(config_path)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=work_dir)
    orthanc = Orthanc(
        process, http_port, int(config["DicomPort"]), str(config["DicomAet"]), log_path
    )

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


def start_orthanc(
    work_dir: Path,
    *,
    listener_port: int,
    stable_age: int = 1,
    timeout: float = 30.0,
    http_port: int | None = None,
    dicom_port: int | None = None,
    name: str = "brgan-test",
    modalities: dict[str, dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None,
    verbose: bool = True,
) -> Orthanc:
    """Start Orthanc with :func:`routing_config` (free ports unless given; ``modalities``
    added to or replacing entries of its DicomModalities, ``settings`` to the rest); returns
    once its REST API answers."""
    if orthanc_binary() is None:
        raise FileNotFoundError("Orthanc binary not found")
    if http_port is None or dicom_port is None:
        free_http, free_dicom = free_ports(2)
        http_port = http_port or free_http
        dicom_port = dicom_port or free_dicom
    config = routing_config(
        work_dir,
        listener_port=listener_port,
        http_port=http_port,
        dicom_port=dicom_port,
        stable_age=stable_age,
        name=name,
    )
    config["DicomModalities"].update(modalities or {})
    config.update(settings or {})
    return launch(config, work_dir, verbose=verbose, timeout=timeout)


def start_dicomweb_orthanc(work_dir: Path, timeout: float = 30.0) -> Orthanc:
    """A bare Orthanc (no routing, no Lua) with the DICOMweb plugin on free loopback ports."""
    http_port, dicom_port = free_ports(2)
    storage = work_dir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = {
        "Name": "brgan-viewer-test",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "TemporaryDirectory": str(work_dir),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "BRGANVIEW",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpServerEnabled": True,
        "SaveJobs": False,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    return launch(config, work_dir, timeout=timeout)
