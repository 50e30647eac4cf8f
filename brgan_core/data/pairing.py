"""Pair each image with its contralateral view (DESIGN.md, data flow step 4).

Every reader hands its :class:`ImageRecord`s to :func:`pair_images`, so all datasets pair,
drop and count the same way:

* each image is a *target*; its *contralateral* is the same view code of the other breast of
  the same patient and the same study. Images whose ``study_uid`` is empty (the dataset does
  not say) are paired within the patient among the other images without a study;
* view codes are compared after upper-casing and never crossed (CC↔CC, MLO↔MLO, ML↔ML,
  XCCL↔XCCL);
* a record that repeats a path already seen is dropped as ``"duplicate image"``;
* several distinct images of one breast and view (e.g. a repeated exposure) all stay targets;
  each is paired with the *first* image of the other side in the order
  ``(sop_instance_uid, path)``, so the result does not depend on the input order;
* an image with no contralateral is dropped and counted as ``"no contralateral view"``
  (:data:`NO_CONTRALATERAL`), never silently lost.

Pairs come out sorted by ``(patient_id, study_uid, view, laterality, sop_instance_uid, path)``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from brgan_core.data.records import ImageRecord, PairRecord, ReadReport

NO_CONTRALATERAL = "no contralateral view"
DUPLICATE_IMAGE = "duplicate image"

_OTHER_SIDE = {"L": "R", "R": "L"}


def _order(record: ImageRecord) -> tuple[str, str]:
    return (record.sop_instance_uid, str(record.path))


def pair_images(records: Iterable[ImageRecord], report: ReadReport | None = None) -> ReadReport:
    """Pair ``records`` and return the report with the pairs and the drop counts.

    When ``report`` is given (a reader that already counted its own drops), pairs and drops
    are added to it and ``report.images`` is left to the caller; otherwise a new report is made
    with ``images`` set to the number of records.
    """
    records = list(records)
    if report is None:
        report = ReadReport(images=len(records))

    seen_paths: set[str] = set()
    slots: dict[tuple[str, str, str, str], list[ImageRecord]] = defaultdict(list)
    for record in records:
        key_path = str(record.path)
        if key_path in seen_paths:
            report.drop(DUPLICATE_IMAGE)
            continue
        seen_paths.add(key_path)
        slot = (record.patient_id, record.study_uid, record.view.upper(), record.laterality)
        slots[slot].append(record)

    for members in slots.values():
        members.sort(key=_order)

    pairs: list[PairRecord] = []
    for (patient, study, view, side), members in slots.items():
        others = slots.get((patient, study, view, _OTHER_SIDE[side]))
        if not others:
            report.drop(NO_CONTRALATERAL, len(members))
            continue
        pairs.extend(PairRecord(target=m, contralateral=others[0]) for m in members)

    pairs.sort(
        key=lambda p: (
            p.target.patient_id,
            p.target.study_uid,
            p.target.view.upper(),
            p.target.laterality,
            *_order(p.target),
        )
    )
    report.pairs.extend(pairs)
    return report
