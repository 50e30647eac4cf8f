"""``brgan serve`` without the CLI: open the index and spool, recover, listen, coordinate.

:func:`run_service` is what the ``serve`` command calls; the queue step passes its
``on_study_ready`` / ``reconcile`` hooks here (and starts the embedded worker in embedded mode).
It returns when ``stop`` is set (SIGTERM / Ctrl-C in the CLI) after a clean shutdown:
no new associations, running ones given ``grace`` seconds, coordinator stopped, index closed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from plugin import metrics
from plugin.config import Settings
from plugin.coordinator.loop import (
    Coordinator,
    CoordinatorTiming,
    RecoveryReport,
    StudyReadyHook,
    log_only_hook,
)
from plugin.coordinator.outbox import Outbox
from plugin.coordinator.unpaired import scores_unpaired
from plugin.index import Index, SqliteIndex
from plugin.listener.server import Listener, route_temp_files
from plugin.logging import get_logger
from plugin.spool import Spool

log = get_logger(__name__)


def make_outbox(settings: Settings, index: Index) -> Outbox | None:
    """The outbox sender of the configured destinations (None when there are none)."""
    if not settings.destinations:
        return None
    from pacs_adapters.sink import make_sink

    return Outbox(
        index,
        {d.name: make_sink(d) for d in settings.destinations},
        backoff_initial=settings.outbox_backoff_initial,
        backoff_max=settings.outbox_backoff_max,
        retry_hours=settings.outbox_retry_hours,
        interval=settings.outbox_interval,
    )


@dataclass(frozen=True)
class Started:
    """What :func:`run_service` tells its caller once it listens."""

    host: str
    port: int
    tls: bool
    recovery: RecoveryReport


def run_service(
    settings: Settings,
    stop: threading.Event,
    *,
    on_started: Callable[[Started], None] | None = None,
    on_study_ready: StudyReadyHook = log_only_hook,
    reconcile: Callable[[], None] | None = None,
    make_hooks: Callable[..., tuple[StudyReadyHook, Callable[[], None] | None]] | None = None,
    grace: float = 10.0,
) -> None:
    """Run listener + coordinator until ``stop`` is set.

    The queue step plugs in through ``on_study_ready`` / ``reconcile``, or through
    ``make_hooks(index, outbox)`` when its hooks need the index this function opens and the
    outbox sender (None without destinations), e.g. ``lambda index, outbox: ((d :=
    Dispatcher(settings, index, outbox=outbox)).on_study_ready, d.reconcile)``.
    """
    spool = Spool(settings.spool_path)
    spool.ensure()
    index = SqliteIndex(settings.index_path, timeout=settings.index_busy_timeout)
    outbox = make_outbox(settings, index)
    endpoint = metrics.serve_coordinator(settings, index)  # /healthz from here on
    try:
        if make_hooks is not None:
            on_study_ready, reconcile = make_hooks(index, outbox)
        coordinator = Coordinator(
            index,
            spool,
            CoordinatorTiming(
                complete_grace=settings.complete_grace,
                stable_age=settings.stable_age,
                retention_days=settings.retention_days,
                interval=settings.coordinator_interval,
            ),
            on_study_ready=on_study_ready,
            reconcile=reconcile,
            score_unpaired=lambda: scores_unpaired(settings),
        )
        recovery = coordinator.recover()  # before the listener: temp files are all stale now
        if settings.chunked_receive:
            route_temp_files(spool)
        listener = Listener(settings, spool, index)
        host, port = listener.start()
        try:
            coordinator.start()
            if outbox is not None:
                outbox.start()  # pending rows of before a restart are simply due again
            if endpoint is not None:
                endpoint.readiness.started.set()
            if on_started is not None:
                on_started(Started(host, port, listener.tls, recovery))
            stop.wait()
            log.info("shutting_down")
            if endpoint is not None:
                endpoint.readiness.started.clear()  # /readyz: 503 while draining
        finally:
            listener.stop(grace=grace)
            coordinator.stop()
            if outbox is not None:
                outbox.stop()
    finally:
        metrics.stop_coordinator(endpoint, index)
        index.close()
