"""Fit (or refit) a checkpoint's domain-shift guard on the data it was trained and validated on.

Usage (how the shipped demo model's guard was made)::

    .venv/bin/python bench/refit_guard.py --checkpoint deploy/models/brgan-demo/model.safetensors \\
        --train runs/seeds/data/train --val runs/seeds/data/val

``brgan train`` fits the guard itself; this is for a checkpoint made before the guard (or its
descriptor) existed. The file is rewritten (its sha256 changes: register it afterwards).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/refit_guard.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True, help="training manifest folder")
    parser.add_argument("--val", type=Path, required=True, help="validation manifest folder")
    parser.add_argument("--percentile", type=float, default=99.0)
    args = parser.parse_args(argv)

    from brgan_core.checkpoint import read_info
    from brgan_core.data.readers import read_dataset
    from brgan_core.preprocess import preprocess
    from brgan_core.shift import attach_guard

    size = tuple(read_info(args.checkpoint).preprocessing["size"])

    def images(root: Path):
        for pair in read_dataset("manifest", root).pairs:
            yield preprocess(pair.target.path, size=size).image

    guard = attach_guard(
        args.checkpoint, images(args.train), images(args.val), percentile=args.percentile
    )
    print(
        f"{args.checkpoint}: guard fitted on {guard.n_train} training images, threshold "
        f"{guard.threshold:.2f} at the {guard.percentile:g}th percentile of {guard.n_val} "
        "validation images"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
