"""The coordinator: the one process that owns state (DESIGN.md "Who owns state").

``loop`` assembles studies from the index and recovers after a restart; ``dispatcher`` queues
ready studies as :class:`plugin.queue.contract.StudyTask` and records the workers'
:class:`~plugin.queue.contract.StudySummary`; ``service`` runs listener + coordinator as
``brgan serve``. The outbox that sends results to the PACS lives here too (next step).

Never imports torch or ``plugin.worker`` (``tests/plugin/listener/test_no_torch.py``).
"""

from plugin.coordinator.loop import Coordinator, CoordinatorTiming, RecoveryReport

__all__ = ["Coordinator", "CoordinatorTiming", "RecoveryReport"]
