"""Tool calls through the portal, end to end: API key → portal → token vault → real MCP peer.

The connection is made by the real OAuth flow against the OAuth peer (tests.peer_provider), so
the token the MCP peer sees comes out of the sealed vault, and a 401 refreshes it there.
"""
import pytest

from portal import api_keys
from portal.extensions import db
from tests.conftest import PASSWORD
from tests.peer_provider import add_server, connect, events
from tests.peer_provider import peer_app_config, peer_user  # noqa: F401  (fixtures)

ACCOUNT = "user@example.test"  # the OAuth peer's default account


@pytest.fixture
def agent(peer_user, app):
    """An HTTP client with peer_user's API key: ``agent.post(path, json=...)``."""
    _, key = api_keys.create(peer_user, "agent host")
    db.session.commit()
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


@pytest.fixture
def connected(peer_user, mcp_peer):
    server = add_server(peer_user, url=mcp_peer.url)
    connect(peer_user, server)
    return server


def tools_path(server, name=None):
    return f"/api/servers/{server.id}/tools" + (f"/{name}" if name else "")


def test_call_tool_uses_the_users_token_from_the_vault(agent, connected, mcp_peer, oauth_peer):
    response = agent.post(tools_path(connected, "whoami"), json={})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["content"] == [{"type": "text", "text": ACCOUNT}] and body["isError"] is False
    [token] = {value.removeprefix("Bearer ") for value in mcp_peer.seen_authorization}
    assert oauth_peer.introspect(token)["sub"] == ACCOUNT
    assert token not in response.get_data(as_text=True)


def test_call_tool_passes_the_json_body_as_arguments(agent, connected):
    body = agent.post(tools_path(connected, "echo"), json={"text": "hello from the agent"}).get_json()
    assert body["structuredContent"] == {"result": "hello from the agent"}


def test_list_tools_answers_the_servers_tools(agent, connected):
    body = agent.get(tools_path(connected)).get_json()
    assert body["server_id"] == connected.id
    assert [tool["name"] for tool in body["tools"]] == ["echo", "whoami", "list_messages"]


def test_failing_tool_is_a_result_with_is_error(agent, connected):
    response = agent.post(tools_path(connected, "echo"), json={"text": ["not", "text"]})
    assert response.status_code == 200 and response.get_json()["isError"] is True


def test_rejected_token_is_refreshed_in_the_vault_and_the_call_retried(agent, connected, oauth_peer, mcp_peer):
    oauth_peer.expire_all_access_tokens()  # the vault still thinks the token is fresh
    response = agent.post(tools_path(connected, "whoami"), json={})
    assert response.status_code == 200 and response.get_json()["content"][0]["text"] == ACCOUNT
    assert oauth_peer.refresh_calls == 1
    assert len(set(mcp_peer.seen_authorization)) == 2  # the rejected token, then the refreshed one
    assert len(events("token.refreshed")) == 1


def test_revoked_grant_answers_409_tokens_expired(agent, connected, oauth_peer):
    oauth_peer.revoke_grant_for(ACCOUNT)
    response = agent.post(tools_path(connected, "whoami"), json={})
    assert response.status_code == 409
    body = response.get_json()
    assert body["error"] == "oauth_tokens_expired" and body["message"] == "OAuth tokens expired"
    assert oauth_peer.refresh_calls == 1
    again = agent.post(tools_path(connected, "whoami"), json={})
    assert again.status_code == 409 and oauth_peer.refresh_calls == 1  # reauth_required: no more refreshes


def test_server_without_connection_answers_409_connect_first(agent, peer_user, mcp_peer):
    server = add_server(peer_user, url=mcp_peer.url)
    response = agent.post(tools_path(server, "whoami"), json={})
    assert response.status_code == 409
    body = response.get_json()
    assert body["error"] == "oauth_tokens_expired" and "needs a connection first" in body["message"]
    assert "Connect" in body["next_step"] and mcp_peer.requests == []


def test_redirecting_server_answers_502_and_nobody_else_sees_the_token(agent, peer_user, redirecting_peer,
                                                                         recording_peer):
    server = add_server(peer_user, url=redirecting_peer.url)
    connect(peer_user, server)
    response = agent.post(tools_path(server, "whoami"), json={})
    assert response.status_code == 502
    body = response.get_json()
    assert body["error"] == "mcp_server_error" and "follows no redirects" in body["message"]
    assert recording_peer.requests == []


@pytest.mark.parametrize("name, payload, text", [
    ("echo", [1, 2], "Send a JSON object."),
    ("echo", "text", "Send a JSON object."),
    ("a%20b", {}, "A tool name is 1 to 128 printable characters without spaces."),
    ("x" * 129, {}, "A tool name is 1 to 128 printable characters without spaces."),
])
def test_call_tool_refuses_bad_input_before_calling_the_server(agent, connected, mcp_peer, name, payload, text):
    response = agent.post(f"/api/servers/{connected.id}/tools/{name}", json=payload)
    assert response.status_code == 400 and text in response.get_json()["message"]
    assert mcp_peer.requests == []


def test_call_tool_with_an_empty_body_sends_no_arguments(agent, connected):
    response = agent.post(tools_path(connected, "whoami"))
    assert response.status_code == 200 and response.get_json()["content"][0]["text"] == ACCOUNT


def test_test_connection_fragment_lists_the_tools(connected, peer_user, app):
    client = app.test_client()
    assert client.submit("/login", {"email": peer_user.email, "password": PASSWORD}).status_code == 303
    response = client.submit(f"/servers/{connected.id}/test", {}, token_from=f"/servers/{connected.id}",
                             headers={"HX-Request": "true"})
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and text.lstrip().startswith('<div id="tools"')
    assert "Connected: 3 tools." in text and "<code>whoami</code>" in text and "<html" not in text
