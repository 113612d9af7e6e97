"""`flask portal create-admin` and `flask portal first-run`."""
import logging
import re

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Team, User
from tests.conftest import PASSWORD, Auth

SECRET = "operator chose this passphrase"


def rows(statement):
    db.session.rollback()  # read what is committed now, not the test's earlier snapshot
    return db.session.scalars(statement)


def create_admin(runner, *args, password=SECRET):
    return runner.invoke(args=["portal", "create-admin", *args, "--password-stdin"], input=password + "\n")


def test_create_admin_reads_password_from_stdin(app, runner):
    result = create_admin(runner, "--email", "Boss@Example.test")
    assert result.exit_code == 0, result.output
    assert "Created admin boss@example.test in team 'My team'." in result.output
    boss = rows(select(User)).one()
    assert boss.role == "admin" and boss.team.name == "My team"
    assert Auth(app.test_client()).login("boss@example.test", SECRET).status_code == 303


def test_create_admin_prompts_twice(runner):
    result = runner.invoke(args=["portal", "create-admin", "--email", "boss@example.test"],
                           input=f"{SECRET}\n{SECRET}\n")
    assert result.exit_code == 0, result.output
    assert "Password: " in result.output and "Repeat for confirmation" in result.output
    assert SECRET not in result.output
    assert rows(select(User)).one().email == "boss@example.test"


def test_create_admin_creates_nothing_when_prompts_differ(runner):
    result = runner.invoke(args=["portal", "create-admin", "--email", "boss@example.test"],
                           input=f"{SECRET}\n{SECRET}-typo\n")
    assert result.exit_code != 0 and "do not match" in result.output
    assert rows(select(User)).all() == []


def test_create_admin_joins_named_team(runner, admin):
    assert create_admin(runner, "--email", "b1@example.test", "--team", "Team B").exit_code == 0
    assert create_admin(runner, "--email", "b2@example.test", "--team", "Team B").exit_code == 0
    assert create_admin(runner, "--email", "a2@example.test").exit_code == 0
    teams = {user.email: user.team.name for user in rows(select(User))}
    assert teams == {"admin@a.test": "Team A", "b1@example.test": "Team B", "b2@example.test": "Team B",
                     "a2@example.test": "Team A"}
    assert len(rows(select(Team)).all()) == 2


def test_create_admin_refuses_bad_email_or_short_password(runner):
    short = create_admin(runner, "--email", "boss@example.test", password="short")
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    bad = create_admin(runner, "--email", "not an email")
    assert bad.exit_code == 1 and "valid e-mail" in bad.output
    assert rows(select(User)).all() == []


def test_create_admin_resets_existing_user_and_ends_their_sessions(app, runner, admin, member):
    theirs = app.test_client()
    Auth(theirs).login("member@a.test")
    Auth(app.test_client()).login("admin@a.test")
    db.session.execute(User.__table__.update().where(User.id == member.id).values(disabled=True))
    db.session.commit()
    result = create_admin(runner, "--email", "member@a.test")
    assert result.exit_code == 0 and "Reset member@a.test" in result.output
    reset = rows(select(User).where(User.email == "member@a.test")).one()
    assert reset.role == "admin" and not reset.disabled and reset.session_version == 2
    assert theirs.get("/account").status_code == 302
    assert Auth(app.test_client()).login("member@a.test", PASSWORD).status_code == 401
    assert Auth(app.test_client()).login("member@a.test", SECRET).status_code == 303
    actions = [e.action for e in rows(select(AuditEvent).where(AuditEvent.actor_name == "cli"))]
    assert actions == ["auth.password_changed", "user.role_changed"]


def test_create_admin_refuses_to_move_user_to_other_team(runner, member):
    result = create_admin(runner, "--email", "member@a.test", "--team", "Team Z")
    assert result.exit_code == 2 and "cannot move a user" in result.output
    assert rows(select(User).where(User.email == "member@a.test")).one().role == "member"


def test_first_run_creates_first_admin_once_and_prints_how_to_sign_in(app, runner, caplog):
    caplog.set_level(logging.DEBUG)
    result = runner.invoke(args=["portal", "first-run"])
    assert result.exit_code == 0, result.output
    assert "URL:      http://127.0.0.1:5000/login" in result.output
    assert "E-mail:   admin@localhost" in result.output
    password = re.search(r"Password: (\S+)", result.output).group(1)
    assert len(password) >= 20
    assert Auth(app.test_client()).login("admin@localhost", password).status_code == 303
    for record in caplog.records:
        assert password not in record.getMessage()
    for event in rows(select(AuditEvent)):
        assert password not in event.details
    again = runner.invoke(args=["portal", "first-run"])
    assert again.exit_code == 0 and "already set up" in again.output
    assert "flask portal create-admin" in again.output and "Password:" not in again.output
    assert len(rows(select(User)).all()) == 1


def test_first_run_uses_given_email(runner):
    result = runner.invoke(args=["portal", "first-run", "--email", "ops@example.test"])
    assert "E-mail:   ops@example.test" in result.output
    assert rows(select(User)).one().role == "admin"


def test_first_run_changes_nothing_when_users_exist(runner, member):
    result = runner.invoke(args=["portal", "first-run"])
    assert result.exit_code == 0 and "already set up" in result.output
    assert "admin@localhost" not in [user.email for user in rows(select(User))]
