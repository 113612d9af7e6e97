"""The seed's OAuth endpoints under /auth/oauth: thin views over ``portal.oauth``.

- ``POST /auth/oauth/authorize`` ``{"server_id", "provider"?}`` (JSON, form or HTMX) starts a
  flow: JSON ``{oauth_url, state, provider, server_name}``, ``HX-Redirect`` for HTMX, a page linking to the provider for a plain form.
- ``GET /auth/oauth/callback`` finishes it: always a 303 to a clean URL with a message,
  ``Cache-Control: no-store`` and ``Referrer-Policy: no-referrer``.
- ``GET /auth/oauth/status``: the caller's connections, metadata only.
- ``DELETE /auth/oauth/tokens/<server_id>?provider=``: revoke; the revocation's status.
"""
import functools
import secrets

from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required

from portal import ratelimit
from portal.extensions import db
from portal.errors import BadInput, PortalError, wants_json
from portal.oauth import access, flows, vault
from portal.oauth import revoke as revocation
from portal.oauth.errors import FlowError
from portal.web.safety import safe_next

bp = Blueprint("oauth", __name__, url_prefix="/auth/oauth")
NONCE_KEY = "oauth_nonce"  # per-session random value; flows are bound to its hash


def session_nonce():
    if not isinstance(session.get(NONCE_KEY), str):
        session[NONCE_KEY] = secrets.token_urlsafe(32)
    return session[NONCE_KEY]


def release_transaction():
    """End the request's transaction before a service runs its own: on SQLite a state-changing
    request holds the write lock from its start (``portal.requests``), which the service needs."""
    db.session.commit()


def json_errors(view):
    """Answer PortalErrors as JSON whatever the Accept header (these are API endpoints)."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except PortalError as error:
            body = {"error": error.code, "message": error.message}
            if error.next_step:
                body["next_step"] = error.next_step
            return jsonify(body), error.status
    return wrapper


def _payload():
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise BadInput("Send a JSON object such as {\"server_id\": 123}.")
        return data
    return request.form


@bp.post("/authorize")
@ratelimit.limit_oauth
@login_required
def authorize():
    """Start a flow for one of the caller's servers."""
    data = _payload()
    server = access.usable_server(current_user, access.parse_id(data.get("server_id")))
    return_to = safe_next(data.get("next"), "settings.index") if isinstance(data.get("next"), str) else None
    provider = access.parse_provider(data.get("provider"))
    release_transaction()
    result = flows.start(current_user, server, provider, session_nonce(), return_to=return_to)
    if request.headers.get("HX-Request"):
        return "", 200, {"HX-Redirect": result["oauth_url"]}
    if wants_json():
        return jsonify(result)
    return continue_page(result)


def continue_page(result):
    """Without JavaScript, a link to the provider: the CSP's ``form-action 'self'`` stops a form
    post from being redirected to another origin, but following a link is always allowed."""
    g.no_store = True
    html = render_template("settings/continue.html", oauth_url=result["oauth_url"],
                           provider=result["provider"], server_name=result["server_name"])
    return html, 200, {"Referrer-Policy": "no-referrer"}


@bp.get("/callback")
@ratelimit.limit_oauth
def callback():
    """Check state and iss, exchange the code, store the tokens; 303 to Settings with a message."""
    g.no_store = True
    if not current_user.is_authenticated:
        error = flows.reject_signed_out(request.args)
        flash(f"{error.message}. Sign in, then start the connection again from Settings.", "error")
        return _clean_redirect(url_for("auth.login"))
    try:
        done = flows.complete(current_user, session.get(NONCE_KEY), request.args)
    except FlowError as error:
        flash(f"{error.message}. {error.next_step}", "error")
        return _clean_redirect(url_for("settings.index"))
    flash(f"Connected {done.server_name} with {done.provider_title}.", "success")
    return _clean_redirect(safe_next(done.return_to, "settings.index"))


def _clean_redirect(location):
    response = redirect(location, code=303)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/status")
@login_required
@json_errors
def status():
    """The caller's connections: the seed's fields plus status, account label, last refresh."""
    connections = access.own_connections(current_user)
    return jsonify([vault.summary(connection, server.name) for connection, server in connections])


@bp.delete("/tokens/<int:server_id>")
@ratelimit.limit_token_actions
@login_required
@json_errors
def revoke(server_id):
    """Revoke the caller's connection to a server at the provider and delete it locally."""
    connection = access.own_connection(current_user, access.parse_id(server_id),
                                       access.parse_provider(request.args.get("provider")))
    release_transaction()
    result = revocation.revoke_connection(connection.id, actor=current_user)
    return jsonify({**result.as_dict(), "server_id": connection.server_id, "provider": connection.provider})
