"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_MG_DIR = REPO_ROOT.parent / "shared" / "fixtures" / "real-mg"


@pytest.fixture(scope="session")
def real_mg_dir() -> Path:
    """The real mammography fixtures in ``../shared/fixtures/real-mg`` (never copied here)."""
    if not (REAL_MG_DIR / "README.md").is_file():
        pytest.skip(f"real fixture folder {REAL_MG_DIR} is absent; real-file tests skipped")
    return REAL_MG_DIR
