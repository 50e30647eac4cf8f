"""Helpers shared by the benchmark scripts in ``bench/`` (machine description, summaries).

``bench`` is a folder of scripts, not a package: each script puts this folder on
``sys.path`` and imports ``from common import ...``. Standard library only — importing this
module must not pull in torch (``bench/ingest.py`` runs without it).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def machine_info(**extra: Any) -> dict[str, Any]:
    """Describe the machine a benchmark ran on: the numbers must be read against it.

    CPU model, core count, total memory, Python and OS, and the load average when called;
    torch's version and the CUDA device only where torch is already imported (it is never
    imported here). ``extra`` keys (tool versions, a load reading at the end) are merged in.
    """
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
                break
    except (OSError, ValueError, IndexError):
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "mem_total_gib": round(mem_kb / 1024**2, 1) if mem_kb else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": list(os.getloadavg()),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    info.update(extra)
    return info


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, IQR, min, max and count of a sample (at least one value)."""
    data = sorted(values)
    if len(data) >= 2:
        q1, median, q3 = statistics.quantiles(data, n=4, method="inclusive")
    else:
        q1 = median = q3 = data[0]
    return {
        "median": median,
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
        "min": data[0],
        "max": data[-1],
        "n": len(data),
    }


def write_result_json(result: dict[str, Any], path: Path) -> Path:
    """Write a benchmark's JSON result (folders created) and say where on stderr."""
    import json
    import sys

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nJSON: {path}", file=sys.stderr)
    return path
