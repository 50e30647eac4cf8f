"""What the OHIF test needs around the browser: a plain Orthanc with DICOMweb, a same-origin
server for the prebuilt OHIF ``dist/`` that proxies ``/dicom-web/`` to it, and headless Chromium.

Everything stays on loopback; nothing here reaches the network (the Chromium flags stop it from
calling Google hosts, and selenium is given the Debian chromedriver, so Selenium Manager never
runs).
"""

from __future__ import annotations

import http.client
import json
import mimetypes
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.deploy.orthanc import REPO_ROOT, Orthanc, free_ports, orthanc_binary, poll

OHIF_VERSION = "3.13.2"
OHIF_DIST = REPO_ROOT / ".cache" / f"ohif-{OHIF_VERSION}" / "dist"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMEDRIVER = "chromedriver"

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,1000",
)

mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("font/woff2", ".woff2")


def missing_tools() -> list[str]:
    """Why the viewer test cannot run here (empty when it can)."""
    missing = []
    if not any(shutil.which(n) for n in CHROMIUM_NAMES):
        missing.append("chromium (apt: chromium)")
    if not shutil.which(CHROMEDRIVER):
        missing.append("chromedriver (apt: chromium-driver)")
    if orthanc_binary() is None:
        missing.append("Orthanc (apt: orthanc)")
    if not DICOMWEB_PLUGIN.is_file():
        missing.append("Orthanc DICOMweb plugin (apt: orthanc-dicomweb)")
    if not (OHIF_DIST / "index.html").is_file():
        how = "npm, then ./scripts/test" if not shutil.which("npm") else "./scripts/test"
        missing.append(f"OHIF {OHIF_VERSION} dist in {OHIF_DIST} ({how} fetches it)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip: the dev extra)")
    return missing


# --- Orthanc -------------------------------------------------------------------------------


def start_dicomweb_orthanc(work_dir: Path, timeout: float = 30.0) -> Orthanc:
    """A bare Orthanc (no routing, no Lua) with the DICOMweb plugin on free loopback ports."""
    binary = orthanc_binary()
    if binary is None:
        raise FileNotFoundError("Orthanc binary not found")
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
    config_path = work_dir / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    log_path = work_dir / "orthanc.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, str(config_path)], stdout=log, stderr=subprocess.STDOUT, cwd=work_dir
        )
    orthanc = Orthanc(process, http_port, dicom_port, "BRGANVIEW", log_path)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited ({process.returncode}):\n{orthanc.log_tail()}")
        try:
            return orthanc.get("/system")["HttpPort"] == http_port
        except (OSError, AssertionError):
            return False

    try:
        poll(f"Orthanc on 127.0.0.1:{http_port}", answers, timeout)
    except BaseException:
        orthanc.stop()
        raise
    return orthanc


# --- The viewer's origin -------------------------------------------------------------------


def app_config(origin: str) -> str:
    """OHIF's ``app-config.js``: one DICOMweb data source, Orthanc behind ``origin/dicom-web``
    (adapted from the package's default config and OHIF's ``local_orthanc.js``)."""
    root = f"{origin}/dicom-web"
    config = {
        "routerBasename": "/",
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "showStudyList": True,
        "maxNumberOfWebWorkers": 1,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": False,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "investigationalUseDialog": {"option": "never"},
        "showErrorDetails": "always",
        "defaultDataSourceName": "orthanc",
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": "orthanc",
                "configuration": {
                    "friendlyName": "Orthanc (test)",
                    "name": "orthanc",
                    "qidoRoot": root,
                    "wadoRoot": root,
                    "wadoUriRoot": root,
                    "qidoSupportsIncludeField": False,
                    "supportsReject": False,
                    "imageRendering": "wadors",
                    "thumbnailRendering": "wadors",
                    "enableStudyLazyLoad": True,
                    "supportsFuzzyMatching": False,
                    "supportsWildcard": True,
                    "staticWado": False,
                    "singlepart": "bulkdata,video",
                    "bulkDataURI": {"enabled": True},
                    "omitQuotationForMultipartRequest": True,
                },
            }
        ],
    }
    return f"window.config = {json.dumps(config, indent=2)};\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ViewerServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path.startswith("/dicom-web/") or path == "/dicom-web":
            self._proxy()
        elif path == "/app-config.js":
            self._send(200, "text/javascript", self.server.config_js.encode())
        else:
            self._static(path)

    def _send(self, status: int, ctype: str, body: bytes, extra: dict[str, str] | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _static(self, path: str) -> None:
        dist = self.server.dist
        target = (dist / path.lstrip("/")).resolve()
        if dist not in target.parents or not target.is_file():
            target = dist / "index.html"  # single-page fallback: /viewer?... etc.
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self._send(200, ctype, target.read_bytes())

    def _proxy(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in {"connection", "keep-alive", "accept-encoding", "host"}
        }
        # Orthanc builds BulkDataURIs from Host: keep them pointing at this origin.
        headers["Host"] = self.headers.get("Host", "")
        conn = http.client.HTTPConnection("127.0.0.1", self.server.orthanc_port, timeout=60)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            ctype = resp.getheader("Content-Type", "application/octet-stream")
            self.server.proxied.append((self.command, self.path, resp.status))
            self._send(resp.status, ctype, data)
        finally:
            conn.close()


class ViewerServer(ThreadingHTTPServer):
    """OHIF's ``dist/`` and Orthanc's DICOMweb from one loopback origin, in a thread."""

    daemon_threads = True

    def __init__(self, dist: Path, orthanc_port: int):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.dist = dist.resolve()
        self.orthanc_port = orthanc_port
        self.origin = f"http://127.0.0.1:{self.server_address[1]}"
        self.config_js = app_config(self.origin)
        self.proxied: list[tuple[str, str, int]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)  # the browser hanging up is normal

    def __enter__(self) -> ViewerServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


# --- Chromium ------------------------------------------------------------------------------


def chromium_driver(profile_dir: Path) -> Any:
    """Headless Chromium through the Debian chromedriver, console log captured."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    binary = next(shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n))
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which(CHROMEDRIVER))
    return webdriver.Chrome(options=options, service=service)
