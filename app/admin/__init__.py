"""The admin: login/logout, the page, the JSON API for jobs, models and data sets, and the '/admin'
Socket.IO namespace that pushes job progress to logged-in admins only.

Routes (kept stable: the page, tests and tools use them):
  POST /admin/login, POST /admin/logout, GET /admin
  GET|POST /api/admin/jobs, GET /api/admin/jobs/<id>, POST /api/admin/jobs/<id>/cancel
  GET /api/admin/models, POST /api/admin/models/<id>/activate, GET /api/admin/datasets
"""
from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify, redirect, render_template, request, url_for
from flask_socketio import ConnectionRefusedError

from app import socketio
from app.admin import auth
from app.admin.jobs import JobError, JobRunner, job_defaults, validate_params
from app.admin.models import ModelError, ModelRegistry

bp = Blueprint("admin", __name__)
NAMESPACE = "/admin"


def init_app(app: Flask) -> None:
    """The login and the admin's routes; the models, jobs and data sets they manage are app.backend's."""
    auth.init_app(app)
    app.register_blueprint(bp)


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
