"""Mammography CAD SR (TID 4000): validated by dciodvfy and dcmtk's dsrdump, then read back."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from plugin.results import cad_sr
from plugin.results.inputs import SERIES_NUMBERS, StudyResults
from plugin.results.writer import encode
from tests.plugin.results.conftest import dciodvfy_errors, provenance, save

DSRDUMP = shutil.which("dsrdump")
#: dcmtk 3.6.7 says this of every Mammography CAD SR: it cannot check TID 4000 itself.
DSRDUMP_NOTICE = "W: Check for template constraints not yet supported"
#: Not round on purpose: the written value is rounded to PERCENT_DECIMALS.
SCORES = {("L", "CC"): 0.912345, ("R", "CC"): 0.123456, ("L", "MLO"): 0.645, ("R", "MLO"): 0.2}
LOW = {k: 0.1 for k in SCORES}
DROP_MLO = (("R", "MLO"),)  # drops the MLO pair
DROP_ALL = (("R", "MLO"), ("R", "CC"))

Factory = Callable[..., StudyResults]


# -- helpers -------------------------------------------------------------------------------------


def _dsrdump(path: Path) -> tuple[str, list[str]]:
    """dsrdump's output, and its warning and error lines (but the template-check notice)."""
    assert DSRDUMP, "dsrdump (dcmtk) is required"
    run = subprocess.run([DSRDUMP, str(path)], capture_output=True, text=True, timeout=60)
    out = run.stdout + run.stderr
    bad = [
        line
        for line in out.splitlines()
        if line != DSRDUMP_NOTICE
        and (line.startswith(("W:", "E:", "F:")) or "Warning" in line or "Error" in line)
    ]
    if run.returncode != 0:
        bad.append(f"exit status {run.returncode}")
    return out, bad


def _walk(item: Dataset, path: tuple[int, ...] = (1,)) -> Iterator[tuple[tuple[int, ...], Dataset]]:
    yield path, item
    for i, child in enumerate(item.get("ContentSequence", []), start=1):
        yield from _walk(child, (*path, i))


def _at(root: Dataset, path: list[int] | tuple[int, ...]) -> Dataset:
    assert path[0] == 1
    item = root
    for i in path[1:]:
        item = item.ContentSequence[i - 1]
    return item


def _name(item: Dataset) -> str | None:
    seq = item.get("ConceptNameCodeSequence")
    return str(seq[0].CodeValue) if seq else None


def _value(item: Dataset) -> str:
    return str(item.ConceptCodeSequence[0].CodeValue)


def _children(item: Dataset, code: str) -> list[Dataset]:
    return [c for c in item.get("ContentSequence", []) if _name(c) == code]


def _child(item: Dataset, code: str) -> Dataset:
    found = _children(item, code)
    assert len(found) == 1, f"{len(found)} items {code} under {_name(item)}"
    return found[0]


def _target_uid(root: Dataset, ref: Dataset) -> str:
    """The SOP Instance UID of the Image Library entry a by-reference item points at."""
    target = _at(root, list(ref.ReferencedContentItemIdentifier))
    assert target.ValueType == "IMAGE"
    return str(target.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)


def _image_uid(root: Dataset, item: Dataset) -> str:
    """The image of an item's only by-reference child."""
    refs = [c for c in item.ContentSequence if "ReferencedContentItemIdentifier" in c]
    assert len(refs) == 1
    return _target_uid(root, refs[0])


def _findings(root: Dataset) -> dict[str, tuple[Dataset, Dataset]]:
    """SOP Instance UID → (Individual Impression container, its Single Image Finding)."""
    out = {}
    summary = _child(root, "111017")
    for impression in _children(summary, "111034"):
        assert impression.RelationshipType == "INFERRED FROM"
        finding = _child(impression, "111059")
        geometry = _children(finding, "111010") + _children(finding, "111041")
        uids = {_image_uid(root, g) for g in geometry}
        assert len(uids) == 1
        uid = uids.pop()
        assert uid not in out
        out[uid] = impression, finding
    return out


def _texts(root: Dataset) -> list[str]:
    return [str(item.TextValue) for _, item in _walk(root) if item.get("ValueType") == "TEXT"]


# -- validators ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"drop": DROP_MLO},
        {"drop": DROP_ALL},
        {"scores": LOW, "prov": provenance(threshold=None, synthetic=False)},
    ],
    ids=["complete", "partial", "none-analyzed", "no-threshold"],
)
def test_dciodvfy_and_dsrdump_find_nothing(
    study_results: Factory, tmp_path: Path, kwargs: dict[str, object]
) -> None:
    path = save(cad_sr.from_study(study_results(**kwargs)), tmp_path / "cad.dcm")
    assert dciodvfy_errors(path) == []
    out, bad = _dsrdump(path)
    assert bad == []
    assert "Mammography CAD SR Document" in out


def test_dsrdump_checks_relationships_and_lists_probabilities(
    study_results: Factory, tmp_path: Path
) -> None:
    results = study_results(scores=SCORES)
    ds = cad_sr.from_study(results)
    out, bad = _dsrdump(save(ds, tmp_path / "cad.dcm"))
    assert bad == []
    for image in results.analyzed:
        value = cad_sr.percent_text(image.score.p_malignant)
        assert f'NUM:(,,"Probability of cancer")="{value}" (%,UCUM,"percent")' in out
    # The checker is really on: a "contains TEXT" under a CODE is refused.
    bad_item = Dataset()
    bad_item.RelationshipType = "CONTAINS"
    bad_item.ValueType = "TEXT"
    bad_item.ConceptNameCodeSequence = ds.ConceptNameCodeSequence
    bad_item.TextValue = "x"
    ds.ContentSequence[2].ContentSequence.append(bad_item)
    _, bad = _dsrdump(save(ds, tmp_path / "bad.dcm"))
    assert any('Cannot add "contains TEXT" to CODE' in line for line in bad)


# -- read back -----------------------------------------------------------------------------------


def test_document_attributes(study_results: Factory, tmp_path: Path) -> None:
    results = study_results()
    ds = pydicom.dcmread(save(cad_sr.from_study(results), tmp_path / "cad.dcm"))
    source = results.any_source()
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.SOPClassUID == cad_sr.MAMMOGRAPHY_CAD_SR == ds.file_meta.MediaStorageSOPClassUID
    assert ds.SOPInstanceUID == results.uid("cad_sr") == ds.file_meta.MediaStorageSOPInstanceUID
    assert ds.SeriesInstanceUID == results.uid("cad_sr", series=True)
    assert ds.SeriesNumber == SERIES_NUMBERS["cad_sr"]
    assert ds.Modality == "SR"
    assert ds.StudyInstanceUID == results.study_uid
    assert ds.PatientID == source.PatientID
    assert ds.AccessionNumber == source.AccessionNumber
    assert ds.Manufacturer == results.provenance.manufacturer
    assert ds.ContentDate == "20251124" and ds.ContentTime == "160000"
    assert ds.CompletionFlag == "COMPLETE" and "CompletionFlagDescription" not in ds
    assert ds.VerificationFlag == "UNVERIFIED"
    assert ds.ReferencedPerformedProcedureStepSequence == []
    assert ds.PerformedProcedureCodeSequence == []
    assert "PredecessorDocumentsSequence" not in ds
    purposes = [
        item.PurposeOfReferenceCodeSequence[0].CodeValue
        for item in ds.ContributingEquipmentSequence
    ]
    assert "Newcode1" in purposes
    assert _name(ds) == "111036" and ds.ValueType == "CONTAINER"
    template = ds.ContentTemplateSequence[0]
    assert (template.MappingResource, template.TemplateIdentifier) == ("DCMR", "4000")
    assert [_name(c) for c in ds.ContentSequence] == [
        "121049",
        "111028",
        "111017",
        "111064",
        "111065",
    ]


def test_image_library_entries_describe_each_image(study_results: Factory) -> None:
    results = study_results()
    ds = cad_sr.from_study(results)
    entries = _child(ds, "111028").ContentSequence
    assert len(entries) == 4
    for entry in entries:
        uid = entry.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        header = results.source(uid)
        assert entry.ReferencedSOPSequence[0].ReferencedSOPClassUID == header.SOPClassUID
        side = _child(entry, "111027").ConceptCodeSequence[0].CodeMeaning
        assert side == {"L": "Left", "R": "Right"}[header.ImageLaterality]
        assert _value(_child(entry, "111031")) == header.ViewCodeSequence[0].CodeValue
        assert _child(entry, "111044").TextValue == header.PatientOrientation[0]
        assert _child(entry, "111043").TextValue == header.PatientOrientation[1]
        assert _child(entry, "111060").Date == header.StudyDate
        assert _child(entry, "111019").Time == header.ContentTime
        horizontal = _child(entry, "111026").MeasuredValueSequence[0]
        assert float(horizontal.NumericValue) == float(header.ImagerPixelSpacing[1])
        assert horizontal.MeasurementUnitsCodeSequence[0].CodeValue == "mm"
        assert all(c.RelationshipType == "HAS ACQ CONTEXT" for c in entry.ContentSequence)


def test_every_analyzed_image_has_its_finding(study_results: Factory) -> None:
    results = study_results(scores=SCORES)
    ds = cad_sr.from_study(results)
    findings = _findings(ds)
    assert set(findings) == {a.score.sop_instance_uid for a in results.analyzed}
    positives = 0
    for image in results.analyzed:
        score = image.score
        impression, finding = findings[score.sop_instance_uid]
        assert _value(finding) == "111099"  # Selected region (CID 6014)
        measured = _child(finding, "111047").MeasuredValueSequence[0]
        assert measured.MeasurementUnitsCodeSequence[0].CodeValue == "%"
        assert measured.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator == "UCUM"
        written = float(measured.NumericValue)
        assert written == round(100 * score.p_malignant, cad_sr.PERCENT_DECIMALS)
        assert abs(written - 100 * score.p_malignant) <= 0.5 * 10**-cad_sr.PERCENT_DECIMALS
        intent = "111150" if score.positive else "111151"
        assert _value(_child(impression, "111056")) == intent
        assert _value(_child(finding, "111056")) == intent
        center = _child(finding, "111010")
        assert center.GraphicType == "POINT"
        assert tuple(center.GraphicData) == pytest.approx(score.peak)
        outlines = _children(finding, "111041")
        if score.positive:
            positives += 1
            assert len(outlines) == 1 and outlines[0].GraphicType == "POLYLINE"
            data = [float(v) for v in outlines[0].GraphicData]
            assert data == pytest.approx([v for point in score.region for v in point])
            assert data[:2] == data[-2:]  # closed
        else:
            assert outlines == []
        assert _child(finding, "111001").TextValue.endswith(results.provenance.model_name)
        assert _child(finding, "111003").TextValue == results.provenance.model_version
        assert _children(finding, "111002") == []  # parameters: in Detection Performed
    assert positives == 2  # L CC and L MLO at 0.5


@pytest.mark.parametrize(
    ("kwargs", "summary", "detections", "flag"),
    [
        ({}, "111242", "111222", "COMPLETE"),
        ({"scores": LOW}, "111241", "111222", "COMPLETE"),
        ({"prov": provenance(threshold=None)}, "111241", "111222", "COMPLETE"),
        ({"drop": DROP_MLO}, "111244", "111223", "PARTIAL"),
        ({"drop": DROP_MLO, "scores": LOW}, "111243", "111223", "PARTIAL"),
        ({"drop": DROP_ALL}, "111245", "111224", "PARTIAL"),
    ],
    ids=["with", "without", "no-threshold", "partial-with", "partial-without", "none"],
)
def test_summary_codes(
    study_results: Factory, kwargs: dict[str, object], summary: str, detections: str, flag: str
) -> None:
    results = study_results(**kwargs)
    ds = cad_sr.from_study(results)
    assert _value(_child(ds, "111017")) == summary
    assert _value(_child(ds, "111064")) == detections
    assert _value(_child(ds, "111065")) == "111225"  # no analyses: Not Attempted
    assert ds.CompletionFlag == flag
    if flag == "PARTIAL":
        assert len(ds.CompletionFlagDescription) <= 64
        assert f"{len(results.not_analyzed)} of 4 images" in ds.CompletionFlagDescription
    if results.provenance.threshold is None:
        assert all(_value(_child(f, "111056")) == "111151" for _, f in _findings(ds).values())
    assert len(_findings(ds)) == len(results.analyzed)


def test_each_not_analyzed_image_appears_with_its_reason(study_results: Factory) -> None:
    results = study_results(drop=DROP_MLO)
    assert len(results.not_analyzed) == 2
    ds = cad_sr.from_study(results)
    detections = _child(ds, "111064")
    successful = _child(detections, "111063")
    analyzed = _child(successful, "111022")
    refs = [c for c in analyzed.ContentSequence if "ReferencedContentItemIdentifier" in c]
    assert {_target_uid(ds, r) for r in refs} == {
        a.score.sop_instance_uid for a in results.analyzed
    }
    failed = _children(_child(detections, "111025"), "111022")
    for detection in (analyzed, *failed):
        assert _child(detection, "111003").TextValue == results.provenance.model_version
        parameters = [p.TextValue for p in _children(detection, "111002")]
        assert f"model sha256 {results.provenance.sha256}" in parameters
        assert "threshold (probability of cancer) 50.00 %" in parameters
    by_uid = {_image_uid(ds, d): d for d in failed}
    assert set(by_uid) == {n.sop_instance_uid for n in results.not_analyzed}
    for item in results.not_analyzed:
        comment = _child(by_uid[item.sop_instance_uid], "121106").TextValue
        assert item.reason in comment
        assert f"{item.laterality} {item.view}" in comment
    # Not-analyzed images are in the Image Library (and the evidence) too.
    library = {
        e.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for e in _child(ds, "111028").ContentSequence
    }
    assert {n.sop_instance_uid for n in results.not_analyzed} <= library


def test_not_analyzed_image_without_header_is_named_by_uid(study_results: Factory) -> None:
    results = study_results(drop=DROP_MLO)
    gone = dataclasses.replace(results.not_analyzed[0], path=None)
    paths = {k: v for k, v in results.source_paths.items() if k != gone.sop_instance_uid}
    results = dataclasses.replace(
        results, not_analyzed=(gone, *results.not_analyzed[1:]), source_paths=paths
    )
    ds = cad_sr.from_study(results)
    failed = _children(_child(_child(ds, "111064"), "111025"), "111022")
    comments = [_child(d, "121106").TextValue for d in failed]
    assert any(gone.sop_instance_uid in c and gone.reason in c for c in comments)
    library = [
        e.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for e in _child(ds, "111028").ContentSequence
    ]
    assert gone.sop_instance_uid not in library and len(library) == 3


def test_labels_present(study_results: Factory) -> None:
    results = study_results()
    labels = results.provenance.labels
    assert len(labels) == 2
    ds = cad_sr.from_study(results)
    texts = _texts(ds)
    descriptions = [
        _child(f, "111058").TextValue for _, f in _findings(ds).values()
    ]  # Selected Region Description of each finding
    assert len(descriptions) == len(results.analyzed)
    for label in labels:
        assert label in texts  # an Algorithm Parameters TEXT item of each detection
        assert all(label in d for d in descriptions)
        assert label.split(" - ")[0] in ds.SeriesDescription
    assert len(ds.SeriesDescription) <= 64

    clinical = dataclasses.replace(
        results.provenance, research_only=False, synthetic_training=False
    )
    assert clinical.labels == ()
    plain = cad_sr.from_study(dataclasses.replace(results, provenance=clinical))
    assert not any("RESEARCH" in t or "DEMO" in t for t in _texts(plain))
    assert plain.SeriesDescription == "BR-GAN Mammography CAD SR"


def test_evidence_lists_each_image_once(study_results: Factory) -> None:
    results = study_results(drop=DROP_MLO)
    ds = cad_sr.from_study(results)
    [study] = ds.CurrentRequestedProcedureEvidenceSequence
    assert study.StudyInstanceUID == results.study_uid
    listed = []
    for series in study.ReferencedSeriesSequence:
        for ref in series.ReferencedSOPSequence:
            header = results.source(ref.ReferencedSOPInstanceUID)
            assert header.SeriesInstanceUID == series.SeriesInstanceUID
            assert header.SOPClassUID == ref.ReferencedSOPClassUID
            listed.append(ref.ReferencedSOPInstanceUID)
    assert len(listed) == len(set(listed)) == 4
    referenced = {
        str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
        for _, item in _walk(ds)
        if "ReferencedSOPSequence" in item
    }
    assert set(listed) == referenced
    series_uids = [s.SeriesInstanceUID for s in study.ReferencedSeriesSequence]
    assert len(series_uids) == len(set(series_uids))


def test_every_by_reference_target_is_a_library_image(study_results: Factory) -> None:
    results = study_results(drop=DROP_MLO)
    ds = cad_sr.from_study(results)
    targets = [
        list(item.ReferencedContentItemIdentifier)
        for _, item in _walk(ds)
        if "ReferencedContentItemIdentifier" in item
    ]
    # Geometry (Outline + Center of the positive L CC, Center of R CC), successful, failed.
    assert len(targets) == 3 + len(results.analyzed) + len(results.not_analyzed)
    for target in targets:
        assert target[:2] == [1, 2]
        assert _at(ds, target).ValueType == "IMAGE"


def test_deterministic(study_results: Factory) -> None:
    results = study_results(drop=DROP_MLO)
    first = encode(cad_sr.from_study(results))
    assert encode(cad_sr.from_study(results)) == first
    again = study_results(drop=DROP_MLO)  # same synthetic study, written anew
    assert encode(cad_sr.from_study(again)) == first
    other = study_results(drop=DROP_MLO, version=2)
    assert encode(cad_sr.from_study(other)) != first


def test_predecessor_documents(study_results: Factory) -> None:
    old = cad_sr.from_study(study_results(version=1))
    results = study_results(version=2)
    new = cad_sr.from_study(results, previous=[old, old])
    assert new.SOPInstanceUID != old.SOPInstanceUID
    assert new.SeriesInstanceUID != old.SeriesInstanceUID
    [study] = new.PredecessorDocumentsSequence
    assert study.StudyInstanceUID == old.StudyInstanceUID
    [series] = study.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == old.SeriesInstanceUID
    [ref] = series.ReferencedSOPSequence
    assert ref.ReferencedSOPClassUID == cad_sr.MAMMOGRAPHY_CAD_SR
    assert ref.ReferencedSOPInstanceUID == old.SOPInstanceUID
