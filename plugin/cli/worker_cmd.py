"""``brgan worker``: a scoring worker consuming the ``gpu`` queue."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from plugin.cli.context import state

if TYPE_CHECKING:
    from plugin.config import Settings
    from plugin.metrics import MetricsServer


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
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Port of /metrics, /healthz and /readyz (overrides `worker_metrics_port`; "
            "0 = off). Several workers on one host need one port each.",
            min=0,
            max=65535,
        ),
    ] = None,
) -> None:
    """Run a BR-GAN scoring worker.

    It consumes `brgan.analyze_study` tasks from the `gpu` queue of the configured broker
    (BRGAN_BROKER_URL; without one, the embedded filesystem queue in <data_dir>/queue), loads
    exactly the model version + sha256 each task names from the registry, and returns scores.
    It never opens the index; it reads the spool and writes heatmaps under results_dir.
    Metrics and health are served on metrics_host:worker_metrics_port (docs/deployment.md).
    """
    from brgan_core.inference import pick_device
    from plugin.logging import configure_logging
    from plugin.queue.app import GPU_QUEUE, make_celery
    from plugin.queue.embedded import die_with_parent

    die_with_parent()  # the embedded worker of `brgan serve` ends with it, even on SIGKILL
    settings = state(ctx).settings()
    device = pick_device(settings.device)  # refuse now, not at the first study, if no GPU
    from plugin.fsutil import restrict_umask

    restrict_umask()  # result files, heatmaps, logs: private (docs/security.md)
    port = settings.worker_metrics_port if metrics_port is None else metrics_port
    # Before plugin.metrics is imported (by the tasks below): prefork's children write theirs.
    multiproc = _multiprocess_metrics() if port and pool == "prefork" else None
    if hostname is None:
        gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "").replace(",", "-")
        hostname = f"brgan-{('gpu' + gpu) if gpu else os.getpid()}@%h"
    configure_logging(
        settings.log_level, json=settings.log_json, hash_uids=settings.hash_uids_in_logs
    )
    app = make_celery(settings)
    if settings.embedded:
        app.conf.worker_enable_remote_control = False
    from plugin.queue.tasks import register_tasks  # imports plugin.metrics

    register_tasks(app, settings)
    where = "embedded filesystem queue" if settings.embedded else "broker"
    typer.echo(
        f"brgan worker {hostname}: consuming queue {GPU_QUEUE!r} from the {where} on {device}; "
        "Ctrl-C stops"
    )
    endpoint = _serve_metrics(settings, port)
    try:
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
    finally:
        if endpoint is not None:
            endpoint.stop()
        if multiproc is not None:
            import shutil

            os.environ.pop(_MULTIPROC_ENV, None)
            shutil.rmtree(multiproc, ignore_errors=True)


_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _multiprocess_metrics() -> Path | None:
    """Prefork runs tasks in child processes: prometheus_client's multiprocess mode has each
    write its metrics to files in a fresh folder that the parent's endpoint sums. Returns the
    folder to remove at exit (None: the operator's own ``PROMETHEUS_MULTIPROC_DIR``, or not
    possible, and then only the parent's metrics are served)."""
    import tempfile

    if os.environ.get(_MULTIPROC_ENV) or "plugin.metrics" in sys.modules:
        return None
    try:
        folder = Path(tempfile.mkdtemp(prefix="brgan-worker-metrics-"))
    except OSError:
        return None
    os.environ[_MULTIPROC_ENV] = str(folder)
    if "prometheus_client" in sys.modules:  # metrics created from now on use the files
        from prometheus_client import values

        values.ValueClass = values.get_value_class()
    return folder


def _serve_metrics(settings: Settings, port: int) -> MetricsServer | None:
    """The worker's /metrics, /healthz and /readyz (ready once Celery's consumer runs)."""
    if not port:
        return None
    from celery.signals import worker_ready, worker_shutting_down

    from plugin import metrics

    endpoint = metrics.MetricsServer(
        settings.metrics_host,
        port,
        metrics.worker_registry,
        metrics.readiness_for(settings, worker=True),
    )
    endpoint.start()
    worker_ready.connect(lambda **_: endpoint.readiness.started.set(), weak=False)
    worker_shutting_down.connect(lambda **_: endpoint.readiness.started.clear(), weak=False)
    return endpoint
