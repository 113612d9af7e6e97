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

The world (roles, A's objects, calling and judging) is tests/access_world.py; the table is
also read by test_csrf_routes.py, test_secret_crawl.py and test_security_headers.py.
"""
import pytest

from tests.access_world import (
    ADMIN, ANONYMOUS, FORBIDDEN, LOGIN, NOT_FOUND, NOWHERE, OK, OTHER_ADMIN, OWNER, PROVIDER, REACHED, ROLES,
    TEAMMATE, Route, call, leaks, matches, outcome, path, response_text, rule_keys, snapshot,
)
from tests.conftest import PASSWORD


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


def check(world, route, role):
    """One case: fresh objects, one request; the problems found (empty when all is well)."""
    objects = world.fresh()
    before = snapshot()
    response = call(world, route, role, objects)
    problems = judge(world, route, role, objects, response)
    if outcome(world.app, response) in (LOGIN, NOT_FOUND, FORBIDDEN) and snapshot() != before:
        problems.append(f"{route.name} as {role}: refused but the database changed")
    world.repair()
    return problems


def judge(world, route, role, objects, response):
    """What is wrong with one answer: outcome, server error, token material, private names."""
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
    return problems


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


def test_answers_do_not_carry_over_between_roles(world):
    """Every GET as the owner, then at once as each other role, in one process: nothing the
    owner was shown (cached pages or fragments included) reaches the others."""
    objects = world.fresh()
    problems = []
    for route in ROUTES:
        if route.method == "GET":
            for role in (OWNER, TEAMMATE, OTHER_ADMIN, ANONYMOUS, ADMIN, TEAMMATE):
                problems += judge(world, route, role, objects, call(world, route, role, objects))
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
