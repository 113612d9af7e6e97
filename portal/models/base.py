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

    ``__sealed__`` names the secret columns; ``__sealed_identity__`` pairs a label with each
    attribute that identifies the row. ``sealing_context(column)`` turns them into the
    associated data that binds a ciphertext to this row and column, e.g.
    ``connections.access_token:user=3:server=7:provider=gmail``, so a value copied into another
    row fails to open. ``flask portal keys rotate`` finds every model with this mixin.
    """

    __sealed__: tuple = ()
    __sealed_identity__: tuple = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__sealed__ and not cls.__sealed_identity__:
            raise TypeError(f"{cls.__name__} seals {cls.__sealed__} but names no row identity")

    def sealing_context(self, column):
        return type(self).context_for(self, column)

    @classmethod
    def context_for(cls, row, column):
        """The associated data for ``row``: a model instance or any row with the identity attributes."""
        identity = ":".join(f"{label}={getattr(row, attribute)}" for label, attribute in cls.__sealed_identity__)
        return f"{cls.__tablename__}.{column}:{identity}"
