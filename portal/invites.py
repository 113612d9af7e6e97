"""Invitations: a single-use link that lets someone join the inviting admin's team.

The link carries a 256-bit random token; only its sha256 is stored, so the database cannot
rebuild a link. The token is returned once, to be shown to the admin, and never logged or
audited. Every way a link can be unusable (unknown, expired, used, revoked) gives the same
``InvalidInvite`` answer.
"""
import hashlib
import re
import secrets
from datetime import timedelta

from sqlalchemy import select, update

from portal import accounts, audit
from portal.errors import BadInput, Conflict, NotFound
from portal.extensions import db
from portal.models import ROLES, Invite, utcnow

TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # token_urlsafe(32)
INVALID_MESSAGE = "This invitation link is invalid or has expired."
DEFAULT_TTL_HOURS = 7 * 24


class InvalidInvite(NotFound):
    def __init__(self):
        super().__init__(INVALID_MESSAGE, next_step="Ask your team admin for a new invitation.")


def hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


def create(actor, email, role, ttl_hours=DEFAULT_TTL_HOURS):
    """A pending invite to ``actor``'s team; returns ``(invite, token)``. The caller commits."""
    email = accounts.require_email(email)
    if role not in ROLES:
        raise BadInput("Choose a role: admin or member.")
    if accounts.email_taken(email):
        raise Conflict("An account with that e-mail already exists.")
    if any(invite.email == email for invite in pending(actor.team_id)):
        raise Conflict("There is already a pending invitation for that e-mail.",
                       next_step="Revoke it to send a new link.")
    token = secrets.token_urlsafe(32)
    invite = Invite(team_id=actor.team_id, email=email, role=role, token_hash=hash_token(token),
                    invited_by_id=actor.id, created_at=utcnow(),
                    expires_at=utcnow() + timedelta(hours=ttl_hours))
    db.session.add(invite)
    db.session.flush()
    audit.record(audit.Action.USER_INVITED, actor=actor, target=invite,
                 details={"role": role, "expires_at": invite.expires_at.isoformat()})
    return invite, token


def pending(team_id):
    """Invites of a team that can still be accepted, newest first."""
    return db.session.scalars(select(Invite).where(
        Invite.team_id == team_id, Invite.accepted_at.is_(None), Invite.revoked_at.is_(None),
        Invite.expires_at > utcnow()).order_by(Invite.created_at.desc(), Invite.id.desc())).all()


def revoke(actor, invite_id):
    """Revoke a pending invite of the actor's team; anything else is NotFound."""
    invite = db.session.get(Invite, invite_id) if 0 < invite_id <= accounts.MAX_ID else None
    if invite is None or invite.team_id != actor.team_id or invite.accepted_at or invite.revoked_at:
        raise NotFound("That invitation does not exist or is no longer pending.")
    invite.revoked_at = utcnow()
    audit.record(audit.Action.USER_INVITE_REVOKED, actor=actor, target=invite, details={"role": invite.role})
    return invite


def find_usable(token):
    """The pending, unexpired invite for ``token`` whose e-mail has no account yet, or InvalidInvite."""
    if not isinstance(token, str) or not TOKEN.match(token):
        raise InvalidInvite()
    invite = db.session.scalar(select(Invite).where(Invite.token_hash == hash_token(token)))
    if (invite is None or invite.accepted_at or invite.revoked_at or invite.expires_at <= utcnow()
            or accounts.email_taken(invite.email)):
        raise InvalidInvite()
    return invite


def accept(token, name, password):
    """Create the invited member (audited ``user.joined``) and use up the invite; returns the user.

    Inputs are checked before the invite is claimed; the claim is a compare-and-swap, so two
    concurrent accepts of one link create one user.
    """
    invite = find_usable(token)
    name = accounts.clean_name(name, "")
    if not name:
        raise BadInput("Enter your name.")
    accounts.check_password_strength(password)
    claimed = db.session.execute(update(Invite).where(
        Invite.id == invite.id, Invite.accepted_at.is_(None), Invite.revoked_at.is_(None))
        .values(accepted_at=utcnow()).execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        raise InvalidInvite()
    user = accounts.create_user(invite.team, invite.email, name, password, role=invite.role, actor="self",
                                action=audit.Action.USER_JOINED,
                                details={"invite_id": invite.id, "invited_by_id": invite.invited_by_id})
    user.last_login_at = utcnow()
    return user
