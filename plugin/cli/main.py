"""Entry point of the ``brgan`` command.

Each sub-command lives in its own module under :mod:`plugin.cli` and is registered here.
Modules import heavy libraries (torch, pydicom, SimpleITK) inside the command functions, so
``brgan --help`` stays fast and the listener never imports torch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from brgan_core import __version__
from brgan_core.errors import BrganCoreError
from plugin.cli import (
    analyze_cmd,
    config_cmd,
    demo_cmd,
    evaluate_cmd,
    models_cmd,
    outbox_cmd,
    preview_cmd,
    reprocess_cmd,
    serve_cmd,
    status_cmd,
    synth_cmd,
    train_cmd,
    worker_cmd,
)
from plugin.cli.context import CliState
from plugin.errors import PluginError

app = typer.Typer(
    name="brgan",
    help=(
        "brgan-pacs: BR-GAN bilateral mammography analysis for your PACS.\n\n"
        "RESEARCH USE ONLY. Not a medical device; results must not be used for diagnosis.\n\n"
        "Settings come from built-in defaults, then a TOML file (--config or $BRGAN_CONFIG), "
        "then BRGAN_* environment variables. Start with `brgan config show`."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"brgan-pacs {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="TOML settings file (overrides $BRGAN_CONFIG).",
            envvar=None,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Global options shared by every sub-command."""
    ctx.obj = CliState(config_file=config)


app.add_typer(config_cmd.app, name="config")
app.command("analyze")(analyze_cmd.analyze)
app.command("demo")(demo_cmd.demo)
app.command("preview")(preview_cmd.preview)
app.command("synth")(synth_cmd.synth)
app.command("train")(train_cmd.train)
app.command("evaluate")(evaluate_cmd.evaluate)
app.add_typer(models_cmd.app, name="models")
app.add_typer(outbox_cmd.app, name="outbox")
app.command("worker")(worker_cmd.worker)
app.command("serve")(serve_cmd.serve)
app.command("status")(status_cmd.status)
app.command("reprocess")(reprocess_cmd.reprocess)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; expected failures print one clear line and exit with status 2."""
    try:
        app(args=argv, prog_name="brgan", standalone_mode=True)
    except (PluginError, BrganCoreError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
