"""`python -m app.worker`: a worker of cluster mode (SIGN2SOUND_MESSAGE_QUEUE=redis://...): training jobs and videos.

It takes jobs from the RQ queue the servers fill (app.cluster) and runs each exactly as the embedded server
does (app.admin.jobs.JobRunner: `python -m ml.train` in a subprocess, its JSON lines turned into progress), but
into the shared store: progress, log and the finished model (its checkpoint as a blob) reach every server,
and every change is emitted through the message queue to the admins on all of them.

One job at a time, run in this process (RQ's SimpleWorker: no fork), so `kill -9` of the worker ends the
job: the trainer is told by the kernel to die with it (PR_SET_PDEATHSIG), the heartbeat stops, and the
servers mark the job failed. Start as many workers as there are machines (or cores) to train on; each one
needs the data sets its jobs name (../shared/data, and recorded sets in its instance/datasets).

It also reads the videos uploaded to the page (app.cluster.videos), one at a time, in this process too: a waiting
video goes before the next training job, but not past a running one; `--queues videos` keeps a worker for videos.
"""
from __future__ import annotations

import argparse
import ctypes
import logging
import signal
import sys
import time

from flask_socketio import SocketIO
from rq import SimpleWorker

from app.cluster import HEARTBEAT_S, HEARTBEAT_TTL_S, cluster_registry, job_queue
from app.cluster.videos import VideoReader, video_queue
from app.admin.datasets import DatasetStore
from app.admin.jobs import JobRunner
from app.cluster.store import RedisStore, connect
from ml.config import load_config, project_path

log = logging.getLogger(__name__)
_runner: "WorkerRunner | None" = None
_reader: VideoReader | None = None  # made at the first video: a worker for training only never loads MediaPipe
QUEUES = {"videos": video_queue, "training": job_queue}


def _die_with_parent() -> None:
    """In the trainer, before exec: SIGKILL when the worker dies, even by kill -9 (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class WorkerRunner(JobRunner):
    """JobRunner for one job at a time, on demand: no queue of its own (RQ is the queue)."""

    preexec = staticmethod(_die_with_parent)

    def _dispatch(self) -> None:
        pass  # jobs come from RQ, one call of run() each

    def run(self, job_id: int) -> None:
        store = self.db
        job = store.job(job_id)
        if job is None or job["status"] != "queued":
            return  # cancelled (or failed as lost) before it got here
        if store.cancel_requested(job_id):
            store.update_job(job_id, status="cancelled", error="cancelled by the admin", finished_at=time.time())
            self._publish(job_id)
            return
        store.beat(job_id, HEARTBEAT_TTL_S)  # before `running` is visible: servers fail a running job without one
        with self._lock:
            self._launch(job)
        while job_id in self._running:
            try:
                store.beat(job_id, HEARTBEAT_TTL_S)
                if store.cancel_requested(job_id) and not self._running[job_id].cancelled:
                    self.cancel(job_id)
            except KeyError:
                break  # finished between the check and the lookup
            except Exception as exc:  # Redis away for a moment: the job goes on, and its record catches up
                log.warning("job %s: heartbeat failed: %s", job_id, exc)
            time.sleep(HEARTBEAT_S)
        # The heartbeat is left to expire: the final status was written before the runner let the job go.


def _build() -> WorkerRunner:
    config = load_config()
    url = config["message_queue"]
    store = RedisStore(connect(url))
    instance = project_path(config["instance_dir"])
    registry = cluster_registry(store, None, config, instance)
    datasets = DatasetStore(config, instance / "datasets")
    # Write-only: this process has no clients, it only sends through the queue to the servers' clients.
    external = SocketIO(message_queue=url, async_mode="threading")
    runner = WorkerRunner(store, registry, datasets, nice=config["admin"].get("job_nice", 10),
                          emit=lambda event, data: external.emit(event, data, namespace="/admin"))
    return runner


def train(job_id: int) -> None:
    """The RQ job: run training job `job_id` of the shared store."""
    global _runner
    if _runner is None:
        _runner = _build()
    _runner.run(int(job_id))


def transcribe(video_id: str) -> None:
    """The RQ job: read uploaded video `video_id` of the shared store."""
    global _reader
    if _reader is None:
        config = load_config()
        _reader = VideoReader(config, RedisStore(connect(config["message_queue"])),
                              project_path(config["instance_dir"]))
    _reader.read(video_id)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--queues", nargs="+", choices=list(QUEUES), default=list(QUEUES),
                        help="the queues to take jobs from, the first first (default: videos training)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = load_config()
    if not config.get("message_queue"):
        print("app.worker: set SIGN2SOUND_MESSAGE_QUEUE=redis://HOST:PORT/DB (config message_queue)",
              file=sys.stderr)
        return 2
    client = connect(config["message_queue"])
    SimpleWorker([QUEUES[name](client) for name in args.queues], connection=client).work(with_scheduler=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
