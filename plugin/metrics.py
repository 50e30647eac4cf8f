"""Prometheus metrics and health endpoints of each process (issue 12 §4, docs/deployment.md).

Two processes, two sets of metrics, each served with ``/healthz`` and ``/readyz`` by a small
HTTP thread (:class:`MetricsServer`):

* ``brgan serve`` (listener + coordinator, ``metrics_host:metrics_port``): instances received
  and refused (by DICOM status), studies by state and model version (read from the index and
  the registry at each scrape, by :class:`IndexCollector`), queue wait, turnaround and
  inference seconds (recorded when a result is collected), outbox depth per destination and
  send outcomes;
* ``brgan worker`` (``metrics_host:worker_metrics_port``): tasks run, task seconds, model load
  seconds and the model version loaded. Celery's prefork pool runs tasks in child processes,
  so there the worker uses prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``,
  a fresh folder per worker, set by ``brgan worker`` before this module is imported) and the
  parent serves the sum over its children.

Labels are few and bounded: DICOM status, study state, destination name, timing phase, model
version; never a UID. Recording never raises: a metric must not fail a C-STORE or a study.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from plugin.logging import get_logger

if TYPE_CHECKING:
    from plugin.config import Settings
    from plugin.index import Index

log = get_logger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: The listener/coordinator's metrics (``brgan serve``).
COORDINATOR = CollectorRegistry(auto_describe=True)
#: The worker's metrics (``brgan worker``).
WORKER = CollectorRegistry(auto_describe=True)

_WAIT_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200)
_RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
_LOAD_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)

# -- listener / coordinator -----------------------------------------------------------------------
INSTANCES_RECEIVED = Counter(
    "brgan_instances_received",
    "Instances stored in the spool and acknowledged with Success (0x0000).",
    registry=COORDINATOR,
)
INSTANCES_REFUSED = Counter(
    "brgan_instances_refused",
    "Instances refused, by the DICOM status returned (0xA700, 0xA701, 0xC000, 0xC001).",
    ["status"],
    registry=COORDINATOR,
)
QUEUE_WAIT = Histogram(
    "brgan_queue_wait_seconds",
    "Seconds a study waited for a worker: from first queued until its result was collected, "
    "less the worker's own task time (total_s).",
    buckets=_WAIT_BUCKETS,
    registry=COORDINATOR,
)
TURNAROUND = Histogram(
    "brgan_study_turnaround_seconds",
    "Seconds from a study version's first queueing until its result was collected.",
    buckets=_WAIT_BUCKETS,
    registry=COORDINATOR,
)
INFERENCE = Histogram(
    "brgan_inference_seconds",
    "The worker's timings of each collected study, by phase (load_model, preprocess, "
    "predict, write, total).",
    ["phase"],
    buckets=_RUN_BUCKETS,
    registry=COORDINATOR,
)
STUDIES_FINISHED = Counter(
    "brgan_studies_finished",
    "Study versions that reached a final state, by that state.",
    ["state"],
    registry=COORDINATOR,
)
OUTBOX_DELIVERED = Counter(
    "brgan_outbox_delivered",
    "Result objects delivered, by destination.",
    ["destination"],
    registry=COORDINATOR,
)
OUTBOX_FAILURES = Counter(
    "brgan_outbox_send_failures",
    "Result objects not delivered on a try, by destination and outcome: 'retrying' (transient, "
    "tried again after a back-off) or 'failed' (permanent, or retries exhausted).",
    ["destination", "outcome"],
    registry=COORDINATOR,
)

# -- worker ---------------------------------------------------------------------------------------
WORKER_TASKS = Counter(
    "brgan_worker_tasks",
    "Analysis tasks run by this worker, by outcome (success, failure).",
    ["outcome"],
    registry=WORKER,
)
WORKER_TASK_SECONDS = Histogram(
    "brgan_worker_task_seconds",
    "Seconds per analysis task on this worker (model load included when it happened).",
    buckets=_RUN_BUCKETS,
    registry=WORKER,
)
WORKER_MODEL_LOAD = Histogram(
    "brgan_worker_model_load_seconds",
    "Seconds to load and verify a model version (once per version and worker process).",
    buckets=_LOAD_BUCKETS,
    registry=WORKER,
)
WORKER_MODEL = Gauge(
    "brgan_worker_model_info",
    "1 for the model version this worker has loaded, 0 for versions it loaded before.",
    ["model_version"],
    multiprocess_mode="mostrecent",
    registry=WORKER,
)

_PHASES = ("load_model", "preprocess", "predict", "write", "total")
_loaded_versions: set[str] = set()


def _safe(fn: Callable[..., None]) -> Callable[..., None]:
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # a metric never fails the work it measures
            log.debug("metric_not_recorded", metric=fn.__name__, error=type(exc).__name__)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


# -- recording (called where things happen) -------------------------------------------------------
@_safe
def instance_received() -> None:
    INSTANCES_RECEIVED.inc()


@_safe
def instance_refused(status: int) -> None:
    INSTANCES_REFUSED.labels(status=f"0x{status:04X}").inc()


@_safe
def study_finished(state: str) -> None:
    STUDIES_FINISHED.labels(state=str(state)).inc()


@_safe
def study_collected(
    queued_at: float | None, timings: Mapping[str, Any], state: str, now: float | None = None
) -> None:
    """A study's result was collected: its waits, the worker's timings, its final state."""
    STUDIES_FINISHED.labels(state=str(state)).inc()
    for phase in _PHASES:
        value = timings.get(f"{phase}_s")
        if isinstance(value, int | float) and value >= 0:
            INFERENCE.labels(phase=phase).observe(float(value))
    if queued_at is None:
        return
    turnaround = max(0.0, (time.time() if now is None else now) - queued_at)
    TURNAROUND.observe(turnaround)
    total = timings.get("total_s")
    worker_s = float(total) if isinstance(total, int | float) else 0.0
    QUEUE_WAIT.observe(max(0.0, turnaround - worker_s))


@_safe
def outbox_delivered(destination: str) -> None:
    OUTBOX_DELIVERED.labels(destination=destination).inc()


@_safe
def outbox_failed(destination: str, final: bool) -> None:
    OUTBOX_FAILURES.labels(destination=destination, outcome="failed" if final else "retrying").inc()


@_safe
def worker_task_done(outcome: str, seconds: float) -> None:
    WORKER_TASKS.labels(outcome=outcome).inc()
    WORKER_TASK_SECONDS.observe(seconds)


@_safe
def worker_model_loaded(version: str, seconds: float) -> None:
    WORKER_MODEL_LOAD.observe(seconds)
    for old in _loaded_versions - {version}:
        WORKER_MODEL.labels(model_version=old).set(0)
    _loaded_versions.add(version)
    WORKER_MODEL.labels(model_version=version).set(1)


# -- gauges read at scrape time -------------------------------------------------------------------
class IndexCollector(Collector):
    """Studies by state, outbox rows per destination, the model version new studies get and the
    queue depth, read when Prometheus scrapes (the index is the source of truth)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index: Index | None = None
        self._settings: Settings | None = None

    def bind(self, index: Index, settings: Settings) -> None:
        with self._lock:
            self._index, self._settings = index, settings

    def unbind(self, index: Index) -> None:
        with self._lock:
            if self._index is index:
                self._index = self._settings = None

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "brgan_studies", "Study versions in the index, by state.", labels=["state"]
        )
        yield GaugeMetricFamily(
            "brgan_outbox_depth",
            "Result objects waiting to be delivered (pending), by destination.",
            labels=["destination"],
        )
        yield GaugeMetricFamily(
            "brgan_outbox_rows",
            "Outbox rows by destination and state (pending, delivered, failed, abandoned).",
            labels=["destination", "state"],
        )
        yield GaugeMetricFamily(
            "brgan_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending outbox row, by destination.",
            labels=["destination"],
        )
        yield GaugeMetricFamily(
            "brgan_model_info",
            "1 for the model version new studies are queued with (model_version setting, "
            "else the registry's active version).",
            labels=["model_version"],
        )
        yield GaugeMetricFamily(
            "brgan_queue_depth", "Tasks waiting in the gpu queue (absent when it cannot be read)."
        )

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            index, settings = self._index, self._settings
        studies, depth, rows, oldest, model, queue = self._families()
        if index is not None and settings is not None:
            self._fill(index, settings, studies, depth, rows, oldest, model, queue)
        return [studies, depth, rows, oldest, model, queue]

    @staticmethod
    def _fill(
        index: Index,
        settings: Settings,
        studies: GaugeMetricFamily,
        depth: GaugeMetricFamily,
        rows: GaugeMetricFamily,
        oldest: GaugeMetricFamily,
        model: GaugeMetricFamily,
        queue: GaugeMetricFamily,
    ) -> None:
        try:
            for state, count in index.study_counts().items():
                studies.add_metric([str(state)], count)
            now = time.time()
            for destination, summary in index.outbox_summary().items():
                depth.add_metric([destination], summary.get("pending", 0))
                for state, count in summary.items():
                    if state != "oldest_pending":
                        rows.add_metric([destination, state], count)
                if summary.get("oldest_pending") is not None:
                    oldest.add_metric([destination], max(0.0, now - summary["oldest_pending"]))
        except Exception as exc:  # the index is closing, or busy: report what we have
            log.debug("metrics_index_unreadable", error=type(exc).__name__)
        try:
            from brgan_core.registry import Registry

            version = settings.model_version or Registry(settings.registry_path).active_version()
            if version:
                model.add_metric([version], 1)
        except Exception as exc:
            log.debug("metrics_registry_unreadable", error=type(exc).__name__)
        try:
            from plugin.queue.app import queue_depth

            waiting = queue_depth(settings)
            if waiting is not None:
                queue.add_metric([], waiting)
        except Exception as exc:
            log.debug("metrics_queue_unreadable", error=type(exc).__name__)


INDEX = IndexCollector()
COORDINATOR.register(INDEX)


class _BuildInfo(Collector):
    def __init__(self, role: str) -> None:
        self.role = role

    def collect(self) -> Iterable[Metric]:
        try:
            from brgan_core import __version__ as version
        except Exception:  # pragma: no cover - always importable
            version = "unknown"
        family = GaugeMetricFamily(
            "brgan_build_info", "brgan-pacs version and process role.", labels=["version", "role"]
        )
        family.add_metric([version, self.role], 1)
        return [family]


COORDINATOR.register(_BuildInfo("coordinator"))
WORKER.register(_BuildInfo("worker"))


class _Prefixed(Collector):
    """Only the families whose name starts with ``prefix`` (multiprocess mode reads every
    metric file, the coordinator's unlabelled counters included)."""

    def __init__(self, inner: Collector, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix

    def collect(self) -> Iterable[Metric]:
        return [m for m in self.inner.collect() if m.name.startswith(self.prefix)]


def worker_registry() -> CollectorRegistry:
    """What the worker serves: its own registry, or in multiprocess mode the sum over its
    processes' metric files."""
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return WORKER
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    registry.register(
        _Prefixed(multiprocess.MultiProcessCollector(None, path=folder), "brgan_worker_")
    )
    registry.register(_BuildInfo("worker"))
    return registry


def metric_names() -> set[str]:
    """Every sample name this module can export (what the Grafana dashboard may query)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    names: set[str] = set()
    for registry in (COORDINATOR, WORKER):
        for family in registry.collect():
            names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


# -- readiness ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Readiness:
    """What makes a process unready: a nearly full disk, an unreachable broker, not started."""

    disk_paths: Sequence[Path]
    min_free_bytes: int
    broker_url: str | None = None
    started: threading.Event = field(default_factory=threading.Event)
    #: TLS options of the broker connection (:func:`plugin.queue.redis_tls.redis_ssl_options`).
    broker_ssl: Mapping[str, Any] | None = None

    def reasons(self) -> list[str]:
        problems: list[str] = []
        if not self.started.is_set():
            problems.append("not started (or shutting down)")
        for path in self.disk_paths:
            try:
                free = shutil.disk_usage(_existing(path)).free
            except OSError as exc:
                problems.append(f"disk of {path} unreadable: {exc.strerror or type(exc).__name__}")
                continue
            if free < self.min_free_bytes:
                problems.append(
                    f"disk of {path} nearly full: {free // 2**20} MiB free, "
                    f"min_free_disk_mb is {self.min_free_bytes // 2**20}"
                )
        if self.broker_url is not None:
            problem = broker_problem(self.broker_url, ssl_options=self.broker_ssl)
            if problem:
                problems.append(problem)
        return problems


def _existing(path: Path) -> Path:
    """The path, or its nearest existing parent (a folder made at the first write)."""
    for candidate in (path, *path.absolute().parents):
        if candidate.exists():
            return candidate
    return path


def broker_problem(
    url: str, timeout: float = 2.0, ssl_options: Mapping[str, Any] | None = None
) -> str | None:
    """None when the broker answers, else why not (the exception's type only: no password,
    no host, nothing from the URL in the text)."""
    try:
        if url.startswith(("redis://", "rediss://", "unix://")):
            import redis

            client = redis.Redis.from_url(
                url, socket_connect_timeout=timeout, socket_timeout=timeout, **(ssl_options or {})
            )
            try:
                client.ping()
            finally:
                client.close()
        else:
            from kombu import Connection

            with Connection(url, connect_timeout=timeout) as conn:
                conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        return f"broker unreachable: {type(exc).__name__}"
    return None


def readiness_for(settings: Settings, *, worker: bool = False) -> Readiness:
    """The coordinator watches the spool's disk, a worker the results' disk (what each fills);
    both the broker in Redis mode."""
    from plugin.queue.redis_tls import redis_ssl_options

    path = settings.results_path if worker else settings.spool_path
    broker = None if settings.broker_url is None else settings.broker_url.get_secret_value()
    return Readiness(
        [path],
        settings.min_free_disk_mb * 2**20,
        broker,
        broker_ssl=redis_ssl_options(settings, broker),
    )


# -- the HTTP endpoint ----------------------------------------------------------------------------
class MetricsServer:
    """``/metrics``, ``/healthz`` (200 while the process runs) and ``/readyz`` (200, or 503 with
    the reasons as JSON) on one port, in a daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry | Callable[[], CollectorRegistry],
        readiness: Readiness,
    ) -> None:
        self.host, self.port = host, port
        self._registry = registry
        self.readiness = readiness
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def registry(self) -> CollectorRegistry:
        return self._registry() if callable(self._registry) else self._registry

    def start(self) -> int | None:
        """Listen; returns the bound port, or None when it could not bind (logged, and the
        process goes on: observability must not stop DICOM reception or scoring)."""
        try:
            httpd = ThreadingHTTPServer((self.host, self.port), _handler(self))
        except OSError as exc:
            log.warning(
                "metrics_server_not_started",
                host=self.host,
                port=self.port,
                error=exc.strerror or type(exc).__name__,
            )
            return None
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, name="brgan-metrics", daemon=True
        )
        self._thread.start()
        port = int(httpd.server_address[1])
        log.info("metrics_listening", host=self.host, port=port)
        return port

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._httpd = self._thread = None


def _handler(server: MetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, encoder(server.registry()), content_type)
            elif path == "/healthz":
                self._json(200, {"status": "alive"})
            elif path == "/readyz":
                reasons = server.readiness.reasons()
                if reasons:
                    self._json(503, {"status": "not ready", "reasons": reasons})
                else:
                    self._json(200, {"status": "ready"})
            else:
                self._json(
                    404, {"error": "not found", "paths": ["/metrics", "/healthz", "/readyz"]}
                )

        def _json(self, code: int, body: dict[str, Any]) -> None:
            self._send(code, json.dumps(body).encode(), "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # scrapes every few seconds would drown the service log

    return Handler


def serve_coordinator(settings: Settings, index: Index) -> MetricsServer | None:
    """Start the coordinator's endpoint (None when ``metrics_port`` is 0)."""
    if not settings.metrics_port:
        return None
    INDEX.bind(index, settings)
    server = MetricsServer(
        settings.metrics_host, settings.metrics_port, COORDINATOR, readiness_for(settings)
    )
    server.start()
    return server


def stop_coordinator(server: MetricsServer | None, index: Index) -> None:
    if server is not None:
        server.readiness.started.clear()
        server.stop()
    INDEX.unbind(index)
