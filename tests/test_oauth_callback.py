"""The authorization flow over HTTP against the real OAuth peer: state, iss, PKCE, provider
errors, and the seed's error texts. Every bad callback costs zero token-endpoint calls."""
import base64
import hashlib
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import update

from portal.crypto import open_field
from portal.extensions import db
from portal.models import OAuthState, utcnow
from portal.oauth.errors import EXCHANGE_FAILED, STATE_INVALID
from portal.oauth.flows import digest
from tests.conftest import Auth
from tests.peer_provider import add_server, authorize_at_peer, connection_of, events
from tests.peer_provider import alice, server, peer_app_config, peer_user  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("peer_app_config")  # before `app` is built


def start(client, server_id, provider="peer"):
    response = client.send_json("/auth/oauth/authorize", {"server_id": server_id, "provider": provider},
                                token_from="/settings")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def callback(client, params):
    return client.get("/auth/oauth/callback?" + urlencode(params))


def shown(client, response):
    """The page the callback redirected to, as the user sees it."""
    assert response.status_code == 303
    return client.get(response.headers["Location"]).get_data(as_text=True)


def other_client(app, email):
    other = app.test_client()
    Auth(other).login(email)
    return other


def state_row():
    db.session.commit()  # a new transaction sees what the request committed
    return db.session.scalar(db.select(OAuthState))


def failure_reasons():
    return [event.details for event in events("oauth.authorize.failed")]


def test_authorize_returns_the_seed_shape(client, server, oauth_peer):
    body = start(client, server.id)
    assert set(body) == {"oauth_url", "state", "provider", "server_name"}
    assert body["provider"] == "peer" and body["server_name"] == server.name
    query = parse_qs(urlsplit(body["oauth_url"]).query)
    assert body["oauth_url"].startswith(oauth_peer.authorization_endpoint + "?")
    assert query["state"] == [body["state"]] and len(body["state"]) >= 43  # >= 256 bits
    assert query["code_challenge_method"] == ["S256"] and query["redirect_uri"] == ["http://localhost/auth/oauth/callback"]
    row = state_row()
    assert row.state_hash == digest(body["state"]) and body["state"] not in (row.state_hash, row.code_verifier)
    assert row.expires_at - row.created_at == timedelta(minutes=10)
    assert len(events("oauth.authorize.started")) == 1


def test_callback_stores_sealed_tokens_and_redirects_cleanly(client, alice, server, oauth_peer):
    params = authorize_at_peer(start(client, server.id)["oauth_url"])
    response = callback(client, params)
    assert response.status_code == 303 and response.headers["Location"] == "/settings"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert f"Connected {server.name} with Peer Mail." in shown(client, response)
    connection = connection_of(alice, server)
    assert connection.status == "connected" and connection.account_label == "user@example.test"
    assert connection.access_token.startswith("v1.") and connection.refresh_token.startswith("v1.")
    assert oauth_peer.code_exchanges == 1
    assert len(events("oauth.authorize.succeeded")) == 1


def test_pkce_challenge_is_the_hash_of_the_verifier_sent_at_exchange(client, alice, server, oauth_peer):
    started = start(client, server.id)
    challenge = parse_qs(urlsplit(started["oauth_url"]).query)["code_challenge"][0]
    verifier = open_field(state_row(), "code_verifier")
    assert base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=") == challenge
    assert verifier not in started["oauth_url"] and 43 <= len(verifier) <= 128
    response = callback(client, authorize_at_peer(started["oauth_url"]))
    # the peer (the SDK's token handler) checked S256(code_verifier) against the stored challenge
    assert oauth_peer.calls_to("token", "authorization_code")[0]["status"] == 200
    assert verifier not in shown(client, response)
    assert connection_of(alice, server).status == "connected"


def test_redirect_uri_ignores_forged_host_headers(client, server):
    response = client.send_json("/auth/oauth/authorize", {"server_id": server.id}, token_from="/settings",
                                headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"})
    query = parse_qs(urlsplit(response.get_json()["oauth_url"]).query)
    assert query["redirect_uri"] == ["http://localhost/auth/oauth/callback"]


@pytest.mark.parametrize("case", ["missing", "wrong"])
def test_callback_without_a_known_state_is_refused_without_token_calls(client, server, oauth_peer, case):
    params = authorize_at_peer(start(client, server.id)["oauth_url"])
    if case == "missing":
        params.pop("state")
    else:
        params["state"] = "x" * 43
    page = shown(client, callback(client, params))
    assert STATE_INVALID in page and "Start the connection again" in page
    assert oauth_peer.token_calls == 0
    assert f'"reason":"state_{"missing" if case == "missing" else "unknown"}"' in failure_reasons()[0]


def test_callback_replayed_state_is_refused(client, server, oauth_peer):
    params = authorize_at_peer(start(client, server.id)["oauth_url"])
    assert "Connected" in shown(client, callback(client, params))
    page = shown(client, callback(client, params))
    assert STATE_INVALID in page
    assert oauth_peer.token_calls == 1
    assert '"reason":"state_used"' in failure_reasons()[0]


def test_callback_expired_state_is_refused(client, server, oauth_peer):
    params = authorize_at_peer(start(client, server.id)["oauth_url"])
    state_row()
    db.session.execute(update(OAuthState).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert STATE_INVALID in shown(client, callback(client, params))
    assert oauth_peer.token_calls == 0
    assert '"reason":"state_expired"' in failure_reasons()[0]


def test_callback_with_another_users_state_is_refused(app, client, alice, server, make_user, oauth_peer):
    make_user("bob@a.test", team=alice.team)
    params = authorize_at_peer(start(client, server.id)["oauth_url"])
    bob = other_client(app, "bob@a.test")
    assert STATE_INVALID in shown(bob, callback(bob, params))
    assert oauth_peer.token_calls == 0
    assert '"reason":"state_other_user"' in failure_reasons()[0]
    assert "Connected" in shown(client, callback(client, params))  # still Alice's to finish


def test_callback_with_another_sessions_state_is_refused(app, client, alice, server, oauth_peer):
    params = authorize_at_peer(start(client, server.id)["oauth_url"])
    second = other_client(app, alice.email)  # same user, another browser session
    assert STATE_INVALID in shown(second, callback(second, params))
    assert oauth_peer.token_calls == 0
    assert '"reason":"state_other_session"' in failure_reasons()[0]


def test_callback_after_sign_out_is_refused(client, auth, server, oauth_peer):
    params = authorize_at_peer(start(client, server.id)["oauth_url"])
    auth.logout()
    response = callback(client, params)
    assert response.headers["Location"].startswith("/login")
    assert STATE_INVALID in client.get("/login").get_data(as_text=True)
    assert oauth_peer.token_calls == 0


def test_callback_with_a_wrong_issuer_is_refused(client, server, oauth_peer):
    oauth_peer.iss_override = "http://127.0.0.1:1"  # a mix-up: another authorization server
    params = authorize_at_peer(start(client, server.id)["oauth_url"])
    assert STATE_INVALID in shown(client, callback(client, params))
    assert oauth_peer.token_calls == 0
    assert '"reason":"iss_mismatch"' in failure_reasons()[0]


def test_callback_without_issuer_is_refused_when_the_provider_requires_it(client, server, oauth_peer):
    oauth_peer.send_iss = False
    params = authorize_at_peer(start(client, server.id)["oauth_url"])
    assert "iss" not in params
    assert STATE_INVALID in shown(client, callback(client, params))
    assert oauth_peer.token_calls == 0
    assert '"reason":"iss_missing"' in failure_reasons()[0]


def test_callback_without_issuer_is_accepted_when_the_provider_does_not_send_it(app, client, server, oauth_peer):
    app.extensions["portal.providers"].get("peer").requires_iss = False
    oauth_peer.send_iss = False
    params = authorize_at_peer(start(client, server.id)["oauth_url"])
    assert "Connected" in shown(client, callback(client, params))


def test_callback_access_denied_is_shown_politely(client, server, oauth_peer):
    oauth_peer.auto_approve = False
    started = start(client, server.id)
    import httpx

    with httpx.Client() as browser:
        consent = browser.get(started["oauth_url"], follow_redirects=True)
        request_id = parse_qs(urlsplit(str(consent.url)).query)["request"][0]
        denied = browser.post(oauth_peer.url("/consent"), data={"request": request_id, "decision": "deny"})
    params = {k: v[0] for k, v in parse_qs(urlsplit(denied.headers["location"]).query).items()}
    assert params["error"] == "access_denied"
    page = shown(client, callback(client, params))
    assert "You declined access at Peer Mail." in page and "Click Connect to try again." in page
    assert oauth_peer.token_calls == 0
    assert '"reason":"provider_error:access_denied"' in failure_reasons()[0]


def test_callback_exchange_failure_says_check_configuration(app, client, server, oauth_peer):
    params = authorize_at_peer(start(client, server.id)["oauth_url"])
    app.config["PEER_CLIENT_SECRET"] = "not-the-secret"
    page = shown(client, callback(client, params))
    assert EXCHANGE_FAILED in page and "OAuth configuration (client ID, secret and redirect URI)" in page
    assert oauth_peer.code_exchanges == 1
    assert "exchange_failed" in failure_reasons()[0]


def test_callback_with_oversized_parameters_is_a_clean_refusal(client, server, oauth_peer):
    start(client, server.id)
    response = callback(client, {"state": "s" * 5000, "code": "c" * 10000})
    assert STATE_INVALID in shown(client, response)
    assert oauth_peer.token_calls == 0
