"""Run the ``brgan`` CLI in-process, as a user would, and capture what it prints."""

from __future__ import annotations

import pytest

from plugin.cli.main import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``(exit code, stdout + stderr)`` of ``brgan ARGS`` (expected errors exit 2)."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err
