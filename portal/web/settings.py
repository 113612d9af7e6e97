"""Settings: the caller's servers with live token status, and Connect / Refresh / Disconnect.

One template (``settings/index.html``); its ``status`` block is also served alone as the HTMX
fragment that re-renders itself every 15 s and after each action. Every form also works
without JavaScript (POST, then 303 back here). Metadata only: no token reaches a page.
"""
import time
from dataclasses import dataclass

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
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
from portal.web.render_cache import RenderCache

bp = Blueprint("settings", __name__, url_prefix="/settings")
bp.record_once(lambda state: state.app.extensions.setdefault("portal.settings.fragments", RenderCache()))
TEMPLATE = "settings/index.html"
URL_MARKER = 987654321  # an id no row has; see _url_patterns
BADGES = {
    "connected": ("Connected", "badge-ok"), "expiring": ("Expiring", "badge-warn"),
    "refresh_failing": ("Refresh failing", "badge-warn"), "reauth_required": ("Reconnect needed", "badge-bad"),
    "revocation_pending": ("Disconnected · revocation not confirmed", "badge-warn"),
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
    """The live status part alone (polled by HTMX). The HTML is a function of the rows read, of
    what the clock makes of them (status, "expires in") and of the session's CSRF secret: when
    none of that changed since the last poll, the last rendering is reused."""
    now, records = utcnow(), access.overview(current_user)
    clock = tuple((vault.status_of(r, now), expires_text(r.expires_at, now)) for r in records if r.id is not None)
    key = (current_user.id, _csrf_generation(), tuple(records), clock)
    cache = current_app.extensions["portal.settings.fragments"]
    return cache.get_or_render(key, lambda: render_block(TEMPLATE, "status", rows=_rows(records, now)))


def _csrf_generation():
    """What the rendered CSRF tokens depend on: the session's raw secret and, when tokens expire
    (WTF_CSRF_TIME_LIMIT), the half-life window they were signed in. A cached fragment's token
    (signed a moment earlier for the same secret) is then as good as a fresh one."""
    secret = session.get(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"))
    limit = current_app.config.get("WTF_CSRF_TIME_LIMIT")
    return secret, int(time.time() // max(limit / 2, 1)) if limit else None


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
    return _rows(access.overview(user), now or utcnow())


def _rows(records, now):
    providers, urls = registry().active, _url_patterns()
    return [_row(record, providers.get(record.provider or record.server_provider), now, urls) for record in records]


def _url_patterns():
    """Each action's URL built once by url_for with a marker id, then filled per row: 100 url_for
    calls were a fifth of the fragment's cost with 50 connections."""
    urls = {action: url_for(f"settings.{action}", server_id=URL_MARKER) for action in ("refresh", "revoke")}
    return {**urls, "marker": f"/{URL_MARKER}/"}


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One row of the status table: metadata only (attributes, so Jinja finds them at once)."""

    server_id: int
    server_name: str
    shared: bool
    provider_name: str | None
    title: str
    icon: str
    refresh_url: str
    revoke_url: str
    status: str | None = None  # None: not connected
    label: str = "Not connected"
    badge: str = ""
    expires: str = ""
    last_refresh: str | None = None
    account_label: str | None = None
    scope: str | None = None
    can_refresh: bool = False

    @property
    def connected(self):
        return self.status is not None


def _row(record, provider, now, urls):
    """The ``StatusRow`` for one ``access.overview`` record."""
    name = record.provider if record.id is not None else record.server_provider
    sid = f"/{record.sid}/"
    common = (record.sid, record.server_name, record.visibility == "team", name,
              provider.title if provider else (name or "Detect automatically"), provider.icon if provider else "?",
              urls["refresh"].replace(urls["marker"], sid), urls["revoke"].replace(urls["marker"], sid))
    if record.id is None:
        return StatusRow(*common)
    state = vault.status_of(record, now)
    label, badge = BADGES.get(state, (state, ""))
    last = record.last_refresh_at
    return StatusRow(*common, state, label, badge, expires_text(record.expires_at, now),
                     last.isoformat(" ")[:16] if last else None, record.account_label, record.scope,
                     state in vault.USABLE and record.refresh_token is not None)


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
