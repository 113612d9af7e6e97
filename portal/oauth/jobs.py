"""``flask portal refresh-due``: refresh what expires soon, retry pending revocations, drop old
flow states. Safe to run from cron on several hosts at once: every connection is handled under
its row lock (``refresh_connection`` re-reads and skips what another host already refreshed;
on PostgreSQL a row another host holds right now is skipped, not waited for).
"""
from dataclasses import asdict, dataclass
from datetime import timedelta

from sqlalchemy import delete, or_, select

from portal.errors import PortalError
from portal.extensions import db
from portal.models import Connection, OAuthState, utcnow
from portal.oauth import revoke, vault
from portal.oauth.errors import RefreshBusy, RefreshFailing, TokensExpired
from portal.oauth.locking import own_transaction
from portal.oauth.refresh import refresh_connection

STATE_RETENTION = timedelta(days=1)


@dataclass
class DueReport:
    refreshed: int = 0
    already_fresh: int = 0
    skipped: int = 0
    failing: int = 0
    reauth_required: int = 0
    revoked: int = 0
    revocation_pending: int = 0
    revocation_failed: int = 0
    states_deleted: int = 0

    def as_dict(self):
        return asdict(self)


def due_connections(within, now):
    """Ids of usable connections with a refresh token that expire within ``within`` seconds."""
    return db.session.scalars(select(Connection.id).where(
        Connection.status.in_(vault.USABLE), Connection.refresh_token.is_not(None),
        Connection.expires_at.is_not(None), Connection.expires_at <= now + timedelta(seconds=within),
        or_(Connection.next_attempt_at.is_(None), Connection.next_attempt_at <= now),
    ).order_by(Connection.expires_at)).all()


def refresh_due(within=600, now=None):
    """One pass; returns a DueReport."""
    now = now or utcnow()
    report = DueReport()
    ids = due_connections(within, now)
    db.session.rollback()  # end the read: each connection gets a transaction of its own
    for connection_id in ids:
        _refresh_one(connection_id, within, report)
    for result in revoke.retry_pending(now):
        if result.status in ("revoked", "revoked_locally"):
            report.revoked += 1
        elif result.status == "revocation_failed":
            report.revocation_failed += 1
        else:
            report.revocation_pending += 1
    report.states_deleted = _delete_old_states(now)
    return report


def _refresh_one(connection_id, within, report):
    try:
        fresh = refresh_connection(connection_id, skip_locked=True, min_validity=within)
    except TokensExpired:
        report.reauth_required += 1
    except (RefreshFailing, RefreshBusy):
        report.failing += 1
    except PortalError:  # gone meanwhile, or the provider is no longer configured
        report.skipped += 1
    else:
        if fresh.skipped:
            report.skipped += 1
        elif fresh.refreshed:
            report.refreshed += 1
        else:
            report.already_fresh += 1


def _delete_old_states(now):
    with own_transaction() as session:
        result = session.execute(delete(OAuthState).where(OAuthState.expires_at < now - STATE_RETENTION))
        session.commit()
    return result.rowcount or 0
