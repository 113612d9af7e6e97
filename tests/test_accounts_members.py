"""Admin Members page: roles, disable/enable, the last-admin rule, team scoping, the signal."""
import json

import pytest
from sqlalchemy import select, text

from portal import audit
from portal.errors import Conflict
from portal.extensions import db
from portal.models import AuditEvent, User
from portal.signals import user_disabled
from tests.conftest import Auth


def rows(statement):
    db.session.rollback()  # read what is committed now, not the test's earlier snapshot
    return db.session.scalars(statement)


def events(action):
    return rows(select(AuditEvent).where(AuditEvent.action == action)).all()


def user(email):
    return rows(select(User).where(User.email == email)).one()


@pytest.fixture
def other_admin(make_user):
    return make_user("admin@b.test", role="admin", team_name="Team B")


def post(client, path, data=None, htmx=False):
    headers = {"HX-Request": "true"} if htmx else {}
    return client.submit(path, data or {}, token_from="/account", headers=headers)


def test_members_page_lists_own_team_only(client, auth, admin, member, other_admin):
    auth.login("admin@a.test")
    page = client.get("/admin/members")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "member@a.test" in html and "admin@a.test" in html and "admin@b.test" not in html
    assert "never" in html  # member has not signed in yet


def test_members_page_is_not_found_for_members_and_redirects_anonymous(app, client, auth, member):
    assert client.get("/admin/members").status_code == 302
    auth.login("member@a.test")
    assert client.get("/admin/members").status_code == 404
    assert post(client, f"/admin/members/{member.id}/role", {"role": "admin"}).status_code == 404
    assert user("member@a.test").role == "member"


def test_change_role_promotes_member_and_audits(client, auth, admin, member):
    auth.login("admin@a.test")
    response = post(client, f"/admin/members/{member.id}/role", {"role": "admin"})
    assert response.status_code == 303
    assert "member@a.test is now an admin." in client.get(response.location).get_data(as_text=True)
    assert user("member@a.test").role == "admin"
    [event] = events("user.role_changed")
    assert json.loads(event.details) == {"from": "member", "to": "admin"} and event.actor_id == admin.id


def test_change_role_answers_member_list_fragment_for_htmx(client, auth, admin, member):
    auth.login("admin@a.test")
    response = post(client, f"/admin/members/{member.id}/role", {"role": "admin"}, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert html.lstrip().startswith('<section class="card" id="member-list">')
    assert "member@a.test is now an admin." in html


@pytest.mark.parametrize("role", ["", "owner", "ADMIN", "x" * 5000])
def test_change_role_fails_for_unknown_role(client, auth, admin, member, role):
    auth.login("admin@a.test")
    response = post(client, f"/admin/members/{member.id}/role", {"role": role})
    assert response.status_code == 400 and "Choose a role" in response.get_data(as_text=True)


def test_demote_last_admin_is_refused(client, auth, admin, member):
    auth.login("admin@a.test")
    response = post(client, f"/admin/members/{admin.id}/role", {"role": "member"})
    assert response.status_code == 409
    assert "You cannot demote the last active admin of the team." in response.get_data(as_text=True)
    htmx = post(client, f"/admin/members/{admin.id}/role", {"role": "member"}, htmx=True)
    assert htmx.status_code == 409 and htmx.headers["HX-Retarget"] == "#flash"
    assert user("admin@a.test").role == "admin" and events("user.role_changed") == []


def test_disable_last_admin_is_refused(client, auth, admin, member):
    auth.login("admin@a.test")
    response = post(client, f"/admin/members/{admin.id}/disable")
    assert response.status_code == 409
    assert "You cannot disable the last active admin of the team." in response.get_data(as_text=True)
    assert not user("admin@a.test").disabled and client.get("/admin/members").status_code == 200


def test_demote_self_leaves_admin_pages_when_another_admin_exists(client, auth, admin, make_user):
    make_user("second@a.test", role="admin", team=admin.team)
    auth.login("admin@a.test")
    response = post(client, f"/admin/members/{admin.id}/role", {"role": "member"})
    assert response.status_code == 303 and response.location == "/"
    assert client.get("/admin/members").status_code == 404


def test_disabled_admin_does_not_count_as_the_other_admin(client, auth, admin, make_user):
    second = make_user("second@a.test", role="admin", team=admin.team)
    auth.login("admin@a.test")
    assert post(client, f"/admin/members/{second.id}/disable").status_code == 303
    assert post(client, f"/admin/members/{admin.id}/role", {"role": "member"}).status_code == 409


def test_disable_user_audits_and_enable_lets_them_sign_in_again(app, client, auth, admin, member):
    auth.login("admin@a.test")
    assert post(client, f"/admin/members/{member.id}/disable").status_code == 303
    assert user("member@a.test").disabled
    [event] = events("user.disabled")
    assert event.target_id == str(member.id) and event.actor_id == admin.id
    assert Auth(app.test_client()).login("member@a.test").status_code == 401
    htmx = post(client, f"/admin/members/{member.id}/enable", htmx=True)
    assert htmx.status_code == 200 and "member@a.test is enabled." in htmx.get_data(as_text=True)
    assert len(events("user.enabled")) == 1
    assert Auth(app.test_client()).login("member@a.test").status_code == 303


def test_disable_user_sends_signal_inside_the_transaction(app, client, auth, admin, member):
    seen = []

    def receiver(sender, user):
        with db.engine.connect() as outside:  # another connection must not see it yet
            committed = outside.execute(text("SELECT disabled FROM users WHERE id = :id"), {"id": user.id}).scalar()
        seen.append((sender, user.id, user.disabled, bool(committed)))
        audit.record(audit.Action.TOKEN_REVOKED, target=user, details={"reason": "user_disabled"})

    auth.login("admin@a.test")
    with user_disabled.connected_to(receiver, sender=app):
        assert post(client, f"/admin/members/{member.id}/disable").status_code == 303
    assert seen == [(app, member.id, True, False)]
    assert len(events("token.revoked")) == 1 and len(events("user.disabled")) == 1


def test_disable_user_is_rolled_back_when_a_receiver_refuses(app, client, auth, admin, member):
    def receiver(sender, user):
        raise Conflict("Their connections could not be revoked.")

    auth.login("admin@a.test")
    with user_disabled.connected_to(receiver, sender=app):
        response = post(client, f"/admin/members/{member.id}/disable")
    assert response.status_code == 409
    assert not user("member@a.test").disabled and events("user.disabled") == []


def test_member_actions_of_other_team_are_not_found(client, auth, admin, member, other_admin):
    auth.login("admin@b.test")
    for action, data in (("role", {"role": "member"}), ("disable", {}), ("enable", {})):
        for target in (admin, member):
            response = post(client, f"/admin/members/{target.id}/{action}", data)
            assert response.status_code == 404, (action, target.email)
    assert not user("member@a.test").disabled and user("admin@a.test").role == "admin"


@pytest.mark.parametrize("path", ["/admin/members/999999/disable", "/admin/members/99999999999/disable",
                                  "/admin/members/abc/disable", "/admin/members/-1/role",
                                  "/admin/members/invites/99999999999/revoke"])
def test_member_actions_with_unknown_ids_are_not_found(client, auth, admin, path):
    auth.login("admin@a.test")
    response = post(client, path, {"role": "member"})
    assert response.status_code == 404


def test_members_post_with_oversized_body_is_refused_readably(client, auth, admin, member):
    auth.login("admin@a.test")
    response = post(client, f"/admin/members/{member.id}/role", {"role": "x" * (1024 * 1024 + 10)})
    assert response.status_code == 413 and "too large" in response.get_data(as_text=True)
    assert user("member@a.test").role == "member"

