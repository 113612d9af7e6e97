"""Column types and helpers shared by the models."""
from datetime import datetime, timezone

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


def utcnow():
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, returns aware UTC: the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


class Sealed:
    """Mixin for models with secret columns sealed by ``portal.crypto``.

    ``__sealed__`` names the columns; ``sealing_context(column)`` returns the associated data
    that binds a ciphertext to this row and column, so a value copied into another row fails to
    open. ``flask portal keys rotate`` finds every model with this mixin.
    """

    __sealed__: tuple = ()

    def sealing_context(self, column):
        raise NotImplementedError("each sealed model names its row")
