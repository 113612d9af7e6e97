"""Self-tests of the OAuth / MCP peers over plain HTTP (httpx) and the SDK client."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import httpx2
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from tests.peers.mcp_server import MCPPeer, RedirectingPeer
from tests.peers.oauth_server import OAuthPeer


CLIENT_ID, CLIENT_SECRET = "portal", "portal-secret"
REDIRECT_URI = "http://127.0.0.1:9/oauth/callback"  # never contacted: redirects are not followed


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize(peer: OAuthPeer, challenge: str, **extra: str | None) -> httpx.Response:
    """GET /authorize without following the redirect; ``name=None`` drops a default param."""
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st-1",
        "scope": "mail.read",
        **extra,
    }
    return httpx.get(peer.authorization_endpoint, params={k: v for k, v in params.items() if v is not None})


def exchange(peer: OAuthPeer, code: str, verifier: str, *, basic: bool = True, secret: str = CLIENT_SECRET):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier}
    if basic:  # like Authlib's client_secret_basic: no client_id in the body
        return httpx.post(peer.token_endpoint, data=data, auth=(CLIENT_ID, secret))
    return httpx.post(peer.token_endpoint, data={**data, "client_id": CLIENT_ID, "client_secret": secret})


def refresh(peer: OAuthPeer, refresh_token: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return httpx.post(peer.token_endpoint, data=data, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)


def obtain_tokens(peer: OAuthPeer, **extra: str) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    code = query(authorize(peer, challenge, **extra).headers["location"])["code"]
    response = exchange(peer, code, verifier)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def registered_client(oauth_peer: OAuthPeer) -> str:
    """Pre-register the confidential client CLIENT_ID at the OAuth peer."""
    oauth_peer.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI], ["mail.read", "mail.send"])
    return CLIENT_ID


# -- metadata ------------------------------------------------------------------
def test_metadata_lists_exact_issuer_and_endpoints_by_default(oauth_peer: OAuthPeer):
    metadata = httpx.get(oauth_peer.metadata_url).json()
    assert metadata["issuer"] == oauth_peer.issuer == oauth_peer.base_url
    assert not metadata["issuer"].endswith("/")
    assert metadata["authorization_endpoint"] == oauth_peer.issuer + "/authorize"
    assert metadata["token_endpoint"] == oauth_peer.issuer + "/token"
    assert metadata["revocation_endpoint"] == oauth_peer.issuer + "/revoke"
    assert metadata["registration_endpoint"] == oauth_peer.issuer + "/register"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post"}
    assert metadata["authorization_response_iss_parameter_supported"] is True


def test_metadata_omits_iss_support_when_not_advertised(oauth_peer: OAuthPeer):
    oauth_peer.advertise_iss = False
    assert "authorization_response_iss_parameter_supported" not in httpx.get(oauth_peer.metadata_url).json()


# -- authorization code flow -----------------------------------------------------
@pytest.mark.usefixtures("registered_client")
def test_authorize_redirects_with_code_state_and_iss_when_auto_approved(oauth_peer: OAuthPeer):
    response = authorize(oauth_peer, pkce_pair()[1])
    assert response.status_code == 302
    assert response.headers["location"].startswith(REDIRECT_URI + "?")
    params = query(response.headers["location"])
    assert params["state"] == "st-1" and params["code"] and params["iss"] == oauth_peer.issuer


@pytest.mark.usefixtures("registered_client")
def test_authorize_sends_overridden_or_no_iss_when_configured(oauth_peer: OAuthPeer):
    oauth_peer.iss_override = "https://evil.example"
    assert query(authorize(oauth_peer, pkce_pair()[1]).headers["location"])["iss"] == "https://evil.example"
    oauth_peer.send_iss = False
    assert "iss" not in query(authorize(oauth_peer, pkce_pair()[1]).headers["location"])


@pytest.mark.usefixtures("registered_client")
def test_exchange_code_succeeds_with_basic_and_post_auth(oauth_peer: OAuthPeer):
    for basic in (True, False):
        verifier, challenge = pkce_pair()
        code = query(authorize(oauth_peer, challenge).headers["location"])["code"]
        response = exchange(oauth_peer, code, verifier, basic=basic)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "mail.read"
        assert body["refresh_token"] and body["access_token"]


@pytest.mark.usefixtures("registered_client")
def test_authlib_client_completes_code_refresh_revoke_with_basic_auth(oauth_peer: OAuthPeer):
    verifier = secrets.token_urlsafe(48)
    with OAuth2Client(
        CLIENT_ID, CLIENT_SECRET, scope="mail.read", redirect_uri=REDIRECT_URI, code_challenge_method="S256"
    ) as oauth:
        url, _state = oauth.create_authorization_url(oauth_peer.authorization_endpoint, code_verifier=verifier)
        callback = httpx.get(url).headers["location"]
        tokens = oauth.fetch_token(oauth_peer.token_endpoint, authorization_response=callback, code_verifier=verifier)
        renewed = oauth.refresh_token(oauth_peer.token_endpoint, refresh_token=tokens["refresh_token"])
        revoked = oauth.revoke_token(oauth_peer.revocation_endpoint, token=renewed["refresh_token"])
    assert revoked.status_code == 200 and not oauth_peer.is_refresh_token_active(renewed["refresh_token"])
    assert [c["status"] for c in oauth_peer.calls] == [302, 200, 200, 200]


@pytest.mark.usefixtures("registered_client")
def test_exchange_code_fails_with_wrong_verifier(oauth_peer: OAuthPeer):
    code = query(authorize(oauth_peer, pkce_pair()[1]).headers["location"])["code"]
    response = exchange(oauth_peer, code, pkce_pair()[0])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


@pytest.mark.usefixtures("registered_client")
def test_exchange_code_fails_with_wrong_secret_or_reused_code(oauth_peer: OAuthPeer):
    verifier, challenge = pkce_pair()
    code = query(authorize(oauth_peer, challenge).headers["location"])["code"]
    assert exchange(oauth_peer, code, verifier, secret="nope").json()["error"] == "invalid_client"
    assert exchange(oauth_peer, code, verifier).status_code == 200
    assert exchange(oauth_peer, code, verifier).json()["error"] == "invalid_grant"


@pytest.mark.usefixtures("registered_client")
def test_tokens_record_account_scopes_client_and_resource(oauth_peer: OAuthPeer):
    oauth_peer.next_account = "alice@example.test"
    tokens = obtain_tokens(oauth_peer, resource="http://127.0.0.1:1/mcp")
    claims = oauth_peer.introspect(tokens["access_token"])
    assert claims is not None
    assert claims["sub"] == claims["email"] == "alice@example.test"
    assert claims["scope"] == "mail.read" and claims["client_id"] == CLIENT_ID
    assert claims["aud"] == "http://127.0.0.1:1/mcp" and claims["iss"] == oauth_peer.issuer
    over_http = httpx.post(oauth_peer.introspection_endpoint, data={"token": tokens["access_token"]}).json()
    assert over_http["active"] is True and over_http["sub"] == "alice@example.test"
    assert httpx.post(oauth_peer.introspection_endpoint, data={"token": "bogus"}).json() == {"active": False}


@pytest.mark.usefixtures("registered_client")
def test_userinfo_returns_subject_or_401(oauth_peer: OAuthPeer):
    oauth_peer.next_account = "bob@example.test"
    tokens = obtain_tokens(oauth_peer)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert httpx.get(oauth_peer.userinfo_endpoint, headers=headers).json() == {
        "sub": "bob@example.test",
        "email": "bob@example.test",
    }
    oauth_peer.expire_all_access_tokens()
    response = httpx.get(oauth_peer.userinfo_endpoint, headers=headers)
    assert response.status_code == 401 and "invalid_token" in response.headers["www-authenticate"]


def test_authorize_succeeds_for_dynamically_registered_client(oauth_peer: OAuthPeer):
    registration = httpx.post(
        oauth_peer.registration_endpoint, json={"redirect_uris": [REDIRECT_URI], "client_name": "dcr"}
    )
    assert registration.status_code == 201
    client_id = registration.json()["client_id"]
    response = authorize(oauth_peer, pkce_pair()[1], client_id=client_id, scope=None)
    assert response.status_code == 302 and "code" in query(response.headers["location"])


# -- consent page ----------------------------------------------------------------
@pytest.mark.usefixtures("registered_client")
def test_consent_page_shows_allow_and_deny_when_not_auto_approved(oauth_peer: OAuthPeer):
    oauth_peer.auto_approve = False
    response = authorize(oauth_peer, pkce_pair()[1])
    assert response.status_code == 302 and response.headers["location"].startswith(oauth_peer.url("/consent?"))
    page = httpx.get(response.headers["location"])
    assert page.status_code == 200
    assert ">Allow</button>" in page.text and ">Deny</button>" in page.text


@pytest.mark.usefixtures("registered_client")
def test_consent_allow_and_deny_redirect_with_code_or_error(oauth_peer: OAuthPeer):
    oauth_peer.auto_approve = False
    for decision in ("allow", "deny"):
        verifier, challenge = pkce_pair()
        request_id = query(authorize(oauth_peer, challenge).headers["location"])["request"]
        answer = httpx.post(oauth_peer.url("/consent"), data={"request": request_id, "decision": decision})
        assert answer.status_code == 302
        params = query(answer.headers["location"])
        assert params["state"] == "st-1" and params["iss"] == oauth_peer.issuer
        if decision == "allow":
            assert exchange(oauth_peer, params["code"], verifier).status_code == 200
        else:
            assert params["error"] == "access_denied" and "code" not in params


# -- refresh, rotation, revocation ---------------------------------------------
@pytest.mark.usefixtures("registered_client")
def test_refresh_rotates_refresh_token_on_every_call(oauth_peer: OAuthPeer):
    tokens = obtain_tokens(oauth_peer)
    renewed = refresh(oauth_peer, tokens["refresh_token"]).json()
    assert renewed["refresh_token"] != tokens["refresh_token"]
    assert renewed["access_token"] != tokens["access_token"]
    assert not oauth_peer.is_refresh_token_active(tokens["refresh_token"])
    assert oauth_peer.is_refresh_token_active(renewed["refresh_token"])


@pytest.mark.usefixtures("registered_client")
def test_refresh_with_rotated_token_fails_and_revokes_family(oauth_peer: OAuthPeer):
    tokens = obtain_tokens(oauth_peer)
    renewed = refresh(oauth_peer, tokens["refresh_token"]).json()
    reused = refresh(oauth_peer, tokens["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert refresh(oauth_peer, renewed["refresh_token"]).json()["error"] == "invalid_grant"
    assert oauth_peer.introspect(renewed["access_token"]) is None
    assert oauth_peer.introspect(tokens["access_token"]) is None


@pytest.mark.usefixtures("registered_client")
def test_refresh_keeps_old_token_when_omitting_refresh_token(oauth_peer: OAuthPeer):
    oauth_peer.omit_refresh_token_on_refresh = True
    tokens = obtain_tokens(oauth_peer)
    first = refresh(oauth_peer, tokens["refresh_token"]).json()
    assert "refresh_token" not in first
    assert refresh(oauth_peer, tokens["refresh_token"]).status_code == 200


@pytest.mark.usefixtures("registered_client")
def test_refresh_fails_after_grant_revoked_for_account(oauth_peer: OAuthPeer):
    oauth_peer.next_account = "carol@example.test"
    tokens = obtain_tokens(oauth_peer)
    oauth_peer.revoke_grant_for("carol@example.test")
    assert refresh(oauth_peer, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert oauth_peer.introspect(tokens["access_token"]) is None


@pytest.mark.usefixtures("registered_client")
def test_revoke_refresh_token_kills_family_but_access_revoke_does_not(oauth_peer: OAuthPeer):
    tokens = obtain_tokens(oauth_peer)
    auth = (CLIENT_ID, CLIENT_SECRET)
    revoked = httpx.post(oauth_peer.revocation_endpoint, data={"token": tokens["access_token"]}, auth=auth)
    assert revoked.status_code == 200 and oauth_peer.introspect(tokens["access_token"]) is None
    assert oauth_peer.is_refresh_token_active(tokens["refresh_token"])
    data = {"token": tokens["refresh_token"], "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    assert httpx.post(oauth_peer.revocation_endpoint, data=data).status_code == 200
    assert refresh(oauth_peer, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert oauth_peer.revoke_calls == 2


# -- failure injection and call records -------------------------------------------
@pytest.mark.usefixtures("registered_client")
def test_fail_next_injects_503_then_invalid_grant_then_recovers(oauth_peer: OAuthPeer):
    tokens = obtain_tokens(oauth_peer)
    oauth_peer.fail_next("refresh", "503")
    oauth_peer.fail_next("refresh", "invalid_grant")
    assert refresh(oauth_peer, tokens["refresh_token"]).status_code == 503
    assert refresh(oauth_peer, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert refresh(oauth_peer, tokens["refresh_token"]).status_code == 200  # injections left state untouched
    assert [c["injected"] for c in oauth_peer.calls_to("token", "refresh_token")] == ["503", "invalid_grant", None]
    assert [c["status"] for c in oauth_peer.calls_to("token", "refresh_token")] == [503, 400, 200]


@pytest.mark.usefixtures("registered_client")
def test_fail_next_slow_delays_answer_then_succeeds(oauth_peer: OAuthPeer):
    oauth_peer.slow_seconds = 0.3
    oauth_peer.fail_next("token", "slow")
    started = time.monotonic()
    obtain_tokens(oauth_peer)
    assert time.monotonic() - started >= 0.3


@pytest.mark.usefixtures("registered_client")
def test_fail_next_refresh_spares_code_exchange_and_rejects_unknown_kinds(oauth_peer: OAuthPeer):
    oauth_peer.fail_next("refresh", "503")
    tokens = obtain_tokens(oauth_peer)
    assert refresh(oauth_peer, tokens["refresh_token"]).status_code == 503
    with pytest.raises(ValueError):
        oauth_peer.fail_next("authorize", "503")


@pytest.mark.usefixtures("registered_client")
def test_calls_counted_per_endpoint_for_sequential_requests(oauth_peer: OAuthPeer):
    tokens = obtain_tokens(oauth_peer)
    refresh(oauth_peer, tokens["refresh_token"])
    httpx.post(oauth_peer.revocation_endpoint, data={"token": tokens["access_token"]}, auth=(CLIENT_ID, CLIENT_SECRET))
    assert (oauth_peer.authorize_calls, oauth_peer.token_calls, oauth_peer.code_exchanges) == (1, 2, 1)
    assert (oauth_peer.refresh_calls, oauth_peer.revoke_calls) == (1, 1)
    assert oauth_peer.calls[0]["endpoint"] == "authorize" and oauth_peer.calls[1]["client_id"] == CLIENT_ID


@pytest.mark.usefixtures("registered_client")
def test_calls_counted_from_concurrent_refreshes(oauth_peer: OAuthPeer):
    tokens = obtain_tokens(oauth_peer)
    oauth_peer.delay_refresh = 0.2
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(refresh(oauth_peer, tokens["refresh_token"]).status_code))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert oauth_peer.refresh_calls == 6
    assert sorted(statuses) == [200] + [400] * 5  # the racing reuses also killed the family
    assert oauth_peer.introspect(tokens["access_token"]) is None


@pytest.mark.usefixtures("registered_client")
def test_reset_clears_clients_tokens_calls_and_toggles_while_running(oauth_peer: OAuthPeer):
    tokens = obtain_tokens(oauth_peer)
    oauth_peer.auto_approve = False
    oauth_peer.fail_next("token", "503")
    oauth_peer.reset()
    assert oauth_peer.calls == [] and oauth_peer.introspect(tokens["access_token"]) is None
    assert oauth_peer.auto_approve is True
    assert authorize(oauth_peer, pkce_pair()[1]).status_code == 400  # client forgotten


# -- MCP peer ------------------------------------------------------------------
def test_mcp_answers_401_with_resource_metadata_without_token(mcp_peer: MCPPeer):
    response = httpx.post(mcp_peer.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 401
    assert f'resource_metadata="{mcp_peer.resource_metadata_url}"' in response.headers["www-authenticate"]


def test_mcp_serves_protected_resource_metadata_at_both_paths(mcp_peer: MCPPeer, oauth_peer: OAuthPeer):
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        metadata = httpx.get(mcp_peer.base_url + path).json()
        assert metadata["resource"] == mcp_peer.url
        assert metadata["authorization_servers"] == [oauth_peer.issuer]


async def _call_tools(url: str, token: str, statuses: list[int]) -> dict[str, Any]:
    async def remember(response: httpx2.Response) -> None:
        statuses.append(response.status_code)

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, event_hooks={"response": [remember]}) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            whoami = await client.call_tool("whoami", {})
            echo = await client.call_tool("echo", {"text": "hello"})
            messages = await client.call_tool("list_messages", {})
    return {"whoami": whoami, "echo": echo, "messages": messages}


@pytest.mark.usefixtures("registered_client")
def test_mcp_tool_calls_return_subject_with_valid_token(oauth_peer: OAuthPeer, mcp_peer: MCPPeer):
    oauth_peer.next_account = "alice@example.test"
    token = obtain_tokens(oauth_peer)["access_token"]
    results = anyio.run(_call_tools, mcp_peer.url, token, [])
    assert results["whoami"].content[0].text == "alice@example.test"
    assert results["echo"].content[0].text == "hello"
    assert len(results["messages"].structured_content["result"]) == 3
    assert set(mcp_peer.seen_authorization) == {f"Bearer {token}"}


def test_mcp_client_raises_mcp_error_with_invalid_token(mcp_peer: MCPPeer):
    statuses: list[int] = []
    # The SDK client hides the HTTP status behind a generic MCPError (inside an
    # ExceptionGroup); an httpx2 response hook is how a caller learns it was a 401.
    with pytest.raises(Exception) as raised:
        anyio.run(_call_tools, mcp_peer.url, "not-a-token", statuses)
    assert _contains(raised.value, MCPError)
    assert 401 in statuses


def _contains(exc: BaseException, kind: type[BaseException]) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_contains(inner, kind) for inner in exc.exceptions)
    return isinstance(exc, kind)


# -- redirecting / recording peers ------------------------------------------------------
def test_redirecting_peer_answers_307_for_any_mcp_request(redirecting_peer: RedirectingPeer):
    response = httpx.post(redirecting_peer.url, json={}, headers={"Authorization": "Bearer secret-token"})
    assert response.status_code == 307 and response.headers["location"] == redirecting_peer.recorder.url
    assert redirecting_peer.seen_authorization == ["Bearer secret-token"]


def test_recorder_sees_no_token_after_cross_origin_redirect(redirecting_peer: RedirectingPeer):
    response = httpx.post(
        redirecting_peer.url, json={}, headers={"Authorization": "Bearer secret-token"}, follow_redirects=True
    )
    assert response.status_code == 200
    recorder = redirecting_peer.recorder
    assert [r["path"] for r in recorder.requests] == ["/mcp"] and recorder.seen_authorization == []


def test_sdk_client_refuses_cross_origin_redirect_without_contacting_target(redirecting_peer: RedirectingPeer):
    statuses: list[int] = []
    with pytest.raises(Exception) as raised:
        anyio.run(_call_tools, redirecting_peer.url, "secret-token", statuses)
    assert _contains(raised.value, MCPError)
    assert statuses and set(statuses) == {307}
    assert redirecting_peer.seen_authorization and redirecting_peer.recorder.requests == []
