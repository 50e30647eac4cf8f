"""issue 13 §3: twenty concurrent associations, 400 instances, into the real `brgan serve`:
every instance acknowledged 0x0000, indexed and in the spool (bench/load.py does the run; the
timings it measures are reported by the bench, never asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench" / "load.py"


def test_twenty_concurrent_associations_every_instance_stored_and_indexed(
    tmp_path: Path,
) -> None:
    spec = importlib.util.spec_from_file_location("bench_load", BENCH)
    assert spec and spec.loader
    load = importlib.util.module_from_spec(spec)
    sys.modules["bench_load"] = load  # the sender processes find _send by its module name
    spec.loader.exec_module(load)
    result = load.run_load(tmp_path, associations=20, studies_per_association=5)
    assert result["errors"] == [] and result["statuses"] == ["0x0000"], result
    assert result["instances_sent"] == result["instances_ok"] == 400
    assert result["instances_indexed"] == result["files_in_spool"] == 400
    assert result["studies_indexed"] == 100
    assert result["service_exit_code"] == 0, result["service_stderr_tail"]
    print({k: result[k] for k in ("instances_per_s", "latency_ms", "service_peak_rss_mib")})
