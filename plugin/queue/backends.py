"""A Redis result backend for a coordinator that polls, never subscribes.

Celery's stock Redis backend subscribes to a pub/sub channel for every task it sends (so that
``result.get()`` can wait). Our coordinator never waits on a result: it polls each queued
study's state on its loop. The subscription is therefore useless to us and harmful: when Redis
goes away, the stock backend's result consumer gives up after its retries and leaves the app
unusable until restart ("The Celery application must be restarted"), which would stop a
long-running listener from ever queueing again. Polling with plain GETs simply fails while Redis
is down and works again when it is back.
"""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend


class PollingRedisBackend(RedisBackend):
    """Redis result backend without the per-task pub/sub subscription (results are polled)."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Do not subscribe to the task's result channel; see the module docstring."""
        return None
