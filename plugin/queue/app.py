"""The Celery application shared by the coordinator (producer) and the workers (consumers).

Production: ``broker_url = redis://…`` (and optionally ``result_backend``); the coordinator and
any number of GPU workers meet in Redis. Embedded mode (no broker configured): kombu's
filesystem transport and Celery's filesystem result backend in ``<data_dir>/queue``, so
``brgan serve`` alone does the whole job with no server to run.

Safety (DESIGN.md data flow step 5): JSON serializer only (no pickle on the wire), late
acknowledgement with ``task_reject_on_worker_lost`` so a task whose worker dies is redelivered,
prefetch 1, and the ``gpu`` queue; over ``rediss://`` the Redis server's certificate is always
verified (:mod:`plugin.queue.redis_tls`). This module must stay importable without torch: the
coordinator only ever calls :func:`send_analyze_study`, which sends by task *name*.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from celery import Celery

from plugin.config import Settings
from plugin.queue.redis_tls import redis_ssl_options

ANALYZE_STUDY = "brgan.analyze_study"
GPU_QUEUE = "gpu"
# uuid5 namespace for idempotent task ids (same study, images and model → same task id).
TASK_ID_NAMESPACE = uuid.UUID("6f1c1a52-3c55-4a1b-9a7b-4f1e9a2d2b10")


def queue_dirs(settings: Settings) -> tuple[Path, Path]:
    """Embedded mode's message folder and result folder."""
    root = settings.data_dir / "queue"
    return root / "messages", root / "results"


def make_celery(settings: Settings) -> Celery:
    """Build the Celery app for these settings (no connection is opened here)."""
    app = Celery("brgan")
    tls: dict[str, Any] = {}
    if settings.broker_url is None:
        messages, results = queue_dirs(settings)
        messages.mkdir(parents=True, exist_ok=True)
        (messages.parent / "processed").mkdir(parents=True, exist_ok=True)
        (messages.parent / "control").mkdir(parents=True, exist_ok=True)
        results.mkdir(parents=True, exist_ok=True)
        broker: str = "filesystem://"
        backend: str = f"file://{results.resolve()}"
        transport_options: dict[str, Any] = {
            "data_folder_in": str(messages.resolve()),
            "data_folder_out": str(messages.resolve()),
            "processed_folder": str((messages.parent / "processed").resolve()),
            "store_processed": False,
            # kombu's default is ``control/`` in the *working directory* (exchange tables):
            # everything the service writes stays under data_dir.
            "control_folder": str((messages.parent / "control").resolve()),
        }
    else:
        broker = settings.broker_url.get_secret_value()
        backend = (settings.result_backend or settings.broker_url).get_secret_value()
        # rediss://: always verify the server (kombu alone would not), docs/security.md.
        if (broker_ssl := redis_ssl_options(settings, broker)) is not None:
            tls["broker_use_ssl"] = broker_ssl
        if (backend_ssl := redis_ssl_options(settings, backend)) is not None:
            tls["redis_backend_use_ssl"] = backend_ssl
        if backend.startswith(("redis://", "rediss://")):
            backend = f"plugin.queue.backends:PollingRedisBackend+{backend}"
        transport_options = {"visibility_timeout": 3600}
    # Task events for Flower (docs/deployment.md, "Observability"): Redis broadcasts them. The
    # filesystem transport only imitates broadcast (bound queues listed in a file, never
    # expired), so events would pile up as message files beside the gpu queue: off there.
    events = settings.broker_url is not None
    app.conf.update(
        broker_url=broker,
        result_backend=backend,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        redis_socket_connect_timeout=5,
        redis_socket_timeout=30,
        result_backend_transport_options={"retry_policy": {"timeout": 5.0}},
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=GPU_QUEUE,
        task_routes={ANALYZE_STUDY: {"queue": GPU_QUEUE}},
        task_track_started=True,
        result_extended=True,
        result_expires=7 * 24 * 3600,
        worker_hijack_root_logger=False,
        worker_send_task_events=events,
        task_send_sent_event=events,
        **tls,
    )
    return app


def task_id_for(study_uid: str, sop_instance_uids: list[str], model_version: str) -> str:
    """Idempotency key (StudyInstanceUID, sorted SOPInstanceUIDs, model version) as a task id."""
    key = "|".join([study_uid, *sorted(sop_instance_uids), model_version])
    return str(uuid.uuid5(TASK_ID_NAMESPACE, key))


def send_analyze_study(app: Celery, payload: dict[str, Any], task_id: str) -> str:
    """Queue one study's analysis by task name (no torch import); returns the task id.

    Raises kombu/redis connection errors when the broker is unreachable: the caller keeps
    the study in the index as ready and the reconciler tries again.
    """
    result = app.send_task(
        ANALYZE_STUDY,
        args=[payload],
        task_id=task_id,
        queue=GPU_QUEUE,
        serializer="json",
        retry=False,
    )
    return result.id


def queue_depth(settings: Settings) -> int | None:
    """Tasks waiting in the ``gpu`` queue; None when the broker cannot be asked right now."""
    if settings.broker_url is None:
        messages, _ = queue_dirs(settings)
        try:
            return sum(1 for p in messages.iterdir() if p.suffix == ".msg")
        except OSError:
            return None
    import redis

    url = settings.broker_url.get_secret_value()
    if not url.startswith(("redis://", "rediss://")):
        return None
    try:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=2,
            socket_timeout=2,
            **(redis_ssl_options(settings, url) or {}),
        )
        return int(client.llen(GPU_QUEUE))
    except redis.RedisError:
        return None
