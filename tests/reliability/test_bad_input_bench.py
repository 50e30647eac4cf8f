"""``bench/fuzz.py`` (issue 13 §2): it loads, a tiny run passes, and it rewrites only its own
section of ``docs/reliability.md``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fuzz.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_fuzz", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_help_exits_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _load().main(["--help"])
    assert exc.value.code == 0
    assert "usage: bench/fuzz.py" in capsys.readouterr().out


def test_a_tiny_run_writes_json_and_only_its_doc_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fuzz = _load()
    doc = tmp_path / "reliability.md"
    doc.write_text("# Reliability\n\n## Faults\n\nkept as it is\n", encoding="utf-8")
    args = [
        *("--iterations", "26", "--batch", "13", "--worker-studies", "0"),
        *("--preprocess-cases", "13", "--worker-cases", "0"),
        *("--json", str(tmp_path / "fuzz.json"), "--doc", str(doc)),
    ]
    assert fuzz.main([*args, "--work", str(tmp_path / "w1")]) == 0
    # A second run replaces the section, never appends another.
    assert fuzz.main([*args, "--work", str(tmp_path / "w2")]) == 0
    result = json.loads((tmp_path / "fuzz.json").read_text())
    assert result["cstore"]["mutated_instances"] == 26 and result["problems"] == []
    assert sum(s["tried"] for s in result["preprocess"].values()) == 13
    text = doc.read_text(encoding="utf-8")
    assert text.count(fuzz.BEGIN) == 1 and text.count("## Bad input") == 1
    assert "## Faults\n\nkept as it is" in text
    assert "| kind | tried | C-STORE statuses |" in text
    assert "| kind | tried | C-STORE statuses |" in capsys.readouterr().out
    # The section can be rendered again from the JSON alone (no run).
    other = tmp_path / "other.md"
    assert fuzz.main(["--render", str(tmp_path / "fuzz.json"), "--doc", str(other)]) == 0
    assert fuzz.BEGIN in other.read_text(encoding="utf-8")
