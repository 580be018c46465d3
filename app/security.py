"""HTTP hardening shared by every response: security headers and session-cookie flags; and the session cookie
opened once per Socket.IO connection, not once per event."""
from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSessionInterface

# No inline script or style anywhere: every script and stylesheet is a file served by the app.
# media-src blob: lets the page play the WAV the server sends; connect-src 'self' covers Socket.IO (and the hand
# tracker's model files); 'wasm-unsafe-eval' lets the page compile the tracker's WebAssembly (it allows no eval).
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; "
                           "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                           "form-action 'self'; frame-ancestors 'none'")

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # The camera is the point of the page; nothing else is needed.
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
}


class ConnectionSessions(SecureCookieSessionInterface):
    """Flask opens the cookie session whenever a request context is pushed, and Flask-SocketIO pushes one for every
    Socket.IO event, then replaces that session with its own copy made at the connection's first event
    (environ["saved_session"]: a connection's session is frozen when it connects). Reading the cookie again made a
    context 0.19 instead of 0.06 ms of CPU when the browser sends a cookie (0.041 instead of 0.023 without), for
    each of 15 frames a second from every client (docs/PERFORMANCE.md, "Landmark frames: where the time goes"); the
    copy is what the event gets either way."""

    def open_session(self, app, request):
        saved = request.environ.get("saved_session")
        return saved if saved is not None else super().open_session(app, request)


def init_security(app: Flask) -> None:
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")
    app.session_interface = ConnectionSessions()

    @app.after_request
    def add_security_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
