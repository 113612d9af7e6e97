"""The whole lifecycle over real HTTP: a browser-like client follows every redirect between the
portal (served on loopback) and the real OAuth peer, consent page included.

authorize → consent → callback → status valid → expire → refresh (rotated) → revoke → status
disconnected, with the expected audit events and no token ever in what the browser received.
"""
import html
import re

import httpx
import pytest

from portal.oauth import vault
from tests.live_server import LiveServer
from tests.peer_provider import CLIENT_ID, CLIENT_SECRET, add_server, connection_of, enable_peer, events, expire, peer_config

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def live(app_config, oauth_peer):
    with LiveServer() as server:
        callback = server.url + "/auth/oauth/callback"
        app_config.update(peer_config(oauth_peer.base_url, redirect_uri=callback))
        oauth_peer.register_client(CLIENT_ID, CLIENT_SECRET, [callback], ["mail.read"])
        yield server


@pytest.fixture
def browser(live, app, make_user):
    live.serve(app)
    user = make_user("alice@a.test")
    enable_peer(user.team_id)
    with httpx.Client(base_url=live.url, follow_redirects=True, timeout=15) as client:
        page = client.get("/login")
        client.post("/login", data={"email": user.email, "password": "correct horse battery staple",
                                    "csrf_token": CSRF.search(page.text).group(1)})
        client.user = user
        yield client


def form_token(page):
    return CSRF.search(page.text).group(1)


def test_full_lifecycle_over_http(browser, oauth_peer):
    oauth_peer.auto_approve = False  # show the consent page, as a real provider does
    user, received = browser.user, []
    server = add_server(user)
    settings = browser.get("/settings")
    assert settings.url.path == "/settings" and "Connect" in settings.text
    start = browser.post("/auth/oauth/authorize", data={"server_id": server.id, "provider": "peer",
                                                       "csrf_token": form_token(settings)})
    received.append(start.text)
    link = re.search(r'href="([^"]+)"[^>]*>Continue to the provider', start.text).group(1)
    consent = browser.get(html.unescape(link))
    assert consent.url.path == "/consent" and "wants access to" in consent.text
    request_id = consent.url.params["request"]
    landed = browser.post(oauth_peer.url("/consent"), data={"request": request_id, "decision": "allow"})
    received.append(landed.text)
    assert landed.url.path == "/settings" and not landed.url.query  # a clean URL after the callback
    assert landed.history[-1].status_code == 303
    assert landed.history[-1].headers["cache-control"] == "no-store"
    assert landed.history[-1].headers["referrer-policy"] == "no-referrer"
    assert f"Connected {server.name} with Peer Mail." in landed.text

    [entry] = browser.get("/auth/oauth/status").json()
    received.append(str(entry))
    assert entry["is_valid"] is True and entry["status"] == "connected" and entry["last_refresh_at"] is None

    connection = connection_of(user, server)
    first_access, first_refresh = vault.open_token(connection), vault.open_token(connection, "refresh_token")
    expire(connection.id)
    oauth_peer.expire_all_access_tokens()
    [entry] = browser.get("/auth/oauth/status").json()
    assert entry["is_valid"] is False and entry["status"] == "expiring"

    token = vault.valid_access_token(user.id, server.id)  # what the MCP client asks for
    refreshed = connection_of(user, server)
    new_refresh = vault.open_token(refreshed, "refresh_token")
    assert token != first_access and new_refresh != first_refresh  # rotated
    assert oauth_peer.introspect(token)["active"] and not oauth_peer.is_refresh_token_active(first_refresh)
    [entry] = browser.get("/auth/oauth/status").json()
    received.append(str(entry))
    assert entry["is_valid"] is True and entry["status"] == "connected" and entry["last_refresh_at"]

    page = browser.get("/settings")
    received.append(page.text)
    gone = browser.post(f"/settings/connections/{server.id}/revoke",
                        data={"provider": "peer", "csrf_token": form_token(page)})
    received.append(gone.text)
    assert "The provider confirmed the revocation." in gone.text
    assert browser.get("/auth/oauth/status").json() == []
    assert "Not connected" in browser.get("/settings").text
    assert not oauth_peer.is_refresh_token_active(new_refresh) and oauth_peer.introspect(token) is None

    actions = [e.action for e in events() if e.action.startswith(("oauth.", "token."))]
    assert actions == ["oauth.authorize.started", "oauth.authorize.succeeded", "token.refreshed", "token.revoked"]
    for secret in (first_access, first_refresh, token, new_refresh):
        assert not any(secret in text for text in received)
        assert not any(secret in (e.details or "") for e in events())
