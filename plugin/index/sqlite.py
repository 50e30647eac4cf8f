"""The index on SQLite in WAL mode: one connection, one lock, short transactions.

pynetdicom runs each association in its own thread; all of them share this object. A single
connection guarded by a lock keeps writes serialised inside the process (SQLite allows one
writer anyway); WAL lets ``brgan status`` read from another process meanwhile.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from plugin.index.base import Index
from plugin.index.model import (
    FINAL_STATES,
    OUTBOX_SETTLED,
    AssociationRow,
    ErrorRow,
    IllegalTransition,
    InstanceRecord,
    InstanceRow,
    OutboxItem,
    OutboxRow,
    OutboxState,
    PairRow,
    StudyIndexError,
    StudyRow,
    StudyState,
    UnknownStudy,
    check_transition,
)

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    study_uid         TEXT PRIMARY KEY,
    state             TEXT NOT NULL,
    version           INTEGER NOT NULL DEFAULT 1,
    first_instance_at REAL NOT NULL,
    last_instance_at  REAL NOT NULL,
    created_at        REAL NOT NULL,
    updated_at        REAL NOT NULL,
    state_changed_at  REAL NOT NULL,
    planned_at        REAL,
    pairs_key         TEXT,
    plan_json         TEXT,
    task_id           TEXT,
    model_version     TEXT,
    error             TEXT,
    finished_at       REAL,
    purged_at         REAL,
    result_json       TEXT,
    superseded_json   TEXT,
    queued_at         REAL
);
CREATE INDEX IF NOT EXISTS studies_state ON studies(state);
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid    TEXT PRIMARY KEY,
    study_uid           TEXT NOT NULL REFERENCES studies(study_uid),
    series_uid          TEXT,
    sop_class_uid       TEXT NOT NULL,
    transfer_syntax_uid TEXT NOT NULL,
    path                TEXT NOT NULL,
    size                INTEGER NOT NULL,
    header_json         TEXT NOT NULL,
    laterality          TEXT,
    view                TEXT,
    usable              INTEGER NOT NULL,
    reason              TEXT,
    received_at         REAL NOT NULL,
    association_id      INTEGER,
    study_version       INTEGER NOT NULL,
    receive_count       INTEGER NOT NULL DEFAULT 1,
    presentation_intent TEXT,
    image_type          TEXT,
    view_modifiers      TEXT,
    acquisition_datetime TEXT
);
CREATE INDEX IF NOT EXISTS instances_study ON instances(study_uid);
CREATE TABLE IF NOT EXISTS pairs (
    study_uid          TEXT NOT NULL REFERENCES studies(study_uid),
    version            INTEGER NOT NULL,
    target_uid         TEXT NOT NULL,
    contralateral_uid  TEXT NOT NULL,
    laterality         TEXT,
    view               TEXT,
    score_json         TEXT,
    scored_at          REAL,
    PRIMARY KEY (study_uid, version, target_uid)
);
CREATE TABLE IF NOT EXISTS associations (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    calling_ae       TEXT NOT NULL,
    called_ae        TEXT NOT NULL,
    peer_address     TEXT NOT NULL,
    peer_port        INTEGER,
    tls              INTEGER NOT NULL,
    started_at       REAL NOT NULL,
    ended_at         REAL,
    outcome          TEXT NOT NULL,
    instances_ok     INTEGER NOT NULL DEFAULT 0,
    instances_failed INTEGER NOT NULL DEFAULT 0,
    last_failure     TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    study_uid        TEXT NOT NULL,
    study_version    INTEGER NOT NULL,
    kind             TEXT NOT NULL,
    path             TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    sop_class_uid    TEXT NOT NULL,
    sha256           TEXT,
    destination      TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL,
    next_attempt_at  REAL NOT NULL,
    last_attempt_at  REAL,
    settled_at       REAL,
    last_status      INTEGER,
    last_detail      TEXT,
    UNIQUE (sop_instance_uid, destination)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_study ON outbox(study_uid);
CREATE TABLE IF NOT EXISTS errors (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        REAL NOT NULL,
    source    TEXT NOT NULL,
    message   TEXT NOT NULL,
    study_uid TEXT,
    sop_uid   TEXT,
    status    INTEGER
);
"""

_STUDY_COLS = (
    "study_uid, state, version, first_instance_at, last_instance_at, created_at, updated_at, "
    "state_changed_at, planned_at, pairs_key, plan_json, task_id, model_version, error, "
    "finished_at, purged_at, result_json, superseded_json, queued_at, "
    "(SELECT COUNT(*) FROM instances i WHERE i.study_uid = studies.study_uid) AS instance_count"
)
_INSTANCE_COLS = (
    "sop_instance_uid, study_uid, series_uid, sop_class_uid, transfer_syntax_uid, path, size, "
    "header_json, laterality, view, usable, reason, received_at, association_id, "
    "presentation_intent, image_type, view_modifiers, acquisition_datetime, study_version, "
    "receive_count"
)
#: Columns added after the first schema: (table, column, type).
_ADDED_COLUMNS = (
    ("studies", "result_json", "TEXT"),
    ("studies", "superseded_json", "TEXT"),
    ("studies", "queued_at", "REAL"),
    ("instances", "presentation_intent", "TEXT"),
    ("instances", "image_type", "TEXT"),
    ("instances", "view_modifiers", "TEXT"),
    ("instances", "acquisition_datetime", "TEXT"),
)
_OUTBOX_COLS = (
    "id, study_uid, study_version, kind, path, sop_instance_uid, sop_class_uid, sha256, "
    "destination, state, attempts, created_at, next_attempt_at, last_attempt_at, settled_at, "
    "last_status, last_detail"
)
_PAIR_COLS = (
    "study_uid, version, target_uid, contralateral_uid, laterality, view, score_json, scored_at"
)


def _study(row: sqlite3.Row) -> StudyRow:
    data = dict(row)
    data["state"] = StudyState(data["state"])
    return StudyRow(**data)


def _outbox(row: sqlite3.Row) -> OutboxRow:
    data = dict(row)
    data["state"] = OutboxState(data["state"])
    return OutboxRow(**data)


def _instance(row: sqlite3.Row) -> InstanceRow:
    data = dict(row)
    data["usable"] = bool(data["usable"])
    return InstanceRow(**data)


def _private_files(db: Path) -> None:
    """The database (created empty when missing) and its -wal/-shm files: mode 0600, whatever
    the process umask (docs/security.md). SQLite gives a new -wal/-shm the database's mode."""
    os.close(os.open(db, os.O_RDWR | os.O_CREAT, 0o600))
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if path.exists():
            path.chmod(0o600)


class SqliteIndex(Index):
    """:class:`Index` on a SQLite file (created with its folder if missing)."""

    def __init__(self, path: Path, *, readonly: bool = False, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        try:
            if readonly:
                if not self.path.is_file():
                    raise StudyIndexError(
                        f"index {self.path} does not exist; has `brgan serve` run with this "
                        "data_dir?"
                    )
                uri = f"file:{self.path}?mode=ro"
                self._conn = sqlite3.connect(
                    uri, uri=True, timeout=timeout, check_same_thread=False
                )
            else:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                _private_files(self.path)  # before SQLite makes -wal/-shm: they copy its mode
                self._conn = sqlite3.connect(
                    self.path, timeout=timeout, check_same_thread=False, isolation_level=None
                )
                self._conn.execute("PRAGMA journal_mode=WAL")
                _private_files(self.path)  # an older index's -wal/-shm, made before this rule
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.execute("PRAGMA foreign_keys=ON")
                self._conn.executescript(SCHEMA)
                self._migrate()
                self._conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        except (sqlite3.Error, OSError) as exc:
            raise StudyIndexError(f"cannot open index {self.path}: {exc}") from exc
        self._conn.row_factory = sqlite3.Row

    def _migrate(self) -> None:
        """Add columns introduced after a database was created (never drops anything)."""
        for table, column, kind in _ADDED_COLUMNS:
            columns = {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise StudyIndexError(f"index {self.path} is open read-only")
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StudyIndexError(f"index {self.path}: write failed: {exc}") from exc

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                raise StudyIndexError(f"index {self.path}: read failed: {exc}") from exc

    def _get_study(self, conn: sqlite3.Connection, study_uid: str) -> StudyRow:
        row = conn.execute(
            f"SELECT {_STUDY_COLS} FROM studies WHERE study_uid = ?", (study_uid,)
        ).fetchone()
        if row is None:
            raise UnknownStudy(f"study {study_uid} is not in the index {self.path}")
        return _study(row)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- instances --------------------------------------------------------------------------
    def record_instance(self, record: InstanceRecord) -> InstanceRow:
        now = time.time()
        with self._write() as conn:
            before = conn.execute(
                "SELECT study_uid, path FROM instances WHERE sop_instance_uid = ?",
                (record.sop_instance_uid,),
            ).fetchone()
            conn.execute(
                "INSERT INTO studies(study_uid, state, version, first_instance_at, "
                "last_instance_at, created_at, updated_at, state_changed_at) "
                "VALUES (?, ?, 1, ?, ?, ?, ?, ?) ON CONFLICT(study_uid) DO UPDATE SET "
                "last_instance_at = MAX(last_instance_at, excluded.last_instance_at), "
                "updated_at = excluded.updated_at",
                (
                    record.study_uid,
                    StudyState.RECEIVING.value,
                    record.received_at,
                    record.received_at,
                    now,
                    now,
                    now,
                ),
            )
            (version,) = conn.execute(
                "SELECT version FROM studies WHERE study_uid = ?", (record.study_uid,)
            ).fetchone()
            conn.execute(
                f"INSERT INTO instances({_INSTANCE_COLS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) "
                "ON CONFLICT(sop_instance_uid) DO UPDATE SET "
                "study_uid = excluded.study_uid, series_uid = excluded.series_uid, "
                "sop_class_uid = excluded.sop_class_uid, "
                "transfer_syntax_uid = excluded.transfer_syntax_uid, path = excluded.path, "
                "size = excluded.size, header_json = excluded.header_json, "
                "laterality = excluded.laterality, view = excluded.view, "
                "usable = excluded.usable, reason = excluded.reason, "
                "received_at = excluded.received_at, association_id = excluded.association_id, "
                "presentation_intent = excluded.presentation_intent, "
                "image_type = excluded.image_type, view_modifiers = excluded.view_modifiers, "
                "acquisition_datetime = excluded.acquisition_datetime, "
                "study_version = excluded.study_version, receive_count = receive_count + 1",
                (
                    record.sop_instance_uid,
                    record.study_uid,
                    record.series_uid,
                    record.sop_class_uid,
                    record.transfer_syntax_uid,
                    record.path,
                    record.size,
                    record.header_json,
                    record.laterality,
                    record.view,
                    int(record.usable),
                    record.reason,
                    record.received_at,
                    record.association_id,
                    record.presentation_intent,
                    record.image_type,
                    record.view_modifiers,
                    record.acquisition_datetime,
                    version,
                ),
            )
            row = conn.execute(
                f"SELECT {_INSTANCE_COLS} FROM instances WHERE sop_instance_uid = ?",
                (record.sop_instance_uid,),
            ).fetchone()
            moved = before is not None and before["study_uid"] != record.study_uid
            if moved:
                # The old study's arrival times are those of the instances it still has, so a
                # plan made "as of" its latest remaining arrival is not taken for out of date.
                conn.execute(
                    "UPDATE studies SET "
                    "first_instance_at = COALESCE((SELECT MIN(received_at) FROM instances i "
                    "WHERE i.study_uid = studies.study_uid), first_instance_at), "
                    "last_instance_at = COALESCE((SELECT MAX(received_at) FROM instances i "
                    "WHERE i.study_uid = studies.study_uid), last_instance_at), updated_at = ? "
                    "WHERE study_uid = ?",
                    (now, before["study_uid"]),
                )
                old = self._get_study(conn, before["study_uid"])
                if old.state == StudyState.READY:  # its plan named this instance: re-plan
                    check_transition(old.study_uid, old.state, StudyState.RECEIVING)
                    conn.execute(
                        "UPDATE studies SET state = ?, state_changed_at = ?, updated_at = ? "
                        "WHERE study_uid = ?",
                        (StudyState.RECEIVING.value, now, now, old.study_uid),
                    )
        out = _instance(row)
        if moved:
            out = replace(out, moved_from_study=before["study_uid"], moved_from_path=before["path"])
        return out

    def instance(self, sop_instance_uid: str) -> InstanceRow | None:
        rows = self._query(
            f"SELECT {_INSTANCE_COLS} FROM instances WHERE sop_instance_uid = ?",
            (sop_instance_uid,),
        )
        return _instance(rows[0]) if rows else None

    def instances(self, study_uid: str) -> list[InstanceRow]:
        rows = self._query(
            f"SELECT {_INSTANCE_COLS} FROM instances WHERE study_uid = ? "
            "ORDER BY received_at, sop_instance_uid",
            (study_uid,),
        )
        return [_instance(r) for r in rows]

    def known_paths(self) -> set[str]:
        return {r["path"] for r in self._query("SELECT path FROM instances")}

    # -- studies ----------------------------------------------------------------------------
    def get_study(self, study_uid: str) -> StudyRow | None:
        rows = self._query(f"SELECT {_STUDY_COLS} FROM studies WHERE study_uid = ?", (study_uid,))
        return _study(rows[0]) if rows else None

    def studies(
        self, states: Iterable[StudyState] | None = None, limit: int | None = None
    ) -> list[StudyRow]:
        sql = f"SELECT {_STUDY_COLS} FROM studies"
        params: list[Any] = []
        if states is not None:
            wanted = [StudyState(s).value for s in states]
            if not wanted:
                return []
            sql += f" WHERE state IN ({', '.join('?' * len(wanted))})"
            params += wanted
        sql += " ORDER BY updated_at DESC, study_uid"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_study(r) for r in self._query(sql, params)]

    def study_counts(self) -> dict[StudyState, int]:
        counts = dict.fromkeys(StudyState, 0)
        for row in self._query("SELECT state, COUNT(*) AS n FROM studies GROUP BY state"):
            counts[StudyState(row["state"])] = row["n"]
        return counts

    def transition(
        self,
        study_uid: str,
        target: StudyState,
        *,
        expected: StudyState | None = None,
        task_id: str | None = None,
        model_version: str | None = None,
        error: str | None = None,
        queued_at: float | None = None,
    ) -> StudyRow:
        target = StudyState(target)
        now = time.time()
        with self._write() as conn:
            current = self._get_study(conn, study_uid)
            if expected is not None and current.state != expected:
                raise IllegalTransition(
                    f"study {study_uid}: expected state {expected}, found {current.state}"
                )
            check_transition(study_uid, current.state, target)
            sets = ["state = ?", "state_changed_at = ?", "updated_at = ?"]
            params: list[Any] = [target.value, now, now]
            for column, value in (
                ("task_id", task_id),
                ("model_version", model_version),
                ("error", error),
            ):
                if value is not None:
                    sets.append(f"{column} = ?")
                    params.append(value)
            if queued_at is not None:  # the first queue time of a version is kept
                sets.append("queued_at = COALESCE(queued_at, ?)")
                params.append(queued_at)
            if target in FINAL_STATES:
                sets.append("finished_at = ?")
                params.append(now)
            elif target == StudyState.RECEIVING:
                sets.append("finished_at = NULL")
            conn.execute(
                f"UPDATE studies SET {', '.join(sets)} WHERE study_uid = ?",
                (*params, study_uid),
            )
            return self._get_study(conn, study_uid)

    def set_task_id(self, study_uid: str, task_id: str) -> StudyRow:
        with self._write() as conn:
            current = self._get_study(conn, study_uid)
            if current.state not in (StudyState.QUEUED, StudyState.RUNNING):
                raise IllegalTransition(
                    f"study {study_uid}: a task id is set only while queued or running "
                    f"(state is {current.state})"
                )
            conn.execute(
                "UPDATE studies SET task_id = ?, updated_at = ? WHERE study_uid = ?",
                (task_id, time.time(), study_uid),
            )
            return self._get_study(conn, study_uid)

    def open_new_version(self, study_uid: str) -> StudyRow:
        now = time.time()
        with self._write() as conn:
            current = self._get_study(conn, study_uid)
            check_transition(study_uid, current.state, StudyState.RECEIVING)
            # The result objects written so far are superseded by the next version's.
            superseded = json.loads(current.superseded_json or "[]")
            if current.result_json:
                superseded += json.loads(current.result_json).get("result_files") or []
            conn.execute(
                "UPDATE studies SET state = ?, version = version + 1, task_id = NULL, "
                "error = NULL, finished_at = NULL, result_json = NULL, state_changed_at = ?, "
                "updated_at = ?, superseded_json = ?, queued_at = NULL "
                "WHERE study_uid = ?",
                (StudyState.RECEIVING.value, now, now, json.dumps(superseded), study_uid),
            )
            return self._get_study(conn, study_uid)

    def record_plan(
        self,
        study_uid: str,
        version: int,
        *,
        pairs_key: str,
        plan_json: str,
        pairs: Sequence[PairRow],
        as_of: float,
    ) -> StudyRow:
        now = time.time()
        with self._write() as conn:
            current = self._get_study(conn, study_uid)
            if current.version != version:
                raise IllegalTransition(
                    f"study {study_uid}: plan for version {version}, but the study is at "
                    f"version {current.version}"
                )
            conn.execute(
                "UPDATE studies SET pairs_key = ?, plan_json = ?, planned_at = ?, "
                "updated_at = ? WHERE study_uid = ?",
                (pairs_key, plan_json, as_of, now, study_uid),
            )
            conn.execute(
                "DELETE FROM pairs WHERE study_uid = ? AND version = ?", (study_uid, version)
            )
            conn.executemany(
                f"INSERT INTO pairs({_PAIR_COLS}) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                [
                    (study_uid, version, p.target_uid, p.contralateral_uid, p.laterality, p.view)
                    for p in pairs
                ],
            )
            return self._get_study(conn, study_uid)

    def update_plan_json(self, study_uid: str, plan_json: str, as_of: float) -> StudyRow:
        now = time.time()
        with self._write() as conn:
            self._get_study(conn, study_uid)
            conn.execute(
                "UPDATE studies SET plan_json = ?, planned_at = ?, updated_at = ? "
                "WHERE study_uid = ?",
                (plan_json, as_of, now, study_uid),
            )
            return self._get_study(conn, study_uid)

    def record_scores(
        self, study_uid: str, version: int, scores: Mapping[str, str]
    ) -> list[PairRow]:
        now = time.time()
        with self._write() as conn:
            self._get_study(conn, study_uid)
            for target_uid, score_json in scores.items():
                cur = conn.execute(
                    "UPDATE pairs SET score_json = ?, scored_at = ? "
                    "WHERE study_uid = ? AND version = ? AND target_uid = ?",
                    (score_json, now, study_uid, version, target_uid),
                )
                if cur.rowcount != 1:
                    raise StudyIndexError(
                        f"study {study_uid} version {version}: no pair with target {target_uid}"
                    )
        return self.pairs(study_uid, version)

    def record_result(self, study_uid: str, version: int, result_json: str) -> StudyRow:
        now = time.time()
        with self._write() as conn:
            current = self._get_study(conn, study_uid)
            if current.version != version:
                raise IllegalTransition(
                    f"study {study_uid}: result for version {version}, but the study is at "
                    f"version {current.version}"
                )
            conn.execute(
                "UPDATE studies SET result_json = ?, updated_at = ? WHERE study_uid = ?",
                (result_json, now, study_uid),
            )
            return self._get_study(conn, study_uid)

    def pairs(self, study_uid: str, version: int | None = None) -> list[PairRow]:
        if version is None:
            study = self.get_study(study_uid)
            if study is None:
                return []
            version = study.version
        rows = self._query(
            f"SELECT {_PAIR_COLS} FROM pairs WHERE study_uid = ? AND version = ? "
            "ORDER BY laterality, view, target_uid",
            (study_uid, version),
        )
        return [PairRow(**dict(r)) for r in rows]

    def studies_with_new_instances(self) -> list[StudyRow]:
        states = [StudyState.READY.value, *(s.value for s in FINAL_STATES)]
        rows = self._query(
            f"SELECT {_STUDY_COLS} FROM studies WHERE state IN ({', '.join('?' * len(states))}) "
            "AND planned_at IS NOT NULL AND last_instance_at > planned_at "
            "ORDER BY last_instance_at",
            states,
        )
        return [_study(r) for r in rows]

    def due_for_purge(self, finished_before: float) -> list[StudyRow]:
        rows = self._query(
            f"SELECT {_STUDY_COLS} FROM studies WHERE state IN (?, ?, ?) AND purged_at IS NULL "
            "AND finished_at IS NOT NULL AND finished_at < ? "
            # Nothing goes while a result object still waits for a destination.
            "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.study_uid = studies.study_uid "
            "AND o.state NOT IN ('delivered', 'abandoned')) ORDER BY finished_at",
            (
                StudyState.DONE.value,
                StudyState.PARTIALLY_ANALYZED.value,
                StudyState.NOT_ANALYZED.value,
                finished_before,
            ),
        )
        return [_study(r) for r in rows]

    def mark_purged(self, study_uid: str) -> None:
        with self._write() as conn:
            self._get_study(conn, study_uid)
            now = time.time()
            conn.execute(
                "UPDATE studies SET purged_at = ?, updated_at = ? WHERE study_uid = ?",
                (now, now, study_uid),
            )

    # -- audit and errors -------------------------------------------------------------------
    def open_association(
        self,
        calling_ae: str,
        called_ae: str,
        peer_address: str,
        peer_port: int | None,
        tls: bool,
        *,
        outcome: str = "open",
        failure: str | None = None,
    ) -> int:
        now = time.time()
        ended = None if outcome == "open" else now
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO associations(calling_ae, called_ae, peer_address, peer_port, tls, "
                "started_at, ended_at, outcome, last_failure) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    calling_ae,
                    called_ae,
                    peer_address,
                    peer_port,
                    int(tls),
                    now,
                    ended,
                    outcome,
                    failure,
                ),
            )
            return int(cur.lastrowid or 0)

    def count_association_instance(
        self, association_id: int, ok: bool, failure: str | None = None
    ) -> None:
        column = "instances_ok" if ok else "instances_failed"
        with self._write() as conn:
            conn.execute(
                f"UPDATE associations SET {column} = {column} + 1, "
                "last_failure = COALESCE(?, last_failure) WHERE id = ?",
                (failure, association_id),
            )

    def close_association(self, association_id: int, outcome: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE associations SET ended_at = ?, outcome = ? "
                "WHERE id = ? AND ended_at IS NULL",
                (time.time(), outcome, association_id),
            )

    def associations(self, limit: int = 20) -> list[AssociationRow]:
        rows = self._query(
            "SELECT id, calling_ae, called_ae, peer_address, peer_port, tls, started_at, "
            "ended_at, outcome, instances_ok, instances_failed, last_failure FROM associations "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        out = []
        for r in rows:
            data = dict(r)
            data["tls"] = bool(data["tls"])
            out.append(AssociationRow(**data))
        return out

    def record_error(
        self,
        source: str,
        message: str,
        *,
        study_uid: str | None = None,
        sop_uid: str | None = None,
        status: int | None = None,
    ) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO errors(at, source, message, study_uid, sop_uid, status) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), source, message, study_uid, sop_uid, status),
            )

    # -- outbox -------------------------------------------------------------------------------
    def enqueue_outbox(self, items: Sequence[OutboxItem], destinations: Sequence[str]) -> int:
        now = time.time()
        with self._write() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO outbox(study_uid, study_version, kind, path, "
                "sop_instance_uid, sop_class_uid, sha256, destination, state, created_at, "
                "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i.study_uid,
                        i.study_version,
                        i.kind,
                        i.path,
                        i.sop_instance_uid,
                        i.sop_class_uid,
                        i.sha256,
                        d,
                        OutboxState.PENDING.value,
                        now,
                        now,
                    )
                    for i in items
                    for d in destinations
                ],
            )
            return conn.total_changes - before

    def outbox_due(self, destination: str, now: float, limit: int = 50) -> list[OutboxRow]:
        rows = self._query(
            f"SELECT {_OUTBOX_COLS} FROM outbox WHERE destination = ? AND state = ? "
            "AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
            (destination, OutboxState.PENDING.value, now, limit),
        )
        return [_outbox(r) for r in rows]

    def record_send(
        self,
        row_id: int,
        state: OutboxState,
        *,
        status: int | None,
        detail: str | None,
        next_attempt_at: float | None = None,
    ) -> None:
        now = time.time()
        with self._write() as conn:
            conn.execute(
                "UPDATE outbox SET state = ?, attempts = attempts + 1, last_attempt_at = ?, "
                "last_status = ?, last_detail = ?, next_attempt_at = COALESCE(?, "
                "next_attempt_at), settled_at = CASE WHEN ? = 'pending' THEN NULL ELSE ? END "
                "WHERE id = ?",
                (
                    OutboxState(state).value,
                    now,
                    status,
                    detail,
                    next_attempt_at,
                    OutboxState(state).value,
                    now,
                    row_id,
                ),
            )

    def outbox_rows(
        self,
        *,
        states: Iterable[OutboxState] | None = None,
        destination: str | None = None,
        study_uid: str | None = None,
        ids: Iterable[int] | None = None,
        limit: int | None = None,
    ) -> list[OutboxRow]:
        sql, params = self._outbox_where(states, destination, study_uid, ids)
        sql = f"SELECT {_OUTBOX_COLS} FROM outbox{sql} ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_outbox(r) for r in self._query(sql, params)]

    def set_outbox_state(
        self,
        state: OutboxState,
        *,
        states: Iterable[OutboxState] | None = None,
        destination: str | None = None,
        study_uid: str | None = None,
        ids: Iterable[int] | None = None,
    ) -> int:
        where, params = self._outbox_where(states, destination, study_uid, ids)
        now = time.time()
        state = OutboxState(state)
        with self._write() as conn:
            if state == OutboxState.PENDING:  # resend: at once, with a fresh retry window
                cur = conn.execute(
                    "UPDATE outbox SET state = ?, next_attempt_at = ?, created_at = ?, "
                    f"settled_at = NULL, attempts = 0{where}",
                    (state.value, now, now, *params),
                )
            else:
                cur = conn.execute(
                    f"UPDATE outbox SET state = ?, settled_at = ?{where}",
                    (state.value, now, *params),
                )
            return cur.rowcount

    @staticmethod
    def _outbox_where(
        states: Iterable[OutboxState] | None,
        destination: str | None,
        study_uid: str | None,
        ids: Iterable[int] | None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if states is not None:
            wanted = [OutboxState(s).value for s in states]
            clauses.append(f"state IN ({', '.join('?' * len(wanted)) or 'NULL'})")
            params += wanted
        if destination is not None:
            clauses.append("destination = ?")
            params.append(destination)
        if study_uid is not None:
            clauses.append("study_uid = ?")
            params.append(study_uid)
        if ids is not None:
            wanted_ids = [int(i) for i in ids]
            clauses.append(f"id IN ({', '.join('?' * len(wanted_ids)) or 'NULL'})")
            params += wanted_ids
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def outbox_summary(self) -> dict[str, dict[str, Any]]:
        rows = self._query(
            "SELECT destination, state, COUNT(*) AS n, MIN(created_at) AS oldest "
            "FROM outbox GROUP BY destination, state"
        )
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            entry = out.setdefault(
                r["destination"], {s.value: 0 for s in OutboxState} | {"oldest_pending": None}
            )
            entry[r["state"]] = r["n"]
            if r["state"] == OutboxState.PENDING.value:
                entry["oldest_pending"] = r["oldest"]
        return out

    def outbox_holds(self, study_uid: str) -> bool:
        rows = self._query(
            "SELECT 1 FROM outbox WHERE study_uid = ? AND state NOT IN (?, ?) LIMIT 1",
            (study_uid, *(s.value for s in OUTBOX_SETTLED)),
        )
        return bool(rows)

    def errors(self, limit: int = 10) -> list[ErrorRow]:
        rows = self._query(
            "SELECT at, source, message, study_uid, sop_uid, status FROM errors "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [ErrorRow(**dict(r)) for r in rows]
