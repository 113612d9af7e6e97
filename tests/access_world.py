"""The world the cross-cutting tests share: two teams, four signed-in users, member A's objects,
and how to call a route as a role and judge the answer.

Used by test_access_matrix.py (whose ``ROUTES`` table lists every route), test_csrf_routes.py,
test_secret_crawl.py and test_security_headers.py through the ``world`` fixture (conftest.py).
"""
from dataclasses import dataclass, field
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Callable
from urllib.parse import urlsplit

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


@dataclass(frozen=True)
class Route:
    """One way to call (endpoint, method) on A's objects, and what each role gets.

    ``url``, ``data`` and ``json`` take the case's ``Objects``. ``auth="key"`` sends the role's
    API key instead of its session cookie (anonymous sends an unknown key). ``csrf_exempt`` says why a state-changing call may
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
