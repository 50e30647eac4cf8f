"""``brgan models``: register, activate and roll back model versions.

The active version is the one the coordinator names in every task and workers load (hash
verified). The registry lives in ``registry_dir`` (default ``<data_dir>/models``), a folder
workers on other hosts can mount read-only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from brgan_core.checkpoint import CheckpointError, CheckpointInfo
from brgan_core.registry import Registry
from plugin.cli.context import state

app = typer.Typer(
    help=(
        "Model versions: register a checkpoint, activate it for the workers, roll back.\n\n"
        "Each checkpoint is copied into the registry and its sha256 recorded; a file whose "
        "bytes change afterwards, or whose config this code cannot build, is refused."
    ),
    no_args_is_help=True,
)


def _registry(ctx: typer.Context) -> Registry:
    return Registry(state(ctx).settings().registry_path)


def validate_buildable(info: CheckpointInfo) -> None:
    """Refuse a checkpoint whose model config this version of the code cannot build."""
    from brgan_core.model import BRGANConfig

    try:
        BRGANConfig.from_dict(info.model_config)
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(
            f"this brgan-pacs cannot build the checkpoint's model: {exc}"
        ) from exc


@app.command("list")
def list_versions(ctx: typer.Context) -> None:
    """List registered versions; the active one is marked with *."""
    registry = _registry(ctx)
    active = registry.active_version()
    table = Table(title=f"models in {registry.root}")
    for column in (
        "",
        "version",
        "sha256",
        "backbone",
        "val AUC",
        "threshold",
        "registered",
        "note",
    ):
        table.add_column(column)
    for entry in registry.versions():
        auc = entry.metrics.get("auc")
        table.add_row(
            "*" if entry.version == active else "",
            entry.version,
            entry.sha256[:12],
            entry.backbone,
            f"{auc:.3f}" if isinstance(auc, int | float) else "",
            "" if entry.threshold is None else f"{entry.threshold:.3f}",
            entry.registered[:10],
            "yes" if entry.research_only else "",
        )
    Console().print(table)
    if active is None:
        typer.echo("no active version: run `brgan models activate VERSION`")
    if any(v.research_only for v in registry.versions()):
        typer.echo("demo = research-only model trained on synthetic data; not for clinical use")


Force = Annotated[
    bool,
    typer.Option(
        "--force", help="Activate although the evidence is missing or worse (needs --reason)."
    ),
]
Reason = Annotated[str | None, typer.Option("--reason", help="Why (recorded in the audit log).")]
Require = Annotated[
    str,
    typer.Option(
        "--require",
        help="not-worse: refuse a candidate whose AUC is below the active model's; better: "
        "refuse one that is not significantly better (patient-bootstrap CI above 0).",
    ),
]


@app.command("register")
def register(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Checkpoint file written by `brgan train`.")],
    activate: Annotated[
        bool, typer.Option(help="Also make it the active version (as `brgan models activate`).")
    ] = False,
    force: Force = False,
    reason: Reason = None,
    require: Require = "not-worse",
) -> None:
    """Copy a checkpoint into the registry as a new version (sha256 recorded)."""
    registry = _registry(ctx)
    entry, created = registry.register(path, validate=validate_buildable)
    verb = "registered" if created else "already registered as"
    typer.echo(f"{verb} {entry.version} (sha256 {entry.sha256})")
    if activate:
        _promote(registry, entry.version, force=force, reason=reason, require=require)


def _promote(
    registry: Registry, version: str, *, force: bool, reason: str | None, require: str
) -> None:
    """Activate ``version`` if the evidence allows it (brgan_core.promotion); audit it."""
    from brgan_core.promotion import audit, check_activation, find_record, record_path

    entry = registry.get(version)
    active = registry.active_version()
    if active == version:
        typer.echo(f"{version} is already the active version")
        return
    record = None
    where = None
    if active is not None:
        current = registry.get(active)
        record = find_record(registry.root, entry.sha256, current.sha256)
        where = record_path(registry.root, entry.sha256, current.sha256) if record else None
    evidence = check_activation(
        record, first=active is None, require=require, force=force, reason=reason
    )
    registry.activate(version)
    audit(
        registry.root,
        "activate",
        version=version,
        sha256=entry.sha256,
        previous=active,
        evidence=evidence,
        evaluation=None if where is None else str(where),
        forced=evidence.startswith("FORCED"),  # --force that overrode the rule, not just given
        reason=reason,
    )
    typer.echo(f"active version: {entry.version} (sha256 {entry.sha256[:12]}); {evidence}")


@app.command("activate")
def activate(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="e.g. v3")],
    force: Force = False,
    reason: Reason = None,
    require: Require = "not-worse",
) -> None:
    """Make VERSION the one workers load (hash verified), on evidence.

    The first activation of a registry needs none. Any other needs the evaluation of VERSION
    against the active model that `brgan evaluate CANDIDATE --compare active --data HELD_OUT`
    stores; a candidate worse than the active model (by default) is refused unless
    --force --reason "...". Every activation is written to the registry's audit log
    (`brgan models history`). Workers switch at their next study, without a restart.
    """
    _promote(_registry(ctx), version, force=force, reason=reason, require=require)


@app.command("rollback")
def rollback(ctx: typer.Context, reason: Reason = None) -> None:
    """Re-activate the version that was active before the current one (always allowed;
    audited)."""
    from brgan_core.promotion import audit

    registry = _registry(ctx)
    previous = registry.active_version()
    entry = registry.rollback()
    audit(
        registry.root,
        "rollback",
        version=entry.version,
        sha256=entry.sha256,
        previous=previous,
        reason=reason,
    )
    typer.echo(f"rolled back; active version: {entry.version} (sha256 {entry.sha256[:12]})")


@app.command("history")
def history(ctx: typer.Context) -> None:
    """The registry's audit log: who activated or rolled back what, when, on which evidence
    and why (oldest first)."""
    from brgan_core.promotion import read_audit

    entries = read_audit(_registry(ctx).root)
    if not entries:
        typer.echo("no activation recorded yet")
        return
    table = Table(title="model activations")
    for column in ("time", "user", "action", "version", "previous", "evidence / reason"):
        table.add_column(column, overflow="fold")
    for e in entries:
        why = "; ".join(x for x in (e.get("evidence"), e.get("reason")) if x)
        table.add_row(
            e["time"], e["user"], e["action"], e["version"], e.get("previous") or "-", why
        )
    Console().print(table)


@app.command("show")
def show(ctx: typer.Context, version: Annotated[str, typer.Argument(help="e.g. v3")]) -> None:
    """Everything recorded about VERSION, after verifying its file's sha256: the model card
    (intended use, architecture, whether it reads the contralateral at inference and was
    evaluated without one, training data, metrics, calibration, domain-shift guard), then the
    raw metadata."""
    from brgan_core.card import model_card
    from brgan_core.checkpoint import read_info

    registry = _registry(ctx)
    entry, path = registry.resolve(version)
    info = read_info(path)
    shown = {
        "version": entry.version,
        "active": registry.active_version() == entry.version,
        "sha256": entry.sha256,
        "file": str(path),
        "registered": entry.registered,
        "card": model_card(info),
        "research_only": info.research_only,
        "threshold": info.threshold,
        "temperature": info.temperature,
        "metrics": info.metrics,
        "model_config": info.model_config,
        "preprocessing": info.preprocessing,
        "data_fingerprint": info.data_fingerprint,
        "created": info.created,
        "notes": info.notes,
    }
    typer.echo(json.dumps(shown, indent=2))
