"""Personal API keys for agent hosts: ``Authorization: Bearer mcpp_<prefix>_<secret>``.

A key is 8 hex characters of prefix (shown in lists, to recognise it) and 64 hex characters
(256 bits) of secret. Only the sha256 of the whole key is stored, so it is shown once, at
creation. A key acts as its owner while the owner is enabled and the key is not revoked;
disabling a user revokes their keys.
"""
import hashlib
import logging
import re
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from portal import accounts, audit
from portal.errors import BadInput, Conflict, NotFound
from portal.extensions import db
from portal.models import ApiKey, User, utcnow

KEY = re.compile(r"^mcpp_([0-9a-f]{8})_([0-9a-f]{64})$")
BEARER = re.compile(r"^\s*Bearer\s+(\S+)\s*$", re.IGNORECASE)
MAX_ACTIVE_KEYS = 20
TOUCH_EVERY = timedelta(minutes=1)
log = logging.getLogger("portal.api_keys")


def hash_key(key):
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(header_value):
    """True if an Authorization header value carries something shaped like a portal key."""
    match = BEARER.match(header_value or "")
    return bool(match and match.group(1).startswith("mcpp_"))


def create(user, name):
    """A new key for ``user``; returns ``(api_key, plaintext)``. The caller commits."""
    name = accounts.clean_name(name, "")
    if not name:
        raise BadInput("Give the key a name, such as the host that will use it.")
    if len(active(user)) >= MAX_ACTIVE_KEYS:
        raise Conflict(f"You already have {MAX_ACTIVE_KEYS} active keys.", next_step="Revoke one you no longer use.")
    prefix, secret = secrets.token_hex(4), secrets.token_hex(32)
    plaintext = f"mcpp_{prefix}_{secret}"
    key = ApiKey(user_id=user.id, name=name, prefix=prefix, key_hash=hash_key(plaintext), created_at=utcnow())
    db.session.add(key)
    db.session.flush()
    audit.record(audit.Action.API_KEY_CREATED, actor=user, target=key, details={"prefix": prefix})
    return key, plaintext


def active(user):
    return db.session.scalars(select(ApiKey).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
                              .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())).all()


def revoke(user, key_id):
    """Revoke one of ``user``'s own active keys; any other id is NotFound."""
    key = db.session.get(ApiKey, key_id) if 0 < key_id <= accounts.MAX_ID else None
    if key is None or key.user_id != user.id or key.revoked_at is not None:
        raise NotFound("That API key does not exist or is already revoked.")
    key.revoked_at = utcnow()
    audit.record(audit.Action.API_KEY_REVOKED, actor=user, target=key, details={"prefix": key.prefix})
    return key


def authenticate(header_value):
    """The enabled owner of the active key in ``Authorization: Bearer mcpp_...``, or None."""
    key = find(header_value)
    return None if key is None else key.user


def find(header_value):
    """The active key named by an Authorization header value, if its owner is enabled."""
    digest = _digest(header_value)
    if digest is None:
        return None
    return db.session.scalar(select(ApiKey).join(User, User.id == ApiKey.user_id).where(
        ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None), User.disabled.is_(False)))


def _digest(header_value):
    """sha256 of the well-formed key in ``Bearer mcpp_...``, else None (nothing malformed is looked up)."""
    match = BEARER.match(header_value) if isinstance(header_value, str) else None
    if match is None or not KEY.match(match.group(1)):
        return None
    return hash_key(match.group(1))


def check_and_record_use(header_value):
    """Whether the header carries a usable key; records its use, at most once a minute per key.

    Runs on short connections of its own, outside the request's session: a read-only request
    keeps the bookkeeping, and the request's own transaction starts clean (on SQLite a
    state-changing request takes the write lock when it begins). A busy database only skips
    the bookkeeping.
    """
    digest = _digest(header_value)
    if digest is None:
        return False
    with db.engine.connect() as connection:
        row = connection.execute(select(ApiKey.id, ApiKey.last_used_at).join(User, User.id == ApiKey.user_id).where(
            ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None), User.disabled.is_(False))).first()
    now = utcnow()
    if row is not None and (row.last_used_at is None or row.last_used_at < now - TOUCH_EVERY):
        try:
            with db.engine.begin() as connection:
                connection.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
        except OperationalError:
            log.warning("api key %s: last use not recorded (database busy)", row.id)
    return row is not None
