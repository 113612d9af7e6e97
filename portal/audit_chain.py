"""Checking the audit chain, and pruning old events so that it still checks afterwards.

``verify()`` walks the events in id order a batch at a time (memory stays flat on millions of
rows), recomputes each HMAC and stops at the first broken event, naming what it found: an
edited, deleted, reordered or inserted event. ``prune()`` is the only code that deletes audit
events: it removes everything before a date and appends an ``audit.pruned`` anchor recording
where the kept chain starts; verify starts from the newest anchor instead of the genesis hash.
"""
import json
from dataclasses import dataclass
from datetime import datetime, time, timezone

from sqlalchemy import delete, func, select, text

from portal.audit import GENESIS_HASH, Action, chain_hash, chain_key, hashed_fields, lock_head, record
from portal.models import AuditChainHead, AuditEvent

BATCH = 2000
COLUMNS = [column for column in AuditEvent.__table__.columns]


class ChainBroken(Exception):
    """The chain does not verify; ``report`` says where and how."""

    def __init__(self, report):
        super().__init__(report.message)
        self.report = report


@dataclass(frozen=True)
class Report:
    ok: bool
    checked: int
    start: str  # "genesis" or "anchor #<id>"
    broken_id: int | None = None
    kind: str | None = None  # edited | deleted | reordered | inserted
    message: str = ""


@dataclass(frozen=True)
class Start:
    prev_hash: str
    first_id: int | None  # the id the chain must start at (None: any)
    label: str


def find_start(session):
    """Where the kept chain starts: the newest prune anchor's cut, or the genesis hash."""
    anchor = session.execute(
        select(AuditEvent.id, AuditEvent.details)
        .where(AuditEvent.team_id.is_(None), AuditEvent.action == Action.AUDIT_PRUNED.value)
        .order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    if anchor is None:
        return Start(GENESIS_HASH, None, "genesis")
    cut = json.loads(anchor.details)
    first_id = cut.get("first_kept_id") or anchor.id
    return Start(cut["first_kept_prev_hash"], first_id, f"anchor #{anchor.id}")


def batches(session, last_id, batch=BATCH):
    """Events with ``id`` up to ``last_id`` in id order, fetched by keyset a batch at a time."""
    after, connection = 0, session.connection()  # plain rows: no ORM bookkeeping per row
    while True:
        rows = connection.execute(select(*COLUMNS).where(AuditEvent.id > after, AuditEvent.id <= last_id)
                               .order_by(AuditEvent.id).limit(batch)).all()
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1].id


def verify(session, app, batch=BATCH):
    """Walk the whole chain; return a ``Report`` (``ok`` False at the first broken event)."""
    # One snapshot of the head and the highest id: every event up to the head is committed
    # (an append moves the head in its own transaction); later appends are left for next time.
    head = session.execute(select(
        AuditChainHead.last_event_id, AuditChainHead.last_hash,
        select(func.max(AuditEvent.id)).scalar_subquery().label("max_id"),
    ).where(AuditChainHead.id == 1)).one()
    start, key = find_start(session), chain_key(app)
    expected, checked, last_id = start.prev_hash, 0, None
    for row in batches(session, head.last_event_id, batch):
        problem = _first_row_problem(row, start) if checked == 0 else None
        problem = problem or _link_problem(session, key, row, expected, start)
        if problem:
            return Report(False, checked, start.label, row.id, *problem)
        expected, checked, last_id = row.hash, checked + 1, row.id
    problem = _tail_problem(session, head, expected, last_id)
    if problem:
        return Report(False, checked, start.label, problem[0], *problem[1:])
    return Report(True, checked, start.label, message=f"{checked} events verified from {start.label}")


def _first_row_problem(row, start):
    if start.first_id is None or row.id == start.first_id:
        return None
    if row.id < start.first_id:
        return "inserted", f"event #{row.id} precedes #{start.first_id}, where the kept chain starts ({start.label})"
    return "deleted", f"event #{start.first_id}, where the kept chain starts ({start.label}), is missing"


def _link_problem(session, key, row, expected, start):
    if chain_hash(key, row.prev_hash, hashed_fields(row)) != row.hash:
        return "edited", f"event #{row.id} does not match its HMAC: it was edited (or forged)"
    if row.prev_hash == expected:
        return None
    if row.prev_hash == start.prev_hash:
        return "inserted", f"event #{row.id} chains from the start of the chain: it was inserted"
    source = session.execute(select(func.min(AuditEvent.id)).where(AuditEvent.hash == row.prev_hash)).scalar()
    if source is None:
        return "deleted", f"the event before #{row.id} is missing: it was deleted"
    if source > row.id:
        return "reordered", f"event #{row.id} chains from the later event #{source}: events were reordered"
    return "inserted", f"event #{row.id} chains from the earlier event #{source}: it was inserted"


def _tail_problem(session, head, expected, last_id):
    if (head.max_id or 0) > head.last_event_id:
        beyond = session.execute(select(func.min(AuditEvent.id)).where(AuditEvent.id > head.last_event_id)).scalar()
        return (beyond, "inserted", f"event #{beyond} lies beyond the chain head (#{head.last_event_id}): it was inserted")
    if expected == head.last_hash and (last_id is None or last_id == head.last_event_id):
        return None
    return (head.last_event_id, "deleted", f"the chain head names event #{head.last_event_id}, but the "
            f"chain ends at #{last_id or 0}: the last events were deleted")


def prune(session, app, before):
    """Delete events created before ``before`` (a date, UTC); append the anchor. Caller commits.

    Refuses (``ChainBroken``) when the chain does not verify, so pruning never hides tampering.
    Returns the anchor event, or None when nothing was old enough to remove.
    """
    report = verify(session, app)
    if not report.ok:
        raise ChainBroken(report)
    head_hash = lock_head(session)  # no appends until we commit
    cut = datetime.combine(before, time(), tzinfo=timezone.utc)
    first_kept = session.execute(select(AuditEvent.id, AuditEvent.prev_hash).where(
        AuditEvent.id == select(func.min(AuditEvent.id)).where(AuditEvent.created_at >= cut).scalar_subquery())).first()
    doomed = AuditEvent.id < first_kept.id if first_kept else AuditEvent.id.is_not(None)
    removed = session.execute(select(func.count()).select_from(AuditEvent).where(doomed)).scalar()
    if not removed:
        return None
    if session.connection().dialect.name == "postgresql":
        session.execute(text("SET LOCAL portal.audit_prune = 'on'"))  # the trigger's one exception
    session.execute(delete(AuditEvent).where(doomed))
    details = {"before": before.isoformat(), "removed": removed,
               "first_kept_id": first_kept.id if first_kept else None,
               "first_kept_prev_hash": first_kept.prev_hash if first_kept else head_hash}
    return record(Action.AUDIT_PRUNED, actor_name="system", details=details)
