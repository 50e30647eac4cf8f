"""``brgan status``: studies by state, queue depth, last errors; ``--study UID`` for one study.

Reads the index read-only (the running ``brgan serve`` keeps writing meanwhile, WAL mode).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from plugin.cli.context import state
from plugin.config import Settings
from plugin.errors import PluginError


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _score_text(score_json: str | None) -> str:
    if not score_json:
        return "-"
    try:
        data = json.loads(score_json)
    except ValueError:
        return score_json
    if isinstance(data, dict):
        if data.get("status") == "not analyzed":
            return f"not analyzed: {data.get('reason', '?')}"
        for key in ("p_malignant", "probability", "score", "p"):
            if isinstance(data.get(key), int | float):
                return f"{data[key]:.3f}"
    return json.dumps(data, sort_keys=True)


def _result_text(result_json: str) -> str:
    """Exam and breast scores of a study-level result summary, else the JSON as is."""
    try:
        data = json.loads(result_json)
    except ValueError:
        return result_json
    if not isinstance(data, dict):
        return result_json

    def pct(p: object) -> str:
        return f"{100 * p:.1f} %" if isinstance(p, int | float) else "-"

    parts = []
    if "exam" in data:
        parts.append(f"exam {pct(data['exam'])}")
    breasts = data.get("breasts") or {}
    if breasts:
        parts.append(" ".join(f"{side} {pct(p)}" for side, p in sorted(breasts.items())))
    model = data.get("model")
    if isinstance(model, dict):
        threshold = model.get("threshold")
        parts.append(
            f"model {model.get('model_version') or model.get('version')}"
            + (f" ({model['model_name']})" if model.get("model_name") else "")
            + (f", threshold {pct(threshold)}" if threshold is not None else "")
        )
    files = data.get("result_files") or []
    if files:
        parts.append(f"{len(files)} result objects")
    return " · ".join(parts) or json.dumps(data, sort_keys=True)


def _queue_depth(settings: Settings) -> str:
    try:
        from plugin.queue.app import queue_depth
    except ImportError:
        return "unknown"
    depth = queue_depth(settings)
    return "unknown (queue not reachable)" if depth is None else str(depth)


def status(
    ctx: typer.Context,
    study: Annotated[
        str | None, typer.Option("--study", help="Show one study: images, pairs, scores.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    limit: Annotated[int, typer.Option(help="How many recent studies/errors to list.")] = 10,
) -> None:
    """Studies by state, queue depth and last errors; or one study in detail.

    States: receiving → ready → queued → running → done | failed | partially_analyzed |
    not_analyzed (nothing in the study could be analyzed; every image's reason is shown).
    """
    from plugin.index import open_index

    settings = state(ctx).settings()
    index = open_index(settings.index_path, readonly=True)
    try:
        if study is not None:
            _show_study(index, study.strip(), as_json)
        else:
            _overview(index, settings, as_json, limit)
    finally:
        index.close()


def _overview(index: Any, settings: Settings, as_json: bool, limit: int) -> None:
    counts = index.study_counts()
    outbox = index.outbox_summary()
    recent = index.studies(limit=limit)
    errors = index.errors(limit=limit)
    associations = index.associations(limit=5)
    depth = _queue_depth(settings)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "studies_by_state": {str(k): v for k, v in counts.items()},
                    "queue_depth": depth,
                    "outbox": {
                        name: {**entry, "oldest_pending": _when(entry["oldest_pending"])}
                        for name, entry in outbox.items()
                    },
                    "recent_studies": [
                        {
                            "study_uid": s.study_uid,
                            "state": str(s.state),
                            "version": s.version,
                            "instances": s.instance_count,
                            "updated_at": _when(s.updated_at),
                            "error": s.error,
                        }
                        for s in recent
                    ],
                    "errors": [
                        {"at": _when(e.at), "source": e.source, "message": e.message}
                        for e in errors
                    ],
                },
                indent=2,
            )
        )
        return
    console = Console()
    by_state = Table(title=f"Studies by state (index {settings.index_path})")
    by_state.add_column("state")
    by_state.add_column("studies", justify="right")
    for name, count in counts.items():
        by_state.add_row(str(name), str(count))
    console.print(by_state)
    console.print(f"Queue depth (gpu): {depth}", highlight=False)
    if outbox or settings.destinations:
        table = Table(title="Outbox (result objects to each destination)")
        for column in ("destination", "pending", "oldest pending (UTC)", "failed", "delivered",
                       "abandoned"):  # fmt: skip
            table.add_column(column)
        empty = {"pending": 0, "delivered": 0, "failed": 0, "abandoned": 0}
        for d in settings.destinations:
            outbox.setdefault(d.name, {**empty, "oldest_pending": None})
        for name, entry in sorted(outbox.items()):
            table.add_row(
                name, str(entry["pending"]), _when(entry["oldest_pending"]),
                ("[red]" + str(entry["failed"]) + "[/]") if entry["failed"] else "0",
                str(entry["delivered"]), str(entry["abandoned"]),
            )  # fmt: skip
        console.print(table)
        if any(e["failed"] for e in outbox.values()):
            console.print("failed rows: `brgan outbox list --state failed`; after fixing the "
                          "cause, `brgan outbox resend --destination NAME`")  # fmt: skip
    if recent:
        table = Table(title="Recent studies")
        for column in ("study", "state", "version", "instances", "updated (UTC)", "error"):
            table.add_column(column)
        for s in recent:
            table.add_row(
                s.study_uid,
                str(s.state),
                str(s.version),
                str(s.instance_count),
                _when(s.updated_at),
                s.error or "",
            )
        console.print(table)
    if associations:
        table = Table(title="Recent associations")
        for column in ("calling AE", "peer", "started (UTC)", "outcome", "stored", "failed"):
            table.add_column(column)
        for a in associations:
            table.add_row(
                a.calling_ae,
                a.peer_address,
                _when(a.started_at),
                a.outcome + (f" ({a.last_failure})" if a.last_failure else ""),
                str(a.instances_ok),
                str(a.instances_failed),
            )
        console.print(table)
    if errors:
        table = Table(title="Last errors")
        for column in ("when (UTC)", "source", "study", "message"):
            table.add_column(column)
        for e in errors:
            table.add_row(_when(e.at), e.source, e.study_uid or "", e.message)
        console.print(table)
    else:
        console.print("No errors recorded.")


def _show_study(index: Any, study_uid: str, as_json: bool) -> None:
    row = index.get_study(study_uid)
    if row is None:
        raise PluginError(
            f"study {study_uid} is not in the index; `brgan status` lists the known studies"
        )
    instances = index.instances(study_uid)
    pairs = index.pairs(study_uid)
    plan = json.loads(row.plan_json) if row.plan_json else {}
    not_analyzed: dict[str, str] = plan.get("not_analyzed", {})
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "study_uid": row.study_uid,
                    "state": str(row.state),
                    "version": row.version,
                    "task_id": row.task_id,
                    "model_version": row.model_version,
                    "error": row.error,
                    "result": json.loads(row.result_json) if row.result_json else None,
                    "images": [
                        {
                            "sop_instance_uid": i.sop_instance_uid,
                            "laterality": i.laterality,
                            "view": i.view,
                            "usable": i.usable,
                            "acquired": i.acquisition_datetime,
                            "presentation_intent": i.presentation_intent,
                            "image_type": i.image_type,
                            "view_modifiers": i.view_modifiers,
                            "reason": not_analyzed.get(i.sop_instance_uid) or i.reason,
                        }
                        for i in instances
                    ],
                    "pairs": [
                        {
                            "target": p.target_uid,
                            "contralateral": p.contralateral_uid or None,
                            "laterality": p.laterality,
                            "view": p.view,
                            "score": json.loads(p.score_json) if p.score_json else None,
                        }
                        for p in pairs
                    ],
                },
                indent=2,
            )
        )
        return
    console = Console()
    console.print(f"Study {row.study_uid}", style="bold", highlight=False)
    console.print(
        f"state {row.state} · version {row.version} · {row.instance_count} instance(s) · "
        f"first {_when(row.first_instance_at)} · last {_when(row.last_instance_at)} UTC"
        + (f" · task {row.task_id}" if row.task_id else "")
        + (f" · model {row.model_version}" if row.model_version else "")
        + (f" · purged {_when(row.purged_at)}" if row.purged_at else ""),
        highlight=False,
    )
    if row.error:
        console.print(f"[red]error:[/] {row.error}", highlight=False)
    images = Table(title="Images")
    for column in (
        "SOP Instance UID", "laterality", "view", "acquired", "usable", "not analyzed because"
    ):  # fmt: skip
        images.add_column(column)
    for i in instances:
        reason = not_analyzed.get(i.sop_instance_uid) or i.reason or ""
        images.add_row(
            i.sop_instance_uid, i.laterality or "-", i.view or "-",
            (i.acquisition_datetime or "-")[:19], "yes" if i.usable else "no", reason,
        )  # fmt: skip
    console.print(images)
    if row.result_json:
        console.print(f"Result: {_result_text(row.result_json)}", highlight=False)
        if (json.loads(row.result_json).get("model") or {}).get("research_only"):
            console.print(
                "[bold yellow]DEMO / RESEARCH-ONLY MODEL (trained on synthetic data): "
                "not for clinical use.[/]"
            )
    if pairs:
        table = Table(title=f"Pairs (version {row.version})")
        for column in ("target", "contralateral", "side", "view", "score"):
            table.add_column(column)
        for p in pairs:
            table.add_row(
                p.target_uid, p.contralateral_uid or "none (scored alone)", p.laterality or "",
                p.view or "",
                _score_text(p.score_json),
            )  # fmt: skip
        console.print(table)
    else:
        console.print("No pairs yet (the study is not assembled, or nothing can be paired).")
