"""Settings: the caller's servers with live token status, and Connect / Refresh / Disconnect.

One template (``settings/index.html``); its ``status`` block is also served alone as the HTMX
fragment that re-renders itself every 15 s and after each action. Every form also works
without JavaScript (POST, then 303 back here). Metadata only: no token reaches a page.
"""
from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from jinja2_fragments.flask import render_block

from portal import ratelimit
from portal.errors import PortalError
from portal.extensions import db
from portal.models import utcnow
from portal.oauth import access, vault
from portal.oauth import revoke as revocation
from portal.oauth.refresh import refresh_connection
from portal.providers.registry import registry
from portal.web.oauth import release_transaction

bp = Blueprint("settings", __name__, url_prefix="/settings")
TEMPLATE = "settings/index.html"
BADGES = {
    "connected": ("Connected", "badge-ok"), "expiring": ("Expiring", "badge-warn"),
    "refresh_failing": ("Refresh failing", "badge-warn"), "reauth_required": ("Reconnect needed", "badge-bad"),
    "revocation_pending": ("Disconnected · revocation not confirmed", "badge-warn"),
    None: ("Not connected", ""),
}


@bp.before_request
@login_required
def require_login():
    g.vary_hx = True


@bp.get("")
def index():
    return render_template(TEMPLATE, rows=status_rows(current_user))


@bp.get("/status")
def status():
    """The live status part alone (polled by HTMX)."""
    return render_block(TEMPLATE, "status", rows=status_rows(current_user))


@bp.post("/connections/<int:server_id>/refresh")
@ratelimit.limit_token_actions
def refresh(server_id):
    """Refresh now, even if the token is still fresh (skipped if another worker just did)."""
    connection = access.own_connection(current_user, access.parse_id(server_id),
                                       access.parse_provider(request.form.get("provider")))
    release_transaction()
    try:
        fresh = refresh_connection(connection.id, seen_version=connection.version, force=True, actor=current_user)
    except PortalError as error:
        return _answer(f"{error.message} {error.next_step or ''}".strip(), "error")
    if fresh.failure:
        return _answer(f"The token could not be refreshed: {fresh.failure}. The current one still works until it "
                       "expires, and the portal retries on its own.", "error")
    return _answer("Token refreshed." if fresh.refreshed else "The token was just refreshed elsewhere; it is current.",
                   "success")


@bp.post("/connections/<int:server_id>/revoke")
@ratelimit.limit_token_actions
def revoke(server_id):
    """Disconnect: disable here, revoke at the provider, say whether it was confirmed."""
    connection = access.own_connection(current_user, access.parse_id(server_id),
                                       access.parse_provider(request.form.get("provider")))
    release_transaction()
    result = revocation.revoke_connection(connection.id, actor=current_user)
    if result.confirmed:
        return _answer("Disconnected. The provider confirmed the revocation.", "success")
    return _answer("Disconnected here, but the provider has not confirmed the revocation (not confirmed). "
                   "The portal keeps trying.", "warning")


def _answer(message, category):
    db.session.commit()  # a new transaction sees what the service committed in its own
    if request.headers.get("HX-Request"):
        return render_block(TEMPLATE, "status", rows=status_rows(current_user), message=message, category=category)
    flash(message, category)
    return redirect(url_for("settings.index"), code=303)


def status_rows(user, now=None):
    """One row per (server, connection) the user can see here; a server without one gets a row too."""
    now = now or utcnow()
    connections = {}
    for connection, server in access.own_connections(user):
        connections.setdefault(server.id, (server, []))[1].append(connection)
    for server in access.usable_servers(user):
        connections.setdefault(server.id, (server, []))
    rows = []
    for server, found in sorted(connections.values(), key=lambda item: (item[0].name.lower(), item[0].id)):
        rows += [_row(server, connection, now) for connection in found] or [_row(server, None, now)]
    return rows


def _row(server, connection, now):
    name = connection.provider if connection else server.provider
    provider = registry().get(name) if name else None
    state = vault.status_of(connection, now) if connection else None
    label, badge = BADGES.get(state, (state, ""))
    return {
        "server": server, "provider_name": name, "title": provider.title if provider else (name or "Detect automatically"),
        "icon": provider.icon if provider else "?", "status": state, "label": label, "badge": badge,
        "summary": vault.summary(connection, server.name, now) if connection else None,
        "expires": expires_text(connection.expires_at, now) if connection else "",
        "can_refresh": bool(connection and state in vault.USABLE and connection.refresh_token),
    }


def expires_text(expires_at, now):
    """ "expires in 41 min", "expired 3 min ago", "no expiry given" """
    if expires_at is None:
        return "no expiry given"
    seconds = int((expires_at - now).total_seconds())
    text = _duration(abs(seconds))
    return f"expires in {text}" if seconds >= 0 else f"expired {text} ago"


def _duration(seconds):
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h {minutes % 60} min" if hours < 48 else f"{hours // 24} days"
