from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from plugin.results import render, summary_sc
from plugin.results.common import model_line
from plugin.results.inputs import SERIES_NUMBERS, StudyResults
from tests.plugin.results.conftest import dciodvfy_errors, provenance

REASON = "cannot decode image: test says so"


@pytest.fixture
def partial(study_results: Callable[..., StudyResults]) -> StudyResults:
    """R MLO dropped: R MLO and its partner L MLO are not analyzed, both CCs are."""
    return study_results(drop=(("R", "MLO"),))


def test_one_object_that_passes_dciodvfy(
    partial: StudyResults, study_results: Callable[..., StudyResults], tmp_path: Path
) -> None:
    cases = {
        "partial": partial,
        "full": study_results(),
        "none": study_results(drop=(("R", "CC"), ("R", "MLO"))),
        "no_threshold": study_results(prov=provenance(threshold=None, synthetic=False)),
    }
    for name, results in cases.items():
        ds = summary_sc.from_study(results)
        assert isinstance(ds, pydicom.Dataset)
        path = tmp_path / f"{name}.dcm"
        ds.save_as(path, enforce_file_format=True)
        assert dciodvfy_errors(path) == [], name
        arr = pydicom.dcmread(path).pixel_array
        assert arr.shape == (1280, 1024, 3) and arr.dtype == np.uint8


def test_every_image_is_listed_with_its_score_or_reason(partial: StudyResults) -> None:
    assert len(partial.analyzed) == 2 and len(partial.not_analyzed) == 2
    lines = summary_sc.summary_lines(partial)
    text = "\n".join(lines)
    assert "R CC   12.0 %   negative" in lines
    assert "L CC   91.0 %   POSITIVE" in lines
    assert f"R MLO   NOT ANALYZED: {REASON}" in lines
    assert f"L MLO   NOT ANALYZED: {REASON}" in lines
    assert "Exam p(malignant) 91.0 %" in lines
    assert "POSITIVE at threshold 50.0 %" in lines
    # each breast's score, and how many of its images it rests on
    assert "Right breast (1 of 2)   12.0 %   negative at threshold 50.0 %" in lines
    assert "Left breast (1 of 2)   91.0 %   POSITIVE at threshold 50.0 %" in lines
    assert "Images analyzed: 2 of 4" in lines
    assert model_line(partial.provenance) in lines
    for label in partial.provenance.labels:
        assert label in lines
    patient = partial.any_source()
    assert str(patient.PatientName) in text and patient.PatientID in text
    # the table is in hanging order: CC before MLO, right before left
    order = [line.split("   ")[0] for line in lines if line[:4] in ("R CC", "L CC", "R ML", "L ML")]
    assert order == ["R CC", "L CC", "R MLO", "L MLO"]


def test_the_page_shows_the_lines(partial: StudyResults) -> None:
    """The critical strings are found pixel for pixel on the page (template match with the
    page's own font), a string that is not there is not found."""
    page = summary_sc.render_page(partial)
    drawn = dict(page.drawn)
    for text in (
        "NOT ANALYZED: cannot decode image: test says so",
        "12.0 %",
        "91.0 %",
        "Exam p(malignant) 91.0 %",
        "FOR RESEARCH USE ONLY",
        "DEMO MODEL - synthetic training data, not for clinical use",
        model_line(partial.provenance),
        "R CC  12.0 %",  # a thumbnail's caption
        "L CC  91.0 %",
    ):
        assert text in drawn, (text, sorted(drawn))
        assert render.find_text(page.pixels, text, drawn[text]), text
    size = drawn["Exam p(malignant) 91.0 %"]
    assert not render.find_text(page.pixels, "Exam p(malignant) 12.0 %", size)
    # thumbnails: coloured (heatmap) pixels exist on the page, below the table
    rgb = page.pixels.astype(int)
    coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 60
    text_colours = np.zeros_like(coloured)
    for colour in (render.POSITIVE_COLOUR, render.LABEL_COLOUR):
        text_colours |= np.abs(rgb - colour).sum(axis=2) < 40
    assert (coloured & ~text_colours).sum() > 50


def test_nothing_analyzed_says_so(study_results: Callable[..., StudyResults]) -> None:
    results = study_results(drop=(("R", "CC"), ("R", "MLO")))
    assert results.analyzed == () and results.exam is None
    lines = summary_sc.summary_lines(results)
    assert "Exam: no image could be analyzed" in lines
    assert "Right breast (0 of 2)   not analyzed" in lines
    assert "Left breast (0 of 2)   not analyzed" in lines
    assert sum(line.endswith(f"NOT ANALYZED: {REASON}") for line in lines) == 4
    ds = summary_sc.from_study(results)
    assert "SourceImageSequence" not in ds
    assert ds.PatientID == results.any_source().PatientID


def test_no_threshold(study_results: Callable[..., StudyResults]) -> None:
    results = study_results(prov=provenance(threshold=None))
    lines = summary_sc.summary_lines(results)
    assert "no operating threshold set (score only)" in lines
    assert not any("POSITIVE" in line or "negative" in line for line in lines)


def test_attributes(partial: StudyResults) -> None:
    ds = summary_sc.from_study(partial)
    source = partial.any_source()
    assert ds.BurnedInAnnotation == "YES"
    assert ds.SOPInstanceUID == partial.uid("summary_sc")
    assert ds.SeriesInstanceUID == partial.uid("summary_sc", series=True)
    assert ds.SeriesNumber == SERIES_NUMBERS["summary_sc"]
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
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
    ):
        assert ds.get(keyword) == source.get(keyword), keyword
    refs = {item.ReferencedSOPInstanceUID for item in ds.SourceImageSequence}
    assert refs == {a.score.sop_instance_uid for a in partial.analyzed}
    assert ds.ImageLaterality == "B"
    assert "FOR RESEARCH USE ONLY" in ds.SeriesDescription and len(ds.SeriesDescription) <= 64
    assert any(
        item.PurposeOfReferenceCodeSequence[0].CodeValue == "Newcode1"
        for item in ds.ContributingEquipmentSequence
    )
    assert ds.DeviceUID == partial.provenance.device_uid


def test_deterministic(
    partial: StudyResults, study_results: Callable[..., StudyResults], tmp_path: Path
) -> None:
    again = study_results(drop=(("R", "MLO"),))
    blobs = []
    for i, res in enumerate((partial, partial, again)):
        path = tmp_path / f"{i}.dcm"
        summary_sc.from_study(res).save_as(path, enforce_file_format=True)
        blobs.append(path.read_bytes())
    assert blobs[0] == blobs[1] == blobs[2]
    ds = pydicom.dcmread(tmp_path / "0.dcm")
    source = partial.any_source()
    when = partial.content_datetime
    allowed = {source.StudyDate, source.StudyTime, source.PatientBirthDate}
    allowed |= {
        when.strftime("%Y%m%d"),
        when.strftime("%H%M%S"),
        when.strftime("%Y%m%d%H%M%S+0000"),
    }
    dates = {str(e.value) for e in ds.iterall() if e.VR in ("DA", "TM", "DT") and e.value}
    assert dates <= allowed, dates - allowed


def test_a_warned_image_shows_the_caution(partial: StudyResults) -> None:
    """Warn-mode domain-shift guard: one caution row per warned image, under the table."""
    caution = "analyzed although outside the model's training distribution (test)"
    first, *rest = partial.analyzed
    warned = dataclasses.replace(first, score=dataclasses.replace(first.score, warnings=(caution,)))
    results = dataclasses.replace(partial, analyzed=(warned, *rest))
    name = render.image_name(first.score.laterality, first.score.view)
    lines = summary_sc.summary_lines(results)
    assert lines.count(f"CAUTION {name}: {caution}") == 1
    assert not any("CAUTION" in line for line in summary_sc.summary_lines(partial))
