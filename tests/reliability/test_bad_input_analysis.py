"""Issue 13 §2: preprocessing and the worker's analysis on mutated pixel data and headers.

hypothesis draws the same mutations as the C-STORE fuzzer (:mod:`tests.reliability.fuzzing`,
every kind) and shrinks a failure to its simplest case. What must come out (``preprocess_case``
and ``worker_case`` there, shared with ``bench/fuzz.py``):

* ``brgan_core.preprocess.preprocess`` on the mutated file: a model input of the right size,
  finite, in [0, 1] — or a :class:`~brgan_core.errors.BrganCoreError` with a message;
* ``plugin.worker.analysis.run_task`` (what the ``brgan.analyze_study`` task runs) on a study
  of the mutated image and a valid contralateral, with a tiny untrained model: both images
  analyzed or not analyzed with a reason (lossless re-encodings analyzed) — or a
  ``BrganCoreError`` with a message.

Any other exception, or a call that does not return within
:data:`~tests.reliability.fuzzing.HANG_S`, fails the test. Examples: ``BRGAN_FUZZ_EXAMPLES``
(preprocessing, default 400) and ``BRGAN_FUZZ_WORKER_EXAMPLES`` (worker, default 26); with
``BRGAN_FUZZ_REPORT`` set, the cases tried per kind and what they produced are written there
(sections ``preprocess`` and ``worker``).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.uid import generate_uid

from tests.reliability.fuzzing import (
    KINDS,
    Base,
    Bounded,
    HypothesisDraw,
    KindStats,
    Mutant,
    env_int,
    fixed_uid,
    instance,
    make_base,
    preprocess_case,
    report_section,
    update_report,
    worker_case,
)

LIMIT = 2 * 1024**2  # an over-the-limit mutant is 2 MiB, as the listener test's limit

PRE_STATS: dict[str, KindStats] = defaultdict(KindStats)
WORKER_STATS: dict[str, KindStats] = defaultdict(KindStats)
HYPOTHESIS = {
    "deadline": timedelta(seconds=30),
    "derandomize": True,  # the same examples on every run (a seed of its own per test)
    "database": None,  # nothing written to the working directory
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    yield make_base(tmp_path_factory.mktemp("fuzz-base"), seed=5)
    update_report("preprocess", report_section(PRE_STATS))
    update_report("worker", report_section(WORKER_STATS))


@pytest.fixture(scope="module")
def run() -> Iterator[Bounded]:
    bounded = Bounded()
    yield bounded
    bounded.close()


def _draw_mutant(data: Any, base: Base, study_uid: str | None = None) -> Mutant:
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    view = data.draw(st.sampled_from(base.views), label="view")
    return instance(view, study_uid or fixed_uid(), kind, HypothesisDraw(data), limit=LIMIT)


@settings(max_examples=env_int("BRGAN_FUZZ_EXAMPLES", 400), **HYPOTHESIS)
@given(data=st.data())
def test_preprocess_gives_a_model_input_or_a_decode_error(
    base: Base, run: Bounded, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    mutant = _draw_mutant(data, base)
    as_planned = data.draw(st.booleans(), label="laterality/view from the plan")
    folder = tmp_path_factory.mktemp("pre", numbered=True)
    outcome, problem = preprocess_case(mutant, folder, as_planned, run)
    PRE_STATS[mutant.kind].tried += 1
    PRE_STATS[mutant.kind].outcome[outcome] += 1
    assert problem is None, f"preprocess {mutant.kind} ({mutant.detail}): {outcome}: {problem}"


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    from plugin.config import Settings
    from plugin.worker.analysis import get_model
    from tests.helpers import make_tiny_registry

    data_dir = tmp_path_factory.mktemp("fuzz-worker") / "data"
    worker_settings = Settings(data_dir=data_dir, device="cpu")
    version, sha = make_tiny_registry(worker_settings.registry_path)
    return worker_settings, get_model(worker_settings, version, sha)


@settings(max_examples=env_int("BRGAN_FUZZ_WORKER_EXAMPLES", 26), **HYPOTHESIS)
@given(data=st.data())
def test_worker_reports_every_image_analyzed_or_not_analyzed_with_a_reason(
    base: Base, worker: tuple[Any, Any], run: Bounded, data: st.DataObject
) -> None:
    worker_settings, loaded = worker
    mutant = _draw_mutant(data, base)
    outcome, problem = worker_case(base, mutant, worker_settings, loaded, run)
    WORKER_STATS[mutant.kind].tried += 1
    WORKER_STATS[mutant.kind].outcome[outcome] += 1
    assert problem is None, f"worker {mutant.kind} ({mutant.detail}): {outcome}: {problem}"


# -- regression: one image's header failed the whole task ----------------------------------------


def _broken(ds: Any, defect: str) -> Any:
    """A copy of ``ds`` with one header defect the listener stores with 0x0000."""
    import copy

    from pydicom.dataelem import DataElement

    out = copy.deepcopy(ds)
    if defect == "SeriesInstanceUID missing":
        del out.SeriesInstanceUID
    elif defect == "ViewCodeSequence as UL":
        out[0x00540220] = DataElement(0x00540220, "UL", 7)
    elif defect == "PatientSex X":
        out.PatientSex = "X"
    return out


@pytest.mark.parametrize(
    "defect", ["SeriesInstanceUID missing", "ViewCodeSequence as UL", "PatientSex X"]
)
def test_an_image_whose_header_breaks_the_writers_is_not_analyzed_the_rest_is_scored(
    base: Base, worker: tuple[Any, Any], defect: str
) -> None:
    """Found by the fuzzer: the result writers (highdicom, the CAD SR) raised on one source
    header — a missing SeriesInstanceUID (AttributeError in highdicom's evidence), a sequence
    stored as another VR (TypeError), a PatientSex outside M/F/O (ValueError) — so the task
    failed and no image of the study had an outcome. The listener stores each with 0x0000."""
    import copy

    import pydicom

    from plugin.queue.contract import ImageRef, ModelRef, StudyTask, TaskPair
    from plugin.worker.analysis import UNWRITABLE, run_task

    worker_settings, loaded = worker
    study_uid = generate_uid()
    folder = worker_settings.spool_path / study_uid
    folder.mkdir(parents=True)
    refs: dict[str, ImageRef] = {}
    for v in base.views:
        ds = copy.deepcopy(v.ds)
        ds.StudyInstanceUID, ds.SOPInstanceUID = study_uid, generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        if v.key == "L-CC":
            ds = _broken(ds, defect)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = folder / f"{v.key}.dcm"
        ds.save_as(path, enforce_file_format=True)
        refs[v.key] = ImageRef(ds.SOPInstanceUID, str(path), v.laterality, v.view,
                               tuple(v.ds.PatientOrientation))  # fmt: skip
    pairs = tuple(
        TaskPair(refs[f"{side}-{view}"], refs[f"{'R' if side == 'L' else 'L'}-{view}"])
        for side in "LR"
        for view in ("CC", "MLO")
    )
    task = StudyTask(study_uid, 1, time.time(), ModelRef(loaded.version, loaded.sha256), pairs)
    task_id = str(generate_uid(prefix=None))
    summary = run_task(task, loaded, worker_settings, worker_settings.results_path / task_id)

    broken = refs["L-CC"].sop_instance_uid
    reasons = {n.sop_instance_uid: n.reason for n in summary.not_analyzed}
    assert UNWRITABLE in reasons[broken], reasons
    scored = {i.sop_instance_uid for i in summary.images}
    assert {refs["L-MLO"].sop_instance_uid, refs["R-MLO"].sop_instance_uid} <= scored
    assert scored | set(reasons) == {r.sop_instance_uid for r in refs.values()}
    assert summary.exam == max(i.p_malignant for i in summary.images)
    kinds = Counter(f.kind for f in summary.result_files)
    assert kinds == {"tid1500_sr": 1, "cad_sr": 1, "summary_sc": 1, "heatmap_sc": len(scored)}
    sr = pydicom.dcmread(next(f.path for f in summary.result_files if f.kind == "tid1500_sr"))
    referenced = {
        item.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert broken not in referenced and len(referenced) == 3
