"""Helpers for tests: building the schema by migrations, a client that carries CSRF tokens."""
import os
import re
import shutil

import pytest
from flask.testing import FlaskClient

TEST_KEYS = {
    "SECRET_KEY": "test-secret-key-0123456789abcdef0123456789",
    "ENCRYPTION_KEYS": "t1:" + "A" * 43,
    "AUDIT_KEY": "test-audit-key-0123456789abcdef0123456789",
}
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
CSRF_HEADER = re.compile(r'"X-CSRFToken": "([^"]+)"')


def in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(part, reason):
    """A real part is missing: fail in CI, skip on a developer machine."""
    message = f"{part} is not available: {reason}"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def upgrade(url):
    """Build the schema at ``url`` the only way production does: alembic upgrade head."""
    from flask_migrate import upgrade as alembic_upgrade

    from portal import create_app

    app = create_app({**TEST_KEYS, "SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    with app.app_context():
        alembic_upgrade()
        from portal.extensions import db

        db.engine.dispose()  # closes SQLite's WAL so the file can be copied whole


def copy_sqlite(template_path, target_path):
    shutil.copyfile(template_path, target_path)


class PortalClient(FlaskClient):
    """A test client that finds the page's CSRF token and sends it, as the browser would."""

    def open(self, *args, **kwargs):
        # Each request gets its own app context, as in production: a fresh ``g`` (Flask-WTF
        # caches the CSRF token there) and its own database session, not the test's.
        with self.application.app_context():
            return super().open(*args, **kwargs)

    def csrf_token(self, path="/login"):
        html = self.get(path).get_data(as_text=True)
        match = CSRF_INPUT.search(html) or CSRF_HEADER.search(html)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def submit(self, path, data=None, method="POST", token_from="/login", **kwargs):
        """A form submission with the CSRF token included."""
        data = dict(data or {})
        data.setdefault("csrf_token", self.csrf_token(token_from))
        return self.open(path, method=method, data=data, **kwargs)

    def send_json(self, path, payload=None, method="POST", token_from="/login", **kwargs):
        headers = dict(kwargs.pop("headers", {}) or {})
        headers.setdefault("X-CSRFToken", self.csrf_token(token_from))
        return self.open(path, method=method, json=payload, headers=headers, **kwargs)


def assert_no_secrets(secrets, app, caplog):
    """No audit row and no captured log record contains any of ``secrets`` (SECURITY 19).

    Run the flow with ``caplog.set_level(logging.DEBUG)`` first. Every audit row (all columns, as
    committed) and every captured record (message, arguments, traceback) is searched. Returns
    ``(rows, records)`` scanned, so a caller can check the scan saw something.
    """
    import logging

    from sqlalchemy import text

    from portal.extensions import db

    secrets = [secret for secret in secrets if secret]
    assert secrets, "name the secret strings to look for"
    with app.app_context(), db.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM audit_events ORDER BY id")).all()
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    places = [(f"audit event #{row[0]}", " ".join(map(str, row))) for row in rows]
    places += [(f"log record {record.name}:{record.lineno}", formatter.format(record) + repr(record.args))
                for record in caplog.records]
    hits = [(where, secret[:8] + "…") for where, content in places for secret in secrets if secret in content]
    assert not hits, f"secrets found in audit rows or logs: {hits}"
    return len(rows), len(caplog.records)
