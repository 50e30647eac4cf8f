"""Last C-STORE of a study into Orthanc → its SR queryable in Orthanc, split by stage (issue 12 §6).

The hospital chain of ``tests/system/test_hospital_chain.py``, timed: a modality (dcmtk
``storescu``, AE MODALITY) stores four-view studies into Orthanc (the deploy config and the
routing Lua, ``StableAge`` 1 s, the minimum); Orthanc routes each stable study to our listener;
the coordinator assembles it and the dispatcher queues it on a real Redis; a real
``brgan worker`` process (``--pool solo``) scores it; the dispatcher collects the summary and the
outbox C-STOREs the result objects back to Orthanc (AE BRGAN); this script polls Orthanc until
the study's SR is queryable (QIDO-RS ``GET /dicom-web/studies/{uid}/series?Modality=SR``, or
REST ``/tools/find`` where the DICOMweb plugin is absent). Nothing in the package is changed.

Per study, every time is a wall-clock ``time.time()`` on this one machine:

``router_wait``
    storescu of the study returned (its last C-STORE answered) → the listener received the
    study's first routed instance (``min(instances.received_at)``): Orthanc's StableAge and its
    routing job starting.
``router_transfer``
    first → last routed instance received (Orthanc's C-STORE of the 4 images to us).
``assembly_wait``
    last instance received → study queued (``studies.queued_at``): the coordinator's
    ``complete_grace`` after the four views, its pass interval, planning and the broker send.
``queue_wait``
    queued → the worker task started (its first STARTED meta's ``heartbeat``, polled from the
    result back-end every 50 ms). In a burst it is split into ``backlog`` (the worker still busy
    with earlier studies: until the previous task ended) and ``pickup`` (the rest).
``inference``
    the worker summary's ``preprocess_s + predict_s``.
``writing``
    ``write_s`` (the DICOM result objects).
``worker_other``
    task start → task end (Celery ``date_done``) minus inference and writing: model lookup,
    heatmap PNGs, the task's own overhead.
``collect``
    task end → the study's outbox rows created (the dispatcher's reconcile pass reads the result).
``sending``
    outbox rows created → the last row settled (``settled_at``, else ``last_attempt_at``), or
    → the SR first seen in Orthanc if that came first (the outbox records the rows of one
    association when it ends; the SR is sent first).
``visible``
    end of ``sending`` → this script first sees the SR series (Orthanc indexing + the poll,
    100 ms); 0 when the SR was seen before the outbox recorded the last row.

``total`` = SR queryable − last C-STORE; ``remainder`` = total − (router wait, router transfer,
assembly, queue wait, inference, writing, sending) = worker_other + collect + visible.
"plugin overhead" = total − router_wait − inference (the figure of issue 12 §6, goal ≤ 5 s a
study); in a burst also without the backlog (time a study waits for the worker busy on the
*other* studies' inference is throughput, not overhead).

Phases: an untimed warm-up study (one ``bench-cpu`` study through the whole chain: the worker's
cold model load, Orthanc's and the outbox's first associations); then ``single``, one study alone
in an idle pipeline; then (``--studies N`` > 1) ``batch``, N further studies stored back to back
(one storescu association per study, the next started as soon as the previous returned), as a
modality's burst. The coordinator, dispatcher and outbox use the project's default settings
(``complete_grace`` 10 s, coordinator pass 1 s, outbox pass 2 s woken early on new rows) unless
overridden.

Data: ``--preset`` synthetic studies (default ``clinical``, 3328 × 2560 14-bit), cached under
``--cache``; cached sets of the same preset there and in ``/tmp/brgan-bench-worker`` are reused
(any seed; studies are told apart by Study Instance UID) and only the missing ones generated,
under the next free seed. Model: an untrained ``BRGANConfig.preset("brgan", backbone=...)`` at
the preset's model input (1024 × 832 for ``clinical``), registered as ``bench/worker.py`` does.

    .venv/bin/python bench/pipeline.py                   # clinical, ResNet-50: 1 + 10 studies
    .venv/bin/python bench/pipeline.py --studies 5
    .venv/bin/python bench/pipeline.py --tiny --out /tmp/p.json   # smoke run

Results: a markdown table on stdout and JSON in ``docs/bench-results/pipeline-<date>.json``
(``--out PATH`` elsewhere; ``--tiny`` writes JSON only with ``--out``);
``docs/benchmarks-pipeline.md`` records a run.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:
    sys.path.insert(0, _BENCH_DIR)

from common import machine_info, summarize, write_result_json  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "docs" / "bench-results"
DEFAULT_CACHE = Path("/tmp/brgan-bench-pipeline")
SHARED_CACHES = (Path("/tmp/brgan-bench-worker"),)
TARGET_OVERHEAD_S = 5.0
SR_MODALITY = "SR"
#: Stages in table order; their sum is the study's total.
STAGES = (
    "router_wait",
    "router_transfer",
    "assembly_wait",
    "queue_wait",
    "inference",
    "writing",
    "worker_other",
    "collect",
    "sending",
    "visible",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/pipeline.py",
        description="Last C-STORE into Orthanc → SR queryable in Orthanc, split by stage.",
    )
    parser.add_argument("--studies", type=int, default=10,
                        help="studies stored back to back after the single-study run "
                        "(default: 10; 1: the single run only)")  # fmt: skip
    parser.add_argument("--preset", default="clinical", help="synthetic data preset")
    parser.add_argument("--backbone", default="resnet50", help="brgan feature extractor")
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("R", "C"),
        default=None,
        help="model input (default: the preset's, 1024 832 for clinical)",
    )
    parser.add_argument(
        "--complete-grace",
        type=float,
        default=None,
        help="coordinator quiet time after the 4 views (default: the setting's)",
    )
    parser.add_argument(
        "--coordinator-interval",
        type=float,
        default=None,
        help="coordinator pass interval, s (default: the setting's)",
    )
    parser.add_argument(
        "--outbox-interval",
        type=float,
        default=None,
        help="outbox pass interval, s (default: the setting's)",
    )
    parser.add_argument("--no-warmup", action="store_true", help="skip the warm-up study")
    parser.add_argument("--seed", type=int, default=0, help="weights seed (default: 0)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"cached studies and the run folder (default: {DEFAULT_CACHE})",
    )
    parser.add_argument("--gen-workers", type=int, default=2)
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds a phase may take before the run stops (default: 600)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON path (default: docs/bench-results/pipeline-<date>.json)",
    )
    parser.add_argument("--no-json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the run folder")
    parser.add_argument(
        "--tiny", action="store_true", help="smoke run: bench-cpu data, tiny backbone, 1 study"
    )
    return parser  # fmt: skip


def tools_missing() -> list[str]:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.deploy.orthanc import orthanc_binary

    missing = []
    for tool, hint in (("storescu", "dcmtk"), ("redis-server", "redis-server")):
        if shutil.which(tool) is None:
            missing.append(f"{tool} (apt: {hint})")
    if orthanc_binary() is None:
        missing.append("Orthanc (apt: orthanc)")
    return missing


# -- data -----------------------------------------------------------------------------------


def _read_sets(folder: Path) -> list[tuple[str, list[Path]]]:
    with (folder / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_study: dict[str, list[Path]] = {}
    for row in rows:
        by_study.setdefault(row["study_uid"], []).append(folder / row["path"])
    return [(uid, sorted(paths)) for uid, paths in by_study.items() if len(paths) == 4]


def ensure_studies(
    cache: Path,
    preset: str,
    count: int,
    workers: int,
    *,
    shared: Sequence[Path] = SHARED_CACHES,
    seed_base: int = 0,
) -> list[tuple[str, list[Path]]]:
    """``count`` distinct four-view ``preset`` studies ``(study_uid, files)``: cached ones (here
    and in ``shared``) first, the missing ones generated under the next unused seed."""
    found: dict[str, list[Path]] = {}
    seeds = set()
    for root in (cache, *shared):
        for folder in sorted(root.glob(f"{preset}-seed*-n*")):
            if not (folder / "manifest.csv").is_file():
                continue
            seed = folder.name[len(preset) + 5 :].partition("-n")[0]
            if seed.isdigit():
                seeds.add(int(seed))
            if int(seed or -1) < seed_base:
                continue
            for uid, files in _read_sets(folder):
                found.setdefault(uid, files)
    missing = count - len(found)
    if missing > 0:
        from brgan_core.synth import get_preset, write_dataset

        seed = max([seed_base - 1, *seeds]) + 1
        folder = cache / f"{preset}-seed{seed}-n{missing}"
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        print(f"generating {missing} {preset} studies into {folder} …", file=sys.stderr,
              flush=True)  # fmt: skip
        start = time.monotonic()
        write_dataset(partial, missing, get_preset(preset), seed, workers=workers)
        partial.rename(folder)
        print(f"  done in {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
        for uid, files in _read_sets(folder):
            found.setdefault(uid, files)
    if len(found) < count:
        raise SystemExit(f"only {len(found)} {preset} studies under {cache}; expected {count}")
    return list(found.items())[:count]


# -- the chain --------------------------------------------------------------------------------


class Chain:
    """Redis, a ``brgan worker`` process, the listener + coordinator + dispatcher + outbox, and
    Orthanc with the routing Lua, wired as ``tests/system/test_hospital_chain.py`` does."""

    def __init__(self, work: Path, args: argparse.Namespace, size: tuple[int, int]) -> None:
        if str(REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT))
        from worker import make_registry

        from plugin.coordinator import Coordinator, CoordinatorTiming
        from plugin.coordinator.dispatcher import Dispatcher
        from plugin.coordinator.service import make_outbox
        from tests.deploy.orthanc import start_orthanc
        from tests.plugin.listener.conftest import free_port, make_settings, start
        from tests.plugin.queue.test_pipeline import _redis_server, _worker

        self.procs: list[Any] = []
        self.svc = self.orthanc = self.outbox = None
        redis_port = free_port()
        self.redis = _redis_server(redis_port, work / "redis.log")
        self.procs.append(self.redis)
        defaults = {"complete_grace": args.complete_grace, "stable_age": None,
                    "coordinator_interval": args.coordinator_interval,
                    "outbox_interval": args.outbox_interval}  # fmt: skip
        from plugin.config import Settings

        base = Settings.model_fields
        overrides = {k: (v if v is not None else base[k].default) for k, v in defaults.items()}
        settings = make_settings(
            work / "data",
            broker_url=f"redis://127.0.0.1:{redis_port}/0",
            allowed_calling_aets=["ORTHANC"],
            **overrides,
            destinations=[{"name": "orthanc", "kind": "dimse", "ae_title": "ORTHANC",
                           "host": "127.0.0.1", "port": free_port()}],
        )  # fmt: skip
        self.model = make_registry(settings.registry_path, args.backbone, size, args.seed)
        self.worker = _worker(settings, work / "worker.log")
        self.procs.append(self.worker)
        self.svc = start(settings)
        self.orthanc = start_orthanc(work / "orthanc", listener_port=self.svc.port, stable_age=1)
        settings = settings.model_copy(
            update={"destinations": [settings.destinations[0].model_copy(
                update={"port": self.orthanc.dicom_port, "ae_title": self.orthanc.aet})]}
        )  # fmt: skip
        self.settings = settings
        self.outbox = make_outbox(settings, self.svc.index)
        dispatcher = Dispatcher(settings, self.svc.index, outbox=self.outbox)
        self.svc.coordinator = Coordinator(
            self.svc.index,
            self.svc.spool,
            CoordinatorTiming(settings.complete_grace, settings.stable_age, 7.0,
                              settings.coordinator_interval),
            on_study_ready=dispatcher.on_study_ready,
            reconcile=dispatcher.reconcile,
        )  # fmt: skip
        self.svc.coordinator.start()
        self.outbox.start()
        self.orthanc.request(
            "PUT", "/modalities/modality",
            json.dumps({"AET": "MODALITY", "Host": "127.0.0.1", "Port": 104,
                        "AllowStore": True}).encode(),
        )  # fmt: skip
        plugins = self.orthanc.get("/plugins") or []
        self.qido = "dicom-web" in plugins
        import redis

        self.redis_client = redis.Redis(host="127.0.0.1", port=redis_port)
        self.watch = Watcher(self)
        self.watch.start()

    def store(self, files: Sequence[Path]) -> tuple[float, float]:
        """storescu the files into Orthanc as the modality; (start, end) wall times."""
        t0 = time.time()
        subprocess.run(
            ["storescu", "-aet", "MODALITY", "-aec", self.orthanc.aet, "127.0.0.1",
             str(self.orthanc.dicom_port), *map(str, files)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        return t0, time.time()

    def sr_visible(self, uid: str) -> bool:
        if self.qido:
            query = urllib.parse.urlencode({"Modality": SR_MODALITY})
            try:
                found = self.orthanc.get(f"/dicom-web/studies/{uid}/series?{query}")
            except AssertionError:  # 404 while the study is unknown
                return False
            return bool(found)
        found = self.orthanc.request(
            "POST", "/tools/find",
            json.dumps({"Level": "Series", "Query": {"StudyInstanceUID": uid,
                                                     "Modality": SR_MODALITY}}).encode(),
        )  # fmt: skip
        return bool(found)

    def close(self) -> None:
        """Stop everything; one failing stop does not keep the others (processes) running."""
        for part in ("watch", "outbox", "svc", "orthanc"):
            thing = getattr(self, part, None)
            if thing is not None:
                try:
                    thing.stop()
                except Exception as exc:
                    print(f"stopping {part}: {type(exc).__name__}: {exc}", file=sys.stderr)
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


class Watcher(threading.Thread):
    """Polls the result back-end for each queued task's first STARTED heartbeat (50 ms) and
    Orthanc for each scored study's SR (100 ms)."""

    def __init__(self, chain: Chain) -> None:
        super().__init__(daemon=True)
        self.chain = chain
        self.wanted: set[str] = set()
        self.started: dict[str, float] = {}  # study uid → first heartbeat
        self.visible: dict[str, float] = {}  # study uid → SR first seen
        self.errors: list[str] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def want(self, uids: Sequence[str]) -> None:
        with self._lock:
            self.wanted.update(uids)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def run(self) -> None:
        from plugin.index import StudyState

        last_qido = 0.0
        while not self._halt.wait(0.05):
            try:
                with self._lock:
                    pending = [u for u in self.wanted if u not in self.visible]
                index = self.chain.svc.index
                now = time.time()
                for uid in pending:
                    study = index.get_study(uid)
                    if study is None:
                        continue
                    if uid not in self.started and study.task_id:
                        raw = self.chain.redis_client.get(f"celery-task-meta-{study.task_id}")
                        if raw:
                            meta = json.loads(raw)
                            beat = (meta.get("result") or {}).get("heartbeat")
                            if meta.get("status") == "STARTED" and beat:
                                self.started[uid] = float(beat)
                    scored = study.state in (StudyState.DONE, StudyState.PARTIALLY_ANALYZED)
                    if now - last_qido >= 0.1 and scored and self.chain.sr_visible(uid):
                        self.visible[uid] = time.time()
                if now - last_qido >= 0.1:
                    last_qido = now
            except Exception as exc:  # keep polling; reported at the end
                self.errors.append(f"{type(exc).__name__}: {exc}")


def task_end(chain: Chain, task_id: str) -> float | None:
    raw = chain.redis_client.get(f"celery-task-meta-{task_id}")
    if not raw:
        return None
    done = json.loads(raw).get("date_done")
    if not done:
        return None
    when = dt.datetime.fromisoformat(done)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def run_phase(
    chain: Chain, name: str, studies: Sequence[tuple[str, list[Path]]], timeout: float
) -> list[dict[str, Any]]:
    """Store the studies back to back, wait until every SR is queryable; one row per study."""
    uids = [uid for uid, _ in studies]
    chain.watch.want(uids)
    stored: dict[str, tuple[float, float]] = {}
    for uid, files in studies:
        stored[uid] = chain.store(files)
    deadline = time.monotonic() + timeout
    while not all(u in chain.watch.visible for u in uids):
        if time.monotonic() > deadline:
            states = {u[-12:]: str(chain.svc.index.get_study(u).state)
                      if chain.svc.index.get_study(u) else None for u in uids}  # fmt: skip
            raise SystemExit(f"phase {name}: SR not queryable after {timeout:.0f} s: {states}; "
                             f"watcher errors: {chain.watch.errors[-3:]}")  # fmt: skip
        time.sleep(0.1)

    # the SR can be queryable before the outbox has recorded the last object of the study
    def settled() -> bool:
        rows = [r for u in uids for r in chain.svc.index.outbox_rows(study_uid=u)]
        return bool(rows) and all(r.settled_at or r.last_attempt_at for r in rows)

    while not settled():
        if time.monotonic() > deadline:
            raise SystemExit(f"phase {name}: outbox rows not settled after {timeout:.0f} s")
        time.sleep(0.1)
    rows = [study_row(chain, name, uid, *stored[uid]) for uid in uids]
    # backlog: a task waited for the worker busy with an earlier task of the phase
    ends = sorted((r["t"]["task_start"], r["t"]["task_end"]) for r in rows)
    for row in rows:
        before = [end for start, end in ends if start < row["t"]["task_start"]]
        prev_end = max(before) if before else 0.0
        q = row["stages_s"]["queue_wait"]
        backlog = min(max(prev_end - row["t"]["queued"], 0.0), q)
        row["backlog_s"], row["pickup_s"] = backlog, q - backlog
        row["plugin_overhead_no_backlog_s"] = row["plugin_overhead_s"] - backlog
    return rows


def study_row(chain: Chain, phase: str, uid: str, store_start: float, store_end: float
              ) -> dict[str, Any]:  # fmt: skip
    index = chain.svc.index
    study = index.get_study(uid)
    received = [i.received_at for i in index.instances(uid)]
    result = json.loads(study.result_json or "{}")
    timings = result.get("timings", {})
    outbox = index.outbox_rows(study_uid=uid)
    settled = [r.settled_at or r.last_attempt_at for r in outbox]
    started = chain.watch.started.get(uid)
    ended = task_end(chain, study.task_id)
    if ended is None:
        raise SystemExit(f"{uid}: no task end in the result back-end")
    if started is None:  # missed the STARTED meta: the worker's own total before its end
        started = ended - float(timings.get("total_s", 0.0))
    t = {
        "store_start": store_start,
        "store_end": store_end,
        "first_received": min(received),
        "last_received": max(received),
        "queued": study.queued_at,
        "task_start": started,
        "task_end": ended,
        "outbox_created": min(r.created_at for r in outbox),
        "outbox_settled": max(s for s in settled if s is not None),
        "sr_visible": chain.watch.visible[uid],
    }
    # sending ends when the study's last object is recorded settled, or when the SR is
    # queryable if that came first (the outbox records a whole association's rows at its end)
    send_end = min(t["outbox_settled"], t["sr_visible"])
    inference = float(timings["preprocess_s"]) + float(timings["predict_s"])
    writing = float(timings["write_s"])
    stages = {
        "router_wait": t["first_received"] - t["store_end"],
        "router_transfer": t["last_received"] - t["first_received"],
        "assembly_wait": t["queued"] - t["last_received"],
        "queue_wait": t["task_start"] - t["queued"],
        "inference": inference,
        "writing": writing,
        "worker_other": (t["task_end"] - t["task_start"]) - inference - writing,
        "collect": t["outbox_created"] - t["task_end"],
        "sending": send_end - t["outbox_created"],
        "visible": t["sr_visible"] - send_end,
    }
    total = t["sr_visible"] - t["store_end"]
    named = ("router_wait", "router_transfer", "assembly_wait", "queue_wait", "inference",
             "writing", "sending")  # fmt: skip
    return {
        "phase": phase,
        "study_uid": uid,
        "state": str(study.state),
        "instances": len(received),
        "result_objects": len(outbox),
        "outbox_states": sorted({str(r.state) for r in outbox}),
        "store_s": store_end - store_start,
        "total_s": total,
        "stages_s": stages,
        "remainder_s": total - sum(stages[k] for k in named),
        "plugin_overhead_s": total - stages["router_wait"] - inference,
        "heartbeat_seen": uid in chain.watch.started,
        "worker_timings": timings,
        "t": {k: v - store_end for k, v in t.items()},
        "t_abs": t,
    }


# -- reporting --------------------------------------------------------------------------------


def _stats(values: Sequence[float]) -> dict[str, float]:
    out = dict(summarize(values))
    out["mean"] = statistics.fmean(values)
    return out


def phase_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    first, last = (
        min(r["t_abs"]["store_end"] for r in rows),
        max(r["t_abs"]["sr_visible"] for r in rows),
    )
    return {
        "studies": len(rows),
        "stages_s": {k: _stats([r["stages_s"][k] for r in rows]) for k in STAGES},
        "total_s": _stats([r["total_s"] for r in rows]),
        "remainder_s": _stats([r["remainder_s"] for r in rows]),
        "plugin_overhead_s": _stats([r["plugin_overhead_s"] for r in rows]),
        "plugin_overhead_no_backlog_s": _stats([r["plugin_overhead_no_backlog_s"] for r in rows]),
        "backlog_s": _stats([r["backlog_s"] for r in rows]),
        "pickup_s": _stats([r["pickup_s"] for r in rows]),
        "store_s": _stats([r["store_s"] for r in rows]),
        "makespan_s": last - first,
        "studies_per_min": 60 * len(rows) / (last - first) if last > first else None,
    }


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [
        f"Pipeline, last C-STORE into Orthanc → SR queryable: {cfg['preset']} data "
        f"({cfg['stored'][0]}×{cfg['stored'][1]}), brgan/{cfg['backbone']} at "
        f"{cfg['input'][0]}×{cfg['input'][1]} on CPU, Orthanc StableAge "
        f"{cfg['orthanc_stable_age']} s, complete_grace {cfg['complete_grace']} s, coordinator "
        f"pass {cfg['coordinator_interval']} s, outbox pass {cfg['outbox_interval']} s",
        "",
    ]
    for name, ph in result["phases"].items():
        lines += [
            f"{name}: {ph['studies']} stud{'y' if ph['studies'] == 1 else 'ies'}"
            + (f", makespan {ph['makespan_s']:.1f} s ({ph['studies_per_min']:.2f} studies/min)"
               if ph["studies"] > 1 and ph["studies_per_min"] else ""),
            "",
            "| stage | mean s | median s | min s | max s | share of total (means) |",
            "|---|---:|---:|---:|---:|---:|",
        ]  # fmt: skip
        tot = ph["total_s"]["mean"]
        for k in STAGES:
            s = ph["stages_s"][k]
            lines.append(f"| {k} | {s['mean']:.3f} | {s['median']:.3f} | {s['min']:.3f} "
                         f"| {s['max']:.3f} | {100 * s['mean'] / tot:.1f} % |")  # fmt: skip
        for label, key in (("**total**", "total_s"), ("remainder", "remainder_s"),
                           ("plugin overhead (total − router_wait − inference)",
                            "plugin_overhead_s"),
                           ("plugin overhead without backlog", "plugin_overhead_no_backlog_s"),
                           ("queue_wait: backlog", "backlog_s"),
                           ("queue_wait: pickup", "pickup_s")):  # fmt: skip
            s = ph[key]
            lines.append(f"| {label} | {s['mean']:.3f} | {s['median']:.3f} | {s['min']:.3f} "
                         f"| {s['max']:.3f} | |")  # fmt: skip
        lines.append("")
    lines.append(f"goal: plugin overhead ≤ {TARGET_OVERHEAD_S:g} s per study")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.tiny:
        args.preset, args.backbone, args.studies = "bench-cpu", "tiny", 1
    if args.studies < 1:
        raise SystemExit("--studies must be at least 1")
    missing = tools_missing()
    if missing:
        raise SystemExit("bench/pipeline.py needs " + "; ".join(missing))
    from brgan_core.synth import get_preset

    try:
        preset = get_preset(args.preset)
    except (KeyError, ValueError) as exc:
        raise SystemExit(f"bench/pipeline.py: {exc}") from None
    size = tuple(args.size) if args.size else tuple(preset.model_input_size)
    info = machine_info()
    cache = args.cache
    cache.mkdir(parents=True, exist_ok=True)
    need = 1 + (args.studies if args.studies > 1 else 0)
    t_gen = time.monotonic()
    studies = ensure_studies(cache, args.preset, need, args.gen_workers)
    warm = [] if args.no_warmup else ensure_studies(
        cache / "warmup", "bench-cpu", 1, 1, shared=(), seed_base=99
    )  # fmt: skip
    gen_s = time.monotonic() - t_gen
    work = Path(tempfile.mkdtemp(prefix="run-", dir=cache))
    chain = None
    phases: dict[str, list[dict[str, Any]]] = {}
    try:
        chain = Chain(work, args, size)
        print(f"{args.preset}, brgan/{args.backbone} at {size[0]}×{size[1]}: warm-up "
              f"{len(warm)}, single 1, batch {need - 1}", file=sys.stderr, flush=True)  # fmt: skip
        phase_list = [("warmup", warm), ("single", studies[:1])]
        if need > 1:
            phase_list.append(("batch", studies[1:]))
        for name, group in phase_list:
            if not group:
                continue
            start = time.monotonic()
            phases[name] = run_phase(chain, name, group, args.timeout)
            print(f"  {name}: {len(group)} studies in {time.monotonic() - start:.1f} s; total "
                  + ", ".join(f"{r['total_s']:.1f}" for r in phases[name])
                  + " s; overhead " + ", ".join(f"{r['plugin_overhead_s']:.1f}"
                                                for r in phases[name]),
                  file=sys.stderr, flush=True)  # fmt: skip
        s = chain.settings
        config = {
            "preset": args.preset,
            "stored": list(preset.image_size),
            "backbone": args.backbone,
            "input": list(size),
            "device": "cpu (worker default auto; no CUDA here)",
            "weights": "untrained (random init); timing does not depend on weight values",
            "orthanc_stable_age": 1,
            "complete_grace": s.complete_grace,
            "stable_age": s.stable_age,
            "coordinator_interval": s.coordinator_interval,
            "outbox_interval": s.outbox_interval,
            "worker_heartbeat": s.worker_heartbeat,
            "worker": "brgan worker --pool solo (one process)",
            "sr_query": "QIDO-RS /dicom-web/studies/{uid}/series?Modality=SR"
            if chain.qido
            else "REST /tools/find Level Series Modality SR",
            "batch": "one storescu association per study, started as the previous returned",
            "single_case": "a separate single-study phase on an idle, warmed pipeline",
            "generation_s": gen_s,
            "watcher_errors": chain.watch.errors[-5:],
        }
    finally:
        if chain is not None:
            chain.close()
        if args.keep:
            print(f"run folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": "pipeline",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "bench/pipeline.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "config": config,
        "machine": dict(info, loadavg_end=list(os.getloadavg())),
        "target_plugin_overhead_s": TARGET_OVERHEAD_S,
        "phases": {k: phase_summary(v) for k, v in phases.items() if k != "warmup"},
        "warmup_studies": phases.get("warmup", []),
        "studies": [r for k, v in phases.items() if k != "warmup" for r in v],
    }
    print(markdown(result))
    if not args.no_json and (args.out is not None or not args.tiny):
        write_result_json(
            result, args.out or RESULTS_DIR / f"pipeline-{dt.date.today().isoformat()}.json"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
