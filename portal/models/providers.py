"""Per-team provider settings: enabled flag and client credentials."""
from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.base import Sealed, UTCDateTime, utcnow


class ProviderSetting(Sealed, db.Model):
    __tablename__ = "provider_settings"
    __table_args__ = (UniqueConstraint("team_id", "provider", name="uq_provider_settings_team_provider"),)
    __sealed__ = ("client_secret",)
    __sealed_identity__ = (("team", "team_id"), ("provider", "provider"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    provider: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    client_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    client_secret: Mapped[str | None] = mapped_column(Text, nullable=True)  # sealed
    version: Mapped[int] = mapped_column(Integer, default=1)  # compare-and-swap for rotation
    updated_at = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)
