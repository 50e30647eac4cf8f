"""``brgan config``: inspect the effective settings."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from plugin.cli.context import state
from plugin.config import Settings, masked_view

app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@app.command("show")
def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print every effective setting (defaults → TOML → BRGAN_* env), secrets masked."""
    values = masked_view(state(ctx).settings())
    if as_json:
        typer.echo(json.dumps(values, indent=2, default=str))
        return
    table = Table(title="brgan-pacs effective settings")
    # An admin copies values from here: wrap them, never cut them with an ellipsis.
    table.add_column("key", overflow="fold")
    table.add_column("value", overflow="fold")
    table.add_column("meaning", overflow="fold")
    for name, value in values.items():
        description = Settings.model_fields[name].description or ""
        table.add_row(name, "" if value is None else str(value), description)
    Console().print(table)
