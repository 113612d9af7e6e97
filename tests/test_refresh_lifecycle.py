"""The token vault and refresh against the real OAuth peer (rotating refresh tokens, reuse detection)."""
from datetime import timedelta

import pytest
from sqlalchemy import update

from portal.extensions import db
from portal.models import Connection, utcnow
from portal.oauth import vault
from portal.oauth.errors import TOKENS_EXPIRED, NotConnected, RefreshFailing, TokensExpired
from tests.peer_provider import add_server, connect, connection_of, events, expire
from tests.peer_provider import peer_app_config, peer_user  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("peer_app_config")  # before `app` is built


@pytest.fixture
def connected(peer_user):
    server = add_server(peer_user)
    connect(peer_user, server)
    return peer_user, server


def plaintexts(connection):
    return vault.open_token(connection), vault.open_token(connection, "refresh_token")


def test_valid_access_token_returns_stored_token_when_fresh(connected, oauth_peer):
    user, server = connected
    token = vault.valid_access_token(user.id, server.id)
    assert oauth_peer.introspect(token)["active"] is True
    assert vault.valid_access_token(user.id, server.id, "peer") == token
    assert oauth_peer.refresh_calls == 0


def test_valid_access_token_refreshes_expired_token_with_rotation(connected, oauth_peer):
    user, server = connected
    before = connection_of(user, server)
    old_access, old_refresh = plaintexts(before)
    old_version = before.version
    expire(before.id)
    oauth_peer.expire_all_access_tokens()
    token = vault.valid_access_token(user.id, server.id)
    after = connection_of(user, server)
    assert token != old_access and oauth_peer.introspect(token)["active"] is True
    assert plaintexts(after)[0] == token
    assert oauth_peer.refresh_calls == 1
    assert oauth_peer.is_refresh_token_active(plaintexts(after)[1])
    assert not oauth_peer.is_refresh_token_active(old_refresh)
    assert after.version == old_version + 1 and after.last_refresh_at is not None
    assert after.status == "connected" and vault.is_valid(after)
    [event] = events("token.refreshed")
    assert '"rotated":true' in event.details and event.target_id == str(after.id)


def test_refresh_keeps_old_refresh_token_when_response_omits_one(connected, oauth_peer):
    user, server = connected
    oauth_peer.omit_refresh_token_on_refresh = True
    before = connection_of(user, server)
    old_refresh = plaintexts(before)[1]
    expire(before.id)
    vault.valid_access_token(user.id, server.id)
    assert plaintexts(connection_of(user, server))[1] == old_refresh
    assert oauth_peer.is_refresh_token_active(old_refresh)


def test_refresh_revoked_grant_marks_reauth_required_once(connected, oauth_peer):
    user, server = connected
    oauth_peer.revoke_grant_for("user@example.test")
    expire(connection_of(user, server).id)
    with pytest.raises(TokensExpired) as raised:
        vault.valid_access_token(user.id, server.id)
    assert raised.value.message == TOKENS_EXPIRED
    connection = connection_of(user, server)
    assert connection.status == "reauth_required"
    assert connection.access_token is None and connection.refresh_token is None
    assert vault.status_of(connection) == "reauth_required" and not vault.is_valid(connection)
    with pytest.raises(TokensExpired):
        vault.valid_access_token(user.id, server.id)
    assert oauth_peer.refresh_calls == 1
    assert len(events("token.reauth_required")) == 1


def test_refresh_503_keeps_tokens_and_backs_off(connected, oauth_peer):
    user, server = connected
    before = connection_of(user, server)
    sealed = (before.access_token, before.refresh_token)
    expire(before.id)
    oauth_peer.fail_next("refresh", "503")
    with pytest.raises(RefreshFailing):
        vault.valid_access_token(user.id, server.id)
    failing = connection_of(user, server)
    assert (failing.access_token, failing.refresh_token) == sealed
    assert failing.status == "refresh_failing" and failing.failure_count == 1
    assert failing.next_attempt_at > utcnow()
    assert "HTTP 503" in failing.last_error
    with pytest.raises(RefreshFailing):  # backing off: the provider is not asked again yet
        vault.valid_access_token(user.id, server.id)
    assert oauth_peer.refresh_calls == 1
    [event] = events("token.refresh_failed")
    assert event.outcome == "failure"
    db.session.execute(update(Connection).where(Connection.id == before.id)
                       .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    token = vault.valid_access_token(user.id, server.id)
    recovered = connection_of(user, server)
    assert recovered.status == "connected" and recovered.failure_count == 0
    assert oauth_peer.introspect(token)["active"] is True


def test_refresh_timeout_keeps_tokens(connected, oauth_peer, app):
    user, server = connected
    app.config["OAUTH_HTTP_TIMEOUT"] = 0.3
    oauth_peer.slow_seconds = 1.0
    before = connection_of(user, server)
    sealed = (before.access_token, before.refresh_token)
    expire(before.id)
    oauth_peer.fail_next("refresh", "slow")
    with pytest.raises(RefreshFailing) as raised:
        vault.valid_access_token(user.id, server.id)
    assert "did not answer" in raised.value.message
    failing = connection_of(user, server)
    assert (failing.access_token, failing.refresh_token) == sealed
    assert failing.status == "refresh_failing"


def test_refresh_failure_still_hands_out_a_token_that_has_not_expired(connected, oauth_peer):
    user, server = connected
    connection = connection_of(user, server)
    current = vault.open_token(connection)
    db.session.execute(update(Connection).where(Connection.id == connection.id)
                       .values(expires_at=utcnow() + timedelta(seconds=20)))  # inside the 60 s skew
    db.session.commit()
    oauth_peer.fail_next("refresh", "503")
    assert vault.valid_access_token(user.id, server.id) == current
    assert connection_of(user, server).status == "refresh_failing"


def test_valid_access_token_for_unknown_connection_is_not_connected(peer_user):
    server = add_server(peer_user)
    with pytest.raises(NotConnected):
        vault.valid_access_token(peer_user.id, server.id)


def test_copied_ciphertext_does_not_open_and_nothing_is_sent(peer_user, make_user, oauth_peer):
    bob = make_user("bob@a.test", team=peer_user.team)
    server_a, server_b = add_server(peer_user), add_server(bob, name="Bob inbox")
    connect(peer_user, server_a)
    connect(bob, server_b)
    a, b = connection_of(peer_user, server_a), connection_of(bob, server_b)
    db.session.execute(update(Connection).where(Connection.id == b.id)
                       .values(access_token=a.access_token, refresh_token=a.refresh_token))
    db.session.commit()
    with pytest.raises(TokensExpired) as raised:
        vault.valid_access_token(bob.id, server_b.id)
    assert "cannot be read" in raised.value.message
    expire(b.id)
    with pytest.raises(TokensExpired):
        vault.valid_access_token(bob.id, server_b.id)
    assert oauth_peer.refresh_calls == 0


def test_rejected_token_is_refreshed_once(connected, oauth_peer):
    user, server = connected
    rejected = vault.valid_access_token(user.id, server.id)
    fresh = vault.refresh_after_rejection(user.id, server.id, rejected)
    assert fresh != rejected and oauth_peer.refresh_calls == 1
    assert vault.refresh_after_rejection(user.id, server.id, rejected) == fresh  # already replaced
    assert oauth_peer.refresh_calls == 1


def test_invalid_grant_after_another_worker_rotated_uses_the_winner(connected, oauth_peer):
    from portal.oauth import http
    from portal.oauth.locking import lock_connection, own_transaction
    from portal.oauth.refresh import _invalid_grant

    user, server = connected
    winner = vault.open_token(connection_of(user, server))
    with own_transaction() as session:
        connection = lock_connection(session, connection_of(user, server).id)
        fresh = _invalid_grant(session, connection, "rt_an-older-refresh-token", http.InvalidGrant("test"), None)
    assert fresh.access_token == winner
    assert connection_of(user, server).status == "connected"
    assert len(events("token.refresh_lost_race")) == 1 and not events("token.reauth_required")
