"""Calibrate the difficulty of the ``bench-cpu`` synthetic preset with a small single-view CNN.

Issue 3 requires the *vanilla* (single-view) baseline to reach an image-wise AUC between 0.70
and 0.85 on ``bench-cpu``. This script generates a train and a separately seeded test set in
memory, runs the project's preprocessing (``brgan_core.preprocess.preprocess_array``: breast
mask, crop, chest wall left, resize to the preset's model input size), trains a small CNN
(global max pooling) from scratch on the CPU for a few minutes and prints the test AUC. It is a
calibration with a small CNN, to be confirmed by issue 3's vanilla row — not a benchmark.

    .venv/bin/python bench/calibrate_synth.py --contrast 1.5 --epochs 12

Results and the command that made them are recorded in ``docs/synthetic-data.md``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn import functional as F

from brgan_core.preprocess import preprocess_array
from brgan_core.synth import generate_patient, get_preset
from brgan_core.synth.dicom_writer import PATIENT_ORIENTATION
from brgan_core.synth.presets import SynthPreset


def model_input(
    pixels: np.ndarray, laterality: str, view: str, size: tuple[int, int], bits: int
) -> np.ndarray:
    """The project's preprocessing: breast mask, crop, chest wall left, resize with padding."""
    display = pixels.astype(np.float32) / float(2**bits - 1)
    orientation = PATIENT_ORIENTATION[(laterality, view)]
    return preprocess_array(display, laterality, orientation, size, view=view).image


def make_set(preset: SynthPreset, seed: int, patients: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for index in range(patients):
        study = generate_patient(preset, seed, index)
        for image in study.images:
            xs.append(
                model_input(
                    image.pixels,
                    image.laterality,
                    image.view,
                    preset.model_input_size,
                    preset.bits_stored,
                )
            )
            ys.append(image.label)
    return np.stack(xs)[:, None], np.asarray(ys, dtype=np.int64)


class SmallCNN(nn.Module):
    """Four conv blocks, global max pooling (suits small lesions), one linear layer."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for i in range(4):
            out = width * 2**i
            layers += [
                nn.Conv2d(channels, out, 3, padding=1),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.Conv2d(out, out, 3, padding=1),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return self.head(torch.amax(f, dim=(2, 3))).squeeze(1)


def evaluate(model: nn.Module, x: torch.Tensor, y: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        scores = torch.cat([model(x[i : i + 128]) for i in range(0, len(x), 128)]).numpy()
    return float(roc_auc_score(y, scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="bench-cpu")
    parser.add_argument("--contrast", type=float, default=None, help="override lesion_contrast")
    parser.add_argument("--train-patients", type=int, default=300)
    parser.add_argument("--test-patients", type=int, default=250)
    parser.add_argument("--train-seed", type=int, default=101)
    parser.add_argument("--test-seed", type=int, default=202)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-minutes", type=float, default=8.0, help="stop training after this")
    parser.add_argument(
        "--cache", type=Path, default=None, help="folder to keep the generated sets (npz) in"
    )
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    if args.contrast is not None:
        preset = preset.with_(lesion_contrast=args.contrast)
    start = time.time()
    key = (
        f"{preset.name}-c{preset.lesion_contrast}-{args.train_seed}x{args.train_patients}-"
        f"{args.test_seed}x{args.test_patients}.npz"
    )
    cached = args.cache / key if args.cache else None
    if cached and cached.is_file():
        data = np.load(cached)
        x_train, y_train, x_test, y_test = (data[k] for k in ("xt", "yt", "xv", "yv"))
    else:
        x_train, y_train = make_set(preset, args.train_seed, args.train_patients)
        x_test, y_test = make_set(preset, args.test_seed, args.test_patients)
        if cached:
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cached, xt=x_train, yt=y_train, xv=x_test, yv=y_test)
    print(
        f"preset {preset.name} contrast {preset.lesion_contrast}: train {len(y_train)} images "
        f"({y_train.mean():.0%} malignant), test {len(y_test)}; generated in "
        f"{time.time() - start:.0f} s",
        flush=True,
    )
    mean, sd = float(x_train.mean()), float(x_train.std())
    xt = torch.from_numpy((x_train - mean) / sd)
    xv = torch.from_numpy((x_test - mean) / sd)
    yt = torch.from_numpy(y_train).float()
    model = SmallCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    generator = torch.Generator().manual_seed(0)
    train_start = time.time()
    best = 0.0
    auc = 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(yt), generator=generator)
        for i in range(0, len(order), 32):
            idx = order[i : i + 32]
            batch = xt[idx]
            flip = torch.rand(len(idx), generator=generator) < 0.5
            batch = torch.where(flip[:, None, None, None], batch.flip(2), batch)
            loss = F.binary_cross_entropy_with_logits(model(batch), yt[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        auc = evaluate(model, xv, y_test)
        best = max(best, auc)
        minutes = (time.time() - train_start) / 60
        print(f"epoch {epoch:2d}  loss {loss.item():.3f}  test AUC {auc:.3f}  {minutes:.1f} min")
        if minutes > args.max_minutes:
            break
    print(
        f"RESULT preset={preset.name} contrast={preset.lesion_contrast} final_auc={auc:.3f} "
        f"best_auc={best:.3f} epochs={epoch} train_images={len(y_train)} "
        f"test_images={len(y_test)} threads={args.threads} machine={platform.machine()} "
        f"{platform.processor() or ''} torch={torch.__version__}"
    )


if __name__ == "__main__":
    main()
