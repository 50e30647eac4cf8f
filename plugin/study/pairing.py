"""Plan a study: classify every instance, keep the latest of each view, pair each view with the
same view of the other breast (DESIGN.md steps 3–4).

:func:`plan_study` is pure and deterministic: the same set of instances (in any order, with any
duplicates of a SOPInstanceUID) gives the same :class:`StudyPlan`. Every instance that is not the
target of a pair is in ``not_analyzed`` with its reason — nothing is silently dropped.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from plugin.study.classify import DEFAULT_OWN_MANUFACTURER, Classification, classify
from plugin.study.header import InstanceHeader
from plugin.study.views import STANDARD_VIEWS, VIEWS

__all__ = ["Pair", "StudyPlan", "plan_study"]

_SIDES = ("L", "R")
_OTHER_SIDE = {"L": "R", "R": "L"}
_VIEW_ORDER = {v.name: i for i, v in enumerate(VIEWS)}

REASON_PATIENT_ID = "outside intended use: PatientID differs from the rest of the study"
REASON_PATIENT_ID_TIE = "outside intended use: PatientID differs within the study (no majority)"


#: ``Pair.contralateral_uid`` of a target scored without a contralateral (only planned when the
#: model's card allows it: :func:`plan_study`'s ``score_unpaired``).
NO_CONTRALATERAL = ""


@dataclass(frozen=True, slots=True)
class Pair:
    """One image to score (``target_uid``) with its reference image of the other breast
    (:data:`NO_CONTRALATERAL` when there is none and the model may score it alone)."""

    target_uid: str
    contralateral_uid: str
    laterality: str
    view: str

    def to_json(self) -> dict[str, str]:
        return {
            "target_uid": self.target_uid,
            "contralateral_uid": self.contralateral_uid,
            "laterality": self.laterality,
            "view": self.view,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pair:
        return cls(
            target_uid=str(data["target_uid"]),
            contralateral_uid=str(data["contralateral_uid"]),
            laterality=str(data["laterality"]),
            view=str(data["view"]),
        )


@dataclass(frozen=True)
class StudyPlan:
    """What to analyze in one study.

    ``pairs``: one per usable image that has a contralateral (both directions: L-CC→R-CC and
    R-CC→L-CC), ordered by view then laterality. ``not_analyzed``: SOPInstanceUID → reason for
    every other instance. ``classifications``: SOPInstanceUID → :class:`Classification` of every
    instance (for the index). ``complete``: L-CC, R-CC, L-MLO and R-MLO are all present and usable.
    """

    study_uid: str
    pairs: tuple[Pair, ...]
    not_analyzed: dict[str, str]
    complete: bool
    classifications: dict[str, Classification] = field(default_factory=dict)
    #: Planned for a model that may score an image without a contralateral (kept, so that a
    #: late SR re-planned after a model switch is compared with the same rule).
    score_unpaired: bool = False

    def pairs_key(self) -> str:
        """A stable SHA-256 of the pairs (order-independent): equal keys mean the same pairs."""
        lines = sorted(
            f"{p.target_uid}|{p.contralateral_uid}|{p.laterality}|{p.view}" for p in self.pairs
        )
        return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()

    @property
    def target_uids(self) -> tuple[str, ...]:
        return tuple(p.target_uid for p in self.pairs)

    def to_json(self) -> dict[str, Any]:
        return {
            "study_uid": self.study_uid,
            "pairs": [p.to_json() for p in self.pairs],
            "not_analyzed": dict(self.not_analyzed),
            "complete": self.complete,
            "classifications": {k: c.to_json() for k, c in self.classifications.items()},
            "pairs_key": self.pairs_key(),
            "score_unpaired": self.score_unpaired,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudyPlan:
        return cls(
            study_uid=str(data["study_uid"]),
            pairs=tuple(Pair.from_json(p) for p in data.get("pairs", ())),
            not_analyzed={str(k): str(v) for k, v in data.get("not_analyzed", {}).items()},
            complete=bool(data.get("complete")),
            score_unpaired=bool(data.get("score_unpaired", False)),
            classifications={
                str(k): Classification.from_json(v)
                for k, v in data.get("classifications", {}).items()
            },
        )


def _canonical(header: InstanceHeader) -> str:
    return json.dumps(header.to_json(), sort_keys=True)


def _dedupe(instances: Sequence[InstanceHeader]) -> list[InstanceHeader]:
    """One header per SOPInstanceUID, order-independent (identical duplicates collapse; for
    differing headers with one UID the canonically largest JSON is kept), sorted by UID."""
    chosen: dict[str, tuple[str, InstanceHeader]] = {}
    for header in instances:
        key = _canonical(header)
        prev = chosen.get(header.sop_instance_uid)
        if prev is None or key > prev[0]:
            chosen[header.sop_instance_uid] = (key, header)
    return [chosen[uid][1] for uid in sorted(chosen)]


def _recency(header: InstanceHeader) -> tuple[str, int, int, str]:
    """Sort key of "later acquisition": acquisition date-time (absent = earliest), then series
    and instance number, then the UID so ties are still decided the same way every time."""
    return (
        header.acquisition_datetime or "",
        header.series_number if header.series_number is not None else -1,
        header.instance_number if header.instance_number is not None else -1,
        header.sop_instance_uid,
    )


def _patient_exclusions(headers: list[InstanceHeader]) -> dict[str, str]:
    """UID → reason for images whose PatientID hash differs from the study's majority.

    Only instances that are images of the study count in the vote (not our own objects or SRs);
    a missing PatientID is a value of its own. With a tie for the majority, every image of the
    tied (and minority) patients is excluded: the study cannot be attributed safely."""
    counts = Counter(h.patient_id_hash for h in headers)
    if len(counts) <= 1:
        return {}
    ranked = counts.most_common()
    top_count = ranked[0][1]
    leaders = [pid for pid, n in ranked if n == top_count]
    if len(leaders) > 1:
        return {h.sop_instance_uid: REASON_PATIENT_ID_TIE for h in headers}
    majority = leaders[0]
    return {h.sop_instance_uid: REASON_PATIENT_ID for h in headers if h.patient_id_hash != majority}


def plan_study(
    instances: Sequence[InstanceHeader],
    *,
    own_manufacturer: str = DEFAULT_OWN_MANUFACTURER,
    own_device_uid: str | None = None,
    score_unpaired: bool = False,
) -> StudyPlan:
    """Classify, deduplicate and pair the instances of one study.

    A usable image without a contralateral view is *not analyzed: no contralateral view*, or,
    with ``score_unpaired`` (the active model's card says it was evaluated without one,
    ``brgan_core.card.may_score_without_contralateral``), a pair with
    :data:`NO_CONTRALATERAL` that the worker scores alone.

    Raises ``ValueError`` when the instances belong to more than one StudyInstanceUID (group by
    study first) or when there are none.
    """
    headers = _dedupe(instances)
    if not headers:
        raise ValueError("plan_study needs at least one instance of the study")
    studies = {h.study_uid for h in headers}
    if len(studies) > 1:
        raise ValueError(
            f"plan_study got instances of {len(studies)} studies; group them by "
            "StudyInstanceUID and plan each study separately"
        )
    classifications = {
        h.sop_instance_uid: classify(
            h, own_manufacturer=own_manufacturer, own_device_uid=own_device_uid
        )
        for h in headers
    }
    not_analyzed: dict[str, str] = {
        uid: c.reason or "not usable" for uid, c in classifications.items() if not c.usable
    }

    # Patient identity: vote among the images that are otherwise mammograms of this study
    # (usable, or excluded only for an image-level reason), never among our own objects or SRs.
    voters = [
        h
        for h in headers
        if classifications[h.sop_instance_uid].usable
        or not _is_non_image_reason(classifications[h.sop_instance_uid].reason)
    ]
    for uid, reason in _patient_exclusions(voters).items():
        if uid not in not_analyzed:
            not_analyzed[uid] = reason

    # Latest acquisition of each (laterality, view) wins.
    groups: dict[tuple[str, str], list[InstanceHeader]] = {}
    for h in headers:
        c = classifications[h.sop_instance_uid]
        if h.sop_instance_uid in not_analyzed or c.laterality is None or c.view is None:
            continue
        groups.setdefault((c.laterality, c.view), []).append(h)
    winners: dict[tuple[str, str], str] = {}
    for (side, view), members in groups.items():
        members.sort(key=_recency)
        winner = members[-1]
        winners[(side, view)] = winner.sop_instance_uid
        for loser in members[:-1]:
            not_analyzed[loser.sop_instance_uid] = (
                "superseded by a later acquisition of the same view "
                f"({side} {view}: {winner.sop_instance_uid})"
            )

    pairs: list[Pair] = []
    for (side, view), uid in sorted(
        winners.items(), key=lambda kv: (_VIEW_ORDER.get(kv[0][1], 99), kv[0][1], kv[0][0])
    ):
        other = winners.get((_OTHER_SIDE[side], view))
        if other is None and score_unpaired:
            pairs.append(Pair(uid, NO_CONTRALATERAL, side, view))
        elif other is None:
            not_analyzed[uid] = f"no contralateral view (no {_OTHER_SIDE[side]} {view})"
        else:
            pairs.append(Pair(uid, other, side, view))

    complete = all((side, view) in winners for side in _SIDES for view in STANDARD_VIEWS)
    return StudyPlan(
        study_uid=headers[0].study_uid,
        pairs=tuple(pairs),
        not_analyzed=dict(sorted(not_analyzed.items())),
        complete=complete,
        classifications=classifications,
        score_unpaired=score_unpaired,
    )


def _is_non_image_reason(reason: str | None) -> bool:
    """Reasons of objects that are not the patient's mammograms (they do not vote on PatientID)."""
    if reason is None:
        return False
    return reason.startswith(
        ("our own result object", "not an image", "not a mammogram", "not a digital mammogram")
    )
