"""The exception hierarchy of :mod:`plugin`. Messages name the thing and the fix."""

from __future__ import annotations


class PluginError(Exception):
    """Base class of every error raised on purpose by the service and CLI."""
