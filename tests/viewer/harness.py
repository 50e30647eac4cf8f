"""What the OHIF test needs around the browser: a plain Orthanc with DICOMweb, a same-origin
server for the prebuilt OHIF ``dist/`` that proxies ``/dicom-web/`` to it (both in
:mod:`plugin.viewer`, which ``brgan demo --viewer`` and ``scripts/viewer`` use too), and headless
Chromium.

Everything stays on loopback; nothing here reaches the network (the Chromium flags stop it from
calling Google hosts, and selenium is given the Debian chromedriver, so Selenium Manager never
runs).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from plugin.viewer.ohif import OHIF_DIST, OHIF_VERSION, ViewerServer, app_config
from plugin.viewer.orthanc import DICOMWEB_PLUGIN, orthanc_binary, start_dicomweb_orthanc

__all__ = [
    "DICOMWEB_PLUGIN",
    "OHIF_DIST",
    "OHIF_VERSION",
    "ViewerServer",
    "app_config",
    "chromium_driver",
    "missing_tools",
    "start_dicomweb_orthanc",
]

CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMEDRIVER = "chromedriver"

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",  # software WebGL for cornerstone (trusted local content)
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


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


# --- Chromium ------------------------------------------------------------------------------


def chromium_driver(profile_dir: Path, window_size: tuple[int, int] = (1600, 1000)) -> Any:
    """Headless Chromium through the Debian chromedriver, console log captured."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    binary = next(shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n))
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={window_size[0]},{window_size[1]}")
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which(CHROMEDRIVER))
    return webdriver.Chrome(options=options, service=service)
