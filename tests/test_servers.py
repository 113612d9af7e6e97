"""MCP server pages: add, detect live, rename, share, remove; validation and who sees what."""
import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from portal.errors import Conflict
from portal.extensions import db
from portal.models import AuditEvent, Connection, MCPServer
from portal.signals import server_deleting
from tests.conftest import PASSWORD

GMAIL_URL = "https://mcp.pipedream.net/6919d1b2-8143-422f-a5ae-6bca936cdbe6/gmail"
DRIVE_URL = "https://mcp.pipedream.net/6919d1b2-8143-422f-a5ae-6bca936cdbe6/google_drive"
PLAIN_URL = "https://mcp.example.test/mcp"


@pytest.fixture
def app_config(app_config):
    app_config.update(GOOGLE_CLIENT_ID="team-client.apps.test", GOOGLE_CLIENT_SECRET="team-client-secret-0001")
    return app_config


@pytest.fixture
def gmail_on(admin):
    """Gmail enabled for team A (credentials come from the app config)."""
    from portal.providers import settings

    settings.set_enabled(admin.team_id, "gmail", True, actor=admin)
    db.session.commit()


def sign_in(app, email):
    client = app.test_client()
    response = client.submit("/login", {"email": email, "password": PASSWORD})
    assert response.status_code == 303, response.get_data(as_text=True)[-300:]
    return client


def post_form(client, path, data, **kwargs):
    return client.submit(path, data, token_from="/servers", **kwargs)


def stored(server_id):
    db.session.rollback()  # see what the requests committed
    return db.session.get(MCPServer, server_id)


def actions():
    db.session.rollback()
    return [event.action for event in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def make_server(owner, name="Mail", url=GMAIL_URL, visibility="personal", provider="auto"):
    from portal import servers

    db.session.rollback()  # a fresh snapshot: requests have written since the test last read
    server = servers.create_server(owner, name=name, url=url, visibility=visibility, provider=provider)
    db.session.commit()
    return server


# --- adding ---------------------------------------------------------------------------------

def test_create_server_detects_provider_and_redirects_to_details(app, member, gmail_on):
    client = sign_in(app, member.email)
    response = post_form(client, "/servers", {"name": "My Gmail", "url": GMAIL_URL})
    assert response.status_code == 303
    server_id = int(response.headers["Location"].rsplit("/", 1)[1])
    server = stored(server_id)
    assert (server.name, server.url, server.provider, server.visibility, server.owner_id) == (
        "My Gmail", GMAIL_URL, "gmail", "personal", member.id)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "My Gmail added with Gmail." in page and "Test connection" in page
    assert "server.created" in actions()


def test_create_server_without_matching_provider_stores_none(app, member, gmail_on):
    client = sign_in(app, member.email)
    response = post_form(client, "/servers", {"name": "Spec server", "url": PLAIN_URL})
    assert response.status_code == 303
    assert stored(int(response.headers["Location"].rsplit("/", 1)[1])).provider is None


def test_create_server_keeps_provider_chosen_by_hand(app, member, gmail_on):
    client = sign_in(app, member.email)
    response = post_form(client, "/servers", {"name": "Proxy", "url": PLAIN_URL, "provider": "gmail"})
    assert stored(int(response.headers["Location"].rsplit("/", 1)[1])).provider == "gmail"


def test_create_server_refuses_provider_not_enabled(app, member):
    client = sign_in(app, member.email)
    response = post_form(client, "/servers", {"name": "Proxy", "url": PLAIN_URL, "provider": "gmail"})
    assert response.status_code == 400
    assert "is not a provider your team can use" in response.get_data(as_text=True)
    assert stored_count() == 0


def stored_count():
    db.session.rollback()
    return len(db.session.scalars(select(MCPServer)).all())


@pytest.mark.parametrize("name, url, message", [
    ("Mail", "", "Enter the MCP server&#39;s URL."),
    ("Mail", "ftp://files.example.test/mcp", "The URL must start with https://"),
    ("Mail", "javascript:alert(1)", "The URL must start with https://"),
    ("Mail", "https://user:secret@mcp.example.test/mcp", "must not contain a user name or password"),
    ("Mail", "https://:secret@mcp.example.test/mcp", "must not contain a user name or password"),
    ("Mail", "https:///mcp", "The URL needs a host name."),
    ("Mail", "https://mcp.example.test/a b", "The URL contains spaces, control characters"),
    ("Mail", "https://mcp.example.test:99999/mcp", "That is not a valid URL."),
    ("Mail", "https://[::1/mcp", "That is not a valid URL."),
    ("Mail", "https://mcp.example.test/mcp#frag", "must not contain a #fragment"),
    ("Mail", "https://mcp.example.test/" + "a" * 2100, "The URL is too long"),
    ("", PLAIN_URL, "The name must be 1 to 120 characters."),
    ("x" * 121, PLAIN_URL, "The name must be 1 to 120 characters."),
])
def test_create_server_refuses_bad_input_with_a_clear_message(app, member, name, url, message):
    client = sign_in(app, member.email)
    response = post_form(client, "/servers", {"name": name, "url": url})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in page
    assert stored_count() == 0
    if name:
        assert f'value="{name}"' in page  # the form comes back as typed


def test_create_server_requires_https_in_production(app, member):
    app.config["PRODUCTION"] = True
    client = sign_in(app, member.email)
    response = post_form(client, "/servers", {"name": "Plain", "url": "http://mcp.example.test/mcp"})
    assert response.status_code == 400
    assert "The URL must use https:// in production." in response.get_data(as_text=True)
    assert post_form(client, "/servers", {"name": "TLS", "url": PLAIN_URL}).status_code == 303


def test_create_server_allows_http_outside_production(app, member):
    client = sign_in(app, member.email)
    assert post_form(client, "/servers", {"name": "Local", "url": "http://127.0.0.1:8902/mcp"}).status_code == 303


def test_create_server_refuses_team_visibility_for_member(app, member):
    client = sign_in(app, member.email)
    response = post_form(client, "/servers", {"name": "Shared", "url": PLAIN_URL, "visibility": "team"})
    assert response.status_code == 403
    assert "Only a team admin can share a server with the team." in response.get_data(as_text=True)
    assert stored_count() == 0


# --- live detection --------------------------------------------------------------------------

def detect(client, url):
    response = client.get("/servers/detect", query_string={"url": url}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    return " ".join(response.get_data(as_text=True).split())


def test_index_wires_url_input_to_live_detection(app, member):
    page = sign_in(app, member.email).get("/servers").get_data(as_text=True)
    url_input = re.search(r'<input name="url"[^>]*>', page, re.S).group(0)
    assert 'hx-get="/servers/detect"' in url_input
    assert 'hx-trigger="input changed delay:300ms"' in url_input
    assert 'hx-target="#detection"' in url_input and 'id="detection"' in page


def test_detect_fragment_names_the_detected_provider(app, member, gmail_on):
    fragment = detect(sign_in(app, member.email), GMAIL_URL)
    assert "Gmail detected" in fragment
    assert fragment.startswith('<p id="detection"') and "<html" not in fragment


def test_detect_fragment_asks_to_choose_when_nothing_matches(app, member, gmail_on):
    assert "No provider matches — choose one" in detect(sign_in(app, member.email), PLAIN_URL)


def test_detect_fragment_ignores_providers_the_team_has_not_enabled(app, member):
    assert "No provider matches — choose one" in detect(sign_in(app, member.email), GMAIL_URL)


def test_detect_fragment_explains_a_bad_url(app, member, gmail_on):
    client = sign_in(app, member.email)
    assert "must not contain a user name or password" in detect(client, "https://u:p@mcp.pipedream.net/x/gmail")
    assert "Paste the server" in detect(client, "")


def test_detect_changes_nothing(app, member, gmail_on):
    client = sign_in(app, member.email)
    before = actions()
    detect(client, GMAIL_URL)
    assert stored_count() == 0 and actions() == before


# --- changing and removing --------------------------------------------------------------------

def test_rename_server_is_saved_and_audited(app, member, gmail_on):
    server = make_server(member)
    client = sign_in(app, member.email)
    response = post_form(client, f"/servers/{server.id}", {"name": "Work mail", "provider": "gmail"})
    assert response.status_code == 303
    assert stored(server.id).name == "Work mail"
    assert actions()[-1] == "server.updated"
    event = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert event.target_id == str(server.id) and '"changed":["name"]' in event.details


def test_rename_server_refuses_empty_name_and_keeps_old_one(app, member):
    server = make_server(member, url=PLAIN_URL)
    response = post_form(sign_in(app, member.email), f"/servers/{server.id}", {"name": "  "})
    assert response.status_code == 400 and "The name must be 1 to 120 characters." in response.get_data(as_text=True)
    assert stored(server.id).name == "Mail"


def test_admin_shares_server_which_members_see_but_cannot_change(app, admin, member, make_user, gmail_on):
    server = make_server(admin, name="Team mail", visibility="team")
    other = make_user("b@a.test", team=admin.team)
    for user in (member, other):
        client = sign_in(app, user.email)
        assert "Team mail" in client.get("/servers").get_data(as_text=True)
        assert client.get(f"/servers/{server.id}").status_code == 200
        response = post_form(client, f"/servers/{server.id}", {"name": "Mine now"})
        assert response.status_code == 403
        assert post_form(client, f"/servers/{server.id}/delete", {}).status_code == 403
    assert stored(server.id).name == "Team mail"


def test_admin_unshares_server(app, admin, member):
    server = make_server(admin, name="Team mail", url=PLAIN_URL, visibility="team")
    response = post_form(sign_in(app, admin.email), f"/servers/{server.id}",
                         {"name": "Team mail", "visibility": "personal"})
    assert response.status_code == 303 and stored(server.id).visibility == "personal"
    assert sign_in(app, member.email).get(f"/servers/{server.id}").status_code == 404


def test_delete_server_revokes_through_signal_then_removes_row(app, member):
    server = make_server(member, url=PLAIN_URL)
    db.session.add(Connection(user_id=member.id, server_id=server.id, provider="gmail", status="connected"))
    db.session.commit()
    seen = []

    def receiver(sender, server, actor):
        seen.append((server.id, actor.id, db.session.get(MCPServer, server.id) is not None,
                     db.session.scalar(select(Connection.id).where(Connection.server_id == server.id)) is not None))

    with server_deleting.connected_to(receiver):
        response = post_form(sign_in(app, member.email), f"/servers/{server.id}/delete", {})
    assert response.status_code == 303 and response.headers["Location"] == "/servers"
    assert seen == [(server.id, member.id, True, True)]  # sent before the delete, in its transaction
    assert stored(server.id) is None
    assert db.session.scalars(select(Connection)).all() == []
    assert actions()[-1] == "server.deleted"


def test_delete_server_is_aborted_when_a_receiver_refuses(app, member):
    server = make_server(member, url=PLAIN_URL)

    def receiver(sender, server, actor):
        raise Conflict("Revocation could not start.", "Try again.")

    with server_deleting.connected_to(receiver):
        response = post_form(sign_in(app, member.email), f"/servers/{server.id}/delete", {})
    assert response.status_code == 409
    assert stored(server.id) is not None and "server.deleted" not in actions()


def test_delete_server_with_htmx_redirects_client_side(app, member):
    server = make_server(member, url=PLAIN_URL)
    response = post_form(sign_in(app, member.email), f"/servers/{server.id}/delete", {},
                         headers={"HX-Request": "true"})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/servers"
    page = sign_in(app, member.email).get(f"/servers/{server.id}")
    assert page.status_code == 404


def test_delete_button_asks_for_confirmation(app, member):
    server = make_server(member, url=PLAIN_URL)
    page = sign_in(app, member.email).get(f"/servers/{server.id}").get_data(as_text=True)
    assert 'hx-confirm="Remove Mail? Its connections are revoked."' in page


def test_test_connection_without_a_connection_says_to_connect(app, member):
    server = make_server(member, url=PLAIN_URL)
    client = sign_in(app, member.email)
    page = post_form(client, f"/servers/{server.id}/test", {})
    assert page.status_code == 409
    assert "connect" in page.get_data(as_text=True).lower()
    fragment = post_form(client, f"/servers/{server.id}/test", {}, headers={"HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and text.lstrip().startswith('<div id="tools"')
    assert "connect" in text.lower()


# --- who sees what ----------------------------------------------------------------------------

@pytest.fixture
def cast(app, admin, member, make_user):
    """A's personal server, and clients for each role: anonymous, A, B, A's admin, another admin."""
    server = make_server(member, name="A's server", url=PLAIN_URL)
    make_user("b@a.test", team=admin.team)
    make_user("admin@o.test", role="admin", team_name="Team O")
    clients = {"anonymous": app.test_client()}
    clients.update({role: sign_in(app, email) for role, email in (
        ("owner", member.email), ("teammate", "b@a.test"), ("admin", admin.email), ("other_admin", "admin@o.test"))})
    return server, clients


PAGE_ROUTES = [("GET", "/servers/{id}"), ("POST", "/servers/{id}"), ("POST", "/servers/{id}/delete"),
               ("POST", "/servers/{id}/test")]


def test_server_pages_hide_personal_servers_from_others(cast):
    server, clients = cast
    for method, path in PAGE_ROUTES:
        for role in ("teammate", "other_admin"):
            client = clients[role]
            url = path.format(id=server.id)
            response = client.get(url) if method == "GET" else post_form(client, url, {"name": "Taken"})
            assert response.status_code == 404, (role, method, url)
            assert "A&#39;s server" not in response.get_data(as_text=True)
    assert stored(server.id).name == "A's server"


def test_server_pages_send_anonymous_to_sign_in(cast):
    server, clients = cast
    client = clients["anonymous"]
    for method, path in PAGE_ROUTES + [("GET", "/servers"), ("POST", "/servers"), ("GET", "/servers/detect")]:
        url = path.format(id=server.id)
        response = client.get(url) if method == "GET" else client.submit(url, {"name": "x"})
        assert response.status_code == 302, (method, url)
        assert urlsplit(response.headers["Location"]).path == "/login"
    assert stored(server.id).name == "A's server"


def test_server_list_shows_own_and_shared_servers_only(cast, admin, make_user):
    server, clients = cast
    make_server(admin, name="Shared one", url=PLAIN_URL, visibility="team")
    teammate_page = clients["teammate"].get("/servers").get_data(as_text=True)
    assert "Shared one" in teammate_page and "A&#39;s server" not in teammate_page
    assert "A&#39;s server" in clients["owner"].get("/servers").get_data(as_text=True)
    assert "A&#39;s server" in clients["admin"].get("/servers").get_data(as_text=True)
    other_page = clients["other_admin"].get("/servers").get_data(as_text=True)
    assert "Shared one" not in other_page and "A&#39;s server" not in other_page


def test_team_admin_may_see_and_remove_a_members_personal_server(cast):
    server, clients = cast
    assert clients["admin"].get(f"/servers/{server.id}").status_code == 200
    assert post_form(clients["admin"], f"/servers/{server.id}/delete", {}).status_code == 303
    assert stored(server.id) is None


def test_unknown_server_id_is_not_found(cast):
    _, clients = cast
    assert clients["owner"].get("/servers/999999").status_code == 404
    assert clients["owner"].get("/servers/99999999999999999999999").status_code == 404
