"""readiness() and needs_new_version(): pure functions of times and plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from plugin.study.assembly import NotReady, Ready, needs_new_version, readiness
from plugin.study.pairing import plan_study
from tests.plugin.study.conftest import make_header


def test_complete_study_ready_after_grace() -> None:
    assert readiness(110.0, 90.0, 100.0, True, 10, 60) == Ready("complete", 10.0)
    state = readiness(105.0, 90.0, 100.0, True, 10, 60)
    assert state == NotReady(retry_after_s=5.0, quiet_s=5.0)


def test_incomplete_study_waits_for_stable_age() -> None:
    assert isinstance(readiness(150.0, 90.0, 100.0, False, 10, 60), NotReady)
    assert readiness(150.0, 90.0, 100.0, False, 10, 60).retry_after_s == 10.0
    assert readiness(160.0, 90.0, 100.0, False, 10, 60) == Ready("stable", 60.0)


def test_complete_study_is_also_ready_by_stable_age() -> None:
    assert readiness(200.0, 0.0, 100.0, True, 120, 60) == Ready("stable", 100.0)


def test_zero_timeouts_ready_at_once() -> None:
    assert readiness(100.0, 100.0, 100.0, True, 0, 0) == Ready("complete", 0.0)
    assert readiness(100.0, 100.0, 100.0, False, 0, 0) == Ready("stable", 0.0)
    assert readiness(100.0, 100.0, 100.0, False, 0, 60) == NotReady(60.0, 0.0)


def test_clock_going_backwards_counts_as_not_quiet() -> None:
    assert readiness(95.0, 90.0, 100.0, True, 10, 60) == NotReady(10.0, 0.0)


def test_datetimes_accepted() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    state = readiness(t0 + timedelta(seconds=11), t0, t0 + timedelta(seconds=1), True, 10, 60)
    assert state == Ready("complete", 10.0)


def test_bad_inputs() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(TypeError):
        readiness(t0, 0.0, 0.0, True, 10, 60)
    with pytest.raises(ValueError):
        readiness(10.0, 5.0, 1.0, True, 10, 60)
    with pytest.raises(ValueError):
        readiness(10.0, 0.0, 1.0, True, -1, 60)


def _views(*specs: tuple[str, str, str]) -> list:
    return [make_header(side, view, sop_uid=uid) for side, view, uid in specs]


def test_needs_new_version_only_when_pairs_change() -> None:
    base = _views(("L", "CC", "lcc"), ("R", "CC", "rcc"), ("L", "MLO", "lmlo"))
    first = plan_study(base)
    assert needs_new_version(None, first)
    key = first.pairs_key()
    # An SR, a spot view or the same instance again: recorded only.
    sr = make_header(None, None, sop_uid="sr", SOPClassUID="1.2.840.10008.5.1.4.1.1.88.22")
    spot = make_header("R", "MLO", sop_uid="spot", modifiers=(("399055006", "SCT"),))
    assert not needs_new_version(key, plan_study([*base, sr, spot, base[0]]))
    # The missing contralateral arrives: new pairs, new version.
    late = make_header("R", "MLO", sop_uid="rmlo")
    assert needs_new_version(key, plan_study([*base, late]))
