"""``brgan outbox``: see and act on result objects on their way to the PACS (DESIGN.md step 8).

The running ``brgan serve`` sends; these commands only read or change rows in the index, so
they are safe while it runs (a resent row is picked up on the outbox's next pass).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from plugin.cli.context import state

app = typer.Typer(
    help=(
        "Result objects on their way to each destination: list them, resend failed ones, "
        "abandon a destination.\n\nEvery object goes to every configured destination once; "
        "transient failures are retried with back-off for outbox_retry_hours (default 24), "
        "refusals are marked failed at once. Nothing leaves the spool or the results folder "
        "until every destination acknowledged it (or it was abandoned)."
    ),
    no_args_is_help=True,
)

STATES = ("pending", "delivered", "failed", "abandoned")


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _index(ctx: typer.Context, *, readonly: bool):
    from plugin.errors import PluginError
    from plugin.index import open_index

    settings = state(ctx).settings()
    if not settings.index_path.exists():
        raise PluginError(f"no index at {settings.index_path}: nothing was received yet")
    return open_index(settings.index_path, readonly=readonly)


@app.command("list")
def list_rows(
    ctx: typer.Context,
    state_: Annotated[
        str | None,
        typer.Option("--state", help="pending, delivered, failed or abandoned (default: all)."),
    ] = None,
    destination: Annotated[str | None, typer.Option(help="Only this destination.")] = None,
    study: Annotated[str | None, typer.Option(help="Only this StudyInstanceUID.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """List outbox rows (one per result object and destination), oldest first."""
    from plugin.index import OutboxState

    if state_ is not None and state_ not in STATES:
        raise typer.BadParameter(f"--state must be one of {', '.join(STATES)}")
    index = _index(ctx, readonly=True)
    try:
        rows = index.outbox_rows(
            states=[OutboxState(state_)] if state_ else None,
            destination=destination,
            study_uid=study,
            limit=limit,
        )
    finally:
        index.close()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "study_uid": r.study_uid,
                        "version": r.study_version,
                        "kind": r.kind,
                        "sop_instance_uid": r.sop_instance_uid,
                        "destination": r.destination,
                        "state": str(r.state),
                        "attempts": r.attempts,
                        "next_attempt_at": _when(r.next_attempt_at),
                        "last_status": r.last_status,
                        "last_detail": r.last_detail,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return
    table = Table(title="Outbox")
    for column in ("id", "study", "v", "object", "destination", "state", "tries", "next", "last"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r.id), r.study_uid, str(r.study_version), r.kind, r.destination, str(r.state),
            str(r.attempts), _when(r.next_attempt_at) if r.state == "pending" else "-",
            (f"0x{r.last_status:04X} " if r.last_status and r.last_status > 999 else
             f"{r.last_status} " if r.last_status else "") + (r.last_detail or ""),
        )  # fmt: skip
    Console().print(table)
    if not rows:
        typer.echo("no rows match")


@app.command()
def resend(
    ctx: typer.Context,
    ids: Annotated[
        list[int] | None, typer.Argument(help="Row ids (see `brgan outbox list`).")
    ] = None,
    destination: Annotated[str | None, typer.Option(help="Rows of this destination.")] = None,
    study: Annotated[str | None, typer.Option(help="Rows of this StudyInstanceUID.")] = None,
    include_abandoned: Annotated[
        bool, typer.Option(help="Also rows an admin abandoned (default: failed ones only).")
    ] = False,
) -> None:
    """Send failed rows again (at once, with a fresh retry window). Give row ids, or select by
    --destination / --study; e.g. after fixing the PACS side: `brgan outbox resend
    --destination pacs`."""
    from plugin.index import OutboxState

    if not ids and destination is None and study is None:
        raise typer.BadParameter("give row ids, --destination or --study")
    states = [OutboxState.FAILED] + ([OutboxState.ABANDONED] if include_abandoned else [])
    index = _index(ctx, readonly=False)
    try:
        n = index.set_outbox_state(
            OutboxState.PENDING,
            states=states,
            destination=destination,
            study_uid=study,
            ids=ids or None,
        )
    finally:
        index.close()
    typer.echo(f"{n} row(s) queued again; `brgan serve` sends them on its next outbox pass")


@app.command()
def abandon(
    ctx: typer.Context,
    ids: Annotated[
        list[int] | None, typer.Argument(help="Row ids (see `brgan outbox list`).")
    ] = None,
    destination: Annotated[
        str | None, typer.Option(help="Every open row of this destination.")
    ] = None,
    study: Annotated[str | None, typer.Option(help="Rows of this StudyInstanceUID.")] = None,
) -> None:
    """Give up on pending or failed rows (e.g. a destination that was decommissioned): they are
    no longer sent and no longer hold the study's files back from the retention purge."""
    from plugin.index import OutboxState

    if not ids and destination is None and study is None:
        raise typer.BadParameter("give row ids, --destination or --study")
    index = _index(ctx, readonly=False)
    try:
        n = index.set_outbox_state(
            OutboxState.ABANDONED,
            states=[OutboxState.PENDING, OutboxState.FAILED],
            destination=destination,
            study_uid=study,
            ids=ids or None,
        )
    finally:
        index.close()
    typer.echo(f"{n} row(s) abandoned")
