"""Study assembly outside the handler, restart recovery and spool retention."""

from __future__ import annotations

import json
from pathlib import Path

from pydicom.uid import generate_uid

from plugin.coordinator import Coordinator, CoordinatorTiming
from plugin.index import StudyState
from tests.plugin.listener.conftest import Service, store, wait_until
from tests.plugin.listener.dicom_data import four_view_study, mg_image, save, text_sr

S = StudyState


def _coordinator(svc: Service, ready: list, score_unpaired=None, **timing) -> Coordinator:
    values = {"complete_grace": 0.0, "stable_age": 3600.0, "retention_days": 7.0}
    values.update(timing)
    return Coordinator(
        svc.index,
        svc.spool,
        CoordinatorTiming(**values),
        on_study_ready=lambda uid, version: ready.append((uid, version)),
        score_unpaired=score_unpaired or (lambda: False),
    )


def test_complete_study_goes_ready_in_the_background(service_factory) -> None:
    svc = service_factory(coordinator=True, complete_grace=0.0, stable_age=3600.0)
    study = four_view_study()
    uid = study[0].StudyInstanceUID
    store(svc.port, study)
    wait_until(lambda: svc.ready == [(uid, 1)])
    row = svc.index.get_study(uid)
    assert row.state == S.READY and row.pairs_key
    pairs = svc.index.pairs(uid)
    assert {(p.laterality, p.view) for p in pairs} == {
        ("L", "CC"), ("R", "CC"), ("L", "MLO"), ("R", "MLO")
    }  # fmt: skip
    assert json.loads(row.plan_json)["complete"] is True


def test_partial_study_waits_for_stable_age(service: Service) -> None:
    ready: list = []
    uid = generate_uid()
    store(service.port, [mg_image(uid, "L", "CC"), mg_image(uid, "R", "CC"), text_sr(uid)])
    waiting = _coordinator(service, ready, stable_age=3600.0)
    waiting.run_once()
    assert service.index.get_study(uid).state == S.RECEIVING and ready == []
    stable = _coordinator(service, ready, stable_age=0.0)
    stable.run_once()
    assert ready == [(uid, 1)]
    plan = json.loads(service.index.get_study(uid).plan_json)
    assert plan["complete"] is False and len(plan["pairs"]) == 2
    assert any(r.startswith("not an image") for r in plan["not_analyzed"].values())
    stable.run_once()
    assert ready == [(uid, 1)]  # announced once per version


def test_late_instances_new_version_only_when_pairs_change(service: Service) -> None:
    ready: list = []
    coordinator = _coordinator(service, ready, stable_age=0.0)
    study = four_view_study()
    uid = study[0].StudyInstanceUID
    store(service.port, study)
    coordinator.run_once()
    for state in (S.QUEUED, S.DONE):
        service.index.transition(uid, state)
    store(service.port, [text_sr(uid)])  # not a new usable image: just recorded
    coordinator.run_once()
    row = service.index.get_study(uid)
    assert row.state == S.DONE and row.version == 1 and len(row.plan_json) > 0
    later = mg_image(uid, "L", "CC", AcquisitionTime="120000")  # supersedes the L-CC target
    store(service.port, [later])
    coordinator.run_once()  # re-opens as version 2 …
    coordinator.run_once()  # … which is stable at once
    row = service.index.get_study(uid)
    assert row.version == 2 and row.state == S.READY
    assert ready == [(uid, 1), (uid, 2)]
    assert later.SOPInstanceUID in {p.target_uid for p in service.index.pairs(uid)}
    assert len(service.index.pairs(uid, 1)) == 4


def test_a_model_switch_does_not_reopen_a_study_for_a_late_sr(service: Service) -> None:
    """A 3-view study planned for a model that scores images alone (L MLO alone); the model
    changes to one that may not; a late SR is recorded under the rule the plan was made with,
    not turned into a new version. A real change (the missing R MLO arrives) still is."""
    ready: list = []
    rule = {"alone": True}
    coordinator = _coordinator(service, ready, stable_age=0.0, score_unpaired=lambda: rule["alone"])
    study = four_view_study()
    uid = study[0].StudyInstanceUID
    r_mlo = next(ds for ds in study if (ds.ImageLaterality, ds.ViewPosition) == ("R", "MLO"))
    store(service.port, [ds for ds in study if ds is not r_mlo])
    coordinator.run_once()
    pairs = service.index.pairs(uid)
    assert len(pairs) == 3 and sum(p.contralateral_uid == "" for p in pairs) == 1
    assert json.loads(service.index.get_study(uid).plan_json)["score_unpaired"] is True
    for state in (S.QUEUED, S.DONE):
        service.index.transition(uid, state)
    rule["alone"] = False  # e.g. a rollback to the paper's BR-GAN
    store(service.port, [text_sr(uid)])
    coordinator.run_once()
    row = service.index.get_study(uid)
    assert row.state == S.DONE and row.version == 1
    store(service.port, [r_mlo])
    coordinator.run_once()
    coordinator.run_once()
    row = service.index.get_study(uid)
    assert row.version == 2 and len(service.index.pairs(uid, 2)) == 4
    assert json.loads(row.plan_json)["score_unpaired"] is False


def test_the_dispatcher_replans_when_the_model_to_run_may_not_score_alone(
    service: Service,
) -> None:
    """Planned with L MLO alone, but the active model (the paper's BR-GAN, no
    ``val_auc_without_contralateral``) may not score it: the dispatcher sends the study back to
    be planned under that model's rule before queueing anything (no broker is reached)."""
    from plugin.coordinator.dispatcher import Dispatcher
    from tests.helpers import make_tiny_registry

    make_tiny_registry(service.settings.registry_path)
    ready: list = []
    rule = {"alone": True}
    coordinator = _coordinator(service, ready, stable_age=0.0, score_unpaired=lambda: rule["alone"])
    study = [
        ds for ds in four_view_study() if (ds.ImageLaterality, ds.ViewPosition) != ("R", "MLO")
    ]
    uid = study[0].StudyInstanceUID
    store(service.port, study)
    coordinator.run_once()
    assert service.index.get_study(uid).state == S.READY
    Dispatcher(service.settings, service.index).on_study_ready(uid, 1)
    row = service.index.get_study(uid)
    assert row.state == S.RECEIVING and "re-planned" in (row.error or "")
    rule["alone"] = False  # what the coordinator's registry question answers for this model
    coordinator.run_once()
    row = service.index.get_study(uid)
    assert row.state == S.READY and len(service.index.pairs(uid)) == 2
    assert json.loads(row.plan_json)["not_analyzed"]  # L MLO: no contralateral view


def test_restart_recovery(service_factory, tmp_path: Path) -> None:
    first = service_factory(coordinator=True, complete_grace=3600.0, stable_age=3600.0)
    study = four_view_study()
    uid = study[0].StudyInstanceUID
    store(first.port, study)
    assert first.index.get_study(uid).state == S.RECEIVING
    first.stop()
    # A file that reached the spool but not the index, and a half-written temp file.
    orphan = mg_image(generate_uid(), "L", "CC")
    orphan_dir = first.spool.study_dir(orphan.StudyInstanceUID)
    orphan_dir.mkdir(mode=0o700)
    save(orphan, first.spool.path_for(orphan.StudyInstanceUID, orphan.SOPInstanceUID))
    (first.spool.study_dir(uid) / ".x.123.tmp").write_bytes(b"half")

    second = service_factory(coordinator=True, complete_grace=0.0, stable_age=3600.0)
    wait_until(lambda: (uid, 1) in second.ready)
    assert second.index.get_study(uid).state == S.READY
    assert not (second.spool.study_dir(uid) / ".x.123.tmp").exists()
    assert second.index.get_study(orphan.StudyInstanceUID).instance_count == 1
    assert store(second.port, four_view_study()[:1])[0].Status == 0


def test_ready_studies_are_announced_again_after_restart(service: Service) -> None:
    first: list = []
    uid = generate_uid()
    store(service.port, four_view_study(uid))
    _coordinator(service, first).run_once()
    assert first == [(uid, 1)]
    again: list = []
    _coordinator(service, again).run_once()  # a new process: hook called again (idempotent)
    assert again == [(uid, 1)]


def test_retention_purges_spool_files_of_done_studies(service: Service) -> None:
    ready: list = []
    study = four_view_study()
    uid = study[0].StudyInstanceUID
    store(service.port, study)
    coordinator = _coordinator(service, ready, retention_days=0.0)
    coordinator.run_once()
    assert service.spool.study_dir(uid).is_dir()
    for state in (S.QUEUED, S.RUNNING, S.DONE):
        service.index.transition(uid, state)
    assert coordinator.purge_expired() == 1
    assert not service.spool.study_dir(uid).exists()
    row = service.index.get_study(uid)
    assert row.purged_at is not None and row.instance_count == 4  # UIDs and outcomes stay


def test_a_failing_hook_does_not_stop_the_loop(service: Service) -> None:
    def broken(uid: str, version: int) -> None:
        raise RuntimeError("broker down")

    uid = generate_uid()
    store(service.port, four_view_study(uid))
    coordinator = Coordinator(
        service.index, service.spool, CoordinatorTiming(0.0, 0.0, 7.0), on_study_ready=broken
    )
    coordinator.run_once()
    coordinator.run_once()
    assert service.index.get_study(uid).state == S.READY
    assert "broker down" in service.index.errors()[0].message


def test_one_failing_study_does_not_stop_the_others_and_is_recorded_once(
    service: Service,
) -> None:
    """Issue 8 §1: a hook that raises for one study (as the old dispatcher did for a study
    without pairs) is isolated per study, and its error is recorded once, not every pass."""
    bad, good = four_view_study(), four_view_study()
    store(service.port, bad + good)
    bad_uid, good_uid = bad[0].StudyInstanceUID, good[0].StudyInstanceUID
    announced: list[str] = []

    def hook(uid: str, version: int) -> None:
        if uid == bad_uid:
            raise RuntimeError("cannot queue this one")
        announced.append(uid)

    coordinator = Coordinator(
        service.index,
        service.spool,
        CoordinatorTiming(0.0, 3600.0, 7.0),
        on_study_ready=hook,
        reconcile=lambda: [hook(s.study_uid, s.version) for s in service.index.studies([S.READY])],
    )
    for _ in range(30):
        coordinator.run_once()
    assert good_uid in announced
    messages = [e.message for e in service.index.errors(100) if e.source == "coordinator"]
    assert len(messages) == len(set(messages)) <= 3  # _assemble/_announce/reconcile, once each
    assert all("cannot queue this one" in m for m in messages)
