"""The portal's tables, one module per aggregate. Import from here."""
from portal.models.accounts import ROLES, Invite, Team, User
from portal.models.api_keys import ApiKey
from portal.models.audit import AuditChainHead, AuditEvent
from portal.models.base import Sealed, UTCDateTime, utcnow
from portal.models.connections import STATUSES, Connection, OAuthState
from portal.models.providers import ProviderSetting
from portal.models.servers import VISIBILITIES, MCPServer

__all__ = [
    "ROLES", "STATUSES", "VISIBILITIES", "ApiKey", "AuditChainHead", "AuditEvent", "Connection",
    "Invite", "MCPServer", "OAuthState", "ProviderSetting", "Sealed", "Team", "User", "UTCDateTime", "utcnow",
]
