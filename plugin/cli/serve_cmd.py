"""``brgan serve``: the DICOM listener and the study coordinator, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer
from rich.console import Console

from plugin.cli.context import state
from plugin.config import masked_view


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (overrides `host`).")] = None,
    port: Annotated[
        int | None, typer.Option(help="DICOM port (overrides `port`; 0 = any free port).")
    ] = None,
    embedded_worker: Annotated[
        bool,
        typer.Option(
            help="In embedded mode (no broker configured), start one scoring worker as a child "
            "process. Turn off when workers are started separately.",
        ),
    ] = True,
) -> None:
    """Receive studies, assemble and pair them, queue BR-GAN analysis, record the scores.

    With BRGAN_BROKER_URL set (production), ready studies go to the Redis queue and any number
    of `brgan worker` processes score them. Without a broker (embedded mode), this command does
    the whole job alone: a filesystem queue under <data_dir>/queue and one worker child process.
    A model must be active (`brgan models activate VERSION`) for studies to be queued; until
    then they wait in state 'ready'.

    Stops cleanly on SIGTERM or Ctrl-C: no new associations, running ones finish (10 s),
    then the index is closed. Everything received is on disk before it is acknowledged.
    """
    # Imported here so `brgan --help` stays fast; none of these imports torch.
    from plugin.coordinator.dispatcher import Dispatcher
    from plugin.coordinator.service import Started, run_service
    from plugin.fsutil import restrict_umask
    from plugin.logging import configure_logging
    from plugin.queue.embedded import EmbeddedWorker

    settings = state(ctx).settings()
    restrict_umask()  # spool, index, queue, results, logs: private (docs/security.md)
    updates: dict[str, Any] = {}
    if host is not None:
        updates["host"] = host
    if port is not None:
        updates["port"] = port
    if updates:
        settings = settings.model_copy(update=updates)
    configure_logging(
        settings.log_level, json=settings.log_json, hash_uids=settings.hash_uids_in_logs
    )
    console = Console(stderr=False)
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _announce(started: Started) -> None:
        if not settings.embedded:
            mode = f"broker {masked_view(settings)['broker_url']}"
        elif worker is not None:
            mode = "embedded mode (no broker; one worker child process, log in <data_dir>)"
        else:
            mode = "embedded mode (no broker; --no-embedded-worker: start `brgan worker` yourself)"
        console.print(
            f"brgan serve: listening on {started.host}:{started.port} as AE "
            f"{settings.ae_title} ({'TLS' if started.tls else 'no TLS'}); {mode}",
            highlight=False,
        )
        console.print(
            f"data: {settings.data_dir} (spool {settings.spool_path}, index "
            f"{settings.index_path}); recovered: "
            + (
                ", ".join(f"{k} {v}" for k, v in started.recovery.studies_by_state.items())
                or "nothing in flight"
            )
            + ". Stop with Ctrl-C or SIGTERM.",
            highlight=False,
        )
        if not settings.allowed_calling_aets:
            console.print(
                "[yellow]warning:[/] allowed_calling_aets is empty: any calling AE may store.",
            )

    def _hooks(index: Any, outbox: Any) -> tuple[Any, Any]:
        dispatcher = Dispatcher(settings, index, outbox=outbox)
        return dispatcher.on_study_ready, dispatcher.reconcile

    worker: EmbeddedWorker | None = None
    if settings.embedded and embedded_worker:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        worker = EmbeddedWorker(state(ctx).config_file, settings.data_dir / "worker.log")
        worker.start()
    try:
        run_service(settings, stop, on_started=_announce, make_hooks=_hooks)
    finally:
        if worker is not None:
            worker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("brgan serve: stopped cleanly.", highlight=False)
