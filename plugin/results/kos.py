"""IOCM rejection note: a Key Object Selection Document that hides superseded results.

When a new results version replaces an old one, the old heatmap and summary SCs (and SEG, which
have no Predecessor Documents Sequence like the SRs) would keep showing beside the new ones. IHE
IOCM's answer is a Key Object Selection Document (1.2.840.10008.5.1.4.1.1.88.59, TID 2010) with
the document title (113001, DCM, "Rejected for Quality Reasons") that references every rejected
instance, grouped by series in the Current Requested Procedure Evidence Sequence; an IOCM-aware
archive or viewer then hides them (RESULTS.md §5). Built with highdicom's
``KeyObjectSelectionDocument``; the device observer is our device (TID 1004).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import UID

from plugin.results import render
from plugin.results.common import (
    add_contributing_equipment,
    copy_patient_study,
    set_content_time,
    set_equipment,
)
from plugin.results.inputs import KINDS, SERIES_NUMBERS, StudyResults

KIND = "kos"
KOS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
#: SOP classes referenced as IMAGE content items (the rest as COMPOSITE): ours and any
#: "... Image Storage" class.
IMAGE_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image
        "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    }
)

#: A superseded object: its dataset (header is enough), a
#: :class:`plugin.queue.contract.ResultFile` (anything with ``sop_class_uid``,
#: ``sop_instance_uid`` and ``series_instance_uid``), or (SOP Class, SOP Instance, Series UID).
Superseded = Any


def is_image_class(sop_class_uid: str) -> bool:
    return sop_class_uid in IMAGE_SOP_CLASSES or "Image Storage" in (UID(sop_class_uid).name or "")


def _reference(results: StudyResults, header: Dataset, item: Superseded) -> Dataset:
    """A minimal stand-in of one rejected object for highdicom: patient/study of the study,
    its SOP Class, Instance and Series UIDs, and Rows/Columns when it is an image (highdicom
    then writes an IMAGE item, else COMPOSITE)."""
    if isinstance(item, Dataset):
        study = item.get("StudyInstanceUID", results.study_uid)
        if study != results.study_uid:
            raise ValueError(
                f"superseded object {item.SOPInstanceUID} is in study {study}, not "
                f"{results.study_uid}: a rejection note covers one study"
            )
        sop_class, sop_instance = str(item.SOPClassUID), str(item.SOPInstanceUID)
        series = str(item.SeriesInstanceUID)
        image = "Rows" in item or is_image_class(sop_class)
    else:
        if all(
            hasattr(item, name)
            for name in ("sop_class_uid", "sop_instance_uid", "series_instance_uid")
        ):
            item = (item.sop_class_uid, item.sop_instance_uid, item.series_instance_uid)
        if (
            not isinstance(item, tuple | list)
            or len(item) != 3
            or not all(isinstance(v, str) and v for v in item)
        ):
            raise ValueError(
                f"superseded object {item!r}: expected (sop_class_uid, sop_instance_uid, "
                "series_uid)"
            )
        sop_class, sop_instance, series = item
        image = is_image_class(sop_class)
    ref = Dataset()
    copy_patient_study(header, ref)
    ref.SeriesInstanceUID = series
    ref.SOPClassUID = sop_class
    ref.SOPInstanceUID = sop_instance
    if image:
        ref.Rows = ref.Columns = 1
    return ref


def rejection_for(results: StudyResults, superseded: Sequence[Superseded]) -> Dataset:
    """The IOCM rejection note for ``superseded`` (one study's earlier result objects).

    References are de-duplicated and sorted (series, instance), so the same set gives the same
    bytes whatever its order. The note's UIDs derive from this results version
    (``results.uid("kos")``), its dates from the queue time.

    Raises:
        ValueError: nothing to reject, an object of another study, a malformed reference, or
            an object of this very results version (rejecting what this version writes).
    """
    import highdicom as hd

    if not superseded:
        raise ValueError("a rejection note needs at least one superseded object")
    prov = results.provenance
    header = results.any_source()
    refs: dict[str, Dataset] = {}
    for item in superseded:
        ref = _reference(results, header, item)
        refs.setdefault(ref.SOPInstanceUID, ref)
    own = {results.uid(kind) for kind in KINDS}
    own |= {results.uid(kind, a.score.sop_instance_uid) for kind in KINDS for a in results.analyzed}
    clash = sorted(own & set(refs))
    if clash:
        raise ValueError(f"cannot reject objects of the results version writing the note: {clash}")
    ordered = sorted(refs.values(), key=lambda d: (d.SeriesInstanceUID, d.SOPInstanceUID))

    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=prov.device_uid,
            name=f"{prov.manufacturer_model_name} {prov.model_name}"[:64],
            manufacturer_name=prov.manufacturer,
            model_name=prov.manufacturer_model_name,
        ),
    )
    content = hd.ko.KeyObjectSelection(
        document_title=codes.DCM.RejectedForQualityReasons,
        referenced_objects=ordered,
        observer_device_context=observer,
        description=(
            f"Superseded by {prov.manufacturer_model_name} results version "
            f"{results.task.study_version} (model {prov.model_version})"
        ),
    )
    when = results.content_datetime
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    kos = hd.ko.KeyObjectSelectionDocument(
        evidence=ordered,
        content=content,
        series_instance_uid=results.uid(KIND, series=True),
        series_number=SERIES_NUMBERS[KIND],
        sop_instance_uid=results.uid(KIND),
        instance_number=1,
        manufacturer=prov.manufacturer,
        content_date=date,
        content_time=time,
        series_date=date,
        series_time=time,
        series_description=render.series_description(
            f"{prov.manufacturer_model_name} rejected results", prov
        ),
    )
    copy_patient_study(header, kos)
    if "SpecificCharacterSet" in header:
        kos.SpecificCharacterSet = header.SpecificCharacterSet
    set_equipment(kos, prov)
    set_content_time(kos, results)
    add_contributing_equipment(kos, prov)
    render.pin_contribution_times(kos, results)
    return kos
