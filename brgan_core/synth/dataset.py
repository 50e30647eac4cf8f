"""Write synthetic studies to disk: DICOM files, lesion mask PNGs and the manifest CSV.

Layout of an output folder::

    manifest.csv                      one row per image (schema: brgan_core.data.records)
    <PatientID>/L_CC.dcm …            four DICOM files per patient
    masks/<PatientID>/R_MLO.png       lesion masks (0/255) of images with a malignant finding

Paths in the manifest are relative to its folder; boxes are ``[x0, y0, x1, y1]`` in stored-image
pixels (end-exclusive), malignant findings only.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from brgan_core.data.records import MANIFEST_COLUMNS
from brgan_core.synth.dicom_writer import TransferSyntax, write_image
from brgan_core.synth.generator import SynthStudy, generate_patient
from brgan_core.synth.presets import SynthPreset

MANIFEST_NAME = "manifest.csv"


@dataclass(frozen=True)
class WriteOptions:
    """How studies are written (none of this changes the pixels)."""

    transfer_syntax: TransferSyntax = TransferSyntax.EXPLICIT
    monochrome1: bool = False
    legacy_codes: bool = False


def write_study(out_dir: Path, study: SynthStudy, options: WriteOptions) -> list[dict[str, str]]:
    """Write one study's four DICOM files (and masks); return its manifest rows."""
    rows: list[dict[str, str]] = []
    for image in study.images:
        rel = Path(study.patient_id) / f"{image.name}.dcm"
        write_image(
            out_dir / rel,
            study,
            image,
            transfer_syntax=options.transfer_syntax,
            monochrome1=options.monochrome1,
            legacy_codes=options.legacy_codes,
        )
        mask_rel = ""
        if image.mask.any():
            mask_path = Path("masks") / study.patient_id / f"{image.name}.png"
            (out_dir / mask_path).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.mask.astype(np.uint8) * 255).save(out_dir / mask_path)
            mask_rel = mask_path.as_posix()
        rows.append(
            {
                "path": rel.as_posix(),
                "patient_id": study.patient_id,
                "study_uid": study.study_uid,
                "sop_instance_uid": image.sop_instance_uid,
                "laterality": image.laterality,
                "view": image.view,
                "label": str(image.label),
                "birads": image.birads,
                "density": study.density,
                "findings": ";".join(dict.fromkeys(image.findings)),
                "boxes": json.dumps([[int(v) for v in box] for box in image.boxes]),
                "mask_path": mask_rel,
            }
        )
    return rows


def _job(args: tuple[Path, SynthPreset, int, int, WriteOptions]) -> list[dict[str, str]]:
    out_dir, preset, seed, index, options = args
    return write_study(out_dir, generate_patient(preset, seed, index), options)


def _results(
    jobs: list[tuple[Path, SynthPreset, int, int, WriteOptions]], workers: int
) -> Iterator[list[dict[str, str]]]:
    if workers <= 1:
        yield from map(_job, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_job, jobs, chunksize=1)


def write_dataset(
    out_dir: Path,
    n_patients: int,
    preset: SynthPreset,
    seed: int,
    *,
    options: WriteOptions | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Generate and write ``n_patients`` studies; returns the manifest's path.

    Patients are numbered 0 … n−1 and each depends only on ``(preset, seed, index)``, so the
    output is identical for any number of ``workers``. ``progress`` is called with the number of
    patients done so far.
    """
    if n_patients < 1:
        raise ValueError(f"n_patients must be at least 1, not {n_patients}")
    options = options or WriteOptions()
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(out_dir, preset, seed, i, options) for i in range(n_patients)]
    manifest = out_dir / MANIFEST_NAME
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(MANIFEST_COLUMNS))
        writer.writeheader()
        for done, rows in enumerate(_results(jobs, max(1, workers)), start=1):
            writer.writerows(rows)
            if progress is not None:
                progress(done)
    write_synthetic_marker(out_dir, preset.name, seed)
    return manifest


#: Written next to a synthetic manifest; a model trained on such data is a demo model.
SYNTHETIC_MARKER = "SYNTHETIC.json"


def write_synthetic_marker(out_dir: Path, preset: str, seed: int) -> Path:
    """Mark ``out_dir`` as synthetic data (read by training: the checkpoint's
    ``synthetic_training`` flag, and so every result's "DEMO MODEL" label)."""
    import json

    path = out_dir / SYNTHETIC_MARKER
    path.write_text(
        json.dumps({"generator": "brgan synth", "preset": preset, "seed": seed}) + "\n",
        encoding="utf-8",
    )
    return path


def is_synthetic(root: Path) -> bool:
    """Whether ``root`` (a data folder) or a folder above it carries the synthetic marker."""
    root = Path(root).resolve()
    return any((folder / SYNTHETIC_MARKER).is_file() for folder in (root, *root.parents))
