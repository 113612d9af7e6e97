"""Sessions, API keys, CSRF and response headers: who is signed in, and what the browser may do.

Who is signed in: a browser session (the cookie carries ``"<user id>:<session version>"``;
bumping the version ends every session), or, for ``/api/`` only, a personal API key in
``Authorization: Bearer mcpp_...`` on a request that carries no session or remember cookie.

CSRF: every POST/PUT/PATCH/DELETE must carry the CSRF token (form field or ``X-CSRFToken``)
except an API-key request. CSRF abuses credentials the browser attaches by itself (cookies);
an API-key request has no cookie to ride on, and a page on another site cannot attach an
``Authorization`` header to a request here. So the exemption applies only when all hold: the
path is under ``/api/``, no session or remember cookie is sent, and the key is valid. A request
with a cookie is a browser request and needs the token whatever else it carries; a request
with an invalid key and no cookie is answered 401 at once. Flask-WTF's own hook is switched
off (``WTF_CSRF_CHECK_DEFAULT=False``) and ``csrf_guard`` calls ``csrf.protect`` instead.
"""
import logging
import re

from flask import current_app, flash, g, redirect, request, url_for
from flask_login import AnonymousUserMixin

from portal.extensions import csrf, db, login_manager

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
])


class Anonymous(AnonymousUserMixin):
    is_admin = False
    team_id = None
    id = None


def init_app(app):
    login_manager.anonymous_user = Anonymous
    login_manager.user_loader(load_user)
    login_manager.request_loader(load_user_from_api_key)
    login_manager.unauthorized_handler(unauthorized)
    app.before_request(csrf_guard)
    app.after_request(add_security_headers)
    for name in ("werkzeug", "gunicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecretPaths) for f in logger.filters):
            logger.addFilter(RedactSecretPaths())


def load_user(session_id):
    """Resolve ``"<id>:<session version>"``; a stale version or a disabled user signs out."""
    from portal.models import User

    user_id, _, version = str(session_id).partition(":")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.disabled or user.session_version != int(version):
        return None
    return user


def is_api_key_request():
    """An /api/ request with a portal key in Authorization and no session or remember cookie."""
    from portal.api_keys import looks_like_key

    cookies = (current_app.config["SESSION_COOKIE_NAME"], current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token"))
    return (request.path.startswith("/api/") and looks_like_key(request.headers.get("Authorization"))
            and not any(name in request.cookies for name in cookies))


def load_user_from_api_key(request):
    """Flask-Login's request loader: the owner of a valid API key, for /api/ requests only."""
    from portal import api_keys

    if not is_api_key_request():
        return None
    key = api_keys.find(request.headers.get("Authorization"))
    if key is None:
        return None
    g.api_key_id = key.id
    return key.user


def csrf_guard():
    """Check the CSRF token on state-changing requests; API-key requests are exempt (see above).

    The key is checked (and its use recorded) on a connection of its own, so the request's
    session has not started a transaction yet when later hooks open it (SQLite: BEGIN IMMEDIATE).
    """
    from portal import api_keys
    from portal.errors import error_response

    if is_api_key_request():
        if not api_keys.check_and_record_use(request.headers.get("Authorization")):
            return error_response(401, "invalid_api_key", "The API key is invalid or revoked, or its owner is disabled.",
                                  "Create a new key on your account's API keys page.")
        return None
    if current_app.config.get("WTF_CSRF_ENABLED", True):
        csrf.protect(apply_exemptions=True)
    return None


def unauthorized():
    """Not signed in: 401 JSON for the API, an HX-Redirect for HTMX, else the login page."""
    from portal.errors import error_response, wants_json

    if wants_json():
        return error_response(401, "unauthorized", "Sign in, or send a valid API key.",
                              "Send Authorization: Bearer mcpp_... with a key from your account page.")
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    login_url = url_for("auth.login", next=target)
    if request.headers.get("HX-Request"):
        return "", 401, {"HX-Redirect": login_url}
    flash(login_manager.login_message, "info")
    return redirect(login_url)


class RedactSecretPaths(logging.Filter):
    """Blank invitation tokens and the OAuth callback's query (code, state) out of access-log
    lines (werkzeug, gunicorn)."""

    PATTERN = re.compile(r"/invite/[^\s?\"]+")
    CALLBACK = re.compile(r"(/auth/oauth/callback\?)[^\s\"]+")

    def filter(self, record):
        if isinstance(record.args, dict):
            record.args = {k: self._clean(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(self._clean(v) for v in record.args)
        record.msg = self._clean(record.msg)
        return True

    def _clean(self, value):
        if not isinstance(value, str):
            return value
        return self.CALLBACK.sub(r"\1[redacted]", self.PATTERN.sub("/invite/[redacted]", value))


def add_security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.headers.get("HX-Request") is not None or g.get("vary_hx"):
        response.vary.add("HX-Request")
    if g.get("no_store"):
        response.headers["Cache-Control"] = "no-store"
    return response
