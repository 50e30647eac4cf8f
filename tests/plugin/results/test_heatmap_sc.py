from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from plugin.results import heatmap_sc, render
from plugin.results.common import model_line
from plugin.results.inputs import SERIES_NUMBERS, AnalyzedImage, StudyResults
from tests.plugin.results.conftest import dciodvfy_errors

SC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"


def image_of(results: StudyResults, side: str, view: str) -> AnalyzedImage:
    return next(a for a in results.analyzed if (a.score.laterality, a.score.view) == (side, view))


@pytest.fixture
def results(study_results: Callable[..., StudyResults]) -> StudyResults:
    return study_results()


def test_every_heatmap_passes_dciodvfy(results: StudyResults, tmp_path: Path) -> None:
    objects = heatmap_sc.from_study(results)
    assert len(objects) == len(results.analyzed) == 4
    for i, ds in enumerate(
        [*objects, heatmap_sc.from_image(results, results.analyzed[0], max_size=0)]
    ):
        path = tmp_path / f"hm{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        assert dciodvfy_errors(path) == []


def test_rgb_uint8_within_max_size(results: StudyResults) -> None:
    image = image_of(results, "L", "CC")
    for max_size in (1024, 400, 300):
        ds = heatmap_sc.from_image(results, image, max_size=max_size)
        arr = ds.pixel_array
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
        assert max(arr.shape[:2]) <= max_size
        assert (ds.Rows, ds.Columns) == arr.shape[:2]
        assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
        assert ds.SOPClassUID == SC_IMAGE_STORAGE
    # 256 rows of mammogram + the legend do not fit in 300: the mammogram is downsized
    plan = heatmap_sc.layout(256, 208, heatmap_sc.legend(results, image), 300)
    assert plan.image_size[1] < 256 and max(plan.shape) <= 300
    # a clinical image (3328 x 2560) at the default size: the mammogram fills most of it
    plan = heatmap_sc.layout(3328, 2560, heatmap_sc.legend(results, image), 1024)
    assert 1000 <= plan.shape[0] <= 1024 and plan.image_size[1] > 750
    with pytest.raises(ValueError, match="too small for the legend"):
        heatmap_sc.from_image(results, image, max_size=120)


def _picture(results: StudyResults, image: AnalyzedImage, max_size: int = 0):
    ds = heatmap_sc.from_image(results, image, max_size=max_size)
    rows, cols = image.cam.shape
    plan = heatmap_sc.layout(rows, cols, heatmap_sc.legend(results, image), max_size)
    return ds.pixel_array, plan


def test_cam_peak_is_coloured_and_far_from_it_is_gray(results: StudyResults) -> None:
    image = image_of(results, "L", "CC")
    arr, plan = _picture(results, image)
    assert plan.image_size == (208, 256)  # full size: stored pixel (c, r) → (x0 + c, r)
    x0 = plan.image_x
    px, py = image.score.peak
    peak = arr[int(py), x0 + int(px)].astype(int)
    assert len(set(peak.tolist())) > 1, peak  # coloured, not gray
    # the same pixel without any overlay (the display grayscale), for contrast
    gray = render.to_uint8(
        render.display_gray(results.source(image.score.sop_instance_uid, pixels=True))
    )
    assert np.abs(peak - int(gray[int(py), int(px)])).max() > 40
    # wherever the CAM is below the floor and no outline is drawn, the picture is the gray image
    picture = arr[: plan.image_size[1], x0 : x0 + plan.image_size[0]].astype(int)
    clear = image.cam < render.CAM_FLOOR * 0.9
    assert clear.mean() > 0.8
    assert (picture[clear] == gray[clear][:, None]).all()
    # and the breast is there: far from the CAM, inside the breast, bright and gray
    far = picture[128, 40]
    assert far[0] == far[1] == far[2] and far[0] > 60


def test_outline_is_drawn_solid_when_positive_dashed_when_negative(results: StudyResults) -> None:
    for side, view, solid in (("L", "CC", True), ("R", "CC", False)):
        image = image_of(results, side, view)
        assert image.score.positive is solid
        arr, plan = _picture(results, image)
        x0 = plan.image_x
        on = []
        points = image.score.region
        for (xa, ya), (xb, yb) in itertools.pairwise(points):
            for t in np.linspace(0.1, 0.9, 5):
                x = xa + t * (xb - xa) - 0.5 + x0
                y = ya + t * (yb - ya) - 0.5
                patch = arr[round(y) - 1 : round(y) + 2, round(x) - 1 : round(x) + 2]
                on.append(bool((patch == render.OUTLINE_COLOUR).all(axis=-1).any()))
        fraction = np.mean(on)
        if solid:
            assert fraction > 0.95, fraction
        else:
            assert 0.3 < fraction < 0.9, fraction
        # nowhere else: the outline colour is only on the outline's neighbourhood
        ys, xs = np.nonzero((arr == render.OUTLINE_COLOUR).all(axis=-1))
        hull = np.array(points)
        assert xs.min() >= hull[:, 0].min() + x0 - 3 and xs.max() <= hull[:, 0].max() + x0 + 3
        assert ys.min() >= hull[:, 1].min() - 3 and ys.max() <= hull[:, 1].max() + 3


def test_legend_says_score_threshold_model_and_labels(results: StudyResults) -> None:
    image = image_of(results, "L", "CC")
    lines = heatmap_sc.legend_lines(results, image)
    text = "\n".join(lines)
    assert "p(malignant) 91.0 %" in text
    assert "POSITIVE at threshold 50.0 %" in lines
    assert model_line(results.provenance) in lines
    assert "FOR RESEARCH USE ONLY" in lines
    assert "DEMO MODEL - synthetic training data, not for clinical use" in lines
    negative = heatmap_sc.legend_lines(results, image_of(results, "R", "CC"))
    assert "negative at threshold 50.0 %" in negative
    assert any("p(malignant) 12.0 %" in line for line in negative)


def test_legend_is_burned_in_below_the_image(results: StudyResults) -> None:
    """Each legend line is found pixel for pixel in the band below the mammogram (a template
    match with the same font), and a line that is not drawn is not found."""
    image = image_of(results, "L", "CC")
    for max_size in (0, 1024):
        arr, plan = _picture(results, image, max_size)
        band = arr[plan.image_size[1] :]
        assert band.shape[0] > 0
        width = arr.shape[1]
        for line in heatmap_sc.legend(results, image):
            size = heatmap_sc.line_font_px(line, width)
            assert render.find_text(band, line.text, size), line.text
        first = heatmap_sc.legend(results, image)[0]
        wrong = first.text.replace("91.0", "12.0")
        assert not render.find_text(band, wrong, heatmap_sc.line_font_px(first, width))


def test_legend_follows_the_provenance(study_results: Callable[..., StudyResults]) -> None:
    from tests.plugin.results.conftest import provenance

    clinical = study_results(prov=provenance(synthetic=False, threshold=None))
    image = image_of(clinical, "L", "CC")
    lines = heatmap_sc.legend_lines(clinical, image)
    assert "FOR RESEARCH USE ONLY" in lines
    assert not any(line.startswith("DEMO MODEL") for line in lines)
    assert any("no operating threshold" in line for line in lines)
    arr, plan = _picture(clinical, image)
    band = arr[plan.image_size[1] :]
    assert not render.find_text(
        band,
        "DEMO MODEL - synthetic training data, not for clinical use",
        heatmap_sc.legend_font_px(arr.shape[1]),
    )
    # no threshold: no positive call, so the outline is dashed
    ds = heatmap_sc.from_image(clinical, image)
    assert "no operating threshold" in ds.ImageComments


def test_attributes(results: StudyResults) -> None:
    image = image_of(results, "L", "MLO")
    uid = image.score.sop_instance_uid
    ds = heatmap_sc.from_image(results, image)
    source = pydicom.dcmread(image.source_path, stop_before_pixels=True)
    assert ds.BurnedInAnnotation == "YES"
    assert list(ds.PatientOrientation) == list(source.PatientOrientation) == ["A", "F"]
    assert ds.ImageLaterality == source.ImageLaterality == "L"
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "StudyID",
        "AccessionNumber",
        "ReferringPhysicianName",
    ):
        assert ds.get(keyword) == source.get(keyword), keyword
    assert ds.SOPInstanceUID == results.uid("heatmap_sc", uid)
    assert ds.SeriesInstanceUID == results.uid("heatmap_sc", series=True)
    assert ds.SeriesNumber == SERIES_NUMBERS["heatmap_sc"]
    assert len(ds.SeriesDescription) <= 64
    assert "FOR RESEARCH USE ONLY" in ds.SeriesDescription and "DEMO MODEL" in ds.SeriesDescription
    assert "DEMO MODEL - synthetic training data, not for clinical use" in ds.ImageComments
    ref = ds.SourceImageSequence[0]
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (source.SOPClassUID, uid)
    prov = results.provenance
    assert (ds.Manufacturer, ds.ManufacturerModelName) == (
        prov.manufacturer,
        prov.manufacturer_model_name,
    )
    assert ds.DeviceUID == prov.device_uid
    air = [
        item
        for item in ds.ContributingEquipmentSequence
        if item.PurposeOfReferenceCodeSequence[0].CodeValue == "Newcode1"
    ]
    assert (
        len(air) == 1 and air[0].PurposeOfReferenceCodeSequence[0].CodingSchemeDesignator == "99IHE"
    )
    when = results.content_datetime
    assert (ds.ContentDate, ds.ContentTime) == (when.strftime("%Y%m%d"), when.strftime("%H%M%S"))
    # every heatmap of the study in one series, with its own UID and instance number
    objects = heatmap_sc.from_study(results)
    assert len({o.SeriesInstanceUID for o in objects}) == 1
    assert len({o.SOPInstanceUID for o in objects}) == 4
    assert sorted(int(o.InstanceNumber) for o in objects) == [1, 2, 3, 4]


def _dates(ds: pydicom.Dataset) -> set[str]:
    return {str(e.value) for e in ds.iterall() if e.VR in ("DA", "TM", "DT") and e.value}


def test_deterministic(
    results: StudyResults, study_results: Callable[..., StudyResults], tmp_path: Path
) -> None:
    """The same object twice, and again from a second copy of the same study (a redelivered
    task: files read afresh)."""
    again = study_results()
    paths = []
    for i, res in enumerate((results, results, again)):
        path = tmp_path / f"{i}.dcm"
        heatmap_sc.from_image(res, image_of(res, "R", "MLO")).save_as(
            path, enforce_file_format=True
        )
        paths.append(path)
    assert paths[0].read_bytes() == paths[1].read_bytes() == paths[2].read_bytes()
    image = image_of(results, "R", "MLO")
    # no "now" anywhere: every date/time is the source's or the queue time
    ds = pydicom.dcmread(paths[0])
    source = pydicom.dcmread(image.source_path, stop_before_pixels=True)
    when = results.content_datetime
    allowed = {source.StudyDate, source.StudyTime, source.PatientBirthDate}
    allowed |= {
        when.strftime("%Y%m%d"),
        when.strftime("%H%M%S"),
        when.strftime("%Y%m%d%H%M%S+0000"),
    }
    assert _dates(ds) <= allowed, _dates(ds) - allowed


def test_cam_on_another_grid_is_refused(results: StudyResults) -> None:
    image = results.analyzed[0]
    bad = AnalyzedImage(image.score, image.cam[:-1], image.source_path)
    with pytest.raises(ValueError, match="stored pixel grid"):
        heatmap_sc.from_image(results, bad)


def test_a_warned_image_shows_the_caution(results: StudyResults) -> None:
    """Warn-mode domain-shift guard: the caution is in the legend where the score is read, and
    in ImageComments; an image without a warning shows none."""
    warned = image_of(results, "L", "CC")
    caution = "analyzed although outside the model's training distribution (test)"
    warned = dataclasses.replace(
        warned, score=dataclasses.replace(warned.score, warnings=(caution,))
    )
    lines = heatmap_sc.legend_lines(results, warned)
    assert f"CAUTION: {caution}" in lines
    assert lines.index(f"CAUTION: {caution}") < lines.index(model_line(results.provenance))
    assert caution in str(heatmap_sc.from_image(results, warned).ImageComments)
    plain = image_of(results, "R", "CC")
    assert not any("CAUTION" in line for line in heatmap_sc.legend_lines(results, plain))
