from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from plugin.queue.contract import ResultFile
from plugin.results import heatmap_sc, kos, summary_sc
from plugin.results.inputs import SERIES_NUMBERS, StudyResults
from tests.plugin.results.conftest import dciodvfy_errors

SR = "1.2.840.10008.5.1.4.1.1.88.22"  # Enhanced SR (a stand-in for an old SR of ours)


@pytest.fixture
def versions(study_results: Callable[..., StudyResults]) -> tuple[StudyResults, StudyResults]:
    """Version 1 and version 2 of the same study (same synthetic files, same seed)."""
    old = study_results(version=1)
    new = study_results(version=2)
    assert old.study_uid == new.study_uid
    return old, new


def old_objects(old: StudyResults) -> list:
    """Version 1's heatmaps (datasets), its summary (as the worker reports it, a ResultFile)
    and its SR (a UID triple): every accepted form."""
    sr = (SR, old.uid("tid1500_sr"), old.uid("tid1500_sr", series=True))
    summary = summary_sc.from_study(old, thumbnails=False)
    reported = ResultFile(
        "summary_sc",
        "/results/summary_sc.dcm",
        summary.SOPInstanceUID,
        summary.SOPClassUID,
        summary.SeriesInstanceUID,
    )
    return [*heatmap_sc.from_study(old), reported, sr]


def _references(ds: pydicom.Dataset) -> dict[str, tuple[str, str]]:
    """SOP Instance UID → (series, SOP class) from the evidence sequence."""
    out = {}
    for study in ds.CurrentRequestedProcedureEvidenceSequence:
        assert study.StudyInstanceUID == ds.StudyInstanceUID
        for series in study.ReferencedSeriesSequence:
            for item in series.ReferencedSOPSequence:
                out[item.ReferencedSOPInstanceUID] = (
                    series.SeriesInstanceUID,
                    item.ReferencedSOPClassUID,
                )
    return out


def test_references_every_superseded_object(versions, tmp_path: Path) -> None:
    old, new = versions
    superseded = old_objects(old)
    note = kos.rejection_for(new, superseded)
    path = tmp_path / "kos.dcm"
    note.save_as(path, enforce_file_format=True)
    assert dciodvfy_errors(path) == []
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == kos.KOS_SOP_CLASS and ds.Modality == "KO"
    title = ds.ConceptNameCodeSequence[0]
    assert (title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning) == (
        "113001",
        "DCM",
        "Rejected for Quality Reasons",
    )
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "2010"
    expected = {}
    for item in superseded:
        if isinstance(item, pydicom.Dataset):
            expected[item.SOPInstanceUID] = (item.SeriesInstanceUID, item.SOPClassUID)
        elif isinstance(item, ResultFile):
            expected[item.sop_instance_uid] = (item.series_instance_uid, item.sop_class_uid)
        else:
            expected[item[1]] = (item[2], item[0])
    assert len(expected) == 6
    assert _references(ds) == expected
    # by series: the four heatmaps share one series item
    series = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    assert sorted(len(s.ReferencedSOPSequence) for s in series) == [1, 1, 4]
    # and in the content tree: images as IMAGE, the SR as COMPOSITE
    kinds = {
        item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID: item.ValueType
        for item in ds.ContentSequence
        if item.ValueType in ("IMAGE", "COMPOSITE")
    }
    assert set(kinds) == set(expected)
    assert kinds[old.uid("tid1500_sr")] == "COMPOSITE"
    assert kinds[old.uid("summary_sc")] == "IMAGE"


def test_attributes(versions) -> None:
    old, new = versions
    ds = kos.rejection_for(new, old_objects(old))
    source = new.any_source()
    assert ds.SOPInstanceUID == new.uid("kos") != old.uid("kos")
    assert ds.SeriesInstanceUID == new.uid("kos", series=True)
    assert ds.SeriesNumber == SERIES_NUMBERS["kos"]
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "AccessionNumber", "StudyID"):
        assert ds.get(keyword) == source.get(keyword), keyword
    assert ds.Manufacturer == new.provenance.manufacturer
    assert any(
        item.PurposeOfReferenceCodeSequence[0].CodeValue == "Newcode1"
        for item in ds.ContributingEquipmentSequence
    )
    when = new.content_datetime
    assert (ds.ContentDate, ds.ContentTime) == (when.strftime("%Y%m%d"), when.strftime("%H%M%S"))


def test_deterministic_whatever_the_order(versions, tmp_path: Path) -> None:
    old, new = versions
    superseded = old_objects(old)
    blobs = []
    for i, items in enumerate((superseded, superseded[::-1], superseded + superseded[:2])):
        path = tmp_path / f"{i}.dcm"
        kos.rejection_for(new, items).save_as(path, enforce_file_format=True)
        blobs.append(path.read_bytes())
    assert blobs[0] == blobs[1] == blobs[2]
    ds = pydicom.dcmread(tmp_path / "0.dcm")
    source = new.any_source()
    when = new.content_datetime
    allowed = {source.StudyDate, source.StudyTime, source.PatientBirthDate}
    allowed |= {
        when.strftime("%Y%m%d"),
        when.strftime("%H%M%S"),
        when.strftime("%Y%m%d%H%M%S+0000"),
    }
    dates = {str(e.value) for e in ds.iterall() if e.VR in ("DA", "TM", "DT") and e.value}
    assert dates <= allowed, dates - allowed


def test_refuses_what_it_cannot_reject(
    versions, study_results: Callable[..., StudyResults]
) -> None:
    _old, new = versions
    with pytest.raises(ValueError, match="at least one"):
        kos.rejection_for(new, [])
    with pytest.raises(ValueError, match="expected"):
        kos.rejection_for(new, [("1.2.3", "4.5.6")])  # type: ignore[list-item]
    other = study_results(seed=11)
    assert other.study_uid != new.study_uid
    with pytest.raises(ValueError, match="one study"):
        kos.rejection_for(new, [summary_sc.from_study(other, thumbnails=False)])
    with pytest.raises(ValueError, match="results version writing the note"):
        kos.rejection_for(new, [summary_sc.from_study(new, thumbnails=False)])
