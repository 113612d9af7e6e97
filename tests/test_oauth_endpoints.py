"""The seed's endpoints: shapes for JSON, HTMX and plain forms; status; revocation; CSRF; bad input."""
import html
import re

import pytest

from portal.extensions import db
from portal.oauth import vault
from tests.conftest import Auth
from tests.peer_provider import add_server, connect, connection_of, enable_peer, events
from tests.peer_provider import alice, server, peer_app_config, peer_user  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("peer_app_config")


def test_authorize_for_htmx_answers_hx_redirect(client, server, oauth_peer):
    token = client.csrf_token("/settings")
    response = client.post("/auth/oauth/authorize", data={"server_id": server.id, "csrf_token": token},
                           headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.headers["HX-Redirect"].startswith(oauth_peer.authorization_endpoint + "?")


def test_authorize_from_a_plain_form_links_to_the_provider(client, server, oauth_peer):
    response = client.submit("/auth/oauth/authorize", {"server_id": str(server.id)}, token_from="/settings")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    link = re.search(r'href="([^"]+)"[^>]*>Continue to the provider', response.get_data(as_text=True))
    assert html.unescape(link.group(1)).startswith(oauth_peer.authorization_endpoint + "?")


def test_authorize_detects_the_provider_from_the_server_url(client, alice, oauth_peer):
    server = add_server(alice, provider=None, url="http://127.0.0.1:9/abc/peer-mail")
    body = client.send_json("/auth/oauth/authorize", {"server_id": server.id}, token_from="/settings").get_json()
    assert body["provider"] == "peer"


def test_authorize_without_a_matching_provider_says_choose_one(client, alice):
    server = add_server(alice, provider=None, url="https://example.test/mcp")
    response = client.send_json("/auth/oauth/authorize", {"server_id": server.id}, token_from="/settings")
    assert response.status_code == 400
    assert "No enabled provider matches" in response.get_json()["message"]


def test_authorize_with_a_provider_the_team_has_not_enabled_is_refused(client, server, oauth_peer):
    from portal.providers import settings

    db.session.commit()
    settings.set_enabled(server.team_id, "peer", False)
    db.session.commit()
    response = client.send_json("/auth/oauth/authorize", {"server_id": server.id}, token_from="/settings")
    assert response.status_code == 400 and response.get_json()["error"] == "provider_not_configured"
    assert oauth_peer.authorize_calls == 0


@pytest.mark.parametrize("payload, status", [
    ({}, 400), ({"server_id": "abc"}, 400), ({"server_id": True}, 400), ({"server_id": [1]}, 400),
    ({"server_id": 2**40}, 404), ({"server_id": 999}, 404), ({"server_id": 1, "provider": "Not A Name!"}, 400),
    ({"server_id": 1, "provider": 7}, 400), ([1, 2], 400),
])
def test_authorize_bad_input_is_a_clear_4xx(client, server, payload, status):
    response = client.send_json("/auth/oauth/authorize", payload, token_from="/settings")
    assert response.status_code == status
    assert response.get_json()["message"]


def test_authorize_without_csrf_token_is_refused(client, server, oauth_peer):
    response = client.post("/auth/oauth/authorize", json={"server_id": server.id})
    assert response.status_code == 400 and response.get_json()["error"] == "csrf_failed"
    assert oauth_peer.authorize_calls == 0


def test_status_lists_metadata_only(client, alice, server, oauth_peer):
    assert client.get("/auth/oauth/status").get_json() == []
    connect(alice, server)
    [entry] = client.get("/auth/oauth/status").get_json()
    assert set(entry) == {"server_id", "server_name", "provider", "is_valid", "expires_at", "scope", "status",
                          "account_label", "last_refresh_at"}
    assert entry["server_id"] == server.id and entry["server_name"] == server.name and entry["provider"] == "peer"
    assert entry["is_valid"] is True and entry["status"] == "connected" and entry["expires_at"].endswith("Z")
    assert entry["scope"] == "mail.read" and entry["account_label"] == "user@example.test"
    connection = connection_of(alice, server)
    for secret in (vault.open_token(connection), vault.open_token(connection, "refresh_token")):
        assert secret not in client.get("/auth/oauth/status").get_data(as_text=True)


def test_revoke_endpoint_answers_the_revocation_status(client, alice, server, oauth_peer):
    connect(alice, server)
    response = client.send_json(f"/auth/oauth/tokens/{server.id}?provider=peer", method="DELETE", token_from="/settings")
    assert response.status_code == 200
    assert response.get_json() == {"revoked": True, "confirmed": True, "status": "revoked", "server_id": server.id,
                                   "provider": "peer"}
    assert client.get("/auth/oauth/status").get_json() == []


def test_revoke_endpoint_reports_an_unconfirmed_revocation(client, alice, server, oauth_peer):
    connect(alice, server)
    oauth_peer.fail_next("revoke", "503")
    body = client.send_json(f"/auth/oauth/tokens/{server.id}", method="DELETE", token_from="/settings").get_json()
    assert body["confirmed"] is False and body["status"] == "revocation_pending"
    [entry] = client.get("/auth/oauth/status").get_json()
    assert entry["status"] == "revocation_pending" and entry["is_valid"] is False


def test_revoke_endpoint_without_csrf_token_is_refused(client, alice, server, oauth_peer):
    connect(alice, server)
    response = client.delete(f"/auth/oauth/tokens/{server.id}")
    assert response.status_code == 400
    assert oauth_peer.revoke_calls == 0 and connection_of(alice, server) is not None


@pytest.mark.parametrize("path, status", [
    ("/auth/oauth/tokens/999", 404), ("/auth/oauth/tokens/99999999999", 404),
    ("/auth/oauth/tokens/1?provider=NO", 400), ("/auth/oauth/tokens/abc", 404),
])
def test_revoke_endpoint_bad_input_is_a_clear_4xx(client, server, path, status):
    response = client.send_json(path, method="DELETE", token_from="/settings")
    assert response.status_code == status


def test_anonymous_callers_get_401_json_or_the_login_page(app):
    anonymous = app.test_client()
    assert anonymous.get("/auth/oauth/status", headers={"Accept": "application/json"}).status_code == 401
    assert anonymous.get("/settings").status_code == 302


def test_full_audit_trail_of_one_connection(client, alice, server, oauth_peer):
    from tests.peer_provider import expire

    connect(alice, server)
    expire(connection_of(alice, server).id)
    vault.valid_access_token(alice.id, server.id)
    client.send_json(f"/auth/oauth/tokens/{server.id}", method="DELETE", token_from="/settings")
    actions = [event.action for event in events() if event.action.startswith(("oauth.", "token."))]
    assert actions == ["oauth.authorize.started", "oauth.authorize.succeeded", "token.refreshed", "token.revoked"]


def test_member_of_another_team_with_the_provider_enabled_sees_nothing(app, client, alice, server, make_user):
    connect(alice, server)
    db.session.commit()  # a fresh transaction: SQLite refuses a write from a stale snapshot
    outsider = make_user("eve@b.test", team_name="Team B")
    enable_peer(outsider.team_id)
    eve = app.test_client()
    Auth(eve).login("eve@b.test")
    assert eve.get("/auth/oauth/status").get_json() == []
