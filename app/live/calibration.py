"""Calibration on the live connection (default namespace): the user signs each class on request.

client `calibrate` {"label": "A"}  every frame with a hand is also kept as a sample of A (a new take of A
                                   replaces A's earlier frames: that is redo); its `result` gains
                                   "calibration": {"label", "samples"}; {"label": null} stops the take. Ack: the
                                   same. From the first `calibrate` (the page sends {"label": null} as it opens
                                   its first countdown) until `adapt` or {"label": null, "end": true} (the user
                                   cancelled) the session is calibrating: no frame reaches the speller.
`adapt`, `forget` and the personal key: app.live.learning, which keeps the samples this gathers.
"""
from __future__ import annotations

from flask import current_app, request

from app import socketio
from app.live import learning
from app.live.blocking import run_blocking
from app.live.frames import FrameError
from app.live.session import current_session
from ml.personal import CALIBRATION_CLASSES


class Recorder:
    """One client's calibration takes, into its gathered samples (app.live.learning.Gathered): each take replaces
    its class's frames, and stops at the bound (class_full) instead of dropping the oldest."""

    def __init__(self, gathered: learning.Gathered):
        self.gathered = gathered
        self.label: str | None = None
        self.active = False  # calibrating: from the first `calibrate` until adapt or the user's cancel
        self.take = 0

    def start(self, label: str | None, end: bool = False) -> None:
        self.label = label
        self.active = not end
        if label is not None:
            self.take = self.gathered.new_take(label, "calibration")

    def add(self, hand, aspect: float) -> None:
        if self.label is not None:
            self.gathered.add(self.label, self.take, hand.landmarks, aspect, hand.is_left,
                             source="calibration", evict=False)

    def status(self) -> dict:
        if self.label is None:
            return {"label": None, "samples": 0}
        count = self.gathered.count(self.label)
        status = {"label": self.label, "samples": count}
        if count >= self.gathered.max_per_class:
            status["error"] = FrameError("class_full", f"{self.label} has its {count} samples: further frames "
                                                       "are not kept").as_dict()
        return status



@socketio.on("calibrate")
def on_calibrate(payload=None, *_):
    label = payload.get("label", "missing") if isinstance(payload, dict) else "missing"
    session = current_session()
    if session is None or (label is not None and label not in CALIBRATION_CLASSES):
        learning.error(request.sid, FrameError("bad_label", f"calibrate takes {{\"label\": one of "
                                                            f"{', '.join(CALIBRATION_CLASSES)}}} or "
                                                            "{\"label\": null} to stop"))
        return None
    end = isinstance(payload, dict) and payload.get("end") is True
    max_per_class = current_app.config["SIGN2SOUND"]["calibration"]["max_samples_per_class"]

    def start():
        with session.lock:  # between two frames
            gathered = learning.gathered(session, max_per_class)
            if session.calibration is None or session.calibration.gathered is not gathered:
                session.calibration = Recorder(gathered)
            session.calibration.start(label, end)
            return session.calibration.status()

    return run_blocking(start)
