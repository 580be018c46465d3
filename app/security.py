"""HTTP hardening shared by every response: security headers and session-cookie flags."""
from __future__ import annotations

from flask import Flask

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


def init_security(app: Flask) -> None:
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")

    @app.after_request
    def add_security_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
