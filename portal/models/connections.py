"""OAuth flows in progress and the connections (sealed tokens) they produce."""
from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.base import Sealed, UTCDateTime, utcnow

STATUSES = ("connected", "expiring", "refresh_failing", "reauth_required", "revocation_pending", "revoked")


class OAuthState(Sealed, db.Model):
    """One authorization flow: single use, bound to user, session and provider, 10 minutes."""

    __tablename__ = "oauth_states"
    __sealed__ = ("code_verifier",)
    __sealed_identity__ = (("state", "state_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex; the state itself is never stored
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("mcp_servers.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(64))
    session_hash: Mapped[str] = mapped_column(String(64))  # binds the flow to the browser session
    code_verifier: Mapped[str] = mapped_column(Text)  # sealed PKCE verifier
    issuer: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    resource: Mapped[str | None] = mapped_column(String(2048), nullable=True)  # RFC 8707
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    return_to: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at = mapped_column(UTCDateTime, nullable=False)
    consumed_at = mapped_column(UTCDateTime, nullable=True)


class Connection(Sealed, db.Model):
    """A user's tokens for one server and provider. Tokens are sealed; ``version`` guards CAS."""

    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("user_id", "server_id", "provider", name="uq_connections_user_server_provider"),)
    __sealed__ = ("access_token", "refresh_token")
    __sealed_identity__ = (("user", "user_id"), ("server", "server_id"), ("provider", "provider"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("mcp_servers.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(64))
    access_token: Mapped[str | None] = mapped_column(Text, nullable=True)  # sealed
    refresh_token: Mapped[str | None] = mapped_column(Text, nullable=True)  # sealed
    token_type: Mapped[str] = mapped_column(String(32), default="Bearer")
    scope: Mapped[str | None] = mapped_column(Text, nullable=True)
    expires_at = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(32), default="connected", index=True)
    account_label: Mapped[str | None] = mapped_column(String(254), nullable=True)
    issuer: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    last_refresh_at = mapped_column(UTCDateTime, nullable=True)
    failure_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at = mapped_column(UTCDateTime, nullable=True)  # back-off for refresh / revoke retry
    last_error: Mapped[str | None] = mapped_column(String(255), nullable=True)  # safe text, never a secret
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)

    user = relationship("User")
    server = relationship("MCPServer")
