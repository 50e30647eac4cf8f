"""Per finding kind AUC (issue 11 §3), from the test scores ``bench/seeds.py`` kept.

No training: every (row, seed) run's ``eval.json`` holds all its test scores. For each finding
kind, the positives are the malignant test images that contain it (an image may hold two kinds)
and the negatives are every benign/normal test image; the AUC is computed per training seed,
then the rows are compared to the baseline per kind by a paired t-test across seeds with Holm's
correction over the kinds. Exploratory (declared so in docs/benchmarks.md): the primary contrast
is the overall AUC.

Usage::

    .venv/bin/python bench/per_finding.py --runs runs/seeds/runs --manifest \\
        runs/seeds/data/test/manifest.csv --rows vanilla,brgan,brgan_bilateral \\
        --out docs/bench-results/per-finding-2026-12-02.json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: The malignant kinds of the synthetic generator, grouped as issue 11 §3 names them.
KINDS = {
    "mass": ("spiculated_mass", "irregular_mass"),
    "calcifications": ("calcification_cluster",),
    "distortion": ("architectural_distortion",),
    "asymmetry": ("focal_asymmetry",),
}


def image_kinds(manifest: Path) -> dict[str, tuple[int, set[str]]]:
    """SOP Instance UID → (label, the kind groups among its findings)."""
    out: dict[str, tuple[int, set[str]]] = {}
    with manifest.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            found = set(filter(None, row["findings"].split(";")))
            groups = {g for g, members in KINDS.items() if found & set(members)}
            out[row["sop_instance_uid"]] = (int(row["label"]), groups)
    return out


def kind_aucs(result: dict[str, Any], kinds: dict[str, tuple[int, set[str]]]) -> dict[str, Any]:
    """Per kind: AUC of that kind's malignant images against every negative, and counts."""
    from brgan_core.evaluation.seeds import fast_auc

    ids, scores = result["ids"], np.asarray(result["scores"], dtype=np.float64)
    labels = np.array([kinds[i][0] for i in ids])
    negatives = labels == 0
    out: dict[str, Any] = {}
    for group in KINDS:
        positives = np.array([labels[k] == 1 and group in kinds[i][1] for k, i in enumerate(ids)])
        keep = positives | negatives
        out[group] = {
            "auc": fast_auc(positives[keep], scores[keep]) if positives.any() else None,
            "n_positive": int(positives.sum()),
            "n_negative": int(negatives.sum()),
        }
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/per_finding.py",
        description="Per finding kind test AUC from bench/seeds.py's eval.json files.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--runs", type=Path, default=Path("runs/seeds/runs"))
    parser.add_argument("--manifest", type=Path, default=Path("runs/seeds/data/test/manifest.csv"))
    parser.add_argument("--rows", default="vanilla,brgan,brgan_bilateral")
    parser.add_argument("--baseline", default="vanilla")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    return parser


def main(argv: list[str] | None = None) -> int:
    from brgan_core.evaluation.seeds import holm, paired_seed_test

    args = build_parser().parse_args(argv)
    kinds = image_kinds(args.manifest)
    rows = [r for r in args.rows.split(",") if r]
    per: dict[str, dict[int, dict[str, Any]]] = {}
    for row in rows:
        for path in sorted((args.runs / row).glob("seed-*/eval.json")):
            seed = int(path.parent.name.removeprefix("seed-"))
            per.setdefault(row, {})[seed] = kind_aucs(json.loads(path.read_text()), kinds)
    if args.baseline not in per:
        print(f"no runs of the baseline {args.baseline!r} under {args.runs}", file=sys.stderr)
        return 1
    report: dict[str, Any] = {"kinds": {g: list(m) for g, m in KINDS.items()}, "rows": {}}
    for row, seeds in per.items():
        report["rows"][row] = {
            group: {
                "mean": float(np.mean([s[group]["auc"] for s in seeds.values()])),
                "sd": float(np.std([s[group]["auc"] for s in seeds.values()], ddof=1))
                if len(seeds) > 1
                else None,
                "per_seed": {k: s[group]["auc"] for k, s in sorted(seeds.items())},
                "n_positive": next(iter(seeds.values()))[group]["n_positive"],
            }
            for group in KINDS
        }
    report["contrasts"] = {}
    base = per[args.baseline]
    for row in rows:
        if row == args.baseline or row not in per:
            continue
        common = sorted(set(base) & set(per[row]))
        if len(common) < 2:
            continue
        tests = {
            g: paired_seed_test(
                [base[s][g]["auc"] for s in common], [per[row][s][g]["auc"] for s in common]
            )
            for g in KINDS
        }
        adjusted = holm({g: t.p_ttest for g, t in tests.items()})
        report["contrasts"][row] = {
            g: {**t.to_dict(), "p_holm": adjusted[g], "seeds": common} for g, t in tests.items()
        }
    text = json.dumps(report, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(markdown(report, args.baseline))
    return 0


def markdown(report: dict[str, Any], baseline: str) -> str:
    groups = list(report["kinds"])
    lines = [
        "| model | " + " | ".join(f"{g} (n = {{{g}}})" for g in groups) + " |",
        "|---|" + "---|" * len(groups),
    ]
    any_row = next(iter(report["rows"].values()))
    lines[0] = lines[0].format(**{g: any_row[g]["n_positive"] for g in groups})
    for row, values in report["rows"].items():
        cells = []
        for g in groups:
            v = values[g]
            sd = "" if v["sd"] is None else f" ± {v['sd']:.3f}"
            cells.append(f"{v['mean']:.3f}{sd}")
        lines.append(
            f"| {row} ({len(values[groups[0]]['per_seed'])} seeds) | " + " | ".join(cells) + " |"
        )
    for row, tests in report["contrasts"].items():
        parts = [
            f"{g} {t['mean_diff']:+.3f} (p {t['p_ttest']:.2g}, Holm {t['p_holm']:.2g})"
            for g, t in tests.items()
        ]
        lines.append("")
        lines.append(f"- {row} − {baseline}, paired over seeds: " + "; ".join(parts))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
