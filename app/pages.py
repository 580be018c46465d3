"""Public pages and the public status API."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    return render_template("index.html", frames=current_app.config["SIGN2SOUND"]["frames"])


@bp.get("/api/status")
def status():
    info = current_app.extensions["predictor"].info()
    return jsonify(model=info["model"], classes=info["classes"], device=info["device"],
                   tts=current_app.extensions["speech"].available, clients=len(current_app.extensions["sessions"]))
