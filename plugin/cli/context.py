"""State shared by the sub-commands of one ``brgan`` invocation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer

from plugin.config import Settings, load_settings


@dataclass
class CliState:
    """Global options; settings are loaded once, on first use."""

    config_file: Path | None = None
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
        return self._settings


def state(ctx: typer.Context) -> CliState:
    """The :class:`CliState` of this invocation (root callback sets it)."""
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):  # called outside the root app, e.g. in a test
        obj = CliState()
        ctx.find_root().obj = obj
    return obj
