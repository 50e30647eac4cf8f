"""``brgan reprocess STUDY_UID``: analyze a study again as a new version."""

from __future__ import annotations

from typing import Annotated

import typer

from plugin.cli.context import state


def reprocess(
    ctx: typer.Context,
    study_uid: Annotated[str, typer.Argument(help="StudyInstanceUID (see `brgan status`).")],
) -> None:
    """Re-open a study as a new version so the running `brgan serve` plans, queues and scores
    it again (e.g. after activating a new model, or after a failed analysis).

    The new version's scores supersede the old ones; the old version's pairs and scores stay
    in the index. A study that is queued or running is left alone (wait for it, or see
    `brgan status --study UID`).
    """
    from plugin.errors import PluginError
    from plugin.index import IllegalTransition, SqliteIndex, StudyState, UnknownStudy

    settings = state(ctx).settings()
    if not settings.index_path.exists():
        raise PluginError(f"no index at {settings.index_path}: nothing was received yet")
    index = SqliteIndex(settings.index_path)
    try:
        study = index.get_study(study_uid)
        if study is None:
            raise UnknownStudy(f"study {study_uid} is not in the index {settings.index_path}")
        if study.state in (StudyState.QUEUED, StudyState.RUNNING, StudyState.RECEIVING):
            raise IllegalTransition(
                f"study {study_uid} is {study.state}; reprocess it once it is finished"
            )
        row = index.open_new_version(study_uid)
    finally:
        index.close()
    typer.echo(
        f"study {study_uid}: version {row.version} opened; `brgan serve` will plan, queue and "
        "score it (watch with `brgan status --study UID`)"
    )
