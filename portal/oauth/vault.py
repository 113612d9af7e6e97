"""The token vault: the one place that decides whether a token is valid, and the one function
every caller (views, API, MCP client, CLI) uses to get an access token.

``valid_access_token(user_id, server_id, provider=None)`` returns a plaintext access token that
is valid for at least ``OAUTH_REFRESH_SKEW`` seconds, refreshing it first when needed (see
``portal.oauth.refresh``). Tokens are sealed with ``portal.crypto``; the associated data names
the user, server and provider (``Connection.sealing_context``), so a ciphertext copied into
another row does not open and nothing is sent.
"""
import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import bindparam, select

from portal import audit
from portal.crypto import SealError, keyring, seal_field
from portal.extensions import db
from portal.models import Connection, MCPServer, utcnow
from portal.oauth.errors import NotConnected, TokensExpired

log = logging.getLogger("portal.oauth")
USABLE = ("connected", "expiring", "refresh_failing")
# Built once: a statement object reused with new parameters skips SQLAlchemy's per-call
# construction and result adaptation (2/3 of this read's cost otherwise).
_READ = select(Connection.id, Connection.user_id, Connection.server_id, Connection.provider, Connection.access_token,
               Connection.expires_at, Connection.status, Connection.version).where(
    Connection.user_id == bindparam("user_id"), Connection.server_id == bindparam("server_id"))
_READ_PROVIDER = _READ.where(Connection.provider == bindparam("provider"))
_SERVER_PROVIDER = select(MCPServer.provider).where(MCPServer.id == bindparam("server_id"))


def is_fresh(expires_at, now=None, skew=None):
    """True if a token expiring at ``expires_at`` (None: no known expiry) lasts ``skew`` more seconds."""
    if expires_at is None:
        return True
    skew = current_app.config["OAUTH_REFRESH_SKEW"] if skew is None else skew
    return expires_at - (now or utcnow()) > timedelta(seconds=skew)


def is_valid(connection, now=None):
    """True if the connection holds an access token that may be used right now."""
    return (connection.status in USABLE and connection.access_token is not None
            and is_fresh(connection.expires_at, now, skew=0))


def status_of(connection, now=None):
    """What the user is shown: connected, expiring, refresh_failing, reauth_required, revocation_pending."""
    if connection.status not in USABLE:
        return connection.status
    if connection.access_token is None:
        return "reauth_required"
    if connection.status == "refresh_failing":
        return "refresh_failing"
    window = current_app.config["OAUTH_EXPIRING_WINDOW"]
    if not is_fresh(connection.expires_at, now, skew=window):
        return "expiring" if connection.refresh_token or is_valid(connection, now) else "reauth_required"
    return "connected"


def summary(connection, server_name, now=None):
    """The seed's status entry plus status, account label and last refresh: metadata only."""
    now = now or utcnow()
    return {
        "server_id": connection.server_id, "server_name": server_name, "provider": connection.provider,
        "is_valid": is_valid(connection, now), "expires_at": _iso(connection.expires_at),
        "scope": connection.scope, "status": status_of(connection, now), "account_label": connection.account_label,
        "last_refresh_at": _iso(connection.last_refresh_at),
    }


def _iso(moment):
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def open_token(row, column="access_token"):
    """The plaintext of a sealed token column of ``row`` (a Connection, or a row with its identity)."""
    try:
        return keyring().open(getattr(row, column), Connection.context_for(row, column))
    except SealError:
        log.warning("connection %s: the sealed %s does not open for its row; nothing is sent", row.id, column)
        raise TokensExpired("The stored tokens for this connection cannot be read",
                            "Reconnect the server on Settings; if many connections fail, an admin checks "
                            "the encryption keys.") from None


def valid_access_token(user_id, server_id, provider=None, rejected_token=None):
    """A valid access token for (user, server[, provider]), refreshed first when needed.

    ``rejected_token``: the token a resource server just refused (HTTP 401); it is refreshed
    unless another worker already replaced it. Raises NotConnected, TokensExpired ("OAuth tokens
    expired"), RefreshFailing (the provider did not answer; tokens kept) or RefreshBusy.
    Concurrent calls for the same connection in one process share one read (and one refresh):
    a crowd arriving on an expired token neither queues for database connections nor for the lock.
    """
    flights = current_app.extensions["portal.oauth.flights"]
    key = (user_id, server_id, provider, rejected_token)
    return flights.run(key, lambda: _valid_access_token(user_id, server_id, provider, rejected_token), _flight_wait())


def _valid_access_token(user_id, server_id, provider, rejected_token):
    from portal.oauth.refresh import refresh_connection

    row = _read(user_id, server_id, provider)
    if row.status not in USABLE or row.access_token is None:
        raise TokensExpired(provider=row.provider)
    token = open_token(row)
    if rejected_token is not None and token != rejected_token:
        return token  # another worker replaced the refused token already
    if rejected_token is None and is_fresh(row.expires_at):
        return token
    return refresh_connection(row.id, seen_version=row.version, force=rejected_token is not None).access_token


def refresh_after_rejection(user_id, server_id, rejected, provider=None):
    """A new access token after a resource server refused ``rejected`` (401); for the MCP client."""
    return valid_access_token(user_id, server_id, provider, rejected_token=rejected)


def _read(user_id, server_id, provider):
    parameters = {"user_id": user_id, "server_id": server_id, "provider": provider}
    with db.engine.connect() as connection:
        rows = connection.execute(_READ if provider is None else _READ_PROVIDER, parameters).all()
        if len(rows) > 1:
            preferred = connection.execute(_SERVER_PROVIDER, parameters).scalar()
            rows = [row for row in rows if row.provider == preferred]
    if len(rows) != 1:
        raise NotConnected(provider)
    return rows[0]


def _flight_wait():
    config = current_app.config
    return float(config["OAUTH_LOCK_TIMEOUT"]) + float(config["OAUTH_HTTP_TIMEOUT"]) + 5


def store_tokens(connection, token, now, keep_refresh_token=None):
    """Seal a normalised token response into ``connection`` and mark it connected (caller commits)."""
    seal_field(connection, "access_token", token["access_token"])
    seal_field(connection, "refresh_token", token["refresh_token"] or keep_refresh_token)
    connection.token_type = token["token_type"]
    connection.scope = token["scope"] or connection.scope
    expires_in = token["expires_in"]
    connection.expires_at = None if expires_in is None else now + timedelta(seconds=expires_in)
    connection.status = "connected"
    connection.failure_count = 0
    connection.next_attempt_at = None
    connection.last_error = None
    connection.version = (connection.version or 0) + 1


def destroy_tokens(connection, status, reason):
    """Drop the token material (the ciphertexts) and mark the connection ``status``."""
    connection.access_token = None
    connection.refresh_token = None
    connection.status = status
    connection.last_error = reason[:255]
    connection.next_attempt_at = None
    connection.version = (connection.version or 0) + 1


def record(action, connection, *, actor=None, outcome="success", details=None):
    """Audit one event about ``connection`` (joins the current transaction; never a secret)."""
    server = db.session.get(MCPServer, connection.server_id)
    audit.record(action, actor=actor, team_id=server.team_id if server else None, target_type="connection",
                 target_id=connection.id, target_label=f"{server.name if server else 'server'} · {connection.provider}",
                 provider=connection.provider, outcome=outcome,
                 details={"server_id": connection.server_id, "user_id": connection.user_id, **(details or {})})
