"""``brgan synth``: write synthetic bilateral screening studies as real DICOM."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class PresetName(StrEnum):
    """Presets of :mod:`brgan_core.synth.presets`."""

    bench_cpu = "bench-cpu"
    bench_gpu = "bench-gpu"
    clinical = "clinical"


class Syntax(StrEnum):
    """Transfer syntaxes of the written files."""

    explicit = "explicit"
    jpeg2000 = "jpeg2000"
    rle = "rle"


def synth(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Output folder (created; must be empty unless --force)."),
    ],
    patients: Annotated[
        int, typer.Option("--patients", "-n", min=1, help="Number of patients (4 images each).")
    ] = 20,
    preset: Annotated[
        PresetName,
        typer.Option(
            "--preset",
            help="bench-cpu: 256×208 px, model input 128×104 (CPU benchmark); "
            "bench-gpu: 1024×832 px at 0.225 mm; clinical: 3328×2560 px at 0.07 mm.",
        ),
    ] = PresetName.bench_gpu,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed; the same seed writes identical files.")
    ] = 0,
    monochrome1: Annotated[
        bool, typer.Option("--monochrome1", help="Store MONOCHROME1 (inverted) pixel data.")
    ] = False,
    legacy_codes: Annotated[
        bool,
        typer.Option(
            "--legacy-codes", help="View codes in legacy SNOMED RT (SRT R-10242/R-10226)."
        ),
    ] = False,
    transfer_syntax: Annotated[
        Syntax,
        typer.Option(
            "--transfer-syntax",
            help="explicit (Explicit VR Little Endian), jpeg2000 (JPEG 2000 Lossless) or rle.",
        ),
    ] = Syntax.explicit,
    workers: Annotated[
        int, typer.Option("--workers", "-j", min=1, help="Generator processes (same output).")
    ] = 1,
    force: Annotated[
        bool, typer.Option("--force", help="Write into a non-empty output folder.")
    ] = False,
) -> None:
    """Synthesize bilateral 4-view screening mammography studies as real DICOM.

    Each patient gets one study with L-CC, R-CC, L-MLO and R-MLO images (Digital Mammography
    X-Ray Image Storage – For Presentation, 14-bit) whose left and right breasts share a mirrored
    tissue pattern with realistic differences. About half of the patients have a malignant
    finding (spiculated or irregular mass, pleomorphic calcifications, architectural distortion,
    focal asymmetry) in one breast, visible in its CC and MLO; benign look-alikes (round masses,
    coarse calcifications, vessels) appear in one or both breasts.

    Written to OUT: <PatientID>/<L|R>_<CC|MLO>.dcm, masks/<PatientID>/*.png (lesion masks of
    malignant images) and manifest.csv (one row per image: path, patient, UIDs, laterality, view,
    label, BI-RADS-like category, density, findings, boxes, mask). The preset fixes image size,
    lesion contrast and sizes; see docs/synthetic-data.md. Synthetic data only: no real patient.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from brgan_core.synth import TransferSyntax, WriteOptions, get_preset, write_dataset
    from plugin.errors import PluginError

    if out.exists() and not out.is_dir():
        raise PluginError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise PluginError(
            f"--out {out} is not empty; choose an empty or new folder, or add --force to write "
            "into it (existing files with the same names are overwritten)"
        )
    chosen = get_preset(preset.value)
    options = WriteOptions(
        transfer_syntax=TransferSyntax(transfer_syntax.value),
        monochrome1=monochrome1,
        legacy_codes=legacy_codes,
    )
    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"synth {chosen.name}", total=patients)
        manifest = write_dataset(
            out,
            patients,
            chosen,
            seed,
            options=options,
            workers=workers,
            progress=lambda done: bar.update(task, completed=done),
        )
    _summary(manifest)


def _summary(manifest: Path) -> None:
    import csv

    with manifest.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    malignant = sum(r["label"] == "1" for r in rows)
    benign = sum(r["label"] == "0" and r["birads"] == "2" for r in rows)
    patients = len({r["patient_id"] for r in rows})
    typer.echo(
        f"wrote {len(rows)} DICOM files for {patients} patients: {malignant} malignant images, "
        f"{benign} with benign findings only, {len(rows) - malignant - benign} normal"
    )
    typer.echo(f"manifest: {manifest}")
