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
) -> None:
    """Receive studies (Storage + Verification SCP) and assemble them for analysis.

    Stops cleanly on SIGTERM or Ctrl-C: no new associations, running ones finish (10 s),
    then the index is closed. Everything received is on disk before it is acknowledged.
    """
    # Imported here so `brgan --help` stays fast; none of these imports torch.
    from plugin.listener.service import Started, run_service
    from plugin.logging import configure_logging

    settings = state(ctx).settings()
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
        mode = (
            "embedded mode (no broker configured; the embedded worker is not part of this "
            "release: ready studies wait in state 'ready')"
            if settings.embedded
            else f"broker {masked_view(settings)['broker_url']}"
        )
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

    try:
        run_service(settings, stop, on_started=_announce)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("brgan serve: stopped cleanly.", highlight=False)
