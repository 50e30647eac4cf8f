"""A ``redis-server`` of the test's own (never the shared one on 6379): a free loopback port,
a password, optionally TLS only (``--port 0``) with or without client certificates."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.plugin.listener.conftest import free_port, wait_for_port
from tests.security.pki import Issued


@dataclass(frozen=True)
class OwnRedis:
    """A running server: where it listens and the password it requires."""

    port: int
    password: str
    tls: bool
    log: Path

    def url(self, db: int = 0, *, password: str | None = None) -> str:
        """``redis[s]://:PASSWORD@127.0.0.1:PORT/DB`` (``password=""``: none)."""
        secret = self.password if password is None else password
        auth = f":{secret}@" if secret else ""
        return f"{'rediss' if self.tls else 'redis'}://{auth}127.0.0.1:{self.port}/{db}"


@contextmanager
def own_redis(
    folder: Path,
    *,
    server_cert: Issued | None = None,
    client_ca: Path | None = None,
    client_certs: bool = False,
) -> Iterator[OwnRedis]:
    """Start ``redis-server`` with ``--requirepass`` (TLS when ``server_cert`` is given:
    ``client_ca`` verifies client certificates, required when ``client_certs``)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is needed (scripts/test installs it)")
    folder.mkdir(parents=True, exist_ok=True)
    port, password = free_port(), secrets.token_hex(16)
    log = folder / "redis.log"
    args = ["redis-server", "--bind", "127.0.0.1", "--requirepass", password, "--save", "",
            "--appendonly", "no", "--dir", str(folder), "--logfile", str(log)]  # fmt: skip
    if server_cert is None:
        args += ["--port", str(port)]
    else:
        args += ["--port", "0", "--tls-port", str(port),
                 "--tls-cert-file", str(server_cert.cert), "--tls-key-file", str(server_cert.key),
                 "--tls-ca-cert-file", str(client_ca or server_cert.cert),
                 "--tls-auth-clients", "yes" if client_certs else "no"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield OwnRedis(port, password, server_cert is not None, log)
    finally:
        proc.terminate()
        proc.wait(10)
