"""Training jobs: each one is `python -m ml.train ...` in its own subprocess, so a crash, a kill or a
runaway job never takes the server with it.

At most `admin.max_concurrent_jobs` run at once; the rest wait as `queued`. A reader thread per job turns
ml.train's JSON lines into progress in SQLite and pushes every change through `emit` (the '/admin'
Socket.IO namespace). Whatever ends the process is recorded: done -> succeeded (and the model registered),
cancel -> cancelled, anything else -> failed with the exit code or signal. Jobs still marked running when a
server starts lost their reader with the old server: they become `interrupted` (and an orphaned trainer
left behind by a killed server is stopped).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from app.admin.datasets import BUILTIN, DatasetError, DatasetStore
from app.admin.db import Database
from app.admin.models import ModelError, ModelRegistry
from ml.checkpoint import CheckpointError, load_checkpoint
from ml.config import ROOT, data_path
from ml.train import parse_args as train_args

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
LOG_LINES = 200  # log tail kept per job
LOG_FLUSH_S = 1.0  # stderr lines reach SQLite at most this often (every progress line flushes too)
CANCEL_GRACE_S = 5.0  # SIGTERM, then SIGKILL after this long
# The trainer needs the data paths and settings from the environment, never the admin's secrets.
SECRET_ENV = ("SIGN2SOUND_ADMIN_PASSWORD", "SIGN2SOUND_ADMIN_PASSWORD_HASH", "SIGN2SOUND_SECRET_KEY")
log = logging.getLogger(__name__)


class JobError(ValueError):
    """A refused job request; `field` names the bad parameter, `status` is the HTTP status to answer."""

    def __init__(self, message: str, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.field, self.status = field, status


def job_defaults(datasets: DatasetStore) -> dict:
    """What a job request leaves out: ml.train's own defaults (one source of truth, read from its parser), and
    every shared source present on this machine."""
    cli = train_args(["--datasets", "-", "--out", "-"])
    return {"epochs": cli.epochs, "lr": cli.lr, "batch_size": cli.batch_size, "seed": cli.seed, "base": None,
            "datasets": [n for n in BUILTIN if data_path(datasets.config, n).exists()]}


def validate_params(payload: object, datasets: DatasetStore, registry: ModelRegistry, max_epochs: int) -> dict:
    """A job request -> clean parameters, omitted fields taking job_defaults; JobError naming the first bad field."""
    if not isinstance(payload, dict):
        raise JobError("the body must be a JSON object", "body")
    allowed = {"epochs", "lr", "batch_size", "datasets", "base", "seed"}
    for key in payload:
        if key not in allowed:
            raise JobError(f"unknown field {key!r} (allowed: {', '.join(sorted(allowed))})", str(key))
    given, payload = payload, {**job_defaults(datasets), **payload}
    params = {
        "epochs": _int(payload, "epochs", 1, max_epochs),
        "lr": _number(payload, "lr"),
        "batch_size": _int(payload, "batch_size", 1, 4096),
        "seed": _int(payload, "seed", 0, 2**31 - 1),
    }
    names = payload["datasets"]
    if names == [] and "datasets" not in given:
        raise JobError("datasets: none given, and no shared source is on this machine to default to", "datasets")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise JobError("datasets must be a non-empty list of data set names", "datasets")
    if len(set(names)) != len(names):
        raise JobError("datasets lists a data set twice", "datasets")
    try:
        for name in names:
            datasets.train_argument(name)
    except DatasetError as exc:
        raise JobError(f"datasets: {exc}", "datasets") from None
    params["datasets"] = names
    base = payload.get("base")
    if base is not None:
        try:
            if not registry.path(base).is_file():
                raise JobError(f"base: the checkpoint of model {base} is missing", "base")
        except ModelError as exc:
            raise JobError(f"base: {exc}", "base") from None
    params["base"] = base
    return params


def _int(payload: dict, field: str, low: int, high: int) -> int:
    value = payload.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise JobError(f"{field} must be an integer from {low} to {high}", field)
    return value


def _number(payload: dict, field: str) -> float:
    value = payload.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise JobError(f"{field} must be a number above 0 and at most 1", field)
    return float(value)


class _Running:
    """What the runner holds for one live subprocess."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.cancelled = False
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        self.progress: list[dict] = []
        self.done: dict | None = None
        self.stderr_reader: threading.Thread | None = None
        self.lock = threading.Lock()  # log + progress, shared by the stdout and stderr readers


class JobRunner:
    preexec: Callable[[], None] | None = None  # run in the trainer before exec (app.worker: die with the worker)

    def __init__(self, db: Database, registry: ModelRegistry, datasets: DatasetStore, *,
                 max_concurrent: int = 1, nice: int = 10, emit: Callable[[str, dict], None] | None = None):
        self.db, self.registry, self.datasets = db, registry, datasets
        self.max_concurrent = max(1, int(max_concurrent))
        self.nice = int(nice)
        self.emit = emit or (lambda event, data: None)
        self._running: dict[int, _Running] = {}
        self._lock = threading.Lock()

    # public API
    def start(self) -> None:
        """Record jobs a previous server left running as interrupted, then run what is queued."""
        for job in self.db.jobs("running"):
            _stop_orphan(job["pid"], self.registry.job_dir(job["id"]))
            self.db.update_job(job["id"], status="interrupted", pid=None, finished_at=time.time(),
                               error="the server stopped while this job was running")
        self._dispatch()

    def submit(self, params: dict) -> int:
        job_id = self.db.add_job(params)
        self._publish(job_id)
        self._dispatch()
        return job_id

    def cancel(self, job_id: int) -> dict:
        with self._lock:
            job = self.db.job(job_id)
            if job is None:
                raise JobError(f"no job {job_id}", status=404)
            running = self._running.get(job_id)
            if job["status"] == "queued":
                self.db.update_job(job_id, status="cancelled", finished_at=time.time())
            elif running is not None:
                running.cancelled = True
                _signal_group(running.proc, signal.SIGTERM)
                threading.Timer(CANCEL_GRACE_S, _signal_group, (running.proc, signal.SIGKILL)).start()
            else:
                raise JobError(f"job {job_id} is {job['status']}, nothing to cancel", status=409)
        self._publish(job_id)
        return self.job(job_id)

    def job(self, job_id: int) -> dict | None:
        job = self.db.job(job_id)
        return public_job(job) if job else None

    def jobs(self) -> list[dict]:
        return [public_job(j) for j in self.db.jobs()]

    # internals
    def _dispatch(self) -> None:
        with self._lock:
            queued = self.db.jobs("queued")
            while queued and len(self._running) < self.max_concurrent:
                job = queued.pop(0)
                self._launch(job)

    def _launch(self, job: dict) -> None:
        job_id, params = job["id"], job["params"]
        out = self.registry.job_dir(job_id)
        try:
            cmd = self._command(params, out)
            out.mkdir(parents=True, exist_ok=True)
            env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
            proc = subprocess.Popen(cmd, cwd=ROOT, env={**env, "PYTHONUNBUFFERED": "1"}, text=True, bufsize=1,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True,  # its own process group: cancel reaches its workers
                                    preexec_fn=self.preexec)
        except (OSError, DatasetError, ModelError) as exc:
            self.db.update_job(job_id, status="failed", error=f"could not start ml.train: {exc}",
                               started_at=time.time(), finished_at=time.time())
            self._publish(job_id)
            return
        _lower_priority(proc.pid, self.nice)
        running = self._running[job_id] = _Running(proc)
        running.log.append("$ python " + " ".join(cmd[1:]))
        self.db.update_job(job_id, status="running", pid=proc.pid, started_at=time.time(), log=_tail(running))
        running.stderr_reader = threading.Thread(target=self._read_stderr, args=(job_id, running), daemon=True,
                                                 name=f"job-{job_id}-stderr")
        running.stderr_reader.start()
        threading.Thread(target=self._watch, args=(job_id, running), daemon=True, name=f"job-{job_id}").start()
        self._publish(job_id)

    def _command(self, params: dict, out: Path) -> list[str]:
        cmd = [sys.executable, "-m", "ml.train", "--datasets",
               *(self.datasets.train_argument(n) for n in params["datasets"]),
               "--epochs", str(params["epochs"]), "--lr", repr(params["lr"]),
               "--batch-size", str(params["batch_size"]), "--seed", str(params["seed"]), "--out", str(out)]
        if params.get("base"):
            cmd += ["--base", str(self.registry.path(params["base"]))]
        return cmd

    def _read_stderr(self, job_id: int, running: _Running) -> None:
        last_flush = 0.0
        for line in running.proc.stderr:
            with running.lock:
                running.log.append(line.rstrip("\n"))
            if time.monotonic() - last_flush > LOG_FLUSH_S:
                last_flush = time.monotonic()
                self.db.update_job(job_id, log=_tail(running))

    def _watch(self, job_id: int, running: _Running) -> None:
        try:
            for line in running.proc.stdout:
                self._on_stdout(job_id, running, line.strip())
            running.proc.wait()
            self._finish(job_id, running)
        except Exception as exc:  # a bug here must still end the job's record, and never the server
            log.exception("job %s: reader failed", job_id)
            _signal_group(running.proc, signal.SIGKILL)
            self.db.update_job(job_id, status="failed", error=f"internal error while following the job: {exc}",
                               finished_at=time.time(), pid=None)
        finally:
            with self._lock:
                self._running.pop(job_id, None)
            self._publish(job_id)
            self._dispatch()

    def _on_stdout(self, job_id: int, running: _Running, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict) or event.get("event") not in ("epoch", "done"):
            if line:
                with running.lock:
                    running.log.append(line)
            return
        if event["event"] == "done":
            running.done = event
            return
        with running.lock:
            running.progress.append({k: v for k, v in event.items() if k != "event"})
            progress = list(running.progress)
        self.db.update_job(job_id, progress=progress, log=_tail(running))
        self._publish(job_id)

    def _finish(self, job_id: int, running: _Running) -> None:
        rc = running.proc.returncode
        if running.stderr_reader is not None:
            running.stderr_reader.join(timeout=5)  # the last stderr lines explain most failures
        fields: dict = {"finished_at": time.time(), "pid": None, "log": _tail(running)}
        if running.cancelled:
            fields.update(status="cancelled", error="cancelled by the admin")
        elif rc == 0 and running.done is not None:
            fields.update(self._register(job_id, running.done))
        elif rc == 0:
            fields.update(status="failed", error="ml.train exited without reporting a checkpoint")
        elif rc < 0:
            fields.update(status="failed", error=f"ml.train was killed by {_signal_name(-rc)}")
        else:
            last = next((l for l in reversed(running.log) if l.strip()), "")
            fields.update(status="failed", error=f"ml.train exited with code {rc}: {last}")
        self.db.update_job(job_id, **fields)

    def _register(self, job_id: int, done: dict) -> dict:
        checkpoint = self.registry.job_dir(job_id) / "best_model.pth"
        try:
            load_checkpoint(checkpoint)  # a model that cannot load is never offered for activation
        except CheckpointError as exc:
            return {"status": "failed", "error": f"the trained checkpoint is unusable: {exc}"}
        metrics = done.get("metrics") if isinstance(done.get("metrics"), dict) else {}
        model_id = self.registry.register(job_id, metrics)
        return {"status": "succeeded", "metrics": metrics, "checkpoint": str(checkpoint), "model": model_id}

    def _publish(self, job_id: int) -> None:
        job = self.job(job_id)
        if job is not None:
            try:
                self.emit("job", job)
            except Exception:  # no listener must ever break a job
                log.exception("job %s: could not push progress", job_id)


def public_job(job: dict) -> dict:
    keys = ("id", "status", "params", "progress", "metrics", "model", "checkpoint", "error", "pid",
            "created_at", "started_at", "finished_at")
    return {**{k: job[k] for k in keys}, "log": job["log"].splitlines()}


def _tail(running: _Running) -> str:
    with running.lock:
        return "\n".join(running.log)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _lower_priority(pid: int, nice: int) -> None:
    """Training yields the CPU to live inference (2 cores here)."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError:
        pass


def _stop_orphan(pid: int | None, out_dir: Path) -> None:
    """A trainer whose server was killed keeps running; stop it, but only if that pid is still that trainer."""
    if not pid:
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return
    if b"ml.train" in cmdline and str(out_dir).encode() in cmdline:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
