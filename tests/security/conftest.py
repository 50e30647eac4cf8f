"""The listener fixtures of ``tests/plugin/listener`` (a real listener on a free loopback port),
shared with the security tests rather than written again."""

from tests.plugin.listener.conftest import service, service_factory

__all__ = ["service", "service_factory"]
