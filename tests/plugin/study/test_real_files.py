"""The real files in ../shared/fixtures/real-mg are classified as that folder's README says.

Header-only reads (no pixel decoding); the files are read in place, never copied.
"""

from __future__ import annotations

from pathlib import Path

import pydicom

from plugin.study.classify import classify
from plugin.study.header import InstanceHeader, read_header
from plugin.study.pairing import plan_study


def test_gh133_usable_right_mlo_from_snm3_code(real_mg_dir: Path) -> None:
    h = read_header(real_mg_dir / "GH133.dcm")
    assert h.view_codes == (("R-10226", "SNM3"),)
    assert h.has_pixel_data is True
    c = classify(h)
    assert (c.laterality, c.view, c.usable, c.reason) == ("R", "MLO", True, None)


def test_gh133_view_from_code_alone(real_mg_dir: Path) -> None:
    ds = pydicom.dcmread(real_mg_dir / "GH133.dcm", stop_before_pixels=True)
    del ds.ViewPosition
    c = classify(InstanceHeader.from_dataset(ds, has_pixel_data=True))
    assert (c.view, c.usable) == ("MLO", True)


def test_out_of_bounds_overlay_is_stereo_biopsy(real_mg_dir: Path) -> None:
    c = classify(read_header(real_mg_dir / "OutOfBoundsOverlay.dcm"))
    assert (c.laterality, c.view, c.usable) == ("L", "CC", False)
    assert c.reason == "stereotactic/biopsy image (ImageType STEREO)"


def test_scanned_film_secondary_captures_are_not_digital_mammograms(real_mg_dir: Path) -> None:
    for name in ("MG1_J2KI.dcm", "MG1_JPLY.dcm"):
        h = read_header(real_mg_dir / name)
        assert h.sop_class_uid == "1.2.840.10008.5.1.4.1.1.7"
        c = classify(h)
        assert (c.laterality, c.view, c.usable) == ("L", "MLO", False)
        assert c.reason == "not a mammogram: Modality RG"


def test_real_files_as_one_study(real_mg_dir: Path) -> None:
    gh133 = read_header(real_mg_dir / "GH133.dcm")
    plan = plan_study([gh133])
    assert plan.pairs == ()
    assert plan.not_analyzed == {gh133.sop_instance_uid: "no contralateral view (no L MLO)"}


def test_study_rules_and_preprocessing_agree_on_laterality_and_view(
    real_mg_dir: Path, tmp_path: Path
) -> None:
    """The worker orients by the laterality the study rules decided (passed in the task); the
    header reading kept for standalone use (`brgan preview`) must give the same answer on every
    fixture, real and synthetic, wherever the study rules found one."""
    from brgan_core.preprocess.pipeline import read_header as preprocess_header
    from tests.helpers import write_synth_studies

    paths = sorted(real_mg_dir.glob("*.dcm"))
    paths += [Path(r["path"]) for r in write_synth_studies(tmp_path, patients=1, seed=4)]
    checked = 0
    for path in paths:
        rules = classify(read_header(path))
        header = preprocess_header(pydicom.dcmread(path, stop_before_pixels=True), str(path))
        if rules.laterality is not None:
            assert header.laterality == rules.laterality, path.name
            checked += 1
        if rules.view in ("CC", "MLO", "ML", "XCCL"):
            assert header.view == rules.view, path.name
    assert checked >= 6
