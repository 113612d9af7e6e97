"""Per-request context: request id, client address behind trusted proxies."""
import secrets

from flask import g, request
from werkzeug.middleware.proxy_fix import ProxyFix

REQUEST_ID_HEADER = "X-Request-Id"


def init_app(app):
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=0, x_prefix=proxies)
    app.before_request(assign_request_id)
    app.before_request(serialise_sqlite_writes)
    app.after_request(echo_request_id)


def assign_request_id():
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    # Accept a proxy's id only when it looks like one; never let a header inject log noise.
    if 8 <= len(incoming) <= 64 and incoming.replace("-", "").isalnum():
        g.request_id = incoming
    else:
        g.request_id = secrets.token_hex(8)


def serialise_sqlite_writes():
    """On SQLite, a state-changing request takes the write lock when its transaction starts.

    A deferred transaction that reads and then writes fails at once ("database is locked") if
    another process wrote in between; taking the lock first makes it wait its turn instead.
    """
    from portal.extensions import db

    if request.method in ("POST", "PUT", "PATCH", "DELETE") and db.engine.dialect.name == "sqlite":
        db.session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})


def echo_request_id(response):
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
    return response


def client_context():
    """What the audit log records about the caller of the current request (or nothing)."""
    from flask import has_request_context

    if not has_request_context():
        return {"request_id": None, "ip": None, "user_agent": None}
    return {
        "request_id": g.get("request_id"),
        "ip": request.remote_addr,
        "user_agent": (request.user_agent.string or "")[:256] or None,
    }
