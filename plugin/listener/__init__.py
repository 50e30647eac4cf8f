"""The DICOM listener: Storage + Verification SCP, the C-STORE handler and the coordinator.

Never imports torch (``tests/plugin/listener/test_no_torch.py`` checks it).
"""

from plugin.listener.coordinator import Coordinator, CoordinatorTiming, RecoveryReport
from plugin.listener.receive import StoreLimits, StoreOutcome, receive_instance
from plugin.listener.server import Listener, ListenerError, build_ae, route_temp_files

__all__ = [
    "Coordinator",
    "CoordinatorTiming",
    "Listener",
    "ListenerError",
    "RecoveryReport",
    "StoreLimits",
    "StoreOutcome",
    "build_ae",
    "receive_instance",
    "route_temp_files",
]
