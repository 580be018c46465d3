"""The admin: login/logout, the page, the JSON API for jobs, models and data sets, and the '/admin'
Socket.IO namespace that pushes job progress to logged-in admins only.

Routes (kept stable: the page, tests and tools use them):
  POST /admin/login, POST /admin/logout, GET /admin
  GET|POST /api/admin/jobs, GET /api/admin/jobs/<id>, POST /api/admin/jobs/<id>/cancel
  GET /api/admin/models, POST /api/admin/models/<id>/activate, GET /api/admin/datasets
"""
from __future__ import annotations

import logging
import queue

from flask import Blueprint, Flask, current_app, jsonify, redirect, render_template, request, url_for
from flask_socketio import ConnectionRefusedError

from app import socketio
from app.admin import auth
from app.admin.datasets import DatasetStore
from app.admin.db import Database
from app.admin.jobs import JobError, JobRunner, job_defaults, validate_params
from app.admin.models import ModelError, ModelRegistry

bp = Blueprint("admin", __name__)
log = logging.getLogger(__name__)
NAMESPACE = "/admin"


def init_app(app: Flask, predictor) -> None:
    """Wire the admin's parts: SQLite, the model registry (restoring the active model), the data sets and
    the job runner (marking jobs a previous server left running as interrupted); with `message_queue` set,
    the shared Redis store and the RQ queue instead of SQLite and the in-process runner."""
    config = app.config["SIGN2SOUND"]
    auth.init_app(app)
    datasets = DatasetStore(config, app.instance_path + "/datasets")
    pump = EmitPump(NAMESPACE)
    if config.get("message_queue"):  # cluster mode: Redis store, RQ workers (docs/DEPLOYMENT.md)
        from app.cluster import init_cluster

        db, registry, runner = init_cluster(app, predictor, pump.put)
    else:
        db = Database(app.instance_path + "/sign2sound.db")
        registry = ModelRegistry(db, predictor, config["model"]["checkpoint"], app.instance_path + "/models")
        registry.restore()
        runner = JobRunner(db, registry, datasets, max_concurrent=config["admin"]["max_concurrent_jobs"],
                           nice=config["admin"].get("job_nice", 10), emit=pump.put)
    # blobs: the shared store's blob API in cluster mode (files that every server must see), None embedded
    app.extensions.update(admin_db=db, models=registry, datasets=datasets, jobs=runner, blobs=registry.blobs)
    app.register_blueprint(bp)
    runner.start()


class EmitPump:
    """Emits on behalf of the job runner's OS threads. Under eventlet only the hub's own green threads may
    emit (an emit from a real thread never reaches the client), so they queue and one background task of
    the async mode in use (a green thread, or a thread) sends (to everyone in the namespace, or to one sid).
    `local`: every emit goes to a client of this server, so not through the cluster's message queue (Redis)."""

    def __init__(self, namespace: str, interval_s: float = 0.1, local: bool = False):
        self.namespace, self.interval_s, self.local = namespace, interval_s, local
        self._queue: queue.Queue = queue.Queue()
        socketio.start_background_task(self._run)

    def put(self, event: str, data: dict, to: str | None = None) -> None:
        self._queue.put((event, data, to))

    def _run(self) -> None:
        while True:
            try:
                event, data, to = self._queue.get_nowait()
            except queue.Empty:
                socketio.sleep(self.interval_s)
                continue
            try:
                socketio.emit(event, data, namespace=self.namespace, to=to, ignore_queue=self.local)
            except Exception:  # one failed push must not end the pump
                log.exception("could not push %s", event)


def _runner() -> JobRunner:
    return current_app.extensions["jobs"]


def _registry() -> ModelRegistry:
    return current_app.extensions["models"]


# pages and login
@bp.get("/admin")
@bp.get("/admin/")
@auth.admin_required
def dashboard():
    # The job form starts filled with what an omitted field means in the API.
    return render_template("admin.html", csrf_token=auth.csrf_token(),
                           defaults=job_defaults(current_app.extensions["datasets"]),
                           max_epochs=int(current_app.config["SIGN2SOUND"]["admin"].get("max_epochs", 500)))


@bp.get("/admin/login")
def login_page():
    if not auth.admin_enabled():
        return render_template("admin_message.html", message=auth.DISABLED_MESSAGE), 503
    return render_template("admin_login.html", csrf_token=auth.csrf_token(), next=_next_page(), error=None)


@bp.post("/admin/login")
def login():
    if not auth.admin_enabled():
        return auth.refuse(503, auth.DISABLED_MESSAGE)
    limiter, client = current_app.extensions["login_limiter"], auth.client_address()
    wait = limiter.retry_after(client)
    if wait > 0:
        body, status = auth.refuse(429, f"too many failed logins: try again in {int(wait) + 1} s")
        return body, status, {"Retry-After": str(int(wait) + 1)}
    if request.is_json:
        body = request.get_json(silent=True)
        password = body.get("password") if isinstance(body, dict) else None
        if not isinstance(password, str) or not password:
            return jsonify(error="password is required", field="password"), 400
    else:
        # The form is the one place a browser posts before it has a session: it carries the login page's token.
        if not auth.csrf_ok():
            return auth.refuse(403, "missing or wrong CSRF token: reload the login page")
        password = request.form.get("password", "")
    if not auth.check_password(password):
        limiter.failed(client)
        if request.is_json:
            return jsonify(error="wrong password"), 401
        return render_template("admin_login.html", csrf_token=auth.csrf_token(), next=_next_page(),
                               error="Wrong password."), 401
    limiter.succeeded(client)
    token = auth.log_in()
    if request.is_json:
        return jsonify(csrf_token=token)
    return redirect(_next_page())


@bp.post("/admin/logout")
@auth.admin_required
def logout():
    auth.log_out()
    return jsonify(ok=True) if auth.wants_json() else redirect(url_for("admin.login_page"))


def _next_page() -> str:
    """Where to go after login: only a page of the admin itself (no open redirect)."""
    target = request.values.get("next", "")
    return target if target.startswith("/admin") and "//" not in target and "\\" not in target else "/admin"


# JSON API
@bp.get("/api/admin/jobs")
@auth.admin_required
def list_jobs():
    return jsonify(jobs=_runner().jobs())


@bp.post("/api/admin/jobs")
@auth.admin_required
def create_job():
    if not request.is_json:
        return jsonify(error="send the job as JSON (Content-Type: application/json)", field="body"), 400
    config = current_app.config["SIGN2SOUND"]["admin"]
    params = validate_params(request.get_json(silent=True), current_app.extensions["datasets"], _registry(),
                             max_epochs=int(config.get("max_epochs", 500)))
    job_id = _runner().submit(params)
    return jsonify(id=job_id, job=_runner().job(job_id)), 201


@bp.get("/api/admin/jobs/<int:job_id>")
@auth.admin_required
def get_job(job_id: int):
    job = _runner().job(job_id)
    return jsonify(job) if job else (jsonify(error=f"no job {job_id}"), 404)


@bp.post("/api/admin/jobs/<int:job_id>/cancel")
@auth.admin_required
def cancel_job(job_id: int):
    return jsonify(_runner().cancel(job_id))


@bp.get("/api/admin/models")
@auth.admin_required
def list_models():
    return jsonify(models=_registry().list(), active=_registry().active())


@bp.post("/api/admin/models/<model_id>/activate")
@auth.admin_required
def activate_model(model_id: str):
    info = _registry().activate(model_id)
    return jsonify(model=info["model"], classes=info["classes"], device=info["device"])


@bp.get("/api/admin/datasets")
@auth.admin_required
def list_datasets():
    return jsonify(datasets=current_app.extensions["datasets"].list())


@bp.errorhandler(JobError)
def job_error(exc: JobError):
    body = {"error": str(exc)}
    if exc.field:
        body["field"] = exc.field
    return jsonify(body), exc.status


@bp.errorhandler(ModelError)
def model_error(exc: ModelError):
    return jsonify(error=str(exc), **({"field": "id"} if exc.status == 400 else {})), exc.status


# Socket.IO: progress for logged-in admins only
@socketio.on("connect", namespace=NAMESPACE)
def admin_connect(auth_data=None):
    if not auth.is_admin():
        raise ConnectionRefusedError("admin login required")
