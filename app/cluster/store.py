"""The shared store of cluster mode (config `message_queue`): Redis holds what every server must agree on.

`RedisStore` has the same methods as app.admin.db.Database (jobs, models, settings), so the job runner and the
model registry work on either; it adds what only a cluster needs:
- blobs: named byte strings every server and worker can read (trained checkpoints, ~0.7 MB each);
- personal models (app.live.personal): each entry's files as blobs personal/<key hash>/<file>, indexed by a sorted
  set of key hashes scored by last use, so the count/bytes bounds and LRU eviction hold cluster-wide, with a
  TTL on every part as a backstop (refreshed on each use);
- a settings announcement: every set_setting is published on SETTINGS_CHANNEL, so a model activated on
  one server is swapped in on all of them (app.cluster listens);
- a job's heartbeat and cancel request, the two signals between a server and the worker running the job.

Values are JSON in Redis hashes, one field per column: the worker's progress and a server's cancel each
write only their own fields, so neither overwrites the other.
"""
from __future__ import annotations

import contextlib
import json
import re
import time

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from app.admin.db import JOB_COLUMNS

PREFIX = "sign2sound:"
SETTINGS_CHANNEL = PREFIX + "settings"
BLOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,199}$")
PERSONAL_INDEX = PREFIX + "personal"  # sorted set: key hash -> last use (unix time)
PERSONAL_BYTES = PREFIX + "personal-bytes"  # hash: key hash -> bytes of its blobs
PERSONAL_DIGEST = PREFIX + "personal-digest"  # hash: key hash -> its files' digest (a server's copy may be stale)


class StoreDown(OSError):
    """Redis did not answer (app.live.personal falls back to local files without importing redis)."""


@contextlib.contextmanager
def _down_as_oserror():
    try:
        yield
    except redis.RedisError as exc:
        raise StoreDown(str(exc)) from exc

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

    # jobs (as app.admin.db.Database)
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

    # personal models: every method raises StoreDown when Redis does not answer
    def put_personal(self, name: str, files: dict[str, bytes], digest: str, max_count: int, max_bytes: int,
                     ttl_s: int) -> list[str]:
        """Store entry `name` (replacing it), then evict the least recently used others past the bounds and
        those unused for `ttl_s`; answers the names evicted."""
        with _down_as_oserror():
            with self.r.pipeline() as pipe:
                for file, data in files.items():
                    pipe.set(_blob_key(f"personal/{name}/{file}"), data, ex=ttl_s)
                pipe.zadd(PERSONAL_INDEX, {name: time.time()})
                pipe.hset(PERSONAL_BYTES, name, sum(len(d) for d in files.values()))
                pipe.hset(PERSONAL_DIGEST, name, digest)
                pipe.execute()
            stale = [n.decode() for n in self.r.zrangebyscore(PERSONAL_INDEX, 0, time.time() - ttl_s)]
            names = [n.decode() for n in self.r.zrange(PERSONAL_INDEX, 0, -1)]  # oldest first
            sizes = dict(zip(names, (int(b or 0) for b in self.r.hmget(PERSONAL_BYTES, names)))) if names else {}
            count, total, evicted = len(names), sum(sizes.values()), []
            for other in names:
                if other != name and (other in stale or count > max_count or total > max_bytes):
                    evicted.append(other)
                    count, total = count - 1, total - sizes[other]
            for other in evicted:
                self.delete_personal(other, list(files))
            return evicted

    def touch_personal(self, name: str, files: list[str], ttl_s: int) -> str | None:
        """Mark entry `name` used now (its TTL starts again) and answer its digest; None: no such entry."""
        with _down_as_oserror():
            digest = self.r.hget(PERSONAL_DIGEST, name)
            if digest is None or self.r.zscore(PERSONAL_INDEX, name) is None:
                return None
            with self.r.pipeline() as pipe:
                pipe.zadd(PERSONAL_INDEX, {name: time.time()})
                for file in files:
                    pipe.expire(_blob_key(f"personal/{name}/{file}"), ttl_s)
                if all(pipe.execute()[1:]):
                    return digest.decode()
            self.delete_personal(name, files)  # a part expired: the entry is gone
            return None

    def get_personal(self, name: str, files: list[str]) -> dict[str, bytes] | None:
        with _down_as_oserror():
            data = self.r.mget([_blob_key(f"personal/{name}/{file}") for file in files])
        return None if None in data else dict(zip(files, data))

    def delete_personal(self, name: str, files: list[str]) -> None:
        with _down_as_oserror(), self.r.pipeline() as pipe:
            pipe.delete(*(_blob_key(f"personal/{name}/{file}") for file in files))
            pipe.zrem(PERSONAL_INDEX, name)
            pipe.hdel(PERSONAL_BYTES, name)
            pipe.hdel(PERSONAL_DIGEST, name)
            pipe.execute()

    def personal_names(self, names: list[str]) -> set[str]:
        """Those of `names` that are stored entries."""
        with _down_as_oserror(), self.r.pipeline() as pipe:
            for name in names:
                pipe.zscore(PERSONAL_INDEX, name)
            return {n for n, score in zip(names, pipe.execute()) if score is not None}

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
