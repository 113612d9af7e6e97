"""Account services: users, passwords, sessions and team membership. No Flask views here.

Every change here is audited with ``audit.record`` in the caller's transaction; the caller
commits. Lookups of other users are scoped to the actor's team: another team's user is
``NotFound``, never ``Forbidden``, so ids do not leak.
"""
import re

from flask import current_app
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from portal import audit, signals
from portal.errors import BadInput, Conflict, NotFound
from portal.extensions import db
from portal.models import ROLES, ApiKey, Team, User, utcnow

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
MAX_ID = 2**31 - 1  # ids beyond a 32-bit integer cannot exist (and PostgreSQL would refuse them)
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Checked against when the e-mail is unknown, so both failures cost the same time.
_DUMMY_HASH = generate_password_hash("not-a-real-password-just-for-timing", method="scrypt")


def normalise_email(email):
    return (email or "").strip().lower()


def is_valid_email(email):
    return bool(EMAIL.match(email)) and not CONTROL.search(email) and len(email) <= 254


def require_email(email):
    """The normalised e-mail, or BadInput."""
    email = normalise_email(email if isinstance(email, str) else "")
    if not is_valid_email(email):
        raise BadInput("Enter a valid e-mail address.")
    return email


def clean_name(name, fallback):
    name = (name if isinstance(name, str) else "").strip() or fallback
    if CONTROL.search(name) or len(name) > 120:
        raise BadInput("Names are at most 120 characters, without control characters.")
    return name


def check_password_strength(password):
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise BadInput(f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BadInput(f"Passwords are at most {MAX_PASSWORD_LENGTH} characters.")


def hash_password(password):
    return generate_password_hash(password, method="scrypt")


def email_taken(email):
    return bool(db.session.scalar(select(func.count()).select_from(User).where(User.email == email)))


def create_user(team, email, name, password, role="member", actor=None,
                action=audit.Action.USER_CREATED, details=None):
    """Add a user to ``team`` (audited as ``action``, by ``actor``: a user, None for the
    system, or "self" for someone joining); the caller commits."""
    email = require_email(email)
    name = clean_name(name, email.split("@")[0][:120])
    check_password_strength(password)
    if role not in ROLES:
        raise BadInput("Choose a role: admin or member.")
    if email_taken(email):
        raise Conflict("An account with that e-mail already exists.")
    user = User(team=team, email=email, name=name, role=role, password_hash=hash_password(password),
                disabled=False, session_version=1)
    db.session.add(user)
    db.session.flush()
    actor = user if actor == "self" else actor
    audit.record(action, actor=actor, actor_name=None if actor else "system",
                 team_id=team.id, target=user, details={"role": role, **(details or {})})
    return user


def find_or_create_team(name=None):
    """The team called ``name`` (created if missing), or else the first team, or a new one."""
    query = select(Team).order_by(Team.id).limit(1)
    if name:
        query = query.where(Team.name == name)
    team = db.session.scalar(query)
    if team is None:
        team = Team(name=clean_name(name, "My team"))
        db.session.add(team)
        db.session.flush()
    return team


def create_admin(email, password, team_name=None):
    """A new admin in ``team_name`` (or the first team) — ``flask portal create-admin``."""
    return create_user(find_or_create_team(team_name), email, None, password, role="admin")


def reset_admin(user, password):
    """Give an existing user a new password and the admin role, enabled; ends their sessions."""
    check_password_strength(password)
    previous_role = user.role
    user.password_hash = hash_password(password)
    user.role, user.disabled = "admin", False
    end_all_sessions(user)
    audit.record(audit.Action.AUTH_PASSWORD_CHANGED, actor_name="cli", team_id=user.team_id, target=user,
                 details={"via": "create-admin"})
    if previous_role != "admin":
        audit.record(audit.Action.USER_ROLE_CHANGED, actor_name="cli", team_id=user.team_id, target=user,
                     details={"from": previous_role, "to": "admin"})
    return user


def authenticate(email, password):
    """The active user with these credentials, or None; same work for every kind of failure."""
    email = normalise_email(email if isinstance(email, str) else "")
    password = password if isinstance(password, str) else ""
    user = db.session.scalar(select(User).where(User.email == email)) if is_valid_email(email) else None
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password) or user.disabled:
        return None
    user.last_login_at = utcnow()
    return user


def end_all_sessions(user):
    """Every session of ``user`` stops being valid at its next request (atomic increment)."""
    user.session_version = User.session_version + 1
    db.session.flush()


def logout_everywhere(user):
    end_all_sessions(user)
    audit.record(audit.Action.AUTH_LOGOUT_EVERYWHERE, actor=user, target=user)


def change_password(user, current, new):
    """Check ``current``, set ``new`` and end every session; the caller signs this one in again."""
    if not check_password_hash(user.password_hash, current if isinstance(current, str) else ""):
        raise BadInput("Your current password is not right.")
    check_password_strength(new)
    if new == current:
        raise BadInput("Choose a password different from the current one.")
    user.password_hash = hash_password(new)
    end_all_sessions(user)
    audit.record(audit.Action.AUTH_PASSWORD_CHANGED, actor=user, target=user)


def team_members(team_id):
    return db.session.scalars(select(User).where(User.team_id == team_id).order_by(User.email)).all()


def team_member(actor, user_id):
    """A user of the actor's team, locked for update where the database can; else NotFound."""
    if not isinstance(user_id, int) or not 0 < user_id <= MAX_ID:
        raise NotFound("That member does not exist.")
    user = db.session.scalar(select(User).where(User.id == user_id, User.team_id == actor.team_id)
                             .with_for_update())
    if user is None:
        raise NotFound("That member does not exist.")
    return user


def _keep_an_admin(user, action):
    """Refuse to leave the team without an active admin (the team row serialises this check)."""
    db.session.execute(select(Team.id).where(Team.id == user.team_id).with_for_update())
    others = db.session.scalar(select(func.count()).select_from(User).where(
        User.team_id == user.team_id, User.role == "admin", User.disabled.is_(False), User.id != user.id))
    if user.role == "admin" and not user.disabled and others == 0:
        raise Conflict(f"You cannot {action} the last active admin of the team.",
                       next_step="Make another member an admin first.")


def set_role(actor, user_id, role):
    """Change a member's role (admin only, team-scoped); audited as ``user.role_changed``."""
    if role not in ROLES:
        raise BadInput("Choose a role: admin or member.")
    user = team_member(actor, user_id)
    if user.role == role:
        return user
    if role != "admin":
        _keep_an_admin(user, "demote")
    previous, user.role = user.role, role
    audit.record(audit.Action.USER_ROLE_CHANGED, actor=actor, target=user, details={"from": previous, "to": role})
    return user


def set_disabled(actor, user_id, disabled):
    """Disable (ending sessions, API keys, and via the signal OAuth connections) or enable."""
    user = team_member(actor, user_id)
    if user.disabled == disabled:
        return user
    if not disabled:
        user.disabled = False
        audit.record(audit.Action.USER_ENABLED, actor=actor, target=user)
        return user
    _keep_an_admin(user, "disable")
    user.disabled = True
    end_all_sessions(user)
    revoked = _revoke_api_keys(user)
    audit.record(audit.Action.USER_DISABLED, actor=actor, target=user, details={"api_keys_revoked_count": revoked})
    signals.user_disabled.send(current_app._get_current_object(), user=user)
    return user


def _revoke_api_keys(user):
    keys = db.session.scalars(select(ApiKey).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))).all()
    for key in keys:
        key.revoked_at = utcnow()
    return len(keys)
