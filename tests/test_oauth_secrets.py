"""No OAuth secret (token, code, state, verifier, client secret) in any log record at DEBUG, any
audit row, any page, fragment or JSON the lifecycle produces (SECURITY.md items 17 and 19)."""
import logging

import pytest

from portal.crypto import open_field
from portal.extensions import db
from portal.models import AuditEvent, OAuthState
from portal.oauth import vault
from tests.peer_provider import CLIENT_SECRET, add_server, authorize_at_peer, connection_of, expire
from tests.peer_provider import peer_app_config, peer_user  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("peer_app_config")
# Records of the test's own browser and of the peer (test infrastructure), not the portal's.
NOT_PORTAL = ("httpx", "httpcore", "mcp", "uvicorn", "starlette", "tests")


def portal_records(records):
    return [r for r in records if r.name.split(".")[0] not in NOT_PORTAL]


def test_lifecycle_leaves_no_secret_in_logs_audit_or_pages(caplog, client, auth, peer_user, oauth_peer):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # SQL with its parameters too
    auth.login(peer_user.email)
    server = add_server(peer_user)
    started = client.send_json("/auth/oauth/authorize", {"server_id": server.id}, token_from="/settings").get_json()
    db.session.commit()
    verifier = open_field(db.session.scalar(db.select(OAuthState)), "code_verifier")
    params = authorize_at_peer(started["oauth_url"])
    shown = [client.get("/auth/oauth/callback", query_string=params).get_data(as_text=True)]
    connection = connection_of(peer_user, server)
    secrets = {"state": started["state"], "code": params["code"], "verifier": verifier, "client secret": CLIENT_SECRET,
               "access token": vault.open_token(connection),
               "refresh token": vault.open_token(connection, "refresh_token")}
    expire(connection.id)
    secrets["refreshed access token"] = vault.valid_access_token(peer_user.id, server.id)
    secrets["rotated refresh token"] = vault.open_token(connection_of(peer_user, server), "refresh_token")
    oauth_peer.fail_next("refresh", "503")
    shown.append(client.submit(f"/settings/connections/{server.id}/refresh", {"provider": "peer"},
                               token_from="/settings", headers={"HX-Request": "true"}).get_data(as_text=True))
    for path in ("/settings", "/settings/status", "/auth/oauth/status", "/audit"):
        shown.append(client.get(path).get_data(as_text=True))
    shown.append(client.send_json(f"/auth/oauth/tokens/{server.id}", method="DELETE", token_from="/settings")
                 .get_data(as_text=True))

    records = portal_records(caplog.records)
    names = {r.name.split(".")[0] for r in records}
    assert {"portal", "httpx2", "httpcore2", "sqlalchemy"} <= names
    db.session.commit()
    audit_rows = [" ".join(str(value) for value in (e.details, e.target_label, e.actor_name, e.request_id))
                  for e in db.session.scalars(db.select(AuditEvent))]
    assert len(audit_rows) >= 6
    for name, secret in secrets.items():
        assert not [r.name for r in records if secret in r.getMessage()], f"{name} in a log record"
        assert not [row for row in audit_rows if secret in row], f"{name} in an audit row"
        assert not [page for page in shown if secret in page], f"{name} in a page or JSON"


def test_access_log_lines_hide_the_callback_code_and_state(app, caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")
    line = "GET /auth/oauth/callback?code=c0de-SECRET&state=st4te-SECRET&iss=http://a HTTP/1.1"
    logging.getLogger("werkzeug").info('%s - - [%s] "%s" %s %s', "127.0.0.1", "now", line, "303", "-")
    message = caplog.records[-1].getMessage()
    assert "SECRET" not in message and "/auth/oauth/callback?[redacted] HTTP/1.1" in message
