"""Single-flight token refresh: one refresh at a time per connection, across threads, processes
and hosts, and never a lost token (SECURITY.md items 8-11).

Under the connection's row lock (``portal.oauth.locking``) the row is re-read; if another worker
already refreshed it (its version moved on, or the token is fresh) its token is used and the
provider is not called. Otherwise the refresh token is sent, and the new pair is sealed and
committed with its ``token.refreshed`` event before the access token is returned; a response
without a refresh token keeps the old one. ``invalid_grant`` re-reads the row: if the refresh
token changed, another worker won and its token is used (``token.refresh_lost_race``); if not,
the grant is dead: the token material is destroyed, the connection is ``reauth_required`` and
that is audited once. Timeouts, connection errors and 5xx never destroy tokens: the connection
is ``refresh_failing`` and backs off (``next_attempt_at``, ``failure_count``).
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app

from portal.audit import Action, fingerprint
from portal.models import utcnow
from portal.oauth import http, vault
from portal.oauth.errors import NotConnected, RefreshFailing, TokensExpired
from portal.oauth.locking import lock_connection, own_transaction
from portal.providers import settings
from portal.providers.registry import registry


@dataclass(frozen=True)
class Fresh:
    access_token: str = ""
    expires_at: datetime | None = None
    refreshed: bool = False  # True if this call obtained the new pair
    skipped: bool = False  # True if another worker held the lock (``skip_locked``)
    failure: str | None = None  # why the refresh failed, when the old token is still handed out


def refresh_connection(connection_id, *, seen_version=None, force=False, skip_locked=False, actor=None,
                       min_validity=None):
    """Refresh one connection if it still needs it; returns ``Fresh``.

    ``seen_version``: the version the caller read; if the row moved on since, someone else
    refreshed (or reconnected) it and its token is returned. ``force`` refreshes a token that
    is still fresh ("Refresh now"). ``skip_locked`` (PostgreSQL) returns ``Fresh(skipped=True)``
    instead of waiting for another worker's lock. ``min_validity`` (seconds; default
    ``OAUTH_REFRESH_SKEW``) is how long a token must still last to count as fresh.
    """
    with own_transaction() as session:
        connection = lock_connection(session, connection_id, skip_locked=skip_locked)
        if connection is None:
            if skip_locked:
                return Fresh(skipped=True)
            raise NotConnected()
        now = utcnow()
        step = _next_step(connection, seen_version, force, now, min_validity)
        if step == "use":
            return Fresh(vault.open_token(connection), connection.expires_at)
        if step == "wait":
            raise RefreshFailing(connection.last_error or "the provider did not answer", connection.provider)
        return _refresh(session, connection, now, force, actor)


def _next_step(connection, seen_version, force, now, min_validity):
    if connection.status not in vault.USABLE or connection.access_token is None:
        raise TokensExpired(provider=connection.provider)
    if seen_version is not None and connection.version != seen_version:
        return "use"
    if not force and vault.is_fresh(connection.expires_at, now, skew=min_validity):
        return "use"
    if connection.refresh_token is None:
        if vault.is_valid(connection, now):
            return "use"
        raise TokensExpired(provider=connection.provider)
    if not force and connection.next_attempt_at is not None and connection.next_attempt_at > now:
        return "use" if vault.is_valid(connection, now) else "wait"
    return "refresh"


def _refresh(session, connection, now, force, actor):
    provider = registry().get(connection.provider)
    if provider is None:
        raise RefreshFailing(f"the {connection.provider} provider plugin is not installed", connection.provider)
    credentials = settings.credentials(connection.user.team_id, provider.name)
    old_refresh_token = vault.open_token(connection, "refresh_token")
    try:
        token = http.refresh(provider, credentials, old_refresh_token)
    except http.InvalidGrant as error:
        return _invalid_grant(session, connection, old_refresh_token, error, actor)
    except http.ProviderFailure as error:
        return _failed(session, connection, now, error, actor)
    vault.store_tokens(connection, token, now, keep_refresh_token=old_refresh_token)
    connection.last_refresh_at = now
    rotated = token["refresh_token"] is not None and token["refresh_token"] != old_refresh_token
    vault.record(Action.TOKEN_REFRESHED, connection, actor=actor, details={
        "rotated": rotated, "forced": force, "expires_in": token["expires_in"], "version": connection.version,
        "access_token_fingerprint": fingerprint(token["access_token"])})
    session.commit()  # the new pair is durable before anyone uses it
    return Fresh(token["access_token"], connection.expires_at, refreshed=True)


def _invalid_grant(session, connection, old_refresh_token, error, actor):
    session.refresh(connection)  # re-read (we still hold the lock)
    current = vault.open_token(connection, "refresh_token") if connection.refresh_token else None
    if connection.status in vault.USABLE and current is not None and current != old_refresh_token:
        vault.record(Action.TOKEN_REFRESH_LOST_RACE, connection, actor=actor, details={"version": connection.version})
        session.commit()
        return Fresh(vault.open_token(connection), connection.expires_at)
    vault.destroy_tokens(connection, "reauth_required", error.reason)
    vault.record(Action.TOKEN_REAUTH_REQUIRED, connection, actor=actor, outcome="failure",
                 details={"reason": error.reason})
    session.commit()
    raise TokensExpired(provider=connection.provider)


def _failed(session, connection, now, error, actor):
    connection.failure_count = (connection.failure_count or 0) + 1
    delay = backoff(connection.failure_count)
    connection.next_attempt_at = now + timedelta(seconds=delay)
    connection.status = "refresh_failing"
    connection.last_error = error.reason[:255]
    vault.record(Action.TOKEN_REFRESH_FAILED, connection, actor=actor, outcome="failure", details={
        "reason": error.reason, "failure_count": connection.failure_count, "retry_in_seconds": delay})
    session.commit()
    if vault.is_valid(connection, now):
        return Fresh(vault.open_token(connection), connection.expires_at, failure=error.reason)
    raise RefreshFailing(error.reason, connection.provider)


def backoff(failures):
    """Seconds to wait after ``failures`` consecutive failures: base × 2^(n-1), at most an hour."""
    base = float(current_app.config["OAUTH_RETRY_BASE"])
    return int(min(base * 2 ** max(failures - 1, 0), 3600))
