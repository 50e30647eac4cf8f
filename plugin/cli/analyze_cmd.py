"""``brgan analyze PATH... --out DIR``: the whole analysis on a folder of DICOM files, offline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from plugin.cli.context import state


def _files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            out.append(path)
        else:
            raise typer.BadParameter(f"{path} does not exist")
    return out


def _load(settings: Any, model: str | None) -> Any:
    from brgan_core.checkpoint import sha256_file
    from brgan_core.inference import load_model
    from brgan_core.registry import Registry
    from plugin.errors import PluginError

    if model is not None and Path(model).is_file():
        path = Path(model)
        return load_model(path, sha256_file(path), f"file:{path.name}", settings.device)
    registry = Registry(settings.registry_path)
    version = model or settings.model_version or registry.active_version()
    if version is None:
        raise PluginError(
            f"no model: pass --model VERSION|FILE, or activate one in {registry.root} "
            "(`brgan models activate VERSION`)"
        )
    entry = registry.get(version)
    _, path = registry.resolve(version)
    return load_model(path, entry.sha256, entry.version, settings.device)


def analyze(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(help="DICOM files or folders (searched recursively).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for the result objects.")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="A registered model version, or a checkpoint file (.safetensors); "
            "default: the registry's active version.",
        ),
    ] = None,
) -> None:
    """Analyze DICOM files offline: the same classification, pairing, scoring and result
    writers as the service, with no listener, queue or index.

    Every file is classified; the images of each study are paired with the same view of the
    other breast and scored; every image that could not be analyzed is listed with its reason.
    The result objects (TID 1500 SR, Mammography CAD SR, heatmap and summary Secondary
    Captures) go to OUT/<StudyInstanceUID>/. Content Date/Time is the time of this run.

    Example: brgan analyze /data/study1 --out results/
    """
    from rich.console import Console
    from rich.table import Table

    from plugin.queue.contract import (
        ImageRef,
        ModelRef,
        NotAnalyzed,
        StudyTask,
        TaskPair,
    )
    from plugin.spool import safe_name
    from plugin.study import plan_study, read_header
    from plugin.study.classify import OWN_OBJECT_REASON
    from plugin.worker.analysis import run_task

    settings = state(ctx).settings()
    console = Console()
    if not console.is_terminal:  # piped or captured: don't wrap UIDs at 80 columns
        console = Console(width=220)
    files = _files(paths)
    headers: dict[str, list[Any]] = {}
    where: dict[str, Path] = {}
    header_of: dict[str, Any] = {}
    skipped: list[str] = []
    table = Table(title="brgan analyze")
    for column in ("study", "image", "score", "flag", "not analyzed because"):
        table.add_column(column)
    for path in files:
        try:
            header = read_header(path)
        except Exception as exc:  # a stray non-DICOM file: said, never fatal
            skipped.append(f"{path.name} ({type(exc).__name__})")
            continue
        headers.setdefault(header.study_uid, []).append(header)
        where[header.sop_instance_uid] = path
        header_of[header.sop_instance_uid] = header
    if skipped:
        shown = ", ".join(skipped[:10]) + (
            f", … ({len(skipped) - 10} more)" if len(skipped) > 10 else ""
        )
        console.print(
            f"{len(skipped)} file(s) are not readable DICOM, skipped: {shown}", highlight=False
        )
    if not headers:
        console.print(f"no DICOM instance found in {', '.join(map(str, paths))}")
        raise typer.Exit(1)
    loaded = _load(settings, model)
    now = time.time()
    from brgan_core.card import may_score_without_contralateral

    alone = may_score_without_contralateral(loaded.info)
    for study_uid, study_headers in sorted(headers.items()):
        plan = plan_study(study_headers, score_unpaired=alone)
        other = {"L": "R", "R": "L"}

        def ref(uid: str, laterality: str, view: str) -> ImageRef:
            po = header_of[uid].patient_orientation
            return ImageRef(
                uid, str(where[uid]), laterality, view, (po[0], po[1]) if len(po) == 2 else None
            )

        task = StudyTask(
            study_uid=study_uid,
            study_version=1,
            queued_at=now,
            model=ModelRef(loaded.version, loaded.sha256),
            pairs=tuple(
                TaskPair(
                    ref(p.target_uid, p.laterality, p.view),
                    ref(p.contralateral_uid, other[p.laterality], p.view)
                    if p.contralateral_uid
                    else None,
                )
                for p in plan.pairs
            ),
            not_analyzed=tuple(
                NotAnalyzed(
                    uid,
                    reason,
                    str(where[uid]),
                    plan.classifications[uid].laterality if uid in plan.classifications else None,
                    plan.classifications[uid].view if uid in plan.classifications else None,
                )
                for uid, reason in sorted(plan.not_analyzed.items())
                if reason != OWN_OBJECT_REASON
            ),
        )
        summary = run_task(task, loaded, settings, out / safe_name(study_uid))
        threshold = summary.provenance.threshold
        for image in summary.images:
            flag = "-" if image.positive is None else ("POSITIVE" if image.positive else "")
            table.add_row(
                study_uid,
                f"{image.laterality} {image.view} {image.sop_instance_uid}",
                f"{100 * image.p_malignant:.1f} %",
                flag,
                "",
            )
        for item in summary.not_analyzed:
            side = f"{item.laterality or '?'} {item.view or '?'} "
            table.add_row(study_uid, side + item.sop_instance_uid, "-", "-", item.reason)
        console.print(
            f"study {study_uid}: exam "
            + ("-" if summary.exam is None else f"{100 * summary.exam:.1f} %")
            + ("" if threshold is None else f" (threshold {100 * threshold:.1f} %)")
            + f", {len(summary.result_files)} result objects in {out / safe_name(study_uid)}",
            highlight=False,
        )
    console.print(table)
    for label in summary.provenance.labels:
        console.print(f"[bold yellow]{label}[/]")
