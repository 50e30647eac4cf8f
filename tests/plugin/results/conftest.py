"""Study results for the writer tests: real synthetic DICOM studies, synthetic CAMs.

No model runs here: each analyzed image gets a Gaussian CAM inside its breast, and a score that
the test chooses, so the writers are tested on exactly known values. The region and peak come
from the same functions the worker uses (``brgan_core.inference``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from brgan_core.inference import cam_peak, region_outline
from plugin.queue.contract import (
    ImageRef,
    ImageScore,
    ModelRef,
    NotAnalyzed,
    Provenance,
    StudyTask,
    TaskPair,
)
from plugin.results.inputs import AnalyzedImage, StudyResults
from tests.helpers import write_synth_studies

SHA = "ab" * 32
DCIODVFY = shutil.which("dciodvfy")
QUEUED_AT = 1_764_000_000.0  # 2025-11-24T16:00:00Z


def provenance(*, threshold: float | None = 0.5, synthetic: bool = True) -> Provenance:
    return Provenance(
        model_name="brgan",
        model_version="v3",
        sha256=SHA,
        research_only=True,
        synthetic_training=synthetic,
        uses_contralateral=False,
        threshold=threshold,
        manufacturer="brgan-pacs",
        manufacturer_model_name="BR-GAN",
        software_version="0.1.0",
        device_uid="2.25.143975526148394095567062155405393315410",
    )


def gaussian_cam(shape: tuple[int, int], centre: tuple[float, float], sigma: float) -> np.ndarray:
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    x, y = centre
    return np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * sigma**2)).astype(np.float32)


def make_results(
    out: Path,
    *,
    scores: dict[tuple[str, str], float] | None = None,
    drop: tuple[tuple[str, str], ...] = (),
    seed: int = 5,
    version: int = 1,
    prov: Provenance | None = None,
) -> StudyResults:
    """One synthetic 4-view study. ``scores`` maps (laterality, view) → p_malignant of the
    analyzed targets (default: L-CC 0.91 positive, others low); views in ``drop`` are reported
    not analyzed (with their partner) instead."""
    rows = write_synth_studies(out / "synth", patients=1, seed=seed)
    prov = prov or provenance()
    scores = scores or {("L", "CC"): 0.91, ("R", "CC"): 0.12, ("L", "MLO"): 0.64, ("R", "MLO"): 0.2}
    by_view = {(r["laterality"], r["view"]): r for r in rows}
    study_uid = rows[0]["study_uid"]
    pairs, analyzed, not_analyzed = [], [], []
    for (side, view), row in sorted(by_view.items()):
        other = by_view[("R" if side == "L" else "L", view)]
        target = ImageRef(row["sop_instance_uid"], row["path"], side, view, None)
        contra = ImageRef(other["sop_instance_uid"], other["path"], other["laterality"], view)
        pairs.append(TaskPair(target, contra))
        if (side, view) in drop or (other["laterality"], view) in drop:
            not_analyzed.append(
                NotAnalyzed(
                    row["sop_instance_uid"],
                    "cannot decode image: test says so",
                    row["path"],
                    side,
                    view,
                )
            )
            continue
        ds = pydicom.dcmread(row["path"], stop_before_pixels=True)
        shape = (int(ds.Rows), int(ds.Columns))
        # Inside the breast: the synthetic breast touches the chest-wall side of the image.
        x = shape[1] * (0.3 if side == "R" else 0.7)
        cam = gaussian_cam(shape, (x, shape[0] * 0.5), sigma=min(shape) * 0.06)
        p = scores.get((side, view), 0.1)
        score = ImageScore(
            sop_instance_uid=row["sop_instance_uid"],
            contralateral_uid=other["sop_instance_uid"],
            laterality=side,
            view=view,
            p_malignant=p,
            positive=None if prov.threshold is None else p >= prov.threshold,
            region=region_outline(cam),
            peak=cam_peak(cam),
        )
        analyzed.append(AnalyzedImage(score, cam, Path(row["path"])))
    task = StudyTask(
        study_uid=study_uid,
        study_version=version,
        queued_at=QUEUED_AT,
        model=ModelRef(prov.model_version, prov.sha256),
        pairs=tuple(pairs),
        not_analyzed=(),
    )
    breasts: dict[str, float | None] = {"L": None, "R": None}
    for a in analyzed:
        side = a.score.laterality
        breasts[side] = max(breasts[side] or 0.0, a.score.p_malignant)
    scored = [p for p in breasts.values() if p is not None]
    return StudyResults(
        task=task,
        provenance=prov,
        analyzed=tuple(analyzed),
        not_analyzed=tuple(not_analyzed),
        breasts=breasts,
        exam=max(scored) if scored else None,
        source_paths={r["sop_instance_uid"]: Path(r["path"]) for r in rows},
    )


@pytest.fixture
def study_results(tmp_path: Path) -> Callable[..., StudyResults]:
    """``study_results(**kwargs)`` → :func:`make_results` under a fresh folder."""
    counter = iter(range(1000))

    def factory(**kwargs: object) -> StudyResults:
        return make_results(tmp_path / f"s{next(counter)}", **kwargs)  # type: ignore[arg-type]

    return factory


def dciodvfy_errors(path: Path) -> list[str]:
    """The lines of dicom3tools' ``dciodvfy`` report that mention an error (PS3.3 IOD check)."""
    assert DCIODVFY, "dciodvfy (dicom3tools) is required"
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if "Error" in line]


def save(ds: pydicom.Dataset, path: Path) -> Path:
    """``ds`` as a Part 10 file at ``path``."""
    ds.save_as(path, enforce_file_format=True)
    return path
