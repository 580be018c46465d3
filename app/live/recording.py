"""Record mode: people add their own hand shapes to a data set from the live page (Socket.IO '/record').

client -> `start` {"dataset", "signer", "letter", "frames": N}    ack {"needed": N} or {"error": {...}}
client -> `frame` JPEG/PNG bytes (or {"image": bytes})           ack {"collected", "needed", "hand"}
          ... and once N frames with a hand are in:              ack also {"saved": true, "dataset", "samples"}
client -> `cancel`                                                ack {"cancelled": true}

Frames are checked and decoded exactly as live frames are (app.live.frames); a recording takes a tracking-mode
MediaPipe tracker from the live page's TrackerPool on its first frame and gives it back when it ends (a graph
does not give its memory back, so none is made per recording), and keeps the landmarks, handedness and
aspect of each frame with a hand. Nothing is written until all N frames are in; then they are appended to
instance/datasets/<dataset>.npz in one atomic write (app.admin.datasets), which the admin lists and jobs can train on.
"""
from __future__ import annotations

import re
import threading

from flask import Flask, current_app, request

from app import socketio
from app.admin.datasets import DatasetError, DatasetStore, frames_to_set
from app.live.frames import FrameError, decode_frame, parse_payload
from app.live.blocking import run_blocking
from app.live.session import RateLimiter, TrackerLease, TrackerPool
from ml.landmarks import canonical_class
from ml.model import CLASSES

NAMESPACE = "/record"
SIGNER = re.compile(r"^[\w .-]{1,64}$")
# `nothing` is no hand in view: there are no landmarks to record for it.
RECORDABLE = [c for c in CLASSES if c != "nothing"]


class Recording:
    """One client's recording in progress."""

    def __init__(self, config: dict, trackers: TrackerPool, dataset: str, signer: str, letter: str, needed: int):
        self.tracker = TrackerLease(trackers)  # taken on the first decoded frame, like a live Session's
        self.dataset, self.signer, self.letter, self.needed = dataset, signer, letter, needed
        self.max_frames = needed * int(config["recording"]["max_frames_factor"])  # give up without a hand
        self.rate = RateLimiter(config["frames"]["max_fps"])
        self.landmarks, self.handedness, self.aspect = [], [], []
        self.seen = 0
        self.lock = threading.Lock()  # one tracker, one frame at a time
        self.closed = False

    def add(self, image) -> bool:
        with self.lock:
            if self.closed:
                raise FrameError("closed", "this recording has ended")
            self.seen += 1
            hand = self.tracker.process(image)
            if hand is not None and len(self.landmarks) < self.needed:
                h, w = image.shape[:2]
                self.landmarks.append(hand.landmarks)
                self.handedness.append(hand.handedness)
                self.aspect.append(w / h)
            return hand is not None

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.tracker.release()


class Recordings:
    """The recordings in progress, by Socket.IO sid."""

    def __init__(self):
        self._by_sid: dict[str, Recording] = {}
        self._lock = threading.Lock()

    def replace(self, sid: str, recording: Recording | None) -> None:
        with self._lock:
            old = self._by_sid.pop(sid, None)
            if recording is not None:
                self._by_sid[sid] = recording
        if old is not None:
            old.close()

    def get(self, sid: str) -> Recording | None:
        with self._lock:
            return self._by_sid.get(sid)

    def finish(self, sid: str, recording: Recording) -> bool:
        """End `recording` if it is still this client's; True for the one caller that ended it."""
        with self._lock:
            if self._by_sid.get(sid) is not recording:
                return False
            del self._by_sid[sid]
        recording.close()
        return True


def init_app(app: Flask, datasets: DatasetStore) -> None:
    """Call after init_realtime: recordings share the live sessions' tracker pool."""
    app.extensions["recordings"] = Recordings()
    app.extensions["recording_datasets"] = datasets
    app.extensions["recording_trackers"] = app.extensions["sessions"].trackers


def _error(error: FrameError) -> dict:
    """An ack that refuses: {"error": {"code", "message", "seq": None[, "field"]}}."""
    return {"error": error.as_dict()}


def validate_start(payload: object, datasets: DatasetStore, max_frames: int) -> tuple[str, str, str, int]:
    """-> (dataset, signer, letter, frames); ValueError whose args are (field, message)."""
    if not isinstance(payload, dict):
        raise ValueError("body", "start needs {dataset, signer, letter, frames}")
    dataset = payload.get("dataset")
    try:
        datasets.writable_path(dataset)
    except DatasetError as exc:
        raise ValueError("dataset", str(exc)) from None
    signer = payload.get("signer")
    if not isinstance(signer, str) or not SIGNER.match(signer.strip()):
        raise ValueError("signer", "signer: 1-64 letters, digits, spaces, '.', '-' or '_'")
    letter = payload.get("letter")
    letter = canonical_class(letter) if isinstance(letter, str) else None
    if letter not in RECORDABLE:
        raise ValueError("letter", f"letter must be one of {', '.join(RECORDABLE)}")
    frames = payload.get("frames")
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= max_frames:
        raise ValueError("frames", f"frames must be an integer from 1 to {max_frames}")
    return dataset, signer.strip(), letter, frames


@socketio.on("start", namespace=NAMESPACE)
def on_start(payload=None, *_):
    config = current_app.config["SIGN2SOUND"]
    datasets = current_app.extensions["recording_datasets"]
    try:
        dataset, signer, letter, frames = validate_start(payload, datasets, int(config["recording"]["max_frames"]))
    except ValueError as exc:
        field, message = exc.args
        return _error(FrameError("bad_request", message, field))
    recording = Recording(config, current_app.extensions["recording_trackers"], dataset, signer, letter, frames)
    current_app.extensions["recordings"].replace(request.sid, recording)
    return {"needed": frames, "dataset": dataset, "letter": letter, "signer": signer}


@socketio.on("frame", namespace=NAMESPACE)
def on_frame(payload=None, *_):
    recordings = current_app.extensions["recordings"]
    recording = recordings.get(request.sid)
    if recording is None:
        return _error(FrameError("not_recording", "send `start` first"))
    frames = current_app.config["SIGN2SOUND"]["frames"]
    try:
        recording.rate.admit()
        _, data = parse_payload(payload)
        image = run_blocking(decode_frame, data, frames["max_bytes"], frames["max_pixels"])
        hand = run_blocking(recording.add, image)
    except FrameError as exc:
        return _error(exc)
    reply = {"collected": len(recording.landmarks), "needed": recording.needed, "hand": hand}
    if len(recording.landmarks) >= recording.needed:
        return {**reply, **_save(recording)} if recordings.finish(request.sid, recording) else reply
    if recording.seen >= recording.max_frames and recordings.finish(request.sid, recording):
        return {**reply, **_error(FrameError("no_hand", f"only {reply['collected']} of {recording.seen} frames "
                                                        "showed a hand; nothing was saved. Hold the sign in view "
                                                        "and try again"))}
    return reply


def _save(recording: Recording) -> dict:
    store = current_app.extensions["recording_datasets"]
    samples = frames_to_set(recording.landmarks, recording.letter, recording.signer, recording.handedness,
                            recording.aspect, source=f"record:{recording.signer}:{recording.letter}")
    try:
        limits = current_app.config["SIGN2SOUND"]["recording"]
        total = store.append(recording.dataset, samples, int(limits["max_samples"]), int(limits["max_datasets"]))
    except (DatasetError, OSError) as exc:
        return _error(FrameError("not_saved", f"the samples were not saved: {exc}"))
    return {"saved": True, "dataset": recording.dataset, "samples": total}


@socketio.on("cancel", namespace=NAMESPACE)
def on_cancel(*_):
    current_app.extensions["recordings"].replace(request.sid, None)
    return {"cancelled": True}


@socketio.on("disconnect", namespace=NAMESPACE)
def on_disconnect(reason=None):
    current_app.extensions["recordings"].replace(request.sid, None)
