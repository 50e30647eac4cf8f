"""A real Orthanc for tests: a config derived from ``deploy/orthanc/orthanc.json``, a process
on free loopback ports, and a small REST client.

The code lives in :mod:`plugin.viewer.orthanc` (``brgan demo --viewer`` starts the same
Orthanc); this module keeps the names the tests and benchmarks import.
"""

from __future__ import annotations

from plugin.viewer.orthanc import (
    DEBIAN_ORTHANC,
    DICOMWEB_PLUGIN,
    ORTHANC_CONFIG,
    ORTHANC_DIR,
    REPO_ROOT,
    ROUTING_LUA,
    Orthanc,
    OrthancHttpError,
    free_ports,
    load_orthanc_config,
    orthanc_binary,
    poll,
    routing_config,
    start_orthanc,
)

__all__ = [
    "DEBIAN_ORTHANC",
    "DICOMWEB_PLUGIN",
    "ORTHANC_CONFIG",
    "ORTHANC_DIR",
    "REPO_ROOT",
    "ROUTING_LUA",
    "Orthanc",
    "OrthancHttpError",
    "free_ports",
    "load_orthanc_config",
    "orthanc_binary",
    "poll",
    "routing_config",
    "start_orthanc",
]
