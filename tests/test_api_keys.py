"""Personal API keys: shown once, stored hashed, accepted on /api/ only, revocable."""
import hashlib
import json
import re

import pytest
from sqlalchemy import select

from portal import api_keys
from portal.extensions import db
from portal.models import ApiKey, AuditEvent

KEY = re.compile(r"mcpp_[0-9a-f]{8}_[0-9a-f]{64}")


def create_key(client, name="laptop agent", htmx=False):
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.submit("/account/api-keys", {"name": name}, token_from="/account/api-keys", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return KEY.search(response.get_data(as_text=True)).group(0), response


def rows(statement):
    """Rows as committed now (ends the test's own read snapshot first)."""
    db.session.rollback()
    return db.session.scalars(statement)


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def test_create_api_key_shows_it_once_and_stores_only_hash(client, auth, member):
    auth.login("member@a.test")
    key, response = create_key(client)
    assert response.headers["Cache-Control"] == "no-store"
    row = rows(select(ApiKey)).one()
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key.startswith(f"mcpp_{row.prefix}_") and row.name == "laptop agent"
    page = client.get("/account/api-keys").get_data(as_text=True)
    assert key not in page and f"mcpp_{row.prefix}_" in page and "laptop agent" in page
    event = rows(select(AuditEvent).where(AuditEvent.action == "api_key.created")).one()
    assert json.loads(event.details) == {"prefix": row.prefix} and key[13:] not in event.details


def test_create_api_key_answers_fragment_for_htmx(client, auth, member):
    auth.login("member@a.test")
    key, response = create_key(client, htmx=True)
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<section class="card" id="api-keys">') and "<html" not in html
    assert key in html


def test_api_request_with_key_acts_as_owner_without_csrf(app, client, auth, member):
    auth.login("member@a.test")
    key, _ = create_key(client)
    agent = app.test_client()
    me = agent.get("/api/me", headers=bearer(key))
    assert me.status_code == 200
    assert me.get_json()["email"] == "member@a.test" and me.get_json()["auth"] == "api_key"
    assert agent.get_cookie("portal_session") is None  # an API-key request starts no session
    row = rows(select(ApiKey)).one()
    assert row.last_used_at is not None
    second, _ = create_key(client, "retire me")
    second_id = rows(select(ApiKey.id).where(ApiKey.name == "retire me")).one()
    deleted = agent.delete(f"/api/api-keys/{second_id}", headers=bearer(key))  # no CSRF token: exempt
    assert deleted.status_code == 200 and deleted.get_json()["revoked"] is True
    assert agent.get("/api/me", headers=bearer(second)).status_code == 401


def test_api_key_is_ignored_outside_api(app, client, auth, member):
    auth.login("member@a.test")
    key, _ = create_key(client)
    page = app.test_client().get("/account", headers=bearer(key))
    assert page.status_code == 302 and "/login" in page.location


def test_api_request_with_session_cookie_still_needs_csrf(app, client, auth, member):
    auth.login("member@a.test")
    key, _ = create_key(client)
    key_id = rows(select(ApiKey.id)).first()
    response = client.delete(f"/api/api-keys/{key_id}", headers=bearer(key))
    assert response.status_code == 400 and response.get_json()["error"] == "csrf_failed"
    assert rows(select(ApiKey).where(ApiKey.id == key_id)).one().revoked_at is None


def test_api_request_with_invalid_key_gets_401_not_csrf_error(app, client, auth, member):
    auth.login("member@a.test")
    key, _ = create_key(client)
    agent = app.test_client()
    forged = key[:-4] + ("0000" if not key.endswith("0000") else "1111")
    for value in (forged, "mcpp_zz_nothex", "mcpp_" + "a" * 300):
        for method in ("GET", "DELETE"):
            response = agent.open("/api/api-keys/1", method=method, headers=bearer(value))
            assert response.status_code == 401, (value, method)
            assert response.get_json()["error"] in ("invalid_api_key", "unauthorized")


def test_revoke_api_key_stops_it_at_once(app, client, auth, member):
    auth.login("member@a.test")
    key, _ = create_key(client)
    row = rows(select(ApiKey)).one()
    response = client.submit(f"/account/api-keys/{row.id}/revoke", token_from="/account/api-keys")
    assert response.status_code == 303
    assert "is revoked" in client.get(response.location).get_data(as_text=True)
    assert app.test_client().get("/api/me", headers=bearer(key)).status_code == 401
    event = rows(select(AuditEvent).where(AuditEvent.action == "api_key.revoked")).one()
    assert json.loads(event.details) == {"prefix": row.prefix}
    again = client.submit(f"/account/api-keys/{row.id}/revoke", token_from="/account/api-keys")
    assert again.status_code == 404


def test_revoke_api_key_of_another_user_is_not_found(app, client, auth, admin, member):
    auth.login("member@a.test")
    create_key(client)
    theirs = rows(select(ApiKey)).one()
    auth.logout()
    auth.login("admin@a.test")
    assert client.submit(f"/account/api-keys/{theirs.id}/revoke", token_from="/account/api-keys").status_code == 404
    assert client.send_json(f"/api/api-keys/{theirs.id}", method="DELETE", token_from="/account").status_code == 404
    assert client.submit("/account/api-keys/99999999999/revoke", token_from="/account/api-keys").status_code == 404
    assert rows(select(ApiKey).where(ApiKey.id == theirs.id)).one().revoked_at is None


def test_disable_user_makes_their_keys_fail(app, client, auth, admin, member):
    auth.login("member@a.test")
    key, _ = create_key(client)
    auth.logout()
    auth.login("admin@a.test")
    client.submit(f"/admin/members/{member.id}/disable", token_from="/admin/members")
    assert app.test_client().get("/api/me", headers=bearer(key)).status_code == 401
    client.submit(f"/admin/members/{member.id}/enable", token_from="/admin/members")
    assert app.test_client().get("/api/me", headers=bearer(key)).status_code == 401  # revoked, not paused


def test_authenticate_returns_owner_only_for_active_key(app, client, auth, member):
    auth.login("member@a.test")
    key, _ = create_key(client)
    assert api_keys.authenticate(f"Bearer {key}").id == member.id
    assert api_keys.authenticate(f"bearer   {key} ").id == member.id
    for value in (None, "", key, f"Basic {key}", f"Bearer {key}x", f"Bearer {key.upper()}", "Bearer", 42):
        assert api_keys.authenticate(value) is None


def test_create_api_key_fails_for_bad_names(client, auth, member):
    auth.login("member@a.test")
    for name in ("", "   ", "x" * 121, "tab\there", "nul\x00byte"):
        response = client.submit("/account/api-keys", {"name": name}, token_from="/account/api-keys")
        assert response.status_code == 400, name
    assert rows(select(ApiKey)).all() == []


def test_create_api_key_stops_at_the_limit(client, auth, member):
    auth.login("member@a.test")
    for number in range(api_keys.MAX_ACTIVE_KEYS):
        create_key(client, f"key {number}")
    response = client.submit("/account/api-keys", {"name": "one too many"}, token_from="/account/api-keys")
    assert response.status_code == 409 and "20 active keys" in response.get_data(as_text=True)


def test_list_api_keys_json_shows_metadata_only(app, client, auth, member):
    auth.login("member@a.test")
    key, _ = create_key(client)
    listing = app.test_client().get("/api/api-keys", headers=bearer(key))
    assert listing.status_code == 200
    [item] = listing.get_json()
    assert set(item) == {"id", "name", "prefix", "created_at", "last_used_at"}
    assert key not in listing.get_data(as_text=True)


@pytest.fixture
def api_limit_two(app_config):
    app_config.update(RATELIMIT_ENABLED=True, RATELIMIT_API="2/minute")


def test_api_key_requests_are_rate_limited(api_limit_two, app, client, auth, member):
    auth.login("member@a.test")
    key, _ = create_key(client)
    agent = app.test_client()
    statuses = [agent.get("/api/me", headers=bearer(key)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
