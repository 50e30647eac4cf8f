"""When is a study ready, and does a late instance make a new version (DESIGN.md step 2)?

Pure functions of times and plans; the coordinator owns the clock and the index. Times are
seconds (``time.time()`` or ``time.monotonic()``, consistently) or aware/naive ``datetime``
objects (consistently); mixing the two raises ``TypeError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from plugin.study.pairing import StudyPlan

__all__ = ["NotReady", "Ready", "needs_new_version", "readiness"]

Instant = float | int | datetime


@dataclass(frozen=True, slots=True)
class Ready:
    """The study may be planned and queued now. ``why`` is ``"complete"`` (the four standard
    views arrived and ``complete_grace`` passed quietly) or ``"stable"`` (no instance for
    ``stable_age``)."""

    why: str
    quiet_s: float


@dataclass(frozen=True, slots=True)
class NotReady:
    """Not yet; ask again after ``retry_after_s`` seconds (unless another instance arrives)."""

    retry_after_s: float
    quiet_s: float


def _seconds(value: Instant, name: str) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be seconds (float) or a datetime, got {type(value).__name__}")
    return float(value)


def readiness(
    now: Instant,
    first_seen: Instant,
    last_seen: Instant,
    plan_complete: bool,
    complete_grace: float,
    stable_age: float,
) -> Ready | NotReady:
    """Ready when the plan is complete and nothing arrived for ``complete_grace`` seconds, or when
    nothing arrived for ``stable_age`` seconds (complete or not). Both may be 0 (ready at once).

    Association release is deliberately not an input: it is only a hint (a study may span
    several associations). A clock that went backwards (``now < last_seen``) counts as 0 s quiet.
    """
    kinds = {isinstance(v, datetime) for v in (now, first_seen, last_seen)}
    if len(kinds) > 1:
        raise TypeError("now, first_seen and last_seen must all be datetimes or all be seconds")
    if complete_grace < 0 or stable_age < 0:
        raise ValueError(
            f"complete_grace ({complete_grace}) and stable_age ({stable_age}) must be >= 0"
        )
    t_now = _seconds(now, "now")
    t_first = _seconds(first_seen, "first_seen")
    t_last = _seconds(last_seen, "last_seen")
    if t_last < t_first:
        raise ValueError("last_seen is before first_seen; pass the study's first and last arrival")
    quiet = max(0.0, t_now - t_last)
    if plan_complete and quiet >= complete_grace:
        return Ready("complete", quiet)
    if quiet >= stable_age:
        return Ready("stable", quiet)
    wait = stable_age - quiet
    if plan_complete:
        wait = min(wait, complete_grace - quiet)
    return NotReady(wait, quiet)


def needs_new_version(previous_pairs_key: str | None, plan: StudyPlan) -> bool:
    """Whether a study (re)planned after an instance arrived must be (re)analyzed.

    ``previous_pairs_key`` is :meth:`StudyPlan.pairs_key` of the version already queued or
    analyzed, or None when none was. A new version is needed only when the pairs changed (a new
    usable image, a later acquisition superseding a target, a contralateral that now exists);
    anything else (an SR, a spot view, a duplicate) is just recorded.
    """
    if previous_pairs_key is None:
        return True
    return plan.pairs_key() != previous_pairs_key
