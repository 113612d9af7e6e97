"""Revocation against the real OAuth peer: confirmed, pending and retried, on user disable and
server deletion."""
from datetime import timedelta

import pytest
from sqlalchemy import update

from portal.extensions import db
from portal.models import Connection, utcnow
from portal.oauth import revoke, vault
from portal.oauth.errors import TokensExpired
from tests.peer_provider import add_server, connect, connection_of, events
from tests.peer_provider import peer_app_config, peer_user  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("peer_app_config")  # before `app` is built


@pytest.fixture
def connected(peer_user):
    server = add_server(peer_user)
    connect(peer_user, server)
    connection = connection_of(peer_user, server)
    return peer_user, server, connection.id, vault.open_token(connection), vault.open_token(connection, "refresh_token")


def make_due(connection_id):
    db.session.commit()  # a fresh transaction: SQLite refuses a write from a stale snapshot
    db.session.execute(update(Connection).where(Connection.id == connection_id)
                       .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def test_revoke_confirmed_destroys_connection(connected, oauth_peer):
    user, server, connection_id, access, refresh = connected
    result = revoke.revoke_connection(connection_id, actor=user)
    assert result.as_dict() == {"revoked": True, "confirmed": True, "status": "revoked"}
    assert connection_of(user, server) is None
    assert oauth_peer.revoke_calls == 2
    assert oauth_peer.introspect(access) is None and not oauth_peer.is_refresh_token_active(refresh)
    [event] = events("token.revoked")
    assert event.outcome == "success" and event.actor_id == user.id


def test_revoke_503_is_pending_then_confirmed_by_refresh_due(connected, oauth_peer, runner):
    user, server, connection_id, access, refresh = connected
    oauth_peer.fail_next("revoke", "503")
    result = revoke.revoke_connection(connection_id, actor=user)
    assert result.as_dict() == {"revoked": True, "confirmed": False, "status": "revocation_pending"}
    pending = connection_of(user, server)
    assert pending.status == "revocation_pending" and pending.refresh_token is not None
    assert vault.status_of(pending) == "revocation_pending"
    with pytest.raises(TokensExpired):  # disabled locally even though the provider did not confirm
        vault.valid_access_token(user.id, server.id)
    assert len(events("token.revocation_pending")) == 1
    output = runner.invoke(args=["portal", "refresh-due"]).output
    assert "revoked: 0" in output and "revocation pending: 0" in output  # backing off: not due yet
    make_due(connection_id)
    output = runner.invoke(args=["portal", "refresh-due"]).output
    assert "revoked: 1" in output, output
    assert connection_of(user, server) is None
    assert not oauth_peer.is_refresh_token_active(refresh) and oauth_peer.introspect(access) is None
    assert len(events("token.revoked")) == 1


def test_revoke_gives_up_after_the_last_attempt(connected, oauth_peer, app):
    user, server, connection_id, _, refresh = connected
    app.config["OAUTH_MAX_REVOCATION_ATTEMPTS"] = 2
    oauth_peer.fail_next("revoke", "503", times=2)
    assert revoke.revoke_connection(connection_id).status == "revocation_pending"
    make_due(connection_id)
    assert revoke.revoke_connection(connection_id).status == "revocation_failed"
    assert connection_of(user, server) is None
    [event] = events("token.revocation_failed")
    assert event.outcome == "failure"


def test_disable_user_queues_revocation_and_refresh_due_revokes(connected, oauth_peer, make_user, runner):
    from portal import accounts

    user, server, connection_id, access, refresh = connected
    admin = make_user("boss@a.test", role="admin", team=user.team)
    accounts.set_disabled(admin, user.id, True)
    db.session.commit()
    assert connection_of(user, server).status == "revocation_pending"
    assert oauth_peer.revoke_calls == 0  # no network inside the admin's transaction
    output = runner.invoke(args=["portal", "refresh-due"]).output
    assert "revoked: 1" in output, output
    assert connection_of(user, server) is None and not oauth_peer.is_refresh_token_active(refresh)


def test_delete_server_revokes_its_connections(connected, oauth_peer):
    from portal import servers

    user, server, connection_id, access, refresh = connected
    servers.delete_server(user, server)
    db.session.commit()
    assert db.session.get(Connection, connection_id) is None
    assert not oauth_peer.is_refresh_token_active(refresh) and oauth_peer.introspect(access) is None
    [event] = events("token.revoked")
    assert "server deleted" in event.details


def test_delete_server_while_provider_is_down_records_failed_revocation(connected, oauth_peer):
    from portal import servers

    user, server, *_ = connected
    oauth_peer.fail_next("revoke", "503")
    servers.delete_server(user, server)
    db.session.commit()
    [event] = events("token.revocation_failed")
    assert "HTTP 503" in event.details
