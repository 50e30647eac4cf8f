"""TID 1500 Comprehensive SR: validated by dciodvfy and dsrdump, walked by the rules of Orthanc
Stone and OHIF 3.13.2 (RESULTS.md §2), then read back value by value."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from plugin.queue.contract import NotAnalyzed
from plugin.results import common, tid1500
from plugin.results.inputs import SERIES_NUMBERS, StudyResults
from plugin.results.writer import encode
from tests.plugin.results.conftest import dciodvfy_errors, provenance, save

DSRDUMP = shutil.which("dsrdump")
#: Not round on purpose: the written value is rounded to tid1500.PRECISION decimals.
SCORES = {("L", "CC"): 0.912345, ("R", "CC"): 0.123456, ("L", "MLO"): 0.645, ("R", "MLO"): 0.2}
DROP_MLO = (("R", "MLO"),)  # drops the MLO pair (a target and its partner)
DROP_ALL = (("R", "MLO"), ("R", "CC"))  # drops all four
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"

Factory = Callable[..., StudyResults]


# -- helpers -------------------------------------------------------------------------------------


def _dsrdump(path: Path) -> tuple[str, list[str]]:
    """dsrdump's output, and its warning and error lines (and a failing exit status)."""
    assert DSRDUMP, "dsrdump (dcmtk) is required"
    run = subprocess.run([DSRDUMP, str(path)], capture_output=True, text=True, timeout=60)
    bad = [
        line
        for line in run.stderr.splitlines()
        if line.startswith(("W:", "E:", "F:")) or "Warning" in line or "Error" in line
    ]
    if run.returncode != 0:
        bad.append(f"exit status {run.returncode}")
    return run.stdout, bad


def _walk(item: Dataset) -> Iterator[Dataset]:
    yield item
    for child in item.get("ContentSequence", []):
        yield from _walk(child)


def _code(item: Dataset) -> str | None:
    names = item.get("ConceptNameCodeSequence") or []
    return names[0].CodeValue if names else None


def _children(item: Dataset, code: str) -> list[Dataset]:
    return [c for c in item.get("ContentSequence", []) if _code(c) == code]


def _child(item: Dataset, code: str) -> Dataset:
    [found] = _children(item, code)
    return found


def _groups(ds: Dataset) -> list[Dataset]:
    return _children(_child(ds, "126010"), "125007")


def _group(ds: Dataset, identifier: str) -> Dataset:
    [found] = [g for g in _groups(ds) if _child(g, "112039").TextValue == identifier]
    return found


def _value(num: Dataset) -> float:
    [measured] = num.MeasuredValueSequence
    return float(measured.NumericValue)


def _laterality(item: Dataset) -> str:
    """The Laterality code under the Finding Site of ``item``."""
    return _child(_child(item, "363698007"), "272741003").ConceptCodeSequence[0].CodeValue


def _percent(p: float) -> float:
    return round(100 * p, tid1500.PRECISION)


def _qualitative_nums(ds: Dataset) -> list[tuple[str, Dataset]]:
    """(sentence, NUM) of each TEXT in Qualitative Evaluations that carries a NUM."""
    out = []
    for sentence in _child(ds, "C0034375").ContentSequence:
        for num in sentence.get("ContentSequence", []):
            if num.ValueType == "NUM":
                out.append((sentence.TextValue, num))
    return out


def _is_maximum(num: Dataset) -> bool:
    derivations = _children(num, "121401")
    return bool(derivations) and derivations[0].ConceptCodeSequence[0].CodeValue == "56851009"


def _image_refs(item: Dataset) -> list[str]:
    return [
        c.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for c in item.get("ContentSequence", [])
        if c.ValueType == "IMAGE"
    ]


def _evidence(ds: Dataset) -> list[str]:
    return [
        ref.ReferencedSOPInstanceUID
        for study in ds.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for ref in series.ReferencedSOPSequence
    ]


# -- validators ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("drop", "threshold"),
    [((), 0.5), (DROP_MLO, 0.5), (DROP_ALL, 0.5), ((), None)],
    ids=["all-analyzed", "mlo-not-analyzed", "nothing-analyzed", "no-threshold"],
)
def test_dciodvfy_and_dsrdump_find_nothing(
    study_results: Factory, tmp_path: Path, drop: tuple, threshold: float | None
) -> None:
    results = study_results(scores=SCORES, drop=drop, prov=provenance(threshold=threshold))
    path = save(tid1500.from_study(results), tmp_path / "sr.dcm")
    assert dciodvfy_errors(path) == []
    out, bad = _dsrdump(path)
    assert bad == []
    assert "Imaging Measurement Report" in out


# -- the viewers' rules --------------------------------------------------------------------------


@pytest.mark.parametrize("drop", [(), DROP_MLO], ids=["all-analyzed", "mlo-not-analyzed"])
def test_orthanc_stone_rules(study_results: Factory, drop: tuple) -> None:
    """DicomStructuredReport.cpp: every condition under which Stone draws a region."""
    results = study_results(scores=SCORES, drop=drop)
    ds = tid1500.from_study(results)
    assert ds.SOPClassUID == COMPREHENSIVE_SR
    assert ds.Modality == "SR"
    assert ds.ValueType == "CONTAINER"
    assert (ds.ConceptNameCodeSequence[0].CodingSchemeDesignator, _code(ds)) == ("DCM", "126000")
    [template] = ds.ContentTemplateSequence
    assert (template.MappingResource, template.TemplateIdentifier) == ("DCMR", "1500")

    listed = _evidence(ds)
    assert len(listed) == len(set(listed))  # Stone: "Multiple occurrences of the same instance"
    referenced = {a.score.sop_instance_uid for a in results.analyzed}
    referenced |= {n.sop_instance_uid for n in results.not_analyzed}
    assert set(listed) == referenced

    # Stone reads RelationshipType of every root child, and ValueType + concept of CONTAINS ones.
    for item in ds.ContentSequence:
        assert item.RelationshipType
        if item.RelationshipType == "CONTAINS":
            assert item.ValueType and len(item.ConceptNameCodeSequence) == 1

    drawn = []
    for group in _groups(ds):
        assert group.RelationshipType == "CONTAINS" and group.ValueType == "CONTAINER"
        [group_template] = group.ContentTemplateSequence
        assert (group_template.MappingResource, group_template.TemplateIdentifier) == (
            "DCMR",
            "1410",
        )
        [num] = [c for c in group.ContentSequence if _code(c) == "111047"]
        assert (num.RelationshipType, num.ValueType) == ("CONTAINS", "NUM")
        [measured] = num.MeasuredValueSequence
        unit = measured.MeasurementUnitsCodeSequence[0]
        assert (unit.CodingSchemeDesignator, unit.CodeValue) == ("UCUM", "%")
        assert 0.0 <= float(measured.NumericValue) <= 100.0
        [region] = _children(group, "111030")
        assert (region.RelationshipType, region.ValueType) == ("CONTAINS", "SCOORD")
        assert region.GraphicType in ("POINT", "POLYLINE")
        [source] = region.ContentSequence
        assert (source.RelationshipType, source.ValueType) == ("SELECTED FROM", "IMAGE")
        name = source.ConceptNameCodeSequence[0]
        assert (name.CodingSchemeDesignator, name.CodeValue) == ("DCM", "111040")
        [ref] = source.ReferencedSOPSequence
        assert ref.ReferencedSOPInstanceUID in listed
        drawn.append(ref.ReferencedSOPInstanceUID)
    assert sorted(drawn) == sorted(a.score.sop_instance_uid for a in results.analyzed)


@pytest.mark.parametrize(
    "drop", [(), DROP_MLO, DROP_ALL], ids=["all-analyzed", "mlo-not-analyzed", "nothing-analyzed"]
)
def test_ohif_rules(study_results: Factory, drop: tuple) -> None:
    """getSopClassHandlerModule.ts: what OHIF 3.13.2 reads, and what makes it throw."""
    results = study_results(scores=SCORES, drop=drop)
    ds = tid1500.from_study(results)
    assert _code(ds) == "126000"
    # Image Library with its groups (OHIF reads 111028 > 126200 > IMAGE).
    library = _child(ds, "111028")
    entries = [e for g in _children(library, "126200") for e in g.ContentSequence]
    images = [
        e.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for e in entries
        if e.ValueType == "IMAGE"
    ]
    assert sorted(images) == sorted(_evidence(ds))
    # 126010 exists even when empty (OHIF reads its ContentSequence unconditionally).
    measurements = _child(ds, "126010")
    groups = _children(measurements, "125007")
    assert len(groups) == len(results.analyzed)
    assert len(measurements.get("ContentSequence", [])) == len(groups)
    uids = []
    for group in groups:
        assert [c for c in group.ContentSequence if c.ValueType == "SCOORD"]
        assert _child(group, "112039").TextValue
        first_uidref = next(c for c in group.ContentSequence if c.ValueType == "UIDREF")
        assert _code(first_uidref) == "112040"  # OHIF takes the first UIDREF as tracking UID
        uids.append(first_uidref.UID)
        for num in (c for c in group.ContentSequence if c.ValueType == "NUM"):
            assert len(num.MeasuredValueSequence) == 1  # an empty one would throw in OHIF
    assert len(uids) == len(set(uids))  # OHIF merges groups that share a tracking UID
    # No by-reference item anywhere: OHIF's content-tree view reads every concept name.
    for item in _walk(ds):
        assert "ReferencedContentItemIdentifier" not in item
        assert len(item.ConceptNameCodeSequence) == 1


# -- read back -----------------------------------------------------------------------------------


def test_image_groups_read_back(study_results: Factory) -> None:
    results = study_results(scores=SCORES, drop=DROP_MLO)
    ds = pydicom.dcmread(io.BytesIO(encode(tid1500.from_study(results))))
    prov = results.provenance
    assert len(_groups(ds)) == len(results.analyzed) == 2
    for image in results.analyzed:
        score = image.score
        group = _group(ds, f"{score.laterality} {score.view} BR-GAN")
        uid = _child(group, "112040").UID
        assert uid == results.uid("tid1500_sr", score.sop_instance_uid) != ds.SOPInstanceUID
        [num] = _children(group, "111047")
        assert _value(num) == _percent(score.p_malignant)
        assert _laterality(group) == {"L": "7771000", "R": "24028007"}[score.laterality]
        assert _child(group, "363698007").ConceptCodeSequence[0].CodeValue == "76752008"
        # TID 4019 algorithm identification, model version and sha256 as parameters.
        assert _child(group, "111001").TextValue == f"BR-GAN {prov.model_name}"
        assert _child(group, "111003").TextValue == prov.model_version
        parameters = [p.TextValue for p in _children(group, "111002")]
        assert f"model version {prov.model_version}" in parameters
        assert f"model sha256 {prov.sha256}" in parameters
        [region] = _children(group, "111030")
        assert region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == (
            score.sop_instance_uid
        )
        points = np.array(region.GraphicData, dtype=np.float64).reshape(-1, 2)
        if score.positive:
            assert region.GraphicType == "POLYLINE"
            np.testing.assert_allclose(points, np.array(score.region), atol=1e-4)
        else:
            assert region.GraphicType == "POINT"
            np.testing.assert_allclose(points, np.array([score.peak]), atol=1e-4)
    # Both kinds occur: L CC (91.2 %) is above the threshold, R CC (12.3 %) below.
    assert _children(_group(ds, "L CC BR-GAN"), "111030")[0].GraphicType == "POLYLINE"
    assert _children(_group(ds, "R CC BR-GAN"), "111030")[0].GraphicType == "POINT"


def test_breast_and_exam_probabilities_read_back(study_results: Factory) -> None:
    results = study_results(scores=SCORES)
    ds = tid1500.from_study(results)
    maxima = {_laterality(num): num for _, num in _qualitative_nums(ds) if _is_maximum(num)}
    codes = {"L": "7771000", "R": "24028007", None: "51440002"}
    assert set(maxima) == set(codes.values())
    for side, code in codes.items():
        value = results.exam if side is None else results.breasts[side]
        assert value is not None
        num = maxima[code]
        assert _value(num) == _percent(value)
        sources = {a.score.sop_instance_uid for a in results.analyzed}
        if side is not None:
            sources = {
                a.score.sop_instance_uid for a in results.analyzed if a.score.laterality == side
            }
        assert set(_image_refs(num)) == sources
    assert _value(maxima["7771000"]) == _percent(0.912345)  # max of L CC, L MLO
    assert _value(maxima["24028007"]) == _percent(0.2)  # max of R CC, R MLO
    summary = _child(_child(ds, "C0034375"), "121111").TextValue
    assert "Exam probability of cancer 91.2 %" in summary
    assert ds.CompletionFlag == "COMPLETE" and "CompletionFlagDescription" not in ds


def test_each_not_analyzed_image_appears_with_its_reason(study_results: Factory) -> None:
    results = study_results(scores=SCORES, drop=DROP_MLO)
    assert len(results.not_analyzed) == 2
    ds = tid1500.from_study(results)
    assert ds.CompletionFlag == "PARTIAL"
    assert ds.CompletionFlagDescription == "2 of 4 images not analyzed by BR-GAN"
    empty = [(s, n) for s, n in _qualitative_nums(ds) if not _is_maximum(n)]
    assert len(empty) == len(results.not_analyzed)
    for item in results.not_analyzed:
        [(sentence, num)] = [(s, n) for s, n in empty if item.sop_instance_uid in _image_refs(n)]
        assert item.reason in sentence and f"{item.laterality} {item.view}" in sentence
        assert _code(num) == "111047"
        assert len(num.MeasuredValueSequence) == 0
        assert num.NumericValueQualifierCodeSequence[0].CodeValue == "114007"
        assert _laterality(num) == {"L": "7771000", "R": "24028007"}[item.laterality]
    # The MLO images are not drawn: no group points at them.
    assert len(_groups(ds)) == 2


def test_not_analyzed_without_image_header_is_named_in_text_only(
    study_results: Factory, tmp_path: Path
) -> None:
    """An image whose header is gone, a UID only, and a non-image (our own earlier SR, which the
    plan reports too): each named with its reason, none referenced as an IMAGE."""
    results = study_results(drop=DROP_MLO)
    own = save(tid1500.from_study(results), tmp_path / "own.dcm")
    own_uid = pydicom.dcmread(own).SOPInstanceUID
    gone = dataclasses.replace(results.not_analyzed[0], path=None)
    paths = {k: v for k, v in results.source_paths.items() if k != gone.sop_instance_uid}
    extra = (
        NotAnalyzed("1.2.3.4.5", "not an image"),
        NotAnalyzed(own_uid, "our own result object (loop guard)", str(own)),
    )
    results = dataclasses.replace(
        results, not_analyzed=(gone, *results.not_analyzed[1:], *extra), source_paths=paths
    )
    ds = tid1500.from_study(results)
    sentences = [s for s, n in _qualitative_nums(ds) if not _is_maximum(n)]
    assert len(sentences) == 4
    assert any(gone.sop_instance_uid in s and gone.reason in s for s in sentences)
    assert any("1.2.3.4.5" in s and "not an image" in s for s in sentences)
    assert any(own_uid in s and "loop guard" in s for s in sentences)
    assert sorted(_evidence(ds)) == sorted(
        [a.score.sop_instance_uid for a in results.analyzed]
        + [results.not_analyzed[1].sop_instance_uid]
    )
    assert ds.CompletionFlagDescription == "4 of 6 images not analyzed by BR-GAN"
    assert dciodvfy_errors(save(ds, tmp_path / "sr.dcm")) == []


def test_nothing_analyzed_says_so_image_by_image(study_results: Factory) -> None:
    results = study_results(drop=DROP_ALL)
    assert not results.analyzed and len(results.not_analyzed) == 4
    ds = tid1500.from_study(results)
    assert _groups(ds) == []
    nums = _qualitative_nums(ds)
    assert len(nums) == 4 + 3  # each image, both breasts, the exam
    for _, num in nums:
        assert len(num.MeasuredValueSequence) == 0
        assert num.NumericValueQualifierCodeSequence[0].CodeValue == "114007"
    refs = {uid for _, num in nums for uid in _image_refs(num)}
    assert refs == {n.sop_instance_uid for n in results.not_analyzed}
    summary = _child(_child(ds, "C0034375"), "121111").TextValue
    assert summary.startswith("No image of this study was analyzed")
    assert ds.CompletionFlag == "PARTIAL"
    assert tid1500.from_study(results, not_analyzed_sr=False) is None
    # The switch only matters when nothing was analyzed.
    assert tid1500.from_study(study_results(drop=DROP_MLO), not_analyzed_sr=False) is not None


def test_without_threshold_every_region_is_a_point(study_results: Factory) -> None:
    results = study_results(scores=SCORES, prov=provenance(threshold=None))
    ds = tid1500.from_study(results)
    for image in results.analyzed:
        group = _group(ds, f"{image.score.laterality} {image.score.view} BR-GAN")
        [region] = _children(group, "111030")
        assert region.GraphicType == "POINT"
        np.testing.assert_allclose(list(region.GraphicData), image.score.peak, atol=1e-4)
    summary = _child(_child(ds, "C0034375"), "121111").TextValue
    assert "no calibrated threshold" in summary


def test_labels_present(study_results: Factory) -> None:
    results = study_results()
    labels = results.provenance.labels
    assert len(labels) == 2
    ds = tid1500.from_study(results)
    root_texts = [
        i.TextValue
        for i in ds.ContentSequence
        if i.ValueType == "TEXT" and i.RelationshipType == "CONTAINS"
    ]
    assert root_texts == list(labels)  # near the root, before the Image Library
    summary = _child(_child(ds, "C0034375"), "121111").TextValue
    for label in labels:
        assert label in summary
        assert label.split(" - ")[0] in ds.SeriesDescription
    assert len(ds.SeriesDescription) <= 64

    clinical = dataclasses.replace(
        results.provenance, research_only=False, synthetic_training=False
    )
    plain = tid1500.from_study(dataclasses.replace(results, provenance=clinical))
    texts = [i.TextValue for i in _walk(plain) if i.ValueType == "TEXT"]
    assert not any("RESEARCH" in t or "DEMO" in t for t in texts)
    assert plain.SeriesDescription == tid1500.SERIES_DESCRIPTION


def test_document_attributes(study_results: Factory) -> None:
    results = study_results(drop=DROP_MLO)
    ds = tid1500.from_study(results)
    source = results.source(results.analyzed[0].score.sop_instance_uid)
    assert ds.StudyInstanceUID == source.StudyInstanceUID == results.study_uid
    for keyword in common.PATIENT_STUDY_TYPE2:
        assert ds.get(keyword) == source.get(keyword), keyword
    assert ds.SOPInstanceUID == results.uid("tid1500_sr")
    assert ds.SeriesInstanceUID == results.uid("tid1500_sr", series=True)
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID
    assert ds.SeriesNumber == SERIES_NUMBERS["tid1500_sr"]
    prov = results.provenance
    assert ds.Manufacturer == prov.manufacturer
    assert ds.ManufacturerModelName == prov.manufacturer_model_name
    assert ds.DeviceUID == prov.device_uid
    assert ds.ContentDate == "20251124" and ds.ContentTime == "160000"
    purposes = [
        e.PurposeOfReferenceCodeSequence[0].CodeValue for e in ds.ContributingEquipmentSequence
    ]
    assert purposes[-1] == "Newcode1" and "109102" in purposes[:-1]  # after highdicom's own
    assert ds.VerificationFlag == "UNVERIFIED"


def test_source_without_library_attributes_still_written(
    study_results: Factory, tmp_path: Path
) -> None:
    """A real (de-identified) MG may lack PatientOrientation, ImagerPixelSpacing, StudyID and
    AccessionNumber: highdicom would raise on each; the report keeps the image anyway."""
    results = study_results(drop=DROP_MLO)
    uid = results.analyzed[0].score.sop_instance_uid
    path = results.source_paths[uid]
    header = pydicom.dcmread(path)
    for keyword in ("PatientOrientation", "ImagerPixelSpacing", "StudyID", "AccessionNumber"):
        del header[keyword]
    header.save_as(path)
    results = dataclasses.replace(results)  # a fresh header cache
    ds = tid1500.from_study(results)
    assert uid in _evidence(ds)
    assert ds.StudyID == "" and ds.AccessionNumber == ""
    assert dciodvfy_errors(save(ds, tmp_path / "sr.dcm")) == []


# -- determinism and superseding -----------------------------------------------------------------


def test_deterministic(study_results: Factory) -> None:
    results = study_results(scores=SCORES, drop=DROP_MLO)
    first = encode(tid1500.from_study(results))
    time.sleep(1.1)  # anything taken from the clock would now differ
    again = encode(tid1500.from_study(dataclasses.replace(results)))
    assert first == again


def test_previous_versions_become_predecessors(study_results: Factory) -> None:
    results = study_results(scores=SCORES)
    old = tid1500.from_study(results)
    assert "PredecessorDocumentsSequence" not in old
    task = dataclasses.replace(results.task, study_version=2)
    new = tid1500.from_study(dataclasses.replace(results, task=task), previous=[old])
    assert new.SOPInstanceUID != old.SOPInstanceUID
    [study] = new.PredecessorDocumentsSequence
    assert study.StudyInstanceUID == old.StudyInstanceUID
    [series] = study.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == old.SeriesInstanceUID
    [ref] = series.ReferencedSOPSequence
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (
        COMPREHENSIVE_SR,
        old.SOPInstanceUID,
    )
