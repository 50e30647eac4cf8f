"""Inference cost of BR-GAN against its backbone (issue 3, section 6), for any model preset.

In one process and one run, three measurements are interleaved round by round (the order
rotates every round, so drift and neighbours on a shared machine hit all three alike):

``predict``
    ``model.predict(target, contralateral)`` on one pair, batch 1: what the worker calls for
    every pair, for the model built from ``--preset`` (default ``brgan``). For ``brgan``
    (``bilateral = gan``) it runs the backbone on the *target only*, then G_T2C, the classifier,
    the CAM and the residual map; the contralateral is not encoded at inference. Presets with
    ``needs_contralateral_at_inference`` (``sbf``; ``brgan_paired``, whose G_T2C takes the
    reference features too, f_H = G_T2C(f_T | f_C)) encode *both* images in one backbone pass.
``backbone_pair``
    the backbone alone on the same two images (one batch of two, as ``_encode_pair`` does):
    the baseline issue 3 names ("the backbone alone on the same two images").
``backbone_target``
    the backbone alone on the target image: what ``predict`` itself encodes for ``brgan``, so
    ``predict / backbone_target`` is the cost of everything BR-GAN adds (G_T2C, heads, maps).
    For a preset that encodes both images, ``predict / backbone_pair`` is that cost instead.

The ratios are medians of per-round ratios (paired), with their IQR. Peak memory: on CPU the
resident-set high-water mark (``VmHWM`` in ``/proc/self/status``, reset through
``/proc/self/clear_refs`` before each measurement; ``tracemalloc`` does not see torch's
allocator); on CUDA ``torch.cuda.max_memory_allocated``. A short hooked pass then splits
``predict`` into backbone, G_T2C, classifier head and the rest, and ``FlopCounterMode`` counts
each part's floating-point operations (noise-free); with ``paired_generator`` G_T2C is
counted on (f_T, f_C).

    .venv/bin/python bench/inference.py                # ResNet-50, 1024×832, CPU or CUDA
    .venv/bin/python bench/inference.py --reps 5 --height 512
    .venv/bin/python bench/inference.py --preset brgan_paired   # G_T2C(f_T | f_C)

Results: a markdown table on stdout and JSON in ``docs/bench-results/inference-<date>.json``
(``inference-<date>-<preset>.json`` for a preset other than ``brgan``);
``docs/benchmarks-inference.md`` records a run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:  # run as a script or loaded by path: ``bench`` is no package
    sys.path.insert(0, _BENCH_DIR)

from common import machine_info, summarize  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "docs" / "bench-results"
TARGET_RATIO = 1.15
MEASUREMENTS = ("predict", "backbone_pair", "backbone_target")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (``--help`` lists them)."""
    from brgan_core.model import PRESETS

    parser = argparse.ArgumentParser(
        prog="bench/inference.py",
        description="BR-GAN predict on one pair vs the backbone alone, interleaved in one run.",
    )
    parser.add_argument(
        "--preset",
        default="brgan",
        choices=list(PRESETS),
        help="model preset, a name from brgan_core.model.PRESETS (default: brgan; "
        "brgan_paired: G_T2C also takes the contralateral features)",
    )
    parser.add_argument(
        "--backbone",
        default="resnet50",
        help="feature extractor, a name from brgan_core.model.FEATURE_CHANNELS "
        "(resnet50, resnet18, alexnet, tiny, …; default: resnet50)",
    )
    parser.add_argument("--height", type=int, default=1024, help="input height (default: 1024)")
    parser.add_argument(
        "--width",
        type=int,
        default=None,
        help="input width (default: height × 13/16, i.e. 832 at 1024, the clinical input)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (cuda when available, else cpu), cpu, cuda or cuda:N (default: auto)",
    )
    parser.add_argument(
        "--reps", type=int, default=15, help="timed rounds, each runs all three (default: 15)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default: 2)")
    parser.add_argument(
        "--profile-reps",
        type=int,
        default=5,
        help="hooked predict calls for the per-module split; 0 skips it (default: 5)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="weights and inputs seed")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="JSON result path (default: docs/bench-results/inference-<date>.json, "
        "inference-<date>-<preset>.json for a preset other than brgan)",
    )
    parser.add_argument("--no-json", action="store_true", help="print only, write no JSON")
    return parser


# -- machine and memory ---------------------------------------------------------------------


def _proc_status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# -- statistics -------------------------------------------------------------------------------


def bootstrap_median_ci(
    values: Sequence[float], *, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the median (how sure the median ratio is)."""
    rng = random.Random(seed)
    data = list(values)
    medians = sorted(statistics.median(rng.choices(data, k=len(data))) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


# -- the benchmark ------------------------------------------------------------------------


def resolve_device(name: str) -> Any:
    """The torch device for ``--device`` (``auto`` = cuda when available)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available on this machine")
    return device


class Bench:
    """The model, the inputs and the three callables being compared."""

    def __init__(self, args: argparse.Namespace, device: Any) -> None:
        import torch

        from brgan_core.model import BRGANConfig, build_model

        torch.manual_seed(args.seed)
        width = args.width or round(args.height * 13 / 16)
        self.size = (args.height, width)
        self.device = device
        self.preset = args.preset
        self.model = build_model(BRGANConfig.preset(args.preset, backbone=args.backbone))
        self.model.eval().to(device)
        gen = torch.Generator().manual_seed(args.seed + 1)
        self.target = torch.rand(1, 1, *self.size, generator=gen).to(device)
        self.contralateral = torch.rand(1, 1, *self.size, generator=gen).to(device)
        self.pair = torch.cat([self.target, self.contralateral], dim=0)

    def sync(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def callables(self) -> dict[str, Callable[[], object]]:
        import torch

        model = self.model

        def predict() -> object:
            return model.predict(self.target, self.contralateral)

        def backbone_pair() -> object:
            with torch.inference_mode():
                return model.backbone(self.pair)

        def backbone_target() -> object:
            with torch.inference_mode():
                return model.backbone(self.target)

        return {
            "predict": predict,
            "backbone_pair": backbone_pair,
            "backbone_target": backbone_target,
        }

    def timed(self, fn: Callable[[], object]) -> float:
        self.sync()
        start = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - start


def run_timing(bench: Bench, reps: int, warmup: int) -> dict[str, list[float]]:
    """Warm-up rounds, then ``reps`` rounds of all three measurements in rotating order."""
    fns = bench.callables()
    for _ in range(warmup):
        for name in MEASUREMENTS:
            bench.timed(fns[name])
    times: dict[str, list[float]] = {name: [] for name in MEASUREMENTS}
    for rep in range(reps):
        shift = rep % len(MEASUREMENTS)
        for name in MEASUREMENTS[shift:] + MEASUREMENTS[:shift]:
            times[name].append(bench.timed(fns[name]))
        print(
            f"  round {rep + 1}/{reps}: "
            + ", ".join(f"{n} {times[n][-1]:.3f} s" for n in MEASUREMENTS),
            file=sys.stderr,
            flush=True,
        )
    return times


def run_memory(bench: Bench) -> dict[str, dict[str, Any]]:
    """Peak memory of one call of each measurement (after the timing, so caches are warm)."""
    import torch

    fns = bench.callables()
    out: dict[str, dict[str, Any]] = {}
    for name in MEASUREMENTS:
        gc.collect()
        if bench.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(bench.device)
            before = torch.cuda.memory_allocated(bench.device)
            bench.timed(fns[name])
            peak = torch.cuda.max_memory_allocated(bench.device)
            out[name] = {
                "kind": "cuda max_memory_allocated",
                "peak_mib": peak / 2**20,
                "before_mib": before / 2**20,
                "added_mib": (peak - before) / 2**20,
            }
        else:
            reset = _reset_peak_rss()
            before = _proc_status_kb("VmRSS") or 0
            bench.timed(fns[name])
            hwm = _proc_status_kb("VmHWM") or 0
            out[name] = {
                "kind": "process RSS high-water mark (VmHWM)"
                + ("" if reset else ", NOT reset per measurement: process-wide peak"),
                "peak_mib": hwm / 1024,
                "before_mib": before / 1024,
                "added_mib": (hwm - before) / 1024,
            }
    return out


def run_profile(bench: Bench, reps: int) -> dict[str, Any]:
    """Split ``predict`` into its modules with forward hooks, and count FLOPs of each part."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = bench.model
    parts = {"backbone": model.backbone, "g_t2c": model.g_t2c, "classifier": model.classifier}
    spans: dict[str, list[float]] = {name: [] for name in parts}
    totals: list[float] = []
    starts: dict[str, float] = {}
    handles = []
    for name, module in parts.items():
        if module is None:
            continue

        def pre(_m: object, _i: object, name: str = name) -> None:
            bench.sync()
            starts[name] = time.perf_counter()

        def post(_m: object, _i: object, _o: object, name: str = name) -> None:
            bench.sync()
            spans[name].append(time.perf_counter() - starts[name])

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    try:
        for _ in range(reps):
            totals.append(bench.timed(lambda: model.predict(bench.target, bench.contralateral)))
    finally:
        for handle in handles:
            handle.remove()
    seconds: dict[str, float] = {n: statistics.median(v) for n, v in spans.items() if v}
    total = statistics.median(totals)
    seconds["rest (CAM, residual map, cat, softmax)"] = max(total - sum(seconds.values()), 0.0)
    seconds["predict total"] = total

    # What predict's own backbone call encodes: the target, or both images in one pass.
    both = model.config.needs_contralateral_at_inference
    encoded = "backbone (pair)" if both else "backbone (target)"
    flops: dict[str, int] = {}
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            model.predict(bench.target, bench.contralateral)
        flops["predict"] = int(counter.get_total_flops())
        counter = FlopCounterMode(display=False)
        with counter:
            f_t = model.backbone(bench.target)
        flops["backbone (target)"] = int(counter.get_total_flops())
        f_c = None
        if both:  # one batch of two costs twice one image (no cross-sample work in a CNN)
            counter = FlopCounterMode(display=False)
            with counter:
                f_c = model.backbone(bench.contralateral)
            flops["backbone (pair)"] = flops["backbone (target)"] + int(counter.get_total_flops())
        if model.g_t2c is not None:
            counter = FlopCounterMode(display=False)
            with counter:
                if model.config.paired_generator:
                    model.g_t2c(f_t, f_c)
                else:
                    model.g_t2c(f_t)
            flops["g_t2c"] = int(counter.get_total_flops())
        feature_shape = list(f_t.shape)
    return {
        "seconds_median": seconds,
        "flops": flops,
        "feature_shape": feature_shape,
        "backbone_in_predict": encoded,
    }


# -- report -------------------------------------------------------------------------------


def paired_ratios(times: dict[str, list[float]], num: str, den: str) -> list[float]:
    return [a / b for a, b in zip(times[num], times[den], strict=True)]


def build_result(
    args: argparse.Namespace,
    bench: Bench,
    times: dict[str, list[float]],
    memory: dict[str, dict[str, Any]],
    profile: dict[str, Any] | None,
    info: dict[str, Any],
) -> dict[str, Any]:
    """Everything measured, as one JSON-able dictionary."""
    import torch

    stats = {name: summarize(values) for name, values in times.items()}
    images = {"predict": 1, "backbone_pair": 2, "backbone_target": 1}
    throughput = {name: images[name] / stats[name]["median"] for name in MEASUREMENTS}
    ratios = {}
    for key, den in (
        ("ratio_predict_vs_backbone_pair", "backbone_pair"),
        ("ratio_predict_vs_backbone_target", "backbone_target"),
    ):
        values = paired_ratios(times, "predict", den)
        ratios[key] = summarize(values)
        ratios[key]["ci95_median"] = list(bootstrap_median_ci(values))
    if profile:
        split = profile["seconds_median"]
        # Inside one predict call, so neighbours on the machine slow both parts alike.
        profile["ratio_predict_vs_backbone_in_call"] = split["predict total"] / split["backbone"]
    info = dict(info, loadavg_end=list(os.getloadavg()))
    return {
        "benchmark": "inference",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "bench/inference.py " + " ".join(sys.argv[1:]),
        "config": {
            "backbone": args.backbone,
            "input": list(bench.size),
            "batch": 1,
            "device": str(bench.device),
            "reps": args.reps,
            "warmup": args.warmup,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "preset": bench.preset,
            "paired_generator": bench.model.config.paired_generator,
            "predict_encodes": (
                "both images, one backbone pass"
                if bench.model.config.needs_contralateral_at_inference
                else "target only"
            ),
        },
        "machine": info,
        "seconds": stats,
        "images_per_second": throughput,
        **ratios,
        "target_ratio": TARGET_RATIO,
        "memory": memory,
        "profile": profile,
        "raw_seconds": times,
    }


def markdown(result: dict[str, Any]) -> str:
    """The result as markdown tables (printed; pasted into docs/benchmarks-inference.md)."""
    cfg = result["config"]
    lines = [
        f"BR-GAN inference cost, preset {cfg['preset']} (predict encodes "
        f"{cfg['predict_encodes']}): {cfg['backbone']}, input {cfg['input'][0]}×{cfg['input'][1]}, "
        f"batch 1, {cfg['device']}, torch {cfg['torch']} ({cfg['threads']} threads), "
        f"{cfg['reps']} interleaved rounds after {cfg['warmup']} warm-up",
        "",
        "| measurement | median s | IQR s | images/s | peak memory MiB (added by the call) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in MEASUREMENTS:
        s, mem = result["seconds"][name], result["memory"][name]
        lines.append(
            f"| {name} | {s['median']:.3f} | {s['iqr']:.3f} "
            f"| {result['images_per_second'][name]:.2f} "
            f"| {mem['peak_mib']:.0f} (+{mem['added_mib']:.0f}) |"
        )
    lines += [
        "",
        "| ratio (median of per-round ratios) | median | 95% CI of median | IQR | target |",
        "|---|---:|---:|---:|---|",
    ]
    for key, label in (
        ("ratio_predict_vs_backbone_pair", "predict / backbone on both images"),
        ("ratio_predict_vs_backbone_target", "predict / backbone on the target"),
    ):
        r = result[key]
        low, high = r["ci95_median"]
        lines.append(
            f"| {label} | {r['median']:.3f} | {low:.3f}–{high:.3f} | {r['iqr']:.3f} "
            f"| ≤ {TARGET_RATIO} |"
        )
    profile = result.get("profile")
    if profile:
        lines += ["", "| part of predict | median s | GFLOP |", "|---|---:|---:|"]
        flops = profile["flops"]
        encoded = profile["backbone_in_predict"]
        flop_keys = {"backbone": encoded, "g_t2c": "g_t2c", "predict total": "predict"}
        for name, seconds in profile["seconds_median"].items():
            key = flop_keys.get(name)
            gflop = ""
            if key in flops:  # small backbones and inputs: significant digits, not 0.0
                g = flops[key] / 1e9
                gflop = f"{g:.1f}" if g >= 1 else f"{g:.3g}"
            lines.append(f"| {name} | {seconds:.3f} | {gflop} |")
        lines += [
            "",
            "predict / backbone inside the hooked predict calls: "
            f"{profile['ratio_predict_vs_backbone_in_call']:.3f}; by FLOPs: "
            f"{flops['predict'] / flops[encoded]:.3f} (against the {encoded}, as predict runs it)",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (0)."""
    args = build_parser().parse_args(argv)
    if args.reps < 1 or args.warmup < 0 or args.profile_reps < 0:
        raise SystemExit("--reps must be ≥ 1, --warmup and --profile-reps ≥ 0")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info()
    device = resolve_device(args.device)
    try:
        bench = Bench(args, device)
    except ValueError as exc:  # an unknown backbone name, a bad size: say it, no traceback
        raise SystemExit(f"bench/inference.py: {exc}") from None
    print(
        f"preset {args.preset}, {args.backbone} {bench.size[0]}×{bench.size[1]} on {device}: "
        f"{args.warmup} warm-up + "
        f"{args.reps} rounds",
        file=sys.stderr,
        flush=True,
    )
    times = run_timing(bench, args.reps, args.warmup)
    memory = run_memory(bench)
    profile = run_profile(bench, args.profile_reps) if args.profile_reps else None
    result = build_result(args, bench, times, memory, profile, info)
    print(markdown(result))
    if not args.no_json:
        suffix = "" if args.preset == "brgan" else f"-{args.preset}"
        path = args.json or RESULTS_DIR / f"inference-{dt.date.today().isoformat()}{suffix}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"\nJSON: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
