"""The MCP client and MCP-spec discovery against the real peers (SDK MCP server, OAuth server).

Tokens come from the OAuth peer by its code flow with PKCE over HTTP; ``PeerTokens`` is a
token provider that refreshes at the peer and records what it was asked.
"""
import base64
import hashlib
import secrets
import socket
import time
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from portal.mcp import client, discovery
from portal.mcp.errors import ConnectionRequired, MCPServerError, MCPTimeout
from tests.peers.runner import ServerThread


CLIENT_ID, CLIENT_SECRET = "mcp-client-test", "mcp-client-test-secret"
REDIRECT_URI = "http://127.0.0.1:9/oauth/callback"  # never contacted: the code is read from Location


def obtain_tokens(oauth_peer, account="alice@example.test"):
    """A real token pair from the OAuth peer: authorization code flow with PKCE, over HTTP."""
    oauth_peer.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI], None)
    oauth_peer.next_account = account
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    answer = httpx.get(oauth_peer.authorization_endpoint, params={
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "state": "s1",
        "code_challenge": challenge, "code_challenge_method": "S256", "scope": "mail.read"})
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    response = httpx.post(oauth_peer.token_endpoint, auth=(CLIENT_ID, CLIENT_SECRET), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier})
    assert response.status_code == 200, response.text
    return response.json()


class PeerTokens:
    """A token provider backed by the OAuth peer; records every get() and refresh()."""

    def __init__(self, oauth_peer, tokens):
        self.peer, self.access, self.refresh_token = oauth_peer, tokens["access_token"], tokens["refresh_token"]
        self.gets, self.refreshed = 0, []

    def get(self):
        self.gets += 1
        return self.access

    def refresh(self, rejected):
        self.refreshed.append(rejected)
        response = httpx.post(self.peer.token_endpoint, auth=(CLIENT_ID, CLIENT_SECRET),
                              data={"grant_type": "refresh_token", "refresh_token": self.refresh_token})
        if response.status_code != 200:
            return None
        body = response.json()
        self.access, self.refresh_token = body["access_token"], body.get("refresh_token", self.refresh_token)
        return self.access


class FixedTokens:
    """A token provider with one token, and a given answer (or error) to refresh()."""

    def __init__(self, token, fresh=None, error=None):
        self.token, self.fresh, self.error, self.refreshed = token, fresh, error, []

    def get(self):
        if self.error and self.token is None:
            raise self.error
        return self.token

    def refresh(self, rejected):
        self.refreshed.append(rejected)
        if self.error:
            raise self.error
        return self.fresh


@pytest.fixture
def tokens(oauth_peer, mcp_peer):
    return PeerTokens(oauth_peer, obtain_tokens(oauth_peer))


# --- tools ------------------------------------------------------------------------------------

def test_list_tools_returns_the_servers_tools_as_mcp_json(mcp_peer, tokens):
    tools = client.list_tools(mcp_peer.url, tokens)
    assert [tool["name"] for tool in tools] == ["echo", "whoami", "list_messages"]
    echo = tools[0]
    assert echo["description"] == "Return the text unchanged."
    assert echo["inputSchema"]["required"] == ["text"]


def test_list_tools_sends_token_only_as_bearer_header(mcp_peer, tokens):
    client.list_tools(mcp_peer.url, tokens)
    requests = mcp_peer.requests
    assert requests and all(r["headers"].get("authorization") == f"Bearer {tokens.access}" for r in requests)
    assert all(tokens.access not in r["path"] for r in requests)
    assert tokens.gets == 1 and tokens.refreshed == []


def test_call_tool_returns_the_result_json(mcp_peer, tokens):
    result = client.call_tool(mcp_peer.url, "echo", {"text": "héllo"}, tokens)
    assert result["isError"] is False
    assert result["content"] == [{"type": "text", "text": "héllo"}]
    assert result["structuredContent"] == {"result": "héllo"}


def test_call_tool_acts_as_the_tokens_account(mcp_peer, oauth_peer):
    tokens = PeerTokens(oauth_peer, obtain_tokens(oauth_peer, account="bob@example.test"))
    assert client.call_tool(mcp_peer.url, "whoami", {}, tokens)["content"][0]["text"] == "bob@example.test"


def test_call_tool_reports_a_failing_tool_in_its_result(mcp_peer, tokens):
    result = client.call_tool(mcp_peer.url, "no_such_tool", {}, tokens)
    assert result["isError"] is True and "Unknown tool" in result["content"][0]["text"]


# --- 401: refresh once, retry once ---------------------------------------------------------------

def test_rejected_token_is_refreshed_once_and_the_call_retried(mcp_peer, oauth_peer, tokens):
    old = tokens.access
    oauth_peer.expire_all_access_tokens()
    result = client.call_tool(mcp_peer.url, "whoami", {}, tokens)
    assert result["content"][0]["text"] == "alice@example.test"
    assert tokens.refreshed == [old]
    assert oauth_peer.refresh_calls == 1
    seen = mcp_peer.seen_authorization
    assert seen[0] == f"Bearer {old}" and set(seen[1:]) == {f"Bearer {tokens.access}"}


def test_token_refused_after_refresh_needs_reconnecting(mcp_peer, oauth_peer, tokens):
    oauth_peer.revoke_grant_for("alice@example.test")  # refresh answers invalid_grant
    with pytest.raises(ConnectionRequired) as raised:
        client.list_tools(mcp_peer.url, tokens)
    assert raised.value.status == 409 and raised.value.message == "OAuth tokens expired"
    assert len(tokens.refreshed) == 1 and oauth_peer.refresh_calls == 1


def test_fresh_token_refused_too_is_not_refreshed_again(mcp_peer):
    tokens = FixedTokens("not-a-token", fresh="still-not-a-token")
    with pytest.raises(ConnectionRequired):
        client.call_tool(mcp_peer.url, "echo", {"text": "x"}, tokens)
    assert tokens.refreshed == ["not-a-token"]
    assert set(mcp_peer.seen_authorization) == {"Bearer not-a-token", "Bearer still-not-a-token"}


def test_refresh_error_of_the_token_provider_reaches_the_caller(mcp_peer):
    error = ConnectionRequired("OAuth tokens expired", "Reconnect.")
    tokens = FixedTokens("not-a-token", error=error)
    with pytest.raises(ConnectionRequired) as raised:
        client.list_tools(mcp_peer.url, tokens)
    assert raised.value is error and tokens.refreshed == ["not-a-token"]


def test_missing_token_fails_before_any_request(mcp_peer):
    with pytest.raises(ConnectionRequired):
        client.list_tools(mcp_peer.url, FixedTokens(None, error=ConnectionRequired()))
    assert mcp_peer.requests == []


# --- SECURITY 7: the token stays with its server's origin -------------------------------------------

def test_redirect_to_another_origin_is_not_followed_and_sends_no_token(redirecting_peer, recording_peer):
    with pytest.raises(MCPServerError) as raised:
        client.list_tools(redirecting_peer.url, FixedTokens("secret-token-for-a"))
    assert raised.value.status == 502
    assert f"redirected to {recording_peer.url}" in raised.value.message
    assert recording_peer.requests == []
    assert set(redirecting_peer.seen_authorization) == {"Bearer secret-token-for-a"}


def test_same_origin_redirect_is_not_followed_either(redirecting_peer):
    redirecting_peer.target = redirecting_peer.base_url + "/mcp/elsewhere"
    with pytest.raises(MCPServerError):
        client.list_tools(redirecting_peer.url, FixedTokens("secret-token-for-a"))
    assert {r["path"] for r in redirecting_peer.requests} == {"/mcp"}


def test_bearer_auth_adds_no_token_for_another_origin(mcp_peer, recording_peer):
    async def fetch():
        auth = client.BearerAuth(mcp_peer.url, FixedTokens("t"), "secret-token-for-a")
        async with httpx2.AsyncClient(auth=auth) as http:
            await http.get(recording_peer.url)
            await http.get(mcp_peer.base_url + "/.well-known/oauth-protected-resource")

    anyio.run(fetch)
    assert recording_peer.seen_authorization == []
    assert mcp_peer.seen_authorization == ["Bearer secret-token-for-a"]


# --- failures -----------------------------------------------------------------------------------

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_is_a_bad_gateway():
    with pytest.raises(MCPServerError) as raised:
        client.list_tools(f"http://127.0.0.1:{free_port()}/mcp", FixedTokens("t"))
    assert raised.value.status == 502 and "Could not reach the MCP server at 127.0.0.1" in raised.value.message


def test_silent_server_times_out():
    with socket.socket() as listener:  # accepts connections (backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        started = time.monotonic()
        with pytest.raises(MCPTimeout) as raised:
            client.list_tools(f"http://127.0.0.1:{listener.getsockname()[1]}/mcp", FixedTokens("t"), timeout=0.5)
    assert raised.value.status == 504 and "did not answer in time" in raised.value.message
    assert time.monotonic() - started < 5


# --- discovery ----------------------------------------------------------------------------------

def test_discover_finds_the_authorization_server_of_the_mcp_server(mcp_peer, oauth_peer):
    found = discovery.discover(mcp_peer.url)
    assert found == discovery.AuthorizationServerInfo(
        resource=mcp_peer.url, issuer=oauth_peer.issuer,
        authorization_endpoint=oauth_peer.authorization_endpoint, token_endpoint=oauth_peer.token_endpoint,
        revocation_endpoint=oauth_peer.revocation_endpoint, registration_endpoint=oauth_peer.registration_endpoint,
        userinfo_endpoint=oauth_peer.userinfo_endpoint, scopes=(), code_challenge_methods=("S256",),
        iss_parameter_supported=True, resource_metadata_url=mcp_peer.resource_metadata_url,
        metadata_url=oauth_peer.metadata_url)


def test_discover_reports_iss_support_as_advertised(mcp_peer, oauth_peer):
    oauth_peer.advertise_iss = False
    assert discovery.discover(mcp_peer.url).iss_parameter_supported is False


def test_discover_refuses_a_server_without_resource_metadata(recording_peer):
    with pytest.raises(discovery.DiscoveryError) as raised:
        discovery.discover(recording_peer.url)
    assert "publishes no protected resource metadata" in raised.value.message


def test_discover_refuses_an_unreachable_server():
    with pytest.raises(discovery.DiscoveryError) as raised:
        discovery.discover(f"http://127.0.0.1:{free_port()}/mcp")
    assert "Could not reach the MCP server" in raised.value.message


class MetadataPeer:
    """An MCP front door serving whatever metadata a test sets: for the mix-up checks."""

    def __init__(self):
        self.resource = self.issuer = None
        self.scope = None
        self.server = ServerThread(self._app, name="metadata-peer")

    def _app(self, base_url):
        self.base_url = base_url

        async def mcp(request):
            header = f'Bearer resource_metadata="{base_url}/prm"' + (f', scope="{self.scope}"' if self.scope else "")
            return JSONResponse({"error": "invalid_token"}, status_code=401, headers={"WWW-Authenticate": header})

        async def prm(request):
            return JSONResponse({"resource": self.resource, "authorization_servers": [base_url + "/as"],
                                 "scopes_supported": ["prm.scope"]})

        async def as_metadata(request):
            return JSONResponse({"issuer": self.issuer, "authorization_endpoint": base_url + "/as/authorize",
                                 "token_endpoint": base_url + "/as/token", "scopes_supported": ["as.scope"]})

        return Starlette(routes=[Route("/mcp", mcp, methods=["POST"]), Route("/prm", prm),
                                 Route("/.well-known/oauth-authorization-server/as", as_metadata)])


@pytest.fixture(scope="module")
def metadata_peer():
    peer = MetadataPeer()
    peer.server.start()
    yield peer
    peer.server.stop()


def test_discover_follows_header_metadata_and_prefers_the_challenge_scope(metadata_peer):
    peer = metadata_peer
    peer.resource, peer.issuer, peer.scope = peer.base_url + "/mcp", peer.base_url + "/as", "challenge.scope"
    found = discovery.discover(peer.base_url + "/mcp")
    assert found.issuer == peer.base_url + "/as" and found.scopes == ("challenge.scope",)
    assert found.resource_metadata_url == peer.base_url + "/prm" and found.revocation_endpoint is None
    peer.scope = None
    assert discovery.discover(peer.base_url + "/mcp").scopes == ("prm.scope",)


@pytest.mark.parametrize("resource", ["http://127.0.0.1:1/mcp", "{base}/other", "{base}/mcpx"])
def test_discover_refuses_metadata_naming_another_resource(metadata_peer, resource):
    peer = metadata_peer
    peer.resource, peer.issuer, peer.scope = resource.format(base=peer.base_url), peer.base_url + "/as", None
    with pytest.raises(discovery.DiscoveryError) as raised:
        discovery.discover(peer.base_url + "/mcp")
    assert "names another resource" in raised.value.message


@pytest.mark.parametrize("issuer", ["https://evil.example/as", "{base}/as/", "{base}"])
def test_discover_refuses_an_authorization_server_naming_another_issuer(metadata_peer, issuer):
    peer = metadata_peer
    peer.resource, peer.issuer, peer.scope = peer.base_url + "/mcp", issuer.format(base=peer.base_url), None
    with pytest.raises(discovery.DiscoveryError) as raised:
        discovery.discover(peer.base_url + "/mcp")
    assert "names another issuer" in raised.value.message
