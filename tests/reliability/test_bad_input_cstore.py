"""Issue 13 §2: a C-STORE fuzzer over a real association.

:func:`tests.reliability.fuzzing.run_cstore_campaign` sends seeded mutations of valid synthetic
mammograms (tags removed, wrong VRs and lengths, truncated and oversized pixel data, huge
Rows/Columns, odd transfer syntaxes, bogus UIDs, deep sequences, bad values, …; one kind per
mutated view of a four-view study) to the listener of ``tests/plugin/listener/conftest.py``,
many per association, and checks:

* the listener stays up: a C-ECHO answers after every association;
* every answer is one the status policy allows for that mutation (0xC001 for a bad SOP
  Instance / Study UID, 0xA701 over ``max_dataset_bytes``, 0xC000 for an unreadable header,
  0x0000 for the rest), never a pynetdicom "handler failed" or a lost association;
* a stored instance is in the index and its spool file holds exactly the bytes sent; a refused
  one is not indexed; nothing is written outside the spool, the index, the queue and the results
  folder (a listing of the data folder's parent before and after), no temp file is left;
* every stored instance ends with an outcome: a pair target, or not analyzed with a reason (the
  plan); for a sample of studies the whole chain runs — dispatcher, embedded queue, a Celery
  worker with the real ``brgan.analyze_study`` task and a tiny model — and each image ends
  analyzed or not analyzed with a reason, lossless re-encodings analyzed.

``BRGAN_FUZZ_ITERATIONS`` (default 1000 mutated instances), ``BRGAN_FUZZ_BATCH`` (50 per
association), ``BRGAN_FUZZ_SEED`` (13) and ``BRGAN_FUZZ_WORKER_STUDIES`` (26) change the run;
``bench/fuzz.py`` runs it longer. With ``BRGAN_FUZZ_REPORT`` set, the report (kind → tried,
statuses, outcomes) is written there as section ``cstore``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.reliability.fuzzing import (
    BAD_UID,
    KINDS,
    OK,
    REFUSED,
    TOO_LARGE,
    Campaign,
    env_int,
    run_cstore_campaign,
    update_report,
)

pytestmark = pytest.mark.integration  # a Celery worker (thread) on the embedded queue


def test_cstore_fuzzer_listener_stays_up_and_every_stored_instance_has_an_outcome(
    tmp_path: Path,
) -> None:
    cfg = Campaign(
        iterations=env_int("BRGAN_FUZZ_ITERATIONS", 1000),
        batch=env_int("BRGAN_FUZZ_BATCH", 50),
        seed=env_int("BRGAN_FUZZ_SEED", 13),
        worker_studies=env_int("BRGAN_FUZZ_WORKER_STUDIES", 26),
    )
    report, problems = run_cstore_campaign(tmp_path, cfg)
    update_report("cstore", report)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:40])
    assert report["mutated_instances"] == cfg.iterations
    assert report["associations"] >= cfg.iterations // cfg.batch
    kinds = report["kinds"]
    assert set(KINDS) <= set(kinds), f"kinds never tried: {set(KINDS) - set(kinds)}"
    statuses: Counter[str] = Counter()
    for stats in kinds.values():
        statuses.update(stats.get("status", {}))
    # The policy's failure statuses were all due at least once, and given.
    assert {f"0x{s:04X}" for s in (BAD_UID, REFUSED, TOO_LARGE)} <= set(statuses), statuses
    if cfg.worker_studies:
        assert report["worker_studies"] >= min(cfg.worker_studies, len(KINDS))
        assert any(stats.get("worker", {}).get("analyzed") for stats in kinds.values())


@pytest.mark.parametrize(
    ("keyword", "vr", "status", "reason"),
    [
        ("Rows", "FD", OK, "invalid image header: Rows 0"),
        ("PatientSex", "FL", OK, None),
        ("ViewPosition", "UV", OK, None),
        ("SOPClassUID", "UV", BAD_UID, "SOPClassUID cannot be read as a UID"),
    ],
)
def test_a_value_of_the_wrong_numeric_vr_is_read_as_absent_not_a_refusal(
    tmp_path: Path, keyword: str, vr: str, status: int, reason: str | None
) -> None:
    """Found by the fuzzer: a value whose length is no multiple of its (wrong) numeric VR's
    size (Rows as FD: 2 bytes) made pydicom raise BytesLengthException — not a ValueError —
    out of the header reader's tolerant getters, so a parseable data set was refused with
    0xC000 "header not readable". Now such a value reads as absent: the instance is stored
    (and not analyzed where the value matters); an unreadable SOP Class UID is 0xC001 naming
    it, as the status policy says."""
    from pydicom.datadict import tag_for_keyword
    from pydicom.uid import generate_uid

    from tests.plugin.listener.conftest import make_settings, start
    from tests.reliability.fuzzing import edited, make_base, relabel, send_batch

    base = make_base(tmp_path / "base")
    tag = tag_for_keyword(keyword)
    view = base.view("L", "CC")
    mutant = edited(view, generate_uid(), lambda els: relabel(els, tag, vr))
    svc = start(make_settings(tmp_path / "data"))
    try:
        [(got, comment)] = send_batch(svc.port, [mutant], tmp_path / "send")
        row = svc.index.instance(mutant.sop_uid)
    finally:
        svc.stop()
    assert got == status, comment
    if status == OK:
        assert (
            row is not None
            and (row.reason or "").startswith(reason or "")
            and (row.usable == (reason is None))
        ), row.reason
    else:
        assert comment == reason and row is None
