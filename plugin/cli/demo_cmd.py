"""``brgan demo``: the whole chain on one machine, with a stand-in PACS that receives the results.

Synthetic screening studies (some malignant) go over real DICOM to ``brgan serve`` in embedded
mode (listener, coordinator, one worker child, a filesystem queue); the result objects come back
through the outbox to a built-in C-STORE SCP standing in for the PACS; a table shows every
image's score, flag and result files, with PNG renderings of the heatmap Secondary Captures.

With ``--viewer`` the studies go through a local Orthanc instead (:mod:`plugin.cli.demo_viewer`)
and the results open in OHIF.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import threading
import time
from collections.abc import Callable, Iterator
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


SENDER_AE = "DEMOSCU"  # the demo's modality: calling AE of the C-STOREs it sends


def _send(
    port: int, files: list[Path], called_ae: str = "BRGAN", name: str = "brgan serve"
) -> None:
    """C-STORE ``files`` to ``called_ae``@127.0.0.1:``port`` from AE :data:`SENDER_AE`."""
    from pydicom import dcmread
    from pynetdicom import AE, StoragePresentationContexts

    from plugin.errors import PluginError

    ae = AE(ae_title=SENDER_AE)
    ae.requested_contexts = StoragePresentationContexts[:120]
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    if not assoc.is_established:
        raise PluginError(f"{name} refused the association ({called_ae}@127.0.0.1:{port})")
    try:
        for path in files:
            status = assoc.send_c_store(dcmread(path))
            code = int(status.Status) if status and "Status" in status else None
            if code is None or (code != 0x0000 and code >> 12 != 0xB):  # success or warning
                shown = f"status 0x{code:04X}" if code is not None else "no answer"
                raise PluginError(f"{name} did not store {path} ({shown})")
    finally:
        assoc.release()


def _png(source: Path | bytes, out: Path) -> Path:
    """Render a Secondary Capture (a file, or its bytes) as PNG."""
    import pydicom
    from PIL import Image

    out.parent.mkdir(parents=True, exist_ok=True)
    data = io.BytesIO(source) if isinstance(source, bytes) else source
    Image.fromarray(pydicom.dcmread(data).pixel_array).save(out)
    return out


def demo_settings(base: Any, data_dir: Path, *, calling_ae: str, destination: dict) -> Any:
    """The settings of the demo's embedded ``brgan serve``: loopback, a free port, only
    ``calling_ae`` may send, results to ``destination``; its own spool, index and results
    under ``data_dir``; the configured model registry."""
    updates: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "complete_grace": 1.0,
        "allowed_calling_aets": [calling_ae],
        "destinations": [{**destination, "kind": "dimse", "host": "127.0.0.1",
                          "calling_ae": base.ae_title}],
        "outbox_interval": 0.5,
        "data_dir": data_dir,
        "registry_dir": base.registry_path,
        "spool_dir": None,
        "results_dir": None,
    }  # fmt: skip
    return type(base)(**{**base.model_dump(), **updates})


def synthetic_studies(console: Any, incoming: Path, studies: int, seed: int) -> list[dict]:
    """The manifest rows of the demo's synthetic studies (written once into ``incoming``)."""
    from brgan_core.synth import get_preset, write_dataset

    if not (incoming / "manifest.csv").is_file():
        console.print(f"== synthesizing {studies} screening studies (seed {seed}) into {incoming}")
        write_dataset(incoming, studies, get_preset("bench-cpu"), seed)
    with (incoming / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@contextlib.contextmanager
def embedded_serve(ctx: typer.Context, settings: Any) -> Iterator[int]:
    """``brgan serve`` in embedded mode (listener, coordinator, outbox in threads; one worker
    child process) while the block runs; yields the listener's port."""
    from plugin.coordinator.dispatcher import Dispatcher
    from plugin.coordinator.service import run_service
    from plugin.errors import PluginError
    from plugin.queue.embedded import EmbeddedWorker

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
            if started or not service.is_alive():
                break
            time.sleep(0.1)
        if not started:
            raise PluginError("brgan serve did not start; see the log above")
        yield started[0].port
    finally:
        stop.set()
        service.join(30)
        worker.stop()


def demo(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path(
        "demo-out"
    ),
    studies: Annotated[
        int,
        typer.Option(
            min=1,
            max=50,
            help="Synthetic studies to send (bench-cpu; half of the patients have a malignant "
            "finding: the default 6 with seed 99 hold 2).",
        ),
    ] = 6,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic studies.")] = 99,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the results.")] = 300.0,
    viewer: Annotated[
        bool,
        typer.Option(
            "--viewer",
            help="Send everything through a local Orthanc instead of the stand-in PACS and "
            "serve OHIF on the results, until Ctrl-C. Needs Orthanc, its DICOMweb plugin and "
            "OHIF: ./scripts/viewer --install.",
        ),
    ] = False,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait", help="With --viewer: print the URLs, then stop instead of serving."
        ),
    ] = False,
    orthanc_http_port: Annotated[
        int,
        typer.Option(
            min=1,
            max=65535,
            help="With --viewer: Orthanc's REST/DICOMweb port on 127.0.0.1 "
            "(an Orthanc answering there is reused; else one is started).",
        ),
    ] = 8042,
    orthanc_dicom_port: Annotated[
        int,
        typer.Option(min=1, max=65535, help="With --viewer: DICOM port of an Orthanc it starts."),
    ] = 4242,
    viewer_port: Annotated[
        int,
        typer.Option(
            min=0, max=65535, help="With --viewer: port of the OHIF page (0: a free one)."
        ),
    ] = 0,
) -> None:
    """Run the whole chain once, locally, with the active (demo) model: synthesize studies,
    send them to `brgan serve` over DICOM, receive the result objects in a stand-in PACS and
    print what came back. Needs an active model (`./scripts/demo` registers one).

    Everything lands in OUT: the stand-in PACS's files in OUT/pacs/, PNG renderings of the
    heatmap Secondary Captures in OUT/png/, the service's data in OUT/data/.

    With --viewer the synthetic studies go to a local Orthanc's DICOM port, as a modality would
    send them; Orthanc (configured like deploy/orthanc: loopback only, DICOMweb, the routing
    script) routes them to the listener and receives the result objects into the same studies.
    The table then shows what Orthanc holds, and each study's OHIF URL follows; the viewer
    is served until Ctrl-C (--no-wait: not at all). An Orthanc already answering on
    --orthanc-http-port is reused (left running); otherwise one is started with its storage in
    OUT/viewer/orthanc/ and stopped at the end. Service data: OUT/viewer/data/. See
    docs/viewer.md.
    """
    from rich.console import Console
    from rich.table import Table

    from brgan_core.registry import Registry
    from plugin.errors import PluginError
    from plugin.index import SqliteIndex

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    out = out.resolve()
    base = state(ctx).settings()
    if viewer:
        from plugin.cli import demo_viewer

        # What is missing is said before anything starts.
        target = demo_viewer.find_orthanc(orthanc_http_port, orthanc_dicom_port)
    elif no_wait:
        raise PluginError("--no-wait goes with --viewer (plain `brgan demo` never waits)")
    if Registry(base.registry_path).active_version() is None:
        raise PluginError(
            f"no active model in {base.registry_path}: run ./scripts/demo, or `brgan models "
            "register --activate CHECKPOINT`"
        )
    rows = synthetic_studies(console, out / "incoming", studies, seed)
    if viewer:
        demo_viewer.run(ctx, console, base, target, rows, out, timeout=timeout,
                        wait=not no_wait, viewer_port=viewer_port)  # fmt: skip
        return
    pacs = StandInPacs(out / "pacs")
    pacs_port = pacs.start()
    settings = demo_settings(
        base, out / "data", calling_ae=SENDER_AE,
        destination={"name": "demo-pacs", "ae_title": "DEMOPACS", "port": pacs_port},
    )  # fmt: skip
    incoming = out / "incoming"
    truth = {r["sop_instance_uid"]: r for r in rows}
    study_uids = sorted({r["study_uid"] for r in rows})
    try:
        with embedded_serve(ctx, settings) as port:
            console.print(f"== sending {len(rows)} images over C-STORE to BRGAN@127.0.0.1:{port}")
            _send(port, [incoming / r["path"] for r in rows])
            console.print(
                "== waiting for the analysis and the results (the worker loads torch first)"
            )
            index = SqliteIndex(settings.index_path, readonly=True)
            try:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and not all_delivered(index, study_uids):
                    time.sleep(0.5)
                held = sum(1 for _ in pacs.root.rglob("*.dcm")) if pacs.root.is_dir() else 0
                footer = (
                    f"stand-in PACS: {len(pacs.received)} objects received in this run, {held} "
                    f"held in {pacs.root}; PNGs in {out / 'png'}"
                )
                report(console, Table, index, study_uids, truth,
                       lambda study, sop: _received(pacs, study, sop), out, out / "png",
                       title="brgan demo: what came back to the stand-in PACS",
                       footer=[footer])  # fmt: skip
            finally:
                index.close()
    finally:
        pacs.stop()


def _received(pacs: StandInPacs, study_uid: str, sop_uid: str) -> Path | None:
    from plugin.spool import safe_name

    path = pacs.root / safe_name(study_uid) / f"{safe_name(sop_uid)}.dcm"
    return path if path.is_file() else None


def all_delivered(index: Any, study_uids: list[str]) -> bool:
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


def report(console: Any, table_cls: Any, index: Any, study_uids: list[str], truth: dict,
           fetch: Callable[[str, str], Path | bytes | None], out: Path, png_dir: Path, *,
           title: str, footer: list[str]) -> None:  # fmt: skip
    """Print the table of every image's score and flag, with PNGs (in ``png_dir``) of the
    heatmap SCs that ``fetch(study_uid, sop_uid)`` finds at the destination, then ``footer``."""
    import json

    table = table_cls(title=title)
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
            received = fetch(uid, sc["sop_instance_uid"]) if sc else None
            if received is not None:  # rendered from what the destination received
                png = str(_png(received, png_dir / f"{uid[-12:]}-{pair.laterality}"
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
    for line in footer:
        console.print(line, highlight=False)
    for label in sorted(labels):
        console.print(f"[bold yellow]{label}[/]")
