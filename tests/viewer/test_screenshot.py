"""``./scripts/viewer --screenshot`` picks what it shows from the files (the browser part is the
viewer test's page driver, exercised by ``test_ohif.py``)."""

from __future__ import annotations

from pathlib import Path

import pydicom

from plugin.config import Settings
from plugin.results.writer import build_objects, encode
from scripts.lib.viewer_screenshot import pick
from tests.plugin.results.conftest import make_results


def _write(objects: list, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, (_, _, ds) in enumerate(objects):
        path = folder / f"{k:02d}.dcm"
        path.write_bytes(encode(ds))
        paths.append(path)
    return paths


def test_pick_takes_the_study_whose_first_region_scored_highest(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    low = make_results(tmp_path / "low", seed=5, scores={
        ("L", "CC"): 0.30, ("R", "CC"): 0.1, ("L", "MLO"): 0.2, ("R", "MLO"): 0.1})  # fmt: skip
    high = make_results(tmp_path / "high", seed=6, scores={
        ("L", "CC"): 0.2, ("R", "CC"): 0.1, ("L", "MLO"): 0.1, ("R", "MLO"): 0.88})  # fmt: skip
    files = []
    for name, results in (("low", low), ("high", high)):
        files += _write(build_objects(results, settings), tmp_path / f"objects-{name}")
        files += [Path(p) for p in results.source_paths.values()]

    chosen, study_files = pick(files)

    assert chosen.study_uid == high.study_uid
    assert abs(chosen.probability - 88.0) < 0.01
    r_mlo = next(
        a.score for a in high.analyzed if (a.score.laterality, a.score.view) == ("R", "MLO")
    )
    heatmap = pydicom.dcmread(next(p for p in study_files if pydicom.dcmread(
        p, stop_before_pixels=True).SOPInstanceUID == chosen.heatmap_sop))  # fmt: skip
    assert heatmap.SourceImageSequence[0].ReferencedSOPInstanceUID == r_mlo.sop_instance_uid
    assert {str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID)
            for p in study_files} == {high.study_uid}  # fmt: skip
    assert len(study_files) == len(build_objects(high, settings)) + 4
