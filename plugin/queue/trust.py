"""The Redis trust boundary, checked on both sides (docs/security.md, "Redis").

Whoever can write to the broker can hand a worker a task, and whoever can write to the result
backend can hand the coordinator a result. JSON-only decoding (``accept_content``) stops code
from travelling in a message; these checks stop a message from naming files the service does
not own:

* a worker accepts a task only when its id is a UUID (the result folder is
  ``<results_dir>/<task id>``: an id like ``../../etc`` would write elsewhere), its images lie
  in the spool and the result objects it supersedes lie in the results folder;
* the coordinator accepts a result only when every result file lies in
  ``<results_dir>/<task id>/`` (the outbox sends those files to the PACS and the retention purge
  deletes their folders).

Paths are compared after resolving symbolic links and ``..``. Defence in depth: the boundary
itself is Redis authentication, TLS and a network only the service's hosts reach.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from plugin.errors import PluginError
from plugin.queue.contract import ResultFile, StudyTask

_TASK_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class UntrustedMessageError(PluginError, ValueError):
    """A task or result names something outside the service's own folders; refused."""


def inside(path: str | Path, folder: str | Path) -> bool:
    """True when ``path`` (links and ``..`` resolved) is ``folder`` or lies below it."""
    real = os.path.realpath(path)
    root = os.path.realpath(folder)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def check_task_id(task_id: str | None) -> str:
    """The task id when it is a UUID (every id the coordinator makes is one), else refuse."""
    if not isinstance(task_id, str) or not _TASK_ID.match(task_id):
        raise UntrustedMessageError(
            f"task id {task_id!r} is not a UUID; refusing the task (its results folder is "
            "named by the id)"
        )
    return task_id


def check_task(payload: Any, task_id: str | None, spool_dir: Path, results_dir: Path) -> StudyTask:
    """Refuse a task whose id or paths reach outside the spool / results folders."""
    check_task_id(task_id)
    task = StudyTask.from_json(payload)
    images = [*task.images().values()]
    paths = [i.path for i in images] + [n.path for n in task.not_analyzed if n.path]
    for path in paths:
        if not inside(path, spool_dir):
            raise UntrustedMessageError(
                f"task {task_id}: image path {path!r} is outside spool_dir ({spool_dir}); "
                "refusing the task"
            )
    _check_results(task.supersedes, results_dir, f"task {task_id}: superseded object")
    return task


def check_result_files(files: Iterable[ResultFile], results_dir: Path, task_id: str | None) -> None:
    """Refuse a task result whose files are not in ``<results_dir>/<task id>/``."""
    _check_results(files, Path(results_dir) / check_task_id(task_id), f"result of task {task_id}")


def _check_results(files: Iterable[ResultFile], folder: Path, what: str) -> None:
    for item in files:
        if not inside(item.path, folder):
            raise UntrustedMessageError(
                f"{what}: file {item.path!r} is outside {folder}; refusing it"
            )
