"""Tokens never reach the browser (SECURITY 17): crawl every page in every role.

Known secrets are seeded the way they arrive in real life: a provider client secret typed into
the admin Plugins form, an OAuth flow started (its state and sealed PKCE verifier), a connection
whose tokens are sealed with ``crypto.seal_field``, invite links and API keys created on their
pages (shown once, in the POST answer, which is not crawled). Then each role crawls: every GET
rule of the url_map with URLs built from A's objects (``ROUTES`` in test_access_matrix.py),
every link, ``hx-get`` and GET form found in the pages (also as HTMX fragments), every
redirect. No secret may appear in a body, a header, the session cookie, or the session's
decoded content.
"""
import json
import re
from dataclasses import replace
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from sqlalchemy import select

from portal.extensions import db
from tests.access_world import ADMIN, ANONYMOUS, OWNER, PROVIDER, ROLES, call, response_text
from tests.test_access_matrix import ROUTES

MAX_PAGES = 250
PAGE_SECRET = "page-typed-SEKRIT-client-secret-7f3e"
LINK_TOKEN = re.compile(r"/invite/([A-Za-z0-9_-]{43})")
API_KEY = re.compile(r"mcpp_[0-9a-f]{8}_[0-9a-f]{64}")


class Links(HTMLParser):
    """Same-site GET targets in a page: href, hx-get, and the action of GET forms."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("a", "link") and attrs.get("href"):
            self.found.append((attrs["href"], False))
        if attrs.get("hx-get"):
            self.found.append((attrs["hx-get"], True))
        if tag == "form" and (attrs.get("method") or "get").lower() == "get" and attrs.get("action"):
            self.found.append((attrs["action"], False))


def links_in(base, html):
    parser = Links()
    parser.feed(html)
    targets = []
    for link, htmx in parser.found:
        parts = urlsplit(urljoin("http://localhost" + base, link))
        if parts.netloc == "localhost" and not parts.path.startswith("/static/"):
            targets.append((parts.path + (f"?{parts.query}" if parts.query else ""), htmx))
    return targets


class Seeds:
    """The secrets of the crawl, and the one place each may legitimately be shown."""

    def __init__(self, world):
        self.world = world
        self.objects = world.fresh()
        self.secrets = list(self.objects.secrets) + [PAGE_SECRET]
        self.allowed_at = {self.objects.invite_token: f"/invite/{self.objects.invite_token}"}
        self._type_provider_secret()
        self._create_on_pages()
        self._start_oauth_flow()

    def _type_provider_secret(self):
        """The admin types a client secret into the Plugins form (installed Gmail plugin)."""
        response = self.world.client(ADMIN).post("/admin/plugins/gmail/credentials", headers=self._csrf(ADMIN),
                                                 data={"client_id": "crawl.apps.googleusercontent.com",
                                                       "client_secret": PAGE_SECRET})
        assert response.status_code == 303, response.status_code

    def _create_on_pages(self):
        """An invite link and an API key, created on their pages; each shown once, then secret."""
        page = self.world.client(ADMIN).post("/admin/members/invites", headers=self._csrf(ADMIN),
                                             data={"email": "crawl-invitee@a.test", "role": "member"})
        token = LINK_TOKEN.search(page.get_data(as_text=True)).group(1)
        self.secrets.append(token)
        self.allowed_at[token] = f"/invite/{token}"
        page = self.world.client(OWNER).post("/account/api-keys", headers=self._csrf(OWNER), data={"name": "crawler"})
        self.secrets.append(API_KEY.search(page.get_data(as_text=True)).group(0))

    def _start_oauth_flow(self):
        """The owner starts connecting: the state went to the provider; the verifier never leaves."""
        from portal.crypto import open_field
        from portal.models import OAuthState

        response = self.world.client(OWNER).post("/auth/oauth/authorize", headers=self._csrf(OWNER),
                                                 json={"server_id": self.objects.server.id, "provider": PROVIDER})
        assert response.status_code == 200, response.get_data(as_text=True)
        self.secrets.append(response.get_json()["state"])
        db.session.rollback()
        row = db.session.scalar(select(OAuthState).order_by(OAuthState.id.desc()).limit(1))
        self.secrets.append(open_field(row, "code_verifier"))
        db.session.rollback()

    def _csrf(self, role):
        return {"X-CSRFToken": self.world.token(role)}

    def leaks(self, path, text):
        return [secret for secret in self.secrets
                if secret in text and not path.startswith(self.allowed_at.get(secret, "\0"))]


def session_text(app, client):
    """The raw session cookie and its decoded content, as one text to search."""
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    if cookie is None or not cookie.value:
        return ""
    data = app.session_interface.get_signing_serializer(app).loads(cookie.value)
    return cookie.value + "\n" + json.dumps(data, default=str)


def crawl(world, seeds, role):
    """Visit everything reachable as ``role``; returns (visited paths, problems)."""
    app = world.app
    client = world.client(role)
    queue = [(route.url(seeds.objects), route.htmx) for route in ROUTES if route.method == "GET"]
    seen, problems, visited = set(), [], []
    while queue and len(seen) < MAX_PAGES:
        target, htmx = queue.pop(0)
        if (target, htmx) in seen:
            continue
        seen.add((target, htmx))
        response = client.get(target, headers={"HX-Request": "true"} if htmx else {})
        text = response_text(response) + "\n" + session_text(app, client)
        problems += [f"{role} GET {target}{' (HTMX)' if htmx else ''}: carries {s[:16]}…"
                     for s in seeds.leaks(target, text)]
        if response.status_code == 500:
            problems.append(f"{role} GET {target}: server error")
        visited.append((target, response.status_code))
        if 300 <= response.status_code < 400:
            queue.append((urlsplit(response.headers["Location"])._replace(scheme="", netloc="").geturl(), False))
        if response.mimetype == "text/html":
            queue += links_in(urlsplit(target).path, response.get_data(as_text=True))
    return visited, problems


def key_crawl(world, seeds, role):
    """Every JSON GET as an agent host sees it, with the role's API key instead of a cookie."""
    problems = []
    for route in ROUTES:
        if route.method == "GET" and route.url(seeds.objects).startswith("/api/"):
            response = call(world, replace(route, auth="key"), role, seeds.objects)
            problems += [f"{role} API key GET {route.url(seeds.objects)}: carries {s[:16]}…"
                         for s in seeds.leaks("/api", response_text(response))]
    return problems


@pytest.fixture
def seeds(world):
    return Seeds(world)


@pytest.mark.parametrize("role", ROLES)
def test_crawl_finds_no_secret(world, seeds, role):
    visited, problems = crawl(world, seeds, role)
    problems += key_crawl(world, seeds, role)
    assert not problems, "\n".join(problems)
    assert len(visited) >= len([r for r in ROUTES if r.method == "GET"]) // 2


def test_crawl_reaches_the_pages_that_hold_the_secrets(world, seeds):
    """Not vacuous: the owner's crawl shows the connection, the admin's the plugin and invites."""
    visited, _ = crawl(world, seeds, OWNER)
    paths = {path.split("?")[0] for path, status in visited if status == 200}
    assert {"/settings", "/settings/status", "/account/api-keys", "/auth/oauth/status", "/api/servers",
            f"/servers/{seeds.objects.server.id}"} <= paths
    owner_pages = world.client(OWNER).get("/settings").get_data(as_text=True)
    assert seeds.objects.server.name in owner_pages
    by_key = world.client(OWNER, auth="key").get("/api/servers", headers={"Authorization": f"Bearer {world.key(OWNER)}"})
    assert by_key.status_code == 200 and seeds.objects.server.name in by_key.get_data(as_text=True)
    visited, _ = crawl(world, seeds, ADMIN)
    paths = {path.split("?")[0] for path, status in visited if status == 200}
    assert {"/admin/plugins", "/admin/members", "/audit"} <= paths
    assert "crawl.apps.googleusercontent.com" in world.client(ADMIN).get("/admin/plugins").get_data(as_text=True)


def test_crawl_reports_a_secret_in_a_page(world, seeds):
    """The check can fail: a secret rendered into a page is caught."""
    assert seeds.leaks("/settings", f"<p>{seeds.secrets[0]}</p>") == [seeds.secrets[0]]
    assert seeds.leaks(f"/invite/{seeds.objects.invite_token}", seeds.objects.invite_token) == []
    assert seeds.leaks("/settings", seeds.objects.invite_token) == [seeds.objects.invite_token]


def test_session_cookie_of_a_signed_in_user_holds_no_secret(world, seeds):
    for role in ROLES:
        client = world.client(role)
        client.get("/settings")
        assert session_text(world.app, client) or role == ANONYMOUS, role
        assert not seeds.leaks("/", session_text(world.app, client)), role
