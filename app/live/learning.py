"""The user's own samples and their adaptation: one home for what calibration, practice and confirmed words gather.

All three are ways of gathering one thing: labelled frames of this user (landmarks only, never images). They
gather in the session's `Gathered` (bounded per class), and an adaptation merges them with the ones kept under the
user's key (one store, one bound per class, one `forget`), runs in the background pool (app.live.personal), and
the session reads with the result. The handlers that gather (app.live.calibration's `calibrate`,
app.live.practice's `practice`, the session's words for app.live.confirmed) only pass frames on.

client `adapt`                     ack {"queued": n} (place in the queue, 1 = next; 0: started at once), then
                                   `adapt_progress` {"step", "steps"} and `adapted` {"model", "key", "samples",
                                   "classes", "seconds", "before", "after", "confused", "switched", "source",
                                   "kept", "compared"}, or `error` {"code", "message"} (then the ack is
                                   {"queued": null}). source: what gathered the new samples ("calibration",
                                   "practice" or "words"). kept: the model the key now opens, "new", "shared"
                                   (the personal one read the held-back frames worse than the shared model: its
                                   weights are stored) or "current" (a later adaptation read the held-back frames
                                   gathered since the user's personal model worse than that model, which stays,
                                   its file unchanged; the new samples are stored for later adaptations);
                                   compared: {"current", "new": accuracies on those frames, "frames"}, or null on
                                   a first adaptation (or none of them held back). before/after: the shared and
                                   the kept model on all held-back frames. confused:
                                   {class: the class its held-back frames read as}; the session switches to the
                                   personal model ("model": "personal", switched) unless some are confused, then
                                   it keeps the shared one (the key opens the personal model when asked for).
                                   Practice also adapts by itself once `practice.adapt_after_samples` new frames
                                   have gathered, free spelling once `learning.adapt_after_words` words were
                                   confirmed (same events, no ack; a refusal is only logged).
client `learn_words` {"on": bool}  whether the words this client spells freely teach (app.live.confirmed; on from
                                   connect): off, its words waiting and the frames they gave that no adaptation
                                   stored yet go. Ack {"on"}; anything else: `error` bad_payload (ack null). The
                                   page sends {"on": false} on every connect while its switch is off.
client `forget`                    the personal model, its samples and the frames gathered since deleted;
                                   ack {"model": the shared id}
connect auth {"personal_key": K}   reads with K's personal model, or `error` unknown_key and the shared model
                                   (cluster mode with Redis down: personal_unavailable, the key stays good)

Bounds: samples per class (`calibration.max_samples_per_class`, in memory and in the store: the newest kept), the
28 classes, adaptations per key and per client address per hour, the queue, the store; a word's frames
(`practice.max_frames_per_word`, practised or spelled freely) and one word waiting for confirmation.
"""
from __future__ import annotations

import logging
import shutil
import time
from collections import deque

import numpy as np
from flask import Flask, current_app, request

from app import socketio
from app.live.blocking import run_blocking
from app.live.confirmed import SOURCE as WORDS, ConfirmedWords
from app.live.frames import FrameError
from app.live.personal import SWEEP_S, AdaptationPool, HourlyLimit, Job, PersonalStore, key_hash, new_key
from app.live.session import Session, current_session
from app.pump import EmitPump
from ml.personal import Samples

log = logging.getLogger(__name__)
SOURCES = ("calibration", "practice", "words")  # what gathered an adaptation's new samples, in precedence order


class Gathered:
    """One session's labelled frames, from any source: at most `max_per_class` a class, the newest kept. A take is
    one showing of one class (a calibration capture, one letter of a practice or confirmed word); a calibration
    take replaces its class's earlier frames (that is redo) and stops at the bound instead. Frames stay after an
    adaptation stored them (a calibration may be adapted again); only those not yet stored join the stored
    samples."""

    def __init__(self, max_per_class: int):
        self.max_per_class = int(max_per_class)
        self.frames: dict[str, deque] = {}  # class -> (landmarks, aspect, is_left, take, serial, source)
        self.take = 0
        self.serial = 0  # of the latest frame
        self.stored_through = 0  # frames up to this serial are in the store
        self.sources: dict[str, int] = {}  # source -> the serial its latest take started at
        self.replaced: dict[str, int] = {}  # class -> serial of the calibration take that replaces its stored frames
        self.added = 0  # frames added since the last adaptation started, words' aside: practice adapts past a threshold
        self.words = 0  # words confirmed since the last adaptation started: free spelling adapts past a threshold

    def new_take(self, label: str, source: str) -> int:
        self.take += 1
        self.sources[source] = self.serial + 1
        if source == "calibration":
            self.frames[label] = deque()
            self.replaced[label] = self.serial + 1
        return self.take

    def add(self, label: str, take: int, landmarks, aspect: float, is_left: bool, *, source: str,
            evict: bool = True) -> bool:
        """Keep one frame of `source` (what gathered its take); at the bound the oldest of its class goes
        (`evict`), or the frame is not kept."""
        frames = self.frames.setdefault(label, deque())
        if len(frames) >= self.max_per_class:
            if not evict:
                return False
            frames.popleft()
        self.serial += 1
        frames.append((np.asarray(landmarks, np.float32), float(aspect), bool(is_left), take, self.serial,
                       source))
        self.added += source != WORDS  # (free spelling counts its words instead)
        return True

    def count(self, label: str) -> int:
        return len(self.frames.get(label, ()))

    def __len__(self) -> int:
        return sum(len(f) for f in self.frames.values())

    def unstored(self) -> Samples | None:
        """The frames no adaptation has stored yet."""
        rows = [(lm, a, left, take, label) for label, frames in self.frames.items()
                for lm, a, left, take, serial, _ in frames if serial > self.stored_through]
        if not rows:
            return None
        lm, aspect, left, takes, labels = zip(*rows)
        return Samples(np.stack(lm), np.array(aspect), np.array(left), np.array(labels), np.array(takes))

    def drop(self, source: str) -> None:
        """The frames of `source` no adaptation has stored yet go (the user turned that source off)."""
        for label, frames in self.frames.items():
            self.frames[label] = deque(f for f in frames if f[5] != source or f[4] <= self.stored_through)
        self.sources.pop(source, None)
        if source == WORDS:
            self.words = 0

    def replacing(self) -> set[str]:
        """The classes whose stored frames a new calibration take replaces (one that kept no frame replaces none)."""
        return {label for label, serial in self.replaced.items()
                if serial > self.stored_through and self.frames.get(label)}

    def source(self) -> str:
        """What gathered the frames not yet stored (calibration first: a practice after it refines it)."""
        new = {s for s, serial in self.sources.items() if serial > self.stored_through}
        return next((s for s in SOURCES if s in new), "calibration")

    def stored(self, serial: int) -> None:
        self.stored_through = max(self.stored_through, serial)


def gathered(session: Session, max_per_class: int) -> Gathered:
    """The session's gathered frames (made on first use; the caller holds the session's lock)."""
    if session.gathered is None:
        session.gathered = Gathered(max_per_class)
    return session.gathered


def init_app(app: Flask) -> None:
    config = app.config["SIGN2SOUND"]["calibration"]
    device = app.extensions["predictor"].device
    # cluster mode: Redis holds every personal model (app.live.personal), this server's folder a cache of them
    shared = app.extensions["blobs"]  # set by app.backend (cluster mode: the Redis store), so it is inited first
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


def error(sid: str, exc: FrameError) -> None:
    socketio.emit("error", exc.as_dict(), to=sid, ignore_queue=True)


def on_connect(session: Session, auth: object) -> None:
    """Called by realtime's connect handler: free spelling teaches (until `learn_words` off); load the personal
    model the client's key opens."""
    session.spelling = spelling(session)
    key = auth.get("personal_key") if isinstance(auth, dict) else None
    if key is None:
        return
    store = current_app.extensions["personal_store"]
    try:
        store.sync(key)  # cluster mode: Redis, on this event's thread, never the frames' worker threads
        personal = run_blocking(store.load, key)
    except FrameError as exc:
        error(request.sid, exc)
        if exc.code == "personal_unavailable":
            session.use_personal(key, None)  # the shared model, but a forget still reaches Redis when it is back
        return
    session.use_personal(key, personal)


def on_disconnect(sid: str) -> None:
    current_app.extensions["adaptations"].cancel(sid)


def spelling(session: Session) -> ConfirmedWords:
    """What gathers this session's confirmed words."""
    config = current_app.config["SIGN2SOUND"]
    per_class = config["calibration"]["max_samples_per_class"]
    return ConfirmedWords(config["practice"]["max_frames_per_word"], lambda: gathered(session, per_class))


@socketio.on("learn_words")
def on_learn_words(payload=None, *_):
    on = payload.get("on") if isinstance(payload, dict) else None
    session = current_session()
    if session is None or not isinstance(on, bool):
        error(request.sid, FrameError("bad_payload", 'learn_words takes {"on": true} or {"on": false}'))
        return None
    made = spelling(session) if on else None

    def switch():
        with session.lock:
            if not on:
                session.spelling = None
                if session.gathered is not None:
                    session.gathered.drop(WORDS)
            elif session.spelling is None:
                session.spelling = made

    run_blocking(switch)
    return {"on": on}


@socketio.on("adapt")
def on_adapt(*_):
    sid, session = request.sid, current_session()
    try:
        if session is None:
            raise FrameError("adapt_failed", "no live session for this connection; reconnect")
        queued = start_adaptation(sid, session)
    except FrameError as exc:
        error(sid, exc)
        return {"queued": None}
    return {"queued": queued}


def adapt_when_due(session: Session | None) -> None:
    """After a word: adapt in the background once enough has gathered since the last adaptation: practising,
    `practice.adapt_after_samples` new frames; spelling freely, `learning.adapt_after_words` confirmed words.
    A refusal (a limit, one already running) is only logged: the frames stay for the next word or `adapt`."""
    config = current_app.config["SIGN2SOUND"]

    def due() -> bool:
        with session.lock:  # (off the event loop: a frame being read holds it)
            new, calibration = session.gathered, session.calibration
            if new is None or (calibration is not None and calibration.active):
                return False
            if session.practice is not None:
                return new.added >= config["practice"]["adapt_after_samples"]
            return new.words >= config["learning"]["adapt_after_words"]

    if session is None or not run_blocking(due) or current_app.extensions["adaptations"].has(request.sid):
        return  # (one running: its `adapted` comes, and the frames gathered since wait for the next word)
    try:
        start_adaptation(request.sid, session)
    except FrameError as exc:
        log.info("background adaptation not started: %s", exc.message)


def start_adaptation(sid: str, session: Session) -> int:
    """Take the session's new frames, merged with those stored under its key, to the adaptation pool; the place in
    the queue. FrameError (and the frames kept) when they are too few or a limit refuses."""
    config, store = _config(), current_app.extensions["personal_store"]
    with session.lock:
        if session.calibration:
            session.calibration.start(None, end=True)  # calibrated: the speller reads again
        new = session.gathered
        count = len(new) if new else 0
        if new:
            recorded, replaced, source, serial = new.unstored(), new.replacing(), new.source(), new.serial
        key = session.personal_key
    if count < config["min_samples"]:
        raise FrameError("too_few_samples", f"{count} frames of your signs recorded: at least "
                                               f"{config['min_samples']} are needed; calibrate or practise some "
                                               "signs first")
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
        samples, fresh = merged(recorded, store, key, replaced, new.max_per_class)
        samples.save(staged / "samples.npz")
        store.stage_current(key, staged)  # a later adaptation: the new model must beat this one
        emit = current_app.extensions["calibration_pump"].put
        app = current_app._get_current_object()
        started = time.monotonic()

        def done(result: dict) -> None:
            if _adapted(app, sid, session, key, staged, result, started, source):
                with session.lock:
                    new.stored(serial)

        job = Job(owner=sid, checkpoint=current_app.extensions["predictor"].checkpoint, staged=staged,
                  fresh=int(fresh.sum()),
                  on_progress=lambda step, steps: emit("adapt_progress", {"step": step, "steps": steps}, to=sid),
                  on_done=done, on_error=lambda exc: emit("error", exc.as_dict(), to=sid))
        queued = current_app.extensions["adaptations"].submit(job)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    with session.lock:
        new.added = new.words = 0
    return queued


def merged(recorded: Samples | None, store: PersonalStore, key: str, replaced: set[str],
           max_per_class: int) -> tuple[Samples, np.ndarray]:
    """The new frames after those stored under the key (less the classes calibrated again), each class cut to its
    newest `max_per_class`, and the mask of the new ones (all at the end: the key's model never saw them).
    FrameError too_few_samples when there are none."""
    try:
        earlier = Samples.load(store.samples_path(key))
        earlier = earlier.subset(~np.isin(earlier.labels, sorted(replaced)))
    except (ValueError, OSError):
        earlier = None
    fresh = np.ones(len(recorded) if recorded is not None else 0, bool)
    if earlier is not None and len(earlier) and recorded is not None:
        earlier.takes = earlier.takes - earlier.takes.max() - 1  # numbered below the new takes
        recorded = Samples.concat([earlier, recorded])
        fresh = np.r_[np.zeros(len(earlier), bool), fresh]
    elif recorded is None:
        recorded, fresh = earlier, np.zeros(len(earlier) if earlier is not None else 0, bool)
    if recorded is None or not len(recorded):
        raise FrameError("too_few_samples", "no frames of your signs are kept any more: calibrate or practise "
                                            "some signs first")
    kept = recorded.newest(max_per_class)
    return recorded.subset(kept), fresh[kept]


def _adapted(app: Flask, sid: str, session: Session, key: str, staged, result: dict, started: float,
             source: str) -> bool:
    """On the pool's thread: validate the new model, store it, switch the session to it, tell the client; whether
    it was stored."""
    emit = app.extensions["calibration_pump"].put
    store = app.extensions["personal_store"]
    try:
        store.commit(key, staged)
        personal = store.load(key)
    except FrameError as exc:
        emit("error", exc.as_dict(), to=sid)
        return False
    # Classes the personal model cannot tell apart: the shared model stays (the key keeps the new one for later).
    confused = result.get("confused") or {}
    session.use_personal(key, None if confused else personal)
    emit("adapted", {"model": "personal" if not confused else app.extensions["predictor"].model_id, "key": key,
                     "samples": result["samples"], "classes": result["classes"],
                     "seconds": round(time.monotonic() - started, 2), "before": result["before"],
                     "after": result["after"], "confused": confused, "switched": not confused,
                     "source": source, "kept": result.get("kept", "new"), "compared": result.get("compared")},
         to=sid)
    return True


@socketio.on("forget")
def on_forget(*_):
    session = current_session()
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
                store.forget_shared()  # on this event's thread, as sync
            except OSError as exc:  # app.cluster.store.StoreDown
                log.warning("Redis unreachable, the forget reaches it at a later sweep: %s", exc)

    def clear():
        with session.lock:
            session.calibration = None
            session.gathered = None
            if session.practice is not None:
                session.practice.clear()
            if session.spelling is not None:
                session.spelling.clear()
        session.use_personal(None, None)
        session.forget_words()

    run_blocking(clear)
    return {"model": shared}
