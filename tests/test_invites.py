"""Invitations: a single-use, hashed, expiring link that creates a member of the inviting team."""
import hashlib
import json
import logging
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal.extensions import db
from portal.models import AuditEvent, Invite, User, utcnow
from tests.conftest import Auth

LINK = re.compile(r"http://127\.0\.0\.1:5000/invite/([A-Za-z0-9_-]{43})")
INVALID = "This invitation link is invalid or has expired."
NEW_PASSWORD = "a long enough passphrase"


def rows(statement):
    db.session.rollback()  # read what is committed now, not the test's earlier snapshot
    return db.session.scalars(statement)


def invite(client, email="new@a.test", role="member", htmx=False):
    headers = {"HX-Request": "true"} if htmx else {}
    return client.submit("/admin/members/invites", {"email": email, "role": role}, token_from="/admin/members",
                         headers=headers)


def invite_token(client, email="new@a.test", role="member"):
    response = invite(client, email, role)
    assert response.status_code == 200, response.get_data(as_text=True)
    return LINK.search(response.get_data(as_text=True)).group(1)


def accept(client, token, name="New Person", password=NEW_PASSWORD, confirm=None):
    return client.submit(f"/invite/{token}", {"name": name, "password": password,
                                               "confirm_password": password if confirm is None else confirm},
                         token_from="/login")


def test_invite_shows_link_once_and_stores_only_its_hash(client, auth, admin):
    auth.login("admin@a.test")
    response = invite(client)
    html = response.get_data(as_text=True)
    token = LINK.search(html).group(1)
    assert response.headers["Cache-Control"] == "no-store"
    stored = rows(select(Invite)).one()
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert stored.email == "new@a.test" and stored.team_id == admin.team_id and stored.invited_by_id == admin.id
    assert timedelta(hours=167, minutes=59) < stored.expires_at - utcnow() <= timedelta(hours=168)
    later = client.get("/admin/members").get_data(as_text=True)
    assert token not in later and "new@a.test" in later  # listed as pending, link not shown again
    [event] = rows(select(AuditEvent).where(AuditEvent.action == "user.invited")).all()
    assert token not in event.details and json.loads(event.details)["role"] == "member"


def test_invite_answers_invites_fragment_for_htmx(client, auth, admin):
    auth.login("admin@a.test")
    response = invite(client, htmx=True)
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<section class="card" id="invites">') and LINK.search(html)


def test_invite_expiry_follows_invite_ttl_hours(app, client, auth, admin):
    app.config["INVITE_TTL_HOURS"] = 2
    auth.login("admin@a.test")
    invite_token(client)
    stored = rows(select(Invite)).one()
    assert timedelta(minutes=119) < stored.expires_at - utcnow() <= timedelta(hours=2)


def test_accept_invite_creates_member_in_team_and_signs_in(app, client, auth, admin):
    auth.login("admin@a.test")
    token = invite_token(client, role="admin")
    newcomer = app.test_client()
    form = newcomer.get(f"/invite/{token}")
    assert form.status_code == 200 and "new@a.test" in form.get_data(as_text=True)
    assert form.headers["Referrer-Policy"] == "no-referrer" and form.headers["Cache-Control"] == "no-store"
    response = accept(newcomer, token)
    assert response.status_code == 303
    joined = rows(select(User).where(User.email == "new@a.test")).one()
    assert (joined.team_id, joined.role, joined.name) == (admin.team_id, "admin", "New Person")
    assert newcomer.get("/account").status_code == 200
    assert rows(select(Invite)).one().accepted_at is not None
    [event] = rows(select(AuditEvent).where(AuditEvent.action == "user.joined")).all()
    assert event.actor_id == joined.id and json.loads(event.details)["invited_by_id"] == admin.id
    assert Auth(app.test_client()).login("new@a.test", NEW_PASSWORD).status_code == 303


def _assert_invalid(client, token):
    for response in (client.get(f"/invite/{token}"), accept(client, token)):
        assert response.status_code == 404
        assert INVALID in response.get_data(as_text=True)


def test_accept_invite_twice_fails_and_creates_nothing_more(app, client, auth, admin):
    auth.login("admin@a.test")
    token = invite_token(client)
    assert accept(app.test_client(), token).status_code == 303
    _assert_invalid(app.test_client(), token)
    assert len(rows(select(User)).all()) == 2


@pytest.mark.parametrize("spoil", ["expired", "revoked"])
def test_accept_invite_fails_when_expired_or_revoked(app, client, auth, admin, spoil):
    auth.login("admin@a.test")
    token = invite_token(client)
    stored = rows(select(Invite)).one()
    if spoil == "expired":
        db.session.execute(update(Invite).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    else:
        response = client.submit(f"/admin/members/invites/{stored.id}/revoke", token_from="/admin/members")
        assert response.status_code == 303
        assert len(rows(select(AuditEvent).where(AuditEvent.action == "user.invite_revoked")).all()) == 1
    _assert_invalid(app.test_client(), token)
    assert rows(select(User).where(User.email == "new@a.test")).all() == []


@pytest.mark.parametrize("token", ["unknown", "A" * 43, "A" * 42 + "!", "A" * 500, "%00" * 43])
def test_accept_invite_fails_for_unknown_or_malformed_token(client, admin, token):
    _assert_invalid(client, token)


def test_accept_invite_with_bad_input_creates_nothing_and_keeps_link(app, client, auth, admin):
    auth.login("admin@a.test")
    token = invite_token(client)
    newcomer = app.test_client()
    cases = [({"password": "short"}, "at least 12"), ({"confirm": "something else!!"}, "confirmation differ"),
             ({"name": ""}, "Enter your name."), ({"name": "x" * 121}, "at most 120"),
             ({"name": "bad\x00name"}, "control characters")]
    for overrides, message in cases:
        response = accept(newcomer, token, **overrides)
        assert response.status_code == 400 and message in response.get_data(as_text=True), overrides
    assert rows(select(User).where(User.email == "new@a.test")).all() == []
    assert accept(newcomer, token).status_code == 303


def test_accept_invite_fails_when_account_appeared_meanwhile(app, client, auth, admin, make_user):
    auth.login("admin@a.test")
    token = invite_token(client)
    make_user("new@a.test", team_name="Elsewhere")
    _assert_invalid(app.test_client(), token)


@pytest.mark.parametrize("email", ["admin@a.test", "ADMIN@A.TEST ", "member@a.test"])
def test_invite_existing_account_is_conflict(client, auth, admin, member, email):
    auth.login("admin@a.test")
    response = invite(client, email)
    assert response.status_code == 409 and "An account with that e-mail already exists." in response.get_data(as_text=True)
    assert rows(select(Invite)).all() == []


def test_invite_same_email_twice_while_pending_is_conflict(client, auth, admin):
    auth.login("admin@a.test")
    invite_token(client)
    response = invite(client, "NEW@a.test")
    assert response.status_code == 409 and "already a pending invitation" in response.get_data(as_text=True)


@pytest.mark.parametrize("email, role, message", [
    ("not-an-email", "member", "valid e-mail"), ("", "member", "valid e-mail"),
    ("a@b\x00.test", "member", "valid e-mail"), ("x" * 300 + "@a.test", "member", "valid e-mail"),
    ("ok@a.test", "owner", "Choose a role")])
def test_invite_with_bad_input_is_refused(client, auth, admin, email, role, message):
    auth.login("admin@a.test")
    response = invite(client, email, role)
    assert response.status_code == 400 and message in response.get_data(as_text=True)


def test_invites_of_another_team_are_not_found(app, client, auth, admin, make_user):
    make_user("admin@b.test", role="admin", team_name="Team B")
    auth.login("admin@a.test")
    token = invite_token(client)
    stored = rows(select(Invite)).one()
    other = app.test_client()
    Auth(other).login("admin@b.test")
    assert "new@a.test" not in other.get("/admin/members").get_data(as_text=True)
    response = other.submit(f"/admin/members/invites/{stored.id}/revoke", token_from="/admin/members")
    assert response.status_code == 404
    assert accept(app.test_client(), token).status_code == 303


def test_members_cannot_invite(client, auth, member):
    auth.login("member@a.test")
    response = client.submit("/admin/members/invites", {"email": "x@a.test", "role": "admin"}, token_from="/account")
    assert response.status_code == 404
    assert rows(select(Invite)).all() == []


def test_invite_token_never_reaches_logs(app, client, auth, admin, caplog):
    caplog.set_level(logging.DEBUG)
    auth.login("admin@a.test")
    token = invite_token(client)
    accept(app.test_client(), token)
    logging.getLogger("werkzeug").info('%s - - [%s] "%s" %s %s', "127.0.0.1", "now", f"GET /invite/{token} HTTP/1.1", 200, 1)
    logging.getLogger("gunicorn.access").info("%(r)s", {"r": f"POST /invite/{token} HTTP/1.1"})
    assert caplog.records
    for record in caplog.records:
        assert token not in record.getMessage()
    assert any("/invite/[redacted]" in record.getMessage() for record in caplog.records)
