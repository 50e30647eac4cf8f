"""The TID 1500 Imaging Measurement Report: what OHIF and Orthanc Stone draw (issue 9 §2).

A Comprehensive SR (PS3.3 A.35.3; SR Document General and Content modules, C.17.2, C.17.3) in the
source study, in its own series, built with highdicom and patched where highdicom cannot say what
we need (``docs/results.md`` explains every choice):

* root (126000, DCM) "Imaging Measurement Report", template DCMR 1500 (PS3.16 TID 1500), device
  observer (TID 1001/1004), Image Library (TID 1600/1602/1603) of every referenced image;
* (126010) "Imaging Measurements": one TID 1410 planar-ROI group per analyzed image — tracking
  identifier (text and UID), finding site Breast with laterality, algorithm identification
  (TID 4019: name, version, model version and sha256 as parameters), Probability of cancer
  (111047, DCM) in UCUM ``%`` rounded to :data:`PRECISION` decimals, and the image region: a
  POLYLINE around the CAM region at or above the calibrated threshold, otherwise a POINT at the
  CAM peak. Only these groups live in 126010, because OHIF 3.13.2 throws on a group without an
  image region. The region's SELECTED FROM IMAGE is renamed (111040, DCM) "Original Source" for
  Stone (highdicom ≥ 0.24 writes (260753009, SCT) "Source");
* (C0034375, UMLS) "Qualitative Evaluations" (TID 1500 rows 12-14): one TEXT sentence per breast,
  for the exam, and per image not analyzed, each backed by a TID 300 NUM (111047) by
  HAS PROPERTIES — breast and exam with Derivation "Maximum" and INFERRED FROM their images, a
  not-analyzed image with an empty Measured Value Sequence and the qualifier (114007, DCM)
  "Measurement not attempted" (PS3.3 C.18.1), CompletionFlag PARTIAL;
* the labels of :attr:`Provenance.labels` as TEXT items near the root and in SeriesDescription.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
import pydicom
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.uid import ComprehensiveSRStorage

from plugin.errors import PluginError
from plugin.queue.contract import ImageScore, NotAnalyzed, Provenance
from plugin.results import common
from plugin.results.inputs import SERIES_NUMBERS, AnalyzedImage, StudyResults

KIND = "tid1500_sr"
SOP_CLASS_UID = ComprehensiveSRStorage
#: Decimals of the written percentage (91.0 %); finer digits would claim a precision the model
#: does not have.
PRECISION = 1
#: SeriesDescription is LO (at most 64 characters).
SERIES_DESCRIPTION = "BR-GAN measurements"

CONTAINS = hd.sr.RelationshipTypeValues.CONTAINS
HAS_PROPERTIES = hd.sr.RelationshipTypeValues.HAS_PROPERTIES
HAS_CONCEPT_MOD = hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD
HAS_ACQ_CONTEXT = hd.sr.RelationshipTypeValues.HAS_ACQ_CONTEXT

LANGUAGE = CodedConcept("en-US", "RFC5646", "English (United States)")
ORIGINAL_SOURCE = CodedConcept("111040", "DCM", "Original Source")
QUALITATIVE_EVALUATIONS = CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")
NOT_ATTEMPTED = CodedConcept("114007", "DCM", "Measurement not attempted")
#: pydicom's meaning carries "(qualifier value)"; PS3.16 CID 244 writes "Right and left".
RIGHT_AND_LEFT = CodedConcept("51440002", "SCT", "Right and left")
SIDES = {"L": codes.SCT.Left, "R": codes.SCT.Right}
SIDE_WORDS = {"L": "Left", "R": "Right"}


class Tid1500Error(PluginError, ValueError):
    """The study results cannot be written as a TID 1500 report (the message says why)."""


def from_study(
    results: StudyResults,
    *,
    previous: Sequence[Dataset] = (),
    not_analyzed_sr: bool = True,
) -> Dataset | None:
    """The TID 1500 Comprehensive SR of one study version.

    ``previous`` are the SRs this one replaces (PredecessorDocumentsSequence). A study where
    nothing was analyzed still gets an SR saying so image by image, unless ``not_analyzed_sr`` is
    False: then None.
    """
    if not results.analyzed and not not_analyzed_sr:
        return None
    prov = results.provenance
    headers = _headers(results)
    evidence = [_evidence_view(h) for h in headers.values()]
    if not evidence:
        raise Tid1500Error(
            f"study {results.study_uid}: no readable source image to reference; "
            "check the spool paths of the task"
        )
    algorithm = _algorithm(prov)
    # Most suspicious first: OHIF 3.13.2 opens an SR on its first group, and its arrows cannot
    # step to a group on another MG image (docs/results.md, "Viewers").
    ordered = sorted(
        results.analyzed, key=lambda a: (-a.score.p_malignant, a.score.laterality, a.score.view)
    )
    groups = [
        _image_group(results, a, headers[a.score.sop_instance_uid], algorithm) for a in ordered
    ]

    root = hd.sr.ContainerContentItem(name=codes.DCM.ImagingMeasurementReport, template_id="1500")
    root.ContentSequence = hd.sr.ContentSequence()
    root.ContentSequence.extend(hd.sr.LanguageOfContentItemAndDescendants(LANGUAGE))
    root.ContentSequence.extend(_observation_context(prov))
    root.ContentSequence.append(
        hd.sr.CodeContentItem(
            name=codes.DCM.ProcedureReported,
            value=codes.SCT.Mammography,
            relationship_type=HAS_CONCEPT_MOD,
        )
    )
    for label in prov.labels:
        root.ContentSequence.append(
            hd.sr.TextContentItem(codes.DCM.Comment, label, relationship_type=CONTAINS)
        )
    root.ContentSequence.append(_image_library(results, headers))
    measurements = hd.sr.ContainerContentItem(
        name=codes.DCM.ImagingMeasurements, relationship_type=CONTAINS
    )
    if groups:
        measurements.ContentSequence = hd.sr.ContentSequence()
        for group in groups:
            measurements.ContentSequence.extend(group)
    root.ContentSequence.append(measurements)

    complete = not results.not_analyzed
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence,
        content=root,
        series_instance_uid=results.uid(KIND, series=True),
        series_number=SERIES_NUMBERS[KIND],
        sop_instance_uid=results.uid(KIND),
        instance_number=1,
        manufacturer=prov.manufacturer,
        manufacturer_model_name=prov.manufacturer_model_name,
        software_versions=prov.software_version,
        series_description=_series_description(prov),
        is_complete=complete,
        previous_versions=list(previous) or None,
    )
    # After construction: highdicom rejects an empty Measured Value Sequence (RESULTS.md §1).
    sr.ContentSequence.append(_qualitative_evaluations(results, headers))
    if not complete:
        count = len(results.not_analyzed)
        total = count + len(results.analyzed)
        sr.CompletionFlagDescription = f"{count} of {total} images not analyzed by BR-GAN"
    _rename_region_sources(sr)
    _separate(sr)
    common.copy_patient_study(next(iter(headers.values())), sr)
    common.set_equipment(sr, prov)
    # highdicom stamps its own Processing Equipment item with the clock: use the content time.
    for equipment in sr.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in equipment:
            equipment.ContributionDateTime = results.content_datetime.strftime("%Y%m%d%H%M%S")
    common.add_contributing_equipment(sr, prov)
    common.set_content_time(sr, results)
    return sr


# -- the parts ----------------------------------------------------------------------------------


def _headers(results: StudyResults) -> dict[str, Dataset]:
    """Headers of every image the report references, analyzed first, in result order."""
    out: dict[str, Dataset] = {}
    for image in results.analyzed:
        out[image.score.sop_instance_uid] = results.source(image.score.sop_instance_uid)
    for item in results.not_analyzed:
        header = _not_analyzed_header(results, item)
        if header is not None:
            out.setdefault(item.sop_instance_uid, header)
    return out


def _not_analyzed_header(results: StudyResults, item: NotAnalyzed) -> Dataset | None:
    """The header of an image not analyzed, or None when it cannot be read or is no image (an
    SR, a KOS: the plan reports those too; they are named in text, never referenced as IMAGE)."""
    header: Dataset | None = None
    try:
        header = results.source(item.sop_instance_uid)
    except (KeyError, OSError, InvalidDicomError):
        if item.path is not None:
            try:
                header = pydicom.dcmread(item.path, stop_before_pixels=True)
            except (OSError, InvalidDicomError):
                header = None
    if header is None or not all(k in header for k in ("SOPClassUID", "Rows", "Columns")):
        return None
    return header


def _evidence_view(header: Dataset) -> Dataset:
    """``header`` as highdicom's SR constructor needs it: it reads Type 2 patient/study
    attributes directly (``AttributeError`` on de-identified files), so fill the absent ones
    empty on a copy; :func:`common.copy_patient_study` writes the same values afterwards."""
    view = Dataset()
    view.update(header)
    for keyword in common.PATIENT_STUDY_TYPE2:
        if keyword not in view:
            setattr(view, keyword, "")
    return view


def _algorithm(prov: Provenance) -> hd.sr.AlgorithmIdentification:
    """TID 4019 Algorithm Identification: model version and checkpoint sha256 as parameters."""
    threshold = "none" if prov.threshold is None else f"{100 * prov.threshold:.{PRECISION}f} %"
    return hd.sr.AlgorithmIdentification(
        name=f"{prov.manufacturer_model_name} {prov.model_name}",
        version=prov.model_version,
        parameters=[
            f"model version {prov.model_version}",
            f"model sha256 {prov.sha256}",
            f"threshold {threshold}",
            f"contralateral image used at inference: {'yes' if prov.uses_contralateral else 'no'}",
            f"software version {prov.software_version}",
        ],
        manufacturer=prov.manufacturer,
    )


def _observation_context(prov: Provenance) -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=prov.device_uid,
        name=prov.manufacturer_model_name,
        manufacturer_name=prov.manufacturer,
        model_name=f"{prov.model_name} {prov.model_version}",
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(codes.DCM.Device, device)
    )


def _finding_site(laterality: str | None) -> hd.sr.FindingSite:
    side = SIDES.get(laterality or "")
    return hd.sr.FindingSite(codes.SCT.Breast, laterality=side)


def _percent(probability: float) -> float:
    """The written value: the probability in percent at :data:`PRECISION` decimals."""
    return round(100.0 * probability, PRECISION)


def _region(score: ImageScore, header: Dataset) -> hd.sr.ImageRegion:
    """POLYLINE around the CAM region when the image is called positive, else a POINT at the
    CAM peak (also when no threshold is calibrated: no outline without a positive call). A CAM
    that is zero everywhere has no peak: the point is then the image centre."""
    source = hd.sr.SourceImageForRegion(header.SOPClassUID, header.SOPInstanceUID)
    if score.positive and score.region:
        return hd.sr.ImageRegion(
            hd.sr.GraphicTypeValues.POLYLINE, np.array(score.region, dtype=np.float64), source
        )
    if score.peak is not None:
        point = score.peak
    else:
        point = (float(header.Columns) / 2.0, float(header.Rows) / 2.0)
    return hd.sr.ImageRegion(
        hd.sr.GraphicTypeValues.POINT, np.array([point], dtype=np.float64), source
    )


def _image_name(laterality: str | None, view: str | None) -> str:
    return " ".join(part for part in (laterality, view) if part) or "image"


def _image_group(
    results: StudyResults,
    image: AnalyzedImage,
    header: Dataset,
    algorithm: hd.sr.AlgorithmIdentification,
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    """TID 1410 group of one analyzed image; its tracking UID derives from (study, version,
    model, image), so it differs from the SR's own UID and is the same on every redelivery."""
    score = image.score
    probability = hd.sr.Measurement(
        name=codes.DCM.ProbabilityOfCancer,
        value=_percent(score.p_malignant),
        unit=codes.UCUM.Percent,
    )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=results.uid(KIND, score.sop_instance_uid),
            identifier=f"{_image_name(score.laterality, score.view)} BR-GAN",
        ),
        referenced_region=_region(score, header),
        finding_sites=[_finding_site(score.laterality)],
        algorithm_id=algorithm,
        measurements=[probability],
    )


# -- Image Library (TID 1600) -------------------------------------------------------------------

#: (Modality) codes of the library entries (PS3.16 CID 29); others fall back to the raw value.
MODALITY_CODES = {"MG": codes.DCM.Mammography}


def _image_library(
    results: StudyResults, headers: dict[str, Dataset]
) -> hd.sr.ContainerContentItem:
    """TID 1600 Image Library: every referenced image, grouped by SOP class and frame of
    reference (126200 "Image Library Group", as highdicom groups and OHIF reads them)."""
    sides = {n.sop_instance_uid: n.laterality for n in results.not_analyzed}
    sides.update({a.score.sop_instance_uid: a.score.laterality for a in results.analyzed})
    library = hd.sr.ContainerContentItem(name=codes.DCM.ImageLibrary, relationship_type=CONTAINS)
    library.ContentSequence = hd.sr.ContentSequence()
    grouped: dict[tuple[str, str], list[hd.sr.ImageContentItem]] = {}
    for uid, header in headers.items():
        key = (str(header.SOPClassUID), str(header.get("FrameOfReferenceUID", "")))
        grouped.setdefault(key, []).append(_library_entry(header, sides.get(uid)))
    for (_, frame_of_reference), entries in grouped.items():
        group = hd.sr.ContainerContentItem(
            name=codes.DCM.ImageLibraryGroup, relationship_type=CONTAINS
        )
        group.ContentSequence = hd.sr.ContentSequence()
        if frame_of_reference:
            group.ContentSequence.append(
                hd.sr.UIDRefContentItem(
                    codes.DCM.FrameOfReferenceUID, frame_of_reference, HAS_ACQ_CONTEXT
                )
            )
        group.ContentSequence.extend(entries)
        library.ContentSequence.append(group)
    return library


def _library_entry(header: Dataset, laterality: str | None) -> hd.sr.ImageContentItem:
    """One IMAGE entry with its TID 1602/1603 descriptors plus Image Laterality and Image View
    (highdicom writes neither). highdicom's descriptors need PatientOrientation and
    ImagerPixelSpacing on MG and raise without them: such an image keeps its modality only."""
    entry = hd.sr.ImageContentItem(
        name=CodedConcept("260753009", "SCT", "Source"),
        referenced_sop_class_uid=header.SOPClassUID,
        referenced_sop_instance_uid=header.SOPInstanceUID,
        relationship_type=CONTAINS,
    )
    entry.ContentSequence = hd.sr.ContentSequence()
    try:
        entry.ContentSequence.extend(hd.sr.ImageLibraryEntryDescriptors(header))
    except (AttributeError, IndexError, KeyError, ValueError):
        modality = str(header.get("Modality", "MG"))
        code = MODALITY_CODES.get(modality, CodedConcept(modality, "DCM", modality))
        entry.ContentSequence.append(
            hd.sr.CodeContentItem(codes.DCM.Modality, code, HAS_ACQ_CONTEXT)
        )
    side = SIDES.get(laterality or "")
    if side is not None:
        entry.ContentSequence.append(
            hd.sr.CodeContentItem(codes.DCM.ImageLaterality, side, HAS_ACQ_CONTEXT)
        )
    views = header.get("ViewCodeSequence") or []
    if views and all(k in views[0] for k in ("CodeValue", "CodingSchemeDesignator")):
        view = CodedConcept(
            views[0].CodeValue, views[0].CodingSchemeDesignator, views[0].get("CodeMeaning", "")
        )
        entry.ContentSequence.append(
            hd.sr.CodeContentItem(codes.DCM.ImageView, view, HAS_ACQ_CONTEXT)
        )
    return entry


# -- Qualitative Evaluations (TID 1500 rows 12-14) ----------------------------------------------


def _qualitative_evaluations(
    results: StudyResults, headers: dict[str, Dataset]
) -> hd.sr.ContainerContentItem:
    """What a viewer must not draw but a reader must see: the summary, the exam and breast
    probabilities, every image not analyzed with its reason, and how the regions were made."""
    container = hd.sr.ContainerContentItem(name=QUALITATIVE_EVALUATIONS, relationship_type=CONTAINS)
    container.ContentSequence = hd.sr.ContentSequence()
    container.ContentSequence.append(
        hd.sr.TextContentItem(codes.DCM.Summary, _summary(results), relationship_type=CONTAINS)
    )
    container.ContentSequence.append(_derived(results, None, headers))
    for side in ("L", "R"):
        container.ContentSequence.append(_derived(results, side, headers))
    for item in results.not_analyzed:
        container.ContentSequence.append(_not_analyzed(item, headers.get(item.sop_instance_uid)))
    container.ContentSequence.append(
        hd.sr.TextContentItem(codes.DCM.Comment, _method(results), relationship_type=CONTAINS)
    )
    return container


def _threshold_phrase(prov: Provenance, positive: bool | None) -> str:
    if prov.threshold is None or positive is None:
        return "no calibrated threshold"
    relation = "at or above" if positive else "below"
    return f"{relation} the threshold {100 * prov.threshold:.{PRECISION}f} %"


def _images_of(results: StudyResults, side: str | None) -> list[AnalyzedImage]:
    return [a for a in results.analyzed if side is None or a.score.laterality == side]


def _derived(
    results: StudyResults, side: str | None, headers: dict[str, Dataset]
) -> hd.sr.TextContentItem:
    """A breast's (``side``) or the exam's (None) probability: a sentence, and under it the
    TID 300 NUM (Derivation "Maximum", INFERRED FROM the images it is the maximum of); an empty
    NUM "Measurement not attempted" when no image of it was analyzed."""
    prov = results.provenance
    value = results.exam if side is None else results.breasts.get(side)
    images = _images_of(results, side)
    where = "Exam" if side is None else f"{SIDE_WORDS[side]} breast"
    if value is None:
        text = f"{where}: not scored, no image of it was analyzed"
    else:
        positive = None if prov.threshold is None else any(a.score.positive for a in images)
        parts = ", ".join(
            f"{_image_name(a.score.laterality, a.score.view)} "
            f"{_percent(a.score.p_malignant):.{PRECISION}f} %"
            for a in images
        )
        text = (
            f"{where}: probability of cancer {_percent(value):.{PRECISION}f} %, the maximum of "
            f"{parts} ({_threshold_phrase(prov, positive)})"
        )
    sentence = hd.sr.TextContentItem(codes.DCM.Comment, text, relationship_type=CONTAINS)
    measurement = hd.sr.Measurement(
        name=codes.DCM.ProbabilityOfCancer,
        value=0.0 if value is None else _percent(value),
        unit=codes.UCUM.Percent,
        derivation=codes.SCT.Maximum,
        finding_sites=[
            hd.sr.FindingSite(codes.SCT.Breast, laterality=RIGHT_AND_LEFT)
            if side is None
            else _finding_site(side)
        ],
        referenced_images=[
            hd.sr.SourceImageForMeasurement(
                headers[a.score.sop_instance_uid].SOPClassUID, a.score.sop_instance_uid
            )
            for a in images
        ]
        or None,
    )
    num = measurement[0]
    if value is None:
        _not_attempted(num)
    num.RelationshipType = HAS_PROPERTIES.value
    sentence.ContentSequence = hd.sr.ContentSequence([num])
    return sentence


def _not_analyzed(item: NotAnalyzed, header: Dataset | None) -> hd.sr.TextContentItem:
    """One image not analyzed: the reason as a sentence, and under it the empty NUM with the
    qualifier "Measurement not attempted", INFERRED FROM the image when its header is known."""
    name = _image_name(item.laterality, item.view)
    text = f"{name} not analyzed: {item.reason} (SOP Instance UID {item.sop_instance_uid})"
    sentence = hd.sr.TextContentItem(codes.DCM.Comment, text, relationship_type=CONTAINS)
    measurement = hd.sr.Measurement(
        name=codes.DCM.ProbabilityOfCancer,
        value=0.0,
        unit=codes.UCUM.Percent,
        finding_sites=[_finding_site(item.laterality)],
        referenced_images=None
        if header is None
        else [hd.sr.SourceImageForMeasurement(header.SOPClassUID, header.SOPInstanceUID)],
    )
    num = measurement[0]
    _not_attempted(num)
    num.RelationshipType = HAS_PROPERTIES.value
    sentence.ContentSequence = hd.sr.ContentSequence([num])
    return sentence


def _not_attempted(num: Dataset) -> None:
    """PS3.3 C.18.1: no value (Measured Value Sequence Type 2, empty) and why (CID 42)."""
    num.MeasuredValueSequence = DicomSequence([])
    num.NumericValueQualifierCodeSequence = DicomSequence([NOT_ATTEMPTED])


def _summary(results: StudyResults) -> str:
    prov = results.provenance
    parts: list[str] = []
    if results.exam is None:
        parts.append("No image of this study was analyzed by BR-GAN: no result.")
    else:
        positive = (
            None if prov.threshold is None else any(a.score.positive for a in results.analyzed)
        )
        breasts = ", ".join(
            f"{SIDE_WORDS[s].lower()} breast "
            + ("not scored" if v is None else f"{_percent(v):.{PRECISION}f} %")
            for s, v in sorted(results.breasts.items())
            if s in SIDE_WORDS
        )
        parts.append(
            f"Exam probability of cancer {_percent(results.exam):.{PRECISION}f} % "
            f"({_threshold_phrase(prov, positive)}); {breasts}."
        )
        analyzed = ", ".join(
            f"{_image_name(a.score.laterality, a.score.view)} "
            f"{_percent(a.score.p_malignant):.{PRECISION}f} %"
            for a in results.analyzed
        )
        parts.append(f"Analyzed: {analyzed}.")
        cautions = "; ".join(
            f"{_image_name(a.score.laterality, a.score.view)} {w}"
            for a in results.analyzed
            for w in a.score.warnings
        )
        if cautions:
            parts.append(f"Caution: {cautions}.")
    if results.not_analyzed:
        missing = "; ".join(
            f"{_image_name(n.laterality, n.view)} ({n.reason})" for n in results.not_analyzed
        )
        parts.append(f"Not analyzed: {missing}.")
    parts.append(f"Model: {common.model_line(prov)}.")
    parts.extend(f"{label}." for label in prov.labels)
    return " ".join(parts)


def _method(results: StudyResults) -> str:
    prov = results.provenance
    outline = (
        "Every region is a point at the heatmap peak: no calibrated threshold, no outline."
        if prov.threshold is None
        else "Regions: an outline around the heatmap area of at least 50 % of its peak where "
        "the probability is at or above the threshold, otherwise a point at the heatmap peak."
    )
    return (
        f"{outline} Probabilities are in percent, rounded to {10.0**-PRECISION:g} %. "
        "Breast = maximum of its analyzed images; exam = maximum of the breasts."
    )


# -- patches and attributes ---------------------------------------------------------------------


def _rename_region_sources(sr: Dataset) -> None:
    """SELECTED FROM IMAGE of each region → (111040, DCM) "Original Source" (Stone reads only
    that; highdicom ≥ 0.24 writes (260753009, SCT) "Source"; both are in PS3.16 CID 7003's
    neighbourhood and dciodvfy accepts either)."""
    for item in sr.ContentSequence:
        if _code(item) != "126010":
            continue
        for group in item.get("ContentSequence", []):
            for child in group.get("ContentSequence", []):
                if child.ValueType != "SCOORD" or _code(child) != "111030":
                    continue
                for source in child.get("ContentSequence", []):
                    if source.RelationshipType == "SELECTED FROM" and source.ValueType == "IMAGE":
                        source.ConceptNameCodeSequence = DicomSequence([ORIGINAL_SOURCE])


def _separate(item: Dataset) -> None:
    """Every CONTAINER's children are separate statements, not one running text (PS3.3
    C.17.3.2.3): highdicom writes CONTINUOUS, which makes text renderers (dsr2html) drop the
    concept names of the children."""
    if item.get("ValueType") == "CONTAINER":
        item.ContinuityOfContent = "SEPARATE"
    for child in item.get("ContentSequence", []):
        _separate(child)


def _code(item: Dataset) -> str | None:
    names = item.get("ConceptNameCodeSequence") or []
    return str(names[0].CodeValue) if names else None


def _series_description(prov: Provenance) -> str:
    """ "BR-GAN measurements | FOR RESEARCH USE ONLY | DEMO MODEL" (each label's head, LO 64)."""
    parts = [SERIES_DESCRIPTION, *(label.split(" - ")[0] for label in prov.labels)]
    return " | ".join(parts)[:64]
