"""How often does the domain-shift guard flag images, in and out of the training distribution?

Usage (the committed numbers in ``docs/model.md`` were made with this)::

    .venv/bin/python bench/shift_guard.py --checkpoint deploy/models/brgan-demo/model.safetensors \\
        --test runs/seeds/data/test --out docs/bench-results/shift-guard.json

For the checkpoint's guard (:mod:`brgan_core.shift`) it reports the share of images flagged as
*outside the model's training distribution* on: the in-distribution test set (the false-flag
rate; on validation it is 1 − the guard's percentile by construction), images of another
synthetic preset (:func:`shifted_preset`: other size, contrast and texture), and the real
mammograms of ``--real`` (default ``../shared/fixtures/real-mg``) that preprocessing can read.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:
    sys.path.insert(0, _BENCH_DIR)

from common import machine_info  # noqa: E402


def shifted_preset() -> Any:
    """A synthetic preset the bench-cpu models never saw: another size, contrast and texture."""
    from brgan_core.synth import get_preset

    return get_preset("bench-gpu").with_(
        name="shifted",
        image_size=(512, 416),
        pixel_spacing_mm=0.45,
        noise_sd=0.6,
        independent_texture=0.6,
        lesion_contrast=4.0,
        density_mix=(0.0, 0.0, 0.2, 0.8),
        bits_stored=12,
    )


def distances(loaded: Any, paths: list[Path]) -> dict[str, float | str]:
    """Guard distance of each file's preprocessed image (or why it could not be read)."""
    import numpy as np

    from brgan_core.errors import BrganCoreError
    from brgan_core.preprocess import preprocess
    from brgan_core.shift import pooled_features

    out: dict[str, float | str] = {}
    for path in paths:
        try:
            image = preprocess(path, size=loaded.input_size).image
        except (BrganCoreError, OSError, ValueError) as exc:
            out[str(path)] = f"not readable: {getattr(exc, 'reason', exc)}"
            continue
        features = pooled_features(loaded.model, [np.asarray(image)])
        out[str(path)] = float(loaded.guard.distance(features)[0])
    return out


def flag_rate(values: dict[str, float | str], threshold: float) -> dict[str, Any]:
    numbers = [v for v in values.values() if isinstance(v, float)]
    flagged = sum(v > threshold for v in numbers)
    return {
        "images": len(numbers),
        "flagged": flagged,
        "rate": flagged / len(numbers) if numbers else None,
        "unreadable": len(values) - len(numbers),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/shift_guard.py",
        description="Flag rates of a checkpoint's domain-shift guard in and out of distribution.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True, help="in-distribution manifest dir")
    parser.add_argument("--real", type=Path, default=Path("../shared/fixtures/real-mg"))
    parser.add_argument("--shifted-patients", type=int, default=25)
    parser.add_argument("--max-test", type=int, default=0, help="0 = every test image")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    args = parser.parse_args(argv)

    from brgan_core.checkpoint import sha256_file
    from brgan_core.inference import load_model
    from brgan_core.synth import write_dataset

    loaded = load_model(args.checkpoint, sha256_file(args.checkpoint), "bench", "cpu")
    if loaded.guard is None:
        print(f"{args.checkpoint}: no domain-shift guard in this checkpoint", file=sys.stderr)
        return 2
    test = sorted(args.test.rglob("*.dcm"))
    if args.max_test:
        test = test[: args.max_test]
    real = sorted(args.real.glob("*.dcm")) if args.real.is_dir() else []
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(Path(tmp), args.shifted_patients, shifted_preset(), 5)
        shifted = distances(loaded, sorted(Path(tmp).rglob("*.dcm")))
    result = {
        "checkpoint": str(args.checkpoint),
        "guard": {"threshold": loaded.guard.threshold, "percentile": loaded.guard.percentile},
        "in_distribution_test": flag_rate(distances(loaded, test), loaded.guard.threshold),
        "shifted_preset": flag_rate(shifted, loaded.guard.threshold),
        "real": {Path(k).name: v for k, v in distances(loaded, real).items()},
        "command": "python bench/shift_guard.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine_info(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
