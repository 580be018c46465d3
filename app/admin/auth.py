"""Admin authentication: one password from the environment, a signed session cookie, CSRF tokens, and a
rate limit on failed logins.

The password is only ever held as a werkzeug hash (SIGN2SOUND_ADMIN_PASSWORD is hashed at start-up;
SIGN2SOUND_ADMIN_PASSWORD_HASH is used as is). With neither set the admin is disabled: there is no default.
"""
from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from collections import defaultdict, deque
from functools import wraps

from flask import Flask, current_app, jsonify, redirect, render_template, request, session, url_for
from werkzeug.security import check_password_hash, generate_password_hash

PASSWORD_ENV = "SIGN2SOUND_ADMIN_PASSWORD"
HASH_ENV = "SIGN2SOUND_ADMIN_PASSWORD_HASH"
CSRF_HEADER = "X-CSRFToken"
CSRF_FIELD = "csrf_token"
DISABLED_MESSAGE = (f"The admin is disabled: set {PASSWORD_ENV} (or a werkzeug hash in {HASH_ENV}) in the "
                    "server's environment and restart it.")


class LoginLimiter:
    """At most `attempts` failed logins per client address within `window_s` seconds."""

    def __init__(self, attempts: int, window_s: float):
        self.attempts, self.window_s = attempts, window_s
        self._failures: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may now."""
        with self._lock:
            failures = self._failures[client]
            now = time.monotonic()
            while failures and now - failures[0] > self.window_s:
                failures.popleft()
            if len(failures) < self.attempts:
                return 0.0
            return self.window_s - (now - failures[0])

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures[client].append(time.monotonic())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def init_app(app: Flask) -> None:
    config = app.config["SIGN2SOUND"]["admin"]
    password, password_hash = os.environ.get(PASSWORD_ENV), os.environ.get(HASH_ENV)
    app.extensions["admin_password_hash"] = password_hash or (generate_password_hash(password) if password else None)
    app.extensions["login_limiter"] = LoginLimiter(int(config["login_attempts"]), float(config["login_window_s"]))
    # Logins alive in this process: the cookie is signed but stateless, so logout must revoke it here.
    app.extensions["admin_logins"] = set()
    # The session cookie carries the admin flag: never readable by scripts, never sent by cross-site POSTs
    # (Lax at least; app.security may already have made it Strict).
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    if app.config.get("SESSION_COOKIE_SAMESITE") not in ("Lax", "Strict"):
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"


def admin_enabled() -> bool:
    return current_app.extensions.get("admin_password_hash") is not None


def is_admin() -> bool:
    return admin_enabled() and session.get("login") in current_app.extensions["admin_logins"]


def check_password(password: str) -> bool:
    return admin_enabled() and check_password_hash(current_app.extensions["admin_password_hash"], password)


def client_address() -> str:
    return request.remote_addr or "unknown"


def log_in() -> str:
    """A fresh session (no fixation) holding a new login id and its own CSRF token, which is returned."""
    session.clear()
    session["login"] = secrets.token_urlsafe(32)
    current_app.extensions["admin_logins"].add(session["login"])
    session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return session[CSRF_FIELD]


def log_out() -> None:
    current_app.extensions["admin_logins"].discard(session.get("login"))
    session.clear()


def csrf_token() -> str:
    """This session's token (created on first use, so the login form carries one too)."""
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return session[CSRF_FIELD]


def csrf_ok() -> bool:
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    expected = session.get(CSRF_FIELD) or ""
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def wants_json() -> bool:
    accept = request.accept_mimetypes
    # Scripts send the token as a header (forms send a field): they get JSON back.
    return (request.path.startswith("/api/") or request.is_json or CSRF_HEADER in request.headers
            or (accept.accept_json and not accept.accept_html))


def refuse(status: int, message: str, **extra):
    """The answer to a refused request: JSON for API clients, a page (or the login page) for browsers."""
    if wants_json():
        return jsonify(error=message, **extra), status
    if status == 401:
        return redirect(url_for("admin.login", next=request.path))
    return render_template("admin_message.html", message=message), status


def admin_required(view):
    """Login for every method; a valid CSRF token for every state-changing one."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not admin_enabled():
            return refuse(503, DISABLED_MESSAGE)
        if not is_admin():
            return refuse(401, "login required")
        if request.method not in ("GET", "HEAD", "OPTIONS") and not csrf_ok():
            return refuse(403, f"missing or wrong CSRF token (send it in the {CSRF_HEADER} header "
                               f"or the {CSRF_FIELD} form field)")
        return view(*args, **kwargs)

    return wrapped
