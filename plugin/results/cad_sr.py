"""Mammography CAD SR (SOP Class 1.2.840.10008.5.1.4.1.1.88.50, TID 4000), on pydicom items.

No Python library writes this object (RESULTS.md §3), so it is built here from the content item
builders of :mod:`plugin.results.sr_items`, one function per sub-template:

* :func:`image_library_entry` — TID 4020 CAD Image Library Entry (laterality, view and its
  modifiers, patient orientation, study and content date/time, pixel spacing: each row only
  where the image has the attribute);
* :func:`processing_summary` — TID 4000's CAD Processing and Findings Summary (CID 6047),
  inferred from one :func:`individual_impression` (TID 4003) per analyzed image, each holding
  one :func:`single_image_finding` (TID 4006: probability of cancer, rendering intent) with
  its :func:`geometry` (TID 4021: Outline and/or Center, selected from the Image Library entry);
* :func:`detections_summary` — Summary of Detections (CID 6042) inferred from TID 4015
  Successful / Failed Detections, each a :func:`detection_performed` (TID 4017) with
  :func:`algorithm_identification` (TID 4019); every image not analyzed is one failed
  detection with its reason;
* :func:`analyses_summary` — Summary of Analyses: Not Attempted (we run no TID 4016 analyses).

Rendering intent: "Presentation Required" for an image at or above the model's threshold,
"Presentation Optional" below it (and for every image when the model has no threshold).
"With findings" in the summary means at least one Presentation Required finding.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceOf
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.sr.coding import Code
from pydicom.uid import ExplicitVRLittleEndian

from plugin.queue.contract import ImageScore, NotAnalyzed, Provenance
from plugin.results import sr_items as sr
from plugin.results.common import (
    add_contributing_equipment,
    copy_patient_study,
    label_text,
    set_content_time,
    set_equipment,
)
from plugin.results.inputs import SERIES_NUMBERS, StudyResults

MAMMOGRAPHY_CAD_SR = "1.2.840.10008.5.1.4.1.1.88.50"
KIND = "cad_sr"
#: Decimal places of the written Probability of cancer (percent).
PERCENT_DECIMALS = 2


def _dcm(value: str, meaning: str) -> Code:
    return Code(value, "DCM", meaning)


# Concept names (DCM meanings written out: pydicom's 111034 meaning has a zero-width space).
MAMMOGRAPHY_CAD_REPORT = _dcm("111036", "Mammography CAD Report")
LANGUAGE = _dcm("121049", "Language of Content Item and Descendants")
ENGLISH = Code("en-US", "RFC5646", "English (United States)")
IMAGE_LIBRARY = _dcm("111028", "Image Library")
IMAGE_LATERALITY = _dcm("111027", "Image Laterality")
IMAGE_VIEW = _dcm("111031", "Image View")
IMAGE_VIEW_MODIFIER = _dcm("111032", "Image View Modifier")
PATIENT_ORIENTATION_ROW = _dcm("111044", "Patient Orientation Row")
PATIENT_ORIENTATION_COLUMN = _dcm("111043", "Patient Orientation Column")
STUDY_DATE = _dcm("111060", "Study Date")
STUDY_TIME = _dcm("111061", "Study Time")
CONTENT_DATE = _dcm("111018", "Content Date")
CONTENT_TIME = _dcm("111019", "Content Time")
HORIZONTAL_PIXEL_SPACING = _dcm("111026", "Horizontal Pixel Spacing")
VERTICAL_PIXEL_SPACING = _dcm("111066", "Vertical Pixel Spacing")
CAD_PROCESSING_SUMMARY = _dcm("111017", "CAD Processing and Findings Summary")
INDIVIDUAL_IMPRESSION = _dcm("111034", "Individual Impression/Recommendation")
RENDERING_INTENT = _dcm("111056", "Rendering Intent")
SINGLE_IMAGE_FINDING = _dcm("111059", "Single Image Finding")
SELECTED_REGION_DESCRIPTION = _dcm("111058", "Selected Region Description")
PROBABILITY_OF_CANCER = _dcm("111047", "Probability of cancer")
CENTER = _dcm("111010", "Center")
OUTLINE = _dcm("111041", "Outline")
SUMMARY_OF_DETECTIONS = _dcm("111064", "Summary of Detections")
SUMMARY_OF_ANALYSES = _dcm("111065", "Summary of Analyses")
SUCCESSFUL_DETECTIONS = _dcm("111063", "Successful Detections")
FAILED_DETECTIONS = _dcm("111025", "Failed Detections")
DETECTION_PERFORMED = _dcm("111022", "Detection Performed")
ALGORITHM_NAME = _dcm("111001", "Algorithm Name")
ALGORITHM_VERSION = _dcm("111003", "Algorithm Version")
ALGORITHM_PARAMETERS = _dcm("111002", "Algorithm Parameters")
COMMENT = _dcm("121106", "Comment")

# Values.
#: CID 6014: what BR-GAN reports is a region of its activation map, not a typed lesion (mass,
#: calcification), so the finding is a "Selected region" described in text.
SELECTED_REGION = _dcm("111099", "Selected region")
PRESENTATION_REQUIRED = _dcm(
    "111150", "Presentation Required: Rendering device is expected to present"
)
PRESENTATION_OPTIONAL = _dcm("111151", "Presentation Optional: Rendering device may present")
#: CID 6047.
ALL_SUCCEEDED_WITHOUT = _dcm("111241", "All algorithms succeeded; without findings")
ALL_SUCCEEDED_WITH = _dcm("111242", "All algorithms succeeded; with findings")
NOT_ALL_SUCCEEDED_WITHOUT = _dcm("111243", "Not all algorithms succeeded; without findings")
NOT_ALL_SUCCEEDED_WITH = _dcm("111244", "Not all algorithms succeeded; with findings")
NONE_SUCCEEDED = _dcm("111245", "No algorithms succeeded; without findings")
#: CID 6042.
SUCCEEDED = _dcm("111222", "Succeeded")
PARTIALLY_SUCCEEDED = _dcm("111223", "Partially Succeeded")
FAILED = _dcm("111224", "Failed")
NOT_ATTEMPTED = _dcm("111225", "Not Attempted")
#: CID 6022 Side.
SIDES = {"R": Code("24028007", "SCT", "Right"), "L": Code("7771000", "SCT", "Left")}

#: Positions (1-based) of the root's children, for by-reference relationships into the library.
_LIBRARY_POSITION = 2


# -- small helpers -------------------------------------------------------------------------------


def percent_text(p: float) -> str:
    """A probability in [0, 1] as the written percent (DS)."""
    return f"{100.0 * p:.{PERCENT_DECIMALS}f}"


def _ds_text(value: object) -> str:
    """A DS value as written in the image, without float re-formatting."""
    return str(value).strip()


def _code_of(item: Dataset) -> Code:
    return Code(str(item.CodeValue), str(item.CodingSchemeDesignator), str(item.CodeMeaning))


def _label_lines(provenance: Provenance) -> str:
    text = label_text(provenance)
    return f" {text}." if text else ""


def series_description(provenance: Provenance) -> str:
    """Series Description (LO, 64 characters): the labels' leading words when all do not fit."""
    base = f"{provenance.manufacturer_model_name} Mammography CAD SR"
    full = " - ".join([base, *provenance.labels])
    if len(full) <= 64:
        return full
    short = " - ".join([base, *(label.split(" - ")[0] for label in provenance.labels)])
    return short[:64]


class _Library:
    """The images of the Image Library, in order, and each one's content item position."""

    def __init__(self) -> None:
        self.headers: list[Dataset] = []
        self._index: dict[str, int] = {}

    def add(self, header: Dataset) -> None:
        uid = str(header.SOPInstanceUID)
        if uid not in self._index:
            self._index[uid] = len(self.headers)
            self.headers.append(header)

    def __contains__(self, uid: str) -> bool:
        return uid in self._index

    def position(self, uid: str) -> list[int]:
        """ReferencedContentItemIdentifier of the image's library entry."""
        return [1, _LIBRARY_POSITION, self._index[uid] + 1]


def _header(results: StudyResults, uid: str, path: str | None = None) -> Dataset | None:
    try:
        return results.source(uid)
    except (KeyError, OSError):
        pass
    if path is None:
        return None
    try:
        return pydicom.dcmread(Path(path), stop_before_pixels=True)
    except (OSError, InvalidDicomError):
        return None


def _library(results: StudyResults) -> _Library:
    library = _Library()
    for image in results.analyzed:
        library.add(results.source(image.score.sop_instance_uid))
    if results.provenance.uses_contralateral:
        for image in results.analyzed:
            if image.score.contralateral_uid is None:  # scored alone: nothing to reference
                continue
            header = _header(results, image.score.contralateral_uid)
            if header is not None:
                library.add(header)
    for item in results.not_analyzed:
        header = _header(results, item.sop_instance_uid, item.path)
        if header is not None:
            library.add(header)
    return library


# -- TID 4020 CAD Image Library Entry ------------------------------------------------------------


def image_library_entry(header: Dataset) -> Dataset:
    """IMAGE with HAS ACQ CONTEXT rows for each attribute the image has (TID 4020)."""
    entry = sr.image(str(header.SOPClassUID), str(header.SOPInstanceUID), sr.CONTAINS)
    context: list[Dataset] = []
    side = str(header.get("ImageLaterality", "") or "")
    if side in SIDES:
        context.append(sr.code(IMAGE_LATERALITY, SIDES[side], sr.HAS_ACQ_CONTEXT))
    views = header.get("ViewCodeSequence") or []
    if views:
        view = sr.code(IMAGE_VIEW, _code_of(views[0]), sr.HAS_ACQ_CONTEXT)
        for modifier in views[0].get("ViewModifierCodeSequence") or []:
            sr.add(view, sr.code(IMAGE_VIEW_MODIFIER, _code_of(modifier), sr.HAS_CONCEPT_MOD))
        context.append(view)
    orientation = list(header.get("PatientOrientation") or [])
    if len(orientation) == 2:
        context.append(sr.text(PATIENT_ORIENTATION_ROW, str(orientation[0]), sr.HAS_ACQ_CONTEXT))
        context.append(sr.text(PATIENT_ORIENTATION_COLUMN, str(orientation[1]), sr.HAS_ACQ_CONTEXT))
    for keyword, name, build in (
        ("StudyDate", STUDY_DATE, sr.date),
        ("StudyTime", STUDY_TIME, sr.time),
        ("ContentDate", CONTENT_DATE, sr.date),
        ("ContentTime", CONTENT_TIME, sr.time),
    ):
        value = header.get(keyword)
        if value:
            context.append(build(name, str(value), sr.HAS_ACQ_CONTEXT))
    spacing = header.get("PixelSpacing") or header.get("ImagerPixelSpacing")
    if spacing and len(spacing) == 2:
        # (row spacing, column spacing): the column spacing is the horizontal one.
        context.append(
            sr.num(
                HORIZONTAL_PIXEL_SPACING, _ds_text(spacing[1]), sr.MILLIMETER, sr.HAS_ACQ_CONTEXT
            )
        )
        context.append(
            sr.num(VERTICAL_PIXEL_SPACING, _ds_text(spacing[0]), sr.MILLIMETER, sr.HAS_ACQ_CONTEXT)
        )
    return sr.add(entry, *context) if context else entry


def image_library(library: _Library) -> Dataset:
    return sr.add(sr.container(IMAGE_LIBRARY), *(image_library_entry(h) for h in library.headers))


# -- TID 4019 Algorithm Identification -----------------------------------------------------------


def algorithm_identification(provenance: Provenance, *, parameters: bool = True) -> list[Dataset]:
    """Algorithm Name and Version, and unless ``parameters`` is false the Algorithm Parameters
    (model sha256, threshold, contralateral input, software, the labels)."""
    threshold = (
        "none" if provenance.threshold is None else f"{percent_text(provenance.threshold)} %"
    )
    values = [
        f"model sha256 {provenance.sha256}",
        f"threshold (probability of cancer) {threshold}",
        "uses the contralateral image: " + ("yes" if provenance.uses_contralateral else "no"),
        f"software {provenance.manufacturer} {provenance.software_version}",
        *provenance.labels,
    ]
    return [
        sr.text(
            ALGORITHM_NAME,
            f"{provenance.manufacturer_model_name} {provenance.model_name}",
            sr.HAS_CONCEPT_MOD,
        ),
        sr.text(ALGORITHM_VERSION, provenance.model_version, sr.HAS_CONCEPT_MOD),
        *(sr.text(ALGORITHM_PARAMETERS, v, sr.HAS_CONCEPT_MOD) for v in values if parameters),
    ]


# -- TID 4021 CAD Geometry -----------------------------------------------------------------------


def geometry(score: ImageScore, library_position: SequenceOf[int]) -> list[Dataset]:
    """Outline (POLYLINE of the CAM region) for a positive image, Center (POINT at the CAM peak)
    for every image with a peak; each SELECTED FROM the image's library entry."""
    items: list[Dataset] = []
    if score.positive and score.region:
        items.append(sr.scoord(OUTLINE, "POLYLINE", score.region, sr.HAS_PROPERTIES))
    if score.peak is not None:
        items.append(sr.scoord(CENTER, "POINT", [score.peak], sr.HAS_PROPERTIES))
    for item in items:
        sr.add(item, sr.by_reference(sr.SELECTED_FROM, library_position))
    return items


# -- TID 4006 Single Image Finding ---------------------------------------------------------------


def rendering_intent(score: ImageScore) -> Code:
    return PRESENTATION_REQUIRED if score.positive else PRESENTATION_OPTIONAL


def _region_description(score: ImageScore, provenance: Provenance) -> str:
    if score.positive and score.region:
        where = "Outline: the area where the activation map is at least 50 % of its peak"
    elif score.peak is not None:
        where = "Center: the peak of the activation map"
    else:
        where = "No region: the activation map is empty"
    verdict = {True: "at or above", False: "below", None: "no"}[score.positive]
    threshold = "" if score.positive is None else " the"
    return (
        f"{provenance.model_name} {provenance.model_version}, {score.laterality} {score.view}: "
        f"probability of cancer of the whole image, {verdict}{threshold} threshold. "
        f"{where}.{_cautions(score)}{_label_lines(provenance)}"
    )


def _cautions(score: ImageScore) -> str:
    """A warn-mode domain-shift guard's caution (docs/model.md), as sentences."""
    return "".join(f" Caution: {w}." for w in score.warnings)


def single_image_finding(
    score: ImageScore, provenance: Provenance, library_position: SequenceOf[int]
) -> Dataset:
    finding = sr.code(SINGLE_IMAGE_FINDING, SELECTED_REGION, sr.CONTAINS)
    sr.add(
        finding,
        sr.code(RENDERING_INTENT, rendering_intent(score), sr.HAS_CONCEPT_MOD),
        # The parameters once per Detection Performed, not in every finding.
        *algorithm_identification(provenance, parameters=False),
        sr.text(
            SELECTED_REGION_DESCRIPTION,
            _region_description(score, provenance),
            sr.HAS_PROPERTIES,
        ),
        sr.num(
            PROBABILITY_OF_CANCER,
            percent_text(score.p_malignant),
            sr.PERCENT,
            sr.HAS_PROPERTIES,
        ),
        *geometry(score, library_position),
    )
    return finding


# -- TID 4003 Individual Impression/Recommendation -----------------------------------------------


def individual_impression(
    score: ImageScore, provenance: Provenance, library_position: SequenceOf[int]
) -> Dataset:
    impression = sr.container(INDIVIDUAL_IMPRESSION, sr.INFERRED_FROM)
    return sr.add(
        impression,
        sr.code(RENDERING_INTENT, rendering_intent(score), sr.HAS_CONCEPT_MOD),
        single_image_finding(score, provenance, library_position),
    )


# -- TID 4000 CAD Processing and Findings Summary ------------------------------------------------


def summary_code(results: StudyResults) -> Code:
    """CID 6047 from what was analyzed and whether any finding is Presentation Required."""
    if not results.analyzed:
        return NONE_SUCCEEDED
    findings = any(a.score.positive for a in results.analyzed)
    if results.not_analyzed:
        return NOT_ALL_SUCCEEDED_WITH if findings else NOT_ALL_SUCCEEDED_WITHOUT
    return ALL_SUCCEEDED_WITH if findings else ALL_SUCCEEDED_WITHOUT


def processing_summary(results: StudyResults, library: _Library) -> Dataset:
    summary = sr.code(CAD_PROCESSING_SUMMARY, summary_code(results), sr.CONTAINS)
    impressions = [
        individual_impression(
            a.score, results.provenance, library.position(a.score.sop_instance_uid)
        )
        for a in results.analyzed
    ]
    return sr.add(summary, *impressions) if impressions else summary


# -- TID 4015 / 4017 Detections Performed --------------------------------------------------------


def detection_performed(
    provenance: Provenance, images: SequenceOf[SequenceOf[int]], comment: str | None = None
) -> Dataset:
    """Detection Performed (a Selected region) by our algorithm, on the library's ``images``."""
    detection = sr.code(DETECTION_PERFORMED, SELECTED_REGION, sr.CONTAINS)
    sr.add(detection, *algorithm_identification(provenance))
    if comment is not None:
        sr.add(detection, sr.text(COMMENT, comment, sr.HAS_PROPERTIES))
    return sr.add(detection, *(sr.by_reference(sr.HAS_PROPERTIES, p) for p in images))


def not_analyzed_comment(item: NotAnalyzed, in_library: bool) -> str:
    where = " ".join(v for v in (item.laterality, item.view) if v)
    image = where or "image"
    if not in_library:
        image = f"{image} (SOP Instance UID {item.sop_instance_uid})".strip()
    return f"Not analyzed: {image}: {item.reason}"


def detections_summary(results: StudyResults, library: _Library) -> Dataset:
    """Summary of Detections: Succeeded, Partially Succeeded (some images not analyzed) or
    Failed (none analyzed), inferred from the Successful and Failed Detections containers."""
    provenance = results.provenance
    if not results.not_analyzed:
        status = SUCCEEDED
    elif results.analyzed:
        status = PARTIALLY_SUCCEEDED
    else:
        status = FAILED
    summary = sr.code(SUMMARY_OF_DETECTIONS, status, sr.CONTAINS)
    if results.analyzed:
        analyzed = [library.position(a.score.sop_instance_uid) for a in results.analyzed]
        sr.add(
            summary,
            sr.add(
                sr.container(SUCCESSFUL_DETECTIONS, sr.INFERRED_FROM),
                detection_performed(provenance, analyzed),
            ),
        )
    if results.not_analyzed:
        failed = sr.container(FAILED_DETECTIONS, sr.INFERRED_FROM)
        for item in results.not_analyzed:
            known = item.sop_instance_uid in library
            images = [library.position(item.sop_instance_uid)] if known else []
            sr.add(
                failed,
                detection_performed(provenance, images, not_analyzed_comment(item, known)),
            )
        sr.add(summary, failed)
    return summary


def analyses_summary() -> Dataset:
    """Summary of Analyses: no TID 4016 analysis (breast composition, quality, ...) is run."""
    return sr.code(SUMMARY_OF_ANALYSES, NOT_ATTEMPTED, sr.CONTAINS)


# -- the document --------------------------------------------------------------------------------


def _hierarchical_references(study_uid: str, refs: SequenceOf[tuple[str, str, str]]) -> Dataset:
    """One study item of a Hierarchical SOP Instance Reference Macro (PS3.3 Table C.17-3):
    ``refs`` are (series UID, SOP Class UID, SOP Instance UID), in order of first appearance."""
    series: dict[str, list[Dataset]] = {}
    for series_uid, class_uid, instance_uid in refs:
        ref = Dataset()
        ref.ReferencedSOPClassUID = class_uid
        ref.ReferencedSOPInstanceUID = instance_uid
        series.setdefault(series_uid, []).append(ref)
    study = Dataset()
    study.StudyInstanceUID = study_uid
    items = []
    for series_uid, sops in series.items():
        item = Dataset()
        item.SeriesInstanceUID = series_uid
        item.ReferencedSOPSequence = Sequence(sops)
        items.append(item)
    study.ReferencedSeriesSequence = Sequence(items)
    return study


def _evidence(library: _Library) -> Sequence:
    studies: dict[str, list[tuple[str, str, str]]] = {}
    for h in library.headers:
        studies.setdefault(str(h.StudyInstanceUID), []).append(
            (str(h.SeriesInstanceUID), str(h.SOPClassUID), str(h.SOPInstanceUID))
        )
    return Sequence([_hierarchical_references(uid, refs) for uid, refs in studies.items()])


def _predecessors(previous: SequenceOf[Dataset]) -> Sequence:
    studies: dict[str, list[tuple[str, str, str]]] = {}
    seen: set[str] = set()
    for ds in previous:
        if str(ds.SOPInstanceUID) in seen:
            continue
        seen.add(str(ds.SOPInstanceUID))
        studies.setdefault(str(ds.StudyInstanceUID), []).append(
            (str(ds.SeriesInstanceUID), str(ds.SOPClassUID), str(ds.SOPInstanceUID))
        )
    return Sequence([_hierarchical_references(uid, refs) for uid, refs in studies.items()])


def completion_description(results: StudyResults) -> str:
    """CompletionFlagDescription (LO, 64 characters) of a PARTIAL document."""
    total = len(results.analyzed) + len(results.not_analyzed)
    return f"{len(results.not_analyzed)} of {total} images not analyzed (Failed Detections)"[:64]


def content_tree(results: StudyResults, library: _Library) -> list[Dataset]:
    """The root's Content Sequence (TID 4000); the Image Library must stay at position 2."""
    items = [
        sr.code(LANGUAGE, ENGLISH, sr.HAS_CONCEPT_MOD),
        image_library(library),
        processing_summary(results, library),
        detections_summary(results, library),
        analyses_summary(),
    ]
    assert items[_LIBRARY_POSITION - 1].ConceptNameCodeSequence[0].CodeValue == "111028"
    return items


def from_study(results: StudyResults, *, previous: SequenceOf[Dataset] = ()) -> Dataset:
    """The Mammography CAD SR of one study version; ``previous`` are the SRs it replaces."""
    provenance = results.provenance
    library = _library(results)
    if not library.headers:
        raise ValueError(f"study {results.study_uid}: no image to report on")
    ds = Dataset()
    ds.SpecificCharacterSet = library.headers[0].get("SpecificCharacterSet", "ISO_IR 100")
    ds.SOPClassUID = MAMMOGRAPHY_CAD_SR
    ds.SOPInstanceUID = results.uid(KIND)
    copy_patient_study(library.headers[0], ds)
    # SR Document Series.
    ds.Modality = "SR"
    ds.SeriesInstanceUID = results.uid(KIND, series=True)
    ds.SeriesNumber = SERIES_NUMBERS[KIND]
    ds.SeriesDescription = series_description(provenance)
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    # General Equipment, SR Document General.
    set_equipment(ds, provenance)
    add_contributing_equipment(ds, provenance)
    ds.InstanceNumber = 1
    set_content_time(ds, results)
    if results.not_analyzed:
        ds.CompletionFlag = "PARTIAL"
        ds.CompletionFlagDescription = completion_description(results)
    else:
        ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    if previous:
        ds.PredecessorDocumentsSequence = _predecessors(previous)
    ds.PerformedProcedureCodeSequence = Sequence()
    ds.CurrentRequestedProcedureEvidenceSequence = _evidence(library)
    # SR Document Content: the root.
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = sr.code_sequence(MAMMOGRAPHY_CAD_REPORT)
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "4000"
    ds.ContentTemplateSequence = Sequence([template])
    ds.ContentSequence = Sequence(content_tree(results, library))

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds
