"""Cluster mode (config `message_queue` = redis://...): several servers and training workers share one Redis.

Imported only when `message_queue` is set; the embedded default never imports Redis.
- `ClusterJobs` has JobRunner's public API (submit, cancel, job, jobs, start) but runs nothing itself:
  jobs go to an RQ queue and run in `python -m app.worker` processes, which write progress to the shared
  store (app.cluster.store) and emit it through the message queue to the admins on every server.
- A worker beats a per-job heartbeat; every server checks running jobs and fails one whose heartbeat has
  stopped (a worker killed mid-job), so no job stays `running` forever. RQ's own abandoned-job cleanup
  (StartedJobRegistry.cleanup) runs too, but RQ only notices a dead worker a minute or more later.
- `ModelSync` keeps this server's Predictor on the store's active model: it listens for the announcement a
  server publishes when it activates a model, and re-reads the store every few seconds in case one was
  missed (Redis restarted, a reconnect), so a model activated anywhere goes live here within a second.
Live inference never touches Redis: only these threads and the admin's requests do, and when Redis is down
the admin API answers 503 with QUEUE_DOWN and recovers on its own once Redis is back.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import redis
from flask import Flask, jsonify
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import StartedJobRegistry

from app import socketio
from app.admin.jobs import JobError, public_job
from app.admin.models import ModelRegistry
from app.cluster.store import SETTINGS_CHANNEL, RedisStore, connect

QUEUE = "sign2sound-training"
MODELS_DIR = "cluster-models"  # in the instance folder: this machine's copies of the cluster's checkpoints
HEARTBEAT_S = 1.0  # the worker beats this often
HEARTBEAT_TTL_S = 4.0  # a job whose worker missed this long is failed
CHECK_S = 1.0  # servers check running jobs and re-read the active model this often
RQ_CLEANUP_S = 30.0
QUEUED_LOST_S = 30.0  # a queued job with no RQ job this long after its creation was lost on the way in
QUEUE_DOWN = ("the job queue and shared store (Redis at {url}) is unreachable: {exc}. Live reading goes on; "
              "this page recovers by itself when Redis is back")
log = logging.getLogger(__name__)


def job_queue(client: redis.Redis) -> Queue:
    return Queue(QUEUE, connection=client)


class ClusterJobs:
    def __init__(self, store: RedisStore, queue: Queue, job_timeout_s: int, emit):
        self.store, self.queue, self.job_timeout_s, self.emit = store, queue, int(job_timeout_s), emit

    def start(self) -> None:
        socketio.start_background_task(self._watch_running)

    def submit(self, params: dict) -> int:
        job_id = self.store.add_job(params)
        # By name: servers never import the worker. A day of results/failures kept for RQ's own tools.
        self.queue.enqueue("app.worker.train", job_id, job_id=rq_id(job_id), job_timeout=self.job_timeout_s,
                           result_ttl=86400, failure_ttl=86400)
        self._publish(job_id)
        return job_id

    def cancel(self, job_id: int) -> dict:
        job = self.store.job(job_id)
        if job is None:
            raise JobError(f"no job {job_id}", status=404)
        if job["status"] not in ("queued", "running"):
            raise JobError(f"job {job_id} is {job['status']}, nothing to cancel", status=409)
        self.store.request_cancel(job_id)  # the worker that runs (or is about to run) it stops it
        if job["status"] == "queued":
            try:
                Job.fetch(rq_id(job_id), connection=self.queue.connection).cancel()
            except (NoSuchJobError, InvalidJobOperation):
                pass  # already taken by a worker: it sees the cancel request before it starts ml.train
            self.store.update_job(job_id, status="cancelled", error="cancelled by the admin",
                                  finished_at=time.time())
        self._publish(job_id)
        return self.job(job_id)

    def job(self, job_id: int) -> dict | None:
        job = self.store.job(job_id)
        return public_job(job) if job else None

    def jobs(self) -> list[dict]:
        return [public_job(j) for j in self.store.jobs()]

    def _publish(self, job_id: int) -> None:
        self.emit("job", self.job(job_id))

    def _watch_running(self) -> None:
        last_cleanup = 0.0
        while True:
            socketio.sleep(CHECK_S)
            try:
                self._fail_orphans()
                if time.monotonic() - last_cleanup > RQ_CLEANUP_S:
                    last_cleanup = time.monotonic()
                    StartedJobRegistry(queue=self.queue).cleanup()
            except redis.RedisError:
                pass  # the admin API reports Redis down; this resumes when it is back
            except Exception:
                log.exception("checking running jobs failed")

    def _fail_orphans(self) -> None:
        for job in self.store.jobs("running"):
            if self.store.alive(job["id"]):
                continue
            current = self.store.job(job["id"])
            if current and current["status"] == "running" and not self.store.alive(job["id"]):
                self.store.update_job(job["id"], status="failed", pid=None, finished_at=time.time(),
                                      error="the worker running this job stopped (killed or lost) before it finished")
                self._publish(job["id"])
        for job in self.store.jobs("queued"):
            if time.time() - job["created_at"] > QUEUED_LOST_S and not Job.exists(rq_id(job["id"]),
                                                                                  self.queue.connection):
                self.store.update_job(job["id"], status="failed", finished_at=time.time(),
                                      error="the job never reached the queue (Redis failed while it was submitted)")
                self._publish(job["id"])


def rq_id(job_id: int) -> str:
    return f"train-{int(job_id)}"


class ModelSync:
    """Keeps this server's live model on the store's active model (see the module's docstring)."""

    def __init__(self, registry: ModelRegistry, url: str):
        self.registry, self.url = registry, url

    def start(self) -> None:
        try:
            self.registry.restore()
        except redis.RedisError as exc:
            log.error("active model not read, serving %s until Redis answers: %s",
                      self.registry.predictor.model_id, exc)
        socketio.start_background_task(self._listen)

    def _listen(self) -> None:
        client = connect(self.url, pubsub=True)
        while True:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(SETTINGS_CHANNEL)
                last_read = 0.0
                while True:
                    message = pubsub.get_message(timeout=CHECK_S)
                    if message is not None or time.monotonic() - last_read > CHECK_S:
                        last_read = time.monotonic()
                        self.registry.restore()  # a no-op when the live model is already the active one
            except redis.RedisError:
                socketio.sleep(CHECK_S)  # Redis down: keep serving the model we have, try again
            except Exception:
                log.exception("model sync failed; retrying")
                socketio.sleep(CHECK_S)
            finally:
                pubsub.close()


def cluster_registry(store: RedisStore, predictor, config: dict, instance: str | Path) -> ModelRegistry:
    """The model registry on the shared store. Its local copies of checkpoints live apart from the embedded
    mode's instance/models/<job>, whose job numbers are SQLite's and would shadow the cluster's."""
    return ModelRegistry(store, predictor, config["model"]["checkpoint"], Path(instance) / MODELS_DIR, blobs=store)


def init_cluster(app: Flask, predictor, emit) -> tuple[RedisStore, ModelRegistry, ClusterJobs]:
    """The shared store, a registry on it (kept in sync with the other servers) and the queue's job API."""
    config = app.config["SIGN2SOUND"]
    url = config["message_queue"]
    client = connect(url)
    store = RedisStore(client)
    registry = cluster_registry(store, predictor, config, app.instance_path)
    ModelSync(registry, url).start()
    runner = ClusterJobs(store, job_queue(client), config["cluster"]["job_timeout_s"], emit)

    def queue_down(exc: redis.RedisError):
        return jsonify(error=QUEUE_DOWN.format(url=_without_password(url), exc=exc), code="queue_unreachable"), 503

    app.register_error_handler(redis.RedisError, queue_down)
    return store, registry, runner


def _without_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"
