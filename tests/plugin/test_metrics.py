"""Observability (issue 12 §4): the metrics and health endpoints of `brgan serve` and `brgan
worker`, the counters moving where things happen, Flower's task events in Redis mode only, and
the Grafana dashboard querying only metrics that exist."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydicom.uid import generate_uid

from pacs_adapters.sink import FileResult, Outcome
from plugin import metrics
from plugin.config import Settings
from plugin.coordinator.outbox import Outbox
from plugin.coordinator.service import Started, run_service
from plugin.index import SqliteIndex
from plugin.queue.app import make_celery
from plugin.queue.contract import ResultFile
from tests.plugin.listener.conftest import free_port, make_settings, store, wait_for_port
from tests.plugin.listener.dicom_data import four_view_study, mg_image, save

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "brgan-dashboard.json"


# -- helpers -----------------------------------------------------------------------------------
def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of a /metrics page."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


@dataclass
class Running:
    settings: Settings
    dicom_port: int
    metrics_port: int


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start ``run_service`` (the body of `brgan serve`) in a thread; stopped at teardown."""
    running: list[tuple[threading.Event, threading.Thread]] = []

    def start(**overrides: Any) -> Running:
        port = free_port()
        values: dict[str, Any] = {"metrics_port": port, "stable_age": 0.0}
        values.update(overrides)
        settings = make_settings(tmp_path / f"data{len(running)}", **values)
        stop, ready = threading.Event(), threading.Event()
        info: list[Started] = []

        def on_started(started: Started) -> None:
            info.append(started)
            ready.set()

        thread = threading.Thread(
            target=run_service, args=(settings, stop), kwargs={"on_started": on_started}
        )
        thread.start()
        running.append((stop, thread))
        assert ready.wait(30), "the service did not start"
        return Running(settings, info[0].port, port)

    yield start
    for stop, thread in running:
        stop.set()
        thread.join(30)


# -- brgan serve ---------------------------------------------------------------------------------
def test_serve_counts_instances_and_reports_health(serve: Callable[..., Running]) -> None:
    svc = serve(min_free_disk_mb=0)
    status, text = get(svc.metrics_port, "/metrics")
    assert status == 200
    received = value(text, "brgan_instances_received_total")
    refused = value(text, "brgan_instances_refused_total", status="0xC001")

    study = four_view_study()
    bad = mg_image(generate_uid(), "L", "CC")
    del bad.StudyInstanceUID
    statuses = [s.Status for s in store(svc.dicom_port, [*study, bad])]
    assert statuses[:4] == [0, 0, 0, 0] and statuses[4] == 0xC001

    _, text = get(svc.metrics_port, "/metrics")
    assert value(text, "brgan_instances_received_total") == received + 4
    assert value(text, "brgan_instances_refused_total", status="0xC001") == refused + 1
    studies = {k[1]: v for k, v in samples(text).items() if k[0] == "brgan_studies"}
    assert sum(studies.values()) == 1  # one study, in whatever state the coordinator has it
    assert set(dict(labels)["state"] for labels in studies) >= {"receiving", "ready", "done"}
    assert value(text, "brgan_build_info", version=_version(), role="coordinator") == 1
    assert not re.search(r'="(\d+\.){3,}\d+"', text), "a UID in a label"

    assert get(svc.metrics_port, "/healthz") == (200, json.dumps({"status": "alive"}))
    status, body = get(svc.metrics_port, "/readyz")
    assert (status, json.loads(body)["status"]) == (200, "ready")
    assert get(svc.metrics_port, "/nothing")[0] == 404


def test_readyz_fails_when_the_spool_disk_is_nearly_full(serve: Callable[..., Running]) -> None:
    svc = serve(min_free_disk_mb=10**12)  # an exabyte: never free
    status, body = get(svc.metrics_port, "/readyz")
    assert status == 503
    [reason] = json.loads(body)["reasons"]
    assert "nearly full" in reason and "min_free_disk_mb" in reason
    assert get(svc.metrics_port, "/healthz")[0] == 200  # alive, just not ready


def test_metrics_port_zero_turns_the_endpoint_off(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, metrics_port=0)
    index = SqliteIndex(settings.index_path)
    try:
        assert metrics.serve_coordinator(settings, index) is None
    finally:
        index.close()


def test_a_taken_port_does_not_stop_the_service(serve: Callable[..., Running]) -> None:
    first = serve(min_free_disk_mb=0)
    second = serve(metrics_port=first.metrics_port)  # the same port: logged, service runs
    assert [s.Status for s in store(second.dicom_port, four_view_study()[:1])] == [0]


def test_readiness_reports_an_unreachable_broker(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, broker_url=f"redis://127.0.0.1:{free_port()}/0", min_free_disk_mb=0
    )
    readiness = metrics.readiness_for(settings)
    readiness.started.set()
    [reason] = readiness.reasons()
    assert reason.startswith("broker unreachable")
    assert "redis://" not in reason  # no URL, so no password, in the answer
    assert metrics.readiness_for(settings, worker=True).disk_paths == [settings.results_path]


def test_readiness_is_false_until_started_and_while_draining(tmp_path: Path) -> None:
    readiness = metrics.readiness_for(make_settings(tmp_path, min_free_disk_mb=0))
    assert readiness.reasons() == ["not started (or shutting down)"]
    readiness.started.set()
    assert readiness.reasons() == []


# -- the dispatcher's and the outbox's metrics ----------------------------------------------------
def _sample(name: str, **labels: str) -> float:
    return metrics.COORDINATOR.get_sample_value(name, labels) or 0.0


def test_collected_study_records_waits_and_inference_seconds() -> None:
    before = {
        "wait": _sample("brgan_queue_wait_seconds_count"),
        "wait_sum": _sample("brgan_queue_wait_seconds_sum"),
        "turn_sum": _sample("brgan_study_turnaround_seconds_sum"),
        "predict": _sample("brgan_inference_seconds_count", phase="predict"),
        "done": _sample("brgan_studies_finished_total", state="done"),
    }
    timings = {"load_model_s": 0.5, "preprocess_s": 1.0, "predict_s": 2.0, "total_s": 4.0}
    metrics.study_collected(1000.0, timings, "done", now=1010.0)
    assert _sample("brgan_queue_wait_seconds_count") == before["wait"] + 1
    assert _sample("brgan_queue_wait_seconds_sum") == pytest.approx(before["wait_sum"] + 6.0)
    assert _sample("brgan_study_turnaround_seconds_sum") == pytest.approx(before["turn_sum"] + 10)
    assert _sample("brgan_inference_seconds_count", phase="predict") == before["predict"] + 1
    assert _sample("brgan_studies_finished_total", state="done") == before["done"] + 1
    metrics.study_collected(None, {"total_s": "junk"}, "failed")  # never raises


class FakeSink:
    name = "fake"

    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes

    def send(self, files: list[Path]) -> list[FileResult]:
        return [
            FileResult(p, None, o, None, str(o)) for p, o in zip(files, self.outcomes, strict=False)
        ]

    def close(self) -> None:
        pass


def test_outbox_counts_deliveries_and_failures_and_its_depth(tmp_path: Path) -> None:
    index = SqliteIndex(tmp_path / "index.sqlite3")
    try:
        sink = FakeSink([Outcome.DELIVERED, Outcome.TRANSIENT, Outcome.PERMANENT])
        outbox = Outbox(index, {"fake": sink}, backoff_initial=10, backoff_max=10, retry_hours=1)  # type: ignore[dict-item]
        files = []
        for i, ds in enumerate(four_view_study()[:3]):
            path = save(ds, tmp_path / f"{i}.dcm")
            files.append(
                ResultFile("heatmap_sc", str(path), ds.SOPInstanceUID, ds.SOPClassUID, "0")
            )
        outbox.enqueue("1.2.3", 1, files)
        delivered = _sample("brgan_outbox_delivered_total", destination="fake")
        retrying = _sample(
            "brgan_outbox_send_failures_total", destination="fake", outcome="retrying"
        )
        failed = _sample("brgan_outbox_send_failures_total", destination="fake", outcome="failed")
        outbox.run_once()
        assert _sample("brgan_outbox_delivered_total", destination="fake") == delivered + 1
        assert (
            _sample("brgan_outbox_send_failures_total", destination="fake", outcome="retrying")
            == retrying + 1
        )
        assert (
            _sample("brgan_outbox_send_failures_total", destination="fake", outcome="failed")
            == failed + 1
        )
        collector = metrics.IndexCollector()
        collector.bind(index, make_settings(tmp_path, model_version="v9"))
        families = {f.name: f for f in collector.collect()}
        depth = {s.labels["destination"]: s.value for s in families["brgan_outbox_depth"].samples}
        assert depth == {"fake": 1}  # the transient one waits for its retry
        assert [s.labels for s in families["brgan_model_info"].samples] == [{"model_version": "v9"}]
        assert families["brgan_outbox_oldest_pending_age_seconds"].samples
    finally:
        index.close()


# -- brgan worker ---------------------------------------------------------------------------------
def test_worker_metrics_record_tasks_and_the_model_version() -> None:
    def sample(name: str, **labels: str) -> float:
        return metrics.WORKER.get_sample_value(name, labels) or 0.0

    ok = sample("brgan_worker_tasks_total", outcome="success")
    loads = sample("brgan_worker_model_load_seconds_count")
    metrics.worker_task_done("success", 1.5)
    metrics.worker_model_loaded("v1", 0.2)
    metrics.worker_model_loaded("v2", 0.3)
    assert sample("brgan_worker_tasks_total", outcome="success") == ok + 1
    assert sample("brgan_worker_model_load_seconds_count") == loads + 2
    assert sample("brgan_worker_model_info", model_version="v1") == 0
    assert sample("brgan_worker_model_info", model_version="v2") == 1


MULTIPROCESS = r"""
import json, multiprocessing, os, sys
os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
from plugin import metrics
from prometheus_client import generate_latest

def child():
    metrics.worker_task_done("success", 2.0)
    metrics.worker_model_loaded("v7", 1.0)

for _ in range(2):  # two prefork children
    p = multiprocessing.get_context("fork").Process(target=child)
    p.start(); p.join()
print(generate_latest(metrics.worker_registry()).decode())
"""


def test_worker_prefork_children_are_summed_in_multiprocess_mode(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert value(run.stdout, "brgan_worker_tasks_total", outcome="success") == 2
    assert value(run.stdout, "brgan_worker_model_info", model_version="v7") == 1
    assert value(run.stdout, "brgan_worker_task_seconds_sum") == 4.0
    assert "brgan_instances_received" not in run.stdout  # only the worker's own metrics
    assert value(run.stdout, "brgan_build_info", version=_version(), role="worker") == 1


@pytest.mark.slow
def test_brgan_worker_serves_metrics_and_health(tmp_path: Path) -> None:
    """`brgan worker` (prefork, embedded queue): ready once Celery's consumer runs, metrics in
    multiprocess mode, folder removed at exit."""
    port = free_port()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRGAN_", "PROMETHEUS_"))}
    env.update(
        BRGAN_DATA_DIR=str(tmp_path / "data"),
        BRGAN_DEVICE="cpu",
        BRGAN_WORKER_METRICS_PORT=str(port),
        BRGAN_MIN_FREE_DISK_MB="0",
        TMPDIR=str(tmp),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin.cli.main", "worker", "--loglevel", "WARNING"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, _ = get(port, "/readyz")
            except OSError:
                status = None
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200, proc.stdout.read().decode() if proc.poll() is not None else status
        assert get(port, "/healthz")[0] == 200
        _, text = get(port, "/metrics")
        assert value(text, "brgan_build_info", version=_version(), role="worker") == 1
        assert "brgan_worker_task_seconds" in text
        assert any(p.name.startswith("brgan-worker-metrics-") for p in tmp.iterdir())
    finally:
        proc.terminate()
        proc.wait(60)
    assert not [p for p in tmp.iterdir() if p.name.startswith("brgan-worker-metrics-")]


# -- Flower: task events in Redis mode only ------------------------------------------------------
def test_task_events_on_with_redis_off_in_embedded_mode(tmp_path: Path) -> None:
    redis_app = make_celery(Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0"))
    assert redis_app.conf.worker_send_task_events is True
    assert redis_app.conf.task_send_sent_event is True
    embedded = make_celery(Settings(data_dir=tmp_path))
    assert embedded.conf.worker_send_task_events is False
    assert embedded.conf.task_send_sent_event is False


@pytest.mark.integration
@contextmanager
def own_redis(tmp_path: Path) -> Iterator[str]:
    """A ``redis-server`` of the test's own on a free port (never the shared one): its URL."""
    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        redis.terminate()
        redis.wait(10)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_redis_mode_publishes_the_task_sent_event_flower_reads(tmp_path: Path) -> None:
    """Flower follows tasks through Celery's event receiver; in Redis mode the coordinator's
    send publishes ``task-sent`` to it."""
    from plugin.queue.app import send_analyze_study

    with own_redis(tmp_path) as url:
        app = make_celery(Settings(data_dir=tmp_path, broker_url=url))
        seen: list[dict[str, Any]] = []
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=10, interval_start=0.1, interval_step=0.1)

            def on_sent(event: dict[str, Any]) -> None:
                seen.append(event)
                receiver.should_stop = True

            receiver = app.events.Receiver(conn, handlers={"task-sent": on_sent})
            consumer = threading.Thread(
                target=receiver.capture, kwargs={"timeout": 15, "wakeup": False}, daemon=True
            )
            consumer.start()
            for _ in range(40):  # until the receiver has subscribed (pub/sub keeps nothing)
                send_analyze_study(app, {"schema": 0}, "task-events-test")
                if seen:
                    break
                time.sleep(0.25)
            consumer.join(20)
        assert seen and {e["uuid"] for e in seen} == {"task-events-test"}
        assert seen[0]["name"] == "brgan.analyze_study"


def test_flower_sees_a_real_worker_its_task_events_and_answers_inspect(tmp_path: Path) -> None:
    """What Flower reads, from a real `brgan worker` in Redis mode (Flower itself is not a
    dependency; it is built on these): worker-online and heartbeats, a task's sent → received →
    started → failed events (a forged payload the worker refuses: no study needed), and the
    worker answering remote-control inspect (Flower's worker list)."""
    from plugin.queue.app import send_analyze_study

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is needed (scripts/test installs it)")
    with own_redis(tmp_path) as url:
        worker = None
        try:
            app = make_celery(Settings(data_dir=tmp_path / "data", broker_url=url))
            seen: list[dict[str, Any]] = []
            wanted = {"task-sent", "task-received", "task-started", "task-failed"}
            with app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=10, interval_start=0.1, interval_step=0.1)

                def on_event(event: dict[str, Any]) -> None:
                    seen.append(event)
                    got = {e["type"] for e in seen if e.get("uuid") == "flower-test"}
                    beat = any(e["type"] == "worker-heartbeat" for e in seen)
                    if wanted <= got and beat:
                        receiver.should_stop = True

                receiver = app.events.Receiver(conn, handlers={"*": on_event})
                consumer = threading.Thread(
                    target=receiver.capture, kwargs={"timeout": 90, "wakeup": False}, daemon=True
                )
                consumer.start()
                time.sleep(0.5)  # subscribed before anything is published (pub/sub keeps nothing)
                data = str(tmp_path / "data")
                env = {**os.environ, "BRGAN_DATA_DIR": data, "BRGAN_BROKER_URL": url}
                env.pop("BRGAN_EMBEDDED_PARENT", None)
                worker = subprocess.Popen(
                    [sys.executable, "-m", "plugin.cli.main", "worker", "--pool", "solo",
                     "--metrics-port", "0"],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                deadline = time.monotonic() + 60
                while not any(e["type"] == "worker-online" for e in seen):
                    assert time.monotonic() < deadline, "no worker-online event"
                    time.sleep(0.2)
                send_analyze_study(app, {"schema": 0}, "flower-test")  # refused by the worker
                consumer.join(60)
            types = {e["type"] for e in seen if e.get("uuid") == "flower-test"}
            assert wanted <= types, types
            failed = next(e for e in seen if e["type"] == "task-failed")
            assert failed["uuid"] == "flower-test" and failed["hostname"].startswith("brgan-")
            assert any(e["type"] == "worker-heartbeat" for e in seen)
            stats = app.control.inspect(timeout=5).stats() or {}
            assert any(name.startswith("brgan-") for name in stats), stats
            assert all("pool" in v for v in stats.values())
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(30)


# -- the Grafana dashboard -------------------------------------------------------------------------
def test_dashboard_parses_and_queries_only_our_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [
        t["expr"]
        for p in dashboard["panels"]
        for t in p.get("targets", [])
        if "expr" in t
    ]  # fmt: skip
    queried = {name for e in exprs for name in re.findall(r"\bbrgan_[a-z_]+", e)}
    known = metrics.metric_names()
    assert queried, "no queries"
    assert not queried - known, f"unknown metrics: {sorted(queried - known)}"
    for needed in (
        "brgan_instances_received_total",
        "brgan_instances_refused_total",
        "brgan_studies",
        "brgan_queue_wait_seconds_bucket",
        "brgan_inference_seconds_bucket",
        "brgan_outbox_depth",
        "brgan_outbox_send_failures_total",
        "brgan_model_info",
        "brgan_worker_model_info",
    ):
        assert needed in queried, f"no panel queries {needed}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(
        p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"] if p["type"] != "row"
    )


def test_metric_names_carry_no_uid_labels() -> None:
    for registry in (metrics.COORDINATOR, metrics.WORKER):
        for family in registry.collect():
            for s in family.samples:
                assert not {"study_uid", "sop_uid", "task_id"} & set(s.labels)


def _version() -> str:
    from brgan_core import __version__

    return __version__
