"""Bad input, longer than the suite runs it (issue 13 §2).

Three campaigns with the engine of ``tests/reliability/fuzzing.py`` (the same mutations and
checks as ``tests/reliability/test_bad_input_*.py``, seeded ``random`` instead of hypothesis):

``cstore``
    seeded mutations of valid synthetic mammograms, one kind per mutated view of a four-view
    study, C-STOREd to a real listener (many per association, a C-ECHO after each); the
    statuses, what the spool and index hold, every stored instance's outcome from the plan, and
    for ``--worker-studies`` studies the whole chain (dispatcher → embedded queue → a Celery
    worker thread running ``brgan.analyze_study`` with a tiny model);
``preprocess``
    ``brgan_core.preprocess.preprocess`` on ``--preprocess-cases`` mutated files;
``worker``
    ``plugin.worker.analysis.run_task`` on ``--worker-cases`` two-image studies (a mutated
    image and a valid contralateral).

Every case must end as the suite demands (an allowed status, an outcome for every image, a
``BrganCoreError`` rather than any other exception, no hang); anything else is a *problem*,
listed in the JSON and making the exit status 1.

    .venv/bin/python bench/fuzz.py                       # 5,000 C-STOREs, ~10-15 min on 2 cores
    .venv/bin/python bench/fuzz.py --iterations 300 --no-json --no-doc   # a smoke run
    .venv/bin/python bench/fuzz.py --render docs/bench-results/fuzz-<date>.json  # doc only

Results: markdown tables on stdout, JSON in ``docs/bench-results/fuzz-<date>.json`` (``--json
PATH`` elsewhere, ``--no-json`` not at all), and the "Bad input" section of
``docs/reliability.md`` rewritten between its markers (``--doc PATH``, ``--no-doc``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
if _BENCH_DIR not in sys.path:  # run as a script or loaded by path: ``bench`` is no package
    sys.path.insert(0, _BENCH_DIR)

from common import machine_info, write_result_json  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- bad-input:begin (written by bench/fuzz.py; do not edit by hand) -->"
END = "<!-- bad-input:end -->"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/fuzz.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument("--iterations", type=int, default=5000, help="mutated instances C-STOREd")
    p.add_argument("--batch", type=int, default=50, help="mutated instances per association")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument(
        "--worker-studies",
        type=int,
        default=130,
        help="at most this many C-STOREd studies also go through the worker, about N/13 "
        "per mutation kind (-1: every study)",
    )
    p.add_argument("--preprocess-cases", type=int, default=3000)
    p.add_argument("--worker-cases", type=int, default=260)
    p.add_argument(
        "--work", type=Path, default=None, help="a new work folder (default: a temp one, removed)"
    )
    p.add_argument("--json", type=Path, default=None, help="JSON result path")
    p.add_argument("--no-json", action="store_true")
    p.add_argument("--doc", type=Path, default=REPO_ROOT / "docs" / "reliability.md")
    p.add_argument("--no-doc", action="store_true")
    p.add_argument(
        "--render",
        type=Path,
        default=None,
        help="no run: print the tables of a saved JSON result and rewrite the doc section",
    )
    return p


# -- campaigns ------------------------------------------------------------------------------------


def run_cases(
    args: argparse.Namespace, work: Path
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The preprocessing and worker campaigns: (preprocess report, worker report, problems)."""
    from tests.reliability.fuzzing import (
        KINDS,
        Bounded,
        KindStats,
        RandomDraw,
        fixed_uid,
        instance,
        make_base,
        preprocess_case,
        report_section,
        worker_case,
    )

    rng = random.Random(args.seed + 1)
    draw = RandomDraw(rng)
    base = make_base(work / "cases-base", seed=5)
    run = Bounded()
    problems: list[str] = []
    limit = 2 * 1024**2
    pre: dict[str, KindStats] = defaultdict(KindStats)
    folder = work / "cases"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(args.preprocess_cases):
        kind = KINDS[i % len(KINDS)]
        mutant = instance(rng.choice(base.views), fixed_uid(), kind, draw, limit=limit)
        outcome, problem = preprocess_case(mutant, folder, rng.random() < 0.5, run)
        pre[kind].tried += 1
        pre[kind].outcome[outcome] += 1
        if problem:
            problems.append(f"preprocess {kind} ({mutant.detail}): {problem}")
    worker: dict[str, KindStats] = defaultdict(KindStats)
    if args.worker_cases:
        from plugin.config import Settings
        from plugin.worker.analysis import get_model
        from tests.helpers import make_tiny_registry

        settings = Settings(data_dir=work / "cases-worker", device="cpu")
        version, sha = make_tiny_registry(settings.registry_path)
        loaded = get_model(settings, version, sha)
        for i in range(args.worker_cases):
            kind = KINDS[i % len(KINDS)]
            mutant = instance(rng.choice(base.views), fixed_uid(), kind, draw, limit=limit)
            outcome, problem = worker_case(base, mutant, settings, loaded, run)
            worker[kind].tried += 1
            worker[kind].outcome[outcome] += 1
            if problem:
                problems.append(f"worker {kind} ({mutant.detail}): {problem}")
            shutil.rmtree(settings.spool_path / mutant.study_uid, ignore_errors=True)
    run.close()
    return report_section(pre), report_section(worker), problems


# -- tables ------------------------------------------------------------------------------------


def _cell(counts: dict[str, int] | None, top: int = 3, width: int = 70) -> str:
    """The most frequent outcomes as ``label ×n``; ``|`` escaped for markdown."""
    if not counts:
        return "–"
    items = sorted(counts.items(), key=lambda kv: -kv[1])
    shown = []
    for label, n in items[:top]:
        text = label if len(label) <= width else label[: width - 1] + "…"
        shown.append(f"{text} ×{n}".replace("|", "\\|"))
    more = sum(n for _, n in items[top:])
    return "; ".join(shown) + (f"; +{more} other" if more else "")


def tables(result: dict[str, Any]) -> str:
    """Markdown: the C-STORE table, then the preprocessing / worker table."""
    cstore = result["cstore"]
    lines = [
        f"C-STORE fuzzer: {cstore['mutated_instances']} mutated instances in "
        f"{cstore['studies']} four-view studies ({cstore['instances_sent']} instances with their "
        f"valid views) over {cstore['associations']} associations, "
        f"{cstore['worker_studies']} studies also through the worker; "
        f"{cstore['seconds']:.0f} s; problems: {cstore['problems']}.",
        "",
        "| kind | tried | C-STORE statuses | outcome of stored instances (plan) | worker |",
        "|---|---:|---|---|---|",
    ]
    for kind, stats in cstore["kinds"].items():
        if kind == "unmapped" or not stats.get("tried"):
            continue
        status = ", ".join(f"{k} ×{v}" for k, v in sorted(stats.get("status", {}).items()))
        name = "valid (unmutated views)" if kind == "valid" else kind
        lines.append(
            f"| {name} | {stats['tried']} | {status} | {_cell(stats.get('outcome'))} "
            f"| {_cell(stats.get('worker'), top=2)} |"
        )
    pre, work = result["preprocess"], result["worker"]
    lines += [
        "",
        f"Preprocessing: {sum(s['tried'] for s in pre.values())} mutated files; worker: "
        f"{sum(s['tried'] for s in work.values())} two-image studies (mutated + valid "
        "contralateral); problems: "
        f"{len([p for p in result['problems'] if not p.startswith('cstore')])}.",
        "",
        "| kind | preprocess tried | preprocess outcome | worker tried "
        "| worker outcome (mutated image) |",
        "|---|---:|---|---:|---|",
    ]
    for kind in sorted(set(pre) | set(work)):
        p, w = pre.get(kind, {}), work.get(kind, {})
        lines.append(
            f"| {kind} | {p.get('tried', 0)} | {_cell(p.get('outcome'), top=2)} "
            f"| {w.get('tried', 0)} | {_cell(w.get('outcome'), top=2)} |"
        )
    return "\n".join(lines)


def section(result: dict[str, Any], command: str, json_path: Path | None) -> str:
    machine = result["machine"]
    if json_path is None:
        where = ""
    elif json_path.resolve().is_relative_to(REPO_ROOT):
        where = f" (`{json_path.resolve().relative_to(REPO_ROOT)}`)"
    else:
        where = f" (`{json_path}`)"
    load = (machine.get("loadavg_start") or [float("nan")])[0]
    return "\n".join(
        [
            BEGIN,
            "## Bad input",
            "",
            "The C-STORE fuzzer and the preprocessing / worker fuzzers of "
            "`tests/reliability/test_bad_input_*.py` (the suite runs 1,000 C-STOREs, 400 "
            "preprocessing and 26 worker examples), run longer by `bench/fuzz.py`. Mutations "
            "of valid synthetic mammograms: tags removed, wrong VRs and lengths, truncated and "
            "oversized pixel data, huge Rows/Columns, odd transfer syntaxes (lossless "
            "re-encodings, which must be analyzed, and mismatched or garbage ones), bogus UIDs "
            "(path characters, 64+ characters, …), deep sequences, bad values, pixel contents, "
            "random bytes, truncated headers. Each must end as the service promises: the "
            "listener answers a status its policy allows (`docs/conformance.md`) and keeps "
            "answering C-ECHO; a stored instance is on disk exactly as sent, nothing is "
            "written outside the spool, and every stored image ends analyzed or not analyzed "
            "with a reason; preprocessing and the worker give a model input, a "
            "`BrganCoreError` or a not-analyzed reason, never another exception or a hang. "
            "Any other result is a problem (none in this run).",
            "",
            f"Run {result['date']}: `{command}`{where}; {machine.get('cpu')}, "
            f"{machine.get('cpus')} cores, load average {load:.2f} at the start "
            "(a training run shared the machine).",
            "",
            tables(result),
            "",
            "Outcomes are reason classes (UIDs, paths and numbers replaced by `<uid>`, `<path>`, "
            "`N`); the JSON lists every class with its count.",
            END,
        ]
    )


def write_section(doc: Path, text: str) -> None:
    """Replace the text between the markers of ``doc`` (created, or appended to, if needed)."""
    if doc.is_file():
        current = doc.read_text(encoding="utf-8")
    else:
        current = (
            "# Reliability\n\nWhat the service was seen to survive, measured by tests and "
            "benchmarks (issue 13); each section is written by the script named in it.\n"
        )
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        current = head + text + tail
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(current, encoding="utf-8")


# -- main --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.render is not None:
        import json

        result = json.loads(args.render.read_text(encoding="utf-8"))
        print(tables(result))
        if not args.no_doc:
            command = ".venv/bin/python " + result["command"].strip()
            write_section(args.doc, section(result, command, args.render))
        return 1 if result["problems"] else 0
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from plugin.logging import configure_logging
    from tests.reliability.fuzzing import Campaign, run_cstore_campaign

    configure_logging("ERROR")  # a fuzzer's run is all warnings; the report says what happened
    import warnings

    warnings.simplefilter("ignore")
    owned = args.work is None
    work = Path(tempfile.mkdtemp(prefix="brgan-fuzz-")) if owned else args.work
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    machine = machine_info()
    try:
        cfg = Campaign(
            iterations=args.iterations,
            batch=args.batch,
            seed=args.seed,
            worker_studies=args.worker_studies,
            timeout=max(600.0, 2.0 * max(args.worker_studies, 0)),
        )
        cstore, cstore_problems = run_cstore_campaign(
            work / "cstore", cfg, progress=lambda msg: print(msg, file=sys.stderr, flush=True)
        )
        print("preprocessing and worker cases …", file=sys.stderr, flush=True)
        pre, worker, case_problems = run_cases(args, work)
    finally:
        if owned:
            shutil.rmtree(work, ignore_errors=True)
    machine["loadavg_end"] = list(os.getloadavg())
    result = {
        "date": dt.date.today().isoformat(),
        "command": "bench/fuzz.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine,
        "seconds": round(time.perf_counter() - started, 1),
        "cstore": cstore,
        "preprocess": pre,
        "worker": worker,
        "problems": [f"cstore: {p}" for p in cstore_problems] + case_problems,
    }
    print(tables(result))
    for problem in result["problems"][:50]:
        print(f"PROBLEM {problem}")
    json_path = None
    if not args.no_json:
        json_path = args.json or (
            REPO_ROOT / "docs" / "bench-results" / f"fuzz-{result['date']}.json"
        )
        write_result_json(result, json_path)
    if not args.no_doc:
        command = ".venv/bin/python " + result["command"].strip()
        write_section(args.doc, section(result, command, json_path))
        print(f"doc section: {args.doc}", file=sys.stderr)
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
