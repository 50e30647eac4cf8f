"""``brgan worker``: a scoring worker consuming the ``gpu`` queue."""

from __future__ import annotations

from typing import Annotated

import typer

from plugin.cli.context import state


def worker(
    ctx: typer.Context,
    concurrency: Annotated[
        int, typer.Option(help="Parallel tasks (one per GPU is usual).", min=1)
    ] = 1,
    pool: Annotated[
        str,
        typer.Option(help="Celery pool: prefork (default; a lost child is redelivered) or solo."),
    ] = "prefork",
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    hostname: Annotated[
        str | None,
        typer.Option(
            help="Celery node name; default brgan-<GPU or pid>@<host>, unique per worker on a host."
        ),
    ] = None,
) -> None:
    """Run a BR-GAN scoring worker.

    It consumes `brgan.analyze_study` tasks from the `gpu` queue of the configured broker
    (BRGAN_BROKER_URL; without one, the embedded filesystem queue in <data_dir>/queue), loads
    exactly the model version + sha256 each task names from the registry, and returns scores.
    It never opens the index; it reads the spool and writes heatmaps under results_dir.
    """
    import os

    from brgan_core.inference import pick_device
    from plugin.logging import configure_logging
    from plugin.queue.app import GPU_QUEUE, make_celery
    from plugin.queue.tasks import register_tasks

    settings = state(ctx).settings()
    device = pick_device(settings.device)  # refuse now, not at the first study, if no GPU
    if hostname is None:
        gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "").replace(",", "-")
        hostname = f"brgan-{('gpu' + gpu) if gpu else os.getpid()}@%h"
    configure_logging(
        settings.log_level, json=settings.log_json, hash_uids=settings.hash_uids_in_logs
    )
    app = make_celery(settings)
    if settings.embedded:
        app.conf.worker_enable_remote_control = False
    register_tasks(app, settings)
    where = "embedded filesystem queue" if settings.embedded else "broker"
    typer.echo(
        f"brgan worker {hostname}: consuming queue {GPU_QUEUE!r} from the {where} on {device}; "
        "Ctrl-C stops"
    )
    app.Worker(
        queues=[GPU_QUEUE],
        concurrency=concurrency,
        pool=pool,
        loglevel=loglevel,
        without_mingle=True,
        without_gossip=True,
        optimization="fair",
        hostname=hostname,
    ).start()
