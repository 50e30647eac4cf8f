"""A queued task that vanishes from the broker (Redis flushed) is re-sent by the reconciler.

Real Redis (a ``redis-server`` this test starts on a free port), real listener and coordinator;
no worker runs, so the task stays in the queue until the test flushes it. The dispatcher's clock
is a test clock so that ``requeue_after`` passes without sleeping.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis

from plugin.coordinator import Coordinator, CoordinatorTiming
from plugin.coordinator.dispatcher import Dispatcher
from plugin.index import StudyState
from plugin.queue.app import GPU_QUEUE
from tests.helpers import make_tiny_registry, write_synth_studies
from tests.plugin.listener.conftest import free_port, make_settings, start, wait_until
from tests.plugin.queue.serve import storescu as _storescu
from tests.plugin.queue.test_pipeline import _redis_server

pytestmark = pytest.mark.integration


def test_vanished_task_is_requeued_only_when_the_queue_is_empty(tmp_path: Path) -> None:
    if shutil.which("storescu") is None or shutil.which("redis-server") is None:
        pytest.skip("dcmtk storescu and redis-server are needed (scripts/test installs them)")
    port = free_port()
    server = _redis_server(port, tmp_path / "redis.log")
    settings = make_settings(
        tmp_path / "data", broker_url=f"redis://127.0.0.1:{port}/0", requeue_after=60.0
    )
    make_tiny_registry(settings.registry_path)
    svc = start(settings)
    now = [1000.0]
    passes: list[int] = []
    dispatcher = Dispatcher(settings, svc.index, clock=lambda: now[0])
    svc.coordinator = Coordinator(
        svc.index,
        svc.spool,
        CoordinatorTiming(0.0, 3600.0, 7.0, 0.05),
        on_study_ready=dispatcher.on_study_ready,
        reconcile=lambda: (dispatcher.reconcile(), passes.append(1)),
    )
    svc.coordinator.start()
    client = redis.Redis(port=port)
    try:
        rows = write_synth_studies(tmp_path / "synth", patients=1, seed=31)
        _storescu(svc.port, [r["path"] for r in rows])
        study_uid = rows[0]["study_uid"]
        wait_until(lambda: svc.index.get_study(study_uid).state == StudyState.QUEUED, 30)
        assert client.llen(GPU_QUEUE) == 1
        task_id = svc.index.get_study(study_uid).task_id

        now[0] += 120  # past requeue_after, but the task is still waiting: nothing is re-sent
        seen = len(passes)
        wait_until(lambda: len(passes) >= seen + 3, 10)  # several full reconcile passes
        assert client.llen(GPU_QUEUE) == 1
        assert svc.index.get_study(study_uid).state == StudyState.QUEUED

        client.flushdb()  # the broker loses the message (e.g. restarted without persistence)
        now[0] += 120
        wait_until(  # re-sent, and recorded as queued again
            lambda: (
                client.llen(GPU_QUEUE) == 1
                and svc.index.get_study(study_uid).state == StudyState.QUEUED
            ),
            30,
        )
        assert svc.index.get_study(study_uid).task_id == task_id  # the same, idempotent id
    finally:
        svc.stop()
        server.terminate()
        server.wait(10)
