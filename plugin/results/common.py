"""Attributes every result object shares (DESIGN.md step 7; RESULTS.md §5).

* patient and study attributes copied from the source (PS3.3 C.7.1.1 Patient, C.7.2.1 General
  Study), so the object lands in the same study and PatientID;
* our equipment identity (PS3.3 C.7.5.1 General Equipment): Manufacturer, ManufacturerModelName,
  SoftwareVersions, DeviceUID from :class:`plugin.queue.contract.Provenance`;
* an IHE AI Results Contributing Equipment item (AIR Rev 1.1 §6.5.3.1): purpose of reference
  (Newcode1, 99IHE, "Processing Algorithm") — no final DCM code exists (RESULTS.md §5);
* Content Date/Time from the study version's queue time, SeriesDate/Time likewise;
* the labels of :attr:`Provenance.labels` as text.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from plugin.queue.contract import Provenance
from plugin.results.inputs import StudyResults

#: PS3.3 C.7.1.1 / C.7.2.1 attributes copied from the source image (Type 2 ones written empty
#: when the source lacks them, so dciodvfy finds them present).
PATIENT_STUDY_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
PATIENT_STUDY_OPTIONAL = (
    "IssuerOfPatientID",
    "PatientAge",
    "StudyDescription",
    "OtherPatientIDsSequence",
    "IssuerOfAccessionNumberSequence",
)


def copy_patient_study(source: Dataset, target: Dataset) -> None:
    """Copy the patient and study identity of ``source`` into ``target`` (same study)."""
    target.StudyInstanceUID = source.StudyInstanceUID
    for keyword in PATIENT_STUDY_TYPE2:
        setattr(target, keyword, getattr(source, keyword, None) or "")
    for keyword in PATIENT_STUDY_OPTIONAL:
        if keyword in source:
            setattr(target, keyword, source[keyword].value)


def set_equipment(target: Dataset, provenance: Provenance) -> None:
    """Our identity as the equipment that made the object (also the loop-guard keys)."""
    target.Manufacturer = provenance.manufacturer
    target.ManufacturerModelName = provenance.manufacturer_model_name
    target.SoftwareVersions = [provenance.software_version, f"model {provenance.model_version}"]
    target.DeviceUID = provenance.device_uid


def air_contributing_equipment(provenance: Provenance) -> Dataset:
    """The IHE AIR Contributing Equipment item of the algorithm (a raw item: highdicom's
    ``ContributingEquipment`` refuses the 99IHE code)."""
    purpose = Dataset()
    purpose.CodeValue = "Newcode1"
    purpose.CodingSchemeDesignator = "99IHE"
    purpose.CodeMeaning = "Processing Algorithm"
    item = Dataset()
    item.PurposeOfReferenceCodeSequence = Sequence([purpose])
    item.Manufacturer = provenance.manufacturer
    item.ManufacturerModelName = f"{provenance.manufacturer_model_name} {provenance.model_name}"
    item.SoftwareVersions = [provenance.software_version, provenance.model_version]
    item.DeviceUID = provenance.device_uid
    return item


def add_contributing_equipment(target: Dataset, provenance: Provenance) -> None:
    """Append the AIR item to ``target``'s Contributing Equipment Sequence (0018,A001)."""
    existing = list(target.get("ContributingEquipmentSequence", []))
    existing.append(air_contributing_equipment(provenance))
    target.ContributingEquipmentSequence = Sequence(existing)


def set_content_time(target: Dataset, results: StudyResults) -> None:
    """Content, Series and Instance Creation Date/Time = when this study version was queued."""
    when = results.content_datetime
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    target.ContentDate = target.SeriesDate = target.InstanceCreationDate = date
    target.ContentTime = target.SeriesTime = target.InstanceCreationTime = time


def label_text(provenance: Provenance) -> str:
    """The labels as one line ("" for a cleared clinical model)."""
    return " | ".join(provenance.labels)


def model_line(provenance: Provenance) -> str:
    """What every human-readable output says about the model."""
    threshold = "none" if provenance.threshold is None else f"{100 * provenance.threshold:.1f} %"
    return (
        f"{provenance.manufacturer_model_name} {provenance.model_name} {provenance.model_version}"
        f" (sha256 {provenance.sha256[:12]}), threshold {threshold}"
    )
