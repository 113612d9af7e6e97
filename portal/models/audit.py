"""The append-only audit trail and the head of its HMAC chain."""
from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.base import UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")


class AuditEvent(db.Model):
    """One thing that happened. Rows are never updated; deletion only by ``audit prune``."""

    __tablename__ = "audit_events"
    # The audit page always scopes by team and pages newest first on id (keyset), optionally
    # with one equality filter: each (team_id, <filter>, id) index serves that walk directly.
    __table_args__ = (
        Index("ix_audit_events_team_id_id", "team_id", "id"),
        Index("ix_audit_events_team_action", "team_id", "action", "id"),
        Index("ix_audit_events_team_actor", "team_id", "actor_id", "id"),
        Index("ix_audit_events_team_provider", "team_id", "provider", "id"),
        Index("ix_audit_events_team_target", "team_id", "target_type", "target_id", "id"),
        Index("ix_audit_events_team_outcome", "team_id", "outcome", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False, index=True)  # UTC, stamped under the chain lock
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # no FK: survives deletion
    actor_name: Mapped[str | None] = mapped_column(String(254), nullable=True)  # copied at the time
    team_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(64))  # dotted, from portal.audit.Action
    target_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    target_label: Mapped[str | None] = mapped_column(String(254), nullable=True)  # copied repr
    provider: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), default="success")  # success | failure | denied
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)
    details: Mapped[str] = mapped_column(Text, default="{}")  # canonical JSON, never a secret
    prev_hash: Mapped[str] = mapped_column(String(64))  # chain: hash of the event before
    hash: Mapped[str] = mapped_column(String(64))  # HMAC over prev_hash and this event's content


class AuditChainHead(db.Model):
    """Single row (id=1): the last event's id and hash. Each append locks it first; the insert
    trigger ``audit_events_move_head`` (migration 0001) moves it to the new event."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigId, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
    updated_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
