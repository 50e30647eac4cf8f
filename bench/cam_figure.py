"""Class activation maps of several ablation models on the same malignant test images (Fig. 3).

The analogue, on our synthetic ablation, of the paper's Fig. 3. Usage (after
``bench/ablation.py`` has trained some rows)::

    .venv/bin/python bench/cam_figure.py --runs runs/ablation25 --out docs/img/ablation-cams.png
    .venv/bin/python bench/cam_figure.py --rows vanilla,gan_double_mask --n 4 --out /tmp/cams.png

Inputs: ``<runs>/data/test`` (the test manifest written by ``bench/ablation.py``) and, for each
row, its best checkpoint ``<runs>/runs/<row>/best.safetensors``. Rows whose checkpoint does not
exist yet are skipped with a note.

The images are **not** chosen by any model's output (no cherry-picking): they are the first
``--n`` malignant targets in the order the manifest reader returns the test pairs (patient,
study, view, laterality). Everything is drawn in model-input space (the preprocessed, canonically
oriented image each model sees); the ground-truth boxes are mapped there through each image's
preprocessing geometry, as ``brgan evaluate`` does.

One figure row per image. Columns: the target with its ground-truth box (green), the
contralateral, then for each model the target with the model's malignant-class CAM overlaid (jet,
bilinearly upsampled from the feature grid), the ground-truth box again (green) and the CAM
top-1 box (red: the connected region ≥ 50 % of the peak, computed on the feature grid exactly
as the localization metric does), with p(malignant) as ``model.predict`` returns it (the
checkpoint's stored temperature, no threshold) and the box's IoU with the ground truth in the
panel title. Each CAM is min–max normalized per image (as ``predict`` returns it), so its
colours show where, not how strongly, a model looks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:  # run as a script or loaded by path: ``bench`` is no package
    sys.path.insert(0, _BENCH_DIR)

DEFAULT_ROWS = ("vanilla", "sbf", "brgan", "brgan_paired")
TITLE = "synthetic bench-cpu data — research demo models, not for clinical use"
SHORT = {
    "vanilla": "Vanilla",
    "sbf": "SBF",
    "gan": "GAN ×××",
    "gan_single_mask": "GAN single+mask",
    "gan_double_mask": "GAN double+mask",
    "gan_double_re": "GAN double+L_RE",
    "brgan": "BR-GAN",
    "cyclegan_healthy": "CycleGAN healthy",
    "brgan_paired": "BR-GAN paired",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/cam_figure.py",
        description=(
            "Draw the CAMs of several ablation models on the same malignant test images (the "
            "paper's Fig. 3 on synthetic data). The images are the first N malignant targets of "
            "the test set in manifest-reader order, never chosen by model output."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--runs",
        type=Path,
        default=Path("runs/ablation25"),
        help="ablation output folder (bench/ablation.py --out): reads data/test/ and "
        "runs/<row>/best.safetensors",
    )
    parser.add_argument(
        "--rows",
        default=",".join(DEFAULT_ROWS),
        help="comma-separated ablation rows, one figure column each; rows without a "
        "best.safetensors yet are skipped with a note",
    )
    parser.add_argument(
        "--n", type=int, default=6, help="number of malignant test images (figure rows)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("docs/img/ablation-cams.png"), help="PNG to write"
    )
    parser.add_argument("--dpi", type=int, default=110, help="resolution of the PNG")
    return parser


def malignant_pairs(test_root: Path, n: int) -> list[Any]:
    """The first ``n`` malignant pairs in the manifest reader's order (no model involved)."""
    from brgan_core.data.readers import read_dataset

    pairs = read_dataset("manifest", test_root).pairs
    return [pair for pair in pairs if pair.label == 1][:n]


def _score(model: Any, target: Any, contralateral: Any) -> tuple[float, Any]:
    """p(malignant) and the CAM on the feature grid for one preprocessed pair."""
    import numpy as np
    import torch

    def tensor(image: Any) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]

    prediction = model.predict(tensor(target.image), tensor(contralateral.image))
    p = float(prediction.p_malignant.reshape(-1)[0])
    return p, prediction.cam[0].detach().float().cpu().numpy()


def _upsample(cam: Any, shape: tuple[int, int]) -> Any:
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(cam)[None, None]
    out = F.interpolate(tensor, size=shape, mode="bilinear", align_corners=False)
    return out[0, 0].numpy()


def _rect(ax: Any, box: Any, color: str) -> None:
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = box
    # boxes are end-exclusive pixel edges; imshow centres pixel i on i, so edges sit at i − 0.5
    ax.add_patch(
        Rectangle(
            (x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=1.4
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.n < 1:
        raise SystemExit("--n must be at least 1")
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    test_root = args.runs / "data" / "test"
    if not (test_root / "manifest.csv").exists():
        print(f"no test manifest at {test_root / 'manifest.csv'}", file=sys.stderr)
        return 2

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from brgan_core.evaluation.localization import box_iou, cam_to_box
    from brgan_core.evaluation.runner import load_checkpoint_model, model_size
    from brgan_core.training.dataset import preprocess_loader

    models: list[tuple[str, Any, tuple[int, int]]] = []
    for row in rows:
        path = args.runs / "runs" / row / "best.safetensors"
        if not path.exists():
            print(f"note: skipping {row}: {path} does not exist (not trained yet?)")
            continue
        model, info = load_checkpoint_model(path)
        models.append((row, model.eval(), model_size(info, path)))
    if not models:
        print("no row has a checkpoint; nothing to draw", file=sys.stderr)
        return 2
    pairs = malignant_pairs(test_root, args.n)
    if not pairs:
        print(f"no malignant pair in {test_root}", file=sys.stderr)
        return 2

    cache: dict[tuple[Path, tuple[int, int]], Any] = {}

    def load(path: Path, size: tuple[int, int]) -> Any:
        if (path, size) not in cache:
            cache[(path, size)] = preprocess_loader(path, size)
        return cache[(path, size)]

    display_size = models[0][2]
    ncols = 2 + len(models)
    fig, axes = plt.subplots(
        len(pairs), ncols, figsize=(2.0 * ncols, 2.3 * len(pairs) + 0.6), squeeze=False
    )
    for i, pair in enumerate(pairs):
        target = load(pair.target.path, display_size)
        contra = load(pair.contralateral.path, display_size)
        gt = [target.geometry.box_to_model(box) for box in pair.target.boxes]
        ax = axes[i, 0]
        ax.imshow(target.image, cmap="gray", vmin=0, vmax=1)
        for box in gt:
            _rect(ax, box, "lime")
        ax.set_title(
            f"{pair.target.patient_id} {pair.target.laterality}-{pair.target.view}\ntarget, GT box",
            fontsize=7,
        )
        ax = axes[i, 1]
        ax.imshow(contra.image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(
            f"contralateral ({pair.contralateral.laterality}-{pair.contralateral.view})", fontsize=7
        )
        for j, (row, model, size) in enumerate(models):
            t_img, c_img = load(pair.target.path, size), load(pair.contralateral.path, size)
            p, cam = _score(model, t_img, c_img)
            box = cam_to_box(cam, image_shape=size)
            model_gt = [t_img.geometry.box_to_model(b) for b in pair.target.boxes]
            ax = axes[i, 2 + j]
            ax.imshow(t_img.image, cmap="gray", vmin=0, vmax=1)
            ax.imshow(_upsample(cam, size), cmap="jet", alpha=0.45, vmin=0, vmax=1)
            for b in model_gt:
                _rect(ax, b, "lime")
            iou = ""
            if box is not None:
                _rect(ax, box, "red")
                if model_gt:
                    iou = f", IoU {max(box_iou(box, b) for b in model_gt):.2f}"
            ax.set_title(f"{SHORT.get(row, row)}\np(mal) {p:.2f}{iou}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(TITLE, fontsize=10)
    fig.text(
        0.5,
        0.005,
        f"First {len(pairs)} malignant test targets in manifest-reader order (not selected by "
        "model output). Green: ground truth; red: CAM top-1 box (≥ 50 % of peak); "
        "CAMs min–max normalized per image; p(mal) as model.predict gives it.",
        ha="center",
        va="bottom",
        fontsize=6.5,
    )
    fig.tight_layout(rect=(0, 0.02, 1, 0.97))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=args.dpi)
    plt.close(fig)
    print(
        f"wrote {args.out}: {len(pairs)} images × {len(models)} models "
        f"({', '.join(row for row, _, _ in models)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
