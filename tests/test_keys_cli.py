"""`flask portal keys generate | rotate | status`: online rotation onto a new primary key."""
import json
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal import create_app
from portal.crypto import Keyring, open_field, seal_field
from portal.extensions import db
from portal.models import AuditEvent, Connection, MCPServer, OAuthState, ProviderSetting, utcnow
from tests.support import PortalClient


@contextmanager
def app_with_keys(app_config, encryption_keys):
    """Another app on the same database, as after the operator restarts with new keys."""
    other = create_app({**app_config, "ENCRYPTION_KEYS": encryption_keys})
    other.test_client_class = PortalClient
    with other.app_context():
        yield other
        db.session.remove()
        db.engine.dispose()


def seal_rows(user):
    """One row of every sealed model; returns {(model, id, column): plaintext}."""
    server = MCPServer(team_id=user.team_id, owner_id=user.id, name="mail", url="https://mail.example/mcp")
    db.session.add(server)
    db.session.flush()
    connection = Connection(user_id=user.id, server_id=server.id, provider="gmail")
    setting = ProviderSetting(team_id=user.team_id, provider="gmail", enabled=True, client_id="cid")
    state = OAuthState(state_hash="ab" * 32, user_id=user.id, server_id=server.id, provider="gmail",
                       session_hash="cd" * 32, redirect_uri="http://127.0.0.1:5000/auth/oauth/callback",
                       expires_at=utcnow() + timedelta(minutes=10))
    plain = {}
    for row, column in ((connection, "access_token"), (connection, "refresh_token"),
                        (setting, "client_secret"), (state, "code_verifier")):
        value = f"plain-{row.__tablename__}-{column}"
        seal_field(row, column, value)
        plain[(type(row), column)] = value
        db.session.add(row)
    db.session.commit()
    return plain


def all_open(plain):
    for (model, column), value in plain.items():
        row = db.session.scalars(select(model)).one()
        assert open_field(row, column) == value


def sealed_key_ids(plain):
    return {getattr(db.session.scalars(select(model)).one(), column).split(".")[1] for model, column in plain}


def test_keys_generate_prints_a_usable_new_entry(runner):
    result = runner.invoke(args=["portal", "keys", "generate"])
    assert result.exit_code == 0, result.output
    entry = result.stdout.strip()
    keyring = Keyring.parse(entry)
    assert keyring.primary_id == "k1" and len(keyring.keys["k1"]) == 32
    assert "PORTAL_ENCRYPTION_KEYS" in result.stderr
    named = runner.invoke(args=["portal", "keys", "generate", "--id", "2027-01"])
    assert named.stdout.startswith("2027-01:")


@pytest.mark.parametrize("key_id", ["t1", "bad id", "x" * 33])
def test_keys_generate_refuses_bad_or_taken_id(runner, key_id):
    result = runner.invoke(args=["portal", "keys", "generate", "--id", key_id])
    assert result.exit_code == 2 and "--id" in result.output


def test_keys_rotate_moves_every_row_to_new_key_and_old_key_can_be_dropped(app, app_config, runner, admin):
    plain = seal_rows(admin)
    status = runner.invoke(args=["portal", "keys", "status"])
    assert "every sealed value uses the primary key" in status.output
    new_entry = runner.invoke(args=["portal", "keys", "generate", "--id", "t2"]).stdout.strip()

    with app_with_keys(app_config, f"{new_entry},{app_config['ENCRYPTION_KEYS']}") as rotated:
        cli = rotated.test_cli_runner()
        before = cli.invoke(args=["portal", "keys", "status"])
        assert "primary key: t2 (0 values)" in before.output
        assert "still in use: t1 (4 values)" in before.output
        result = cli.invoke(args=["portal", "keys", "rotate", "--batch-size", "1"])
        assert result.exit_code == 0, result.output
        assert "resealed 3, retried 0, failed 0" in result.output  # three rows, four values
        assert sealed_key_ids(plain) == {"t2"}
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "keys.rotated")).one()
        assert event.outcome == "success" and event.actor_name == "cli"
        assert json.loads(event.details) == {"resealed": 3, "retried": 0, "failed": 0, "primary_key_id": "t2"}
        after = cli.invoke(args=["portal", "keys", "status"])
        assert "unused, can be removed from PORTAL_ENCRYPTION_KEYS: t1" in after.output
        assert "every sealed value uses the primary key" in after.output
        again = cli.invoke(args=["portal", "keys", "rotate"])
        assert "resealed 0" in again.output and again.exit_code == 0

    with app_with_keys(app_config, new_entry):
        all_open(plain)


def test_keys_status_names_values_sealed_with_a_key_not_in_keyring(app, app_config, runner, admin):
    plain = seal_rows(admin)
    with app_with_keys(app_config, runner.invoke(args=["portal", "keys", "generate", "--id", "t2"]).stdout.strip()) as only_new:
        result = only_new.test_cli_runner().invoke(args=["portal", "keys", "status"])
        assert "still in use: t1 (4 values) — NOT in PORTAL_ENCRYPTION_KEYS" in result.output
        rotate = only_new.test_cli_runner().invoke(args=["portal", "keys", "rotate"])
        assert rotate.exit_code == 1
        assert "failed 3" in rotate.output and "unknown key 't1'" in rotate.output
    all_open(plain)  # nothing was lost: the original keyring still opens everything


def test_keys_rotate_exits_nonzero_when_a_row_does_not_open(app, app_config, runner, admin):
    seal_rows(admin)
    connection = db.session.scalars(select(Connection)).one()
    connection.refresh_token = db.session.scalars(select(ProviderSetting)).one().client_secret  # copied from another row
    db.session.commit()
    connection_id = connection.id  # read now: inside the other app this session would borrow its engine
    new_entry = runner.invoke(args=["portal", "keys", "generate", "--id", "t2"]).stdout.strip()
    with app_with_keys(app_config, f"{new_entry},{app_config['ENCRYPTION_KEYS']}") as rotated:
        result = rotated.test_cli_runner().invoke(args=["portal", "keys", "rotate"])
        assert result.exit_code == 1
        assert "resealed 2, retried 0, failed 1" in result.output
        assert f"connections #{connection_id}: sealed value does not open for this row" in result.output
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "keys.rotated")).one()
        assert event.outcome == "failure" and json.loads(event.details)["failed"] == 1
