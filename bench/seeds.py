"""Does BR-GAN help? Rows × training seeds under one converged protocol, with paired statistics.

Usage (the committed results in ``docs/benchmarks.md`` were made with these commands)::

    # vanilla alone first: its difficulty band and seed-to-seed SD under the protocol
    .venv/bin/python bench/seeds.py --out runs/seeds --rows vanilla --seeds 0,1 --jobs 2
    # the primary contrast (resumes: finished (row, seed) runs are kept)
    .venv/bin/python bench/seeds.py --out runs/seeds --rows vanilla,brgan --seeds 0-5 --jobs 2
    # the report only, from whatever has finished
    .venv/bin/python bench/seeds.py --out runs/seeds --rows vanilla,brgan --seeds 0-5 --report

What it does (every step resumes from what is on disk):

1. writes three separately seeded ``bench-cpu`` sets: training (all of it trains), validation
   (``--val-patients``, its own seed) and test; 4 images per patient.
2. trains every (row, seed) in its own child process, ``--jobs`` at a time, one torch thread
   each, with the protocol below; seed k gives every row the same backbone initialisation and
   the same batch order. Each child then evaluates its final weights on the test set
   (``brgan evaluate``'s code; temperature and threshold from the validation set) and writes
   ``runs/<row>/seed-<k>/eval.json`` with every test score.
3. reports (``<out>/seeds.json``, ``<out>/seeds.md``, ``<out>/curves.png``): per row the mean, SD
   and per-seed test AUC (each with a patient-bootstrap CI) and validation AUC; the primary
   contrast (``--primary``, default brgan − vanilla) by a paired t-test across seeds (Wilcoxon
   beside it) with a hierarchical seed × patient bootstrap CI; every other row against the
   baseline with Holm's correction; validation-AUC curves per epoch (does the curve flatten?).

The protocol (``--epochs`` etc. change it for every row at once): Adam β = (0.9, 0.999) for the
backbone and heads, (0.5, 0.999) for generators and discriminators; peak lr 1e-3 (heads) and
2e-4 (discriminators, CycleGAN's); one warm-up epoch then cosine decay per step to 0; an EMA of
weights and BatchNorm buffers (decay 0.995); the final EMA weights are evaluated (no selection on
the validation AUC, no early stopping).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:
    sys.path.insert(0, _BENCH_DIR)

from ablation import LABELS, _cached_loader, _data  # noqa: E402
from common import machine_info  # noqa: E402


def parse_seeds(text: str) -> list[int]:
    """``"0-5"`` → [0..5]; ``"0,2,4"`` → [0, 2, 4]."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-")
            seeds.extend(range(int(lo), int(hi) + 1))
        elif part:
            seeds.append(int(part))
    return seeds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/seeds.py",
        description="Rows x training seeds under one converged protocol, paired statistics.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("runs/seeds"))
    parser.add_argument("--data", type=Path, default=None, help="default: <out>/data")
    parser.add_argument("--preset", default="bench-cpu")
    parser.add_argument("--rows", default="vanilla,brgan")
    parser.add_argument("--seeds", default="0-5", help="e.g. 0-5 or 0,1,2")
    parser.add_argument("--primary", default="brgan", help="the primary contrast: this − baseline")
    parser.add_argument("--baseline", default="vanilla")
    parser.add_argument(
        "--decide",
        default="brgan_bilateral:brgan",
        help="extra paired contrasts ROW:BASELINE (comma-separated), e.g. the product-default "
        "rule of issue 11 §4; reported when both rows have >= 2 common seeds",
    )
    parser.add_argument("--backbone", default="cnn4")
    parser.add_argument("--pooling", default="max")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-d", type=float, default=2e-4)
    parser.add_argument("--ema-decay", type=float, default=0.995)
    parser.add_argument("--train-patients", type=int, default=0, help="0 = the preset's")
    parser.add_argument("--val-patients", type=int, default=250)
    parser.add_argument("--test-patients", type=int, default=0, help="0 = the preset's")
    parser.add_argument("--val-seed", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--report", action="store_true", help="only write the report")
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)  # child: "row:seed"
    return parser


def _paths(args: argparse.Namespace) -> dict[str, Path]:
    from brgan_core.synth import get_preset

    preset = get_preset(args.preset)
    data = args.data or args.out / "data"
    train = _data(
        data / "train", preset, args.train_patients or preset.train_patients, preset.train_seed
    )
    val = _data(data / "val", preset, args.val_patients, args.val_seed)
    test = _data(
        data / "test", preset, args.test_patients or preset.test_patients, preset.test_seed
    )
    return {
        "train": train.parent,
        "val": val.parent,
        "test": test.parent,
        "size": tuple(preset.model_input_size),
    }  # type: ignore[dict-item]


def _run_dir(args: argparse.Namespace, row: str, seed: int) -> Path:
    return args.out / "runs" / row / f"seed-{seed}"


def train_and_evaluate(args: argparse.Namespace, row: str, seed: int) -> Path:
    """Train one (row, seed) with the protocol, evaluate its final weights; returns eval.json."""
    import torch

    from brgan_core.data.readers import read_dataset
    from brgan_core.evaluation.runner import evaluate_checkpoint
    from brgan_core.model import BRGANConfig
    from brgan_core.training.config import DataConfig, TrainConfig
    from brgan_core.training.run import train_from_config

    torch.set_num_threads(1)
    paths = _paths(args)
    out_dir = _run_dir(args, row, seed)
    result_path = out_dir / "eval.json"
    if result_path.exists():
        return result_path
    config = TrainConfig(
        model=BRGANConfig.preset(row, backbone=args.backbone, pooling=args.pooling),
        data=DataConfig(
            kind="manifest", root=paths["train"], val_root=paths["val"], size=paths["size"]
        ),
        out_dir=out_dir,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_d=args.lr_d,
        betas=(0.9, 0.999),
        betas_gan=(0.5, 0.999),
        schedule="cosine",
        warmup_epochs=args.warmup_epochs,
        ema_decay=args.ema_decay,
        select="final",
        patience=0,
        seed=seed,
        device="cpu",
    )
    loader = _cached_loader()
    t0 = time.perf_counter()

    def on_epoch(record: Any) -> None:
        print(
            f"  {row} s{seed} epoch {record.epoch}: val AUC {record.val['auc']:.3f} "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )

    resume = (out_dir / "train_state.pt").exists()
    trained = train_from_config(config, resume=resume, loader=loader, on_epoch=on_epoch)
    train_seconds = time.perf_counter() - t0
    test_pairs = read_dataset("manifest", paths["test"]).pairs
    val_pairs = read_dataset("manifest", paths["val"]).pairs
    t1 = time.perf_counter()
    evaluation = evaluate_checkpoint(
        trained.best_checkpoint,
        test_pairs,
        val_pairs,
        loader=loader,
        features=False,
        n_boot=200,
        batch_size=32,
    )
    model = evaluation.models[0]
    history = [
        {
            "epoch": r.epoch,
            "val_auc": r.val["auc"],
            "val_loss": r.val["loss"],
            "lr": r.train.get("lr"),
            "seconds": r.seconds,
        }
        for r in trained.history
    ]
    result = {
        "row": row,
        "seed": seed,
        "checkpoint": str(trained.best_checkpoint),
        "test_auc": model.auc.auc,
        "val_auc": model.val_auc,
        "localization_error": None if model.localization is None else model.localization.error,
        "epochs_run": trained.epochs_run,
        "train_seconds": train_seconds,
        "eval_seconds": time.perf_counter() - t1,
        "history": history,
        "ids": list(model.test.ids),
        "labels": [int(v) for v in model.test.labels],
        "patients": [p.patient_id for p in test_pairs],
        "scores": [float(v) for v in model.test.p_malignant],
        "config": config.to_dict(),
    }
    if model.auc_without_contralateral is not None:  # the contralateral branch (issue 11 §4)
        alone = model.test_without_contralateral
        assert alone is not None and list(alone.ids) == result["ids"]
        result["test_auc_without_contralateral"] = model.auc_without_contralateral.auc
        result["scores_without_contralateral"] = [float(v) for v in alone.p_malignant]
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(result_path)
    print(
        f"== {row} s{seed}: test AUC {model.auc.auc:.3f} (val {model.val_auc:.3f}), "
        f"{train_seconds / 60:.1f} min",
        flush=True,
    )
    return result_path


def _child_args(args: argparse.Namespace) -> list[str]:
    skip = {"one", "report", "jobs", "rows", "seeds"}
    out: list[str] = []
    for key, value in vars(args).items():
        if key in skip or value is None:
            continue
        out += [f"--{key.replace('_', '-')}", str(value)]
    return out


def run_all(args: argparse.Namespace, tasks: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Run the unfinished tasks in child processes, ``--jobs`` at a time; returns failures."""
    todo = [t for t in tasks if not (_run_dir(args, *t) / "eval.json").exists()]
    base = [sys.executable, str(Path(__file__).resolve()), *_child_args(args)]
    running: list[tuple[tuple[str, int], subprocess.Popen[bytes]]] = []
    failed: list[tuple[str, int]] = []
    while todo or running:
        while todo and len(running) < max(1, args.jobs):
            task = todo.pop(0)
            running.append((task, subprocess.Popen([*base, "--one", f"{task[0]}:{task[1]}"])))
        time.sleep(2)
        for item in list(running):
            task, child = item
            if child.poll() is not None:
                running.remove(item)
                if child.returncode != 0:
                    failed.append(task)
                else:
                    write_report(args, tasks)  # commit-able results as rows finish
    return failed


#: Suffix of the derived row "the same models, every test target scored without its
#: contralateral" (rows with the contralateral branch; its val AUC is the models', with them).
ALONE = ":no-contralateral"


def _load(args: argparse.Namespace, tasks: list[tuple[str, int]]) -> dict[str, dict[int, Any]]:
    results: dict[str, dict[int, Any]] = {}
    for row, seed in tasks:
        path = _run_dir(args, row, seed) / "eval.json"
        if path.exists():
            results.setdefault(row, {})[seed] = json.loads(path.read_text())
    for row in list(results):
        alone = {
            seed: {
                **r,
                "row": row + ALONE,
                "test_auc": r["test_auc_without_contralateral"],
                "scores": r["scores_without_contralateral"],
                "localization_error": None,
            }
            for seed, r in results[row].items()
            if "scores_without_contralateral" in r
        }
        if alone:
            results[row + ALONE] = alone
    return results


def _curves_png(results: dict[str, dict[int, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    colors = ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown"]
    trained = {r: v for r, v in results.items() if not r.endswith(ALONE)}  # same curves
    for color, (row, per_seed) in zip(colors, trained.items(), strict=False):
        for k, (_seed, r) in enumerate(sorted(per_seed.items())):
            epochs = [h["epoch"] for h in r["history"]]
            aucs = [h["val_auc"] for h in r["history"]]
            ax.plot(
                epochs,
                aucs,
                color=color,
                alpha=0.6,
                lw=1,
                label=LABELS.get(row, row) if k == 0 else None,
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation AUC (EMA weights)")
    ax.set_title("Validation AUC per epoch, one line per training seed")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(args: argparse.Namespace, tasks: list[tuple[str, int]]) -> dict[str, Any]:
    """Per-row summaries, the primary contrast and the secondary rows; JSON, markdown, PNG."""
    import numpy as np

    from brgan_core.evaluation.seeds import (
        hierarchical_contrast,
        holm,
        paired_seed_test,
        patient_bootstrap_auc,
    )

    results = _load(args, tasks)
    report: dict[str, Any] = {"rows": {}, "primary": None, "secondary": {}}
    for row, per_seed in results.items():
        seeds = sorted(per_seed)
        per = []
        for seed in seeds:
            r = per_seed[seed]
            ci = patient_bootstrap_auc(
                r["labels"], r["scores"], r["patients"], n_boot=args.n_boot, seed=seed
            )
            curve = [h["val_auc"] for h in r["history"]]
            per.append(
                {
                    "seed": seed,
                    "test_auc": r["test_auc"],
                    "ci": [ci.ci_low, ci.ci_high],
                    "val_auc": r["val_auc"],
                    "localization_error": r["localization_error"],
                    "train_minutes": r["train_seconds"] / 60,
                    "val_curve": curve,
                }
            )
        test = np.array([p["test_auc"] for p in per])
        val = np.array([p["val_auc"] for p in per])
        report["rows"][row] = {
            "label": LABELS.get(row, row),
            "seeds": seeds,
            "test_mean": float(test.mean()),
            "test_sd": float(test.std(ddof=1)) if len(test) > 1 else None,
            "val_mean": float(val.mean()),
            "val_sd": float(val.std(ddof=1)) if len(val) > 1 else None,
            "per_seed": per,
        }

    def contrast(row: str, baseline: str = args.baseline) -> dict[str, Any] | None:
        base, other = results.get(baseline, {}), results.get(row, {})
        seeds = sorted(set(base) & set(other))
        if len(seeds) < 2:
            return None
        test = paired_seed_test(
            [base[s]["test_auc"] for s in seeds], [other[s]["test_auc"] for s in seeds]
        )
        first = base[seeds[0]]
        point, low, high = hierarchical_contrast(
            first["labels"],
            [base[s]["scores"] for s in seeds],
            [other[s]["scores"] for s in seeds],
            first["patients"],
            n_boot=args.n_boot,
        )
        return {
            "row": row,
            "baseline": baseline,
            "seeds": seeds,
            **test.to_dict(),
            "hierarchical_mean": point,
            "hierarchical_ci": [low, high],
        }

    if args.primary in results and args.primary != args.baseline:
        report["primary"] = contrast(args.primary)
    # The declared Holm family: trained rows only (a derived ":no-contralateral" row is the same
    # models scored another way; it is reported with the decisions, outside the family).
    secondary = {
        r: contrast(r)
        for r in results
        if r not in (args.baseline, args.primary) and not r.endswith(ALONE)
    }
    secondary = {r: c for r, c in secondary.items() if c is not None}
    if secondary:
        adjusted = holm({r: c["p_ttest"] for r, c in secondary.items()})
        for r, c in secondary.items():
            c["p_holm"] = adjusted[r]
    report["secondary"] = secondary
    report["decisions"] = {}
    declared = list(filter(None, (args.decide or "").split(",")))
    derived = [f"{r}:{r.removesuffix(ALONE)}" for r in results if r.endswith(ALONE)]
    for item in [*declared, *derived]:
        row, _, baseline = item.rpartition(":")  # a derived row's name holds a ":" itself
        found = contrast(row, baseline)
        if found is not None:
            report["decisions"][item] = {**found, "declared": item in declared}
    report["protocol"] = {k: str(v) for k, v in vars(args).items() if k not in ("one", "report")}
    report["machine"] = machine_info(load=list(os.getloadavg()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "seeds.json").write_text(json.dumps(report, indent=2))
    (args.out / "seeds.md").write_text(_markdown(report))
    if results:
        _curves_png(results, args.out / "curves.png")
    return report


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        "| model | seeds | test AUC mean ± SD | per-seed test AUC [patient-bootstrap 95% CI] "
        "| val AUC mean ± SD | train min (mean) |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["rows"].values():
        sd = "" if r["test_sd"] is None else f" ± {r['test_sd']:.3f}"
        vsd = "" if r["val_sd"] is None else f" ± {r['val_sd']:.3f}"
        per = "; ".join(
            f"s{p['seed']} {p['test_auc']:.3f} [{p['ci'][0]:.3f}, {p['ci'][1]:.3f}]"
            for p in r["per_seed"]
        )
        minutes = sum(p["train_minutes"] for p in r["per_seed"]) / len(r["per_seed"])
        lines.append(
            f"| {r['label']} | {len(r['seeds'])} | {r['test_mean']:.3f}{sd} | {per} | "
            f"{r['val_mean']:.3f}{vsd} | {minutes:.1f} |"
        )
    p = report.get("primary")
    if p:
        lines += [
            "",
            f"**Primary contrast, {p['row']} − baseline over {p['n_seeds']} paired "
            f"seeds:** mean Δ AUC {p['mean_diff']:+.4f} (SD {p['sd_diff']:.4f}; per seed "
            + ", ".join(f"{d:+.3f}" for d in p["diffs"])
            + f"); paired t = {p['t']:.2f}, p = {p['p_ttest']:.3g} (primary); Wilcoxon "
            f"p = {p['p_wilcoxon']:.3g}; hierarchical seed × patient bootstrap 95% CI "
            f"[{p['hierarchical_ci'][0]:+.4f}, {p['hierarchical_ci'][1]:+.4f}].",
        ]
    for c in report.get("decisions", {}).values():
        lines += [
            "",
            ("**Decision contrast" if c["declared"] else "**Descriptive contrast")
            + f" {c['row']} − {c['baseline']}** ({c['n_seeds']} paired seeds, "
            + ("declared before the runs" if c["declared"] else "not a declared test")
            + f"): mean Δ AUC {c['mean_diff']:+.4f} (per seed "
            + ", ".join(f"{d:+.3f}" for d in c["diffs"])
            + f"); paired t p = {c['p_ttest']:.3g}; Wilcoxon p = {c['p_wilcoxon']:.3g}; "
            f"hierarchical 95% CI [{c['hierarchical_ci'][0]:+.4f}, "
            f"{c['hierarchical_ci'][1]:+.4f}].",
        ]
    for row, c in report.get("secondary", {}).items():
        lines += [
            "",
            f"- {row} − baseline ({c['n_seeds']} seeds): Δ {c['mean_diff']:+.4f}, "
            f"paired t p = {c['p_ttest']:.3g}, Holm p = {c['p_holm']:.3g}, CI "
            f"[{c['hierarchical_ci'][0]:+.4f}, {c['hierarchical_ci'][1]:+.4f}] "
            "(exploratory)",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.one:
        row, seed = args.one.split(":")
        train_and_evaluate(args, row, int(seed))
        return 0
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    seeds = parse_seeds(args.seeds)
    tasks = [(row, seed) for seed in seeds for row in rows]
    if not args.report:
        _paths(args)  # write the data once, before the children start
        started = time.perf_counter()
        failed = run_all(args, tasks)
        print(f"wall {time.perf_counter() - started:.0f} s", flush=True)
        if failed:
            print(f"failed: {failed}", file=sys.stderr)
            return 1
    report = write_report(args, tasks)
    print((args.out / "seeds.md").read_text())
    return 0 if report["rows"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
