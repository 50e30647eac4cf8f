"""``brgan demo``: the whole chain on one machine, with a stand-in PACS that receives the results.

Synthetic screening studies (some malignant) go over real DICOM to ``brgan serve`` in embedded
mode (listener, coordinator, one worker child, a filesystem queue); the result objects come back
through the outbox to a built-in C-STORE SCP standing in for the PACS; a table shows every
image's score, flag and result files, with PNG renderings of the heatmap Secondary Captures.
"""

from __future__ import annotations

import csv
import os
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from plugin.cli.context import state

FINAL = ("done", "failed", "partially_analyzed", "not_analyzed")


class StandInPacs:
    """A C-STORE SCP that keeps what it receives under ``root/<study>/<sop>.dcm``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.received: list[Path] = []
        self._lock = threading.Lock()

    def start(self) -> int:
        from pynetdicom import AE, AllStoragePresentationContexts, evt

        from plugin.spool import safe_name

        def store(event: Any) -> int:
            ds = event.dataset
            ds.file_meta = event.file_meta
            folder = self.root / safe_name(str(ds.StudyInstanceUID))
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{safe_name(str(ds.SOPInstanceUID))}.dcm"
            ds.save_as(path, enforce_file_format=True)
            with self._lock:
                self.received.append(path)
            return 0x0000

        ae = AE(ae_title="DEMOPACS")
        ae.supported_contexts = AllStoragePresentationContexts
        self._server = ae.start_server(
            ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, store)]
        )
        return int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()


def _send(port: int, files: list[Path]) -> None:
    from pydicom import dcmread
    from pynetdicom import AE, StoragePresentationContexts

    ae = AE(ae_title="DEMOSCU")
    ae.requested_contexts = StoragePresentationContexts[:120]
    assoc = ae.associate("127.0.0.1", port, ae_title="BRGAN")
    if not assoc.is_established:
        raise typer.Exit(f"brgan serve refused the association on port {port}")
    try:
        for path in files:
            assoc.send_c_store(dcmread(path))
    finally:
        assoc.release()


def _png(sc_path: Path, out: Path) -> Path:
    import pydicom
    from PIL import Image

    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pydicom.dcmread(sc_path).pixel_array).save(out)
    return out


def demo(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path(
        "demo-out"
    ),
    studies: Annotated[int, typer.Option(min=1, max=50, help="Synthetic studies to send.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic studies.")] = 99,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the results.")] = 300.0,
) -> None:
    """Run the whole chain once, locally, with the active (demo) model: synthesize studies,
    send them to `brgan serve` over DICOM, receive the result objects in a stand-in PACS and
    print what came back. Needs an active model (`./scripts/demo` registers one).

    Everything lands in OUT: the stand-in PACS's files in OUT/pacs/, PNG renderings of the
    heatmap Secondary Captures in OUT/png/, the service's data in OUT/data/.
    """
    from rich.console import Console
    from rich.table import Table

    from brgan_core.registry import Registry
    from brgan_core.synth import get_preset, write_dataset
    from plugin.coordinator.dispatcher import Dispatcher
    from plugin.coordinator.service import run_service
    from plugin.errors import PluginError
    from plugin.index import SqliteIndex
    from plugin.queue.embedded import EmbeddedWorker

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    out = out.resolve()
    base = state(ctx).settings()
    if Registry(base.registry_path).active_version() is None:
        raise PluginError(
            f"no active model in {base.registry_path}: run ./scripts/demo, or `brgan models "
            "register --activate CHECKPOINT`"
        )
    pacs = StandInPacs(out / "pacs")
    pacs_port = pacs.start()
    updates: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "complete_grace": 1.0,
        "allowed_calling_aets": ["DEMOSCU"],
        "destinations": [
            {"name": "demo-pacs", "kind": "dimse", "ae_title": "DEMOPACS",
             "host": "127.0.0.1", "port": pacs_port, "calling_ae": base.ae_title}
        ],
        "outbox_interval": 0.5,
        # The demo's own spool, index and results; the model registry stays the configured one.
        "data_dir": out / "data",
        "registry_dir": base.registry_path,
        "spool_dir": None,
        "results_dir": None,
    }  # fmt: skip
    settings = type(base)(**{**base.model_dump(), **updates})
    incoming = out / "incoming"
    if not (incoming / "manifest.csv").is_file():
        console.print(f"== synthesizing {studies} screening studies (seed {seed}) into {incoming}")
        write_dataset(incoming, studies, get_preset("bench-cpu"), seed)
    with (incoming / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    truth = {r["sop_instance_uid"]: r for r in rows}
    study_uids = sorted({r["study_uid"] for r in rows})

    # The worker child reads its settings from the environment: the demo's folders.
    os.environ["BRGAN_DATA_DIR"] = str(settings.data_dir)
    os.environ["BRGAN_REGISTRY_DIR"] = str(settings.registry_path)
    worker = EmbeddedWorker(state(ctx).config_file, settings.data_dir / "worker.log")
    stop = threading.Event()
    started: list[Any] = []

    def hooks(index: Any, outbox: Any) -> tuple[Any, Any]:
        d = Dispatcher(settings, index, outbox=outbox)
        return d.on_study_ready, d.reconcile

    service = threading.Thread(
        target=run_service,
        args=(settings, stop),
        kwargs={"on_started": started.append, "make_hooks": hooks},
        daemon=True,
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker.start()
    service.start()
    try:
        for _ in range(300):
            if started:
                break
            time.sleep(0.1)
        if not started:
            raise PluginError("brgan serve did not start; see the log above")
        port = started[0].port
        console.print(f"== sending {len(rows)} images over C-STORE to BRGAN@127.0.0.1:{port}")
        _send(port, [incoming / r["path"] for r in rows])
        console.print("== waiting for the analysis and the results (the worker loads torch first)")
        index = SqliteIndex(settings.index_path, readonly=True)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not _all_delivered(index, study_uids):
                time.sleep(0.5)
            _report(console, Table, index, study_uids, truth, pacs, out)
        finally:
            index.close()
    finally:
        stop.set()
        service.join(30)
        worker.stop()
        pacs.stop()


def _received(pacs: StandInPacs, study_uid: str, sop_uid: str) -> Path | None:
    from plugin.spool import safe_name

    path = pacs.root / safe_name(study_uid) / f"{safe_name(sop_uid)}.dcm"
    return path if path.is_file() else None


def _all_delivered(index: Any, study_uids: list[str]) -> bool:
    """Every study final, and each of its result objects delivered to the stand-in PACS."""
    import json

    for uid in study_uids:
        study = index.get_study(uid)
        if study is None or str(study.state) not in FINAL:
            return False
        files = (json.loads(study.result_json) if study.result_json else {}).get("result_files")
        rows = index.outbox_rows(study_uid=uid)
        if len(rows) < len(files or []) or any(str(r.state) == "pending" for r in rows):
            return False
    return True


def _report(console: Any, table_cls: Any, index: Any, study_uids: list[str], truth: dict,
            pacs: StandInPacs, out: Path) -> None:  # fmt: skip
    import json

    table = table_cls(title="brgan demo: what came back to the stand-in PACS")
    for column in ("study", "image", "truth", "p(malignant)", "flag", "heatmap SC as PNG"):
        table.add_column(column)
    labels: set[str] = set()
    summaries: list[str] = []
    thresholds: list[float | None] = []
    for uid in study_uids:
        study = index.get_study(uid)
        result = json.loads(study.result_json) if study and study.result_json else {}
        model = result.get("model") or {}
        for key, label in (("research_only", "FOR RESEARCH USE ONLY"),
                           ("synthetic_training", "DEMO MODEL - synthetic training data, not for "
                                                  "clinical use")):  # fmt: skip
            if model.get(key):
                labels.add(label)
        files = result.get("result_files") or []
        by_source = {f.get("source_uid"): f for f in files if f.get("kind") == "heatmap_sc"}
        study_level = ", ".join(sorted(f["kind"] for f in files if not f.get("source_uid")))
        threshold = model.get("threshold")
        thresholds.append(threshold)
        for pair in index.pairs(uid):
            score = json.loads(pair.score_json) if pair.score_json else {}
            row = truth.get(pair.target_uid, {})
            sc = by_source.get(pair.target_uid)
            png = "-"
            received = _received(pacs, uid, sc["sop_instance_uid"]) if sc else None
            if received is not None:  # rendered from what the stand-in PACS received
                png = str(_png(received, out / "png" / f"{uid[-12:]}-{pair.laterality}"
                                                       f"{pair.view}.png"))  # fmt: skip
            p = score.get("p_malignant")
            table.add_row(
                "…" + uid[-10:], f"{pair.laterality} {pair.view}",
                "malignant" if row.get("label") == "1" else "benign/normal",
                f"{100 * p:.1f} %" if isinstance(p, int | float) else score.get("reason", "-"),
                ("POSITIVE" if score.get("positive") else "") if threshold is not None else "-",
                str(Path(png).relative_to(out)) if png != "-" else "-",
            )  # fmt: skip
        summaries.append(
            f"…{uid[-10:]}: {str(study.state) if study else '?'}; result objects: "
            f"{len(files)} ({study_level}{', heatmap SC per image' if by_source else ''})"
        )
    console.print(table)
    for line in summaries:
        console.print(line, highlight=False)
    threshold_line = next(
        (f"flag = p(malignant) at or above the model's threshold {100 * t:.1f} %"
         for t in thresholds if t is not None), "the model has no threshold: no flags",
    )  # fmt: skip
    console.print(threshold_line, highlight=False)
    held = sum(1 for _ in pacs.root.rglob("*.dcm")) if pacs.root.is_dir() else 0
    console.print(
        f"stand-in PACS: {len(pacs.received)} objects received in this run, {held} held in "
        f"{pacs.root}; PNGs in {out / 'png'}",
        highlight=False,
    )
    for label in sorted(labels):
        console.print(f"[bold yellow]{label}[/]")
