"""What can go wrong calling an MCP server, as errors the portal's one handler shows."""
from portal.errors import Conflict, PortalError


class MCPServerError(PortalError):
    """The MCP server failed, refused, redirected or could not be reached (502)."""

    status = 502
    code = "mcp_server_error"


class MCPTimeout(MCPServerError):
    status = 504
    code = "mcp_timeout"


class ConnectionRequired(Conflict):
    """No usable token for this user and server: they must connect (or reconnect) first (409)."""

    code = "oauth_tokens_expired"

    def __init__(self, message="OAuth tokens expired", next_step=None, provider=None):
        super().__init__(message, next_step or "Connect this server to its OAuth account, then try again.",
                         provider=provider)
