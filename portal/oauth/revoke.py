"""Revocation: disable locally first, then revoke at the provider, and say truthfully whether the
provider confirmed it (SECURITY.md items 12-13).

1. Under the row lock the connection becomes ``revocation_pending`` and is committed: from then
   on no caller gets its token and no refresh touches it.
2. Outside any lock, the refresh token and then the access token are revoked at the provider's
   ``revoke_url`` (RFC 7009 fields, or the plugin's ``revocation_request``), with client auth.
3. Confirmed: the row, and with it every ciphertext, is deleted (``token.revoked``). Not
   confirmed: it stays ``revocation_pending`` with back-off (``token.revocation_pending`` on the
   first failure) and ``flask portal refresh-due`` retries; after ``OAUTH_MAX_REVOCATION_ATTEMPTS``
   failures, or when the caller says the row must go now (``final``), the ciphertexts are
   destroyed anyway and ``token.revocation_failed`` is recorded. A provider without a revocation
   endpoint: deleted locally and reported as not confirmed (``revoked_locally``).
"""
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from portal.audit import Action
from portal.crypto import SealError, open_field
from portal.extensions import db
from portal.models import Connection, utcnow
from portal.oauth import http, vault
from portal.oauth.errors import NotConnected
from portal.oauth.locking import lock_connection, own_transaction
from portal.oauth.refresh import backoff
from portal.providers import settings
from portal.providers.registry import registry


NO_ENDPOINT = "the provider has no revocation endpoint"


@dataclass(frozen=True)
class Revocation:
    confirmed: bool
    status: str  # revoked | revoked_locally | revocation_pending | revocation_failed

    def as_dict(self):
        return {"revoked": True, "confirmed": self.confirmed, "status": self.status}


@dataclass(frozen=True)
class _Pending:
    version: int
    provider: str
    team_id: int
    tokens: tuple  # ((token, hint), ...): refresh token first


def revoke_connection(connection_id, actor=None, final=False):
    """Disable, revoke at the provider, then delete or keep pending; returns a Revocation.

    ``final``: the row must go now (no retry): an unconfirmed revocation is recorded as failed.
    """
    pending = _disable(connection_id)
    reason = _at_provider(pending.provider, pending.team_id, pending.tokens)
    if reason is None:
        return _finish(connection_id, pending, actor, Revocation(True, "revoked"),
                       {"provider_call": bool(pending.tokens)})
    if reason == NO_ENDPOINT:
        return _finish(connection_id, pending, actor, Revocation(False, "revoked_locally"),
                       {"provider_call": False, "reason": reason})
    return _not_confirmed(connection_id, pending, actor, reason, final)


def _at_provider(provider_name, team_id, tokens):
    """None if the provider confirmed every revocation (or there was nothing to revoke), else why not."""
    if not tokens:
        return None
    provider = registry().get(provider_name)
    if provider is None or not provider.revoke_url:
        return NO_ENDPOINT
    try:
        with own_transaction(write=False):
            credentials = settings.credentials(team_id, provider.name)
        for token, hint in tokens:
            http.revoke(provider, credentials, token, hint)
    except http.ProviderFailure as error:
        return error.reason
    except settings.ProviderNotConfigured as error:
        return error.message
    return None


def _disable(connection_id):
    with own_transaction() as session:
        connection = lock_connection(session, connection_id)
        if connection is None:
            raise NotConnected()
        if connection.status != "revocation_pending":
            connection.status = "revocation_pending"
            connection.failure_count = 0
            connection.version += 1
        # Another host's refresh-due leaves it alone while this attempt runs.
        lease = float(current_app.config["OAUTH_LOCK_TIMEOUT"]) + 2 * float(current_app.config["OAUTH_HTTP_TIMEOUT"])
        connection.next_attempt_at = utcnow() + timedelta(seconds=lease)
        pending = _Pending(connection.version, connection.provider, connection.user.team_id, _tokens(connection))
        session.commit()
        return pending


def _tokens(connection):
    found = []
    for column, hint in (("refresh_token", "refresh_token"), ("access_token", "access_token")):
        try:
            value = open_field(connection, column)
        except SealError:
            value = None  # unreadable here: nothing can be sent, the row still goes
        if value:
            found.append((value, hint))
    return tuple(found)


def _finish(connection_id, pending, actor, result, details):
    with own_transaction() as session:
        connection = lock_connection(session, connection_id)
        if connection is None:
            return result
        revoked = result.status in ("revoked", "revoked_locally")
        action = Action.TOKEN_REVOKED if revoked else Action.TOKEN_REVOCATION_FAILED
        outcome = "success" if result.confirmed else "failure"
        if connection.version != pending.version:  # reconnected meanwhile: the new tokens stay
            vault.record(action, connection, actor=actor, outcome=outcome, details={**details, "reconnected": True})
        else:
            vault.record(action, connection, actor=actor, outcome=outcome, details=details)
            session.delete(connection)
        session.commit()
    return result


def _not_confirmed(connection_id, pending, actor, reason, final):
    with own_transaction() as session:
        connection = lock_connection(session, connection_id)
        if connection is None or connection.version != pending.version:
            return Revocation(False, "revocation_pending")
        attempts = (connection.failure_count or 0) + 1
        give_up = final or attempts >= int(current_app.config["OAUTH_MAX_REVOCATION_ATTEMPTS"])
        if not give_up:
            delay = backoff(attempts)
            connection.failure_count = attempts
            connection.next_attempt_at = utcnow() + timedelta(seconds=delay)
            connection.last_error = f"revocation not confirmed: {reason}"[:255]
            if attempts == 1:
                vault.record(Action.TOKEN_REVOCATION_PENDING, connection, actor=actor, outcome="failure",
                             details={"reason": reason, "retry_in_seconds": delay})
            session.commit()
    if give_up:
        return _finish(connection_id, pending, actor, Revocation(False, "revocation_failed"),
                       {"reason": reason, "attempts_count": attempts})
    return Revocation(False, "revocation_pending")


def revoke_before_server_delete(sender, server, actor=None, **extra):
    """``portal.signals.server_deleting`` receiver, inside the deleting transaction: revoke each
    connection of the server at the provider now (its rows go with the server, so there is no
    later retry) and audit the outcome in the same transaction."""
    connections = db.session.scalars(select(Connection).where(Connection.server_id == server.id)).all()
    outcomes = [(connection, _at_provider(connection.provider, server.team_id, _tokens(connection)))
                for connection in connections]
    for connection, reason in outcomes:
        if reason is None:
            vault.record(Action.TOKEN_REVOKED, connection, actor=actor, details={"reason": "server deleted"})
        else:
            vault.record(Action.TOKEN_REVOCATION_FAILED, connection, actor=actor, outcome="failure",
                         details={"reason": f"server deleted before the provider confirmed: {reason}"})


def retry_pending(now=None, limit=100):
    """Retry due revocations (``flask portal refresh-due``); returns their Revocations."""
    now = now or utcnow()
    ids = db.session.scalars(select(Connection.id).where(
        Connection.status == "revocation_pending",
        (Connection.next_attempt_at.is_(None)) | (Connection.next_attempt_at <= now)).limit(limit)).all()
    db.session.rollback()  # end this read; each attempt runs in its own transaction
    return [revoke_connection(connection_id) for connection_id in ids]


def queue_user_revocations(sender, user, **extra):
    """``portal.signals.user_disabled`` receiver: disable the user's connections in the caller's
    transaction; ``refresh-due`` revokes them at the provider after the commit."""
    connections = db.session.scalars(select(Connection).where(
        Connection.user_id == user.id, Connection.status != "revocation_pending")).all()
    for connection in connections:
        vault.record(Action.TOKEN_REVOCATION_PENDING, connection, details={"reason": "user disabled"})
    db.session.execute(update(Connection).where(Connection.user_id == user.id).values(
        status="revocation_pending", failure_count=0, next_attempt_at=None, version=Connection.version + 1)
        .execution_options(synchronize_session=False))
