"""CSRF on every state-changing route, and no GET that changes state (SECURITY 24).

The calls come from ``ROUTES`` in test_access_matrix.py, which must list every rule of the
url_map (that test fails on a missing one). A state-changing call made with the session cookie
but without the token is refused with 400 and the "security token" message, and changes
nothing. The only calls that skip the token are the ``csrf_exempt`` ones: API-key requests,
which carry no cookie (a cross-site form cannot set ``Authorization``).
"""
import pytest
from sqlalchemy import func, select

from portal.extensions import db
from tests.access_world import (
    ADMIN, ANONYMOUS, OK, OWNER, REACHED, ROLES, STATE_CHANGING, call, matches, outcome, rule_keys, snapshot,
)
from tests.test_access_matrix import ROUTES

CSRF_MESSAGE = "security token"
# GET endpoints that change state by protocol, with the reason. Nothing else may.
GET_CHANGES_STATE = {
    "oauth.callback": "the provider's redirect back is a GET (RFC 6749 4.1.2); state, PKCE and the "
                      "session binding protect it, and its failures are audited",
}
# Columns a read may touch on purpose: when an API key was last used (throttled to once a minute).
BOOKKEEPING = {"api_keys": {"last_used_at"}}
# Audit actions that record a read; none exist yet. Any other event written by a GET is a change.
READ_ACTIONS = set()

SESSION_CHANGES = [r for r in ROUTES if r.method in STATE_CHANGING and r.auth == "session"]
GETS = [r for r in ROUTES if r.method == "GET" and r.endpoint not in GET_CHANGES_STATE]


def acting_role(route):
    """A signed-in role the route would serve, so a refusal can only come from the missing token."""
    for role in (ADMIN, OWNER) + ROLES:
        if role != ANONYMOUS and route.expect[role] in (OK, REACHED):
            return role
    return ADMIN


def without_bookkeeping(tables):
    cleaned = {}
    for name, rows in tables.items():
        skip = BOOKKEEPING.get(name, set())
        cleaned[name] = sorted(tuple(item for item in row if item[0] not in skip) for row in rows)
    return cleaned


def change_events():
    from portal.models import AuditEvent

    query = select(func.count()).select_from(AuditEvent)
    if READ_ACTIONS:
        query = query.where(AuditEvent.action.not_in(READ_ACTIONS))
    count = db.session.scalar(query)
    db.session.rollback()
    return count


def test_every_state_changing_rule_is_tried_with_a_cookie(app):
    """Each POST/PUT/PATCH/DELETE rule has a session-cookie call below, so none escapes."""
    rules = {key for key in rule_keys(app) if key[1] in STATE_CHANGING}
    missing = rules - {route.key for route in SESSION_CHANGES}
    assert not missing, f"add session calls for these to ROUTES in tests/test_access_matrix.py: {sorted(missing)}"


def test_state_changing_routes_reject_a_missing_csrf_token(world):
    problems = []
    for route in SESSION_CHANGES:
        # Signed in, and also signed out where strangers may call it (login CSRF, invite links).
        for role in {acting_role(route)} | ({ANONYMOUS} if route.expect[ANONYMOUS] == OK else set()):
            objects = world.fresh()
            before = snapshot()
            response = call(world, route, role, objects, csrf=False)
            if response.status_code != 400 or CSRF_MESSAGE not in response.get_data(as_text=True):
                problems.append(f"{route.name} as {role} without a CSRF token answered {response.status_code}")
            elif snapshot() != before:
                problems.append(f"{route.name} as {role} changed the database without a CSRF token")
            world.repair()
    assert not problems, "\n".join(problems)


def test_state_changing_routes_serve_the_same_call_with_the_token(world):
    """The other half: with the token the same call is served, so the 400 above is the token's."""
    problems = []
    for route in SESSION_CHANGES:
        role = acting_role(route)
        response = call(world, route, role, world.fresh())
        if not matches(outcome(world.app, response), route.expect[role]):
            problems.append(f"{route.name} as {role} with the token answered {response.status_code}")
        world.repair()
    assert not problems, "\n".join(problems)


def test_cookie_with_api_key_header_still_needs_csrf_token(world):
    """Adding ``Authorization: Bearer <key>`` to a cookie request does not skip CSRF."""
    client = world.client(OWNER)
    response = client.post("/api/servers", json={"name": "sneaky", "url": "https://x.example.test/mcp"},
                           headers={"Authorization": f"Bearer {world.key(OWNER)}"})
    assert response.status_code == 400 and CSRF_MESSAGE in response.get_data(as_text=True)


def test_another_sessions_csrf_token_is_rejected(world):
    client = world.client(OWNER)
    response = client.post("/account/logout-everywhere", headers={"X-CSRFToken": world.token(ADMIN)})
    assert response.status_code == 400 and CSRF_MESSAGE in response.get_data(as_text=True)


@pytest.mark.parametrize("role", ROLES)
def test_get_routes_change_nothing(world, role):
    changes = []
    for route in GETS:
        objects = world.fresh()
        before, events = without_bookkeeping(snapshot()), change_events()
        response = call(world, route, role, objects)
        after = without_bookkeeping(snapshot())
        changed = sorted(name for name in before if before[name] != after.get(name))
        if changed:
            changes.append(f"{route.name} ({response.status_code}) changed rows in {', '.join(changed)}")
        if change_events() != events:
            changes.append(f"{route.name} ({response.status_code}) wrote audit events")
        world.repair()
    assert not changes, f"GET routes that change state as {role}:\n" + "\n".join(changes)


def test_get_state_check_sees_a_change(world):
    """The GET check can fail: a row touched between the snapshots is reported."""
    from portal.models import MCPServer

    world.fresh()
    before = without_bookkeeping(snapshot())
    db.session.execute(MCPServer.__table__.update().values(name="touched"))
    db.session.commit()
    assert without_bookkeeping(snapshot()) != before
