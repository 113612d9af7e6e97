"""The audit trail: ``record()`` is the one way to write an event.

Services call ``record()`` inside the same database transaction as the change it describes, so
the two commit together or not at all (fail closed). Each event is chained to the one before by
an HMAC under the audit key; the chain head is a single row that each append locks, so appends
from many workers still form one chain (``portal.audit_chain`` verifies and prunes it). Details
must never carry secrets: keys that name one are refused, and values that must stay
recognisable are passed through ``fingerprint()``. Every action is listed in ``Action`` and
explained in docs/audit.md.
"""
import hashlib
import hmac
import json
import logging
import re
from enum import Enum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app, has_app_context
from flask_login import current_user
from sqlalchemy import bindparam, event as sa_event, insert, update
from sqlalchemy.orm import Session

from portal.extensions import db
from portal.models import AuditChainHead, AuditEvent, utcnow
from portal.requests import client_context

log = logging.getLogger("portal.audit")
GENESIS_HASH = "0" * 64
OUTCOMES = ("success", "failure", "denied")
# A details key is split into words; a word naming a secret is refused unless the key ends in a
# word that says the value is only about the secret (its id, a fingerprint, a count ...).
SECRET_WORDS = frozenset({
    "token", "tokens", "secret", "secrets", "password", "passwords", "passwd", "code", "codes", "state",
    "verifier", "assertion", "cookie", "cookies", "key", "credential", "credentials", "authorization",
})
SAFE_LAST_WORDS = frozenset({"id", "ids", "fingerprint", "fingerprints", "hint", "count", "type", "prefix", "length"})
_HEAD_CACHE = "portal.audit_head"
# Statements built once: their parameters are passed at each execution, so nothing is rebuilt.
_LOCK_HEAD = (update(AuditChainHead.__table__).where(AuditChainHead.__table__.c.id == 1)
              .values(updated_at=bindparam("now")).returning(AuditChainHead.__table__.c.last_hash))
_INSERT_EVENT = insert(AuditEvent.__table__).returning(AuditEvent.__table__.c.id)
_EVENT_COLUMNS = [column.key for column in AuditEvent.__table__.columns if column.key != "id"]


class Action(str, Enum):
    """Every audited action. Dotted names: subject, then what happened (docs/audit.md)."""

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


def chain_key(app):
    """The HMAC key of the chain (derived from PORTAL_AUDIT_KEY, separate from fingerprints)."""
    return _derive(app, "chain")


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


def names_secret(key):
    """True when a details key names a secret (``refresh_token``, ``state``, ``clientSecret``)."""
    words = [word for word in re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(key)).lower()) if word]
    return bool(words) and words[-1] not in SAFE_LAST_WORDS and any(word in SECRET_WORDS for word in words)


def check_details(details, path=""):
    """Refuse details whose keys (at any depth) name a secret; the message names the key."""
    if isinstance(details, dict):
        for name, value in details.items():
            if names_secret(name):
                raise ValueError(f"audit details may not carry {path + str(name)!r}; pass a fingerprint() instead")
            check_details(value, f"{path}{name}.")
    elif isinstance(details, (list, tuple)):
        for value in details:
            check_details(value, path)


def _current_actor():
    if has_app_context():
        try:
            if current_user and current_user.is_authenticated:
                return current_user
        except Exception:  # outside a request (CLI, jobs) there is no login context
            return None
    return None


def _target_columns(target, target_type, target_id, target_label):
    if target is not None:
        target_type = target_type or target.__tablename__
        target_id = target_id if target_id is not None else getattr(target, "id", None)
        target_label = target_label or getattr(target, "name", None) or getattr(target, "email", None)
    return {"target_type": target_type, "target_id": None if target_id is None else str(target_id)[:64],
            "target_label": None if target_label is None else str(target_label)[:254]}


def record(action, *, actor=None, actor_name=None, team_id=None, target=None, target_type=None,
           target_id=None, target_label=None, provider=None, outcome="success", details=None):
    """Append one event to the current transaction and the chain; the caller commits.

    ``actor`` defaults to the signed-in user (its id, e-mail and team are copied); ``target``
    may be a model row (its table name, id and a label are copied). ``outcome`` is one of
    ``OUTCOMES``. Raises ValueError for an unknown action or outcome, or if ``details`` names
    a secret. The event's time is stamped under the chain lock, so id order is time order.
    """
    action = Action(action).value
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome must be one of {OUTCOMES}, not {outcome!r}")
    details = details or {}
    check_details(details)
    actor = actor if actor is not None else _current_actor()
    name = actor_name or getattr(actor, "email", None)
    values = {
        "actor_id": getattr(actor, "id", None),
        "actor_name": None if name is None else str(name)[:254],
        "team_id": team_id if team_id is not None else getattr(actor, "team_id", None),
        "action": action, "provider": provider, "outcome": outcome,
        "details": json.dumps(details, sort_keys=True, separators=(",", ":"), default=str),
        **_target_columns(target, target_type, target_id, target_label),
        **client_context(),
    }
    event = _append(values)
    log.info("audit %s outcome=%s actor=%s target=%s:%s request=%s", event.action, event.outcome,
             event.actor_id, event.target_type, event.target_id, event.request_id)
    return event


def lock_head(session):
    """Lock the chain head row for this transaction and return its last hash (one statement).

    The UPDATE takes the row's write lock before reading, so appenders queue here on PostgreSQL
    (row lock) and SQLite (database write lock), and the value returned is the latest committed.
    """
    return session.connection().execute(_LOCK_HEAD, {"now": utcnow()}).scalar_one()


def _append(values):
    """Chain and insert the event in the session's transaction; returns it (id set, detached).

    Plain SQL on the session's connection rather than an ORM flush: the time between taking the
    head lock and committing is what every other appender waits for, so it is kept short.
    """
    session = db.session()
    prev_hash = session.info.get(_HEAD_CACHE) or lock_head(session)
    event = AuditEvent(**values, created_at=utcnow(), prev_hash=prev_hash)
    event.hash = chain_hash(chain_key(current_app), prev_hash, hashed_fields(event))
    row = {name: getattr(event, name) for name in _EVENT_COLUMNS}
    event.id = session.connection().execute(_INSERT_EVENT, row).scalar_one()  # the trigger moves the head
    # Until this transaction ends we hold the head lock, so later events need not read it again.
    session.info[_HEAD_CACHE] = event.hash
    return event


@sa_event.listens_for(Session, "after_transaction_end")
def _forget_head(session, transaction):
    """The cached head is only valid while this transaction (and its lock) lasts."""
    session.info.pop(_HEAD_CACHE, None)


def init_app(app):
    app.extensions["portal.audit"] = {"actions": [a.value for a in Action]}
