"""Redis, the trust boundary between the coordinator and the workers: password and TLS.

Every server here is a ``redis-server`` of the test's own on a free loopback port (the shared
one on 6379 is never touched), started with ``--requirepass``; the TLS ones with ``--port 0``
(TLS only) and certificates the test makes (:mod:`tests.security.pki`).

* With the password the Celery app sends, the result backend stores and reads, the queue depth
  is read; without it (or with a wrong one) every one of them is refused by the server, and the
  reasons ``/readyz`` and ``brgan status`` give never contain the password.
* Over TLS with the ``redis_tls_*`` settings the same works, and the server certificate is
  always verified: against a CA that did not sign it, or against the system CAs, the connection
  is refused (kombu alone would have connected to a ``rediss://`` URL without verifying); a
  server requiring client certificates refuses a client without one.
* The settings refuse TLS options in URLs and half-set TLS keys; a configuration error never
  prints the password.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from kombu.simple import SimpleQueue

from plugin.config import ConfigError, Settings, load_settings
from plugin.index import SqliteIndex
from plugin.metrics import readiness_for
from plugin.queue.app import GPU_QUEUE, make_celery, queue_depth, send_analyze_study
from tests.security.pki import Issued, issue, make_ca
from tests.security.redis_server import OwnRedis, own_redis

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _broker_reason(settings: Settings) -> list[str]:
    """What ``/readyz`` says about the broker (the disk and start checks left out)."""
    return [r for r in readiness_for(settings).reasons() if r.startswith("broker")]


def _round_trip(settings: Settings) -> dict[str, Any]:
    """Send a task, read it back off the queue, store and read a result: all through the
    Celery app and kombu, as the coordinator and the workers do."""
    app = make_celery(settings)
    try:
        task_id = str(uuid.uuid4())
        send_analyze_study(app, {"schema": 2, "probe": task_id}, task_id)
        depth = queue_depth(settings)
        with app.connection_for_read() as conn:
            queue = SimpleQueue(conn, GPU_QUEUE)
            message = queue.get(timeout=10)
            message.ack()
            queue.close()
        app.backend.store_result(task_id, {"answer": 42}, "SUCCESS")
        return {
            "depth": depth,
            "args": message.decode()[0],
            "content_type": message.content_type,
            "result": app.AsyncResult(task_id).result,
        }
    finally:
        app.close()


@pytest.fixture
def plain(tmp_path: Path) -> Any:
    with own_redis(tmp_path / "redis") as server:
        yield server


def test_the_password_is_required_and_then_everything_works(plain: OwnRedis, tmp_path) -> None:
    good = Settings(data_dir=tmp_path, broker_url=plain.url())
    done = _round_trip(good)
    assert done["depth"] == 1 and done["content_type"] == "application/json"
    assert done["args"][0]["schema"] == 2 and done["result"] == {"answer": 42}
    assert _broker_reason(good) == []

    for url in (plain.url(password=""), plain.url(password="wrong-" + plain.password)):
        bad = Settings(data_dir=tmp_path, broker_url=url)
        assert queue_depth(bad) is None
        reasons = _broker_reason(bad)
        assert reasons and "AuthenticationError" in reasons[0]
        assert plain.password not in " ".join(reasons)
        app = make_celery(bad)
        try:
            with pytest.raises(Exception, match=r"(?i)auth|password"):
                send_analyze_study(app, {"schema": 2}, str(uuid.uuid4()))
        finally:
            app.close()


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugin.cli.main", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_status_config_and_config_errors_never_print_the_password(
    plain: OwnRedis, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    SqliteIndex(data / "index.sqlite3").close()  # what `brgan serve` leaves for `status`
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRGAN_")}
    env.update(BRGAN_DATA_DIR=str(data), BRGAN_BROKER_URL=plain.url())
    outputs = {args: _cli(env, *args) for args in (("status",), ("status", "--json"),
                                                    ("config", "show"))}  # fmt: skip
    env_bad = dict(env, BRGAN_REDIS_TLS_CA=str(tmp_path / "ca.pem"))  # TLS keys, redis:// URL
    outputs[("config error",)] = bad = _cli(env_bad, "config", "show")
    assert bad.returncode == 2 and "rediss://" in bad.stderr and "Traceback" not in bad.stderr
    for args, run in outputs.items():
        assert plain.password not in run.stdout + run.stderr, args
    assert ":****@127.0.0.1" in outputs[("config", "show")].stdout


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Issued]:
    ca, other = make_ca(tmp_path / "pki", "hospital-ca"), make_ca(tmp_path / "pki", "other-ca")
    return {
        "ca": ca,
        "other": other,
        "server": issue(ca, tmp_path / "pki", "redis"),
        "client": issue(ca, tmp_path / "pki", "worker"),
    }


def _tls_settings(tmp_path: Path, server: OwnRedis, **tls: Path) -> Settings:
    return Settings(data_dir=tmp_path, broker_url=server.url(), **tls)


def test_tls_with_client_certificates(pki: dict[str, Issued], tmp_path: Path) -> None:
    ca, client = pki["ca"], pki["client"]
    with own_redis(
        tmp_path / "redis", server_cert=pki["server"], client_ca=ca.cert, client_certs=True
    ) as server:
        good = _tls_settings(
            tmp_path, server, redis_tls_ca=ca.cert, redis_tls_cert=client.cert,
            redis_tls_key=client.key,
        )  # fmt: skip
        app = make_celery(good)
        assert app.conf.broker_use_ssl["ssl_cert_reqs"] == ssl.CERT_REQUIRED
        assert app.conf.redis_backend_use_ssl["ssl_ca_certs"] == str(ca.cert)
        app.close()
        done = _round_trip(good)
        assert done["depth"] == 1 and done["result"] == {"answer": 42}
        assert _broker_reason(good) == []

        no_client_cert = _tls_settings(tmp_path, server, redis_tls_ca=ca.cert)
        assert queue_depth(no_client_cert) is None
        assert _broker_reason(no_client_cert)


def test_the_server_certificate_is_always_verified(pki: dict[str, Issued], tmp_path) -> None:
    with own_redis(tmp_path / "redis", server_cert=pki["server"], client_ca=pki["ca"].cert) as srv:
        assert queue_depth(_tls_settings(tmp_path, srv, redis_tls_ca=pki["ca"].cert)) == 0
        # Signed by a CA we were not told to trust / not among the system CAs: refused, by
        # the broker connection (kombu) and the direct Redis client alike.
        for untrusted in (
            _tls_settings(tmp_path, srv, redis_tls_ca=pki["other"].cert),
            _tls_settings(tmp_path, srv),
        ):
            assert queue_depth(untrusted) is None
            reasons = _broker_reason(untrusted)
            assert reasons, "an unverified Redis server was accepted"
            app = make_celery(untrusted)
            try:
                with app.connection_for_write() as conn, pytest.raises(Exception):  # noqa: B017
                    conn.ensure_connection(max_retries=1, timeout=5)
            finally:
                app.close()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"broker_url": "rediss://:hunter2@redis:6380/0?ssl_cert_reqs=none"}, "ssl_"),
        ({"broker_url": "rediss://redis/0", "redis_tls_cert": "/c.pem"}, "go together"),
        ({"broker_url": "redis://redis/0", "redis_tls_ca": "/ca.pem"}, "rediss://"),
        ({"redis_tls_ca": "/ca.pem"}, "rediss://"),
    ],
)
def test_tls_settings_are_checked(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        load_settings(**values)
    assert "hunter2" not in str(refused.value)
