"""Concurrent ingest load (issue 13 §3): N associations at once, each sending 4-view studies.

`brgan serve` (embedded, as an admin starts it) with no active model, so only reception is
measured (studies are assembled and wait for a model; nothing is analyzed). N client threads
(pynetdicom SCUs) each open one association and C-STORE their studies back to back; every study
has its own Study/Series/SOP Instance UIDs and PatientID, made from one synthetic ``bench-cpu``
study. Reported: instances stored (all must be 0x0000), instances and studies in the index and
files in the spool (all must match), throughput, C-STORE latency percentiles (client side, per
instance) and the service process's peak RSS (``VmHWM``).

Usage::

    .venv/bin/python bench/load.py --associations 20 --studies-per-association 5 \\
        --out docs/bench-results/load-2026-12-02.json

``tests/reliability/test_load.py`` runs the same function at that size and checks the counts
(never the timings).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:
    sys.path.insert(0, _BENCH_DIR)
_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from common import machine_info  # noqa: E402


def _studies(template: list[Any], count: int) -> list[list[Any]]:
    """``count`` copies of the 4-view ``template`` study, each with new UIDs and patient."""
    import copy

    from pydicom.uid import generate_uid

    out = []
    for k in range(count):
        study_uid, patient = generate_uid(), f"LOAD-{k:05d}"
        views = []
        for ds in template:
            new = copy.deepcopy(ds)
            new.StudyInstanceUID = study_uid
            new.SeriesInstanceUID = generate_uid()
            new.SOPInstanceUID = generate_uid()
            new.file_meta.MediaStorageSOPInstanceUID = new.SOPInstanceUID
            new.PatientID = patient
            views.append(new)
        out.append(views)
    return out


def _peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _send(folder: str, port: int, go: float) -> dict[str, Any]:
    """One sender process: one association, its files back to back, timed per C-STORE."""
    from pynetdicom import AE

    files = sorted(Path(folder).glob("*.dcm"))
    ae = AE(ae_title="TESTSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.1.2")
    time.sleep(max(0.0, go - time.time()))
    out: dict[str, Any] = {"statuses": [], "latencies": [], "error": None}
    assoc = ae.associate("127.0.0.1", port, ae_title="BRGAN")
    if not assoc.is_established:
        out["error"] = "association refused"
        out["end"] = time.time()
        return out
    try:
        for path in files:
            t0 = time.perf_counter()
            try:
                status = assoc.send_c_store(path)
            except RuntimeError as exc:  # the association ended (aborted, timed out)
                out["error"] = f"after {len(out['statuses'])} instances: {exc}"
                break
            out["latencies"].append(time.perf_counter() - t0)
            out["statuses"].append(int(status.Status) if "Status" in status else -1)
    finally:
        if assoc.is_established:
            assoc.release()
    out["end"] = time.time()
    return out


def run_load(work: Path, associations: int, studies_per_association: int) -> dict[str, Any]:
    """Run the load against a fresh `brgan serve` in ``work``; returns the measurements."""
    import numpy as np
    import pydicom

    from plugin.index import SqliteIndex
    from tests.helpers import write_synth_studies
    from tests.plugin.queue.serve import start_embedded_serve

    rows = write_synth_studies(work / "template", patients=1, seed=83)
    template = [pydicom.dcmread(r["path"]) for r in rows]
    per_thread = [_studies(template, studies_per_association) for _ in range(associations)]
    proc, port = start_embedded_serve(work / "data", stable_age="3600", complete_grace="3600")
    # Drain its output as journald would: an undrained pipe fills (64 KiB, ~200 INFO lines)
    # and every thread that logs then blocks (a first version of this bench saw that stall).
    captured: dict[str, list[str]] = {"out": [], "err": []}
    drains = [
        threading.Thread(target=lambda f=f, k=k: captured[k].extend(f), daemon=True)
        for k, f in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for drain in drains:
        drain.start()
    # One process per association, as 20 modalities are 20 processes.
    for k, studies in enumerate(per_thread):
        folder = work / "send" / f"a{k:02d}"
        folder.mkdir(parents=True)
        for i, ds in enumerate(ds for study in studies for ds in study):
            ds.save_as(folder / f"{i:03d}.dcm", enforce_file_format=True)
    # fork: the children only run _send (the drain threads here hold no lock they need)
    ctx = multiprocessing.get_context("fork")
    try:
        with ctx.Pool(associations) as pool:
            go = time.time() + 2.0  # every sender starts at once
            jobs = [
                pool.apply_async(_send, (str(work / "send" / f"a{k:02d}"), port, go))
                for k in range(associations)
            ]
            results = [j.get(600) for j in jobs]
        wall = max(r["end"] for r in results) - go
        statuses = [s for r in results for s in r["statuses"]]
        latencies = [x for r in results for x in r["latencies"]]
        errors = [r["error"] for r in results if r["error"]]
        rss = _peak_rss_mib(proc.pid)
        index = SqliteIndex(work / "data" / "index.sqlite3", readonly=True)
        try:
            study_uids = {s[0].StudyInstanceUID for studies in per_thread for s in studies}
            indexed = sum(len(index.instances(u)) for u in study_uids)
            studies_indexed = sum(1 for u in study_uids if index.get_study(u) is not None)
        finally:
            index.close()
        spooled = sum(1 for p in (work / "data" / "spool").rglob("*.dcm") if p.is_file())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        for drain in drains:
            drain.join(10)
        err = "".join(captured["err"])
    lat = np.array(latencies) * 1000
    sent = associations * studies_per_association * 4
    return {
        "associations": associations,
        "studies": associations * studies_per_association,
        "instances_sent": sent,
        "instances_ok": sum(s == 0 for s in statuses),
        "statuses": sorted({f"0x{s:04X}" for s in statuses}),
        "errors": errors,
        "instances_indexed": indexed,
        "studies_indexed": studies_indexed,
        "files_in_spool": spooled,
        "wall_s": wall,
        "instances_per_s": sent / wall if wall else None,
        "latency_ms": {
            q: float(np.percentile(lat, p)) if len(lat) else None
            for q, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
        },
        "instance_bytes": template[0].PixelData and len(template[0].PixelData),
        "service_peak_rss_mib": rss,
        "service_exit_code": proc.returncode,
        "service_stderr_tail": err[-2000:] if proc.returncode else "",
        "service_warnings": [
            line[:300] for line in err.splitlines() if "[warning" in line or "[error" in line
        ][:40],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/load.py", description="Concurrent associations into brgan serve."
    )
    parser.add_argument("--associations", type=int, default=20)
    parser.add_argument("--studies-per-association", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="brgan-load-") as tmp:
        result = run_load(Path(tmp), args.associations, args.studies_per_association)
    result["machine"] = machine_info()
    result["command"] = "bench/load.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    return 0 if result["instances_ok"] == result["instances_sent"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
