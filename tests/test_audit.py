"""record(): the events each action writes, no secrets in details, fail closed, one documented enum."""
import json
import re
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select, text

from portal import accounts, audit, audit_chain
from portal.audit import Action
from portal.extensions import db
from portal.models import AuditEvent, Team, User
from tests.conftest import PASSWORD

HEADERS = {"User-Agent": "AuditTest/1.0", "X-Request-Id": "req-0123456789"}
DOCS = Path(__file__).resolve().parent.parent / "docs" / "audit.md"


def events():
    return db.session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars().all()


def new_events(before):
    db.session.rollback()  # end the test's read transaction: see what the requests committed
    return [event for event in events() if event.id > before]


def last_id():
    return max([event.id for event in events()], default=0)


def sign_in(client, email, password=PASSWORD):
    return client.submit("/login", {"email": email, "password": password}, headers=HEADERS)


def assert_request_context(event, response):
    assert event.request_id == "req-0123456789" == response.headers["X-Request-Id"]
    assert event.ip == "127.0.0.1"
    assert event.user_agent == "AuditTest/1.0"
    assert event.created_at.utcoffset().total_seconds() == 0


def test_login_writes_exactly_one_auth_login_event(client, admin):
    before = last_id()
    response = sign_in(client, "admin@a.test")
    assert response.status_code == 303
    [event] = new_events(before)
    assert (event.action, event.outcome, event.actor_id, event.actor_name, event.team_id) == (
        "auth.login", "success", admin.id, "admin@a.test", admin.team_id)
    assert (event.target_type, event.target_id, event.target_label) == ("users", str(admin.id), admin.name)
    assert json.loads(event.details) == {}
    assert_request_context(event, response)


def test_login_failed_writes_exactly_one_failure_event(client, admin):
    before = last_id()
    response = sign_in(client, "admin@a.test", "a wrong password here")
    assert response.status_code == 401
    [event] = new_events(before)
    assert (event.action, event.outcome, event.actor_id, event.actor_name) == (
        "auth.login_failed", "failure", None, "admin@a.test")
    assert_request_context(event, response)
    assert "a wrong password here" not in json.dumps(event.details)


def test_logout_writes_exactly_one_auth_logout_event(client, admin):
    sign_in(client, "admin@a.test")
    before = last_id()
    response = client.submit("/logout", token_from="/account", headers=HEADERS)
    assert response.status_code == 303
    [event] = new_events(before)
    assert (event.action, event.actor_id, event.team_id, event.target_type, event.target_id) == (
        "auth.logout", admin.id, admin.team_id, "users", str(admin.id))
    assert_request_context(event, response)


def test_create_user_writes_exactly_one_user_created_event(app, make_user):
    before = last_id()
    user = make_user("new@a.test", role="admin")
    [event] = new_events(before)
    assert (event.action, event.actor_id, event.actor_name, event.team_id, event.target_id) == (
        "user.created", None, "system", user.team_id, str(user.id))
    assert json.loads(event.details) == {"role": "admin"}
    assert (event.request_id, event.ip, event.user_agent) == (None, None, None)


@pytest.mark.parametrize("details", [
    {"access_token": "x"}, {"refresh_token": "x"}, {"code": "x"}, {"state": "x"}, {"code_verifier": "x"},
    {"client_secret": "x"}, {"password": "x"}, {"clientSecret": "x"}, {"api_key": "x"}, {"id_token": "x"},
    {"cookie": "x"}, {"response": {"token": "x"}}, {"tries": [{"new_password": "x"}]},
])
def test_record_refuses_details_naming_a_secret(app, details):
    with pytest.raises(ValueError, match="may not carry"):
        audit.record(Action.TOKEN_REFRESHED, actor_name="job", team_id=1, details=details)


@pytest.mark.parametrize("key", ["key_id", "error", "role", "scope", "client_id", "token_type", "expires_in",
                                 "client_secret_fingerprint", "state_count", "api_key_prefix", "status"])
def test_record_accepts_details_describing_not_carrying_secrets(app, key):
    event = audit.record(Action.TOKEN_REFRESHED, actor_name="job", team_id=1, details={key: "value"})
    db.session.commit()
    assert json.loads(event.details) == {key: "value"}


def test_record_refuses_unknown_action_and_outcome(app):
    with pytest.raises(ValueError):
        audit.record("token.stolen", actor_name="job", team_id=1)
    with pytest.raises(ValueError, match="outcome"):
        audit.record(Action.TOKEN_REFRESHED, actor_name="job", team_id=1, outcome="maybe")


def test_fingerprint_is_stable_keyed_and_does_not_contain_the_value(app, app_config):
    from portal import create_app

    first = audit.fingerprint("client-secret-value-123")
    assert first == audit.fingerprint("client-secret-value-123") != audit.fingerprint("client-secret-value-124")
    assert re.fullmatch(r"fp:[0-9a-f]{16}", first) and "secret-value" not in first
    other = create_app({**app_config, "AUDIT_KEY": "another-audit-key-0123456789abcdef0123"})
    with other.app_context():
        assert audit.fingerprint("client-secret-value-123") != first


def test_record_stamps_time_in_id_order(app):
    for number in range(5):
        audit.record(Action.TOKEN_REFRESHED, actor_name="job", team_id=1, details={"n": number})
        db.session.commit()
    times = [event.created_at for event in events()]
    assert times == sorted(times)


def test_record_after_rolled_back_savepoint_keeps_chain_valid(app):
    audit.record(Action.TOKEN_REFRESHED, actor_name="job", team_id=1, details={"n": 1})
    savepoint = db.session.begin_nested()
    audit.record(Action.TOKEN_REFRESHED, actor_name="job", team_id=1, details={"n": 2})
    savepoint.rollback()
    audit.record(Action.TOKEN_REFRESHED, actor_name="job", team_id=1, details={"n": 3})
    db.session.commit()
    assert [json.loads(event.details)["n"] for event in events()] == [1, 3]
    assert audit_chain.verify(db.session, app).ok


def test_every_action_is_documented():
    section = DOCS.read_text().split("\n## Actions\n", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([a-z_.]+)` \| \S.+\|$", section, re.MULTILINE)
    assert sorted(documented) == sorted(action.value for action in Action)


# --- fail closed ------------------------------------------------------------------------------

@contextmanager
def audit_inserts_fail():
    """A database trigger that makes every audit insert fail, removed afterwards."""
    db.session.remove()
    postgres = db.engine.dialect.name == "postgresql"
    with db.engine.begin() as connection:
        if postgres:
            connection.execute(text("CREATE FUNCTION forced_audit_failure() RETURNS trigger AS $$ BEGIN "
                                    "RAISE EXCEPTION 'forced audit failure'; END $$ LANGUAGE plpgsql"))
            connection.execute(text("CREATE TRIGGER audit_insert_fails BEFORE INSERT ON audit_events "
                                    "FOR EACH ROW EXECUTE FUNCTION forced_audit_failure()"))
        else:
            connection.execute(text("CREATE TRIGGER audit_insert_fails BEFORE INSERT ON audit_events "
                                    "BEGIN SELECT RAISE(ABORT, 'forced audit failure'); END"))
    try:
        yield
    finally:
        db.session.remove()
        with db.engine.begin() as connection:
            connection.execute(text("DROP TRIGGER audit_insert_fails" + (" ON audit_events" if postgres else "")))
            if postgres:
                connection.execute(text("DROP FUNCTION forced_audit_failure()"))


def test_login_rolls_back_when_audit_insert_fails(app, client, admin, caplog):
    app.config["PROPAGATE_EXCEPTIONS"] = False  # answer as production does: the error page
    admin_id = admin.id
    with audit_inserts_fail():
        response = sign_in(client, "admin@a.test")
        assert response.status_code == 500
        assert client.get("/account").status_code in (302, 303)  # not signed in
    assert db.session.get(User, admin_id).last_login_at is None
    assert [event.action for event in events()] == ["user.created"]


def test_create_user_rolls_back_when_audit_insert_fails(app):
    with audit_inserts_fail():
        team = Team(name="Team F")
        db.session.add(team)
        accounts_error = None
        try:
            accounts.create_user(team, "f@a.test", None, PASSWORD)
            db.session.commit()
        except Exception as error:  # the database refuses the audit insert
            accounts_error = error
            db.session.rollback()
        assert "forced audit failure" in str(accounts_error)
    assert db.session.scalars(select(User)).all() == [] and db.session.scalars(select(Team)).all() == []
    assert events() == []
