"""End to end over real components: dcmtk storescu → listener → coordinator → Redis → a real
``brgan worker`` process (Celery) → scores recorded in the index.

Also: Redis stopped while a study arrives (a ``redis-server`` this test starts itself on a free
port; the shared one is never touched) — nothing is lost and the study is scored once Redis is
back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugin.config import Settings
from plugin.coordinator import Coordinator, CoordinatorTiming
from plugin.coordinator.dispatcher import Dispatcher
from plugin.index import StudyState
from tests.helpers import make_tiny_registry, write_synth_studies
from tests.plugin.cli import run_cli
from tests.plugin.listener.conftest import (
    Service,
    free_port,
    make_settings,
    start,
    wait_for_port,
    wait_until,
)
from tests.plugin.queue.serve import storescu

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def _redis_server(port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(log),
        ]
    )
    wait_for_port(port)
    return proc


def _worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        BRGAN_DATA_DIR=str(settings.data_dir),
        BRGAN_BROKER_URL=settings.broker_url.get_secret_value() if settings.broker_url else "",
    )
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "plugin.cli.main", "worker", "--pool", "solo"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _with_dispatcher(svc: Service) -> Dispatcher:
    dispatcher = Dispatcher(svc.settings, svc.index)
    svc.coordinator = Coordinator(
        svc.index,
        svc.spool,
        CoordinatorTiming(svc.settings.complete_grace, svc.settings.stable_age, 7.0, 0.1),
        on_study_ready=dispatcher.on_study_ready,
        reconcile=dispatcher.reconcile,
    )
    svc.coordinator.recover()
    svc.coordinator.start()
    return dispatcher


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[tuple[Service, Path]]:
    if shutil.which("storescu") is None or shutil.which("redis-server") is None:
        pytest.skip("dcmtk storescu and redis-server are needed (scripts/test installs them)")
    port = free_port()
    redis_proc = _redis_server(port, tmp_path / "redis.log")
    settings = make_settings(
        tmp_path / "data",
        broker_url=f"redis://127.0.0.1:{port}/0",
        requeue_after=5.0,
        stable_age=2.0,
    )
    make_tiny_registry(settings.registry_path)
    worker = _worker(settings, tmp_path / "worker.log")
    svc = start(settings)
    try:
        yield svc, tmp_path
    finally:
        svc.stop()
        worker.terminate()
        worker.wait(20)
        redis_proc.terminate()
        redis_proc.wait(10)


def _scores(svc: Service, study_uid: str) -> dict[str, dict]:
    return {
        p.target_uid: json.loads(p.score_json) for p in svc.index.pairs(study_uid) if p.score_json
    }


def _wait_state(svc: Service, study_uid: str, state: StudyState, tmp: Path, timeout: float) -> None:
    try:
        wait_until(
            lambda: (s := svc.index.get_study(study_uid)) is not None and s.state == state,
            timeout=timeout,
        )
    except TimeoutError as exc:
        study = svc.index.get_study(study_uid)
        log = (tmp / "worker.log").read_text(errors="replace")[-3000:]
        raise AssertionError(
            f"study is {study and study.state}, error={study and study.error}\n{log}"
        ) from exc


def test_full_study_one_task_four_scored_pairs(
    pipeline: tuple[Service, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    svc, tmp = pipeline
    _with_dispatcher(svc)
    rows = write_synth_studies(tmp / "synth", patients=1, seed=11)
    storescu(svc.port, [r["path"] for r in rows])
    study_uid = rows[0]["study_uid"]
    _wait_state(svc, study_uid, StudyState.DONE, tmp, timeout=120)
    study = svc.index.get_study(study_uid)
    assert study is not None and study.task_id and study.model_version == "v1"
    scores = _scores(svc, study_uid)
    assert len(scores) == 4
    assert all(s["status"] == "analyzed" and 0 <= s["p_malignant"] <= 1 for s in scores.values())
    assert all(s["model"]["research_only"] for s in scores.values())
    result = json.loads(study.result_json or "{}")
    assert result["exam"] == max(s["p_malignant"] for s in scores.values())
    monkeypatch.setenv("BRGAN_DATA_DIR", str(svc.settings.data_dir))
    code, shown = run_cli(["status", "--study", study_uid], capsys)
    assert code == 0 and "RESEARCH-ONLY MODEL" in shown  # a demo model says so everywhere

    # The same study sent twice: recorded, but the pairs did not change, so no new version and
    # no second analysis (never silent duplicates).
    storescu(svc.port, [r["path"] for r in rows])
    wait_until(
        lambda: (
            all(i.receive_count == 2 for i in svc.index.instances(study_uid))
            and not svc.index.studies_with_new_instances()
        ),
        timeout=30,
    )
    again = svc.index.get_study(study_uid)
    assert (again.version, again.state, again.task_id) == (1, StudyState.DONE, study.task_id)

    # `brgan reprocess` opens version 2: planned, queued under a new task id, scored again.
    svc.index.open_new_version(study_uid)
    wait_until(
        lambda: (s := svc.index.get_study(study_uid)).version == 2 and s.state == StudyState.DONE,
        timeout=120,
    )
    again = svc.index.get_study(study_uid)
    assert again.task_id != study.task_id
    assert len(_scores(svc, study_uid)) == 4
    assert len(svc.index.pairs(study_uid, version=1)) == 4  # the old version's scores stay


def test_redis_down_nothing_lost(pipeline: tuple[Service, Path]) -> None:
    svc, tmp = pipeline
    url = svc.settings.broker_url.get_secret_value()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False)
    time.sleep(0.2)
    _with_dispatcher(svc)
    rows = write_synth_studies(tmp / "synth", patients=1, seed=12)
    storescu(svc.port, [r["path"] for r in rows])  # still received and spooled
    study_uid = rows[0]["study_uid"]
    _wait_state(svc, study_uid, StudyState.READY, tmp, timeout=30)
    assert len(svc.index.instances(study_uid)) == 4
    wait_until(
        lambda: any("broker unreachable" in e.message for e in svc.index.errors(20)), timeout=30
    )
    assert svc.index.get_study(study_uid).state == StudyState.READY
    redis_again = _redis_server(port, tmp / "redis2.log")
    try:
        _wait_state(svc, study_uid, StudyState.DONE, tmp, timeout=180)
    finally:
        redis_again.terminate()
        redis_again.wait(10)
    assert len(_scores(svc, study_uid)) == 4


def test_redis_killed_with_tasks_in_flight_nothing_lost_nothing_twice(
    pipeline: tuple[Service, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """issue 13 §1: Redis (the test's own, no persistence) SIGKILLed while tasks are queued or
    running, restarted empty: the vanished tasks are re-sent under their ids (requeue_after),
    every study ends done with one result set, and `brgan status` says so."""
    import signal

    svc, tmp = pipeline
    url = svc.settings.broker_url.get_secret_value()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    _with_dispatcher(svc)
    rows = write_synth_studies(tmp / "synth", patients=3, seed=17)
    studies = sorted({r["study_uid"] for r in rows})
    storescu(svc.port, [r["path"] for r in rows])
    in_flight = (StudyState.QUEUED, StudyState.RUNNING)
    wait_until(
        lambda: any((s := svc.index.get_study(u)) and s.state in in_flight for u in studies),
        timeout=60,
    )
    info = subprocess.run(
        ["redis-cli", "-p", str(port), "info", "server"], capture_output=True, text=True
    ).stdout
    pid = int(next(line for line in info.splitlines() if line.startswith("process_id:"))[11:])
    os.kill(pid, signal.SIGKILL)  # tasks, unacked messages and results are gone with it
    time.sleep(1.0)
    redis_again = _redis_server(port, tmp / "redis-again.log")
    try:
        for uid in studies:
            _wait_state(svc, uid, StudyState.DONE, tmp, timeout=240)
    finally:
        redis_again.terminate()
        redis_again.wait(10)
    for uid in studies:
        study = svc.index.get_study(uid)
        assert study.version == 1 and len(_scores(svc, uid)) == 4
        files = json.loads(study.result_json)["result_files"]
        kinds = sorted(f["kind"] for f in files)
        assert kinds.count("heatmap_sc") == 4 and len(kinds) == len(set(f["path"] for f in files))
        folder = svc.settings.results_path / study.task_id
        assert folder.is_dir() and {Path(f["path"]).parent for f in files} == {folder}
    monkeypatch.setenv("BRGAN_DATA_DIR", str(svc.settings.data_dir))
    code, shown = run_cli(["status"], capsys)
    assert code == 0 and "done" in shown


def test_partial_study_stable_age_not_analyzed_reasons(pipeline: tuple[Service, Path]) -> None:
    svc, tmp = pipeline
    _with_dispatcher(svc)
    rows = write_synth_studies(tmp / "synth", patients=1, seed=13)
    sent = [r for r in rows if (r["laterality"], r["view"]) != ("R", "MLO")]  # 3 of 4 views
    storescu(svc.port, [r["path"] for r in sent])
    study_uid = rows[0]["study_uid"]
    _wait_state(svc, study_uid, StudyState.DONE, tmp, timeout=120)  # via the stable-age path
    scores = _scores(svc, study_uid)
    assert {(r["laterality"], r["view"]) for r in sent if r["sop_instance_uid"] in scores} == {
        ("L", "CC"),
        ("R", "CC"),
    }
    l_mlo = next(r for r in sent if (r["laterality"], r["view"]) == ("L", "MLO"))
    plan = json.loads(svc.index.get_study(study_uid).plan_json or "{}")
    assert "no contralateral view" in json.dumps(
        plan.get("not_analyzed", {}).get(l_mlo["sop_instance_uid"])
    )


def test_two_workers_share_the_load_and_a_new_model_needs_no_restart(tmp_path: Path) -> None:
    """Two `brgan worker` processes on one Redis both take tasks; activating a new model
    version reaches the running workers through the next task (it names the version)."""
    if shutil.which("storescu") is None or shutil.which("redis-server") is None:
        pytest.skip("dcmtk storescu and redis-server are needed (scripts/test installs them)")
    port = free_port()
    redis_proc = _redis_server(port, tmp_path / "redis.log")
    settings = make_settings(
        tmp_path / "data", broker_url=f"redis://127.0.0.1:{port}/0", requeue_after=60.0
    )
    make_tiny_registry(settings.registry_path)
    workers = [_worker(settings, tmp_path / f"worker{i}.log") for i in range(2)]
    svc = start(settings)
    try:
        dispatcher = _with_dispatcher(svc)
        rows = write_synth_studies(tmp_path / "synth", patients=4, seed=41)
        storescu(svc.port, [r["path"] for r in rows])
        studies = sorted({r["study_uid"] for r in rows})
        for uid in studies:
            _wait_state(svc, uid, StudyState.DONE, tmp_path, timeout=240)
        names = {dispatcher.app.AsyncResult(svc.index.get_study(u).task_id).worker for u in studies}
        assert len(names - {None}) == 2, f"tasks ran on {names}"

        version, _ = make_tiny_registry(settings.registry_path, seed=1)  # registers + activates
        assert version != "v1"
        svc.index.open_new_version(studies[0])  # what `brgan reprocess` does
        wait_until(
            lambda: (
                (s := svc.index.get_study(studies[0])).version == 2 and s.state == StudyState.DONE
            ),
            timeout=120,
        )
        study = svc.index.get_study(studies[0])
        assert study.model_version == version
        assert json.loads(study.result_json)["model"]["model_version"] == version
        assert all(w.poll() is None for w in workers)  # never restarted
    finally:
        svc.stop()
        for w in workers:
            w.terminate()
            w.wait(20)
        redis_proc.terminate()
        redis_proc.wait(10)


def _started(app: object, task_id: str | None) -> bool:
    return bool(task_id) and app.AsyncResult(task_id).state == "STARTED"  # type: ignore[attr-defined]


def test_worker_sigkilled_mid_task_is_detected_and_the_task_re_sent(tmp_path: Path) -> None:
    """Redis mode, solo pool: SIGKILL leaves the task STARTED and its message unacknowledged
    until the broker's visibility timeout (an hour). The coordinator sees the heartbeat stop
    (worker_lease) and re-sends it; a new worker finishes it."""
    if shutil.which("storescu") is None or shutil.which("redis-server") is None:
        pytest.skip("dcmtk storescu and redis-server are needed (scripts/test installs them)")
    port = free_port()
    redis_proc = _redis_server(port, tmp_path / "redis.log")
    from plugin.coordinator.service import make_outbox
    from tests.plugin.coordinator.recording_scp import RecordingSCP

    recorder = RecordingSCP(free_port())
    recorder.start()
    settings = make_settings(
        tmp_path / "data",
        broker_url=f"redis://127.0.0.1:{port}/0",
        worker_heartbeat=0.5,
        worker_lease=5.0,
        destinations=[{"name": "recorder", "kind": "dimse", "ae_title": "RECORDER",
                       "host": "127.0.0.1", "port": recorder.port}],
        outbox_interval=0.2,
    )  # fmt: skip
    make_tiny_registry(settings.registry_path)
    os.environ["BRGAN_WORKER_HEARTBEAT"] = "0.5"
    try:
        doomed = _worker(settings, tmp_path / "worker1.log")
        svc = start(settings)
        outbox = make_outbox(settings, svc.index)
        dispatcher = Dispatcher(settings, svc.index, outbox=outbox)
        svc.coordinator = Coordinator(
            svc.index,
            svc.spool,
            CoordinatorTiming(svc.settings.complete_grace, svc.settings.stable_age, 7.0, 0.1),
            on_study_ready=dispatcher.on_study_ready,
            reconcile=dispatcher.reconcile,
        )
        svc.coordinator.start()
        outbox.start()
        rows = write_synth_studies(tmp_path / "synth", patients=1, seed=43)
        study_uid = rows[0]["study_uid"]
        storescu(svc.port, [r["path"] for r in rows])
        wait_until(
            lambda: _started(
                dispatcher.app, getattr(svc.index.get_study(study_uid), "task_id", None)
            ),
            timeout=120,
        )
        doomed.kill()  # SIGKILL mid-task
        doomed.wait(10)
        survivor = _worker(settings, tmp_path / "worker2.log")
        try:
            _wait_state(svc, study_uid, StudyState.DONE, tmp_path, timeout=120)
            assert any("lost with its worker" in e.message for e in svc.index.errors(50))
            assert len(_scores(svc, study_uid)) == 4
            files = json.loads(svc.index.get_study(study_uid).result_json)["result_files"]
            wanted = {f["sop_instance_uid"] for f in files}
            wait_until(lambda: set(recorder.counts()) == wanted, timeout=60)
            time.sleep(1.0)  # several outbox passes: nothing is sent twice
            assert set(recorder.counts().values()) == {1}  # exactly one delivery per object
        finally:
            outbox.stop()
            svc.stop()
            survivor.terminate()
            survivor.wait(20)
            recorder.stop()
    finally:
        os.environ.pop("BRGAN_WORKER_HEARTBEAT", None)
        redis_proc.terminate()
        redis_proc.wait(10)
