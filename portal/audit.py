"""The audit trail: ``record()`` is the one way to write an event.

Services call ``record()`` inside the same database transaction as the change it describes, so
the two commit together or not at all. Each event is chained to the one before by an HMAC
under the audit key; the chain head is a single locked row, so appends from many workers still
form one chain. Details must never carry secrets: keys that name one are refused, and values
that must stay recognisable are passed through ``fingerprint()``.
"""
import hashlib
import hmac
import json
import logging
from enum import Enum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app, has_app_context
from flask_login import current_user
from sqlalchemy import select, update

from portal.extensions import db
from portal.models import AuditChainHead, AuditEvent, utcnow
from portal.requests import client_context

log = logging.getLogger("portal.audit")
GENESIS_HASH = "0" * 64
SECRET_WORDS = ("token", "secret", "password", "code", "state", "verifier", "assertion", "cookie", "key")


class Action(str, Enum):
    """Every audited action. Dotted names: subject, then what happened."""

    AUTH_LOGIN = "auth.login"
    AUTH_LOGIN_FAILED = "auth.login_failed"
    AUTH_LOGOUT = "auth.logout"
    AUTH_LOGOUT_EVERYWHERE = "auth.logout_everywhere"
    AUTH_PASSWORD_CHANGED = "auth.password_changed"
    USER_CREATED = "user.created"
    USER_INVITED = "user.invited"
    USER_INVITE_REVOKED = "user.invite_revoked"
    USER_JOINED = "user.joined"
    USER_ROLE_CHANGED = "user.role_changed"
    USER_DISABLED = "user.disabled"
    USER_ENABLED = "user.enabled"
    PROVIDER_ENABLED = "provider.enabled"
    PROVIDER_DISABLED = "provider.disabled"
    PROVIDER_CREDENTIALS_CHANGED = "provider.credentials_changed"
    KEYS_ROTATED = "keys.rotated"
    SERVER_CREATED = "server.created"
    SERVER_UPDATED = "server.updated"
    SERVER_DELETED = "server.deleted"
    OAUTH_AUTHORIZE_STARTED = "oauth.authorize.started"
    OAUTH_AUTHORIZE_SUCCEEDED = "oauth.authorize.succeeded"
    OAUTH_AUTHORIZE_FAILED = "oauth.authorize.failed"
    TOKEN_REFRESHED = "token.refreshed"
    TOKEN_REFRESH_FAILED = "token.refresh_failed"
    TOKEN_REFRESH_LOST_RACE = "token.refresh_lost_race"
    TOKEN_REAUTH_REQUIRED = "token.reauth_required"
    TOKEN_REVOKED = "token.revoked"
    TOKEN_REVOCATION_PENDING = "token.revocation_pending"
    TOKEN_REVOCATION_FAILED = "token.revocation_failed"
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    RATELIMIT_EXCEEDED = "ratelimit.exceeded"
    AUDIT_PRUNED = "audit.pruned"


def _derive(app, purpose):
    cache = app.extensions.setdefault("portal.audit_keys", {})
    if purpose not in cache:
        cache[purpose] = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                              info=f"mcp-portal {purpose}".encode()).derive(app.config["AUDIT_KEY"].encode())
    return cache[purpose]


def fingerprint(value):
    """A short keyed fingerprint of a secret: recognisable across events, useless to an attacker."""
    digest = hmac.new(_derive(current_app, "fingerprint"), str(value).encode(), hashlib.sha256).hexdigest()
    return "fp:" + digest[:16]


def chain_hash(key, prev_hash, fields):
    """HMAC-SHA256 over the previous hash and the event's canonical JSON."""
    message = prev_hash.encode() + b"\n" + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def hashed_fields(event):
    """The content an event's HMAC covers (everything but its id and hashes)."""
    return {
        "created_at": event.created_at.isoformat(), "actor_id": event.actor_id, "actor_name": event.actor_name,
        "team_id": event.team_id, "action": event.action, "target_type": event.target_type,
        "target_id": event.target_id, "target_label": event.target_label, "provider": event.provider,
        "outcome": event.outcome, "request_id": event.request_id, "ip": event.ip,
        "user_agent": event.user_agent, "details": event.details,
    }


def check_details(details):
    for name in details:
        lowered = name.lower()
        if any(word in lowered for word in SECRET_WORDS) and not lowered.endswith(("_fingerprint", "_hint", "_id", "_ids", "_count")):
            raise ValueError(f"audit details may not carry {name!r}; pass a fingerprint() instead")


def _current_actor():
    if has_app_context():
        try:
            if current_user and current_user.is_authenticated:
                return current_user
        except Exception:  # outside a request (CLI, jobs) there is no login context
            return None
    return None


def record(action, *, actor=None, actor_name=None, team_id=None, target=None, target_type=None,
           target_id=None, target_label=None, provider=None, outcome="success", details=None):
    """Append one event to the current transaction and the chain; the caller commits.

    ``actor`` defaults to the signed-in user; ``target`` may be a model row (its type, id and a
    label are copied). Raises ValueError if ``details`` names a secret.
    """
    action = Action(action).value
    details = details or {}
    check_details(details)
    actor = actor if actor is not None else _current_actor()
    if target is not None:
        target_type = target_type or target.__tablename__
        target_id = target_id if target_id is not None else getattr(target, "id", None)
        target_label = target_label or getattr(target, "name", None) or getattr(target, "email", None)
    event = AuditEvent(
        created_at=utcnow(),
        actor_id=getattr(actor, "id", None),
        actor_name=actor_name or getattr(actor, "email", None),
        team_id=team_id if team_id is not None else getattr(actor, "team_id", None),
        action=action, target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        target_label=None if target_label is None else str(target_label)[:254],
        provider=provider, outcome=outcome,
        details=json.dumps(details, sort_keys=True, separators=(",", ":"), default=str),
        **client_context(),
    )
    _append(event)
    log.info("audit %s outcome=%s actor=%s target=%s:%s request=%s", event.action, event.outcome,
             event.actor_id, event.target_type, event.target_id, event.request_id)
    return event


def _append(event):
    # Taking the head row's write lock first (UPDATE before SELECT) serialises appenders on
    # PostgreSQL and SQLite alike, and the SELECT after it sees the latest committed head.
    db.session.execute(update(AuditChainHead).where(AuditChainHead.id == 1).values(updated_at=utcnow()))
    head = db.session.execute(select(AuditChainHead.last_hash).where(AuditChainHead.id == 1)).scalar_one()
    event.prev_hash = head
    event.hash = chain_hash(_derive(current_app, "chain"), head, hashed_fields(event))
    db.session.add(event)
    db.session.flush()
    db.session.execute(update(AuditChainHead).where(AuditChainHead.id == 1)
                       .values(last_hash=event.hash, last_event_id=event.id))


def init_app(app):
    app.extensions["portal.audit"] = {"actions": [a.value for a in Action]}
