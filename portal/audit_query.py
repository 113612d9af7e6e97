"""Reading the audit trail: filters, keyset pages and streamed exports, always bounded.

``parse()`` turns query-string arguments into ``Filters`` and refuses anything it does not know
(``BadInput`` naming the parameter). ``page()`` returns one page newest first, keyset-paginated on
``id`` so a deep page costs what the first one does; ``batches()`` walks the same query in keyset
batches for exports (``portal.audit_export``), so memory stays flat however many rows match. A
``Scope`` says whose events the caller may see: a team (admins), or a member's own events.

Every query walks one of the ``(team_id, <column>, id)`` indexes newest first. A filter that is
an OR (a member's events: actor *or* target; an actor named by text: several users) becomes a
UNION of such walks, each stopping after one page, instead of one walk that filters row by row.
"""
import itertools
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import and_, or_, select, union

from portal.audit import OUTCOMES, Action
from portal.errors import BadInput
from portal.models import AuditEvent, User

FILTERS = ("actor", "action", "provider", "target_type", "target_id", "outcome", "from", "to")
PAGING = ("before", "limit")
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
EXPORT_BATCH = 2000
MAX_ACTOR_BRANCHES = 8  # an actor text matching more users than this is one IN (...) walk
MAX_ID = 2**63 - 1
COLUMNS = [column for column in AuditEvent.__table__.columns]
_NAME = re.compile(r"^[a-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Scope:
    """Whose events: ``team_id`` always; ``user_id`` narrows to events about one member."""

    team_id: int
    user_id: int | None = None


@dataclass(frozen=True)
class Filters:
    actor: str | None = None
    actions: tuple = ()
    provider: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    outcome: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    def args(self, action_prefix=None):
        """The query-string form of these filters (for links that keep them)."""
        values = {"actor": self.actor, "action": action_prefix, "provider": self.provider,
                  "target_type": self.target_type, "target_id": self.target_id, "outcome": self.outcome,
                  "from": self.date_from and self.date_from.isoformat(), "to": self.date_to and self.date_to.isoformat()}
        return {name: value for name, value in values.items() if value}


def _single(args, name):
    values = [value.strip() for value in args.getlist(name)]
    if len(values) > 1:
        raise BadInput(f"The filter {name!r} was given {len(values)} times.", "Give each filter once.")
    return values[0] if values and values[0] else None


def _date(args, name):
    value = _single(args, name)
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise BadInput(f"The date {name!r} must look like 2025-01-31, not {value[:40]!r}.") from None


def _integer(args, name, low, high, default=None):
    value = _single(args, name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise BadInput(f"The parameter {name!r} must be a whole number from {low} to {high}.")
    return int(value)


def _actions(prefix):
    if prefix is None:
        return ()
    matches = tuple(action.value for action in Action if action.value.startswith(prefix))
    if not matches:
        raise BadInput(f"No audited action starts with {prefix[:64]!r}.", "Try a prefix such as 'token.' or 'auth.login'.")
    return matches


def _name(args, name, limit=64):
    value = _single(args, name)
    if value is not None and (len(value) > limit or not _NAME.match(value.lower())):
        raise BadInput(f"The filter {name!r} is not a valid {name.replace('_', ' ')}.")
    return value


def _target_id(args):
    value = _single(args, "target_id")
    if value is not None and (len(value) > 64 or not value.isprintable()):
        raise BadInput("The filter 'target_id' must be at most 64 printable characters.")
    return value


def parse(args, allowed=FILTERS + PAGING):
    """``(filters, action_prefix, before, limit)`` from a MultiDict; BadInput names a bad parameter."""
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise BadInput(f"Unknown parameter {unknown[0]!r}.", f"Use only: {', '.join(allowed)}.")
    actor, prefix, outcome = _single(args, "actor"), _name(args, "action"), _single(args, "outcome")
    if actor is not None and len(actor) > 254:
        raise BadInput("The filter 'actor' is too long (at most 254 characters).")
    if outcome is not None and outcome not in OUTCOMES:
        raise BadInput(f"The filter 'outcome' must be one of {', '.join(OUTCOMES)}.")
    filters = Filters(actor=actor, actions=_actions(prefix), provider=_name(args, "provider"),
                      target_type=_name(args, "target_type", 32), target_id=_target_id(args),
                      outcome=outcome, date_from=_date(args, "from"), date_to=_date(args, "to"))
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise BadInput("The date 'from' is after the date 'to'.")
    return filters, prefix, _integer(args, "before", 1, MAX_ID), _integer(args, "limit", 1, MAX_LIMIT, DEFAULT_LIMIT)


def _scope_alternatives(scope):
    if scope.user_id is None:
        return []
    return [[AuditEvent.actor_id == scope.user_id,
             and_(AuditEvent.target_type == "users", AuditEvent.target_id == str(scope.user_id))]]


def _actor_alternatives(session, scope, actor):
    """An id; or a team member whose e-mail or name contains the text, or a recorded name that
    does (events without a user: ``system``, the e-mail typed at a failed sign-in)."""
    if actor.isdigit():
        return [[AuditEvent.actor_id == int(actor)]]
    ids = session.scalars(select(User.id).where(User.team_id == scope.team_id, or_(
        User.email.icontains(actor, autoescape=True), User.name.icontains(actor, autoescape=True)))).all()
    by_name = and_(AuditEvent.actor_id.is_(None), AuditEvent.actor_name.icontains(actor, autoescape=True))
    if len(ids) > MAX_ACTOR_BRANCHES:
        return [[AuditEvent.actor_id.in_(ids), by_name]]
    return [[AuditEvent.actor_id == user_id for user_id in ids] + [by_name]]


def _date_conditions(filters):
    """Date bounds, plus the same bounds as ids so the keyset walk starts in the right place.

    Times are stamped under the chain lock, so id order is time order: the first event at or
    after the start is also the first by id (a subquery the database evaluates once).
    """
    conditions = []
    if filters.date_from:
        start = datetime.combine(filters.date_from, time(), tzinfo=timezone.utc)
        first = select(AuditEvent.id).where(AuditEvent.created_at >= start).order_by(AuditEvent.created_at).limit(1)
        conditions += [AuditEvent.created_at >= start, AuditEvent.id >= first.scalar_subquery()]
    if filters.date_to:
        end = datetime.combine(filters.date_to + timedelta(days=1), time(), tzinfo=timezone.utc)
        last = select(AuditEvent.id).where(AuditEvent.created_at < end).order_by(AuditEvent.created_at.desc()).limit(1)
        conditions += [AuditEvent.created_at < end, AuditEvent.id <= last.scalar_subquery()]
    return conditions


def _plain_conditions(filters):
    conditions = _date_conditions(filters)
    if filters.actions:
        conditions.append(AuditEvent.action.in_(filters.actions) if len(filters.actions) > 1
                          else AuditEvent.action == filters.actions[0])
    for name in ("provider", "target_type", "target_id", "outcome"):
        if getattr(filters, name):
            conditions.append(getattr(AuditEvent, name) == getattr(filters, name))
    return conditions


def _parts(session, scope, filters):
    """(conditions every event must meet, groups of alternatives of which one must hold)."""
    groups = _scope_alternatives(scope)
    if filters.actor:
        groups += _actor_alternatives(session, scope, filters.actor)
    return [AuditEvent.team_id == scope.team_id] + _plain_conditions(filters), groups


def query(session, scope, filters, columns=COLUMNS):
    """One SELECT (alternatives as OR) of the events ``scope`` may see and ``filters`` match."""
    common, groups = _parts(session, scope, filters)
    return select(*columns).where(*common, *[or_(*group) for group in groups])


def ordered(session, scope, filters, limit, before=None, columns=COLUMNS):
    """Up to ``limit`` matching events older than id ``before``, newest first, by index walks."""
    common, groups = _parts(session, scope, filters)
    if before is not None:
        common.append(AuditEvent.id < before)
    branches = list(itertools.product(*groups))
    if len(branches) == 1:
        return select(*columns).where(*common, *branches[0]).order_by(AuditEvent.id.desc()).limit(limit)
    # Each walk reads ids only (its index holds them); the rows are fetched once, by primary key.
    walks = [select(AuditEvent.id).where(*common, *branch).order_by(AuditEvent.id.desc()).limit(limit).subquery()
             for branch in branches]
    merged = union(*[select(walk.c.id) for walk in walks]).subquery()
    newest = select(merged.c.id).order_by(merged.c.id.desc()).limit(limit)
    return select(*columns).where(AuditEvent.id.in_(newest)).order_by(AuditEvent.id.desc())


def page(session, scope, filters, before=None, limit=DEFAULT_LIMIT):
    """``(rows, next_before)``: up to ``limit`` events older than id ``before``, newest first."""
    limit = min(limit, MAX_LIMIT)
    rows = session.execute(ordered(session, scope, filters, limit + 1, before)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


def batches(session, scope, filters, columns=COLUMNS, batch=None):
    """Every matching event newest first, as lists of rows fetched by keyset (flat memory)."""
    batch, before = batch or EXPORT_BATCH, None
    connection = session.connection()  # plain rows: no ORM bookkeeping per row
    while True:
        rows = connection.execute(ordered(session, scope, filters, batch, before, columns)).all()
        if rows:
            yield rows
        if len(rows) < batch:
            return
        before = rows[-1].id
