"""TLS options for every connection to Redis: Celery's broker and result backend, the queue
depth read by ``brgan status`` and the metrics, and ``/readyz``'s broker check.

A ``rediss://`` URL alone is not enough: kombu then connects *without verifying* the server
certificate (it logs a warning and uses ``CERT_NONE``), which a man in the middle on the
hospital network could exploit to read task payloads and forge results. Here every TLS
connection verifies the server against ``redis_tls_ca`` (or the system CAs) and, when
``redis_tls_cert``/``redis_tls_key`` are set, presents a client certificate (Redis
``tls-auth-clients yes``). The options are the keyword arguments redis-py's ``SSLConnection``
takes, which is what kombu's ``broker_use_ssl`` and Celery's ``redis_backend_use_ssl`` pass on.
Torch-free and Celery-free: the listener process imports it.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plugin.config import Settings


def is_tls_url(url: str | None) -> bool:
    """True for a ``rediss://`` (Redis over TLS) URL."""
    return bool(url) and str(url).lower().startswith("rediss://")


def redis_ssl_options(settings: Settings, url: str | None) -> dict[str, Any] | None:
    """The TLS keyword arguments for a connection to ``url``; None when it is not TLS."""
    if not is_tls_url(url):
        return None
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if settings.redis_tls_ca is not None:
        options["ssl_ca_certs"] = str(settings.redis_tls_ca)
    if settings.redis_tls_cert is not None and settings.redis_tls_key is not None:
        options["ssl_certfile"] = str(settings.redis_tls_cert)
        options["ssl_keyfile"] = str(settings.redis_tls_key)
    return options
