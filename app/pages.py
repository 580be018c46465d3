"""Public pages and the public status API."""
from __future__ import annotations

import math

from flask import Blueprint, current_app, jsonify, render_template, send_from_directory

from ml.config import ROOT
from ml.practice_words import DEL_EVERY, OPENING, PRACTICE_WORDS

bp = Blueprint("pages", __name__)
# The page's hand tracker (MediaPipe Hands with its models and WASM, static/js/tracker.js): the npm package that
# `make setup` installs (package.json, `npm ci`), served from this fixed path and never from a CDN. Without it
# (npm never ran) these files are 404s and the page sends its frames to the server's tracker instead.
HAND_TRACKER_FILES = ROOT / "node_modules" / "@mediapipe" / "hands"
ADAPTING_S = 10  # what adapting takes on 2 cores, as the page shows it (8.2 s measured: docs/PERFORMANCE.md)


@bp.get("/")
def index():
    config = current_app.config["SIGN2SOUND"]
    classes = page_classes(config)
    return render_template("index.html", frames=config["frames"], landmarks=config["landmarks"],
                           calibration_classes=classes,
                           calibration_s=calibration_seconds(config, classes),
                           practice={"words": PRACTICE_WORDS, "opening": OPENING, "del_every": DEL_EVERY})


def page_classes(config: dict) -> list[str]:
    """The classes the page's calibration walks through: all 28 unless config narrows them."""
    from ml.personal import CALIBRATION_CLASSES

    chosen = config["calibration"]["page_classes"]
    return CALIBRATION_CLASSES if chosen in (None, "all") else [c for c in CALIBRATION_CLASSES if c in chosen]


def calibration_seconds(config: dict, classes: list[str]) -> int:
    """What the offer promises: the calibration of a user who signs each class right the first time, to the
    next 10 s (80 s for all 28 classes; bench.page_flow measured 78.5 s)."""
    cal = config["calibration"]
    return math.ceil((len(classes) * (cal["countdown_s"] + cal["capture_s"]) + ADAPTING_S) / 10) * 10


@bp.get("/vendor/hands/<path:name>")
def hand_tracker(name: str):
    return send_from_directory(HAND_TRACKER_FILES, name, max_age=86400)  # a path out of the folder is a 404


@bp.get("/api/status")
def status():
    info = current_app.extensions["predictor"].info()
    sessions = current_app.extensions["sessions"]
    return jsonify(model=info["model"], classes=info["classes"], device=info["device"],
                   tts=current_app.extensions["speech"].available, clients=len(sessions),
                   reading=sessions.trackers.in_use, max_reading=sessions.trackers.max_trackers)
