"""Transactions of their own and row locks for connections.

``own_transaction()`` opens a fresh application context, so ``db.session`` inside it is a new
session (which ``audit.record`` joins), independent of whatever the caller's session holds.
On SQLite it begins with ``BEGIN IMMEDIATE``: the database write lock, SQLite's equivalent of a
row lock, so reads inside it are never stale and its writes never meet a busy snapshot.

``lock_connection(session, id)`` takes the exclusive lock on one connection row and returns the
row as committed by whoever held the lock before: PostgreSQL ``SELECT … FOR UPDATE`` under
``SET LOCAL lock_timeout``; on SQLite the ``BEGIN IMMEDIATE`` already holds it. Waits are bounded
by ``OAUTH_LOCK_TIMEOUT`` seconds and end in ``RefreshBusy``. The lock is released when the
block ends (commit inside it to keep changes; anything uncommitted is rolled back) or when the
process dies: database locks live and die with the database connection.
"""
from contextlib import contextmanager

from flask import current_app, g
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from portal.extensions import db
from portal.models import Connection
from portal.oauth.errors import RefreshBusy


def _timeout_ms():
    return max(1, int(float(current_app.config["OAUTH_LOCK_TIMEOUT"]) * 1000))


@contextmanager
def own_transaction(write=True):
    """Yield a new ``db.session`` in a transaction of its own (see the module docstring).

    ``write=False`` only reads: no write lock, and the caller's session does not start a read
    transaction whose SQLite snapshot would go stale when our other transactions commit.
    """
    app = current_app._get_current_object()
    request_id = g.get("request_id")
    with app.app_context():
        g.request_id = request_id  # audit events keep the request's id
        session = db.session()
        if write and session.get_bind().dialect.name == "sqlite":
            try:
                session.connection(execution_options={"sqlite_begin": "IMMEDIATE",
                                                      "sqlite_busy_timeout": _timeout_ms()})
            except OperationalError as error:
                raise _busy_or(error) from None
        yield session


def lock_connection(session, connection_id, skip_locked=False):
    """The connection row under an exclusive lock, or None if it is gone (or, with
    ``skip_locked`` on PostgreSQL, if another worker holds it right now)."""
    if session.get_bind().dialect.name != "postgresql":
        return session.get(Connection, connection_id)
    session.execute(text(f"SET LOCAL lock_timeout = {_timeout_ms()}"))
    statement = select(Connection).where(Connection.id == connection_id).with_for_update(skip_locked=skip_locked)
    try:
        row = session.scalars(statement).first()
    except OperationalError as error:
        raise _busy_or(error) from None
    # Only the wait for this row is bounded; the audit chain's short lock must not fail a commit.
    session.execute(text("SET LOCAL lock_timeout TO DEFAULT"))
    return row


def _busy_or(error):
    """RefreshBusy for a lock wait that ran out, the error itself otherwise."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate == "55P03" or "database is locked" in str(error.orig):
        return RefreshBusy()
    return error
