"""Sessions: a fresh session at sign-in, and a per-user session version that ends them all."""
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, User
from tests.conftest import PASSWORD, Auth

NEW_PASSWORD = "a brand new passphrase 42"


def events(action):
    db.session.rollback()  # read what is committed now, not the test's earlier snapshot
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def signed_in(client):
    return client.get("/account").status_code == 200


def second_client(app, email, password=PASSWORD, remember=False):
    other = app.test_client()
    data = {"email": email, "password": password}
    if remember:
        data["remember"] = "on"
    assert other.submit("/login", data).status_code == 303
    return other


def test_login_starts_fresh_session_when_one_was_planted_before(client, auth, admin):
    client.get("/login")
    with client.session_transaction() as planted:
        planted["planted"] = "attacker's value"
        planted["_fresh"] = "attacker"
    before = client.get_cookie("portal_session").value
    auth.login("admin@a.test")
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["_user_id"] == f"{admin.id}:1"
    assert client.get_cookie("portal_session").value != before


def test_logout_clears_session_and_remember_cookie(app, client, admin):
    client.submit("/login", {"email": "admin@a.test", "password": PASSWORD, "remember": "on"})
    assert client.get_cookie("portal_remember") is not None
    response = Auth(client).logout()
    assert response.status_code == 303 and response.location.endswith("/login")
    assert client.get_cookie("portal_remember") is None
    with client.session_transaction() as session:
        assert "_user_id" not in session
    assert not signed_in(client)


def test_remember_cookie_signs_in_when_session_cookie_is_gone(app, admin):
    other = second_client(app, "admin@a.test", remember=True)
    other.delete_cookie("portal_session")
    assert signed_in(other)


def test_logout_everywhere_ends_every_session_of_the_user(app, client, auth, admin, member):
    elsewhere = second_client(app, "admin@a.test")
    remembered = second_client(app, "admin@a.test", remember=True)
    remembered.delete_cookie("portal_session")
    colleague = second_client(app, "member@a.test")
    auth.login("admin@a.test")
    response = client.submit("/account/logout-everywhere", token_from="/account")
    assert response.status_code == 303 and response.location.endswith("/login")
    assert not signed_in(client) and not signed_in(elsewhere) and not signed_in(remembered)
    assert signed_in(colleague)
    assert [e.target_id for e in events("auth.logout_everywhere")] == [str(admin.id)]
    assert auth.login("admin@a.test").status_code == 303 and signed_in(client)


def test_change_password_keeps_this_session_and_ends_others(app, client, auth, admin):
    elsewhere = second_client(app, "admin@a.test")
    auth.login("admin@a.test")
    response = client.submit("/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                   "confirm_password": NEW_PASSWORD}, token_from="/account")
    assert response.status_code == 303
    assert "Your password is changed" in client.get(response.location).get_data(as_text=True)
    assert signed_in(client)
    assert not signed_in(elsewhere)
    with client.session_transaction() as session:
        assert session["_user_id"] == f"{admin.id}:2"
    assert len(events("auth.password_changed")) == 1
    fresh = app.test_client()
    assert Auth(fresh).login("admin@a.test").status_code == 401
    assert Auth(fresh).login("admin@a.test", NEW_PASSWORD).status_code == 303


def test_change_password_keeps_remember_cookie_working_with_new_version(app, admin):
    remembered = second_client(app, "admin@a.test", remember=True)
    remembered.submit("/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                            "confirm_password": NEW_PASSWORD}, token_from="/account")
    remembered.delete_cookie("portal_session")
    assert signed_in(remembered)


def _change(client, current, new, confirm=None):
    return client.submit("/account/password", {"current_password": current, "new_password": new,
                                               "confirm_password": new if confirm is None else confirm},
                         token_from="/account")


def test_change_password_fails_with_wrong_current_password(app, client, auth, admin):
    elsewhere = second_client(app, "admin@a.test")
    auth.login("admin@a.test")
    response = _change(client, "not my password at all", NEW_PASSWORD)
    assert response.status_code == 400
    assert "Your current password is not right." in response.get_data(as_text=True)
    assert signed_in(client) and signed_in(elsewhere)
    assert events("auth.password_changed") == []


def test_change_password_fails_when_new_password_too_short_or_unconfirmed(client, auth, admin):
    auth.login("admin@a.test")
    short = _change(client, PASSWORD, "short")
    assert short.status_code == 400 and "at least 12 characters" in short.get_data(as_text=True)
    differ = _change(client, PASSWORD, NEW_PASSWORD, confirm=NEW_PASSWORD + "x")
    assert differ.status_code == 400 and "confirmation differ" in differ.get_data(as_text=True)
    huge = _change(client, PASSWORD, "x" * 5000)
    assert huge.status_code == 400 and "at most 1024" in huge.get_data(as_text=True)
    db.session.rollback()
    assert db.session.get(User, admin.id).session_version == 1


def test_disable_user_signs_out_their_open_session(app, client, auth, admin, member):
    theirs = second_client(app, "member@a.test")
    assert signed_in(theirs)
    auth.login("admin@a.test")
    response = client.submit(f"/admin/members/{member.id}/disable", token_from="/admin/members")
    assert response.status_code == 303
    page = theirs.get("/account")
    assert page.status_code == 302 and "/login" in page.location
    htmx = theirs.get("/account", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")
    assert Auth(app.test_client()).login("member@a.test").status_code == 401


def test_anonymous_api_request_gets_json_401(client):
    response = client.get("/api/me")
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"


def test_login_required_page_redirects_anonymous_to_login_with_next(client):
    response = client.get("/account/api-keys?x=1")
    assert response.status_code == 302
    assert response.location.endswith("/login?next=/account/api-keys?x%3D1")
