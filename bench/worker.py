"""Per-study wall time of the scoring worker's real code path, split by stage (issue 9 §5).

Each study goes through ``plugin.worker.analysis.analyze_study_payload`` — what the Celery task
``brgan.analyze_study`` calls: the task JSON is parsed, the model fetched (``get_model``), both
images of every pair preprocessed, every pair scored, the heatmap PNGs saved and the result
objects written (``plugin.results.writer.write_results``: TID 1500 SR, Mammography CAD SR, one
heatmap Secondary Capture per analyzed image, the summary Secondary Capture). Nothing in the
package is changed; the stages are read from the summary's ``timings`` and from timing wrappers
that this script puts around module-level functions for the duration of the run:

``load``
    ``timings.load_model_s``: payload parsing, ``get_model`` (a dictionary hit once the model is
    in memory) and the provenance. The cold model load (build the net, read and hash-verify the
    checkpoint) is paid by the first study a worker process gets: the warm-up study, reported
    on its own row.
``decode``
    ``brgan_core.preprocess.pipeline.read_dataset`` + ``to_display`` (file read, pixel decode,
    Modality/VOI LUT), wrapped where ``preprocess`` looks them up.
``preprocess``
    ``timings.preprocess_s`` minus decode: header fields, mask, crop, orientation, resize.
``model``
    ``timings.predict_s``: ``brgan_core.inference.score_pair`` on every pair. Within it, the
    network (``BRGAN.predict``, wrapped on the class; CUDA is synchronised) is reported apart
    from the CAM post-processing on the stored-pixel grid (resize, mask, ``heatmap_to_original``,
    outline).
``heatmap_png``
    ``plugin.worker.analysis._save_heatmap`` (one PNG per analyzed image, a worker-side file).
``write``
    ``timings.write_s``: building and atomically writing the DICOM result objects.
``other``
    the wall time of ``analyze_study_payload`` minus all of the above (assembly, JSON).
``send_dimse``, ``send_stow`` (only with ``--send``)
    after the worker has written a study's result objects (the ``result_files`` of its
    summary), ``sink.send(paths)`` of the project's own sinks
    (``pacs_adapters.sink.make_sink``) to a local Orthanc: once over C-STORE (kind ``dimse``,
    one association per call) and once over STOW-RS (kind ``stow``, ``/dicom-web``), each timed
    on its own. Both include reading the files (``pacs_adapters.sink.load_file``). Every file
    must come back DELIVERED and be in Orthanc afterwards; between the two sends (untimed) the
    study is deleted from Orthanc, so that STOW-RS stores the objects anew instead of meeting
    instances Orthanc already holds. The Orthanc is ``tests/viewer/harness.py``'s
    ``start_dicomweb_orthanc`` (a bare Orthanc with the DICOMweb plugin on free loopback ports),
    started in the run folder and stopped at the end. These seconds are not in ``total``: the
    coordinator's outbox sends, not the worker; "load → send" is ``total`` plus one send.

Per study: "everything but the model / total" = (total − model) / total, the issue's target
being ≤ 10 %; the same with only the network counted as the model; and the bytes written (sum
of the result files; the heatmap PNGs apart). Header reading and pairing (``plan_study``) run
before the clock, as the coordinator does them before it queues the task.

Data: ``--preset`` synthetic four-view studies (``brgan_core.synth``; default ``clinical``,
3328 × 2560 14-bit), generated once into ``--cache`` and reused. Model: an *untrained*
``BRGANConfig.preset("brgan", backbone=...)`` (timing does not depend on weight values) saved as
a checkpoint with ``preprocessing={"size": [R, C]}`` (default: the preset's model input,
1024 × 832 for ``clinical``) and registered in a fresh registry, as
``tests/helpers.py::make_tiny_registry`` does.

    .venv/bin/python bench/worker.py                    # clinical, ResNet-50, 1 + 3 studies
    .venv/bin/python bench/worker.py --studies 2 --device cuda
    .venv/bin/python bench/worker.py --tiny --out /tmp/w.json   # smoke run, seconds
    .venv/bin/python bench/worker.py --studies 2 --send  # + C-STORE and STOW-RS to Orthanc

Results: a markdown table on stdout and JSON in ``docs/bench-results/worker-<date>.json``
(``--out PATH`` elsewhere; ``--tiny`` writes JSON only with ``--out``);
``docs/benchmarks-worker.md`` records a run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:  # run as a script or loaded by path: ``bench`` is no package
    sys.path.insert(0, _BENCH_DIR)

from common import machine_info, summarize, write_result_json  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "docs" / "bench-results"
DEFAULT_CACHE = Path("/tmp/brgan-bench-worker")
TARGET_NON_MODEL = 0.10
#: Stages in table order; their sum plus ``other`` is the study's wall time.
STAGES = ("load", "decode", "preprocess", "model", "heatmap_png", "write", "other")
#: ``--send``: ``(key, destination kind, label)``, in the order each study is sent.
SENDS = (("send_dimse", "dimse", "C-STORE"), ("send_stow", "stow", "STOW-RS"))


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (``--help`` lists them)."""
    parser = argparse.ArgumentParser(
        prog="bench/worker.py",
        description="Per-study wall time of the worker (load, decode, preprocess, model, write).",
    )
    parser.add_argument(
        "--studies", type=int, default=3, help="timed studies, after the warm-up (default: 3)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed studies first; the first pays the cold model load (default: 1)",
    )
    parser.add_argument(
        "--preset",
        default="clinical",
        help="synthetic data preset (bench-cpu, bench-gpu, "
        "clinical; default: clinical, 3328 × 2560)",
    )
    parser.add_argument(
        "--backbone",
        default="resnet50",
        help="feature extractor of the brgan preset "
        "(resnet50, resnet18, tiny, …; default: resnet50)",
    )
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("R", "C"),
        default=None,
        help="model input rows, columns (default: the data preset's, 1024 832 for clinical)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="worker device, as the BRGAN_DEVICE setting (default: auto)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="data and weights seed (default: 0)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"synthetic studies (generated once) and the run folder (default: {DEFAULT_CACHE})",
    )
    parser.add_argument(
        "--gen-workers", type=int, default=2, help="processes generating the studies (default: 2)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON result path (default: docs/bench-results/worker-<date>.json)",
    )
    parser.add_argument("--no-json", action="store_true", help="print only, write no JSON")
    parser.add_argument(
        "--keep", action="store_true", help="keep the run folder (registry, result objects)"
    )
    parser.add_argument(
        "--send",
        action="store_true",
        help="also send each study's result objects to a local Orthanc over C-STORE and over "
        "STOW-RS (the project's sinks), timed apart (needs Orthanc and its DICOMweb plugin)",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="smoke run: tiny backbone, bench-cpu data, 1 timed study (seconds, not minutes)",
    )
    return parser


# -- data and model -------------------------------------------------------------------------


def ensure_studies(
    cache: Path, preset: str, count: int, seed: int, workers: int
) -> list[list[Path]]:
    """``count`` four-view studies of ``preset`` under ``cache`` (generated once); their files.

    A cached set of more studies with the same preset and seed is reused (patient i depends
    only on the preset, the seed and i).
    """
    folder = cache / f"{preset}-seed{seed}-n{count}"
    for bigger in sorted(cache.glob(f"{preset}-seed{seed}-n*")):
        size = bigger.name.rpartition("-n")[2]
        if size.isdigit() and int(size) > count and (bigger / "manifest.csv").is_file():
            folder = bigger
            break
    if not (folder / "manifest.csv").is_file():
        from brgan_core.synth import get_preset, write_dataset

        print(f"generating {count} {preset} studies into {folder} …", file=sys.stderr, flush=True)
        start = time.monotonic()
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        write_dataset(partial, count, get_preset(preset), seed, workers=workers)
        partial.rename(folder)
        print(f"  done in {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    studies = sorted(p for p in folder.iterdir() if p.is_dir())  # also masks/ (no .dcm)
    files = [f for f in (sorted(s.glob("*.dcm")) for s in studies) if f]
    if len(files) < count or any(len(f) != 4 for f in files):
        raise SystemExit(f"{folder}: expected {count} four-view studies; delete it to regenerate")
    return files[:count]


def make_registry(
    registry_root: Path, backbone: str, size: tuple[int, int], seed: int
) -> tuple[str, str, int]:
    """Register and activate an untrained ``brgan`` model at ``size``, as
    ``tests/helpers.py::make_tiny_registry`` does; ``(version, sha256, checkpoint bytes)``."""
    import torch

    from brgan_core.checkpoint import CheckpointInfo, save_checkpoint
    from brgan_core.model import BRGANConfig, build_model
    from brgan_core.registry import Registry

    torch.manual_seed(seed)
    config = BRGANConfig.preset("brgan", backbone=backbone)
    model = build_model(config)
    info = CheckpointInfo(
        model_config=config.to_dict(),
        preprocessing={"size": list(size)},
        metrics={"auc": 0.5},
        threshold=0.5,
        research_only=True,
        notes="untrained model for bench/worker.py (timing only)",
    )
    checkpoint = registry_root.parent / f"bench-{backbone}.safetensors"
    save_checkpoint(checkpoint, model.state_dict(), info)
    registry = Registry(registry_root)
    entry, _ = registry.register(checkpoint)
    registry.activate(entry.version)
    nbytes = checkpoint.stat().st_size
    checkpoint.unlink()
    return entry.version, entry.sha256, nbytes


def build_task(files: Sequence[Path], version: str, sha256: str, queued_at: float) -> Any:
    """The StudyTask the coordinator would queue for these files (``brgan analyze``'s way:
    headers → ``plan_study`` → pairs with laterality, view and PatientOrientation)."""
    from plugin.queue.contract import ImageRef, ModelRef, NotAnalyzed, StudyTask, TaskPair
    from plugin.study import plan_study, read_header

    headers = {}
    where = {}
    for path in files:
        header = read_header(path)
        headers[header.sop_instance_uid] = header
        where[header.sop_instance_uid] = path
    plan = plan_study(list(headers.values()))
    other = {"L": "R", "R": "L"}

    def ref(uid: str, laterality: str, view: str) -> ImageRef:
        po = headers[uid].patient_orientation
        return ImageRef(
            uid, str(where[uid]), laterality, view, (po[0], po[1]) if len(po) == 2 else None
        )

    return StudyTask(
        study_uid=plan.study_uid,
        study_version=1,
        queued_at=queued_at,
        model=ModelRef(version, sha256),
        pairs=tuple(
            TaskPair(
                ref(p.target_uid, p.laterality, p.view),
                ref(p.contralateral_uid, other[p.laterality], p.view),
            )
            for p in plan.pairs
        ),
        not_analyzed=tuple(
            NotAnalyzed(uid, reason, str(where[uid]))
            for uid, reason in sorted(plan.not_analyzed.items())
        ),
    )


# -- instrumentation ------------------------------------------------------------------------


class Clock:
    """Seconds spent in the wrapped functions since the last :meth:`reset`.

    A call made inside another wrapped call is recorded as ``outer/name`` (the outermost
    wrapped function: ``preprocess``, ``score_pair`` or ``write_results``), so a helper that
    several stages call (``to_display`` decodes in preprocessing and again in the heatmap
    writer) is attributed to the stage that called it.
    """

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.sync = sync
        self._stack: list[str] = []

    def reset(self) -> None:
        self.seconds = {}
        self.calls = {}
        self._stack = []

    def wrap(self, name: str, fn: Callable[..., Any], *, sync: bool = False) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            key = name if not self._stack else f"{self._stack[0]}/{name}"
            self._stack.append(name)
            if sync and self.sync:
                self.sync()
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                if sync and self.sync:
                    self.sync()
                self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - start
                self.calls[key] = self.calls.get(key, 0) + 1
                self._stack.pop()

        return timed


#: ``(module, class or None, attribute, name, synchronise CUDA)``: every function the worker
#: looks up at call time that this script times. The first three are the stages themselves
#: (``run_task`` imports them by name when it runs); the others are parts inside them.
PATCHES: tuple[tuple[str, str | None, str, str, bool], ...] = (
    ("brgan_core.preprocess", None, "preprocess", "preprocess", False),
    ("brgan_core.inference", None, "score_pair", "score_pair", True),
    ("plugin.results.writer", None, "write_results", "write_results", False),
    ("plugin.worker.analysis", None, "get_model", "get_model", False),
    ("plugin.worker.analysis", None, "_save_heatmap", "heatmap_png", False),
    # preprocessing: decode, then mask → orientation → crop/orient/resize (Geometry.warp)
    ("brgan_core.preprocess.pipeline", None, "read_dataset", "read_dataset", False),
    ("brgan_core.preprocess.pipeline", None, "to_display", "to_display", False),
    ("brgan_core.preprocess.pipeline", None, "breast_mask", "breast_mask", False),
    ("brgan_core.preprocess.pipeline", None, "canonical_orientation", "orientation", False),
    ("brgan_core.preprocess.geometry", "Geometry", "warp", "Geometry.warp", False),
    # score_pair: the network, then the CAM on the stored-pixel grid
    ("brgan_core.model", "BRGAN", "predict", "network", True),
    ("brgan_core.inference", None, "_resize", "cam_resize", False),
    ("brgan_core.preprocess.geometry", "Geometry", "heatmap_to_original", "cam_to_orig", False),
    ("brgan_core.inference", None, "region_box", "region_box", False),
    ("brgan_core.inference", None, "region_outline", "region_outline", False),
    # write_results: each object's builder, re-reading and re-decoding the sources, encoding
    ("plugin.results.tid1500", None, "from_study", "tid1500_sr", False),
    ("plugin.results.cad_sr", None, "from_study", "cad_sr", False),
    ("plugin.results.heatmap_sc", None, "from_image", "heatmap_sc", False),
    ("plugin.results.summary_sc", None, "from_study", "summary_sc", False),
    ("plugin.results.inputs", "StudyResults", "source", "source_read", False),
    ("plugin.results.render", None, "to_display", "source_decode", False),
    ("plugin.results.writer", None, "encode", "encode", False),
    ("plugin.results.writer", None, "atomic_write_bytes", "atomic_write", False),
)


@contextlib.contextmanager
def instrumented(clock: Clock) -> Iterator[None]:
    """Timing wrappers around :data:`PATCHES` for the duration of the block (undone after)."""
    import importlib

    saved = []
    try:
        for module_name, class_name, attr, name, sync in PATCHES:
            owner: Any = importlib.import_module(module_name)
            if class_name is not None:
                owner = getattr(owner, class_name)
            original = owner.__dict__[attr]
            saved.append((owner, attr, original))
            setattr(owner, attr, clock.wrap(name, original, sync=sync))
        yield
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)


# -- the benchmark ----------------------------------------------------------------------------


def run_study(task: Any, settings: Any, task_id: str, clock: Clock) -> dict[str, Any]:
    """One study through ``analyze_study_payload``; its stage times and bytes written."""
    from plugin.worker.analysis import analyze_study_payload

    payload = task.to_json()
    clock.reset()
    start = time.perf_counter()
    summary = analyze_study_payload(payload, settings, task_id=task_id)
    wall = time.perf_counter() - start
    timings = summary["timings"]
    sec = clock.seconds
    decode = sec.get("preprocess/read_dataset", 0.0) + sec.get("preprocess/to_display", 0.0)
    stages = {
        "load": timings["load_model_s"],
        "decode": decode,
        "preprocess": max(timings["preprocess_s"] - decode, 0.0),
        "model": timings["predict_s"],
        "heatmap_png": sec.get("heatmap_png", 0.0),
        "write": timings["write_s"],
    }
    stages["other"] = max(wall - sum(stages.values()), 0.0)
    files = summary["result_files"]
    by_kind: dict[str, int] = {}
    for item in files:
        by_kind[item["kind"]] = by_kind.get(item["kind"], 0) + Path(item["path"]).stat().st_size
    png = sum(Path(i["heatmap_path"]).stat().st_size for i in summary["images"])
    network = sec.get("score_pair/network", 0.0)
    return {
        "study_uid": summary["study_uid"],
        "pairs": len(task.pairs),
        "images_analyzed": len(summary["images"]),
        "not_analyzed": len(summary["not_analyzed"]),
        "total_s": wall,
        "stages_s": stages,
        "network_s": network,
        "cam_postprocess_s": max(stages["model"] - network, 0.0),
        "get_model_s": sec.get("get_model", 0.0),
        "parts_s": dict(sorted(sec.items())),
        "part_calls": dict(sorted(clock.calls.items())),
        "worker_timings": timings,
        "non_model_fraction": (wall - stages["model"]) / wall,
        "non_network_fraction": (wall - network) / wall,
        "result_files": len(files),
        "result_bytes": sum(by_kind.values()),
        "result_bytes_by_kind": by_kind,
        "heatmap_png_bytes": png,
        "result_paths": [str(item["path"]) for item in files],
    }


# -- sending (``--send``) -----------------------------------------------------------------------


def send_tools_missing() -> list[str]:
    """Why ``--send`` cannot run here (empty when it can): Orthanc and its DICOMweb plugin."""
    if str(REPO_ROOT) not in sys.path:  # the bench borrows the tests' Orthanc harness
        sys.path.insert(0, str(REPO_ROOT))
    from tests.deploy.orthanc import orthanc_binary
    from tests.viewer.harness import DICOMWEB_PLUGIN

    missing = []
    if orthanc_binary() is None:
        missing.append("Orthanc (apt: orthanc)")
    if not DICOMWEB_PLUGIN.is_file():
        missing.append(f"the Orthanc DICOMweb plugin {DICOMWEB_PLUGIN} (apt: orthanc-dicomweb)")
    return missing


class Sender:
    """A local Orthanc and one sink of each kind; :meth:`send` times a study's sends."""

    def __init__(self, work_dir: Path) -> None:
        missing = send_tools_missing()
        if missing:
            raise SystemExit("--send: missing " + "; ".join(missing))
        from pacs_adapters.destination import DestinationConfig
        from pacs_adapters.sink import make_sink
        from tests.viewer.harness import start_dicomweb_orthanc

        self.orthanc = start_dicomweb_orthanc(work_dir)
        try:
            configs = {
                "dimse": DestinationConfig(
                    name="bench-dimse",
                    kind="dimse",
                    ae_title=self.orthanc.aet,
                    host="127.0.0.1",
                    port=self.orthanc.dicom_port,
                    timeout=60,
                ),
                "stow": DestinationConfig(
                    name="bench-stow",
                    kind="stow",
                    url=f"{self.orthanc.url}/dicom-web",
                    timeout=60,
                ),
            }
            self.sinks = {kind: make_sink(config) for kind, config in configs.items()}
            self.describe = {kind: config.describe() for kind, config in configs.items()}
        except BaseException:
            self.orthanc.stop()
            raise

    def close(self) -> None:
        for sink in getattr(self, "sinks", {}).values():
            sink.close()
        self.orthanc.stop()

    def _check_and_clear(self, label: str, study_uid: str, files: Sequence[Path]) -> None:
        """Every file of the study is in Orthanc; then the study is deleted (untimed)."""
        study_id = self.orthanc.lookup(study_uid)
        stored = self.orthanc.get(f"/studies/{study_id}/instances") if study_id else []
        if len(stored) != len(files):
            raise SystemExit(
                f"--send {label}: Orthanc holds {len(stored)} instances of study {study_uid} "
                f"after sending {len(files)} files"
            )
        self.orthanc.request("DELETE", f"/studies/{study_id}")

    def send(self, study_uid: str, files: Sequence[Path]) -> dict[str, float]:
        """Send ``files`` with each sink in turn; seconds per :data:`SENDS` key. Every file
        must be DELIVERED and stored, or the run stops."""
        from pacs_adapters.sink import Outcome

        seconds = {}
        for key, kind, label in SENDS:
            start = time.perf_counter()
            results = self.sinks[kind].send(files)
            seconds[key] = time.perf_counter() - start
            bad = [r for r in results if r.outcome is not Outcome.DELIVERED]
            if len(results) != len(files) or bad:
                raise SystemExit(
                    f"--send {label}: {len(bad)} of {len(files)} files not delivered: "
                    + "; ".join(f"{Path(r.path).name}: {r.outcome} {r.detail}" for r in bad[:3])
                )
            self._check_and_clear(label, study_uid, files)
        return seconds


def _peak_rss_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _stats(values: Sequence[float]) -> dict[str, float]:
    out = dict(summarize(values))
    out["mean"] = statistics.fmean(values)
    return out


def _send_summary(timed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``--send``: per kind, the send seconds, MB/s (bytes per study / send time) and the
    study's load → send seconds (``total`` + that send)."""
    out: dict[str, Any] = {}
    for key, kind, label in SENDS:
        out[key] = {
            "kind": kind,
            "protocol": label,
            "seconds": _stats([s["send_s"][key] for s in timed]),
            "mb_per_s": _stats([s["send_mb_per_s"][key] for s in timed]),
            "load_to_send_s": _stats([s["load_to_send_s"][key] for s in timed]),
            "share_of_load_to_send": _stats(
                [s["send_s"][key] / s["load_to_send_s"][key] for s in timed]
            ),
        }
    return out


def build_result(
    args: argparse.Namespace,
    config: dict[str, Any],
    warm: list[dict[str, Any]],
    timed: list[dict[str, Any]],
    info: dict[str, Any],
) -> dict[str, Any]:
    """Everything measured, as one JSON-able dictionary."""
    stages = {name: _stats([s["stages_s"][name] for s in timed]) for name in STAGES}
    total = _stats([s["total_s"] for s in timed])
    keys = sorted({k for s in timed for k in s["parts_s"]})
    parts = {k: _stats([s["parts_s"].get(k, 0.0) for s in timed]) for k in keys}
    calls = {k: statistics.fmean(s["part_calls"].get(k, 0) for s in timed) for k in keys}
    return {
        "benchmark": "worker",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "bench/worker.py " + " ".join(sys.argv[1:] if args.argv is None else args.argv),
        "config": config,
        "machine": dict(info, loadavg_end=list(os.getloadavg()), peak_rss_mib=_peak_rss_mib()),
        "stages_s": stages,
        "total_s": total,
        "network_s": _stats([s["network_s"] for s in timed]),
        "cam_postprocess_s": _stats([s["cam_postprocess_s"] for s in timed]),
        "non_model_fraction": _stats([s["non_model_fraction"] for s in timed]),
        "non_network_fraction": _stats([s["non_network_fraction"] for s in timed]),
        "target_non_model_fraction": TARGET_NON_MODEL,
        "result_bytes": _stats([float(s["result_bytes"]) for s in timed]),
        "heatmap_png_bytes": _stats([float(s["heatmap_png_bytes"]) for s in timed]),
        "parts_s": parts,
        "part_calls_per_study": calls,
        "send": _send_summary(timed) if timed and "send_s" in timed[0] else None,
        "warmup_studies": warm,
        "studies": timed,
    }


def _send_markdown(result: dict[str, Any]) -> list[str]:
    """The ``--send`` table: each send, its MB/s, and load → send per study."""
    cfg = result["config"]
    mb = result["result_bytes"]["mean"] / 1e6
    lines = [
        f"send per study ({mb:.2f} MB of result objects, {cfg['send']['files_per_study']:g} "
        f"files, to a local Orthanc {cfg['send']['orthanc']}; every file DELIVERED):",
        "",
        "| send | mean s | median s | min s | max s | MB/s (mean) | MB/s min–max "
        "| load → send mean s | send share of load → send |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, _kind, label in SENDS:
        s = result["send"][key]
        sec, rate, both = s["seconds"], s["mb_per_s"], s["load_to_send_s"]
        lines.append(
            f"| {key} ({label}) | {sec['mean']:.3f} | {sec['median']:.3f} | {sec['min']:.3f} "
            f"| {sec['max']:.3f} | {rate['mean']:.1f} | {rate['min']:.1f}–{rate['max']:.1f} "
            f"| {both['mean']:.3f} | {100 * s['share_of_load_to_send']['mean']:.1f} % |"
        )
    lines.append("")
    return lines


def markdown(result: dict[str, Any]) -> str:
    """The result as markdown tables (printed; pasted into docs/benchmarks-worker.md)."""
    cfg = result["config"]
    total = result["total_s"]
    lines = [
        f"Worker per study: {cfg['preset']} data ({cfg['stored'][0]}×{cfg['stored'][1]} stored), "
        f"brgan/{cfg['backbone']} at {cfg['input'][0]}×{cfg['input'][1]}, {cfg['device']}, "
        f"torch {cfg['torch']} ({cfg['threads']} threads), {cfg['studies']} studies "
        f"({cfg['pairs_per_study']} pairs each) after {cfg['warmup']} warm-up",
        "",
        "| stage | mean s | median s | min s | max s | share of total (means) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in STAGES:
        s = result["stages_s"][name]
        share = s["mean"] / total["mean"] if total["mean"] else 0.0
        lines.append(
            f"| {name} | {s['mean']:.3f} | {s['median']:.3f} | {s['min']:.3f} | {s['max']:.3f} "
            f"| {100 * share:.1f} % |"
        )
    lines.append(
        f"| **total** | {total['mean']:.3f} | {total['median']:.3f} | {total['min']:.3f} "
        f"| {total['max']:.3f} | 100 % |"
    )
    net, post = result["network_s"], result["cam_postprocess_s"]
    nm, nn = result["non_model_fraction"], result["non_network_fraction"]
    lines += [
        "",
        f"model = score_pair: network (BRGAN.predict) mean {net['mean']:.3f} s + CAM "
        f"post-processing on the stored grid mean {post['mean']:.3f} s",
        "",
        "| everything but the model / total | mean | median | min | max | target |",
        "|---|---:|---:|---:|---:|---|",
        f"| model = score_pair | {100 * nm['mean']:.1f} % | {100 * nm['median']:.1f} % "
        f"| {100 * nm['min']:.1f} % | {100 * nm['max']:.1f} % | ≤ {100 * TARGET_NON_MODEL:.0f} % |",
        f"| model = network only | {100 * nn['mean']:.1f} % | {100 * nn['median']:.1f} % "
        f"| {100 * nn['min']:.1f} % | {100 * nn['max']:.1f} % | (stricter reading) |",
        "",
    ]
    lines += [
        "| inside stage / part (parts nest: not additive) | mean s per study | calls | "
        "share of total |",
        "|---|---:|---:|---:|",
    ]
    order = {"preprocess": 0, "score_pair": 1, "write_results": 2}
    nested = [k for k in result["parts_s"] if "/" in k]
    nested.sort(key=lambda k: (order.get(k.split("/")[0], 9), -result["parts_s"][k]["mean"]))
    for key in nested:
        mean = result["parts_s"][key]["mean"]
        share = mean / total["mean"] if total["mean"] else 0.0
        lines.append(
            f"| {key} | {mean:.3f} | {result['part_calls_per_study'][key]:g} "
            f"| {100 * share:.1f} % |"
        )
    lines.append("")
    if result.get("send"):
        lines += _send_markdown(result)
    rb = result["result_bytes"]
    kinds: dict[str, list[int]] = {}
    for study in result["studies"]:
        for kind, n in study["result_bytes_by_kind"].items():
            kinds.setdefault(kind, []).append(n)
    lines.append(
        f"bytes written per study: {rb['mean'] / 1e6:.2f} MB of DICOM result objects (mean; "
        + ", ".join(f"{k} {statistics.fmean(v) / 1e6:.2f}" for k, v in sorted(kinds.items()))
        + f" MB) + {result['heatmap_png_bytes']['mean'] / 1e6:.2f} MB heatmap PNGs"
    )
    for study in result["warmup_studies"][:1]:
        st = study["stages_s"]
        lines.append(
            f"warm-up (first study of a fresh worker): total {study['total_s']:.3f} s, of which "
            f"load {st['load']:.3f} s (cold get_model {study['get_model_s']:.3f} s), "
            f"model {st['model']:.3f} s"
            + "".join(f", {k} {v:.3f} s" for k, v in study.get("send_s", {}).items())
        )
    return "\n".join(lines)


def add_sends(row: dict[str, Any], paths: Sequence[Path], sender: Sender) -> None:
    """Send the study's result objects (``--send``) and add the send columns to its row."""
    seconds = sender.send(row["study_uid"], paths)
    row["send_s"] = seconds
    row["send_mb_per_s"] = {k: row["result_bytes"] / v / 1e6 for k, v in seconds.items()}
    row["load_to_send_s"] = {k: row["total_s"] + v for k, v in seconds.items()}


def _orthanc_version(sender: Sender) -> str:
    try:
        system = sender.orthanc.get("/system")
    except (OSError, AssertionError):
        return "?"
    return f"{system.get('Version', '?')} (DICOMweb plugin, bare config)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (0)."""
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else None
    if args.tiny:
        args.backbone, args.preset, args.studies = "tiny", "bench-cpu", 1
    if args.studies < 1 or args.warmup < 0:
        raise SystemExit("--studies must be at least 1, --warmup at least 0")
    from brgan_core.synth import get_preset

    try:
        preset = get_preset(args.preset)
    except (KeyError, ValueError) as exc:
        raise SystemExit(f"bench/worker.py: {exc}") from None
    size = tuple(args.size) if args.size else tuple(preset.model_input_size)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available on this machine")
    info = machine_info()
    from brgan_core.inference import pick_device
    from plugin.config import load_settings
    from plugin.worker import analysis

    device = pick_device(args.device)
    cache = args.cache
    cache.mkdir(parents=True, exist_ok=True)
    studies = ensure_studies(cache, args.preset, args.warmup + args.studies, args.seed,
                             args.gen_workers)  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="run-", dir=cache))
    sender = None
    try:
        if args.send:
            sender = Sender(work / "orthanc")
        settings = load_settings(data_dir=work / "data", device=args.device)
        version, sha256, ckpt_bytes = make_registry(
            settings.registry_path, args.backbone, size, args.seed
        )
        queued_at = time.time()
        tasks = [build_task(files, version, sha256, queued_at) for files in studies]
        sync = (lambda: torch.cuda.synchronize()) if device.startswith("cuda") else None
        clock = Clock(sync)
        analysis._MODELS.clear()  # a fresh worker: the first study pays the cold load
        print(
            f"{args.preset} data, brgan/{args.backbone} at {size[0]}×{size[1]} on {device}: "
            f"{args.warmup} warm-up + {args.studies} studies",
            file=sys.stderr,
            flush=True,
        )
        warm: list[dict[str, Any]] = []
        timed: list[dict[str, Any]] = []
        with instrumented(clock):
            for i, task in enumerate(tasks):
                row = run_study(task, settings, f"bench-{i:03d}", clock)
                paths = [Path(p) for p in row.pop("result_paths")]
                if sender is not None:
                    add_sends(row, paths, sender)
                label = "warm-up" if i < args.warmup else "timed"
                (warm if i < args.warmup else timed).append(row)
                sends = row.get("send_s", {})
                print(
                    f"  study {i + 1}/{len(tasks)} ({label}): {row['total_s']:.2f} s, "
                    + ", ".join(f"{k} {v:.2f}" for k, v in {**row["stages_s"], **sends}.items()),
                    file=sys.stderr,
                    flush=True,
                )
        config = {
            "preset": args.preset,
            "stored": list(preset.image_size),
            "backbone": args.backbone,
            "input": list(size),
            "device": device,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "studies": args.studies,
            "warmup": args.warmup,
            "pairs_per_study": len(tasks[0].pairs),
            "seed": args.seed,
            "checkpoint_bytes": ckpt_bytes,
            "weights": "untrained (random init, seed); timing does not depend on weight values",
            "heatmap_max_size": settings.heatmap_max_size,
            "write_cad_sr": settings.write_cad_sr,
            "send": None
            if sender is None
            else {
                "orthanc": _orthanc_version(sender),
                "destinations": sender.describe,
                "files_per_study": statistics.fmean(s["result_files"] for s in timed),
                "between_sends": "study deleted from Orthanc (untimed), so STOW-RS stores anew",
            },
        }
        result = build_result(args, config, warm, timed, info)
    finally:
        if sender is not None:
            sender.close()
        if args.keep:
            print(f"run folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(markdown(result))
    if not args.no_json and (args.out is not None or not args.tiny):
        write_result_json(
            result, args.out or RESULTS_DIR / f"worker-{dt.date.today().isoformat()}.json"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
