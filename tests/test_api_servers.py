"""The JSON API for MCP servers: /api/servers and /api/servers/<id>."""
import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, MCPServer
from tests.conftest import PASSWORD
from tests.test_servers import GMAIL_URL, PLAIN_URL, make_server

GMAIL_ENV = {"GOOGLE_CLIENT_ID": "team-client.apps.test", "GOOGLE_CLIENT_SECRET": "team-client-secret-0001"}


@pytest.fixture
def app_config(app_config):
    app_config.update(GMAIL_ENV)
    return app_config


@pytest.fixture
def gmail_on(admin):
    from portal.providers import settings

    settings.set_enabled(admin.team_id, "gmail", True, actor=admin)
    db.session.commit()


class Api:
    """A signed-in JSON client: ``api.get(path)``, ``api.send(method, path, payload)``."""

    def __init__(self, app, email=None):
        self.client = app.test_client()
        self.token = None
        if email:
            assert self.client.submit("/login", {"email": email, "password": PASSWORD}).status_code == 303
            self.token = self.client.csrf_token("/servers")

    def get(self, path):
        return self.client.get(path)

    def send(self, method, path, payload=None, csrf=True, **kwargs):
        headers = {"X-CSRFToken": self.token} if csrf and self.token else {}
        return self.client.open(path, method=method, json=payload, headers=headers, **kwargs)


def assert_error(response, status, code=None, text=None):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) >= {"error", "message"}, body
    if code:
        assert body["error"] == code
    if text:
        assert text in body["message"], body["message"]
    return body


def count_servers():
    db.session.rollback()
    return len(db.session.scalars(select(MCPServer)).all())


# --- create, read, change, delete ---------------------------------------------------------------

def test_create_server_answers_201_with_the_server(app, member, gmail_on):
    api = Api(app, member.email)
    response = api.send("POST", "/api/servers", {"name": "My Gmail", "url": GMAIL_URL})
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/api/servers/{body['id']}"
    assert body == {"id": body["id"], "name": "My Gmail", "url": GMAIL_URL, "provider": "gmail",
                    "provider_title": "Gmail", "visibility": "personal",
                    "owner": {"id": member.id, "email": member.email},
                    "created_at": body["created_at"], "can_change": True}
    assert body["created_at"].endswith("Z")
    assert api.get(f"/api/servers/{body['id']}").get_json() == body


def test_create_server_takes_provider_and_visibility(app, admin, gmail_on):
    api = Api(app, admin.email)
    body = api.send("POST", "/api/servers", {"name": "Team", "url": PLAIN_URL, "provider": "gmail",
                                             "visibility": "team"}).get_json()
    assert (body["provider"], body["visibility"]) == ("gmail", "team")
    body = api.send("POST", "/api/servers", {"name": "Spec", "url": GMAIL_URL, "provider": None}).get_json()
    assert body["provider"] is None


def test_list_servers_shows_own_and_team_servers(app, admin, member, gmail_on):
    mine = make_server(member, name="Mine", url=PLAIN_URL)
    shared = make_server(admin, name="Shared", visibility="team")
    make_server(admin, name="Admin's own", url=PLAIN_URL)
    listed = Api(app, member.email).get("/api/servers").get_json()["servers"]
    assert [(s["id"], s["can_change"]) for s in listed] == [(mine.id, True), (shared.id, False)]


def test_patch_server_renames_reprovisions_and_audits(app, member, gmail_on):
    server = make_server(member, url=PLAIN_URL, provider=None)
    api = Api(app, member.email)
    body = api.send("PATCH", f"/api/servers/{server.id}", {"name": "Renamed", "provider": "gmail"}).get_json()
    assert (body["name"], body["provider"]) == ("Renamed", "gmail")
    assert api.send("PATCH", f"/api/servers/{server.id}", {"provider": None}).get_json()["provider"] is None
    db.session.rollback()
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "server.updated")
                               .order_by(AuditEvent.id)).first()
    assert '"changed":["name","provider"]' in event.details and event.actor_id == member.id


def test_patch_server_with_auto_detects_again(app, member, gmail_on):
    server = make_server(member, url=GMAIL_URL, provider=None)
    body = Api(app, member.email).send("PATCH", f"/api/servers/{server.id}", {"provider": "auto"}).get_json()
    assert body["provider"] == "gmail"


def test_patch_server_without_changes_writes_no_audit_event(app, member):
    server = make_server(member, url=PLAIN_URL)
    api = Api(app, member.email)
    assert api.send("PATCH", f"/api/servers/{server.id}", {"name": "Mail"}).status_code == 200
    db.session.rollback()
    assert db.session.scalars(select(AuditEvent).where(AuditEvent.action == "server.updated")).all() == []


def test_delete_server_removes_it(app, member):
    server = make_server(member, url=PLAIN_URL)
    api = Api(app, member.email)
    response = api.send("DELETE", f"/api/servers/{server.id}")
    assert response.status_code == 200 and response.get_json() == {"id": server.id, "deleted": True}
    assert_error(api.get(f"/api/servers/{server.id}"), 404, "not_found")
    assert count_servers() == 0


# --- errors are JSON with a message -----------------------------------------------------------------

@pytest.mark.parametrize("payload, text", [
    ({"url": PLAIN_URL}, "Enter a name for the server."),
    ({"name": "x"}, "Enter the MCP server's URL."),
    ({"name": 5, "url": PLAIN_URL}, "The name must be text."),
    ({"name": "x", "url": ["https://a.test"]}, "The URL must be text."),
    ({"name": "x", "url": "https://u:p@a.test/mcp"}, "must not contain a user name or password"),
    ({"name": "x", "url": "file:///etc/passwd"}, "The URL must start with https://"),
    ({"name": "x", "url": PLAIN_URL, "visibility": "public"}, 'Visibility must be "personal" or "team".'),
    ({"name": "x", "url": PLAIN_URL, "provider": {"name": "gmail"}}, "The provider must be a provider name"),
    ({"name": "x", "url": PLAIN_URL, "provider": "github"}, "'github' is not a provider your team can use."),
    ({"name": "x", "url": PLAIN_URL, "owner_id": 1}, "Unknown or read-only fields: owner_id."),
    ({"name": "\ud800", "url": PLAIN_URL}, "invalid text"),
    ({"name": "x" * 100_000, "url": PLAIN_URL}, "The name must be 1 to 120 characters."),
])
def test_create_server_refuses_bad_input_with_json_error(app, member, payload, text):
    assert_error(Api(app, member.email).send("POST", "/api/servers", payload), 400, "bad_input", text)
    assert count_servers() == 0


@pytest.mark.parametrize("body, content_type", [
    (b"[1, 2]", "application/json"), (b"{not json", "application/json"), (b"name=x", "application/x-www-form-urlencoded"),
    (b"", "application/json"), (b"[" * 100_000 + b"]" * 100_000, "application/json"),
])
def test_create_server_refuses_a_body_that_is_not_a_json_object(app, member, body, content_type):
    api = Api(app, member.email)
    response = api.client.post("/api/servers", data=body, content_type=content_type,
                               headers={"X-CSRFToken": api.token})
    assert_error(response, 400, "bad_input", "Send a JSON object.")


def test_create_server_refuses_a_huge_body(app, member):
    response = Api(app, member.email).send("POST", "/api/servers", {"name": "x", "url": "https://a.test/" + "a" * 2_000_000})
    assert_error(response, 413)


def test_patch_server_refuses_url_and_unknown_fields(app, member):
    server = make_server(member, url=PLAIN_URL)
    api = Api(app, member.email)
    body = assert_error(api.send("PATCH", f"/api/servers/{server.id}", {"url": GMAIL_URL}), 400, "bad_input")
    assert body["next_step"] == "A server's URL cannot change; add a new server instead."
    assert_error(api.send("PATCH", f"/api/servers/{server.id}", {"name": ""}), 400, "bad_input", "1 to 120")


def test_member_cannot_share_or_change_team_servers(app, admin, member):
    own = make_server(member, url=PLAIN_URL)
    shared = make_server(admin, name="Shared", url=PLAIN_URL, visibility="team")
    api = Api(app, member.email)
    assert_error(api.send("PATCH", f"/api/servers/{own.id}", {"visibility": "team"}), 403, "forbidden",
                 "Only a team admin can share a server with the team.")
    assert_error(api.send("PATCH", f"/api/servers/{shared.id}", {"name": "Mine"}), 403, "forbidden")
    assert_error(api.send("DELETE", f"/api/servers/{shared.id}"), 403, "forbidden")
    assert api.get(f"/api/servers/{shared.id}").get_json()["can_change"] is False


def test_state_changes_need_the_csrf_token_with_a_session(app, member):
    server = make_server(member, url=PLAIN_URL)
    api = Api(app, member.email)
    assert_error(api.send("POST", "/api/servers", {"name": "x", "url": PLAIN_URL}, csrf=False), 400, "csrf_failed")
    assert_error(api.send("PATCH", f"/api/servers/{server.id}", {"name": "y"}, csrf=False), 400, "csrf_failed")
    assert_error(api.send("DELETE", f"/api/servers/{server.id}", csrf=False), 400, "csrf_failed")
    assert count_servers() == 1


def test_api_key_acts_as_its_owner_without_csrf(app, member):
    from portal import api_keys

    _, key = api_keys.create(member, "agent host")
    db.session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    created = client.post("/api/servers", json={"name": "Agent", "url": PLAIN_URL}, headers=headers)
    assert created.status_code == 201 and created.get_json()["owner"]["id"] == member.id
    assert [s["name"] for s in client.get("/api/servers", headers=headers).get_json()["servers"]] == ["Agent"]


# --- who sees what ----------------------------------------------------------------------------

@pytest.fixture
def cast(app, admin, member, make_user):
    """A's personal server, and JSON clients for anonymous, A, B, A's admin and another team's admin."""
    server = make_server(member, name="A's server", url=PLAIN_URL)
    make_user("b@a.test", team=admin.team)
    make_user("admin@o.test", role="admin", team_name="Team O")
    apis = {"anonymous": Api(app), "owner": Api(app, member.email), "teammate": Api(app, "b@a.test"),
            "admin": Api(app, admin.email), "other_admin": Api(app, "admin@o.test")}
    return server, apis


ROUTES = [("GET", "/api/servers/{id}", None), ("PATCH", "/api/servers/{id}", {"name": "Taken"}),
          ("DELETE", "/api/servers/{id}", None), ("GET", "/api/servers/{id}/tools", None),
          ("POST", "/api/servers/{id}/tools/echo", {"text": "hi"})]


def test_api_answers_404_for_other_peoples_servers(cast):
    server, apis = cast
    for role in ("teammate", "other_admin"):
        for method, path, payload in ROUTES:
            response = apis[role].send(method, path.format(id=server.id), payload)
            body = assert_error(response, 404, "not_found")
            assert "A's server" not in str(body)
        assert [s["id"] for s in apis[role].get("/api/servers").get_json()["servers"]] == []
    db.session.rollback()
    assert db.session.get(MCPServer, server.id).name == "A's server"


def test_api_answers_401_json_to_anonymous_callers(cast):
    server, apis = cast
    anonymous = apis["anonymous"]
    for method, path, payload in ROUTES + [("GET", "/api/servers", None)]:
        response = anonymous.send(method, path.format(id=server.id), payload)
        if method != "GET":
            assert_error(response, 400, "csrf_failed")  # no session, no token: refused before anything
        else:
            assert_error(response, 401, "unauthorized")
    bad_key = anonymous.client.get("/api/servers", headers={"Authorization": "Bearer mcpp_00000000_" + "0" * 64})
    assert_error(bad_key, 401)


def test_team_admin_reads_and_removes_a_members_personal_server(cast):
    server, apis = cast
    assert apis["admin"].get(f"/api/servers/{server.id}").get_json()["name"] == "A's server"
    assert apis["admin"].send("DELETE", f"/api/servers/{server.id}").status_code == 200
    assert count_servers() == 0


@pytest.mark.parametrize("path", ["/api/servers/999999", "/api/servers/2147483648", "/api/servers/99999999999999999999999",
                                  "/api/servers/abc", "/api/servers/-1", "/api/nothing",
                                  "/api//servers", "/api/servers//1", "/api/servers//1/tools"])
def test_unknown_ids_and_paths_are_json_404(cast, path):
    _, apis = cast
    assert_error(apis["owner"].get(path), 404)
