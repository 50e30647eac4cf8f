"""The running service, attacked and audited as a whole (issue 13 §4).

One chain of real processes for the module (:mod:`tests.security.chain`): a Redis of the test's
own with a password, ``brgan serve`` and ``brgan worker`` at DEBUG log level. Shown here:

* a pickled Celery message on the ``gpu`` queue is refused by the worker (``accept_content`` is
  JSON only), its payload never runs, the message is discarded and the worker scores the next
  study;
* a forged JSON task whose id would escape the results folder, or whose images lie outside the
  spool, is refused before anything is read or written;
* synthetic studies go through the whole chain, and then no log line, no ``/metrics``,
  ``/healthz`` or ``/readyz`` body, no ``brgan status`` / ``config show`` output and nothing
  kept in Redis contains a PatientName, PatientID, birth date or accession number, nor the
  Redis password; every file the service wrote is private (no group/other permission bits).

The embedded mode (kombu's filesystem queue and a worker child) gets the same audit at the end.
"""

from __future__ import annotations

import base64
import json
import pickle
import signal
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import redis
from kombu import Connection, Exchange, Queue

from plugin.index import SqliteIndex, StudyState
from plugin.queue.app import ANALYZE_STUDY, GPU_QUEUE, make_celery, send_analyze_study
from plugin.queue.contract import ImageRef, ModelRef, StudyTask, TaskPair
from tests.helpers import make_tiny_registry, write_synth_studies
from tests.plugin.listener.conftest import free_port, store, wait_until
from tests.plugin.queue.serve import start_embedded_serve
from tests.security.chain import Chain, http_get, make_chain
from tests.security.phi import identifiers, scan
from tests.security.redis_server import own_redis

pytestmark = pytest.mark.integration

ENDPOINTS = ("/metrics", "/healthz", "/readyz")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    root = tmp_path_factory.mktemp("chain")
    with own_redis(root / "redis") as server:
        running = make_chain(root, server)
        try:
            running.start()
            yield running
        finally:
            running.stop()


def _send_studies(chain: Chain, patients: int, seed: int) -> tuple[list[str], list[Path]]:
    """C-STORE ``patients`` synthetic 4-view studies over one association each; their UIDs and
    files."""
    rows = write_synth_studies(chain.root / f"synth-{seed}", patients=patients, seed=seed)
    by_study: dict[str, list[pydicom.Dataset]] = {}
    for row in rows:
        by_study.setdefault(row["study_uid"], []).append(pydicom.dcmread(row["path"]))
    for datasets in by_study.values():
        assert [s.Status for s in store(chain.port, datasets)] == [0] * len(datasets)
    return list(by_study), [Path(r["path"]) for r in rows]


def _wait_done(data: Path, study_uids: list[str], timeout: float = 180) -> None:
    index = SqliteIndex(data / "index.sqlite3", readonly=True)
    try:
        for uid in study_uids:
            wait_until(
                lambda uid=uid: (
                    (s := index.get_study(uid)) is not None and s.state == StudyState.DONE
                ),
                timeout=timeout,
            )
    finally:
        index.close()


class _Payload:
    """Unpickling this creates ``marker``: proof that a worker ran code from a message."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


def _publish_pickle(url: str, task_id: str, marker: Path) -> None:
    """A Celery (protocol 2) task message for ``brgan.analyze_study``, body pickled, published
    with plain kombu the way an intruder on the broker would."""
    queue = Queue(GPU_QUEUE, Exchange(GPU_QUEUE, "direct"), GPU_QUEUE)
    headers = {
        "lang": "py", "task": ANALYZE_STUDY, "id": task_id, "root_id": task_id,
        "parent_id": None, "group": None, "retries": 0, "eta": None, "expires": None,
        "timelimit": [None, None], "argsrepr": "", "kwargsrepr": "", "origin": "intruder",
    }  # fmt: skip
    body = ((_Payload(marker),), {}, {"callbacks": None, "errbacks": None, "chain": None})
    pickle.dumps(body)  # it pickles: the worker is offered a real exploit
    with Connection(url) as conn:
        conn.Producer().publish(
            body,
            exchange=queue.exchange,
            routing_key=GPU_QUEUE,
            serializer="pickle",
            headers=headers,
            correlation_id=task_id,
            declare=[queue],
        )


def test_a_pickled_message_is_refused_and_the_worker_keeps_scoring(chain: Chain) -> None:
    marker = chain.root / "unpickled-by-the-worker"
    url = chain.env["BRGAN_BROKER_URL"]
    _publish_pickle(url, str(uuid.uuid4()), marker)
    wait_until(lambda: "untrusted content of type pickle" in chain.logs()["worker.log"], 30)
    client = redis.Redis.from_url(url)
    assert client.llen(GPU_QUEUE) == 0 and client.hlen("unacked") == 0  # discarded, not looping
    assert not marker.exists()
    assert chain.procs["worker"].poll() is None
    assert http_get(chain.worker_metrics_port, "/healthz")[0] == 200
    studies, _ = _send_studies(chain, patients=1, seed=41)
    _wait_done(chain.data, studies)
    assert not marker.exists()


def _forged_task(chain: Chain, rows: list[dict[str, str]]) -> StudyTask:
    """A well-formed task for the CC pair of a study that was never sent to the service (its
    files lie outside the spool): without the check the worker would score it."""
    version, sha256 = chain.model
    cc = {r["laterality"]: r for r in rows if r["view"] == "CC"}
    refs = [ImageRef(cc[s]["sop_instance_uid"], cc[s]["path"], s, "CC") for s in ("L", "R")]
    return StudyTask(
        study_uid=rows[0]["study_uid"],
        study_version=1,
        queued_at=time.time(),
        model=ModelRef(version, sha256),
        pairs=(TaskPair(refs[0], refs[1]), TaskPair(refs[1], refs[0])),
    )


def test_a_forged_task_naming_foreign_paths_is_refused(chain: Chain) -> None:
    """Anyone able to write to the broker could send these; the worker refuses both."""
    task = _forged_task(chain, write_synth_studies(chain.root / "foreign", patients=1, seed=43))
    settings = chain.settings()
    app = make_celery(settings)
    try:
        escape = "../../escaped-results"
        outside = str(uuid.uuid4())
        send_analyze_study(app, task.to_json(), outside)
        send_analyze_study(app, task.to_json(), escape)
        for task_id, reason in ((outside, "outside spool_dir"), (escape, "is not a UUID")):
            result = app.AsyncResult(task_id)
            wait_until(lambda r=result: r.state in ("SUCCESS", "FAILURE"), timeout=60)
            assert result.state == "FAILURE" and reason in str(result.result)
    finally:
        app.close()
    assert not (settings.results_path / outside).exists()
    assert not (settings.results_path / escape).exists()
    assert not (settings.results_path.parent.parent / "escaped-results").exists()
    assert chain.procs["worker"].poll() is None


def _redis_texts(url: str) -> dict[str, str]:
    """Everything Redis holds, as text: results, queued messages (bodies decoded)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    out: dict[str, str] = {}
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == "string":
            out[key] = str(client.get(key))
        elif kind == "list":
            out[key] = "\n".join(client.lrange(key, 0, -1))
        elif kind == "hash":
            out[key] = json.dumps(client.hgetall(key))
        elif kind == "set":
            out[key] = "\n".join(sorted(client.smembers(key)))
        elif kind == "zset":
            out[key] = "\n".join(client.zrange(key, 0, -1))
    for key, text in list(out.items()):
        for line in text.splitlines():
            try:
                body = json.loads(line).get("body")
                out[f"{key} (decoded body)"] = base64.b64decode(body).decode("utf-8", "replace")
            except (ValueError, AttributeError, TypeError):
                continue
    return out


def _not_private(root: Path, skip: tuple[str, ...] = ()) -> list[str]:
    """Files and folders under ``root`` with any group/other permission bit set."""
    bad = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in skip:
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            bad.append(f"{oct(mode)} {rel}")
    return bad


def test_no_phi_nor_password_anywhere_and_every_file_is_private(chain: Chain) -> None:
    studies, files = _send_studies(chain, patients=2, seed=47)
    _wait_done(chain.data, studies)
    outputs = {f"serve {p}": http_get(chain.metrics_port, p)[1] for p in ENDPOINTS} | {
        f"worker {p}": http_get(chain.worker_metrics_port, p)[1] for p in ENDPOINTS
    }
    assert json.loads(outputs["serve /readyz"])["status"] == "ready"
    for args in (("status",), ("status", "--json"), ("status", "--study", studies[0]),
                 ("config", "show"), ("outbox", "list")):  # fmt: skip
        outputs["brgan " + " ".join(args)] = chain.cli(*args)
    assert studies[0] in outputs["brgan status --study " + studies[0]]
    outputs |= {f"redis {k}": v for k, v in _redis_texts(chain.env["BRGAN_BROKER_URL"]).items()}
    # While running (SQLite's -wal/-shm exist): nothing group/other-readable. models/ is the
    # admin's registry, made by the test, and holds no PHI.
    assert _not_private(chain.data, skip=("models",)) == []
    assert any(p.suffix == ".png" for p in (chain.data / "results").rglob("*"))
    chain.stop()
    outputs |= chain.logs()
    needles = identifiers(files)
    assert len(needles) >= 8 * 2  # two patients, four identifiers each, several spellings
    leaks = scan(outputs, needles)
    assert leaks == [], "\n".join(f"{x.source}: {x.attribute} in {x.line}" for x in leaks[:20])
    password = chain.redis.password
    assert [name for name, text in outputs.items() if password in text] == []
    assert "study_scored" in outputs["serve.log"] and "succeeded" in outputs["worker.log"]


def test_embedded_mode_keeps_phi_out_of_its_logs_and_its_files_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_tiny_registry(data / "models")
    metrics, worker_metrics = free_port(), free_port()
    proc, port = start_embedded_serve(
        data,
        stable_age="2",
        metrics_port=str(metrics),
        worker_metrics_port=str(worker_metrics),
        log_level="DEBUG",
        log_json="true",
    )
    rows = write_synth_studies(tmp_path / "synth", patients=2, seed=53)
    try:
        by_study: dict[str, list[pydicom.Dataset]] = {}
        for row in rows:
            by_study.setdefault(row["study_uid"], []).append(pydicom.dcmread(row["path"]))
        for datasets in by_study.values():
            assert [s.Status for s in store(port, datasets)] == [0] * 4
        _wait_done(data, list(by_study))
        bodies = {f"serve {p}": http_get(metrics, p)[1] for p in ENDPOINTS}
        bodies |= {f"worker {p}": http_get(worker_metrics, p)[1] for p in ENDPOINTS}
        private = _not_private(data, skip=("models",))
        queue_texts = {
            f"queue {p.relative_to(data)}": p.read_text(errors="replace")
            for p in (data / "queue").rglob("*")
            if p.is_file()
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert queue_texts, "the filesystem queue wrote nothing to audit"
    assert private == []
    texts = {"stdout": out, "stderr": err, "worker.log": (data / "worker.log").read_text()}
    texts |= bodies
    texts |= queue_texts
    leaks = scan(texts, identifiers(Path(r["path"]) for r in rows))
    assert leaks == [], "\n".join(f"{x.source}: {x.attribute} in {x.line}" for x in leaks[:20])
