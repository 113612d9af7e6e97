"""Sessions and response headers: who is signed in, and what the browser may do with our pages."""
from flask import g, request
from flask_login import AnonymousUserMixin

from portal.extensions import db, login_manager

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
    app.after_request(add_security_headers)


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
