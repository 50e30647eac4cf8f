"""The paper's ablation table (Table 3) and localization table (Table 2) on synthetic data.

Usage (the committed results in ``docs/benchmarks.md`` were made with the defaults)::

    .venv/bin/python bench/ablation.py --out runs/ablation --jobs 2   # bench-cpu, all rows
    .venv/bin/python bench/ablation.py --out runs/ablation --rows vanilla,brgan --epochs 4
    # a second training seed on the same data:
    .venv/bin/python bench/ablation.py --out runs/ablation-s1 --data runs/ablation/data --seed 1

``--jobs N`` trains the rows in N child processes (one torch thread each unless ``--threads``
says otherwise), then evaluates every row in this process; on a 2-core machine ``--jobs 2``
halves the wall time.

What it does, in order (each step resumes if its output already exists):

1. writes the data with the synthetic generator's ``bench-cpu`` preset: a training set
   (``--train-patients`` patients, seed ``--train-seed``; split patient-wise 9:1 into train and
   validation by the training code) and a separately seeded test set (``--test-patients``,
   seed ``--test-seed``; 4 images per patient, so 250 patients = 1,000 test images);
2. trains each row with ``brgan train``'s code (:func:`train_from_config`), same seeds, same
   epochs, early stopping on validation AUC; the best epoch is kept;
3. evaluates each row's best checkpoint on the test set with ``brgan evaluate``'s code: image-wise
   AUC with a bootstrap 95% CI, DeLong against the vanilla row (same images), temperature and
   threshold fitted on validation, CAM top-1 localization error at IoU 0.1;
4. writes ``<out>/ablation.json`` and a markdown table (``<out>/ablation.md``).

The rows are the model presets of ``brgan_core.model.config.PRESETS``: vanilla, SBF, GAN (no
consistency, no L_RE, no mask), GAN single + mask, GAN double + mask, GAN double + L_RE (no
mask), full BR-GAN, and CycleGAN with a random healthy reference. One extra row, not in the
paper and not run by default, can be asked for by name: ``brgan_paired``, full BR-GAN whose
G_T2C also sees the contralateral (f_H = G_T2C(f_T | f_C)), so it uses the contralateral at
inference, as SBF does.
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
if _BENCH_DIR not in sys.path:  # run as a script or loaded by path: ``bench`` is no package
    sys.path.insert(0, _BENCH_DIR)

from common import machine_info  # noqa: E402

ROWS = (
    "vanilla",
    "sbf",
    "gan",
    "gan_single_mask",
    "gan_double_mask",
    "gan_double_re",
    "brgan",
    "cyclegan_healthy",
)
#: Rows beyond the paper's table, run only when named in ``--rows``.
EXTRA_ROWS = ("brgan_paired",)
LABELS = {
    "vanilla": "Vanilla (single view)",
    "sbf": "SBF (simple bilateral fusion)",
    "gan": "GAN × × ×",
    "gan_single_mask": "GAN single + mask",
    "gan_double_mask": "GAN double + mask",
    "gan_double_re": "GAN double + L_RE (no mask)",
    "brgan": "BR-GAN (double + L_RE + mask)",
    "cyclegan_healthy": "CycleGAN, healthy reference",
    "brgan_paired": "BR-GAN, paired G_T2C (ours, not in the paper)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/ablation.py",
        description="Train and evaluate the paper's ablation rows on synthetic bench-cpu data.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--preset", default="bench-cpu", help="synthetic data preset")
    parser.add_argument(
        "--lesion-contrast",
        type=float,
        default=0.0,
        help="override the preset's lesion_contrast (0 = the preset's); for calibrating the "
        "vanilla row only, before any bilateral row is trained",
    )
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated model presets")
    parser.add_argument("--backbone", default="cnn4", help="cnn4 | tiny | alexnet | resnet18")
    parser.add_argument("--pooling", default="max", help="global pooling of the heads: avg | max")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0, help="training seed (weights, order)")
    parser.add_argument("--train-patients", type=int, default=0, help="0 = the preset's")
    parser.add_argument("--test-patients", type=int, default=0, help="0 = the preset's")
    parser.add_argument("--train-seed", type=int, default=-1, help="-1 = the preset's")
    parser.add_argument("--test-seed", type=int, default=-1, help="-1 = the preset's")
    parser.add_argument("--val-share", type=float, default=0.2, help="validation share of train")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder with the train/ and test/ data (default: <out>/data; written if missing)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="train the rows in this many child processes, then evaluate them all here",
    )
    parser.add_argument(
        "--train-only", action="store_true", help="train (or resume) the rows, evaluate nothing"
    )
    parser.add_argument("--results", default="ablation", help="results file stem in --out")
    return parser


def _data(out: Path, preset: Any, patients: int, seed: int) -> Path:
    from brgan_core.synth import write_dataset

    manifest = out / "manifest.csv"
    if not manifest.exists():
        t0 = time.perf_counter()
        write_dataset(out, patients, preset, seed)
        print(f"wrote {patients} patients to {out} in {time.perf_counter() - t0:.0f} s", flush=True)
    return manifest


def _cached_loader() -> Any:
    """Preprocess each file once for all rows (same input size for every row)."""
    from brgan_core.training.dataset import preprocess_loader

    cache: dict[tuple[str, tuple[int, int]], Any] = {}

    def load(path: Path, size: tuple[int, int]) -> Any:
        key = (str(path), tuple(size))
        if key not in cache:
            cache[key] = preprocess_loader(path, size)
        return cache[key]

    return load


def _train_row(row: str, args: argparse.Namespace, train_root: Path, size, loader) -> Path:
    from brgan_core.model import BRGANConfig
    from brgan_core.training.config import DataConfig, TrainConfig
    from brgan_core.training.run import train_from_config

    out_dir = args.out / "runs" / row
    done = out_dir / "done.json"
    if done.exists():  # the folder may have been moved since: trust its layout, not the path
        return out_dir / "best.safetensors"
    config = TrainConfig(
        model=BRGANConfig.preset(row, backbone=args.backbone, pooling=args.pooling),
        data=DataConfig(
            kind="manifest",
            root=train_root,
            size=size,
            ratios=(1 - args.val_share, args.val_share, 0.0),
            split_seed=0,
        ),
        out_dir=out_dir,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_d=args.lr,
        patience=args.patience,
        seed=args.seed,
        device="auto",
    )
    t0 = time.perf_counter()

    def on_epoch(record: Any) -> None:
        print(
            f"  {row} epoch {record.epoch}: val {record.val} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )

    result = train_from_config(
        config, resume=(out_dir / "train_state.pt").exists(), loader=loader, on_epoch=on_epoch
    )
    seconds = time.perf_counter() - t0
    done.write_text(
        json.dumps(
            {
                "best_checkpoint": str(result.best_checkpoint),
                "best_epoch": result.best_epoch,
                "best_val_auc": result.best_auc,
                "epochs_run": result.epochs_run,
                "stopped_early": result.stopped_early,
                "train_seconds": seconds,
            }
        )
    )
    return result.best_checkpoint


#: Table 3's columns (Bilateral, L_c, L_RE, Mask) for each row, as the paper prints them.
PAPER_COLUMNS = {
    "vanilla": ("×", "×", "×", "×"),
    "sbf": ("SBF", "×", "×", "×"),
    "gan": ("GAN", "×", "×", "×"),
    "gan_single_mask": ("GAN", "Single", "×", "✓"),
    "gan_double_mask": ("GAN", "Double", "×", "✓"),
    "gan_double_re": ("GAN", "Double", "✓", "×"),
    "brgan": ("GAN", "Double", "✓", "✓"),
}


def _paper_tables(results: dict[str, Any]) -> str:
    """The paper's Table 3 (ablation AUC) and Table 2 (top-1 localization error) layouts."""
    lines = [
        "Table 3 layout (AUC on the test set, 95% CI):",
        "",
        "| Bilateral | L_c | L_RE | Mask | AUC [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for row, columns in PAPER_COLUMNS.items():
        r = results.get(row, {})
        if "auc" in r:
            auc = f"{r['auc']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"
            lines.append(f"| {' | '.join(columns)} | {auc} |")
    lines += [
        "",
        "Table 2 layout (CAM top-1 localization error at IoU 0.1, lower is better):",
        "",
        "| Methodology | Top-1 error |",
        "|---|---|",
    ]
    for row in ("vanilla", "cyclegan_healthy", "sbf", "brgan", *EXTRA_ROWS):
        loc = results.get(row, {}).get("localization_error")
        if loc is not None:
            lines.append(f"| {LABELS[row]} | {loc:.3f} |")
    return "\n".join(lines)


def _table(results: dict[str, Any]) -> str:
    lines = [
        "| model | test AUC [95% CI] | Δ vs vanilla | DeLong p vs vanilla | val AUC | "
        "top-1 loc. error @IoU 0.1 | best epoch | train min |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = results.get("vanilla", {}).get("auc")
    for row, r in results.items():
        if "auc" not in r:
            continue
        delta = "" if base is None or row == "vanilla" else f"{r['auc'] - base:+.3f}"
        p = r.get("delong_p")
        loc = r.get("localization_error")
        lines.append(
            f"| {LABELS.get(row, row)} | {r['auc']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | "
            f"{delta} | {'' if p is None else f'{p:.2g}'} | "
            f"{'' if r.get('val_auc') is None else format(r['val_auc'], '.3f')} | "
            f"{'' if loc is None else format(loc, '.3f')} | {r.get('best_epoch', '')} | "
            f"{r.get('train_seconds', 0) / 60:.1f} |"
        )
    return "\n".join(lines)


def _train_in_children(args: argparse.Namespace, rows: list[str]) -> list[str]:
    """Train the untrained ``rows`` in ``args.jobs`` child processes (round robin).

    Returns the rows of the children that failed (empty when all succeeded). Each child runs
    this script with the same (already resolved) settings and one torch thread unless
    ``--threads`` is given; its output goes to this process's stdout, one line per epoch.
    """
    common = [
        sys.executable,
        str(Path(__file__).resolve()),
        *("--out", str(args.out), "--data", str(args.data), "--preset", args.preset),
        *("--lesion-contrast", str(args.lesion_contrast)),
        *("--backbone", args.backbone, "--pooling", args.pooling),
        *("--epochs", str(args.epochs), "--patience", str(args.patience)),
        *("--batch-size", str(args.batch_size), "--lr", str(args.lr), "--seed", str(args.seed)),
        *("--train-patients", str(args.train_patients)),
        *("--test-patients", str(args.test_patients)),
        *("--train-seed", str(args.train_seed), "--test-seed", str(args.test_seed)),
        *("--val-share", str(args.val_share), "--threads", str(args.threads or 1)),
        "--train-only",
    ]
    todo = [row for row in rows if not (args.out / "runs" / row / "done.json").exists()]
    groups = [todo[i :: args.jobs] for i in range(args.jobs) if todo[i :: args.jobs]]
    children = [(group, subprocess.Popen([*common, "--rows", ",".join(group)])) for group in groups]
    failed: list[str] = []
    for group, child in children:
        if child.wait() != 0:
            failed.extend(group)
    return failed


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from brgan_core.data.readers import read_dataset
    from brgan_core.data.splits import split_pairs
    from brgan_core.evaluation.runner import evaluate_checkpoint
    from brgan_core.synth import get_preset

    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = sorted(set(rows) - set(ROWS) - set(EXTRA_ROWS))
    if unknown:
        known = ", ".join(ROWS + EXTRA_ROWS)
        print(f"unknown rows: {', '.join(unknown)} (known: {known})", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    preset = get_preset(args.preset)
    if args.lesion_contrast:
        preset = preset.with_(lesion_contrast=args.lesion_contrast)
    args.lesion_contrast = preset.lesion_contrast
    size = tuple(preset.model_input_size)
    args.train_patients = args.train_patients or preset.train_patients
    args.test_patients = args.test_patients or preset.test_patients
    args.train_seed = preset.train_seed if args.train_seed < 0 else args.train_seed
    args.test_seed = preset.test_seed if args.test_seed < 0 else args.test_seed
    args.data = args.data or args.out / "data"
    train_manifest = _data(args.data / "train", preset, args.train_patients, args.train_seed)
    train_root = train_manifest.parent
    test_root = _data(args.data / "test", preset, args.test_patients, args.test_seed)
    test_pairs = read_dataset("manifest", test_root.parent).pairs
    splits = split_pairs(
        read_dataset("manifest", train_root).pairs,
        seed=0,
        ratios=(1 - args.val_share, args.val_share, 0.0),
    )
    loader = _cached_loader()
    results_path = args.out / f"{args.results}.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.exists() else {}
    started = time.perf_counter()
    if args.jobs > 1 and not args.train_only:
        failed = _train_in_children(args, rows)
        if failed:
            print(f"training failed for rows: {', '.join(failed)}", file=sys.stderr)
            return 1
    for row in rows:
        print(f"== {row}", flush=True)
        best = _train_row(row, args, train_root, size, loader)
        if args.train_only or "auc" in results.get(row, {}):
            continue
        compare = None
        if row != "vanilla" and "vanilla" in results:
            compare = str(args.out / "runs" / "vanilla" / "best.safetensors")
        evaluation = evaluate_checkpoint(
            best,
            test_pairs,
            splits.val,
            compare=compare,
            loader=loader,
            features=False,
            n_boot=args.n_boot,
            batch_size=32,
        )
        model = evaluation.models[0]
        done = json.loads((args.out / "runs" / row / "done.json").read_text())
        results[row] = {
            "checkpoint": str(best),
            "auc": model.auc.auc,
            "ci": [model.auc.ci_low, model.auc.ci_high],
            "val_auc": model.val_auc,
            "localization_error": (
                None if model.localization is None else model.localization.error
            ),
            "delong_p": None if evaluation.delong is None else evaluation.delong.p,
            "delong_z": None if evaluation.delong is None else evaluation.delong.z,
            "test_n": len(model.test),
            **{k: done[k] for k in ("best_epoch", "epochs_run", "train_seconds")},
        }
        results_path.write_text(json.dumps(results, indent=2))
        (args.out / f"{args.results}.md").write_text(
            _table(results) + "\n\n" + _paper_tables(results) + "\n"
        )
        print(_table(results), flush=True)
    if args.train_only:
        return 0
    meta = {
        "command": "python bench/ablation.py " + " ".join(argv or sys.argv[1:]),
        "args": {k: str(v) for k, v in vars(args).items()},
        "machine": machine_info(load_at_end=list(os.getloadavg())),
        "wall_seconds_this_invocation": time.perf_counter() - started,
        "test_images": len(test_pairs),
        "val_images": len(splits.val),
        "train_images": len(splits.train),
    }
    (args.out / f"{args.results}-meta.json").write_text(json.dumps(meta, indent=2))
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
