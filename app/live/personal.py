"""Personal models on disk and the adaptations that make them.

A personal key is a capability: 32 url-safe characters from `secrets` (192 bits), handed to the browser once
and kept there. The server keeps only what the key opens, in instance/personal/<sha256 of the key>/
(model.pth, samples.npz: landmarks, never images), so a listing of the folder names no key. Each entry is
written whole in a staging folder and renamed into place; forgetting renames it away before deleting it, so
no reader ever sees half an entry. The store is bounded in count and bytes, least recently used (folder
mtime, touched on every use) evicted first.

In cluster mode (`shared`: app.cluster.store.RedisStore) Redis holds every entry and decides whether it exists: the
store's bounds hold there, cluster-wide (an index of entries by last use, a TTL as a backstop), and each
server's folder is a cache of the entries its clients used, fetched on a connect that lacks it. A forget or an
eviction anywhere deletes the Redis entry; every server drops its copy when the key is next used or at its next
sweep (SWEEP_S). Redis down: a key whose entry is cached here keeps its model, any other gets the shared model
and `personal_unavailable` (the key is kept); the frames themselves never touch Redis.

An adaptation runs ml.personal.adapt in its own niced subprocess (`python -m ml.personal`), at most
`max_concurrent` at once and the rest queued: the live frames of everyone else keep the CPU, a crash costs
only that adaptation, and the server's event loop never waits on it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from app.live.frames import FrameError
from ml.checkpoint import CheckpointError, load_checkpoint
from ml.config import ROOT
from ml.inference import PersonalModel

KEY = re.compile(r"^[A-Za-z0-9_-]{32}$")  # secrets.token_urlsafe(24)
MODEL_FILE, SAMPLES_FILE = "model.pth", "samples.npz"
CURRENT_FILE = "current.pth"  # staged: the user's personal model so far, which the new one must read better than
FILES = [MODEL_FILE, SAMPLES_FILE]
SWEEP_S = 10.0  # cluster mode: how often a server drops its copies of entries forgotten or evicted elsewhere
log = logging.getLogger(__name__)


def new_key() -> str:
    """A new user's key: 32 URL-safe characters, never starting with "-", which a command line would take for an
    option (`python -m app.transcribe --personal-key KEY` failed for one key in 64)."""
    while (key := secrets.token_urlsafe(24)).startswith("-"):
        pass
    return key


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class PersonalStore:
    """instance/personal/: one folder per key hash, bounded by `max_models` and `max_bytes` (LRU)."""

    def __init__(self, folder: str | Path, max_models: int, max_bytes: int, device="cpu", shared=None,
                 ttl_s: int | None = None):
        self.folder = Path(folder)
        self.max_models, self.max_bytes = int(max_models), int(max_bytes)
        self.device = device
        self.shared, self.ttl_s = shared, ttl_s  # cluster mode: the Redis store, and an entry's time unused
        self._pending_forgets: set[str] = set()  # forgotten while Redis was down: deleted there at the next sweep
        self._lock = threading.Lock()
        self.folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.folder.glob(".*"):  # staging or trash of a server that stopped mid-write
            shutil.rmtree(leftover, ignore_errors=True)

    def _entry(self, key: str) -> Path:
        return self.folder / key_hash(key)

    def staging(self) -> Path:
        path = self.folder / f".stage-{secrets.token_hex(8)}"
        path.mkdir()
        return path

    def load(self, key: object) -> PersonalModel:
        """The personal model `key` opens; FrameError unknown_key for a malformed, unknown or evicted key."""
        if not isinstance(key, str) or not KEY.match(key):
            raise FrameError("unknown_key", "that personal key is malformed: reading with the shared model")
        entry = self._entry(key)
        with self._lock:
            try:
                model, meta = load_checkpoint(entry / MODEL_FILE, self.device)
                os.utime(entry)  # most recently used
            except (CheckpointError, OSError):
                raise FrameError("unknown_key", "no personal model for this key (forgotten, removed as the "
                                                   "least recently used, or never made): reading with the "
                                                   "shared model; calibrate again to make one") from None
        return PersonalModel(model, meta)

    def sync(self, key: object) -> None:
        """Cluster mode, before `load`: drop this server's copy of an entry Redis no longer has, fetch one it
        lacks or holds an older version of. It waits on Redis: never call it on the frames' worker threads."""
        if self.shared is None or not isinstance(key, str) or not KEY.match(key):
            return  # embedded: the folder is all there is; a malformed key is load's to refuse
        entry = self._entry(key)
        try:
            digest = self.shared.touch_personal(entry.name, FILES, self.ttl_s)
            if digest is None:
                with self._lock:
                    self._remove(entry)  # forgotten or evicted on another server
                return
            if _digest(entry) == digest:
                return
            files = self.shared.get_personal(entry.name, FILES)  # none here, or calibrated again elsewhere
        except OSError as exc:  # app.cluster.store.StoreDown
            if (entry / MODEL_FILE).is_file():
                log.warning("Redis unreachable, reading with this server's copy of a personal model: %s", exc)
                return
            raise FrameError("personal_unavailable", "your personal model is kept in the cluster's shared "
                                                        "store, which is unreachable right now: reading with the "
                                                        "shared model; reconnect later to get yours back") from None
        if files is None:
            return
        staged = self.staging()
        for name, data in files.items():
            (staged / name).write_bytes(data)
        with self._lock:  # as commit: the whole entry appears at once
            self._remove(entry)
            os.replace(staged, entry)
            self._evict(keep=entry)

    def samples_path(self, key: str) -> Path:
        return self._entry(key) / SAMPLES_FILE

    def stage_current(self, key: str, staged: Path) -> Path | None:
        """A copy of the key's personal model in `staged` (an adaptation compares with it), or None when it has
        none (a copy, so that a forget or another commit meanwhile cannot pull it away from the adaptation)."""
        try:
            return Path(shutil.copyfile(self._entry(key) / MODEL_FILE, staged / CURRENT_FILE))
        except OSError:
            return None

    def commit(self, key: str, staged: Path) -> None:
        """Make `staged` (model.pth + samples.npz) the entry of `key`, replacing any earlier one, then evict the
        least recently used entries past the bounds. FrameError store_full if this entry alone is too big."""
        size = _size(staged)
        if size > self.max_bytes:
            shutil.rmtree(staged, ignore_errors=True)
            raise FrameError("store_full", f"a personal model of {size} bytes exceeds the store's "
                                              f"{self.max_bytes} bytes; nothing was saved")
        entry = self._entry(key)
        evicted = []
        if self.shared is not None:  # Redis first: an entry on disk but not there would be swept away
            files = {name: (staged / name).read_bytes() for name in FILES}
            try:
                evicted = self.shared.put_personal(entry.name, files, _digest(staged), self.max_models,
                                                   self.max_bytes, self.ttl_s)
            except OSError:  # app.cluster.store.StoreDown
                shutil.rmtree(staged, ignore_errors=True)
                raise FrameError("adapt_failed", "the cluster's shared store (Redis) is unreachable, so the "
                                                    "personal model was not saved; calibrate again when it is "
                                                    "back") from None
        with self._lock:
            for name in evicted:
                self._remove(self.folder / name)
            self._remove(entry)
            os.replace(staged, entry)
            os.utime(entry)
            self._evict(keep=entry)

    def delete(self, key: str) -> bool:
        """Forget: the model and its samples go together (one rename, then the delete)."""
        if not isinstance(key, str) or not KEY.match(key):
            return False
        entry = self._entry(key)
        with self._lock:
            if self.shared is not None:
                self._pending_forgets.add(entry.name)  # Redis's entry: forget_shared, off the frames' threads
            return self._remove(entry)

    def forget_shared(self) -> None:
        """Cluster mode: delete from Redis the entries forgotten here (after `delete`, and at every sweep in
        case Redis was down). StoreDown (OSError) when Redis does not answer."""
        for name in list(self._pending_forgets):
            self.shared.delete_personal(name, FILES)
            with self._lock:
                self._pending_forgets.discard(name)

    def sweep(self) -> None:
        """Cluster mode: carry out the forgets Redis missed, drop the copies of entries forgotten or evicted
        on other servers. StoreDown (OSError) when Redis does not answer."""
        self.forget_shared()
        local = [p.name for p in self.entries()]
        kept = self.shared.personal_names(local) if local else set()
        with self._lock:
            for name in set(local) - kept:
                self._remove(self.folder / name)

    def entries(self) -> list[Path]:
        return [p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")]

    def _remove(self, entry: Path) -> bool:
        trash = self.folder / f".trash-{secrets.token_hex(8)}"
        try:
            os.replace(entry, trash)
        except FileNotFoundError:
            return False
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def _evict(self, keep: Path) -> None:
        entries = sorted(self.entries(), key=lambda p: p.stat().st_mtime)  # oldest first
        sizes = {p: _size(p) for p in entries}
        total = sum(sizes.values())
        for entry in entries:
            if len(entries) <= self.max_models and total <= self.max_bytes:
                break
            if entry == keep:
                continue
            log.info("personal store full: evicting the least recently used entry")
            self._remove(entry)
            entries = [e for e in entries if e != entry]
            total -= sizes[entry]


def _digest(entry: Path) -> str | None:
    """sha256 over the entry's files (~0.7 MB: about a millisecond); None when it is incomplete or absent."""
    digest = hashlib.sha256()
    try:
        for name in FILES:
            digest.update((entry / name).read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


class HourlyLimit:
    """At most `limit` events per name in any hour (names: a key hash, a client address). In memory: a
    restart forgets, which costs at most one more hour's worth."""

    def __init__(self, limit: int, window_s: float = 3600.0, clock=time.monotonic):
        self.limit, self.window_s, self.clock = int(limit), window_s, clock
        self._events: dict[str, deque] = {}
        self._lock = threading.Lock()

    def allow(self, name: str) -> bool:
        with self._lock:
            now = self.clock()
            for other in [n for n, q in self._events.items() if q and q[-1] <= now - self.window_s]:
                del self._events[other]  # bounded: names idle for an hour are dropped
            events = self._events.setdefault(name, deque())
            while events and events[0] <= now - self.window_s:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True


@dataclass
class Job:
    """One adaptation: samples staged in `staged`, callbacks run on the pool's reader thread."""
    owner: str                                   # the client's sid: one job each, cancelled on disconnect
    checkpoint: Path                             # the shared model it adapts
    staged: Path                                 # holds samples.npz; the subprocess writes model.pth there
    on_progress: Callable[[int, int], None]
    on_done: Callable[[dict], None]              # the subprocess's result: before, after, seconds, ...
    on_error: Callable[[FrameError], None]
    fresh: int = 0                               # samples.npz's last `fresh` frames are new since current.pth
    proc: subprocess.Popen | None = field(default=None, repr=False)
    cancelled: bool = False


class AdaptationPool:
    """Runs jobs in subprocesses, `max_concurrent` at once; `submit` answers the queue position (0: started,
    1: next to start, ...)."""

    def __init__(self, max_concurrent: int, max_queued: int, nice: int, timeout_s: float, steps: int | None = None):
        self.max_concurrent, self.max_queued = max(1, int(max_concurrent)), int(max_queued)
        self.nice, self.timeout_s, self.steps = int(nice), float(timeout_s), steps
        self._waiting: deque[Job] = deque()
        self._running: list[Job] = []
        self._lock = threading.Lock()

    def submit(self, job: Job) -> int:
        with self._lock:
            if any(j.owner == job.owner for j in [*self._waiting, *self._running]):
                raise FrameError("adapt_busy", "an adaptation for this connection is already queued or running")
            if len(self._running) >= self.max_concurrent and len(self._waiting) >= self.max_queued:
                raise FrameError("adapt_busy", f"{len(self._waiting)} adaptations are waiting already; "
                                                  "try again in a minute")
            self._waiting.append(job)
            # Its place in the queue (1: next to start), or 0 when it starts at once.
            position = len(self._waiting) if len(self._running) >= self.max_concurrent else 0
        self._dispatch()
        return position

    def has(self, owner: str) -> bool:
        """`owner` has a job queued or running."""
        with self._lock:
            return any(j.owner == owner for j in [*self._waiting, *self._running])

    def cancel(self, owner: str) -> None:
        """Drop `owner`'s job: out of the queue, or its subprocess killed (its staging folder is removed)."""
        with self._lock:
            for job in [*self._waiting, *self._running]:
                if job.owner == owner:
                    job.cancelled = True
                    if job in self._waiting:
                        self._waiting.remove(job)
                        shutil.rmtree(job.staged, ignore_errors=True)
                    elif job.proc is not None and job.proc.poll() is None:
                        job.proc.kill()

    def _dispatch(self) -> None:
        with self._lock:
            while self._waiting and len(self._running) < self.max_concurrent:
                job = self._waiting.popleft()
                self._running.append(job)
                threading.Thread(target=self._run, args=(job,), name="adaptation", daemon=True).start()

    def _run(self, job: Job) -> None:
        try:
            self._follow(job)
        except Exception as exc:  # never leave the client waiting, never take the server down
            log.exception("adaptation failed")
            if not job.cancelled:
                job.on_error(FrameError("adapt_failed", f"the adaptation failed: {exc}"))
        finally:
            if job.proc is not None and job.proc.poll() is None:
                job.proc.kill()
            with self._lock:
                self._running.remove(job)
            self._dispatch()

    def _follow(self, job: Job) -> None:
        cmd = [sys.executable, "-m", "ml.personal", "--checkpoint", str(job.checkpoint),
               "--samples", str(job.staged / SAMPLES_FILE), "--out", str(job.staged / MODEL_FILE)]
        if self.steps:
            cmd += ["--steps", str(self.steps)]
        if (job.staged / CURRENT_FILE).is_file():
            cmd += ["--current", str(job.staged / CURRENT_FILE), "--fresh", str(job.fresh)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGN2SOUND_ADMIN") and k != "SIGN2SOUND_SECRET_KEY"}
        job.proc = subprocess.Popen(cmd, cwd=ROOT, env={**env, "PYTHONUNBUFFERED": "1"}, text=True,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            os.setpriority(os.PRIO_PROCESS, job.proc.pid, self.nice)  # live frames keep the CPU
        except OSError:
            pass
        if job.cancelled:
            job.proc.kill()
        timer = threading.Timer(self.timeout_s, job.proc.kill)
        timer.start()
        stderr: deque[str] = deque(maxlen=20)
        threading.Thread(target=lambda: stderr.extend(job.proc.stderr), daemon=True).start()
        outcome = None
        try:
            for line in job.proc.stdout:
                event = json.loads(line) if line.startswith("{") else {}
                if "step" in event and not job.cancelled:
                    job.on_progress(event["step"], event["steps"])
                elif "done" in event or "error" in event:
                    outcome = event
            job.proc.wait()
        finally:
            timer.cancel()
        if job.cancelled:
            shutil.rmtree(job.staged, ignore_errors=True)
        elif outcome and "done" in outcome and job.proc.returncode == 0:
            job.on_done(outcome["done"])
        elif outcome and "error" in outcome:
            job.on_error(FrameError(outcome["error"]["code"], outcome["error"]["message"]))
        else:
            why = "it ran past its time limit" if job.proc.returncode == -9 else f"exit code {job.proc.returncode}"
            log.error("adaptation subprocess failed (%s): %s", why, "".join(stderr)[-2000:])
            job.on_error(FrameError("adapt_failed", f"the adaptation failed ({why}); the shared model is still in use"))
        if job.cancelled or not (outcome and "done" in outcome):
            shutil.rmtree(job.staged, ignore_errors=True)
