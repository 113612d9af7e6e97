"""Account services: creating users, checking passwords, ending sessions. No Flask views here."""
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from portal import audit
from portal.errors import BadInput
from portal.extensions import db
from portal.models import Team, User, utcnow

MIN_PASSWORD_LENGTH = 12
# Checked against when the e-mail is unknown, so both failures cost the same time.
_DUMMY_HASH = generate_password_hash("not-a-real-password-just-for-timing")


def normalise_email(email):
    return (email or "").strip().lower()


def check_password_strength(password):
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise BadInput(f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.")


def hash_password(password):
    return generate_password_hash(password, method="scrypt")


def create_user(team, email, name, password, role="member", actor=None):
    """Add a user to ``team`` (audited); the caller commits."""
    email = normalise_email(email)
    if "@" not in email or len(email) > 254:
        raise BadInput("Enter a valid e-mail address.")
    check_password_strength(password)
    if db.session.scalar(select(func.count()).select_from(User).where(User.email == email)):
        raise BadInput("An account with that e-mail already exists.")
    user = User(team=team, email=email, name=(name or email.split("@")[0])[:120], role=role,
                password_hash=hash_password(password))
    db.session.add(user)
    db.session.flush()
    audit.record(audit.Action.USER_CREATED, actor=actor, actor_name=None if actor else "system",
                 team_id=team.id, target=user, details={"role": role})
    return user


def create_admin(email, password, team_name="My team"):
    """The first admin and their team (``flask portal create-admin``)."""
    team = db.session.scalar(select(Team).order_by(Team.id).limit(1)) or Team(name=team_name)
    db.session.add(team)
    db.session.flush()
    return create_user(team, email, None, password, role="admin")


def authenticate(email, password):
    """The active user with these credentials, or None; same work for every kind of failure."""
    user = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    if not check_password_hash(user.password_hash, password or "") or user.disabled:
        return None
    user.last_login_at = utcnow()
    return user


def end_all_sessions(user):
    """Every session of ``user`` stops being valid at its next request."""
    user.session_version = (user.session_version or 1) + 1
