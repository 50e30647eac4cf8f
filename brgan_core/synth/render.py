"""Pictures of synthetic studies for people: 4-view montages, lesion close-ups, subtractions.

``python -m brgan_core.synth.render OUT_DIR [--preset bench-gpu] [--seed 7]`` writes the PNGs used
in ``docs/synthetic-data.md``. Display only; nothing here feeds the model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from scipy.ndimage import gaussian_filter

from brgan_core.synth.findings import DRAWERS
from brgan_core.synth.generator import SynthImage, SynthStudy, generate_patient
from brgan_core.synth.presets import MALIGNANT_KINDS, SynthPreset, get_preset

RGB = NDArray[np.uint8]
HANGING = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))


def to_rgb(image: SynthImage, bits: int, boxes: bool = True) -> RGB:
    """Grey image scaled to 8 bits with malignant boxes drawn in red."""
    grey = np.clip(image.pixels.astype(np.float32) / float(2**bits - 1), 0, 1)
    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)
    if boxes:
        width = max(1, image.pixels.shape[0] // 300)
        for x0, y0, x1, y1 in image.boxes:
            x0, y0, x1, y1 = int(x0), int(y0), int(x1) - 1, int(y1) - 1
            for w in range(width):
                rgb[y0 + w, x0 : x1 + 1] = rgb[y1 - w, x0 : x1 + 1] = (255, 40, 40)
                rgb[y0 : y1 + 1, x0 + w] = rgb[y0 : y1 + 1, x1 - w] = (255, 40, 40)
    return rgb


def montage(study: SynthStudy, boxes: bool = True, gap: int = 6) -> RGB:
    """The four views as a radiologist hangs them: R-CC L-CC | R-MLO L-MLO."""
    tiles = [
        to_rgb(study.image(lat, view), study.preset.bits_stored, boxes) for lat, view in HANGING
    ]
    rows = tiles[0].shape[0]
    spacer = np.full((rows, gap, 3), 255, np.uint8)
    parts = [tiles[0], tiles[1], spacer, spacer, tiles[2], tiles[3]]
    return np.concatenate(parts, axis=1)


def subtraction(study: SynthStudy, view: str, sigma: float = 2.0) -> RGB:
    """Left, mirrored right, and their smoothed difference (grey = 0), side by side."""
    bits = study.preset.bits_stored
    left = study.image("L", view)
    right = study.image("R", view)
    a = left.pixels.astype(np.float32) / float(2**bits - 1)
    b = right.pixels[:, ::-1].astype(np.float32) / float(2**bits - 1)
    diff = gaussian_filter(a - b, sigma)
    scale = 3.0 * float(np.std(diff[(a > 0.1) & (b > 0.1)]) or 1.0)
    grey = np.clip(0.5 + diff / (2 * scale), 0, 1)
    diff_rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)
    mirrored = to_rgb(right, bits)[:, ::-1]
    spacer = np.full((a.shape[0], 6, 3), 255, np.uint8)
    return np.concatenate([to_rgb(left, bits), spacer, mirrored, spacer, diff_rgb], axis=1)


def closeup(image: SynthImage, bits: int, size: int, zoom: int = 1) -> RGB:
    """A ``size`` × ``size`` crop around the first malignant box (no box drawn)."""
    x0, y0, x1, y1 = image.boxes[0]
    cy, cx = int((y0 + y1) / 2), int((x0 + x1) / 2)
    rows, cols = image.pixels.shape
    top = min(max(0, cy - size // 2), rows - size)
    left = min(max(0, cx - size // 2), cols - size)
    crop = to_rgb(image, bits, boxes=False)[top : top + size, left : left + size]
    return np.kron(crop, np.ones((zoom, zoom, 1), np.uint8)) if zoom > 1 else crop


def find_patient(
    preset: SynthPreset, seed: int, kind: str | None, start: int = 0, limit: int = 400
) -> SynthStudy:
    """The first patient from ``start`` whose malignant finding is ``kind`` (None: no finding)."""
    for index in range(start, start + limit):
        study = generate_patient(preset, seed, index)
        kinds = {s.kind for s in study.specs if s.malignant}
        if (kind is None and not kinds) or kind in kinds:
            return study
    raise LookupError(f"no patient with {kind!r} in {limit} tries")


def save(rgb: RGB, path: Path, max_width: int | None = None) -> Path:
    image = Image.fromarray(rgb)
    if np.array_equal(rgb[..., 0], rgb[..., 2]):  # no coloured boxes: store as grey
        image = image.convert("L")
    if max_width and image.width > max_width:
        height = round(image.height * max_width / image.width)
        image = image.resize((max_width, height), Image.Resampling.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    return path


def render_docs(out_dir: Path, preset: SynthPreset, seed: int) -> list[Path]:
    """Montages, per-kind close-ups (stored and model-input resolution) and a subtraction."""
    written = [
        save(
            montage(find_patient(preset, seed, "spiculated_mass")),
            out_dir / "synth-4view.png",
            1100,
        ),
        save(
            montage(find_patient(preset, seed, None, start=3)),
            out_dir / "synth-4view-normal.png",
            1100,
        ),
    ]
    cpu = get_preset("bench-cpu")
    strips = []
    for kind in (*MALIGNANT_KINDS, "round_mass"):
        if kind not in DRAWERS:
            continue
        if kind == "round_mass":
            continue
        study = find_patient(preset, seed, kind)
        image = next(i for i in study.images if i.boxes)
        big = closeup(image, preset.bits_stored, 192)
        small_study = find_patient(cpu, seed, kind)
        small_image = next(i for i in small_study.images if i.boxes)
        small = closeup(small_image, cpu.bits_stored, 48, zoom=4)
        spacer = np.full((192, 4, 3), 255, np.uint8)
        strips.append(np.concatenate([big, spacer, small], axis=1))
        strips.append(np.full((4, strips[-1].shape[1], 3), 255, np.uint8))
    written.append(save(np.concatenate(strips[:-1], axis=0), out_dir / "synth-findings.png"))
    written.append(
        save(
            subtraction(find_patient(preset, seed, "irregular_mass"), "CC"),
            out_dir / "synth-subtraction.png",
            1000,
        )
    )
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--preset", default="bench-gpu")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    for path in render_docs(args.out_dir, get_preset(args.preset), args.seed):
        print(path)


if __name__ == "__main__":
    main()
