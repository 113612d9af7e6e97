"""SECURITY 19: flows run with known secrets at DEBUG leave no trace of them in audit rows or logs."""
import logging

import pytest

from portal import audit
from portal.audit import Action
from portal.extensions import db
from portal.models import AuditEvent
from tests.support import assert_no_secrets

PASSWORD = "Known-Secret-Password-7f3a9c"
WRONG_PASSWORD = "Wrong-Secret-Password-1b2c3d"
CLIENT_SECRET = "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5a"


def everything_at_debug(caplog):
    """Root and the loggers alembic's logging config quietened (SQL with its parameters included)."""
    for name in (None, "sqlalchemy", "sqlalchemy.engine", "alembic", "portal", "werkzeug", "flask_limiter"):
        caplog.set_level(logging.DEBUG, logger=name)


def test_login_logout_and_provider_credentials_leave_no_secret_in_audit_or_logs(app, client, make_user, caplog):
    everything_at_debug(caplog)
    make_user("admin@a.test", role="admin", password=PASSWORD)
    assert client.submit("/login", {"email": "admin@a.test", "password": WRONG_PASSWORD}).status_code == 401
    assert client.submit("/login", {"email": "admin@a.test", "password": PASSWORD}).status_code == 303
    session_cookie = client.get_cookie("portal_session").value
    saved = client.submit("/admin/plugins/gmail/credentials", {"client_id": "client-1.apps", "client_secret": CLIENT_SECRET},
                          token_from="/admin/plugins")
    assert saved.status_code in (200, 303)
    assert client.submit("/admin/plugins/gmail/enabled", {"enabled": "1"}, token_from="/admin/plugins").status_code in (200, 303)
    assert client.submit("/logout", token_from="/account").status_code == 303

    rows, records = assert_no_secrets([PASSWORD, WRONG_PASSWORD, CLIENT_SECRET, session_cookie], app, caplog)
    assert rows >= 6 and records > rows  # the scan saw the events and the DEBUG log (SQL included)
    assert any(record.name.startswith("sqlalchemy.engine") for record in caplog.records)
    changed = db.session.query(AuditEvent).filter_by(action="provider.credentials_changed").one()
    assert audit.fingerprint(CLIENT_SECRET) in changed.details  # recognisable, not readable
    actions = [event.action for event in db.session.query(AuditEvent).order_by(AuditEvent.id)]
    assert actions == ["user.created", "auth.login_failed", "auth.login", "provider.credentials_changed",
                       "provider.enabled", "auth.logout"]


def test_assert_no_secrets_finds_secret_in_a_log_record(app, caplog):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("portal.test").debug("oops %s", CLIENT_SECRET)
    with pytest.raises(AssertionError, match="log record portal.test"):
        assert_no_secrets([CLIENT_SECRET], app, caplog)


def test_assert_no_secrets_finds_secret_in_an_audit_row(app, caplog):
    audit.record(Action.SERVER_CREATED, actor_name="job", team_id=1, target_label="label " + CLIENT_SECRET)
    db.session.commit()
    with pytest.raises(AssertionError, match="audit event #1"):
        assert_no_secrets([CLIENT_SECRET], app, caplog)
