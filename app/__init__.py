"""Sign2Sound web layer: the app factory. Extensions live at module level and are bound in create_app."""
from __future__ import annotations

import os
import secrets

import torch
from flask import Flask
from flask_socketio import SocketIO
from werkzeug.middleware.proxy_fix import ProxyFix

from app.packets import FastCheckPacket
from ml.config import ROOT, load_config, project_path
from ml.inference import Predictor

socketio = SocketIO()


def create_app(config: dict | None = None) -> Flask:
    config = config if config is not None else load_config()
    app = Flask(__name__, static_folder=str(ROOT / "static"), template_folder=str(ROOT / "templates"),
                instance_path=str(project_path(config["instance_dir"])))
    os.makedirs(app.instance_path, exist_ok=True)
    app.config["SIGN2SOUND"] = config
    # Secrets come only from the environment; without one, sessions last as long as the process.
    app.secret_key = os.environ.get("SIGN2SOUND_SECRET_KEY") or secrets.token_hex(32)
    if config.get("trusted_proxies"):  # behind nginx: the login limiter must see the client, not the proxy
        n = int(config["trusted_proxies"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)
    # model.torch_threads (1 on 2 cores) was applied only by video readers: the server kept torch's default, a thread
    # per core, and a one-window forward then cost ~16 ms of CPU instead of ~1.4 ms on a busy machine (intra-op
    # threads spinning against the server's own threads: docs/PERFORMANCE.md, "Landmark frames: where the time goes").
    torch.set_num_threads(int(config["model"]["torch_threads"]))
    from app.live.blocking import native  # under gevent a forward pass runs off the loop: torch frees the GIL
    # A green worker's wait is free, so under gevent windows gather a few ms into fewer, cheaper passes; a waiting OS
    # thread (threading) made no pass cheaper (docs/PERFORMANCE.md, "Landmark frames: where the time goes").
    batch_wait_s = config["model"]["batch_wait_ms"] / 1000 if config["async_mode"] == "gevent" else 0.0
    app.extensions["predictor"] = Predictor(project_path(config["model"]["checkpoint"]),
                                            device=config["model"]["device"], model_id="shipped", compute=native,
                                            batch_wait_s=batch_wait_s)

    from app import pages
    from app.security import init_security
    init_security(app)
    app.register_blueprint(pages.bp)

    # cors_allowed_origins None = the app's own origin only (python-engineio's default); list more in config.
    socketio.init_app(app, async_mode=config["async_mode"],
                      # twice the frame cap: an oversized frame gets a clear too_large error, not a dropped connection
                      max_http_buffer_size=2 * config["frames"]["max_bytes"],
                      cors_allowed_origins=config.get("cors_allowed_origins") or None,
                      # cluster mode: emits (job progress, ...) reach the clients of every server
                      message_queue=config.get("message_queue") or None,
                      serializer=FastCheckPacket,  # the same packets, checked for bytes at less cost
                      # A client's events run in turn on its connection's own thread, not each on a new one: a
                      # landmark frame's server CPU fell ~13 % and one server answered 17-24 % more frames a second
                      # (docs/PERFORMANCE.md, "Landmark frames: where the time goes"). A slow event (a MediaPipe
                      # frame, a connect) delays only its own client's next one, as a frame in flight already does.
                      async_handlers=False)
    from app.live.realtime import init_realtime  # the live page's Socket.IO handlers, sessions and speech
    init_realtime(app)
    from app import admin, backend
    from app.live import recording
    from app.pump import EmitPump
    # models, jobs, data sets and shared files (SQLite, or the cluster's Redis); after realtime
    backend.init_app(app, app.extensions["predictor"], EmitPump(admin.NAMESPACE).put)
    admin.init_app(app)  # the login and the admin's routes
    recording.init_app(app, app.extensions["datasets"])
    # The user's own samples and personal models (the store, the adaptation pool); calibration and practice gather
    # them (their handlers register on import).
    from app.live import calibration, learning, practice  # noqa: F401
    learning.init_app(app)
    from app.live import videos  # the page's "Transcribe a video" (app.transcribe on uploads)
    videos.init_app(app)
    return app
