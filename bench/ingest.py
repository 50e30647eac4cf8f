"""Ingest throughput of the listener against dcmtk ``storescp`` on loopback (issue 4, section 8).

One run: synthetic full-field 14-bit four-view studies (the ``clinical`` preset, 3328×2560,
about 17 MB per instance) are generated once into a cache folder outside the repository and
reused; then dcmtk ``storescu`` sends the first ``--studies`` of them, one association per study
(one ``storescu`` process per study, studies one after another), to

(a) ``brgan serve`` as a separate process, with its production defaults: chunked receive to the
    spool, fsync of every file and folder before the C-STORE response, the SQLite index (WAL)
    and the coordinator running; only data folder, host, port and calling-AE whitelist are set,
    and ``--no-embedded-worker`` (a scoring worker is a separate compute process, started
    elsewhere with a broker; ``--embedded-worker`` here keeps it);
(b) dcmtk ``storescp --output-directory DIR`` writing each instance to disk (no fsync).

Rounds alternate a/b in ABBA order (a b, b a, a b, …) so drift on a shared machine hits both
alike; every round starts a fresh server with an empty folder (warmed up by one untimed
``echoscu`` association, as a long-running service would be), and ``sync`` plus a short rest
(``--settle``) come before each timed send so one target's dirty pages are not flushed during the
other's run. Received files are deleted only at the end: deleting hundreds of MB between rounds
slowed whichever target ran next. The clock runs
from the first ``storescu`` start to the last one's exit; every instance must be acknowledged
(storescu exit 0) and found afterwards (index rows / files), or the run fails.

The listener's peak RSS is its ``VmHWM`` (``/proc/<pid>/status``) read before it is stopped,
cross-checked by polling ``VmRSS``. A last pair of rounds sends twice the studies (``--growth``)
to show whether the peak grows with N.

    .venv/bin/python bench/ingest.py                 # 5 studies (20 instances), 10 rounds each
    .venv/bin/python bench/ingest.py --studies 2 --rounds 1 --no-growth

Results: a markdown table on stdout, JSON in ``docs/bench-results/ingest-<date>.json``;
``docs/benchmarks-ingest.md`` records a run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:  # run as a script or loaded by path: ``bench`` is no package
    sys.path.insert(0, _BENCH_DIR)

from common import machine_info, summarize  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "docs" / "bench-results"
DEFAULT_CACHE = Path("/tmp/brgan-bench-ingest")
CALLING_AE = "BENCHSCU"
CALLED_AE = "BRGAN"
TARGET_RATIO = 0.9
TARGET_RSS_MB = 300
TARGETS = ("listener", "storescp")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (``--help`` lists them)."""
    parser = argparse.ArgumentParser(
        prog="bench/ingest.py",
        description="storescu → brgan serve vs storescu → dcmtk storescp, interleaved, loopback.",
    )
    parser.add_argument(
        "--studies", type=int, default=5, help="four-view studies per round (default: 5)"
    )
    parser.add_argument(
        "--rounds", type=int, default=10, help="timed rounds per target (default: 10)"
    )
    parser.add_argument(
        "--growth",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one more round per target with 2× the studies, for RSS growth (default: on)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"synthetic studies (generated once) and run folders (default: {DEFAULT_CACHE})",
    )
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed (default: 0)")
    parser.add_argument(
        "--gen-workers", type=int, default=2, help="processes generating the studies"
    )
    parser.add_argument(
        "--required-contexts",
        action="store_true",
        help="storescu -R: propose only the SOP classes being sent (default: storescu proposes "
        "every storage class, as dcmtk does out of the box)",
    )
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="one more, untimed listener round sampled by py-spy (pip install py-spy); "
        "where the listener's time goes goes into the JSON",
    )
    parser.add_argument(
        "--embedded-worker",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="let brgan serve start its embedded scoring worker (a Celery process; its start-up "
        "shares the CPU with the timed send of a fresh server; default: off, as with a "
        "broker in production)",
    )
    parser.add_argument(
        "--max-pdu",
        type=int,
        default=None,
        help="largest PDU both servers receive (BRGAN_MAX_PDU_SIZE, storescp --max-pdu; "
        "4096–131072); default: each one's own (16382 and 16384)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="seconds of rest after sync, before each timed send (default: 1)",
    )
    parser.add_argument(
        "--poll", type=float, default=0.05, help="seconds between VmRSS polls (default: 0.05)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="JSON result path (default: docs/bench-results/ingest-<date>.json)",
    )
    parser.add_argument("--no-json", action="store_true", help="print only, write no JSON")
    return parser


# -- data ---------------------------------------------------------------------------------


def ensure_studies(cache: Path, count: int, seed: int, workers: int) -> list[list[Path]]:
    """``count`` clinical four-view studies under ``cache`` (generated once); files per study.

    A cached set of more studies with the same seed is reused (patient i depends only on the
    seed and i, so its first ``count`` studies are the same).
    """
    folder = cache / f"clinical-seed{seed}-n{count}"
    for bigger in sorted(cache.glob(f"clinical-seed{seed}-n*")):
        size = bigger.name.rpartition("-n")[2]
        if size.isdigit() and int(size) > count and (bigger / "manifest.csv").is_file():
            folder = bigger
            break
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        from brgan_core.synth import get_preset, write_dataset

        print(f"generating {count} clinical studies into {folder} …", file=sys.stderr, flush=True)
        start = time.monotonic()
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        write_dataset(
            partial,
            count,
            get_preset("clinical"),
            seed,
            workers=workers,
            progress=lambda done: print(f"  {done}/{count}", file=sys.stderr, flush=True),
        )
        partial.rename(folder)
        print(f"  done in {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    studies = sorted(p for p in folder.iterdir() if p.is_dir())  # also masks/ (no .dcm)
    files = [f for f in (sorted(s.glob("*.dcm")) for s in studies) if f]
    if len(files) < count or any(len(f) != 4 for f in files):
        raise SystemExit(f"{folder}: expected {count} four-view studies; delete it to regenerate")
    return files[:count]


# -- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Block until something accepts on 127.0.0.1:port (fail early if ``proc`` died)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def status_kb(pid: int, field_name: str) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (VmRSS, VmHWM), or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, all its threads (``/proc/<pid>/stat``)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # after "pid (comm)": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssPoller(threading.Thread):
    """Polls a process's VmRSS; keeps the maximum seen."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.max_kb = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            kb = status_kb(self.pid, "VmRSS")
            if kb is not None:
                self.max_kb = max(self.max_kb, kb)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


@dataclass
class Server:
    """A running target: its process, port, output folder and log file."""

    target: str
    proc: subprocess.Popen[bytes]
    port: int
    folder: Path
    log: Any


@contextlib.contextmanager
def start_server(
    target: str, folder: Path, *, embedded_worker: bool = False, max_pdu: int | None = None
) -> Iterator[Server]:
    """Start ``brgan serve`` or ``storescp`` on a free loopback port writing into ``folder``."""
    folder.mkdir(parents=True)
    port = free_port()
    log = (folder.parent / f"{folder.name}.log").open("wb")
    if target == "listener":
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("BRGAN_")
        }  # production defaults: nothing from the caller's environment
        env.update(
            BRGAN_DATA_DIR=str(folder),
            BRGAN_HOST="127.0.0.1",
            BRGAN_PORT=str(port),
            BRGAN_ALLOWED_CALLING_AETS=json.dumps([CALLING_AE]),
        )
        if max_pdu is not None:
            env["BRGAN_MAX_PDU_SIZE"] = str(max_pdu)
        cmd = [sys.executable, "-m", "plugin.cli.main", "serve"]
        if not embedded_worker:
            cmd.append("--no-embedded-worker")
    else:
        env = dict(os.environ)
        cmd = ["storescp", "-aet", CALLED_AE, "--output-directory", str(folder), str(port)]
        if max_pdu is not None:
            cmd[1:1] = ["--max-pdu", str(max_pdu)]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(target, proc, port, folder, log)
    try:
        wait_for_port(port, proc)
        warm_up(port)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def warm_up(port: int) -> None:
    """One C-ECHO association (dcmtk ``echoscu``), untimed: a long-running service is warm."""
    cmd = ["echoscu", "-aet", CALLING_AE, "-aec", CALLED_AE, "127.0.0.1", str(port)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"echoscu failed ({done.returncode}): {done.stderr.strip()}")


def send_studies(
    port: int, studies: Sequence[Sequence[Path]], *, required_only: bool = False
) -> None:
    """One ``storescu`` association per study, one after another; raises on any failure."""
    for files in studies:
        cmd = ["storescu", "-aet", CALLING_AE, "-aec", CALLED_AE, "127.0.0.1", str(port)]
        if required_only:
            cmd.insert(1, "-R")
        done = subprocess.run([*cmd, *map(str, files)], capture_output=True, text=True, check=False)
        if done.returncode != 0 or "E:" in done.stderr:
            raise RuntimeError(f"storescu failed ({done.returncode}): {done.stderr.strip()}")


def received(server: Server) -> int:
    """Instances the target has stored (index rows for the listener, files for storescp)."""
    if server.target == "listener":
        uri = f"file:{server.folder / 'index.sqlite3'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM instances").fetchone()[0])
    return sum(1 for p in server.folder.rglob("*") if p.is_file())


# -- one round ----------------------------------------------------------------------------


@dataclass
class RoundResult:
    """One timed send of ``instances`` to one target."""

    target: str
    round: int
    studies: int
    instances: int
    megabytes: float
    seconds: float
    server_cpu_s: float
    rss_idle_mb: float | None = None
    rss_peak_mb: float | None = None
    rss_polled_max_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def instances_per_s(self) -> float:
        return self.instances / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.megabytes / self.seconds


def run_round(
    target: str,
    number: int,
    studies: Sequence[Sequence[Path]],
    runs: Path,
    args: argparse.Namespace,
    *,
    profile_out: Path | None = None,
) -> RoundResult:
    """Start a fresh target, send ``studies``, check everything arrived, stop it.

    With ``profile_out`` the target is sampled by ``py-spy record`` while it receives.
    """
    suffix = "-profiled" if profile_out else ""
    folder = runs / f"{target}-{number:02d}-{len(studies)}{suffix}"
    instances = sum(len(f) for f in studies)
    megabytes = sum(p.stat().st_size for f in studies for p in f) / 1e6
    with start_server(
        target, folder, embedded_worker=args.embedded_worker, max_pdu=args.max_pdu
    ) as server:
        idle = status_kb(server.proc.pid, "VmRSS")
        poller = RssPoller(server.proc.pid, args.poll) if target == "listener" else None
        spy = start_py_spy(server.proc.pid, profile_out) if profile_out else None
        os.sync()
        time.sleep(args.settle)
        if poller is not None:
            poller.start()
        cpu_before = cpu_seconds(server.proc.pid) or 0.0
        start = time.perf_counter()
        send_studies(server.port, studies, required_only=args.required_contexts)
        seconds = time.perf_counter() - start
        cpu = (cpu_seconds(server.proc.pid) or 0.0) - cpu_before
        hwm = status_kb(server.proc.pid, "VmHWM")
        if poller is not None:
            poller.stop()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        children = _children(server.proc.pid)
    got = received(server)
    if got != instances:
        raise RuntimeError(f"{target}: sent {instances} instances, {got} stored")
    result = RoundResult(target, number, len(studies), instances, megabytes, seconds, cpu)
    if target == "listener":
        result.rss_idle_mb = (idle or 0) / 1024
        result.rss_peak_mb = (hwm or 0) / 1024
        result.rss_polled_max_mb = (poller.max_kb if poller else 0) / 1024
        result.extra["child_processes"] = children
    print(
        f"  {target:8s} round {number}: {instances} instances, {seconds:.2f} s, "
        f"{result.mb_per_s:.0f} MB/s"
        + (f", peak RSS {result.rss_peak_mb:.0f} MB" if result.rss_peak_mb else "")
        + (" (profiled, not counted)" if profile_out else ""),
        file=sys.stderr,
        flush=True,
    )
    return result


# -- profile ------------------------------------------------------------------------------


def start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """``py-spy record`` attached to ``pid``: every thread, idle ones too, collapsed stacks."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    cmd = [exe, "record", "-p", str(pid), "--idle", "--threads", "--rate", "200"]
    spy = subprocess.Popen(
        [*cmd, "--format", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches before the first association
    if spy.poll() is not None:
        raise RuntimeError(f"py-spy exited with status {spy.returncode} (is it installed?)")
    return spy


#: Leaf frames of a thread that waits for work (not receive time): locks, selectors, the
#: 1 ms polling sleeps of pynetdicom's reactors.
IDLE_LEAVES = (
    "Condition.wait",
    "_PollLikeSelector.select",
    "Association._run_reactor (pynetdicom/association.py",
    "DULServiceProvider.run_reactor (pynetdicom/dul.py",
)

#: Receive steps, by a function that appears in the stack (first match wins).
STEPS = (
    ("association negotiation (presentation contexts)", ("ACSE.negotiate_association",)),
    ("association set-up (AE contexts deep-copied)", ("RequestHandler._create_association",)),
    ("spool: fsync file + folder, rename", ("Spool.move_in", "Spool.write_bytes", "_fsync_dir")),
    ("header read (pydicom, stop_before_pixels)", ("read_header",)),
    ("classify", ("classify",)),
    ("SQLite index", ("SqliteIndex.",)),
    ("logging", ("BoundLoggerLazyProxy", "_proxy_to_logger", "Logger.handle")),
    ("chunked receive: DIMSE decode, temp-file writes", ("DIMSEMessage.decode_msg",)),
    ("DUL: socket read and PDU decode", ("DULServiceProvider",)),
    ("DIMSE / other pynetdicom", ("pynetdicom/",)),
)


def summarize_profile(path: Path, rate: float = 200.0) -> dict[str, Any]:
    """Busy seconds per receive step from py-spy's collapsed stacks (idle waits left out)."""
    busy: dict[str, float] = {}
    idle = 0.0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        seconds = int(count) / rate
        frames = stack.split(";")
        if any(frames[-1].startswith(leaf) for leaf in IDLE_LEAVES):
            idle += seconds
            continue
        step = next(
            (name for name, keys in STEPS if any(k in f for f in frames for k in keys)), "other"
        )
        busy[step] = busy.get(step, 0.0) + seconds
    ordered = dict(sorted(busy.items(), key=lambda kv: -kv[1]))
    return {"busy_seconds_by_step": ordered, "idle_thread_seconds": idle, "file": str(path)}


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


# -- report -------------------------------------------------------------------------------


def storescp_version() -> str | None:
    """First line of ``storescp --version`` (recorded with the machine description)."""
    version = subprocess.run(["storescp", "--version"], capture_output=True, text=True)
    return version.stdout.splitlines()[0] if version.stdout else None


def bootstrap_median_ci(
    values: Sequence[float], *, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the median (how sure the median ratio is)."""
    rng = random.Random(seed)
    data = list(values)
    medians = sorted(statistics.median(rng.choices(data, k=len(data))) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def build_result(
    args: argparse.Namespace, rounds: list[RoundResult], info: dict[str, Any], cache: Path
) -> dict[str, Any]:
    """Everything measured as a JSON-able dictionary; the ratio is per ABBA pair of rounds."""
    main = [r for r in rounds if r.studies == args.studies]
    by_target = {t: [r for r in main if r.target == t] for t in TARGETS}
    stats = {
        t: {
            "instances_per_s": summarize([r.instances_per_s for r in rs]),
            "mb_per_s": summarize([r.mb_per_s for r in rs]),
            "seconds": summarize([r.seconds for r in rs]),
            "server_cpu_ms_per_instance": summarize(
                [1000 * r.server_cpu_s / r.instances for r in rs]
            ),
        }
        for t, rs in by_target.items()
    }
    listener_s = [r.seconds for r in by_target["listener"]]
    storescp_s = [r.seconds for r in by_target["storescp"]]
    # An ABBA block is two rounds, each target once first and once second: its ratio cancels
    # any "first or second in the round" effect. Same bytes on both sides: a ratio of times.
    block_ratios = [
        (storescp_s[i] + storescp_s[i + 1]) / (listener_s[i] + listener_s[i + 1])
        for i in range(0, len(listener_s) - 1, 2)
    ]
    pair_ratios = [
        a.mb_per_s / b.mb_per_s
        for a, b in zip(by_target["listener"], by_target["storescp"], strict=True)
    ]
    listener = [r for r in rounds if r.target == "listener"]
    rss = {
        str(n): max(r.rss_peak_mb or 0 for r in listener if r.studies == n)
        for n in sorted({r.studies for r in listener})
    }
    return {
        "benchmark": "ingest",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "bench/ingest.py " + " ".join(sys.argv[1:]),
        "config": {
            "studies": args.studies,
            "instances": 4 * args.studies,
            "rounds": args.rounds,
            "growth_round_studies": 2 * args.studies if args.growth else None,
            "preset": "clinical",
            "cache": str(cache),
            "association": "one storescu association per study, studies sequential"
            + (", storescu -R (only the needed contexts)" if args.required_contexts else ""),
            "listener": "python -m plugin.cli.main serve (brgan serve), production defaults"
            + ("" if args.embedded_worker else ", --no-embedded-worker"),
            "max_pdu": args.max_pdu or "defaults (listener 16382, storescp 16384)",
            "storescp": "storescp -aet BRGAN --output-directory DIR PORT",
        },
        "machine": dict(info, loadavg_end=list(os.getloadavg())),
        "stats": stats,
        "ratio_listener_vs_storescp": summarize(pair_ratios)
        | {"ci95_median": list(bootstrap_median_ci(pair_ratios))},
        "ratio_per_round": pair_ratios,
        "ratio_per_abba_block": block_ratios,
        "ratio_abba_blocks": summarize(block_ratios)
        | {"ci95_median": list(bootstrap_median_ci(block_ratios))}
        if block_ratios
        else None,
        "ratio_total_time": sum(storescp_s) / sum(listener_s),
        "target_ratio": TARGET_RATIO,
        "listener_peak_rss_mb_by_studies": rss,
        "target_rss_mb": TARGET_RSS_MB,
        "rounds": [
            asdict(r) | {"instances_per_s": r.instances_per_s, "mb_per_s": r.mb_per_s}
            for r in rounds
        ],
    }


def markdown(result: dict[str, Any]) -> str:
    """The result as markdown tables."""
    cfg = result["config"]
    lines = [
        f"Ingest on loopback: {cfg['studies']} clinical four-view studies "
        f"({cfg['instances']} instances) per round, {cfg['rounds']} rounds per target (ABBA), "
        f"{cfg['association']}",
        "",
        "| target | instances/s (median) | MB/s (median) | MB/s IQR | s per round (median) "
        "| server CPU ms per instance (median) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for target in TARGETS:
        s = result["stats"][target]
        lines.append(
            f"| {target} | {s['instances_per_s']['median']:.2f} | {s['mb_per_s']['median']:.1f} "
            f"| {s['mb_per_s']['iqr']:.1f} | {s['seconds']['median']:.2f} "
            f"| {s['server_cpu_ms_per_instance']['median']:.0f} |"
        )
    ratio = result["ratio_listener_vs_storescp"]
    lines += [
        "",
        "| measure | value | target |",
        "|---|---:|---|",
        f"| listener / storescp throughput (median of paired rounds) | {ratio['median']:.2f} "
        f"(95% CI of median {ratio['ci95_median'][0]:.2f}–{ratio['ci95_median'][1]:.2f}; "
        f"IQR {ratio['iqr']:.2f}, min {ratio['min']:.2f}, max {ratio['max']:.2f}) "
        f"| ≥ {TARGET_RATIO} |",
    ]
    blocks = result["ratio_abba_blocks"]
    if blocks:
        lines.append(
            f"| listener / storescp, per ABBA block (two rounds) | {blocks['median']:.2f} "
            f"(95% CI of median {blocks['ci95_median'][0]:.2f}–{blocks['ci95_median'][1]:.2f}; "
            f"min {blocks['min']:.2f}, max {blocks['max']:.2f}) | ≥ {TARGET_RATIO} |"
        )
    lines.append(
        f"| listener / storescp, all rounds' total time | {result['ratio_total_time']:.2f} "
        f"| ≥ {TARGET_RATIO} |"
    )
    for n, mb in result["listener_peak_rss_mb_by_studies"].items():
        lines.append(
            f"| listener peak RSS (VmHWM), rounds of {n} studies | {mb:.0f} MB "
            f"| < {TARGET_RSS_MB} MB |"
        )
    profile = result.get("profile")
    if profile:
        lines += [
            "",
            "| listener thread time while receiving (py-spy, untimed round) | busy s |",
            "|---|---:|",
        ]
        for step, seconds in profile["busy_seconds_by_step"].items():
            lines.append(f"| {step} | {seconds:.2f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (0)."""
    args = build_parser().parse_args(argv)
    if args.studies < 1 or args.rounds < 1:
        raise SystemExit("--studies and --rounds must be at least 1")
    for tool in ("storescu", "storescp", "echoscu"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: install dcmtk (apt-get install dcmtk)")
    info = machine_info(storescp=storescp_version())
    total = 2 * args.studies if args.growth else args.studies
    studies = ensure_studies(args.cache, total, args.seed, args.gen_workers)
    runs = args.cache / "runs"  # kept until the end: deleting between rounds disturbs the next
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    try:
        rounds, profile = run_all(args, studies, runs)
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    result = build_result(args, rounds, info, args.cache)
    result["profile"] = profile
    print(markdown(result))
    if not args.no_json:
        path = args.json or RESULTS_DIR / f"ingest-{dt.date.today().isoformat()}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"\nJSON: {path}", file=sys.stderr)
    return 0


def run_all(
    args: argparse.Namespace, studies: list[list[Path]], runs: Path
) -> tuple[list[RoundResult], dict[str, Any] | None]:
    """The ABBA rounds, the growth round and the profiled round."""
    rounds: list[RoundResult] = []
    for number in range(args.rounds):
        order = TARGETS if number % 2 == 0 else TARGETS[::-1]
        for target in order:
            rounds.append(run_round(target, number, studies[: args.studies], runs, args))
    if args.growth:
        for target in TARGETS:
            rounds.append(run_round(target, args.rounds, studies, runs, args))
    profile = None
    if args.profile:
        out = args.cache / "listener-py-spy.txt"
        run_round("listener", args.rounds + 1, studies[: args.studies], runs, args, profile_out=out)
        profile = summarize_profile(out)
    return rounds, profile


if __name__ == "__main__":
    sys.exit(main())
