"""Every route × every role against member A's objects (SECURITY 26).

``ROUTES`` is the table: at least one ``Route`` per (endpoint, method) in ``app.url_map``
(``static`` aside), with a URL built from A's objects and the outcome expected for each role.
A route missing from the table fails ``test_every_route_is_in_the_matrix`` by name: add it here.

Roles: ``anonymous``; ``owner`` (member A, who owns the objects); ``teammate`` (member B, same
team); ``other_admin`` (admin of another team); ``admin`` (admin of A's team). Outcomes: ``OK``
(2xx, or a redirect other than "please sign in"), ``LOGIN`` (401, or the sign-in redirect),
``NOT_FOUND`` (404: other people's objects do not exist for you), ``REACHED`` (past the access
check: anything but LOGIN, 403 and 404, e.g. a 502 from an unreachable MCP server).

Every case also checks that
- no response carries token material (tokens, client secret, API key, invite link) — admins may
  revoke another user's token but never read it;
- no response shows A's private things (server, key, invite, account names) to a role that
  may not see them;
- a refused request leaves the database as it was;
- nothing answers 500.

The world and the table are used by test_csrf_routes.py and test_secret_crawl.py too.
"""
from dataclasses import dataclass, field
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Callable
from urllib.parse import urlsplit

import pytest
from sqlalchemy import inspect, select, text, update

from portal.extensions import db
from tests.conftest import PASSWORD
from tests.peer_provider import PeerProvider

ANONYMOUS, OWNER, TEAMMATE, OTHER_ADMIN, ADMIN = "anonymous", "owner", "teammate", "other_admin", "admin"
ROLES = (ANONYMOUS, OWNER, TEAMMATE, OTHER_ADMIN, ADMIN)
OK, LOGIN, NOT_FOUND, FORBIDDEN, REACHED = "ok", "login", "404", "403", "reached"
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
PROVIDER = "matrix"
# A provider whose endpoints are a closed loopback port: revocations fail fast, nothing leaves the host.
NOWHERE = "http://127.0.0.1:9"


# --- expectations -----------------------------------------------------------------------------

def expect(anonymous, owner, teammate, other_admin, admin):
    return {ANONYMOUS: anonymous, OWNER: owner, TEAMMATE: teammate, OTHER_ADMIN: other_admin, ADMIN: admin}


def everyone(outcome=OK):
    return expect(outcome, outcome, outcome, outcome, outcome)


def signed_in(outcome=OK):
    """Any signed-in user, about their own things."""
    return expect(LOGIN, outcome, outcome, outcome, outcome)


def team_admin():
    """An admin page about the admin's own team (the other admin sees their own team)."""
    return expect(LOGIN, NOT_FOUND, NOT_FOUND, OK, OK)


def admin_of_a():
    """An admin action on an object of A's team."""
    return expect(LOGIN, NOT_FOUND, NOT_FOUND, NOT_FOUND, OK)


def owner_only():
    """A's personal object that only A may use (API keys)."""
    return expect(LOGIN, OK, NOT_FOUND, NOT_FOUND, NOT_FOUND)


def owner_or_admin(outcome=OK):
    """A's personal object that A, and the admin of A's team, may see, change or revoke."""
    return expect(LOGIN, outcome, NOT_FOUND, NOT_FOUND, outcome)


@dataclass(frozen=True)
class Route:
    """One way to call (endpoint, method) on A's objects, and what each role gets.

    ``url``, ``data`` and ``json`` take the case's ``Objects``. ``auth="key"`` sends the role's
    API key instead of its session cookie. ``csrf_exempt`` says why a state-changing call may
    skip the CSRF token (only API-key calls may). ``htmx`` sends ``HX-Request``.
    """

    endpoint: str
    method: str
    url: Callable
    expect: dict
    data: Callable | None = None
    json: Callable | None = None
    htmx: bool = False
    auth: str = "session"
    csrf_exempt: str | None = None
    shows: Callable | None = None  # private text this route may show to whoever can call it

    @property
    def key(self):
        return self.endpoint, self.method

    @property
    def name(self):
        variant = " (API key)" if self.auth == "key" else " (HTMX)" if self.htmx else ""
        return f"{self.method} {self.endpoint}{variant}"


def path(value):
    return lambda o: value


API_KEY_ONLY = "bearer API-key request: no cookie, so no cross-site forgery"

ROUTES = [
    # home and sign-in
    Route("home.index", "GET", path("/"), signed_in()),
    Route("auth.login", "GET", path("/login"), everyone()),
    Route("auth.login", "POST", path("/login"), everyone(),
          data=lambda o: {"email": o.world.users[OWNER].email, "password": PASSWORD}),
    Route("auth.logout", "POST", path("/logout"), signed_in()),
    Route("auth.account", "GET", path("/account"), signed_in()),
    Route("auth.change_password", "POST", path("/account/password"), signed_in(),
          data=lambda o: {"current_password": PASSWORD, "new_password": "another long password 42",
                          "confirm_password": "another long password 42"}),
    Route("auth.logout_everywhere", "POST", path("/account/logout-everywhere"), signed_in()),
    Route("auth.invite", "GET", lambda o: f"/invite/{o.invite_token}", everyone(),
          shows=lambda o: [o.invite_token, o.invite.email]),  # the link's holder sees whom it invites
    Route("auth.invite", "POST", lambda o: f"/invite/{o.invite_token}", everyone(),
          data=lambda o: {"name": "New Joiner", "password": "a long new password 7", "confirm_password": "a long new password 7"}),
    # admin: plugins
    Route("admin.plugins", "GET", path("/admin/plugins"), team_admin()),
    Route("admin.plugin_enabled", "POST", path(f"/admin/plugins/{PROVIDER}/enabled"), team_admin(),
          data=lambda o: {"enabled": "1"}),
    Route("admin.plugin_enabled", "POST", path(f"/admin/plugins/{PROVIDER}/enabled"), team_admin(),
          data=lambda o: {"enabled": "0"}, htmx=True),
    Route("admin.plugin_credentials", "POST", path(f"/admin/plugins/{PROVIDER}/credentials"), team_admin(),
          data=lambda o: {"client_id": "new-client-id.apps.test", "client_secret": "new-secret-value-1234"}),
    # admin: members and invitations
    Route("members.index", "GET", path("/admin/members"), team_admin()),
    Route("members.invite", "POST", path("/admin/members/invites"), team_admin(),
          data=lambda o: {"email": f"new{o.n}@example.test", "role": "member"}),
    Route("members.revoke_invite", "POST", lambda o: f"/admin/members/invites/{o.invite.id}/revoke", admin_of_a()),
    Route("members.change_role", "POST", lambda o: f"/admin/members/{o.owner.id}/role", admin_of_a(),
          data=lambda o: {"role": "admin"}),
    Route("members.disable", "POST", lambda o: f"/admin/members/{o.owner.id}/disable", admin_of_a()),
    Route("members.enable", "POST", lambda o: f"/admin/members/{o.owner.id}/enable", admin_of_a()),
    # API keys
    Route("account.api_keys_page", "GET", path("/account/api-keys"), signed_in()),
    Route("account.create_api_key", "POST", path("/account/api-keys"), signed_in(),
          data=lambda o: {"name": "laptop agent"}),
    Route("account.revoke_api_key", "POST", lambda o: f"/account/api-keys/{o.api_key.id}/revoke", owner_only()),
    Route("account.me", "GET", path("/api/me"), signed_in()),
    Route("account.me", "GET", path("/api/me"), signed_in(), auth="key"),
    Route("account.list_api_keys", "GET", path("/api/api-keys"), signed_in()),
    Route("account.delete_api_key", "DELETE", lambda o: f"/api/api-keys/{o.api_key.id}", owner_only()),
    Route("account.delete_api_key", "DELETE", lambda o: f"/api/api-keys/{o.api_key.id}", owner_only(),
          auth="key", csrf_exempt=API_KEY_ONLY),
    # MCP servers: pages
    Route("servers.index", "GET", path("/servers"), signed_in()),
    Route("servers.create", "POST", path("/servers"), signed_in(),
          data=lambda o: {"name": "My new server", "url": f"{NOWHERE}/new/{o.n}", "provider": "", "visibility": "personal"}),
    Route("servers.detect", "GET", lambda o: f"/servers/detect?url={NOWHERE}/mcp", signed_in(), htmx=True),
    Route("servers.detail", "GET", lambda o: f"/servers/{o.server.id}", owner_or_admin()),
    Route("servers.update", "POST", lambda o: f"/servers/{o.server.id}", owner_or_admin(),
          data=lambda o: {"name": f"Renamed {o.n}", "provider": PROVIDER}),
    Route("servers.delete", "POST", lambda o: f"/servers/{o.server.id}/delete", owner_or_admin()),
    Route("servers.test_connection", "POST", lambda o: f"/servers/{o.server.id}/test", owner_or_admin(REACHED),
          htmx=True),
    # MCP servers: JSON API (session cookie, and API key)
    Route("api.list_servers", "GET", path("/api/servers"), signed_in()),
    Route("api.list_servers", "GET", path("/api/servers"), signed_in(), auth="key"),
    Route("api.create_server", "POST", path("/api/servers"), signed_in(),
          json=lambda o: {"name": "From the API", "url": f"{NOWHERE}/api/{o.n}", "provider": None}),
    Route("api.create_server", "POST", path("/api/servers"), signed_in(), auth="key", csrf_exempt=API_KEY_ONLY,
          json=lambda o: {"name": "From an agent", "url": f"{NOWHERE}/agent/{o.n}", "provider": None}),
    Route("api.get_server", "GET", lambda o: f"/api/servers/{o.server.id}", owner_or_admin()),
    Route("api.get_server", "GET", lambda o: f"/api/servers/{o.server.id}", owner_or_admin(), auth="key"),
    Route("api.update_server", "PATCH", lambda o: f"/api/servers/{o.server.id}", owner_or_admin(),
          json=lambda o: {"name": f"Patched {o.n}"}),
    Route("api.update_server", "PATCH", lambda o: f"/api/servers/{o.server.id}", owner_or_admin(),
          json=lambda o: {"name": f"Patched by key {o.n}"}, auth="key", csrf_exempt=API_KEY_ONLY),
    Route("api.delete_server", "DELETE", lambda o: f"/api/servers/{o.server.id}", owner_or_admin()),
    Route("api.delete_server", "DELETE", lambda o: f"/api/servers/{o.server.id}", owner_or_admin(),
          auth="key", csrf_exempt=API_KEY_ONLY),
    Route("api.list_tools", "GET", lambda o: f"/api/servers/{o.server.id}/tools", owner_or_admin(REACHED)),
    Route("api.call_tool", "POST", lambda o: f"/api/servers/{o.server.id}/tools/echo", owner_or_admin(REACHED),
          json=lambda o: {"text": "hi"}),
    Route("api.call_tool", "POST", lambda o: f"/api/servers/{o.server.id}/tools/echo", owner_or_admin(REACHED),
          json=lambda o: {"text": "hi"}, auth="key", csrf_exempt=API_KEY_ONLY),
    # OAuth connections: the seed's endpoints and the Settings page (connections are personal)
    Route("oauth.authorize", "POST", path("/auth/oauth/authorize"), owner_only(),
          json=lambda o: {"server_id": o.server.id, "provider": PROVIDER}),
    Route("oauth.authorize", "POST", path("/auth/oauth/authorize"), owner_only(),
          data=lambda o: {"server_id": str(o.server.id)}, htmx=True),
    Route("oauth.authorize", "POST", path("/auth/oauth/authorize"), owner_only(),
          data=lambda o: {"server_id": str(o.server.id), "provider": PROVIDER}),
    Route("oauth.callback", "GET", path("/auth/oauth/callback?state=not-a-state&code=not-a-code"), everyone()),
    Route("oauth.status", "GET", path("/auth/oauth/status"), signed_in()),
    Route("oauth.revoke", "DELETE", lambda o: f"/auth/oauth/tokens/{o.server.id}?provider={PROVIDER}", owner_only()),
    Route("settings.index", "GET", path("/settings"), signed_in()),
    Route("settings.status", "GET", path("/settings/status"), signed_in(), htmx=True),
    Route("settings.refresh", "POST", lambda o: f"/settings/connections/{o.server.id}/refresh", owner_only(),
          data=lambda o: {"provider": PROVIDER}),
    Route("settings.revoke", "POST", lambda o: f"/settings/connections/{o.server.id}/revoke", owner_only(),
          data=lambda o: {"provider": PROVIDER}, htmx=True),
    # audit
    Route("audit.index", "GET", path("/audit"), signed_in()),
    Route("audit.index", "GET", path("/audit?outcome=success"), signed_in(), htmx=True),
    Route("audit.export_csv", "GET", path("/audit/export.csv"), signed_in()),
    Route("audit.export_jsonl", "GET", path("/audit/export.jsonl"), signed_in()),
]


# --- the world: two teams, four users, A's objects ----------------------------------------------

SECRET_MARK = "SEKRIT"  # every seeded token contains this, so a leak is easy to spot


@dataclass
class Objects:
    """A fresh set of A's objects for one case.

    ``secrets``: token material no response may carry. ``markers``: text naming A's private
    things, with the roles allowed to see it.
    """

    world: "World"
    n: int
    owner: object = None
    server: object = None
    connection: object = None
    invite: object = None
    invite_token: str = None
    api_key: object = None
    api_key_plaintext: str = None
    secrets: list = field(default_factory=list)
    markers: dict = field(default_factory=dict)

    def hidden_from(self, role):
        return [marker for marker, roles in self.markers.items() if role not in roles]


class World:
    """Team A (admin, owner, teammate) and team O (other_admin), each signed in once.

    ``client(role)`` is a fresh test client with that role's session cookie (or, for
    ``auth="key"``, none); ``token(role)`` the CSRF token of the session; ``key(role)`` the
    role's API key. ``fresh()`` makes new objects of A; ``repair()`` undoes what a case did to
    the users (password, role, disabled, sessions, keys) so the next case starts alike.
    """

    def __init__(self, app):
        from portal import accounts
        from portal.models import Team

        self.app = app
        self.team_a, self.team_o = Team(name="Team A"), Team(name="Team O")
        db.session.add_all([self.team_a, self.team_o])
        make = accounts.create_user
        self.users = {
            ADMIN: make(self.team_a, "admin@a.test", "Ada Admin", PASSWORD, role="admin"),
            OWNER: make(self.team_a, "owner@a.test", "Olga Owner", PASSWORD),
            TEAMMATE: make(self.team_a, "teammate@a.test", "Tom Teammate", PASSWORD),
            OTHER_ADMIN: make(self.team_o, "admin@o.test", "Otto Other", PASSWORD, role="admin"),
        }
        db.session.commit()
        self.originals = {role: self._user_state(user) for role, user in self.users.items()}
        self.secrets = [self._seed_provider_secret()]
        self.sessions = {role: self._sign_in(role) for role in ROLES}
        self.keys = {}
        for role in self.users:
            self._new_key(role)
        self.counter = 0
        db.session.commit()

    @staticmethod
    def _user_state(user):
        return {"password_hash": user.password_hash, "role": user.role, "disabled": user.disabled}

    def _seed_provider_secret(self):
        from portal.providers import settings

        secret = f"client-{SECRET_MARK}-provider-secret-0001"
        settings.set_credentials(self.team_a.id, PROVIDER, "team-a-client.apps.test", secret,
                                 actor=self.users[ADMIN])
        settings.set_enabled(self.team_a.id, PROVIDER, True, actor=self.users[ADMIN])
        db.session.commit()
        self.provider_row = self._provider_row()
        return secret

    def _provider_row(self):
        from portal.models import ProviderSetting

        row = db.session.execute(select(ProviderSetting.__table__).where(
            ProviderSetting.team_id == self.team_a.id, ProviderSetting.provider == PROVIDER)).mappings().one()
        return {key: row[key] for key in ("enabled", "client_id", "client_secret", "version")}

    def _sign_in(self, role):
        client = self.app.test_client()
        if role != ANONYMOUS:
            response = client.submit("/login", {"email": self.users[role].email, "password": PASSWORD})
            assert response.status_code == 303, f"{role} could not sign in ({response.status_code})"
        token = client.csrf_token("/login" if role == ANONYMOUS else "/account")
        cookie = client.get_cookie(self.app.config["SESSION_COOKIE_NAME"])
        version = None if role == ANONYMOUS else self._version(role)
        db.session.rollback()
        return {"cookie": cookie.value, "token": token, "version": version}

    def _version(self, role):
        from portal.models import User

        return db.session.scalar(select(User.session_version).where(User.id == self.users[role].id))

    def _new_key(self, role):
        from portal import api_keys

        db.session.rollback()
        key, plaintext = api_keys.create(self.users[role], f"{role} matrix key")
        db.session.commit()
        self.keys[role] = (key.id, plaintext)

    def client(self, role, auth="session"):
        client = self.app.test_client()
        if auth == "session":
            client.set_cookie(self.app.config["SESSION_COOKIE_NAME"], self.sessions[role]["cookie"])
        return client

    def token(self, role):
        return self.sessions[role]["token"]

    def key(self, role):
        return self.keys[role][1] if role in self.keys else "mcpp_00000000_" + "0" * 64

    def fresh(self):
        """New objects of A: a personal server with a connection, an invite, an API key."""
        from portal import api_keys, invites, servers

        db.session.rollback()  # start from the latest data: SQLite refuses a write on a stale read
        self.counter += 1
        owner, admin = self.users[OWNER], self.users[ADMIN]
        o = Objects(world=self, n=self.counter, owner=owner)
        o.server = servers.create_server(owner, name=f"Olga private server {o.n}", url=f"{NOWHERE}/u/{o.n}/mcp",
                                         provider=PROVIDER)
        o.connection = self._connection(o, owner, o.server)
        o.invite, o.invite_token = invites.create(admin, f"invitee{o.n}@a.test", "member")
        o.api_key, o.api_key_plaintext = api_keys.create(owner, f"Olga agent key {o.n}")
        db.session.commit()
        o.secrets += [o.invite_token, o.api_key_plaintext, *self.secrets, *(k for _, k in self.keys.values())]
        o.markers = {
            o.server.name: {OWNER, ADMIN},
            o.connection.account_label: {OWNER, ADMIN},
            o.invite.email: {ADMIN},
            o.api_key.name: {OWNER, ADMIN},  # the admin reads key names in the team's audit trail
        }
        return o

    def _connection(self, o, owner, server):
        from portal.crypto import seal_field
        from portal.models import Connection, utcnow

        connection = Connection(user_id=owner.id, server_id=server.id, provider=PROVIDER, status="connected",
                                scope="mail.read", account_label=f"olga.mailbox{o.n}@example.test",
                                expires_at=utcnow() + timedelta(hours=1))
        db.session.add(connection)
        db.session.flush()
        access = f"access-{SECRET_MARK}-{server.id}-{'a' * 20}"
        refresh = f"refresh-{SECRET_MARK}-{server.id}-{'r' * 20}"
        seal_field(connection, "access_token", access)
        seal_field(connection, "refresh_token", refresh)
        o.secrets += [access, refresh]
        return connection

    def repair(self):
        """Put users and team A's provider back as created; sign a role in again if its session
        ended; retire the case's API keys."""
        from portal.models import ApiKey, ProviderSetting, User, utcnow

        db.session.rollback()
        for role, user in self.users.items():
            db.session.execute(update(User).where(User.id == user.id).values(**self.originals[role]))
        db.session.execute(update(ProviderSetting).where(
            ProviderSetting.team_id == self.team_a.id, ProviderSetting.provider == PROVIDER).values(**self.provider_row))
        role_keys = [key_id for key_id, _ in self.keys.values()]
        db.session.execute(update(ApiKey).where(ApiKey.id.not_in(role_keys), ApiKey.revoked_at.is_(None))
                           .values(revoked_at=utcnow()))
        db.session.commit()
        for role in self.users:
            if self._version(role) != self.sessions[role]["version"]:
                self.sessions[role] = self._sign_in(role)
            revoked = db.session.scalar(select(ApiKey.revoked_at).where(ApiKey.id == self.keys[role][0]))
            if revoked is not None:
                self._new_key(role)
        db.session.rollback()


# --- calling a route and judging the answer ---------------------------------------------------

def call(world, route, role, objects, csrf=True):
    """Send ``route`` as ``role`` on ``objects``; with ``csrf=False`` the token is left out."""
    client = world.client(role, route.auth)
    headers = {}
    if route.auth == "key":
        headers["Authorization"] = f"Bearer {world.key(role)}"
    if route.htmx:
        headers["HX-Request"] = "true"
    if route.method in STATE_CHANGING and csrf and route.auth == "session":
        headers["X-CSRFToken"] = world.token(role)
    kwargs = {}
    if route.json is not None:
        kwargs["json"] = route.json(objects)
    elif route.data is not None or route.method in STATE_CHANGING:
        kwargs["data"] = dict(route.data(objects) if route.data else {})
    response = client.open(route.url(objects), method=route.method, headers=headers, **kwargs)
    response.get_data()  # read a streamed body now, as a browser would, while the case runs
    return response


def outcome(app, response):
    """OK, LOGIN, or the status as text. The sign-in redirect is told apart from a view that
    redirects to /login on purpose (sign out) by the "please sign in" flash it carries."""
    status = response.status_code
    if status == 401:
        return LOGIN
    if 300 <= status < 400:
        location = urlsplit(response.headers.get("Location", ""))
        flashes = [message for _, message in session_data(app, response).get("_flashes", [])]
        if location.path == "/login" and app.login_manager.login_message in flashes:
            return LOGIN
        return OK
    if 200 <= status < 300:
        return OK
    return str(status)


def matches(got, wanted):
    if wanted == REACHED:
        return got not in (LOGIN, NOT_FOUND, FORBIDDEN)
    return got == wanted


def session_data(app, response):
    """The Flask session the response sets (decoded with the app's own serializer), or {}."""
    name = app.config["SESSION_COOKIE_NAME"]
    for header in response.headers.getlist("Set-Cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        if name in cookie and cookie[name].value:
            serializer = app.session_interface.get_signing_serializer(app)
            return dict(serializer.loads(cookie[name].value))
    return {}


def response_text(response):
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return headers + "\n\n" + response.get_data(as_text=True)


def leaks(response, secrets):
    """The secrets found anywhere in the response (headers or body)."""
    found = response_text(response)
    return [secret for secret in secrets if secret and secret in found]


def snapshot():
    """Every row of every table but the audit trail, for "nothing changed" checks."""
    db.session.rollback()
    tables = {}
    for name in sorted(inspect(db.engine).get_table_names()):
        if name in ("audit_events", "audit_chain_head", "alembic_version"):
            continue
        rows = db.session.execute(text(f"SELECT * FROM {name}")).mappings().all()
        tables[name] = sorted(tuple(sorted((k, str(v)) for k, v in row.items())) for row in rows)
    db.session.rollback()
    return tables


def check(world, route, role):
    """One case: fresh objects, one request; the problems found (empty when all is well)."""
    objects = world.fresh()
    before = snapshot()
    response = call(world, route, role, objects)
    problems = []
    got, wanted = outcome(world.app, response), route.expect[role]
    name = f"{route.name} as {role}"
    if not matches(got, wanted):
        problems.append(f"{name}: expected {wanted}, got {response.status_code} ({got})")
    if response.status_code == 500:
        problems.append(f"{name}: server error")
    allowed = set(route.shows(objects)) if route.shows else set()
    secrets = [secret for secret in objects.secrets if secret not in allowed]
    problems += [f"{name}: response carries token material {s[:14]}…" for s in leaks(response, secrets)]
    shown = response_text(response)
    problems += [f"{name}: shows {marker!r}" for marker in objects.hidden_from(role)
                 if marker in shown and marker not in allowed]
    if got in (LOGIN, NOT_FOUND, FORBIDDEN) and snapshot() != before:
        problems.append(f"{name}: refused ({got}) but the database changed")
    world.repair()
    return problems


def rule_keys(app):
    """(endpoint, method) for every rule in the url_map but ``static``; HEAD/OPTIONS are implied."""
    keys = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static":
            keys |= {(rule.endpoint, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return keys


def world_config(app_config):
    app_config["EXTRA_PROVIDERS"] = [PeerProvider(NOWHERE, name=PROVIDER, title="Matrix Mail")]
    return app_config


@pytest.fixture
def world(app_config, request):
    world_config(app_config)
    return World(request.getfixturevalue("app"))


# --- tests ------------------------------------------------------------------------------------

def test_every_route_is_in_the_matrix(app):
    listed = {route.key for route in ROUTES}
    missing = sorted(rule_keys(app) - listed)
    assert not missing, "routes missing from ROUTES in tests/test_access_matrix.py: " + ", ".join(
        f"{method} {endpoint}" for endpoint, method in missing)
    stale = sorted(listed - rule_keys(app))
    assert not stale, "ROUTES lists routes the app does not have: " + ", ".join(
        f"{method} {endpoint}" for endpoint, method in stale)


def test_every_route_expects_every_role():
    for route in ROUTES:
        assert set(route.expect) == set(ROLES), f"{route.name} misses a role"
        assert route.csrf_exempt is None or route.auth == "key", f"{route.name}: only API-key calls skip CSRF"


@pytest.mark.parametrize("role", ROLES)
def test_route_access_matches_matrix(world, role):
    problems = []
    for route in ROUTES:
        problems += check(world, route, role)
    assert not problems, "\n".join(problems)


def test_matrix_reports_a_wrong_expectation(world):
    """The harness can fail: an admin-only page expected open to a member is reported."""
    route = Route("admin.plugins", "GET", path("/admin/plugins"), expect(LOGIN, OK, OK, OK, OK))
    assert check(world, route, OWNER) == ["GET admin.plugins as owner: expected ok, got 404 (404)"]


def test_matrix_reports_private_names_and_token_material(world, app):
    objects = world.fresh()
    response = app.response_class(f"<p>{objects.server.name}</p><p>{objects.secrets[0]}</p>")
    assert leaks(response, objects.secrets) == [objects.secrets[0]]
    assert objects.server.name in objects.hidden_from(TEAMMATE)
    assert objects.server.name not in objects.hidden_from(ADMIN)
