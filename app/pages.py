"""Public pages and the public status API."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    config = current_app.config["SIGN2SOUND"]
    return render_template("index.html", frames=config["frames"], calibration_classes=page_classes(config))


def page_classes(config: dict) -> list[str]:
    """The classes the page's calibration walks through: all 28 unless config narrows them."""
    from ml.personal import CALIBRATION_CLASSES

    chosen = config["calibration"]["page_classes"]
    return CALIBRATION_CLASSES if chosen in (None, "all") else [c for c in CALIBRATION_CLASSES if c in chosen]


@bp.get("/api/status")
def status():
    info = current_app.extensions["predictor"].info()
    return jsonify(model=info["model"], classes=info["classes"], device=info["device"],
                   tts=current_app.extensions["speech"].available, clients=len(current_app.extensions["sessions"]))
