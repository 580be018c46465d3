"""The admin's SQLite file (instance/sign2sound.db): training jobs, registered models, settings.

Plain sqlite3, one short-lived connection per operation (safe from any thread), WAL so readers never wait
for the job runner's writes. JSON columns hold the parts whose shape belongs to ml.train (params, progress,
metrics) so a new field there needs no migration.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '[]',
    metrics TEXT NOT NULL DEFAULT '{}',
    log TEXT NOT NULL DEFAULT '',
    error TEXT,
    checkpoint TEXT,
    model TEXT,
    pid INTEGER,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    job INTEGER,
    metrics TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

JSON_COLUMNS = ("params", "progress", "metrics")
JOB_COLUMNS = ("status", "params", "progress", "metrics", "log", "error", "checkpoint", "model", "pid",
               "started_at", "finished_at")


class Database:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()  # one writer at a time in this process: no "database is locked"
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)

    @contextmanager
    def _connect(self):
        conn = sqlite3.connect(self.path, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            with conn:  # commits, or rolls back on an exception
                yield conn
        finally:
            conn.close()

    def _write(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self._write_lock, self._connect() as conn:
            return conn.execute(sql, args)

    # jobs
    def add_job(self, params: dict) -> int:
        cur = self._write("INSERT INTO jobs (status, params, created_at) VALUES ('queued', ?, ?)",
                          (json.dumps(params), time.time()))
        return int(cur.lastrowid)

    def update_job(self, job_id: int, **fields) -> None:
        unknown = set(fields) - set(JOB_COLUMNS)
        if unknown:
            raise KeyError(f"no job column {sorted(unknown)}")
        values = [json.dumps(v) if k in JSON_COLUMNS else v for k, v in fields.items()]
        assignments = ", ".join(f"{k} = ?" for k in fields)  # keys checked against JOB_COLUMNS above
        self._write(f"UPDATE jobs SET {assignments} WHERE id = ?", (*values, job_id))

    def job(self, job_id: int) -> dict | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job_dict(row) if row else None

    def jobs(self, status: str | None = None) -> list[dict]:
        with self._connect() as conn:
            if status is None:
                rows = conn.execute("SELECT * FROM jobs ORDER BY id DESC").fetchall()
            else:
                rows = conn.execute("SELECT * FROM jobs WHERE status = ? ORDER BY id", (status,)).fetchall()
        return [_job_dict(r) for r in rows]

    # models
    def add_model(self, model_id: str, path: str, job: int | None, metrics: dict) -> None:
        self._write("INSERT OR REPLACE INTO models (id, path, job, metrics, created_at) VALUES (?, ?, ?, ?, ?)",
                    (model_id, path, job, json.dumps(metrics), time.time()))

    def model(self, model_id: str) -> dict | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM models WHERE id = ?", (model_id,)).fetchone()
        return _model_dict(row) if row else None

    def models(self) -> list[dict]:
        with self._connect() as conn:
            return [_model_dict(r) for r in conn.execute("SELECT * FROM models ORDER BY created_at DESC")]

    # settings
    def get_setting(self, key: str, default: str | None = None) -> str | None:
        with self._connect() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row["value"] if row else default

    def set_setting(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))


def _job_dict(row: sqlite3.Row) -> dict:
    job = dict(row)
    for key in JSON_COLUMNS:
        job[key] = json.loads(job[key])
    return job


def _model_dict(row: sqlite3.Row) -> dict:
    model = dict(row)
    model["metrics"] = json.loads(model["metrics"])
    return model
