"""The audit page and its exports: scope by role, filters that combine, keyset pages, bad input."""
import csv
import io
import json
import re
from datetime import datetime, timezone

import pytest

from portal import audit, audit_export, audit_query
from portal.audit import Action
from portal.extensions import db

ROW = re.compile(r'<tr id="event-(\d+)">')


@pytest.fixture
def world(app, make_user, admin, member, monkeypatch):
    """Team A (admin, member, carol) and team B, with events on three days."""
    carol = make_user("carol@a.test", team=admin.team)
    carol.name = "Carol Jones"
    other = make_user("boss@b.test", role="admin", team_name="Team B")
    db.session.commit()

    def on(day, action, actor, **fields):
        monkeypatch.setattr(audit, "utcnow", lambda: datetime(2025, 3, day, 12, tzinfo=timezone.utc))
        audit.record(action, actor=actor, **fields)
        db.session.commit()

    on(1, Action.TOKEN_REFRESHED, member, provider="gmail", target_type="connection", target_id="7")
    on(1, Action.TOKEN_REFRESH_FAILED, member, provider="gmail", outcome="failure", details={"error": "timeout"})
    on(2, Action.USER_ROLE_CHANGED, admin, target=member, details={"from": "member", "to": "admin"})
    on(2, Action.TOKEN_REVOKED, carol, provider="drive", target_type="connection", target_id="9")
    on(3, Action.PROVIDER_ENABLED, admin, provider="drive", target_type="provider", target_id="drive")
    on(3, Action.TOKEN_REFRESHED, other, provider="gmail")
    monkeypatch.undo()
    return {"admin": admin, "member": member, "carol": carol, "other": other}


def listed(response):
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return [int(event_id) for event_id in ROW.findall(response.get_data(as_text=True))]


def actions(ids):
    from portal.models import AuditEvent

    return [db.session.get(AuditEvent, event_id).action for event_id in ids]


def page(client, query=""):
    return listed(client.get("/audit" + query))


def test_audit_page_shows_admin_whole_team_newest_first(client, auth, world):
    auth.login("admin@a.test")
    ids = page(client)
    assert ids == sorted(ids, reverse=True)
    team_actions = actions(ids)
    assert team_actions[:5] == ["auth.login", "provider.enabled", "token.revoked", "user.role_changed",
                                "token.refresh_failed"]
    assert "token.refreshed" in team_actions and team_actions.count("user.created") == 3
    from portal.models import AuditEvent

    assert all(db.session.get(AuditEvent, event_id).team_id == world["admin"].team_id for event_id in ids)


def test_audit_page_shows_member_only_events_about_them(client, auth, world):
    auth.login("member@a.test")
    ids = page(client)
    assert actions(ids) == ["auth.login", "user.role_changed", "token.refresh_failed", "token.refreshed", "user.created"]
    body = client.get("/audit").get_data(as_text=True)
    assert "Your activity" in body and "carol@a.test" not in body and "boss@b.test" not in body


def test_audit_page_redirects_anonymous_to_login(client, world):
    response = client.get("/audit")
    assert response.status_code in (302, 303) and "/login" in response.headers["Location"]
    assert client.get("/audit/export.csv").status_code in (302, 303)


def test_audit_page_is_in_navigation_for_members_and_admins(client, auth, world):
    for email in ("member@a.test", "admin@a.test"):
        auth.login(email)
        assert 'href="/audit"' in client.get("/account").get_data(as_text=True)
        auth.logout()


FILTER_CASES = [
    ("?action=token.", ["token.revoked", "token.refresh_failed", "token.refreshed"]),
    ("?action=token.refreshed", ["token.refreshed"]),
    ("?provider=drive", ["provider.enabled", "token.revoked"]),
    ("?outcome=failure", ["token.refresh_failed"]),
    ("?target_type=connection", ["token.revoked", "token.refreshed"]),
    ("?target_type=connection&target_id=9", ["token.revoked"]),
    ("?actor=carol", ["token.revoked"]),
    ("?actor=Jones", ["token.revoked"]),
    ("?actor=member%40a", ["token.refresh_failed", "token.refreshed"]),
    ("?actor=system", ["user.created", "user.created", "user.created"]),  # recorded name, no user
    ("?actor=a.test", ["auth.login", "provider.enabled", "token.revoked", "user.role_changed", "token.refresh_failed",
                       "token.refreshed"]),  # several users: one walk each, merged
    ("?from=2025-03-02&to=2025-03-02", ["token.revoked", "user.role_changed"]),
    ("?from=2025-03-02&action=token.", ["token.revoked"]),
    ("?to=2025-03-01&provider=gmail&outcome=success", ["token.refreshed"]),
    ("?action=token.&provider=gmail&from=2025-03-01&to=2025-03-03", ["token.refresh_failed", "token.refreshed"]),
    ("?from=2030-01-01", []),
    ("?to=2020-01-01", []),
]


def test_audit_filters_combine(client, auth, world):
    """One world, many filters (building the world hashes passwords, which is slow)."""
    auth.login("admin@a.test")
    for query, expected in FILTER_CASES:
        assert actions(page(client, query)) == expected, query


def test_audit_filter_by_actor_id(client, auth, world):
    auth.login("admin@a.test")
    assert actions(page(client, f"?actor={world['carol'].id}")) == ["token.revoked"]


def test_audit_filters_stay_within_member_scope(client, auth, world):
    auth.login("member@a.test")
    assert actions(page(client, "?action=token.")) == ["token.refresh_failed", "token.refreshed"]
    assert actions(page(client, "?actor=carol")) == []


def test_audit_page_loads_more_by_keyset(client, auth, world):
    auth.login("admin@a.test")
    everything = page(client, "?limit=200")
    first = client.get("/audit?limit=3").get_data(as_text=True)
    assert [int(i) for i in ROW.findall(first)] == everything[:3]
    more = re.search(r'href="(/audit\?[^"]*before=(\d+)[^"]*)"', first)
    assert more and int(more.group(2)) == everything[2] and "limit=3" in more.group(1)
    fragment = client.get(more.group(1).replace("&amp;", "&"), headers={"HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and "<thead" not in body and 'id="load-more"' in body
    assert listed(fragment) == everything[3:6]
    assert fragment.headers["Vary"] == "HX-Request" or "HX-Request" in fragment.headers["Vary"]
    last = client.get(f"/audit?limit=3&before={everything[-2]}", headers={"HX-Request": "true"})
    assert listed(last) == everything[-1:] and 'id="load-more"' not in last.get_data(as_text=True)


def test_audit_load_more_link_works_without_javascript(client, auth, world):
    auth.login("admin@a.test")
    everything = page(client, "?limit=200")
    full = client.get(f"/audit?limit=2&before={everything[1]}")
    assert "<html" in full.get_data(as_text=True) and listed(full) == everything[2:4]


def test_audit_filter_form_with_htmx_gets_results_only(client, auth, world):
    auth.login("admin@a.test")
    response = client.get("/audit?provider=drive", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<section class="card" id="audit-results">') and "<form" not in body
    assert actions(listed(response)) == ["provider.enabled", "token.revoked"]
    assert "/audit/export.csv?provider=drive" in body


def test_audit_event_expands_to_its_details(client, auth, world):
    auth.login("admin@a.test")
    body = client.get("/audit?action=token.refresh_failed").get_data(as_text=True)
    details = re.search(r"<details>.*?</details>", body, re.S).group(0)
    assert "&#34;error&#34;: &#34;timeout&#34;" in details or '"error": "timeout"' in details


BAD_INPUT_CASES = [
    ("?colour=red", "'colour'"),
    ("?from=2025-13-01", "'from'"),
    ("?to=yesterday", "'to'"),
    ("?from=2025-03-02&to=2025-03-01", "'from'"),
    ("?limit=201", "'limit'"),
    ("?limit=0", "'limit'"),
    ("?limit=ten", "'limit'"),
    ("?before=abc", "'before'"),
    ("?before=-5", "'before'"),
    ("?before=99999999999999999999999", "'before'"),
    ("?outcome=maybe", "'outcome'"),
    ("?action=nosuch.", "'nosuch.'"),
    ("?action=DROP%20TABLE", "'action'"),
    ("?provider=a&provider=b", "'provider'"),
    ("?actor=" + "x" * 300, "'actor'"),
    ("?target_type=%3Cscript%3E", "'target_type'"),
]


def test_audit_page_rejects_bad_input_with_400_naming_it(client, auth, world):
    auth.login("admin@a.test")
    for query, names in BAD_INPUT_CASES:
        response = client.get("/audit" + query)
        assert response.status_code == 400, query
        assert names in response.get_data(as_text=True).replace("&#39;", "'"), query
        api_style = client.get("/audit" + query, headers={"Accept": "application/json"})
        assert api_style.status_code == 400 and names in api_style.get_json()["message"], query


def test_audit_export_rejects_paging_parameters(client, auth, world):
    auth.login("admin@a.test")
    for query in ("?limit=10", "?before=3", "?bogus=1"):
        response = client.get("/audit/export.jsonl" + query)
        assert response.status_code == 400


def _csv(response):
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_audit_export_csv_streams_current_filter(client, auth, world, monkeypatch):
    monkeypatch.setattr(audit_query, "EXPORT_BATCH", 2)  # several keyset batches
    auth.login("admin@a.test")
    response = client.get("/audit/export.csv?action=token.")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    rows = _csv(response)
    assert [row["action"] for row in rows] == ["token.revoked", "token.refresh_failed", "token.refreshed"]
    assert list(rows[0]) == audit_export.EXPORT_FIELDS
    assert json.loads(rows[1]["details"]) == {"error": "timeout"}
    everything = _csv(client.get("/audit/export.csv"))
    assert [int(row["id"]) for row in everything] == page(client, "?limit=200")


def test_audit_export_jsonl_streams_current_filter(client, auth, world, monkeypatch):
    monkeypatch.setattr(audit_query, "EXPORT_BATCH", 2)
    auth.login("admin@a.test")
    response = client.get("/audit/export.jsonl?provider=gmail")
    assert response.status_code == 200 and response.is_streamed and response.mimetype == "application/jsonl"
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert [line["action"] for line in lines] == ["token.refresh_failed", "token.refreshed"]
    assert lines[0]["details"] == {"error": "timeout"} and lines[0]["created_at"].startswith("2025-03-01T12:00:00")
    assert set(lines[0]) == set(audit_export.EXPORT_FIELDS)


def test_audit_export_gives_member_only_their_events(client, auth, world):
    auth.login("member@a.test")
    rows = _csv(client.get("/audit/export.csv"))
    member_id = str(world["member"].id)
    assert rows and all(row["actor_id"] == member_id or row["target_id"] == member_id for row in rows)
    assert len(rows) == 5


def test_audit_export_csv_defuses_formulas(client, auth, world):
    audit.record(Action.SERVER_CREATED, actor_name='=HYPERLINK("http://evil.test")', team_id=world["admin"].team_id,
                 target_type="mcp_servers", target_id="1", target_label="+SUM(A1)", details={"note": "@cmd"})
    db.session.commit()
    auth.login("admin@a.test")
    [row] = _csv(client.get("/audit/export.csv?action=server.created"))
    assert row["actor_name"] == "'=HYPERLINK(\"http://evil.test\")" and row["target_label"] == "'+SUM(A1)"
    assert row["target_id"] == "1" and row["details"] == '{"note":"@cmd"}'


def _all_pages(client, query, limit=2):
    """Follow the keyset "load more" links to the end; return the ids in order."""
    ids, before = [], None
    while True:
        suffix = f"&before={before}" if before else ""
        body = client.get(f"/audit?limit={limit}{query}{suffix}").get_data(as_text=True)
        ids += [int(event_id) for event_id in ROW.findall(body)]
        more = re.search(r'before=(\d+)', body.split('id="load-more"')[1]) if 'id="load-more"' in body else None
        if not more:
            return ids
        before = int(more.group(1))


def test_audit_pages_through_merged_walks_without_gaps_or_repeats(client, auth, world):
    auth.login("member@a.test")
    assert _all_pages(client, "") == page(client, "?limit=200")
    auth.logout()
    auth.login("admin@a.test")
    for query in ("&actor=a.test", "&actor=system", "&action=token."):
        expected = page(client, "?limit=200" + query)
        assert _all_pages(client, query) == expected and len(expected) == len(set(expected)), query
