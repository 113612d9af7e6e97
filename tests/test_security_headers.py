"""Browser-facing hardening (SECURITY 22, 25): CSP, no inline code or style, htmx locked down,
the vendored htmx file as pinned, cookies HttpOnly and SameSite=Lax (Secure in production).

Pages come from every call in ``ROUTES`` (test_access_matrix.py): every GET in every role,
plain and as HTMX fragments, and the pages state-changing calls answer with (form errors, the
once-shown invite link and API key), plus error pages.
"""
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from portal import ROOT
from portal.extensions import db
from tests.conftest import PASSWORD
from tests.access_world import ROLES, STATE_CHANGING, call
from tests.test_access_matrix import ROUTES
from tests.test_csrf_routes import acting_role

STATIC = ROOT / "portal" / "static"
UNSAFE = ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "'wasm-unsafe-eval'", "data:", "*")


def csp(response):
    """The Content-Security-Policy as {directive: [sources]}."""
    policy = {}
    for part in response.headers.get("Content-Security-Policy", "").split(";"):
        words = part.split()
        if words:
            policy[words[0]] = words[1:]
    return policy


class Inline(HTMLParser):
    """Finds inline code and style: script bodies, scripts without src, style elements and
    attributes, on* handlers, hx-on, javascript: URLs; and the htmx-config meta."""

    def __init__(self):
        super().__init__()
        self.problems, self.config, self._script = [], None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self._script = True
            if not attrs.get("src"):
                self.problems.append("<script> without src")
        if tag == "style":
            self.problems.append("<style> element")
        for name, value in attrs.items():
            if name == "style" or name.startswith("on") or name.startswith(("hx-on", "data-hx-on")):
                self.problems.append(f"<{tag} {name}=…>")
            if value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=javascript:…>")
        if tag == "meta" and attrs.get("name") == "htmx-config":
            self.config = json.loads(attrs.get("content") or "{}")

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = False

    def handle_data(self, data):
        if self._script and data.strip():
            self.problems.append("inline <script> body")


def scan(html):
    parser = Inline()
    parser.feed(html)
    return parser


def page_problems(label, response):
    """Everything wrong with one answer: headers always, markup when it is HTML."""
    problems = []
    policy = csp(response)
    if not policy:
        return [f"{label}: no Content-Security-Policy"]
    for directive in ("script-src", "style-src", "default-src"):
        sources = policy.get(directive, policy.get("default-src", []))
        if any(source in UNSAFE for source in sources):
            problems.append(f"{label}: {directive} {' '.join(sources)}")
    for directive, wanted in (("frame-ancestors", ["'none'"]), ("object-src", ["'none'"]), ("base-uri", ["'none'"])):
        if policy.get(directive) != wanted:
            problems.append(f"{label}: {directive} is {policy.get(directive)}")
    if response.headers.get("X-Content-Type-Options") != "nosniff":
        problems.append(f"{label}: no X-Content-Type-Options: nosniff")
    if response.mimetype == "text/html":
        html = response.get_data(as_text=True)
        parsed = scan(html)
        problems += [f"{label}: {problem}" for problem in parsed.problems]
        if "<html" in html.lower() and not response.status_code // 100 == 3:  # not werkzeug's redirect note
            problems += [f"{label}: {p}" for p in config_problems(parsed.config)]
    return problems


def config_problems(config):
    if config is None:
        return ["no htmx-config meta"]
    wanted = {"allowEval": False, "selfRequestsOnly": True, "allowScriptTags": False}
    return [f"htmx-config {key}={config.get(key)!r}" for key, value in wanted.items() if config.get(key) is not value]


# --- pages --------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ROLES)
def test_pages_and_fragments_have_csp_and_no_inline_code(world, role):
    objects = world.fresh()
    problems = []
    for route in ROUTES:
        if route.method != "GET":
            continue
        response = call(world, route, role, objects)
        problems += page_problems(f"{route.name} as {role} ({response.status_code})", response)
        if not route.htmx and response.mimetype == "text/html":
            fragment = world.client(role).get(route.url(objects), headers={"HX-Request": "true"})
            problems += page_problems(f"{route.name} as {role} as HTMX", fragment)
    assert not problems, "\n".join(problems)


def test_pages_answered_to_form_posts_have_csp_and_no_inline_code(world):
    problems = []
    for route in ROUTES:
        if route.method in STATE_CHANGING:
            role = acting_role(route)
            response = call(world, route, role, world.fresh())
            problems += page_problems(f"{route.name} as {role} ({response.status_code})", response)
            world.repair()
    assert not problems, "\n".join(problems)


def test_error_pages_have_csp_and_no_inline_code(world):
    client = world.client("owner")
    answers = {
        "404 page": client.get("/no/such/page"),
        "404 object": client.get("/servers/999999"),
        "405": client.put("/login"),
        "CSRF 400": client.post("/account/logout-everywhere"),
        "CSRF 400 HTMX": client.post("/account/logout-everywhere", headers={"HX-Request": "true"}),
        "401 JSON": world.client("anonymous").get("/api/servers"),
        "413": client.post("/account/api-keys", data={"name": "x" * (2 * 1024 * 1024)},
                           headers={"X-CSRFToken": world.token("owner")}),
    }
    problems = []
    for label, response in answers.items():
        assert response.status_code in (400, 401, 404, 405, 413), (label, response.status_code)
        problems += page_problems(label, response)
    assert not problems, "\n".join(problems)


def test_scanner_finds_inline_code():
    """The scanner can fail: each kind of inline code or style is reported."""
    html = ('<script>alert(1)</script><script src="/x.js"></script><p style="color:red" onclick="x()">'
            '<a href="javascript:void(0)" hx-on:click="y">a</a><style>p{}</style>')
    assert sorted(scan(html).problems) == sorted([
        "inline <script> body", "<script> without src", "<p style=…>", "<p onclick=…>",
        "<a href=javascript:…>", "<a hx-on:click=…>", "<style> element"])
    assert config_problems({"allowEval": True, "selfRequestsOnly": True, "allowScriptTags": False}) == [
        "htmx-config allowEval=True"]


# --- the vendored htmx file ---------------------------------------------------------------------

def lock_entries():
    lines = (STATIC / "vendor" / "htmx.lock").read_text().splitlines()
    return [line.split() for line in lines if line.strip() and not line.startswith("#")]


def test_vendored_htmx_matches_its_lock():
    entries = lock_entries()
    assert entries, "htmx.lock lists nothing"
    for package, version, _source, filename, sha256 in entries:
        data = (STATIC / "vendor" / filename).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha256, f"{filename} differs from the lock ({package} {version})"
        assert version.encode() in data[:2000] or version in filename


def test_pages_load_the_locked_htmx_file_and_nothing_else(client):
    html = client.get("/login").get_data(as_text=True)
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', html)
    assert scripts == [f"/static/vendor/{lock_entries()[0][3]}"]
    vendored = {path.name for path in (STATIC / "vendor").iterdir()}
    assert vendored == {"htmx.lock"} | {entry[3] for entry in lock_entries()}


# --- cookies ------------------------------------------------------------------------------------

def cookie_attributes(response, name):
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(name + "="):
            return {part.strip().split("=")[0].lower(): part.strip() for part in header.split(";")[1:]}
    raise AssertionError(f"no {name} cookie set")


def test_session_and_remember_cookies_are_httponly_and_lax(app, client, member):
    token = client.csrf_token("/login")
    response = client.post("/login", data={"email": member.email, "password": PASSWORD, "remember": "on",
                                           "csrf_token": token})
    assert response.status_code == 303
    for name in (app.config["SESSION_COOKIE_NAME"], app.config.get("REMEMBER_COOKIE_NAME", "remember_token")):
        attributes = cookie_attributes(response, name)
        assert "httponly" in attributes, name
        assert attributes.get("samesite", "").lower() == "samesite=lax", name
        assert "secure" not in attributes, f"{name}: Secure outside production breaks http://127.0.0.1"


def test_cookies_are_secure_in_production(app_config):
    from portal import create_app
    from tests.support import PortalClient

    app = create_app({**app_config, "PORTAL_ENV": "production", "FRONTEND_URL": "https://portal.example.test",
                      "OAUTH_REDIRECT_URI": "https://portal.example.test/auth/oauth/callback"})
    app.test_client_class = PortalClient
    client = app.test_client()
    response = client.get("/login", base_url="https://portal.example.test")
    attributes = cookie_attributes(response, app.config["SESSION_COOKIE_NAME"])
    assert {"secure", "httponly"} <= set(attributes)
    assert attributes["samesite"].lower() == "samesite=lax"
    assert app.config["REMEMBER_COOKIE_SECURE"] is True
    with app.app_context():
        db.engine.dispose()


def test_csp_allows_only_own_scripts(client):
    policy = csp(client.get("/login"))
    assert policy["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy.get("style-src", [])
    assert Path(STATIC / "portal.css").exists()
