"""Calibration on the live connection (default namespace): record the user's own signs, adapt, read with them.

client `calibrate` {"label": "A"}  every frame with a hand is also kept as a sample of A (a new take of A
                                   replaces A's earlier frames: that is redo); its `result` gains
                                   "calibration": {"label", "samples"}; {"label": null} stops the take. Ack: the
                                   same. From the first `calibrate` (the page sends {"label": null} as it opens
                                   its first countdown) until `adapt` or {"label": null, "end": true} (the user
                                   cancelled) the session is calibrating: no frame reaches the speller.
client `adapt`                     ack {"queued": n} (place in the queue, 1 = next; 0: started at once), then
                                   `adapt_progress` {"step", "steps"} and `adapted` {"model", "key", "samples",
                                   "classes", "seconds", "before", "after", "confused", "switched"}, or `error`
                                   {"code", "message"} (then the ack is {"queued": null}). confused: {class: the
                                   class its held-back frames read as}; the session switches to the personal
                                   model ("model": "personal", switched) only when none is, else it keeps the
                                   shared one (the key opens the personal model when the user asks for it).
client `forget`                    the personal model and its samples deleted; ack {"model": the shared id}
connect auth {"personal_key": K}   reads with K's personal model, or `error` unknown_key and the shared model
                                   (cluster mode with Redis down: personal_unavailable, the key stays good)

Frames are kept as landmarks only, in memory until `adapt`. Bounds: samples per class (`calibration`
config), the 28 classes, adaptations per key and per client address per hour, the queue, the store.
"""
from __future__ import annotations

import logging
import shutil
import time

import numpy as np
from flask import Flask, current_app, request

from app import socketio
from app.admin import EmitPump
from app.live.frames import FrameError
from app.live.personal import SWEEP_S, AdaptationPool, HourlyLimit, Job, PersonalStore, key_hash, new_key
from app.live.realtime import run_blocking
from app.live.session import Session
from ml.personal import CALIBRATION_CLASSES, Samples

log = logging.getLogger(__name__)

class Recorder:
    """One client's calibration frames (landmarks, aspect, handedness), at most `max_per_class` per class."""

    def __init__(self, max_per_class: int):
        self.max_per_class = int(max_per_class)
        self.label: str | None = None
        self.active = False  # calibrating: from the first `calibrate` until adapt or the user's cancel
        self.take = 0
        self.frames: dict[str, list[tuple]] = {}  # class -> [(landmarks, aspect, is_left, take)]

    def start(self, label: str | None, end: bool = False) -> None:
        self.label = label
        self.active = not end
        if label is not None:
            self.take += 1
            self.frames[label] = []

    def add(self, hand, aspect: float) -> None:
        if self.label is not None and len(self.frames[self.label]) < self.max_per_class:
            self.frames[self.label].append((hand.landmarks, aspect, hand.is_left, self.take))

    def status(self) -> dict:
        if self.label is None:
            return {"label": None, "samples": 0}
        count = len(self.frames[self.label])
        status = {"label": self.label, "samples": count}
        if count >= self.max_per_class:
            status["error"] = FrameError("class_full", f"{self.label} has its {count} samples: further frames "
                                                       "are not kept").as_dict()
        return status

    def samples(self) -> Samples | None:
        rows = [(lm, a, left, take, label) for label, frames in self.frames.items() for lm, a, left, take in frames]
        if not rows:
            return None
        lm, aspect, left, takes, labels = zip(*rows)
        return Samples(np.stack(lm), np.array(aspect), np.array(left), np.array(labels), np.array(takes))


def init_app(app: Flask) -> None:
    config = app.config["SIGN2SOUND"]["calibration"]
    device = app.extensions["predictor"].device
    # cluster mode: Redis holds every personal model (app.live.personal), this server's folder a cache of them
    shared = app.extensions["blobs"]
    store = PersonalStore(app.instance_path + "/personal", config["max_personal_models"],
                          int(config["max_store_mb"] * 2**20), device, shared=shared,
                          ttl_s=int(config["cluster_ttl_days"] * 86400))
    app.extensions["personal_store"] = store
    if shared is not None:
        socketio.start_background_task(_sweep, store)
    app.extensions["adaptations"] = AdaptationPool(config["max_concurrent"], config["max_queued"], config["nice"],
                                                   config["timeout_s"], config.get("steps"))
    app.extensions["adapt_limits"] = (HourlyLimit(config["adaptations_per_key_per_hour"]),
                                      HourlyLimit(config["adaptations_per_client_per_hour"]))
    # to the client's own connection, never through Redis (it would reach every server, and not when Redis is down)
    app.extensions["calibration_pump"] = EmitPump("/", interval_s=0.05, local=True)


def _sweep(store: PersonalStore) -> None:
    while True:
        socketio.sleep(SWEEP_S)
        try:
            store.sweep()
        except OSError:
            pass  # Redis down (app.cluster.store.StoreDown): the cached copies stay until it answers
        except Exception:
            log.exception("sweeping the personal models failed; retrying")


def _config() -> dict:
    return current_app.config["SIGN2SOUND"]["calibration"]


def _error(sid: str, error: FrameError) -> None:
    socketio.emit("error", error.as_dict(), to=sid, ignore_queue=True)


def on_connect(session: Session, auth: object) -> None:
    """Called by realtime's connect handler: load the personal model the client's key opens."""
    key = auth.get("personal_key") if isinstance(auth, dict) else None
    if key is None:
        return
    store = current_app.extensions["personal_store"]
    try:
        store.sync(key)  # cluster mode: Redis, on this event's own thread, never the frames' worker threads
        personal = run_blocking(store.load, key)
    except FrameError as exc:
        _error(request.sid, exc)
        if exc.code == "personal_unavailable":
            session.use_personal(key, None)  # the shared model, but a forget still reaches Redis when it is back
        return
    session.use_personal(key, personal)


def on_disconnect(sid: str) -> None:
    current_app.extensions["adaptations"].cancel(sid)


def _session() -> Session | None:
    return current_app.extensions["sessions"].get(request.sid)


@socketio.on("calibrate")
def on_calibrate(payload=None, *_):
    label = payload.get("label", "missing") if isinstance(payload, dict) else "missing"
    session = _session()
    if session is None or (label is not None and label not in CALIBRATION_CLASSES):
        _error(request.sid, FrameError("bad_label", f"calibrate takes {{\"label\": one of "
                                                    f"{', '.join(CALIBRATION_CLASSES)}}} or {{\"label\": null}} to stop"))
        return None

    max_per_class = _config()["max_samples_per_class"]
    end = isinstance(payload, dict) and payload.get("end") is True

    def start():
        with session.lock:  # between two frames
            if session.calibration is None:
                session.calibration = Recorder(max_per_class)
            session.calibration.start(label, end)
            return session.calibration.status()

    return run_blocking(start)


@socketio.on("adapt")
def on_adapt(*_):
    sid, session = request.sid, _session()
    try:
        if session is None:
            raise FrameError("adapt_failed", "no live session for this connection; reconnect")
        queued = _start_adaptation(sid, session)
    except FrameError as exc:
        _error(sid, exc)
        return {"queued": None}
    return {"queued": queued}


def _start_adaptation(sid: str, session: Session) -> int:
    config, store = _config(), current_app.extensions["personal_store"]
    with session.lock:
        recorded = session.calibration.samples() if session.calibration else None
        if session.calibration:
            session.calibration.start(None, end=True)  # calibrated: the speller reads again
        key = session.personal_key
    if recorded is None or len(recorded) < config["min_samples"]:
        raise FrameError("too_few_samples", f"{0 if recorded is None else len(recorded)} calibration frames "
                                               f"recorded: at least {config['min_samples']} are needed; calibrate "
                                               "some signs first")
    per_key, per_client = current_app.extensions["adapt_limits"]
    if key is not None and not per_key.allow(key_hash(key)):
        raise FrameError("rate_limited", f"this personal model was adapted "
                                            f"{config['adaptations_per_key_per_hour']} times in the last hour; "
                                            "try again later")
    if not per_client.allow(request.remote_addr or "unknown"):
        raise FrameError("rate_limited", f"{config['adaptations_per_client_per_hour']} adaptations from this "
                                            "address in the last hour; try again later")
    key = key or new_key()
    staged = store.staging()
    try:
        samples = _with_earlier_samples(recorded, store, key)
        samples.save(staged / "samples.npz")
        emit = current_app.extensions["calibration_pump"].put
        app = current_app._get_current_object()
        started = time.monotonic()
        job = Job(owner=sid, checkpoint=current_app.extensions["predictor"].checkpoint, staged=staged,
                  on_progress=lambda step, steps: emit("adapt_progress", {"step": step, "steps": steps}, to=sid),
                  on_done=lambda result: _adapted(app, sid, session, key, staged, result, started),
                  on_error=lambda error: emit("error", error.as_dict(), to=sid))
        return current_app.extensions["adaptations"].submit(job)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def _with_earlier_samples(recorded: Samples, store: PersonalStore, key: str) -> Samples:
    """This calibration's frames plus the stored ones of the classes it did not record again."""
    try:
        earlier = Samples.load(store.samples_path(key))
    except (ValueError, OSError):
        return recorded
    keep = ~np.isin(earlier.labels, recorded.labels)
    if not keep.any():
        return recorded
    earlier = earlier.subset(keep)
    return Samples(*(np.concatenate([a, b]) for a, b in [
        (earlier.landmarks, recorded.landmarks), (earlier.aspect, recorded.aspect),
        (earlier.is_left, recorded.is_left), (earlier.labels, recorded.labels),
        (earlier.takes - earlier.takes.max() - 1, recorded.takes)]))  # earlier takes number below this one's


def _adapted(app: Flask, sid: str, session: Session, key: str, staged, result: dict, started: float) -> None:
    """On the pool's thread: validate the new model, store it, switch the session to it, tell the client."""
    emit = app.extensions["calibration_pump"].put
    store = app.extensions["personal_store"]
    try:
        store.commit(key, staged)
        personal = store.load(key)
    except FrameError as exc:
        emit("error", exc.as_dict(), to=sid)
        return
    # Classes the personal model cannot tell apart: the shared model stays (the key keeps the new one for later).
    confused = result.get("confused") or {}
    session.use_personal(key, None if confused else personal)
    emit("adapted", {"model": "personal" if not confused else app.extensions["predictor"].model_id, "key": key,
                     "samples": result["samples"], "classes": result["classes"],
                     "seconds": round(time.monotonic() - started, 2), "before": result["before"],
                     "after": result["after"], "confused": confused, "switched": not confused}, to=sid)


@socketio.on("forget")
def on_forget(*_):
    session = _session()
    shared = current_app.extensions["predictor"].model_id
    if session is None:
        return {"model": shared}
    current_app.extensions["adaptations"].cancel(request.sid)
    key = session.personal_key
    if key is not None:
        store = current_app.extensions["personal_store"]
        run_blocking(store.delete, key)
        if store.shared is not None:
            try:
                store.forget_shared()  # on this event's own thread, as sync
            except OSError as exc:  # app.cluster.store.StoreDown
                log.warning("Redis unreachable, the forget reaches it at a later sweep: %s", exc)

    def clear():
        with session.lock:
            session.calibration = None
        session.use_personal(None, None)
        session.forget_words()

    run_blocking(clear)
    return {"model": shared}
