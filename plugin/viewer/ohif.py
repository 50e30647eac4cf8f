"""OHIF 3.13.2, prebuilt (``npm pack @ohif/app``, no build step), served from one loopback origin
together with a local Orthanc's DICOMweb (proxied under ``/dicom-web/``), so the browser needs no
CORS and Orthanc stays on loopback. Used by ``brgan demo --viewer``, ``scripts/viewer`` and the
OHIF test (``tests/viewer/``).

``scripts/lib/viewer.sh`` (``setup_viewer``; ``./scripts/viewer --install``) fetches the
package into :data:`OHIF_DIST`.
"""

from __future__ import annotations

import http.client
import json
import mimetypes
import sys
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from plugin.viewer.orthanc import REPO_ROOT

OHIF_VERSION = "3.13.2"
OHIF_DIST = REPO_ROOT / ".cache" / f"ohif-{OHIF_VERSION}" / "dist"

mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("font/woff2", ".woff2")


def study_url(origin: str, study_uid: str) -> str:
    """The OHIF viewer URL of one study."""
    return f"{origin}/viewer?StudyInstanceUIDs={study_uid}"


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
                    "friendlyName": "Orthanc (local)",
                    "name": "orthanc",
                    "qidoRoot": root,
                    "wadoRoot": root,
                    "wadoUriRoot": root,
                    "qidoSupportsIncludeField": False,
                    "supportsReject": False,
                    "imageRendering": "wadors",
                    "thumbnailRendering": "wadors",
                    "enableStudyLazyLoad": False,  # all series up front: the SR cites four
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
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except OSError as exc:  # Orthanc stopped: say so instead of hanging up
                self.server.proxied.append((self.command, self.path, 502))
                message = f"Orthanc on port {self.server.orthanc_port} did not answer: {exc}"
                self._send(502, "text/plain; charset=utf-8", message.encode())
                return
            ctype = resp.getheader("Content-Type", "application/octet-stream")
            self.server.proxied.append((self.command, self.path, resp.status))
            self._send(resp.status, ctype, data)
        finally:
            conn.close()


class ViewerServer(ThreadingHTTPServer):
    """OHIF's ``dist/`` and Orthanc's DICOMweb from one loopback origin (``port``; 0: a free one),
    in a thread while used as a context manager."""

    daemon_threads = True

    def __init__(self, dist: Path, orthanc_port: int, port: int = 0):
        super().__init__(("127.0.0.1", port), _Handler)
        self.dist = dist.resolve()
        self.orthanc_port = orthanc_port
        self.origin = f"http://127.0.0.1:{self.server_address[1]}"
        self.config_js = app_config(self.origin)
        # The latest proxied requests (method, path, status), for tests and debugging.
        self.proxied: deque[tuple[str, str, int]] = deque(maxlen=10_000)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)  # the browser hanging up is normal

    def __enter__(self) -> ViewerServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
