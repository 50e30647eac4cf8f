"""Celery app settings: JSON only, late acks, gpu queue, idempotent task ids, embedded mode."""

from __future__ import annotations

from pathlib import Path

from plugin.config import load_settings
from plugin.queue.app import GPU_QUEUE, make_celery, queue_dirs, task_id_for


def test_safety_settings_redis(monkeypatch) -> None:
    monkeypatch.setenv("BRGAN_BROKER_URL", "redis://127.0.0.1:6379/5")
    app = make_celery(load_settings())
    conf = app.conf
    assert conf.broker_url == "redis://127.0.0.1:6379/5"
    assert conf.result_backend.endswith("+redis://127.0.0.1:6379/5")
    from plugin.queue.backends import PollingRedisBackend

    assert isinstance(app.backend, PollingRedisBackend)
    assert conf.task_serializer == "json" and conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_default_queue == GPU_QUEUE


def test_embedded_mode_needs_no_server(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("BRGAN_BROKER_URL", raising=False)
    settings = load_settings(data_dir=tmp_path)
    app = make_celery(settings)
    messages, results = queue_dirs(settings)
    assert app.conf.broker_url == "filesystem://"
    assert app.conf.result_backend == f"file://{results.resolve()}"
    assert messages.is_dir() and results.is_dir()


def test_task_id_is_idempotency_key() -> None:
    a = task_id_for("1.2.3", ["1.2.3.4", "1.2.3.5"], "v1")
    assert a == task_id_for("1.2.3", ["1.2.3.5", "1.2.3.4"], "v1")
    assert a != task_id_for("1.2.3", ["1.2.3.4", "1.2.3.5"], "v2")
    assert a != task_id_for("1.2.3", ["1.2.3.4"], "v1")


def test_queue_depth_embedded_counts_waiting_tasks(tmp_path: Path, monkeypatch) -> None:
    from plugin.queue.app import queue_depth, send_analyze_study

    monkeypatch.delenv("BRGAN_BROKER_URL", raising=False)
    settings = load_settings(data_dir=tmp_path)
    app = make_celery(settings)
    assert queue_depth(settings) == 0
    send_analyze_study(app, {"schema": 1}, task_id_for("1.2", ["1.2.3"], "v1"))
    assert queue_depth(settings) == 1


def test_queue_depth_unreachable_redis_is_none() -> None:
    from plugin.queue.app import queue_depth

    # Port 1 on loopback: nothing listens there; the answer is "unknown", not a crash.
    assert queue_depth(load_settings(broker_url="redis://127.0.0.1:1/0")) is None


def test_worker_refuses_to_start_without_the_requested_gpu(monkeypatch) -> None:
    import pytest
    import torch

    from plugin.cli.main import main

    if torch.cuda.is_available():
        pytest.skip("a GPU is present; the refusal path needs a machine without one")
    monkeypatch.setenv("BRGAN_DEVICE", "cuda")
    with pytest.raises(SystemExit) as exc:
        main(["worker"])
    assert exc.value.code == 2
