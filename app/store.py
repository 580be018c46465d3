"""The shared store of cluster mode (config `message_queue`): Redis holds what every server must agree on.

`RedisStore` has the same methods as app.db.Database (jobs, models, settings), so the job runner and the
model registry work on either; it adds what only a cluster needs:
- blobs: named byte strings every server and worker can read (trained checkpoints, ~0.7 MB each;
  personal models can use the same API: put_blob("personal/<key>", data));
- a settings announcement: every set_setting is published on SETTINGS_CHANNEL, so a model activated on
  one server is swapped in on all of them (app.cluster listens);
- a job's heartbeat and cancel request, the two signals between a server and the worker running the job.

Values are JSON in Redis hashes, one field per column: the worker's progress and a server's cancel each
write only their own fields, so neither overwrites the other.
"""
from __future__ import annotations

import json
import re
import time

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from app.db import JOB_COLUMNS

PREFIX = "sign2sound:"
SETTINGS_CHANNEL = PREFIX + "settings"
BLOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,199}$")

def _job_defaults() -> dict:
    return {"progress": [], "metrics": {}, "log": ""}


def connect(url: str, pubsub: bool = False) -> redis.Redis:
    """A client for `url` that fails fast when Redis is down (admin requests answer 503 at once instead of
    hanging) and reconnects by itself on the next command. A pub/sub client gets no read timeout: its
    listener idles between messages, and a timeout there only makes it reconnect over and over."""
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), 2)
    if pubsub:
        return redis.Redis.from_url(url, socket_connect_timeout=2, retry=retry)
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, retry=retry,
                                health_check_interval=10)


class RedisStore:
    def __init__(self, client: redis.Redis):
        self.r = client

    # jobs (as app.db.Database)
    def add_job(self, params: dict) -> int:
        job_id = int(self.r.incr(PREFIX + "job-id"))
        fields = {"status": "queued", "params": params, "created_at": time.time(), **_job_defaults()}
        with self.r.pipeline() as pipe:
            pipe.hset(_job_key(job_id), mapping=_encode(fields))
            pipe.zadd(PREFIX + "jobs", {str(job_id): job_id})
            pipe.execute()
        return job_id

    def update_job(self, job_id: int, **fields) -> None:
        unknown = set(fields) - set(JOB_COLUMNS)
        if unknown:
            raise KeyError(f"no job column {sorted(unknown)}")
        if fields and self.r.exists(_job_key(job_id)):
            self.r.hset(_job_key(job_id), mapping=_encode(fields))

    def job(self, job_id: int) -> dict | None:
        raw = self.r.hgetall(_job_key(job_id))
        return _job_dict(job_id, raw) if raw else None

    def jobs(self, status: str | None = None) -> list[dict]:
        ids = [int(i) for i in self.r.zrange(PREFIX + "jobs", 0, -1)]
        with self.r.pipeline() as pipe:
            for job_id in ids:
                pipe.hgetall(_job_key(job_id))
            rows = [_job_dict(i, raw) for i, raw in zip(ids, pipe.execute()) if raw]
        if status is None:
            return rows[::-1]  # newest first, as Database.jobs()
        return [j for j in rows if j["status"] == status]

    # models
    def add_model(self, model_id: str, path: str, job: int | None, metrics: dict) -> None:
        created = time.time()
        fields = {"id": model_id, "path": path, "job": job, "metrics": metrics, "created_at": created}
        with self.r.pipeline() as pipe:
            pipe.hset(PREFIX + "model:" + model_id, mapping=_encode(fields))
            pipe.zadd(PREFIX + "models", {model_id: created})
            pipe.execute()

    def model(self, model_id: str) -> dict | None:
        raw = self.r.hgetall(PREFIX + "model:" + model_id)
        return _decode(raw) if raw else None

    def models(self) -> list[dict]:
        ids = [i.decode() for i in self.r.zrevrange(PREFIX + "models", 0, -1)]
        with self.r.pipeline() as pipe:
            for model_id in ids:
                pipe.hgetall(PREFIX + "model:" + model_id)
            return [_decode(raw) for raw in pipe.execute() if raw]

    # settings: every change is announced
    def get_setting(self, key: str, default: str | None = None) -> str | None:
        value = self.r.hget(PREFIX + "settings", key)
        return value.decode() if value is not None else default

    def set_setting(self, key: str, value: str) -> None:
        with self.r.pipeline() as pipe:
            pipe.hset(PREFIX + "settings", key, value)
            pipe.publish(SETTINGS_CHANNEL, key)
            pipe.execute()

    # blobs
    def put_blob(self, name: str, data: bytes, ttl_s: int | None = None) -> None:
        """Store `data` under `name` (for good, or for `ttl_s` seconds: what visitors create without a login)."""
        self.r.set(_blob_key(name), data, ex=ttl_s)

    def get_blob(self, name: str) -> bytes | None:
        return self.r.get(_blob_key(name))

    def delete_blob(self, name: str) -> None:
        self.r.delete(_blob_key(name))

    # a job's heartbeat (the worker running it beats; servers fail a running job whose beat stopped)
    def beat(self, job_id: int, ttl_s: float) -> None:
        self.r.set(f"{PREFIX}alive:{int(job_id)}", 1, px=int(ttl_s * 1000))

    def alive(self, job_id: int) -> bool:
        return bool(self.r.exists(f"{PREFIX}alive:{int(job_id)}"))

    # a cancel asked on any server, carried out by the worker running the job
    def request_cancel(self, job_id: int) -> None:
        self.r.set(f"{PREFIX}cancel:{int(job_id)}", 1, ex=7 * 24 * 3600)

    def cancel_requested(self, job_id: int) -> bool:
        return bool(self.r.exists(f"{PREFIX}cancel:{int(job_id)}"))


def _job_key(job_id: int) -> str:
    return f"{PREFIX}job:{int(job_id)}"


def _blob_key(name: str) -> str:
    if not isinstance(name, str) or not BLOB_NAME.match(name) or ".." in name:
        raise ValueError(f"blob name {name!r}: letters, digits and _ . / - only")
    return PREFIX + "blob:" + name


def _encode(fields: dict) -> dict:
    return {k: json.dumps(v) for k, v in fields.items()}


def _decode(raw: dict) -> dict:
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def _job_dict(job_id: int, raw: dict) -> dict:
    job = {k: None for k in JOB_COLUMNS} | _job_defaults() | _decode(raw)
    return {**job, "id": job_id}
