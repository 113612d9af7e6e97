"""The Settings page: live token status (an HTMX fragment that re-renders itself), actions that
re-render it without a reload, the same actions without JavaScript, and metadata only."""
from datetime import timedelta

import pytest
from sqlalchemy import update

from portal.extensions import db
from portal.models import Connection, utcnow
from portal.oauth import vault
from portal.web.settings import expires_text
from tests.conftest import Auth
from tests.peer_provider import add_server, connect, connection_of, expire
from tests.peer_provider import alice, peer_app_config, peer_user  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("peer_app_config")
HX = {"HX-Request": "true"}


@pytest.fixture
def connected(alice):
    server = add_server(alice)
    connect(alice, server)
    return server


def row_html(html, server_id):
    start = html.index(f'id="connection-{server_id}-')
    return html[start:html.index("</tr>", start)]


def secrets_of(user, server):
    connection = connection_of(user, server)
    return [vault.open_token(connection), vault.open_token(connection, "refresh_token")]


def test_home_sends_members_to_settings(client, alice):
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/settings"
    assert 'href="/settings"' in client.get("/settings").get_data(as_text=True)


def test_settings_lists_own_and_team_servers_only(client, alice, make_user, app):
    db.session.commit()
    bob = make_user("bob@a.test", team=alice.team)
    add_server(alice, name="Alice private")
    add_server(bob, name="Bob private")
    add_server(bob, name="Team shared", visibility="team")
    html = client.get("/settings").get_data(as_text=True)
    assert "Alice private" in html and "Team shared" in html
    assert "Bob private" not in html


def test_settings_shows_status_expiry_scopes_account_and_buttons(client, alice, connected):
    html = client.get("/settings").get_data(as_text=True)
    row = row_html(html, connected.id)
    assert 'data-status="connected"' in row and "badge-ok" in row and "Connected" in row
    assert "PM" in row and "Peer Mail" in row  # provider icon and title
    assert "expires in 59 min" in row or "expires in 60 min" in row
    assert "mail.read" in row and "user@example.test" in row
    assert "Reconnect" in row and "Refresh now" in row and "Disconnect" in row
    assert 'hx-confirm="Disconnect' in row
    assert 'hx-trigger="every 15s"' in html and 'hx-get="/settings/status"' in html
    for secret in secrets_of(alice, connected):
        assert secret not in html


def test_server_without_connection_offers_connect(client, alice):
    server = add_server(alice, name="Fresh one")
    row = row_html(client.get("/settings").get_data(as_text=True), server.id)
    assert 'data-status="not_connected"' in row and "Not connected" in row
    assert ">Connect<" in row and "Refresh now" not in row and "Disconnect" not in row


def test_status_fragment_is_the_named_block_only(client, alice, connected):
    response = client.get("/settings/status", headers=HX)
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="connection-status"') and "<html" not in html
    assert "HX-Request" in response.headers.get("Vary", "")
    assert 'hx-trigger="every 15s"' in html  # keeps polling after each swap
    for secret in secrets_of(alice, connected):
        assert secret not in html


def test_status_fragment_follows_the_token_over_time(client, alice, connected, oauth_peer):
    expire(connection_of(alice, connected).id)
    row = row_html(client.get("/settings/status", headers=HX).get_data(as_text=True), connected.id)
    assert 'data-status="expiring"' in row and "expired" in row and "ago" in row
    vault.valid_access_token(alice.id, connected.id)
    row = row_html(client.get("/settings/status", headers=HX).get_data(as_text=True), connected.id)
    assert 'data-status="connected"' in row and "last refresh" in row


def test_refresh_now_with_htmx_rerenders_the_status(client, alice, connected, oauth_peer):
    token = client.csrf_token("/settings")
    response = client.post(f"/settings/connections/{connected.id}/refresh", data={"provider": "peer", "csrf_token": token},
                           headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.lstrip().startswith('<div id="connection-status"')
    assert "Token refreshed." in html and "last refresh" in row_html(html, connected.id)
    assert oauth_peer.refresh_calls == 1


def test_refresh_now_without_javascript_redirects_with_a_message(client, alice, connected, oauth_peer):
    response = client.submit(f"/settings/connections/{connected.id}/refresh", {"provider": "peer"}, token_from="/settings")
    assert response.status_code == 303 and response.headers["Location"] == "/settings"
    assert "Token refreshed." in client.get("/settings").get_data(as_text=True)


def test_refresh_now_failure_is_shown_and_tokens_kept(client, alice, connected, oauth_peer):
    oauth_peer.fail_next("refresh", "503")
    before = secrets_of(alice, connected)
    token = client.csrf_token("/settings")
    html = client.post(f"/settings/connections/{connected.id}/refresh", data={"provider": "peer", "csrf_token": token},
                       headers=HX).get_data(as_text=True)
    assert "flash-error" in html and "HTTP 503" in html
    row = row_html(html, connected.id)
    assert 'data-status="refresh_failing"' in row and "Refresh failing" in row
    assert secrets_of(alice, connected) == before


def test_disconnect_with_htmx_rerenders_without_the_connection(client, alice, connected, oauth_peer):
    token = client.csrf_token("/settings")
    html = client.post(f"/settings/connections/{connected.id}/revoke", data={"provider": "peer", "csrf_token": token},
                       headers=HX).get_data(as_text=True)
    assert "The provider confirmed the revocation." in html
    assert 'data-status="not_connected"' in row_html(html, connected.id)


def test_unconfirmed_disconnect_says_not_confirmed(client, alice, connected, oauth_peer):
    oauth_peer.fail_next("revoke", "503")
    response = client.submit(f"/settings/connections/{connected.id}/revoke", {"provider": "peer"}, token_from="/settings")
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "not confirmed" in html
    row = row_html(html, connected.id)
    assert 'data-status="revocation_pending"' in row and "revocation not confirmed" in row
    assert "Retry disconnect" in row and "Refresh now" not in row


def test_reauth_required_offers_reconnect_only(client, alice, connected, oauth_peer):
    oauth_peer.revoke_grant_for("user@example.test")
    expire(connection_of(alice, connected).id)
    with pytest.raises(Exception):
        vault.valid_access_token(alice.id, connected.id)
    row = row_html(client.get("/settings").get_data(as_text=True), connected.id)
    assert 'data-status="reauth_required"' in row and "Reconnect needed" in row and "badge-bad" in row
    assert "Reconnect" in row and "Refresh now" not in row


def test_teammate_can_neither_see_nor_act_on_anothers_connection(app, alice, connected, make_user, oauth_peer):
    db.session.commit()
    make_user("bob@a.test", team=alice.team)
    bob = app.test_client()
    Auth(bob).login("bob@a.test")
    assert connected.name not in bob.get("/settings/status", headers=HX).get_data(as_text=True)
    for action in ("refresh", "revoke"):
        response = bob.submit(f"/settings/connections/{connected.id}/{action}", {"provider": "peer"}, token_from="/settings")
        assert response.status_code == 404
    assert oauth_peer.refresh_calls == 0 and oauth_peer.revoke_calls == 0


@pytest.mark.parametrize("offset, text", [
    (timedelta(minutes=41, seconds=5), "expires in 41 min"), (timedelta(seconds=30), "expires in 30 s"),
    (timedelta(hours=5, minutes=3), "expires in 5 h 3 min"), (timedelta(days=-3), "expired 3 days ago"),
    (-timedelta(minutes=3), "expired 3 min ago"),
])
def test_expires_text_reads_naturally(offset, text):
    now = utcnow()
    assert expires_text(now + offset, now) == text
    assert expires_text(None, now) == "no expiry given"


def test_token_without_expiry_counts_as_valid(client, alice, connected):
    db.session.commit()
    db.session.execute(update(Connection).values(expires_at=None))
    db.session.commit()
    [entry] = client.get("/auth/oauth/status").get_json()
    assert entry["is_valid"] is True and entry["status"] == "connected" and entry["expires_at"] is None


def test_a_reused_status_fragment_carries_a_working_csrf_token(client, alice, connected, oauth_peer):
    import re

    first = client.get("/settings/status", headers=HX).get_data(as_text=True)
    again = client.get("/settings/status", headers=HX).get_data(as_text=True)
    assert again == first  # nothing changed: the last rendering is reused
    token = re.search(r'name="csrf_token" value="([^"]+)"', again).group(1)
    response = client.post(f"/settings/connections/{connected.id}/refresh", data={"provider": "peer", "csrf_token": token},
                           headers=HX)
    assert response.status_code == 200 and "Token refreshed." in response.get_data(as_text=True)
    changed = client.get("/settings/status", headers=HX).get_data(as_text=True)
    assert changed != first and "last refresh" in row_html(changed, connected.id)
