"""The DICOM listener: Storage + Verification SCP and the C-STORE handler (the coordinator that
assembles studies is :mod:`plugin.coordinator`).

Never imports torch (``tests/plugin/listener/test_no_torch.py`` checks it).
"""

from plugin.listener.receive import StoreLimits, StoreOutcome, receive_instance
from plugin.listener.server import Listener, ListenerError, build_ae, route_temp_files

__all__ = [
    "Listener",
    "ListenerError",
    "StoreLimits",
    "StoreOutcome",
    "build_ae",
    "receive_instance",
    "route_temp_files",
]
