"""Cluster mode's "Transcribe a video": the server that takes an upload hands it to a worker through Redis.

A server checks the upload as a single server does (app.live.videos.receive: its size, a readable video, its length),
puts its bytes in Redis (blob videos/<id>.upload) with a record (hash video:<id>) and an RQ job on `sign2sound-videos`;
`python -m app.worker` reads it with app.live.videos.read_upload, the function a single server's threads call, and
writes its progress, then its transcript (and the speech, blob videos/<id>.wav) into the record. Every server answers
GET /api/videos/<id> from that record, so the page's polls may reach any of them through the proxy.
Bounds, cluster-wide (config `transcribe`): `max_jobs` videos waiting or being read (a sorted set, checked under a
Redis lock), `max_kept` finished ones (the oldest dropped first), and every record and blob expires `keep_s` after its
last write. A worker beats a heartbeat while it reads: a record still `reading` whose heartbeat stopped (a worker
killed) is failed with video_worker_lost by the first server that looks at it, and its place is freed. Redis
unreachable: the upload and the polls answer 503 video_queue_down.
"""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from pathlib import Path

import redis
import torch
from flask import Flask
from rq import Queue

from app.cluster import HEARTBEAT_S, HEARTBEAT_TTL_S, cluster_registry
from app.cluster.store import PREFIX, RedisStore, _decode, _encode
from app.live.frames import FrameError
from app.live.session import TrackerPool
from app.live.speech import Speech
from app.live.videos import Job, fraction, read_upload, receive, refuse_oversized, upload_folder
from app.transcribe import Transcript
from ml.config import project_path
from ml.inference import Predictor

VIDEO_QUEUE = "sign2sound-videos"
ACTIVE = PREFIX + "videos-active"  # sorted set: the videos waiting or being read -> when they were taken
KEPT = PREFIX + "videos-kept"  # sorted set: the finished ones -> when they finished
LOCK = PREFIX + "videos-lock"  # taken to count the active ones and add one
log = logging.getLogger(__name__)


def video_queue(client: redis.Redis) -> Queue:
    return Queue(VIDEO_QUEUE, connection=client)


def upload_blob(video_id: str) -> str:
    return f"videos/{video_id}.upload"


def speech_blob(video_id: str) -> str:
    return f"videos/{video_id}.wav"


class VideoRecords:
    """The cluster's video records in Redis, written by the servers (ClusterVideos) and the workers (VideoReader).
    A record's status: queued, reading, done or failed; the page sees `reading` for the first two."""

    def __init__(self, store: RedisStore, settings: dict):
        self.store, self.r, self.settings = store, store.r, settings
        self.keep_s = int(settings["keep_s"])

    def write(self, video_id: str, **fields) -> None:
        with self.r.pipeline() as pipe:
            pipe.hset(_key(video_id), mapping=_encode(fields))
            pipe.expire(_key(video_id), self.keep_s)
            pipe.execute()

    def read(self, video_id: str) -> dict | None:
        record = _decode(self.r.hgetall(_key(video_id)))
        return record if "status" in record else None  # none, or a late progress write after it was dropped

    def beat(self, video_id: str) -> None:
        self.r.set(_alive(video_id), 1, px=int(HEARTBEAT_TTL_S * 1000))

    def reserve(self, video_id: str) -> None:
        """A place for a new video, or FrameError video_busy when `max_jobs` are waiting or being read."""
        with self.r.lock(LOCK, timeout=10, blocking_timeout=10):
            for other in [i.decode() for i in self.r.zrange(ACTIVE, 0, -1)]:
                record = self.settle(other)
                if record is None or record["status"] in ("done", "failed"):
                    self.r.zrem(ACTIVE, other)  # finished, or expired (a server stopped mid-upload)
            active = self.r.zcard(ACTIVE)
            if active >= self.settings["max_jobs"]:
                raise FrameError("video_busy", f"the cluster already reads {active} videos; try again shortly")
            self.write(video_id, status="queued", progress=0.0, created=time.time())
            self.r.zadd(ACTIVE, {video_id: time.time()})

    def drop(self, video_id: str) -> None:
        """An upload refused or never queued: nothing of it stays."""
        with self.r.pipeline() as pipe:
            pipe.delete(_key(video_id))
            pipe.zrem(ACTIVE, video_id)
            pipe.execute()
        self.store.delete_blob(upload_blob(video_id))

    def settle(self, video_id: str) -> dict | None:
        """The record; one left `reading` by a worker that stopped (its heartbeat gone) is failed first."""
        record = self.read(video_id)
        if record is None or record["status"] != "reading" or self.r.exists(_alive(video_id)):
            return record
        record = self.read(video_id)  # the worker writes its result before its heartbeat lapses
        if record is not None and record["status"] == "reading":
            error = FrameError("video_worker_lost", "the worker reading this video stopped (killed or lost) before "
                                                    "it finished")
            self.finish(video_id, status="failed", error=error.as_dict())
            self.store.delete_blob(upload_blob(video_id))
            record = self.read(video_id)
        return record

    def finish(self, video_id: str, **fields) -> None:
        """Write a finished video's result, free its place, and drop the oldest finished beyond `max_kept`."""
        self.write(video_id, **fields)
        now = time.time()
        with self.r.pipeline() as pipe:
            pipe.zrem(ACTIVE, video_id)
            pipe.zadd(KEPT, {video_id: now})
            pipe.zremrangebyscore(KEPT, 0, now - self.keep_s)  # their records have expired
            pipe.execute()
        excess = self.r.zcard(KEPT) - int(self.settings["max_kept"])
        if excess > 0:
            oldest = [i.decode() for i in self.r.zrange(KEPT, 0, excess - 1)]
            self.r.delete(*(_key(old) for old in oldest))
            self.r.zrem(KEPT, *oldest)
            for old in oldest:
                self.store.delete_blob(speech_blob(old))

    def job(self, video_id: str, wav: bool = False) -> Job | None:
        record = self.settle(video_id)
        if record is None:
            return None
        error, transcript, speech = record.get("error"), record.get("transcript"), bool(record.get("speech"))
        return Job(video_id, created=record.get("created", 0.0), progress=record.get("progress", 0.0),
                   status="reading" if record["status"] == "queued" else record["status"],
                   transcript=Transcript.from_dict(transcript) if transcript else None,
                   error=FrameError(error["code"], error["message"]) if error else None, speech=speech,
                   wav=self.store.get_blob(speech_blob(video_id)) if wav and speech else None)


def _key(video_id: str) -> str:
    return f"{PREFIX}video:{video_id}"


def _alive(video_id: str) -> str:
    return f"{PREFIX}alive:video:{video_id}"


@contextlib.contextmanager
def _queue_up():
    """Redis unreachable -> FrameError video_queue_down (the page shows it; the admin's 503 handler would not)."""
    try:
        yield
    except redis.RedisError as exc:
        raise FrameError("video_queue_down", f"the cluster's job queue (Redis) is unreachable: {exc}") from exc


class ClusterVideos:
    """app.live.videos.Videos's API (start, get) for a cluster's server: the workers read, Redis keeps the results."""

    def __init__(self, app: Flask, store: RedisStore):
        self.settings = app.config["SIGN2SOUND"]["transcribe"]
        self.folder = upload_folder(app)
        self.store, self.records = store, VideoRecords(store, self.settings)
        self.queue = video_queue(store.r)

    def start(self, stream, length: int | None, predictor, speech) -> Job:
        """As Videos.start, with the place and the upload in Redis (also FrameError video_queue_down)."""
        refuse_oversized(length, self.settings)
        video_id = secrets.token_urlsafe(16)
        with _queue_up():
            self.records.reserve(video_id)
        path = None
        try:
            path = receive(stream, self.folder, self.settings)
            keep_s = self.records.keep_s
            with _queue_up():
                self.store.put_blob(upload_blob(video_id), path.read_bytes(), ttl_s=keep_s)
                # By name: servers never import the worker. A video waiting longer than it would be kept is dropped.
                self.queue.enqueue("app.worker.transcribe", video_id, job_id=f"video-{video_id}", job_timeout=keep_s,
                                   ttl=keep_s, result_ttl=0, failure_ttl=keep_s)
        except BaseException:
            with contextlib.suppress(redis.RedisError):  # else it expires after keep_s
                self.records.drop(video_id)
            raise
        finally:
            if path is not None:
                path.unlink(missing_ok=True)
        return self.get(video_id)

    def get(self, job_id: str, wav: bool = False) -> Job:
        with _queue_up():
            job = self.records.job(job_id, wav)
        if job is None:
            raise FrameError("video_not_found", "no such video: it was never sent here, or its transcript expired")
        return job


class VideoReader:
    """A worker's side: reads the cluster's uploads one at a time, with the live model, as a single server does."""

    def __init__(self, config: dict, store: RedisStore, instance: Path):
        self.config, self.store = config, store
        self.records = VideoRecords(store, config["transcribe"])
        torch.set_num_threads(int(config["model"]["torch_threads"]))
        self.predictor = Predictor(project_path(config["model"]["checkpoint"]), device=config["model"]["device"],
                                   model_id="shipped")
        self.registry = cluster_registry(store, self.predictor, config, instance)
        self.trackers = TrackerPool({**config["landmarks"], "max_trackers": 1})
        self.speech = Speech(**config["speech"])
        self.folder = Path(instance) / "videos"
        self.folder.mkdir(parents=True, exist_ok=True)

    def read(self, video_id: str) -> None:
        record = self.records.read(video_id)
        if record is None or record["status"] != "queued":
            return  # expired while it waited
        data = self.store.get_blob(upload_blob(video_id))
        if data is None:
            self.records.finish(video_id, status="failed", error=FrameError(
                "video_not_found", "the upload expired before a worker was free to read it").as_dict())
            return
        self.registry.restore()  # the cluster's live model
        self.records.beat(video_id)  # before `reading` is visible: servers fail a reading video without one
        self.records.write(video_id, status="reading", worker=f"{os.getpid()}@{socket.gethostname()}")
        stop = threading.Event()
        threading.Thread(target=self._beat, args=(video_id, stop), daemon=True).start()
        path = self.folder / f"{video_id}.upload"
        shown = [0.0]

        def progress(seconds: float, total: float) -> None:
            done = fraction(seconds, total)
            if done - shown[0] >= 0.01:  # a write a percent, not a frame
                shown[0] = done
                with contextlib.suppress(redis.RedisError):  # Redis away a moment: the result is written at the end
                    self.records.write(video_id, progress=done)

        try:
            path.write_bytes(data)
            del data
            transcript, wav = read_upload(path, self.config, self.predictor, self.trackers, self.speech, progress)
            if wav is not None:
                self.store.put_blob(speech_blob(video_id), wav, ttl_s=self.records.keep_s)
            self.records.finish(video_id, status="done", progress=1.0, transcript=transcript.as_dict(),
                                speech=wav is not None)
        except FrameError as exc:
            self.records.finish(video_id, status="failed", error=exc.as_dict())
        finally:
            stop.set()
            path.unlink(missing_ok=True)
            with contextlib.suppress(redis.RedisError):
                self.store.delete_blob(upload_blob(video_id))

    def _beat(self, video_id: str, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                self.records.beat(video_id)
            except redis.RedisError as exc:
                log.warning("video %s: heartbeat failed: %s", video_id, exc)
